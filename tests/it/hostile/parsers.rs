//! Properties of every webhook parser and signature check over arbitrary
//! input: Twilio form and JSON bodies with their signature (auth token and
//! SharedKey settings), Exotel form, JSON and multipart bodies. None panics,
//! none keeps more than `MAX_FIELDS` fields, and what it keeps is within a
//! small factor of what it was given (JSON numbers are re-rendered: `1e5`
//! becomes `100000.0`), so the work a request causes is bounded by its size
//! and signing costs one sort of at most `MAX_FIELDS` pairs.

use proptest::prelude::*;
use switchboard::providers::exotel::{FlowRequest, StatusCallback as ExotelStatus};
use switchboard::providers::fields::{Fields, FieldsError, MAX_FIELDS};
use switchboard::providers::twilio::{
    GatherResult, IncomingCall, Payload, RecordingCallback, RequestValidator, StatusCallback as TwilioStatus,
};

const URL: &str = "https://switchboard.test/webhooks/twilio/status?attempt_id=x";

/// Bytes that look like what the parsers expect often enough to get past
/// their first check: form pairs, JSON objects, multipart parts, or noise.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let word = "[A-Za-z%+=&0-9\\x00-\\x20\"{}:,\\[\\]-]{0,12}";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        proptest::collection::vec((word, word), 0..300).prop_map(|pairs| pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()),
        proptest::collection::vec((word, any::<Option<String>>()), 0..300).prop_map(|pairs| {
            let object: serde_json::Map<String, serde_json::Value> =
                pairs.into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect();
            serde_json::to_vec(&object).unwrap()
        }),
        proptest::collection::vec((word, word), 0..300).prop_map(|parts| {
            let mut body = String::new();
            for (name, value) in parts {
                body.push_str(&format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
            }
            (body + "--XyZ--\r\n").into_bytes()
        }),
    ]
}

fn content_types() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("application/json".to_owned())),
        Just(Some("multipart/form-data; boundary=XyZ".to_owned())),
        Just(Some("multipart/form-data".to_owned())),
        any::<String>().prop_map(Some),
    ]
}

/// How many bytes the kept fields hold.
fn kept_bytes(fields: &Fields) -> usize {
    fields.body.iter().chain(&fields.query).map(|(k, v)| k.len() + v.len()).sum()
}

/// Every typed parse of either provider, on whatever fields were kept: each
/// is `Ok` or `Err`, never a panic.
fn parse_every_webhook(fields: &Fields) {
    let _ = IncomingCall::parse(fields);
    let _ = GatherResult::parse(fields);
    let _ = TwilioStatus::parse(fields);
    let _ = RecordingCallback::parse(fields);
    let _ = FlowRequest::parse(fields);
    let _ = ExotelStatus::parse(fields);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_body_parses_into_at_most_the_cap_of_fields_of_bounded_size(
        query in proptest::option::of("[ -~]{0,300}"),
        content_type in content_types(),
        body in bodies(),
    ) {
        let parsed = futures::executor::block_on(Fields::parse_any(
            query.as_deref(),
            content_type.as_deref(),
            body.clone().into(),
        ));
        match parsed {
            Ok(fields) => {
                prop_assert!(fields.body.len() + fields.query.len() <= MAX_FIELDS);
                let given = body.len() + query.as_ref().map_or(0, String::len);
                prop_assert!(kept_bytes(&fields) <= 8 * given, "kept {} bytes of {given}", kept_bytes(&fields));
                parse_every_webhook(&fields);
            }
            Err(FieldsError::TooMany | FieldsError::Malformed(_)) => {}
        }
    }

    #[test]
    fn no_forged_or_garbled_signature_passes_and_none_panics(
        params in proptest::collection::vec((any::<String>(), any::<String>()), 0..MAX_FIELDS),
        signature in proptest::option::of(any::<String>()),
        settings in proptest::option::of(prop_oneof![
            Just("key=WK1,algorithm=HMAC_SHA256".to_owned()),
            Just("algorithm=HMAC_SHA1".to_owned()),
            any::<String>(),
        ]),
        shared_keys in proptest::collection::vec("[ -~]{0,40}", 0..3),
        raw_body in proptest::collection::vec(any::<u8>(), 0..512),
        url_tail in "[ -~]{0,80}",
    ) {
        let validator = RequestValidator::new("test-auth-token-0123456789abcdef")
            .with_shared_keys(shared_keys.into_iter().map(Into::into).collect());
        let url = format!("{URL}{url_tail}");
        for payload in [Payload::Form(&params), Payload::Body(&raw_body)] {
            let outcome = validator.validate_with_settings(&url, payload, signature.as_deref(), settings.as_deref());
            prop_assert!(outcome.is_err(), "a made-up signature passed for {payload:?}");
        }
    }

    #[test]
    fn the_signature_twilio_computes_passes_whatever_the_fields(
        params in proptest::collection::vec((any::<String>(), any::<String>()), 0..MAX_FIELDS),
    ) {
        let validator = RequestValidator::new("test-auth-token-0123456789abcdef");
        let signature = validator.signature(URL, &params);
        prop_assert_eq!(validator.validate(URL, Payload::Form(&params), Some(&signature)), Ok(()));
    }
}
