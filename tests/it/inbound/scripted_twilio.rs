//! Twilio's create-call API faked over HTTP for the races around a bridge:
//! before answering a request, the fake runs the test's step for it (what
//! Twilio or the world does meanwhile: deliver the new leg's first status,
//! the caller hanging up, the job running again), then answers with the leg's
//! sid. Updates of a call (`Calls/{sid}.json`, e.g. `Status=completed`) are recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Json, Router};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::world::call_sid;

/// A create-call request, with the sid the fake gives the new leg.
#[derive(Debug, Clone)]
pub struct Created {
    pub leg_sid: String,
    pub to: String,
    /// As sent: the public URL Twilio would call.
    pub status_callback: String,
}

/// What happens between a create-call request and its answer.
pub type Step = Box<dyn FnOnce(Created) -> BoxFuture<'static, ()> + Send>;

#[derive(Clone, Default)]
pub struct ScriptedTwilio {
    pub base_url: String,
    created: Arc<Mutex<Vec<Created>>>,
    /// One step per request, in order; requests beyond them are answered at once.
    steps: Arc<Mutex<VecDeque<Step>>>,
    /// The calls updated with `Status=completed` (hung up), in order.
    ended: Arc<Mutex<Vec<String>>>,
}

impl ScriptedTwilio {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Self { base_url: format!("http://{}", listener.local_addr().unwrap()), ..Self::default() };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create_call))
            .route("/2010-04-01/Accounts/{account}/Calls/{file}", post(update_call))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// Runs `step` before answering the next request that has no step yet.
    pub fn then(&self, step: impl FnOnce(Created) -> BoxFuture<'static, ()> + Send + 'static) {
        self.steps.lock().unwrap().push_back(Box::new(step));
    }

    pub fn created(&self) -> Vec<Created> {
        self.created.lock().unwrap().clone()
    }

    /// The calls updated with `Status=completed` (hung up), in order.
    pub fn ended(&self) -> Vec<String> {
        self.ended.lock().unwrap().clone()
    }
}

async fn update_call(
    State(fake): State<ScriptedTwilio>,
    Path((_, file)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    let sid = file.trim_end_matches(".json").to_owned();
    if form.iter().any(|(k, v)| k == "Status" && v == "completed") {
        fake.ended.lock().unwrap().push(sid.clone());
    }
    Json(json!({"sid": sid, "status": "completed"}))
}

async fn create_call(
    State(fake): State<ScriptedTwilio>,
    Form(form): Form<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let created = {
        let mut all = fake.created.lock().unwrap();
        let created = Created {
            leg_sid: call_sid(1000 + all.len() as u32),
            to: get("To"),
            status_callback: get("StatusCallback"),
        };
        all.push(created.clone());
        created
    };
    let step = fake.steps.lock().unwrap().pop_front();
    if let Some(step) = step {
        step(created.clone()).await;
    }
    (StatusCode::CREATED, Json(json!({"sid": created.leg_sid, "status": "queued"})))
}
