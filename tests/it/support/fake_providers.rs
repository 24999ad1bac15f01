//! Twilio's and Exotel's REST APIs faked at the HTTP level on one loopback
//! port: records every request; `To` numbers ending in 400 or 503 get those
//! errors, in each provider's own error shape. A GET is answered with what
//! the test put at that path and query ([`FakeProviders::serve`]: a call
//! resource, Call Details), else 404. Recordings under `/recordings/` are
//! served like Exotel's pre-signed S3 links: the ones the test put there,
//! any other as expired (403).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Received {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct FakeProviders {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    resources: Arc<Mutex<HashMap<String, Value>>>,
    recordings: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl FakeProviders {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Self { base_url: format!("http://{}", listener.local_addr().unwrap()), ..Self::default() };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create_call).get(resource))
            .route("/2010-04-01/Accounts/{account}/Calls/{sid}", post(update_call).get(resource))
            .route("/v1/Accounts/{account}/Calls/connect.json", post(connect_call))
            .route("/v1/Accounts/{account}/Calls/{sid}", get(resource))
            .route("/recordings/{file}", get(recording))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// Answers GETs of `path_and_query` (exactly as the client sends it) with `body`.
    pub fn serve(&self, path_and_query: &str, body: Value) {
        self.resources.lock().unwrap().insert(path_and_query.to_owned(), body);
    }

    /// Serves `/recordings/{file}` (any query) as `audio/mpeg`.
    pub fn serve_recording(&self, file: &str, audio: Vec<u8>) {
        self.recordings.lock().unwrap().insert(file.to_owned(), audio);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The requests that created calls, at either provider, in order.
    pub fn placed(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path.ends_with("/Calls.json") || r.path.ends_with("/connect.json"))
            .collect()
    }

    fn record(&self, path: String, headers: &HeaderMap, form: Vec<(String, String)>) -> Received {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let received = Received { path, authorization, form };
        self.received.lock().unwrap().push(received.clone());
        received
    }
}

/// How one provider words its answers to a call request.
struct Dialect {
    created: StatusCode,
    call: fn(usize, &Received) -> Value,
    error: fn(StatusCode) -> Value,
}

const TWILIO: Dialect = Dialect {
    created: StatusCode::CREATED,
    call: |n, _| json!({"sid": format!("CA{n:032x}"), "status": "queued"}),
    error: |status| match status {
        StatusCode::BAD_REQUEST => json!({"code": 21211, "message": "The 'To' number is not a valid phone number."}),
        other => json!({"code": 20000 + other.as_u16(), "message": other.canonical_reason()}),
    },
};

const EXOTEL: Dialect = Dialect {
    created: StatusCode::OK,
    call: |n, received| {
        let call = json!({"Sid": format!("exo{n:029x}"), "Status": "in-progress", "To": received.get("To"), "From": received.get("From")});
        json!({ "Call": call })
    },
    error: |status| match status {
        StatusCode::BAD_REQUEST => {
            json!({"RestException": {"Status": 400, "Code": 34001, "Message": "To is not a valid phone number"}})
        }
        other => json!({"RestException": {"Status": other.as_u16(), "Message": other.canonical_reason()}}),
    },
};

/// Records the request; a `To` ending in 400, 500 or 503 gets that error, any other a new call.
fn place_call(
    fake: &FakeProviders,
    path: String,
    headers: &HeaderMap,
    form: Vec<(String, String)>,
    dialect: &Dialect,
) -> (StatusCode, Json<Value>) {
    let received = fake.record(path, headers, form);
    let to = received.get("To").unwrap_or_default();
    let errors = [StatusCode::BAD_REQUEST, StatusCode::INTERNAL_SERVER_ERROR, StatusCode::SERVICE_UNAVAILABLE];
    match errors.into_iter().find(|s| to.ends_with(s.as_str())) {
        Some(status) => (status, Json((dialect.error)(status))),
        None => {
            let n = fake.received.lock().unwrap().len();
            (dialect.created, Json((dialect.call)(n, &received)))
        }
    }
}

async fn create_call(
    State(fake): State<FakeProviders>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    place_call(&fake, format!("/2010-04-01/Accounts/{account}/Calls.json"), &headers, form, &TWILIO)
}

async fn update_call(
    State(fake): State<FakeProviders>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    fake.record(format!("/2010-04-01/Accounts/{account}/Calls/{sid}"), &headers, form);
    Json(json!({"sid": sid.trim_end_matches(".json"), "status": "in-progress"}))
}

/// A GET: what the test put there, recorded with its path and query.
async fn resource(State(fake): State<FakeProviders>, uri: Uri, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()).to_owned();
    fake.record(path_and_query.clone(), &headers, Vec::new());
    match fake.resources.lock().unwrap().get(&path_and_query) {
        Some(body) => (StatusCode::OK, Json(body.clone())),
        None => {
            (StatusCode::NOT_FOUND, Json(json!({"code": 20404, "message": "The requested resource was not found"})))
        }
    }
}

/// A recording link: the audio the test put there, else S3's answer to an expired pre-signed URL.
async fn recording(
    State(fake): State<FakeProviders>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    fake.record(uri.to_string(), &headers, Vec::new());
    match fake.recordings.lock().unwrap().get(&file) {
        Some(audio) => ([(header::CONTENT_TYPE, "audio/mpeg")], audio.clone()).into_response(),
        None => {
            let expired = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
            (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/xml")], expired).into_response()
        }
    }
}

async fn connect_call(
    State(fake): State<FakeProviders>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    place_call(&fake, format!("/v1/Accounts/{account}/Calls/connect.json"), &headers, form, &EXOTEL)
}
