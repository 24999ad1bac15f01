//! Twilio's recording media, OpenAI and a CRM receiver, faked over HTTP with
//! their documented shapes, scriptable per test: queue failures per endpoint,
//! count hits, read what was sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use switchboard::ai::{OpenAi, TokenPrices};
use switchboard::crm::CrmWebhook;
use switchboard::recording_fetch::{BasicAuth, Loopback, RecordingDownloader};
use switchboard_jobs::ports::{Ports, RecordingStore};

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "twilio-test-token";
/// A Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
pub const CRM_SECRET: &str = "whsec_pEyBdIa0JHXFfFDPBJ9AYMZSLXHuqVD+3FhBO2z2RZo=";
/// 0.15 and 0.60 US dollars per million tokens.
pub const PRICES: TokenPrices = TokenPrices { input_micro_usd_per_mtok: 150_000, output_micro_usd_per_mtok: 600_000 };

/// The fake endpoints, by the name tests script them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Recording,
    Transcription,
    Chat,
    Crm,
}

/// A response to play instead of the happy one.
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Canned {
    pub fn openai_error(status: u16, code: &str, message: &str) -> Self {
        let body = json!({ "error": { "message": message, "type": code, "param": null, "code": code } });
        Self { status, headers: vec![("x-request-id", "req_failed".to_owned())], body: body.to_string() }
    }

    /// A 200 chat completion that is not the happy answer (refusal, truncation, bad values).
    pub fn chat(content: Value, refusal: Value, finish_reason: &str) -> Self {
        let body = chat_completion(content, refusal, finish_reason).to_string();
        Self { status: 200, headers: vec![("content-type", "application/json".to_owned())], body }
    }

    pub fn status(status: u16) -> Self {
        Self { status, headers: vec![], body: String::new() }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn into_response(self) -> Response {
        let mut response = (StatusCode::from_u16(self.status).unwrap(), self.body).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }
}

/// A chat completion as OpenAI shapes it.
pub fn chat_completion(content: Value, refusal: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_763_700_000, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": refusal, "annotations": [] },
                      "logprobs": null, "finish_reason": finish_reason }],
        "usage": { "prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200 },
        "system_fingerprint": "fp_test"
    })
}

/// One request the CRM receiver got, with its Standard Webhooks headers.
#[derive(Debug, Clone)]
pub struct CrmDelivery {
    /// `webhook-id`
    pub delivery_id: String,
    /// `webhook-timestamp`
    pub timestamp: String,
    /// `webhook-signature`
    pub signature: String,
    pub body: Vec<u8>,
}

impl CrmDelivery {
    /// Checked as a Standard Webhooks receiver does, by the specification and
    /// not by our code: the timestamp within five minutes of `now` (Unix
    /// seconds), and a `v1,` signature equal to the base64 HMAC-SHA256 of
    /// `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64 after `whsec_`.
    pub fn verify(&self, secret: &str, now: i64) -> Result<(), &'static str> {
        use hmac::{Hmac, KeyInit, Mac};
        let timestamp: i64 = self.timestamp.parse().map_err(|_| "webhook-timestamp is not a number")?;
        if (now - timestamp).abs() > 5 * 60 {
            return Err("webhook-timestamp is more than five minutes away: a replay");
        }
        let engine = base64::engine::general_purpose::STANDARD;
        let key = engine.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.", self.delivery_id, self.timestamp).as_bytes());
        mac.update(&self.body);
        let signed =
            self.signature.split(' ').filter_map(|s| s.strip_prefix("v1,")).filter_map(|s| engine.decode(s).ok());
        let mut signatures = signed.collect::<Vec<_>>().into_iter();
        signatures
            .any(|signature| mac.clone().verify_slice(&signature).is_ok())
            .then_some(())
            .ok_or("no signature matches")
    }
}

struct Script {
    failures: HashMap<Endpoint, VecDeque<Canned>>,
    hits: HashMap<Endpoint, usize>,
    recording: Bytes,
    transcript: String,
    insight: Value,
    transcription_requests: Vec<String>,
    chat_requests: Vec<Value>,
    crm: Vec<CrmDelivery>,
}

