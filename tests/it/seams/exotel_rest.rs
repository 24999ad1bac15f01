//! The Exotel REST client and the telephony router, against a fake Exotel
//! (and Twilio) API on a loopback port; and what the clients make of a
//! provider that takes a request but answers it badly or not at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use switchboard::config::ExotelConfig;
use switchboard::providers::exotel_rest::ExotelRest;
use switchboard::providers::telephony_router::TelephonyRouter;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::ports::{OutboundCall, PortError, Provider, Telephony};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
        ("TimeLimit", "14400"),
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

#[tokio::test]
async fn ending_a_call_is_twilios_status_completed_and_refused_by_exotel() {
    let fake = FakeProviders::start().await;
    let router = TelephonyRouter {
        twilio: Some(Arc::new(TwilioRest::new(twilio_config(&fake.base_url)))),
        exotel: Some(Arc::new(ExotelRest::new(exotel_config(&fake.base_url)))),
    };
    let leg = "CA0123456789abcdef0123456789abcdef";

    router.end_call(Provider::Twilio, leg).await.expect("Twilio ends the call");
    let exotel = router.end_call(Provider::Exotel, "b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d").await.unwrap_err();

    let [request] = fake.received().try_into().expect("one request, to Twilio");
    assert_eq!(request.path, format!("/2010-04-01/Accounts/ACtest/Calls/{leg}.json"));
    assert_eq!((request.get("Status"), request.form.len()), (Some("completed"), 1));
    assert!(request.authorization.is_some_and(|auth| auth.starts_with("Basic ")));
    assert!(matches!(exotel, PortError::Permanent { .. }), "{exotel:?}");
}

/// A provider API that reads each request in full, counts it, then writes
/// `answer` as is (nothing, or a broken HTTP response) and hangs up.
pub struct RawProvider {
    pub base_url: String,
    requests: Arc<AtomicUsize>,
}

impl RawProvider {
    pub async fn answering(answer: impl Into<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, answer) = (requests.clone(), answer.into());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (counted, answer) = (counted.clone(), answer.clone());
                tokio::spawn(async move {
                    if read_request(&mut socket).await.is_ok() {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        Self { base_url, requests }
    }

    /// How many requests arrived whole.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP request: its head, then as many body bytes as it announces.
async fn read_request(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&chunk[..read]);
        let Some(head_end) = received.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
        let body_length: usize =
            head.lines().find_map(|line| line.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
        if received.len() >= head_end + 4 + body_length {
            return Ok(());
        }
    }
}

/// A complete HTTP/1.1 response with a JSON body.
fn http(status_line: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn exotel_taking_the_request_and_hanging_up_unanswered_is_an_unknown_outcome_after_one_request() {
    let silent = RawProvider::answering("").await;
    let exotel = ExotelRest::new(exotel_config(&silent.base_url));

    let error = exotel.place_call(&connect(CUSTOMER)).await.unwrap_err();

    assert!(matches!(error, PortError::OutcomeUnknown { .. }), "the call may exist: {error:?}");
    assert_eq!(silent.requests(), 1);
}

#[tokio::test]
async fn exotel_accepting_with_a_cut_off_or_sidless_answer_or_failing_with_a_500_is_an_unknown_outcome() {
    let cut_off =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"Call\": {\"Sid\": \"exo";
    let answers = [
        cut_off.to_owned(),
        http("200 OK", r#"{"Call": {"Status": "in-progress"}}"#),
        http("200 OK", "<TwilioResponse/>"),
        http("500 Internal Server Error", r#"{"RestException": {"Status": 500, "Message": "Internal error"}}"#),
    ];
    for answer in answers {
        let provider = RawProvider::answering(answer.clone()).await;
        let error =
            ExotelRest::new(exotel_config(&provider.base_url)).place_call(&connect(CUSTOMER)).await.unwrap_err();
        assert!(matches!(error, PortError::OutcomeUnknown { .. }), "{answer:?}: {error:?}");
    }
}

#[tokio::test]
async fn twilio_accepting_a_call_without_its_sid_is_an_unknown_outcome_not_a_refusal() {
    let provider = RawProvider::answering(http("201 Created", r#"{"status": "queued"}"#)).await;
    let twilio = TwilioRest::new(twilio_config(&provider.base_url));
    let call = OutboundCall { provider: Provider::Twilio, from: None, ..connect(CUSTOMER) };

    let error = twilio.place_call(&call).await.unwrap_err();

    assert!(matches!(&error, PortError::OutcomeUnknown { message } if message.contains("no call sid")), "{error:?}");
}

#[tokio::test]
async fn exotel_rate_limiting_is_a_retry_after_the_time_it_names() {
    let answer = http("429 Too Many Requests", r#"{"RestException": {"Status": 429, "Message": "Slow down"}}"#)
        .replacen("Connection: close", "Retry-After: 7\r\nConnection: close", 1);
    let provider = RawProvider::answering(answer).await;

    let error = ExotelRest::new(exotel_config(&provider.base_url)).place_call(&connect(CUSTOMER)).await.unwrap_err();

    assert!(
        matches!(error, PortError::Transient { retry_after: Some(after), .. } if after.as_secs() == 7),
        "{error:?}"
    );
}
