//! An Exotel-like provider: callers run through an ExoML flow against the
//! web's Exotel webhooks, behind the secret path segment: the Passthru
//! applet (GET, `digits` in double quotes, 200 = branch A, 302 = branch B),
//! the Connect applet's "dial whom" request (header `Exotel-Version: 1.0`),
//! the agent or the voicemail applet, then the StatusCallback as JSON with
//! `Legs` (sometimes delivered twice, as Exotel retries). Recordings are
//! served over HTTP at pre-signed-style URLs, as Exotel links them. Its REST
//! API's `Calls/connect.json` (HTTP Basic auth) places the worker's outbound
//! calls: the agent (`From`) is rung first, then the customer (`To`), and the
//! terminal StatusCallback comes back as JSON with the `CustomField` given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use chrono::Utc;
use serde_json::{Value, json};

use super::scripts::{self, Script};
use super::{CallPlan, Customers, Exchanges, Target, client, exchange};

/// The simulated Exotel account the worker's REST client uses.
pub const ACCOUNT_SID: &str = "switchboard-demo";
pub const API_KEY: &str = "demo-exotel-key";
pub const API_TOKEN: &str = "demo-exotel-token";

#[derive(Clone)]
pub struct ExotelSim {
    /// Where recordings and the REST API are served (`EXOTEL_API_BASE`).
    pub base_url: String,
    recordings: Arc<Mutex<HashMap<String, &'static Script>>>,
    customers: Customers,
    target: Target,
    exchanges: Exchanges,
}

/// Exotel's `0` + 10 digits for an Indian E.164 number.
fn local(e164: &str) -> String {
    format!("0{}", e164.trim_start_matches("+91"))
}

/// India time as Exotel writes it: `YYYY-MM-DD HH:mm:ss`, no zone.
fn india_now() -> String {
    Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).format("%Y-%m-%d %H:%M:%S").to_string()
}

impl ExotelSim {
    pub async fn start(target: &Target, exchanges: &Exchanges, customers: &Customers) -> anyhow::Result<Self> {
        let (listener, base_url) = super::listen().await?;
        let sim = Self {
            base_url,
            recordings: Arc::default(),
            customers: customers.clone(),
            target: target.clone(),
            exchanges: exchanges.clone(),
        };
        let app = Router::new()
            .route("/recordings/{file}", get(recording))
            .route("/v1/Accounts/{account}/Calls/connect.json", post(connect))
            .with_state(sim.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(sim)
    }

    /// One caller's flow: Passthru with the IVR key, Connect, the talk or a voicemail, the StatusCallback.
    pub async fn call(&self, plan: &CallPlan) {
        let (target, exchanges) = (&self.target, &self.exchanges);
        let flow = Flow { sim: self, target, plan, exchanges, call_sid: uuid::Uuid::new_v4().simple().to_string() };
        flow.run().await;
    }

    fn recording_url(&self, call_sid: &str) -> String {
        format!("{}/recordings/{call_sid}.mp3", self.base_url)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:{API_TOKEN}"));
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Basic {credentials}").as_str())
    }

    /// A call `Calls/connect.json` placed: the agent answers, then the
    /// customer picks up (or, the first time, maybe not); then the terminal
    /// StatusCallback, as JSON with both legs and the `CustomField`.
    async fn connect_call(self, call: ConnectRequest) {
        let answers = self.customers.ring(&call.to);
        let script = scripts::by_id(scripts::FOLLOW_UP).expect("the follow-up script exists");
        let plan = CallPlan { script, caller: call.to.clone(), first_agent_misses: false, messy_delivery: false };
        tokio::time::sleep(if answers { plan.talk_time(&self.target) } else { plan.talk_time(&self.target) / 4 }).await;
        let duration = if answers { script.duration_secs } else { 0 };
        let (status, customer_status) = if answers { ("completed", "completed") } else { ("no-answer", "no-answer") };
        if answers {
            self.recordings.lock().expect("exotel sim").insert(call.sid.clone(), script);
        }
        let body = json!({
            "CallSid": call.sid, "EventType": "terminal", "Status": status,
            "DateCreated": india_now(), "DateUpdated": india_now(), "StartTime": india_now(), "EndTime": india_now(),
            "To": local(&call.to), "From": local(&call.from), "PhoneNumberSid": local(&call.caller_id),
            "Direction": "outbound-api", "ConversationDuration": duration, "CustomField": call.custom_field,
            "RecordingUrl": if answers { Value::from(self.recording_url(&call.sid)) } else { Value::Null },
            "Legs": [
                { "Number": local(&call.from), "Type": "single", "OnCallDuration": duration, "Status": "completed", "AnsweredBy": "Human" },
                { "Number": local(&call.to), "Type": "single", "OnCallDuration": duration, "Status": customer_status,
                  "AnsweredBy": if answers { "Human" } else { "NA" } },
            ],
        });
        exchange(&self.exchanges, "status", client().post(&call.status_callback).json(&body)).await;
        self.customers.hang_up();
    }
}

/// What the worker asked `Calls/connect.json` for.
struct ConnectRequest {
    sid: String,
    from: String,
    to: String,
    caller_id: String,
    custom_field: Option<String>,
    status_callback: String,
}

struct Flow<'a> {
    sim: &'a ExotelSim,
    target: &'a Target,
    plan: &'a CallPlan,
    exchanges: &'a Exchanges,
    call_sid: String,
}