impl Script {
    /// Counts the hit; the next scripted failure, if any.
    fn hit(&mut self, endpoint: Endpoint) -> Option<Response> {
        *self.hits.entry(endpoint).or_default() += 1;
        self.failures.get_mut(&endpoint)?.pop_front().map(Canned::into_response)
    }
}

#[derive(Clone)]
pub struct Fakes {
    pub base_url: String,
    script: Arc<Mutex<Script>>,
}

pub const TRANSCRIPT: &str = "Hello, main Rahul bol raha hoon. Mujhe Whitefield mein ek 3BHK flat chahiye, \
budget around 80 lakh to 1.2 crore. Home loan bhi lagega. Next month tak decide karna hai, site visit book kar dijiye.";

/// The model's answer for [`TRANSCRIPT`].
pub fn hot_insight() -> Value {
    json!({
        "customer_name": "Rahul", "customer_email": null,
        "budget_min_inr": 8_000_000, "budget_max_inr": 12_000_000,
        "preferred_locations": ["Whitefield"], "property_type": "apartment", "property_size": "3BHK",
        "purpose": "end_use", "timeline": "1-3 months", "financing_needed": true,
        "sentiment": "positive", "sentiment_score": 0.7,
        "intents": ["buy", "site visit"], "key_topics": ["3BHK", "home loan"], "pain_points": [], "objections": [],
        "summary": "Rahul wants a 3BHK in Whitefield for 80 lakh to 1.2 crore with a home loan, deciding within a month.",
        "lead_score": 82, "conversion_probability": 60,
        "next_best_action": "Book a site visit in Whitefield", "next_action_due_in_days": 2
    })
}

impl Fakes {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script {
            failures: HashMap::new(),
            hits: HashMap::new(),
            recording: Bytes::from(fake_mp3(64 * 1024)),
            transcript: TRANSCRIPT.to_owned(),
            insight: hot_insight(),
            transcription_requests: vec![],
            chat_requests: vec![],
            crm: vec![],
        }));
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Recordings/{file}", get(recording))
            .route("/exotel/recordings/{file}", get(exotel_recording))
            .route("/v1/audio/transcriptions", post(transcription))
            .route("/v1/chat/completions", post(chat))
            .route("/crm", post(crm))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base_url, script }
    }

    pub fn fail(&self, endpoint: Endpoint, canned: Canned) {
        self.script.lock().unwrap().failures.entry(endpoint).or_default().push_back(canned);
    }

    pub fn hits(&self, endpoint: Endpoint) -> usize {
        self.script.lock().unwrap().hits.get(&endpoint).copied().unwrap_or(0)
    }

    pub fn set_recording(&self, body: Vec<u8>) {
        self.script.lock().unwrap().recording = Bytes::from(body);
    }

    pub fn recording(&self) -> Bytes {
        self.script.lock().unwrap().recording.clone()
    }

    /// What speech-to-text hears (else [`TRANSCRIPT`]).
    pub fn set_transcript(&self, transcript: &str) {
        self.script.lock().unwrap().transcript = transcript.to_owned();
    }

    pub fn set_insight(&self, insight: Value) {
        self.script.lock().unwrap().insight = insight;
    }

    /// The raw multipart bodies sent to the transcription endpoint.
    pub fn transcription_requests(&self) -> Vec<String> {
        self.script.lock().unwrap().transcription_requests.clone()
    }

    pub fn chat_requests(&self) -> Vec<Value> {
        self.script.lock().unwrap().chat_requests.clone()
    }

    pub fn crm_deliveries(&self) -> Vec<CrmDelivery> {
        self.script.lock().unwrap().crm.clone()
    }

    /// Twilio's `RecordingUrl` for `recording_sid` (no extension, as in the callback).
    pub fn recording_url(&self, recording_sid: &str) -> String {
        format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}", self.base_url)
    }

    /// The OpenAI adapter pointed at this fake, transcribing with `transcribe_model`.
    pub fn openai(&self, transcribe_model: &str) -> Arc<OpenAi> {
        let base_url = format!("{}/v1", self.base_url);
        let openai = OpenAi::new(
            &base_url,
            "sk-test".to_owned(),
            transcribe_model.to_owned(),
            "gpt-4o-mini".to_owned(),
            PRICES,
            Duration::from_secs(10),
        );
        Arc::new(openai.unwrap())
    }

    /// The real adapters, pointed at these fakes.
    pub fn ports(&self, recordings: Arc<dyn RecordingStore>) -> Ports {
        let twilio = BasicAuth { user: ACCOUNT_SID.to_owned(), secret: AUTH_TOKEN.to_owned() };
        let timeout = Duration::from_secs(10);
        let fetcher =
            RecordingDownloader::new(Some(twilio), None, 100 * 1024 * 1024, timeout, Loopback::Allowed).unwrap();
        let openai = self.openai("whisper-1");
        let crm = CrmWebhook::new(format!("{}/crm", self.base_url), CRM_SECRET, timeout).unwrap();
        Ports {
            recordings: Some(recordings),
            recording_fetcher: Some(Arc::new(fetcher)),
            transcriber: Some(openai.clone()),
            analyzer: Some(openai),
            crm: Some(Arc::new(crm)),
            ..Ports::default()
        }
    }
}

