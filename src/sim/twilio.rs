//! A Twilio-like provider: its REST API (`Calls.json` to call an agent,
//! `Calls/{sid}.json` to redirect a live call, HTTP Basic auth), recording
//! media behind the same auth, and callers that talk to the web's Twilio
//! webhooks as Twilio does: `X-Twilio-Signature` over the public URL and the
//! form, real parameter names, the IVR `<Gather>` loop, `<Enqueue>` until an
//! agent dequeues them, status events with `SequenceNumber` (sometimes out of
//! order), recording callbacks (sometimes retried with the same
//! `I-Twilio-Idempotency-Token`), voicemail after an overflow redirect; and
//! customers who answer (or miss) the scheduled calls the worker places.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::json;
use tokio::sync::mpsc;

use super::scripts::{self, Script};
use super::{CallPlan, Customers, Exchanges, Target, client, exchange};
use crate::providers::twilio::RequestValidator;

/// What Twilio does to a caller waiting in `<Enqueue>`, on our REST calls.
#[derive(Debug)]
enum Instruction {
    /// An agent leg was created whose TwiML dequeues this caller.
    /// `status_path`: where the leg's statuses go (the `StatusCallback` given, as a path).
    Bridge { agent_leg_sid: String, agent_phone: String, status_path: String },
    /// `Calls/{sid}.json` with a new `Url`.
    Redirect { url: String },
}

#[derive(Default)]
struct Shared {
    /// Callers waiting in their queue, by CallSid.
    waiting: HashMap<String, mpsc::UnboundedSender<Instruction>>,
    /// Recordings made, by RecordingSid.
    recordings: HashMap<String, &'static Script>,
}

#[derive(Clone)]
pub struct TwilioSim {
    /// REST API and media (`TWILIO_API_BASE`).
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
    customers: Customers,
    target: Target,
    exchanges: Exchanges,
}

/// A random Twilio-shaped sid: `CA` + 32 hex digits.
fn sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl TwilioSim {
    /// The account is the target's: what its REST client and its signature checks use.
    pub async fn start(target: &Target, exchanges: &Exchanges, customers: &Customers) -> anyhow::Result<Self> {
        let (listener, base_url) = super::listen().await?;
        let sim = Self {
            base_url,
            shared: Arc::default(),
            customers: customers.clone(),
            target: target.clone(),
            exchanges: exchanges.clone(),
        };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create_call))
            .route("/2010-04-01/Accounts/{account}/Calls/{file}", post(update_call))
            .route("/2010-04-01/Accounts/{account}/Recordings/{file}", get(recording))
            .with_state(sim.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(sim)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let credentials = format!("{}:{}", self.target.twilio_account_sid, self.target.twilio_auth_token);
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
    }

    fn recording_url(&self, recording_sid: &str) -> String {
        format!("{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}", self.base_url, self.target.twilio_account_sid)
    }

    /// `url` as a path, when it is one of the web's public URLs.
    fn path_of(&self, url: &str) -> String {
        url.strip_prefix(&self.target.public_base_url).unwrap_or(url).to_owned()
    }

    /// Rings `customer` for a call the web's worker created (not an agent leg).
    async fn ring(self, call_sid: String, customer: String, follow_up: FollowUp) {
        let answers = self.customers.ring(&customer);
        let script = scripts::by_id(scripts::FOLLOW_UP).expect("the follow-up script exists");
        let plan = CallPlan { script, caller: customer, first_agent_misses: false, messy_delivery: false };
        let mut callee = self.caller(&plan, call_sid);
        callee.status_path = self.path_of(&follow_up.status_callback);
        callee.pick_up(answers, &follow_up).await;
        self.customers.hang_up();
    }

    fn caller<'a>(&'a self, plan: &'a CallPlan, call_sid: String) -> Caller<'a> {
        Caller {
            sim: self,
            target: &self.target,
            plan,
            exchanges: &self.exchanges,
            call_sid,
            status_path: "/webhooks/twilio/status".to_owned(),
            http: client(),
        }
    }

    /// One caller's whole conversation with the web.
    pub async fn call(&self, plan: &CallPlan) {
        let (instructions, mut inbox) = mpsc::unbounded_channel();
        let caller = self.caller(plan, sid("CA"));
        self.shared.lock().expect("twilio sim").waiting.insert(caller.call_sid.clone(), instructions);
        caller.converse(&mut inbox).await;
        self.shared.lock().expect("twilio sim").waiting.remove(&caller.call_sid);
    }
}