impl Flow<'_> {
    fn url(&self, applet: &str) -> String {
        format!("{}/webhooks/exotel/{}/{applet}", self.target.base_url, self.target.exotel_secret)
    }

    fn flow_params(&self, call_type: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CallSid", self.call_sid.clone()),
            ("CallFrom", local(&self.plan.caller)),
            ("CallTo", local(&self.target.our_number)),
            ("Direction", "incoming".into()),
            ("Created", india_now()),
            ("DialCallDuration", "0".into()),
            ("StartTime", india_now()),
            ("EndTime", "1970-01-01 05:30:00".into()),
            ("CallType", call_type.into()),
            ("CurrentTime", india_now()),
            ("flow_id", "228761".into()),
            ("tenant_id", "41157".into()),
        ]
    }

    async fn run(&self) {
        let http = client();
        let mut passthru = self.flow_params("call-attempt");
        passthru.push(("digits", self.plan.script.ivr_digit.map_or_else(String::new, |d| format!("\"{d}\""))));
        let Some((200 | 302, _)) =
            exchange(self.exchanges, "voice", http.get(self.url("voice")).query(&passthru)).await
        else {
            return;
        };
        let mut connect = self.flow_params("call-attempt");
        connect.push(("CallStatus", "ringing".into()));
        let request = http.get(self.url("connect")).query(&connect).header("Exotel-Version", "1.0");
        let Some((200, body)) = exchange(self.exchanges, "connect", request).await else { return };
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let agent = answer["destination"]["numbers"][0].as_str().map(str::to_owned);
        let talk = self.plan.talk_time(self.target);
        tokio::time::sleep(if agent.is_some() { talk } else { talk / 2 }).await;
        let status = self.status_callback(agent.as_deref());
        let repeats = if self.plan.messy_delivery { 2 } else { 1 };
        for _ in 0..repeats {
            exchange(self.exchanges, "status", http.post(self.url("status")).json(&status)).await;
        }
    }

    /// The terminal StatusCallback, as JSON with `Legs` (the agent's leg, or none for a voicemail).
    fn status_callback(&self, agent: Option<&str>) -> Value {
        self.sim.recordings.lock().expect("exotel sim").insert(self.call_sid.clone(), self.plan.script);
        let duration = self.plan.script.duration_secs;
        let legs: Vec<Value> = agent
            .map(|number| {
                json!({ "Number": number, "Type": "single", "OnCallDuration": duration, "CallerId": local(&self.target.our_number),
                        "Status": "completed", "AnsweredBy": "Human" })
            })
            .into_iter()
            .collect();
        json!({
            "CallSid": self.call_sid, "EventType": "terminal", "Status": "completed",
            "DateCreated": india_now(), "DateUpdated": india_now(), "StartTime": india_now(), "EndTime": india_now(),
            "To": local(&self.target.our_number), "From": local(&self.plan.caller),
            "PhoneNumberSid": local(&self.target.our_number), "Direction": "inbound",
            "ConversationDuration": duration, "CustomField": null,
            "RecordingUrl": self.sim.recording_url(&self.call_sid),
            "Legs": legs,
        })
    }
}

async fn recording(State(sim): State<ExotelSim>, Path(file): Path<String>) -> Response {
    let script = file.strip_suffix(".mp3").and_then(|sid| sim.recordings.lock().expect("exotel sim").get(sid).copied());
    match script {
        Some(script) => ([("content-type", "audio/mpeg")], script.recording()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Exotel's error body for a request it refuses.
fn refused(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({ "RestException": { "Status": status.as_u16(), "Code": code, "Message": message } })))
        .into_response()
}

async fn connect(
    State(sim): State<ExotelSim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if account != ACCOUNT_SID || !sim.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, 20003, "Authentication is required to view this resource.");
    }
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty()).cloned();
    let (Some(from), Some(to), Some(caller_id)) = (field("From"), field("To"), field("CallerId")) else {
        return refused(StatusCode::BAD_REQUEST, 34001, "From, To and CallerId are required");
    };
    let Some(status_callback) = field("StatusCallback") else {
        return refused(StatusCode::BAD_REQUEST, 34002, "StatusCallback is required by this simulator");
    };
    let call = ConnectRequest {
        sid: uuid::Uuid::new_v4().simple().to_string(),
        from,
        to,
        caller_id,
        custom_field: field("CustomField"),
        status_callback,
    };
    let answer = json!({ "Call": {
        "Sid": call.sid, "ParentCallSid": null, "DateCreated": india_now(), "DateUpdated": india_now(),
        "AccountSid": ACCOUNT_SID, "To": local(&call.to), "From": local(&call.from),
        "PhoneNumberSid": local(&call.caller_id), "Status": "in-progress", "StartTime": india_now(),
        "EndTime": null, "Duration": null, "Price": null, "Direction": "outbound-api", "AnsweredBy": null,
        "Uri": format!("/v1/Accounts/{ACCOUNT_SID}/Calls/{}.json", call.sid), "RecordingUrl": null,
    }});
    tokio::spawn(sim.connect_call(call));
    Json(answer).into_response()
}