/// An MPEG frame header followed by filler: enough to look like an mp3.
pub fn fake_mp3(len: usize) -> Vec<u8> {
    let mut body = vec![0xFF, 0xFB, 0x90, 0x64];
    body.extend((4..len).map(|i| (i % 251) as u8));
    body
}

type Shared = State<Arc<Mutex<Script>>>;

async fn recording(State(script): Shared, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let mut script = script.lock().unwrap();
    if let Some(failure) = script.hit(Endpoint::Recording) {
        return failure;
    }
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, r#"{"code":20003,"message":"Authenticate","status":401}"#).into_response();
    }
    if !uri.path().ends_with(".mp3") {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([("content-type", "audio/mpeg")], script.recording.clone()).into_response()
}

/// Exotel's recording links are used as given, without our API credentials.
async fn exotel_recording(State(script): Shared, headers: HeaderMap) -> Response {
    let mut script = script.lock().unwrap();
    if let Some(failure) = script.hit(Endpoint::Recording) {
        return failure;
    }
    if headers.contains_key("authorization") {
        return StatusCode::FORBIDDEN.into_response();
    }
    ([("content-type", "audio/x-wav")], script.recording.clone()).into_response()
}

async fn transcription(State(script): Shared, body: Bytes) -> Response {
    let mut script = script.lock().unwrap();
    script.transcription_requests.push(String::from_utf8_lossy(&body).into_owned());
    if let Some(failure) = script.hit(Endpoint::Transcription) {
        return failure;
    }
    let text = script.transcript.clone();
    let verbose = String::from_utf8_lossy(&body).contains("verbose_json");
    let answer = if verbose {
        json!({
            "task": "transcribe", "language": "hindi", "duration": 42.5, "text": text,
            "segments": [{ "id": 0, "seek": 0, "start": 0.0, "end": 6.2, "text": text, "tokens": [50364, 2425],
                           "temperature": 0.0, "avg_logprob": -0.21, "compression_ratio": 1.4, "no_speech_prob": 0.01 }],
            "usage": { "type": "duration", "seconds": 43 }
        })
    } else {
        json!({ "text": text, "usage": { "type": "tokens", "input_tokens": 300, "output_tokens": 60, "total_tokens": 360 } })
    };
    ([("x-request-id", "req_transcribe")], axum::Json(answer)).into_response()
}

async fn chat(State(script): Shared, axum::Json(request): axum::Json<Value>) -> Response {
    let mut script = script.lock().unwrap();
    script.chat_requests.push(request);
    if let Some(failure) = script.hit(Endpoint::Chat) {
        return failure;
    }
    let answer = chat_completion(json!(script.insight.to_string()), Value::Null, "stop");
    ([("x-request-id", "req_chat")], axum::Json(answer)).into_response()
}

async fn crm(State(script): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let mut script = script.lock().unwrap();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    script.crm.push(CrmDelivery {
        delivery_id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
    });
    script.hit(Endpoint::Crm).unwrap_or_else(|| StatusCode::NO_CONTENT.into_response())
}
