//! The Exotel REST client and the telephony router, against a fake Exotel
//! (and Twilio) API on a loopback port.

use std::sync::Arc;

use base64::Engine;
use switchboard::config::ExotelConfig;
use switchboard::providers::exotel_rest::ExotelRest;
use switchboard::providers::telephony_router::TelephonyRouter;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::ports::{OutboundCall, PortError, Provider, Telephony};

use crate::inbound::world::twilio_config;
use crate::support::fake_providers::FakeProviders;

pub const EXOTEL_SID: &str = "switchboard1";
pub const EXOPHONE: &str = "+918047112233";
const AGENT: &str = "+919812345678";
const CUSTOMER: &str = "+919876543210";

pub fn exotel_config(api_base: &str) -> ExotelConfig {
    ExotelConfig {
        account_sid: EXOTEL_SID.into(),
        api_key: "exotel-key".into(),
        api_token: "exotel-token".into(),
        api_base: api_base.into(),
    }
}

fn connect(to: &str) -> OutboundCall {
    OutboundCall {
        provider: Provider::Exotel,
        from: Some(AGENT.into()),
        to: to.into(),
        caller_id: EXOPHONE.into(),
        twiml: None,
        custom_field: Some("attempt-7".into()),
        status_callback: "https://switchboard.test/webhooks/exotel/secret/status".into(),
        record: true,
    }
}

#[tokio::test]
async fn exotel_connect_sends_agent_first_customer_second_with_exophone_custom_field_and_json_terminal_callback() {
    let fake = FakeProviders::start().await;
    let exotel = ExotelRest::new(exotel_config(&fake.base_url));

    let placed = exotel.place_call(&connect(CUSTOMER)).await.expect("Exotel accepts the call");

    let [request] = fake.placed().try_into().expect("one request");
    assert!(placed.call_sid.starts_with("exo"), "the sid is Exotel's Call.Sid: {}", placed.call_sid);
    assert_eq!(request.path, format!("/v1/Accounts/{EXOTEL_SID}/Calls/connect.json"));
    let basic = base64::engine::general_purpose::STANDARD.encode("exotel-key:exotel-token");
    assert_eq!(request.authorization.as_deref(), Some(format!("Basic {basic}").as_str()));
    let expected = [
        ("From", AGENT),
        ("To", CUSTOMER),
        ("CallerId", EXOPHONE),
        ("CallType", "trans"),
        ("Record", "true"),
        ("CustomField", "attempt-7"),
        ("StatusCallback", "https://switchboard.test/webhooks/exotel/secret/status"),
        ("StatusCallbackEvents[0]", "terminal"),
        ("StatusCallbackContentType", "application/json"),
    ];
    for (name, value) in expected {
        assert_eq!(request.get(name), Some(value), "{name}");
    }
}

#[tokio::test]
async fn exotel_4xx_is_permanent_with_exotels_message_and_5xx_is_transient() {
    let fake = FakeProviders::start().await;
    let exotel = ExotelRest::new(exotel_config(&fake.base_url));

    let refused = exotel.place_call(&connect("+919876543400")).await.unwrap_err();
    let unavailable = exotel.place_call(&connect("+919876543503")).await.unwrap_err();

    let PortError::Permanent { message } = refused else { panic!("400 must be permanent: {refused:?}") };
    assert!(message.contains("To is not a valid phone number"), "{message}");
    assert!(message.contains("34001"), "{message}");
    assert!(matches!(unavailable, PortError::Transient { .. }), "503 must be transient: {unavailable:?}");
}

#[tokio::test]
async fn unreachable_exotel_is_transient() {
    let exotel = ExotelRest::new(exotel_config("http://127.0.0.1:9"));

    let error = exotel.place_call(&connect(CUSTOMER)).await.unwrap_err();

    assert!(
        matches!(&error, PortError::Transient { message, .. } if message.contains("Exotel unreachable")),
        "{error:?}"
    );
}

#[tokio::test]
async fn exotel_call_without_an_agent_is_refused_before_any_request() {
    let fake = FakeProviders::start().await;
    let exotel = ExotelRest::new(exotel_config(&fake.base_url));

    let error = exotel.place_call(&OutboundCall { from: None, ..connect(CUSTOMER) }).await.unwrap_err();

    assert!(matches!(error, PortError::Permanent { .. }), "{error:?}");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn router_sends_each_call_to_the_provider_it_names() {
    let fake = FakeProviders::start().await;
    let router = TelephonyRouter {
        twilio: Some(Arc::new(TwilioRest::new(twilio_config(&fake.base_url)))),
        exotel: Some(Arc::new(ExotelRest::new(exotel_config(&fake.base_url)))),
    };
    let twilio_call = OutboundCall { provider: Provider::Twilio, from: None, ..connect(CUSTOMER) };

    router.place_call(&connect(CUSTOMER)).await.unwrap();
    router.place_call(&twilio_call).await.unwrap();

    let paths: Vec<String> = fake.placed().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [format!("/v1/Accounts/{EXOTEL_SID}/Calls/connect.json"), "/2010-04-01/Accounts/ACtest/Calls.json".to_owned()]
    );
}

#[tokio::test]
async fn router_refuses_a_provider_that_is_not_configured_naming_its_variables() {
    let fake = FakeProviders::start().await;
    let router =
        TelephonyRouter { twilio: Some(Arc::new(TwilioRest::new(twilio_config(&fake.base_url)))), exotel: None };

    let error = router.place_call(&connect(CUSTOMER)).await.unwrap_err();
    let redirect = TelephonyRouter::default().redirect_call("CA1", "/webhooks/twilio/overflow").await.unwrap_err();

    let PortError::Permanent { message } = error else { panic!("must be permanent: {error:?}") };
    assert!(message.contains("EXOTEL_ACCOUNT_SID"), "{message}");
    assert!(fake.received().is_empty());
    assert!(
        matches!(&redirect, PortError::Permanent { message } if message.contains("TWILIO_AUTH_TOKEN")),
        "{redirect:?}"
    );
}