struct Caller<'a> {
    sim: &'a TwilioSim,
    target: &'a Target,
    plan: &'a CallPlan,
    exchanges: &'a Exchanges,
    call_sid: String,
    /// Where this call's status events go (the `StatusCallback` we were given, as a path).
    status_path: String,
    http: reqwest::Client,
}

/// The caller leg's last `SequenceNumber` (0 ringing at `/voice`, 1 in progress).
const CALLER_ENDED: i32 = 2;

/// TwiML documents a caller follows before hanging up (menus, queue, redirect, voicemail).
const MAX_STEPS: usize = 6;

impl Caller<'_> {
    /// POSTs `params` to `path_and_query` signed as Twilio signs: the public URL, then the sorted form.
    async fn post(&self, endpoint: &str, path_and_query: &str, params: Vec<(String, String)>) -> Option<String> {
        self.deliver(endpoint, path_and_query, &params, &uuid::Uuid::new_v4().to_string()).await
    }

    /// One delivery of a webhook; Twilio's retries of it carry the same idempotency token.
    async fn deliver(
        &self,
        endpoint: &str,
        path_and_query: &str,
        params: &[(String, String)],
        idempotency_token: &str,
    ) -> Option<String> {
        let signed_url = format!("{}{path_and_query}", self.target.public_base_url);
        let signature = RequestValidator::new(&self.target.twilio_auth_token).signature(&signed_url, params);
        let request = self
            .http
            .post(format!("{}{path_and_query}", self.target.base_url))
            .header("X-Twilio-Signature", signature)
            .header("I-Twilio-Idempotency-Token", idempotency_token)
            .header("User-Agent", "TwilioProxy/1.1")
            .form(params);
        match exchange(self.exchanges, endpoint, request).await {
            Some((status, body)) if status < 400 => Some(body),
            _ => None,
        }
    }

    fn call_params(&self, status: &str) -> Vec<(String, String)> {
        let pairs = [
            ("AccountSid", self.target.twilio_account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", &self.call_sid),
            ("CallStatus", status),
            ("Called", &self.target.our_number),
            ("Caller", &self.plan.caller),
            ("Direction", "inbound"),
            ("From", &self.plan.caller),
            ("FromCountry", "IN"),
            ("To", &self.target.our_number),
            ("ToCountry", "IN"),
        ];
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    async fn converse(&self, inbox: &mut mpsc::UnboundedReceiver<Instruction>) {
        let Some(mut twiml) = self.post("voice", "/webhooks/twilio/voice", self.call_params("ringing")).await else {
            return;
        };
        self.status(&self.call_sid, "in-progress", 1, None, Leg::Caller).await;
        for _ in 0..MAX_STEPS {
            if let Some(action) = gather_action(&twiml) {
                let mut params = self.call_params("in-progress");
                if let Some(digit) = self.plan.script.ivr_digit {
                    params.push(("Digits".into(), digit.into()));
                }
                params.push(("msg".into(), "Gather End".into()));
                let Some(next) = self.post("ivr", &action, params).await else { return };
                twiml = next;
            } else if twiml.contains("<Enqueue") {
                twiml = match self.wait_in_queue(inbox).await {
                    Some(next) => next,
                    None => return,
                };
            } else if twiml.contains("<Record") {
                self.leave_voicemail().await;
                return;
            } else {
                let seconds = self.plan.talk_time(self.target).as_secs().to_string();
                self.status(&self.call_sid, "completed", CALLER_ENDED, Some(&seconds), Leg::Caller).await;
                return;
            }
        }
        // Lost in the menus: the caller hangs up.
        self.status(&self.call_sid, "completed", CALLER_ENDED, Some("0"), Leg::Caller).await;
    }

    /// Waits for the worker to bridge or redirect; the TwiML to go on with, or
    /// `None` when the call ended here.
    async fn wait_in_queue(&self, inbox: &mut mpsc::UnboundedReceiver<Instruction>) -> Option<String> {
        let mut missed = false;
        loop {
            let instruction = match tokio::time::timeout(self.target.patience, inbox.recv()).await {
                Ok(Some(instruction)) => instruction,
                _ => {
                    let waited = self.target.patience.as_secs().to_string();
                    self.status(&self.call_sid, "completed", CALLER_ENDED, Some(&waited), Leg::Caller).await;
                    return None;
                }
            };
            match instruction {
                Instruction::Bridge { agent_leg_sid, agent_phone, status_path } => {
                    let leg = Leg::Agent { phone: &agent_phone, status_path: &status_path };
                    self.status(&agent_leg_sid, "initiated", 0, None, leg).await;
                    self.status(&agent_leg_sid, "ringing", 1, None, leg).await;
                    if self.plan.first_agent_misses && !missed {
                        missed = true;
                        self.status(&agent_leg_sid, "no-answer", 2, Some("0"), leg).await;
                        continue;
                    }
                    self.talk(&agent_leg_sid, leg).await;
                    return None;
                }
                Instruction::Redirect { url } => {
                    let path = url.strip_prefix(&self.target.public_base_url).unwrap_or(&url).to_owned();
                    return self.post("overflow", &path, self.call_params("in-progress")).await;
                }
            }
        }
    }

    /// The agent answers, they talk, both hang up; the agent leg's recording is announced.
    async fn talk(&self, agent_leg_sid: &str, leg: Leg<'_>) {
        let talk = self.plan.talk_time(self.target);
        let seconds = self.plan.script.duration_secs.to_string();
        if !self.plan.messy_delivery {
            self.status(agent_leg_sid, "in-progress", 2, None, leg).await;
        }
        tokio::time::sleep(talk).await;
        self.status(agent_leg_sid, "completed", 3, Some(&seconds), leg).await;
        if self.plan.messy_delivery {
            // Late and stale: SequenceNumber 2 after 3 must change nothing.
            self.status(agent_leg_sid, "in-progress", 2, None, leg).await;
        }
        self.status(&self.call_sid, "completed", CALLER_ENDED, Some(&seconds), Leg::Caller).await;
        self.announce_recording(agent_leg_sid, &sid("RE"), "OutboundAPI").await;
    }

    async fn leave_voicemail(&self) {
        tokio::time::sleep(self.plan.talk_time(self.target) / 2).await;
        let recording_sid = sid("RE");
        let mut params = self.call_params("completed");
        params.extend([
            ("RecordingSid".into(), recording_sid.clone()),
            ("RecordingUrl".into(), self.sim.recording_url(&recording_sid)),
            ("RecordingDuration".into(), self.plan.script.duration_secs.to_string()),
            ("Digits".into(), "hangup".into()),
        ]);
        self.post("hangup", "/webhooks/twilio/hangup", params).await;
        let seconds = self.plan.script.duration_secs.to_string();
        self.status(&self.call_sid, "completed", CALLER_ENDED, Some(&seconds), Leg::Caller).await;
        self.announce_recording(&self.call_sid, &recording_sid, "RecordVerb").await;
    }

    async fn announce_recording(&self, call_sid: &str, recording_sid: &str, source: &str) {
        self.sim.shared.lock().expect("twilio sim").recordings.insert(recording_sid.to_owned(), self.plan.script);
        let params = [
            ("AccountSid", self.target.twilio_account_sid.clone()),
            ("CallSid", call_sid.to_owned()),
            ("RecordingSid", recording_sid.to_owned()),
            ("RecordingUrl", self.sim.recording_url(recording_sid)),
            ("RecordingStatus", "completed".to_owned()),
            ("RecordingDuration", self.plan.script.duration_secs.to_string()),
            ("RecordingChannels", "2".to_owned()),
            ("RecordingSource", source.to_owned()),
            ("RecordingStartTime", chrono::Utc::now().to_rfc2822()),
            ("RecordingTrack", "both".to_owned()),
            ("ErrorCode", "0".to_owned()),
        ];
        let params: Vec<(String, String)> = params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let token = uuid::Uuid::new_v4().to_string();
        // Twilio retries a callback it thinks failed; out-of-order calls get their recording announced twice.
        let deliveries = if self.plan.messy_delivery { 2 } else { 1 };
        for _ in 0..deliveries {
            self.deliver("recording", "/webhooks/twilio/recording", &params, &token).await;
        }
    }

    async fn status(&self, call_sid: &str, status: &str, sequence: i32, duration: Option<&str>, leg: Leg<'_>) {
        let (from, to, direction, path) = match leg {
            Leg::Caller => (self.plan.caller.as_str(), self.target.our_number.as_str(), "inbound", &*self.status_path),
            Leg::Agent { phone, status_path } => (self.target.our_number.as_str(), phone, "outbound-api", status_path),
            Leg::Customer => {
                (self.target.our_number.as_str(), self.plan.caller.as_str(), "outbound-api", &*self.status_path)
            }
        };
        let mut params: Vec<(String, String)> = [
            ("AccountSid", self.target.twilio_account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call_sid),
            ("CallStatus", status),
            ("CallbackSource", "call-progress-events"),
            ("Direction", direction),
            ("From", from),
            ("To", to),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        params.push(("SequenceNumber".into(), sequence.to_string()));
        params.push(("Timestamp".into(), chrono::Utc::now().to_rfc2822()));
        if let Some(seconds) = duration {
            params.push(("CallDuration".into(), seconds.to_owned()));
            params.push(("Duration".into(), seconds.to_owned()));
        }
        self.post("status", path, params).await;
    }

    /// A customer the web's worker called (a scheduled call): the phone rings,
    /// they answer (a human, says machine detection) and the `<Dial>` rings the
    /// agent, who answers and talks until the agent's leg ends (its `<Dial
    /// action>`); or they do not pick up.
    async fn pick_up(&self, answers: bool, follow_up: &FollowUp) {
        self.status(&self.call_sid, "initiated", 0, None, Leg::Customer).await;
        self.status(&self.call_sid, "ringing", 1, None, Leg::Customer).await;
        if !answers {
            self.status(&self.call_sid, "no-answer", 2, Some("0"), Leg::Customer).await;
            return;
        }
        self.status(&self.call_sid, "in-progress", 2, None, Leg::Customer).await;
        if let Some(detection) = &follow_up.machine_detection {
            let mut params = self.customer_params("in-progress");
            params.extend([("AnsweredBy".into(), "human".into()), ("MachineDetectionDuration".into(), "2100".into())]);
            self.post("amd", &self.sim.path_of(detection), params).await;
        }
        tokio::time::sleep(self.plan.talk_time(self.target)).await;
        let seconds = self.plan.script.duration_secs.to_string();
        if let Some(action) = &follow_up.dial_action {
            let mut params = self.customer_params("in-progress");
            params.extend([
                ("DialCallStatus".into(), "completed".into()),
                ("DialCallSid".into(), sid("CA")),
                ("DialCallDuration".into(), seconds.clone()),
            ]);
            self.post("dial", &self.sim.path_of(action), params).await;
        }
        self.status(&self.call_sid, "completed", 3, Some(&seconds), Leg::Customer).await;
        self.announce_recording(&self.call_sid, &sid("RE"), "OutboundAPI").await;
    }

    /// The parameters of a request about the customer's call.
    fn customer_params(&self, status: &str) -> Vec<(String, String)> {
        let pairs = [
            ("AccountSid", self.target.twilio_account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", &self.call_sid),
            ("CallStatus", status),
            ("Direction", "outbound-api"),
            ("From", &self.target.our_number),
            ("To", &self.plan.caller),
        ];
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

/// Where the web asked to hear about a follow-up's legs.
struct FollowUp {
    status_callback: String,
    /// The `<Dial action>` of the TwiML, reporting the agent's leg.
    dial_action: Option<String>,
    /// `AsyncAmdStatusCallback`, when machine detection was asked for.
    machine_detection: Option<String>,
}

#[derive(Clone, Copy)]
enum Leg<'a> {
    /// The inbound caller.
    Caller,
    /// The agent leg `route-call` placed to bridge the caller, and where its statuses go.
    Agent { phone: &'a str, status_path: &'a str },
    /// The customer a scheduled call rings.
    Customer,
}

/// The `action` of the TwiML's first `verb` (`<Gather`, `<Dial`), unescaped
/// (`/webhooks/twilio/ivr?menu=1&attempt=0`).
fn action_of(twiml: &str, verb: &str) -> Option<String> {
    let element = &twiml[twiml.find(verb)?..];
    let start = element.find("action=\"")? + "action=\"".len();
    let end = element[start..].find('"')? + start;
    Some(element[start..end].replace("&amp;", "&"))
}

fn gather_action(twiml: &str) -> Option<String> {
    action_of(twiml, "<Gather")
}

fn dial_action(twiml: &str) -> Option<String> {
    action_of(twiml, "<Dial")
}

/// The CallSid named by `<Queue>` in an agent leg's TwiML.
fn dequeued_caller(twiml: &str) -> Option<&str> {
    let start = twiml.find("<Queue>")? + "<Queue>".len();
    let end = twiml[start..].find("</Queue>")? + start;
    Some(&twiml[start..end])
}

fn unauthorized() -> Response {
    let body = json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn field<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn create_call(
    State(sim): State<TwilioSim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if account != sim.target.twilio_account_sid || !sim.authorized(&headers) {
        return unauthorized();
    }
    let (Some(to), Some(from)) = (field(&form, "To"), field(&form, "From")) else {
        let body = json!({"code": 21201, "message": "No 'To' number is specified", "status": 400});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let call_sid = sid("CA");
    match field(&form, "Twiml").and_then(dequeued_caller) {
        Some(caller) => {
            let shared = sim.shared.lock().expect("twilio sim");
            if let Some(waiting) = shared.waiting.get(caller) {
                let status_callback = field(&form, "StatusCallback").unwrap_or("/webhooks/twilio/status");
                let status_path =
                    status_callback.strip_prefix(&sim.target.public_base_url).unwrap_or(status_callback).to_owned();
                let _ = waiting.send(Instruction::Bridge {
                    agent_leg_sid: call_sid.clone(),
                    agent_phone: to.to_owned(),
                    status_path,
                });
            }
        }
        None => {
            let follow_up = FollowUp {
                status_callback: field(&form, "StatusCallback").unwrap_or("/webhooks/twilio/status").to_owned(),
                dial_action: field(&form, "Twiml").and_then(dial_action),
                machine_detection: field(&form, "AsyncAmdStatusCallback").map(str::to_owned),
            };
            tokio::spawn(sim.clone().ring(call_sid.clone(), to.to_owned(), follow_up));
        }
    }
    let body = json!({"sid": call_sid, "account_sid": account, "to": to, "from": from, "status": "queued",
                      "direction": "outbound-api", "api_version": "2010-04-01"});
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn update_call(
    State(sim): State<TwilioSim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if account != sim.target.twilio_account_sid || !sim.authorized(&headers) {
        return unauthorized();
    }
    let call_sid = file.trim_end_matches(".json");
    let shared = sim.shared.lock().expect("twilio sim");
    let (Some(waiting), Some(url)) = (shared.waiting.get(call_sid), field(&form, "Url")) else {
        let body = json!({"code": 21220, "message": "Call is not in-progress. Cannot redirect.", "status": 400});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let _ = waiting.send(Instruction::Redirect { url: url.to_owned() });
    Json(json!({"sid": call_sid, "status": "in-progress"})).into_response()
}

/// `RecordingUrl` + `.mp3` (or `.wav`), Basic auth as Twilio requires for media.
async fn recording(
    State(sim): State<TwilioSim>,
    Path((_, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !sim.authorized(&headers) {
        return unauthorized();
    }
    let Some(recording_sid) = file.strip_suffix(".mp3") else { return StatusCode::NOT_FOUND.into_response() };
    let script = sim.shared.lock().expect("twilio sim").recordings.get(recording_sid).copied();
    match script {
        Some(script) => ([("content-type", "audio/mpeg")], script.recording()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_actions_and_queues_are_read_from_twiml() {
        let twiml = crate::providers::twiml::gather(7, 1, "Press 1", 5, None);
        assert_eq!(gather_action(&twiml).as_deref(), Some("/webhooks/twilio/ivr?menu=7&attempt=1"));
        assert_eq!(dequeued_caller("<Response><Dial><Queue>CA12</Queue></Dial></Response>"), Some("CA12"));
        let follow_up =
            crate::providers::twiml::dial_agent("+1", "+2", "https://x.test/webhooks/twilio/dial?attempt_id=a");
        assert_eq!(dial_action(&follow_up).as_deref(), Some("https://x.test/webhooks/twilio/dial?attempt_id=a"));
    }
}
