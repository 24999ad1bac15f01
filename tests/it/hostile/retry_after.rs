//! A server asking us to wait a day, in seconds or as an HTTP date: every
//! outside client (the providers' REST APIs, recording downloads, OpenAI, the
//! CRM) reads it with the one parser and waits at most ten minutes, so no job
//! is parked for a day.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::Value;
use switchboard::ai::OpenAi;
use switchboard::crm::CrmWebhook;
use switchboard::providers::rest_client::RestClient;
use switchboard::recording_fetch::{BasicAuth, Loopback, RecordingDownloader};
use switchboard::retry_after::MAX_WAIT;
use switchboard_jobs::ports::{
    Analyzer, Audio, CrmSink, ExtractionRequest, PortError, Provider, RecordingFetcher, RecordingSource, Transcriber,
};

use crate::after_call::fakes::PRICES;

/// `/seconds/...` answers 429 with `Retry-After: 86400`; `/date/...` 503 with
/// an HTTP date a day ahead.
async fn a_server_asking_for_a_day() -> String {
    let app = Router::new()
        .route("/seconds/{*rest}", any(|| async { (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "86400")]) }))
        .route(
            "/date/{*rest}",
            any(|| async {
                let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
                let date = tomorrow.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, date)]).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base_url
}

/// The wait a client's error asks for; it must be a transient one.
fn wait_of(client: &str, error: PortError) -> Option<Duration> {
    match error {
        PortError::Transient { retry_after, .. } => retry_after,
        other => panic!("{client}: {other:?}"),
    }
}

async fn waits_asked_by(base: &str) -> Vec<(&'static str, Option<Duration>)> {
    let rest = RestClient::new("Twilio", "AC1".to_owned(), "token".to_owned(), |_: &Value| String::new());
    let rest = rest.post_form(format!("{base}/2010-04-01/Accounts/AC1/Calls.json"), &[]).await.unwrap_err();

    let twilio = BasicAuth { user: "AC1".to_owned(), secret: "token".to_owned() };
    let fetcher = RecordingDownloader::new(Some(twilio), None, 1 << 20, Duration::from_secs(5), Loopback::Allowed);
    let source = RecordingSource { provider: Provider::Twilio, url: format!("{base}/Recordings/RE1") };
    let recording = fetcher.unwrap().download(&source).await.unwrap_err();

    let openai = OpenAi::new(
        &format!("{base}/v1"),
        "sk-test".to_owned(),
        "whisper-1".to_owned(),
        "gpt-4o-mini".to_owned(),
        PRICES,
        Duration::from_secs(5),
    )
    .unwrap();
    let audio = Audio { body: vec![0xFF, 0xFB], filename: "RE1.mp3".to_owned() };
    let transcription = openai.transcribe(audio).await.unwrap_err();
    let request = ExtractionRequest {
        system_prompt: "Extract.",
        transcript: "Hello",
        schema_name: "call_insight",
        schema: serde_json::json!({ "type": "object" }),
    };
    let extraction = openai.extract(&request).await.unwrap_err();

    let crm =
        CrmWebhook::new(format!("{base}/crm"), crate::after_call::fakes::CRM_SECRET, Duration::from_secs(5)).unwrap();
    let crm = crm.deliver("d1", &serde_json::json!({})).await.unwrap_err();

    vec![
        ("REST API", wait_of("REST API", rest)),
        ("recording", wait_of("recording", recording)),
        ("transcription", wait_of("transcription", transcription)),
        ("extraction", wait_of("extraction", extraction)),
        ("CRM", wait_of("CRM", crm)),
    ]
}

#[tokio::test]
async fn a_day_asked_for_in_seconds_or_as_an_http_date_is_waited_ten_minutes_by_every_client() {
    let base = a_server_asking_for_a_day().await;
    for form in ["seconds", "date"] {
        let waits = waits_asked_by(&format!("{base}/{form}")).await;
        let capped: Vec<_> = waits.iter().map(|(client, _)| (*client, Some(MAX_WAIT))).collect();
        assert_eq!(waits, capped, "Retry-After as {form}");
    }
}
