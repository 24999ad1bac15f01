//! An Exotel-like provider: callers run through an ExoML flow against the
//! web's Exotel webhooks, behind the secret path segment: the Passthru
//! applet (GET, `digits` in double quotes, 200 = branch A, 302 = branch B),
//! the Connect applet's "dial whom" request (header `Exotel-Version: 1.0`),
//! the agent or the voicemail applet, then the StatusCallback as JSON with
//! `Legs` (sometimes delivered twice, as Exotel retries). Recordings are
//! served over HTTP at pre-signed-style URLs, as Exotel links them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};

use super::scripts::Script;
use super::{CallPlan, Exchanges, Target, client, exchange};

#[derive(Clone)]
pub struct ExotelSim {
    /// Where recordings are served.
    pub base_url: String,
    recordings: Arc<Mutex<HashMap<String, &'static Script>>>,
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
    pub async fn start(target: &Target, exchanges: &Exchanges) -> anyhow::Result<Self> {
        let (listener, base_url) = super::listen().await?;
        let sim = Self { base_url, recordings: Arc::default(), target: target.clone(), exchanges: exchanges.clone() };
        let app = Router::new().route("/recordings/{file}", get(recording)).with_state(sim.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(sim)
    }

    /// One caller's flow: Passthru with the IVR key, Connect, the talk or a voicemail, the StatusCallback.
    pub async fn call(&self, plan: &CallPlan) {
        let (target, exchanges) = (&self.target, &self.exchanges);
        let flow = Flow { sim: self, target, plan, exchanges, call_sid: uuid::Uuid::new_v4().simple().to_string() };
        flow.run().await;
    }
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
            "RecordingUrl": format!("{}/recordings/{}.mp3", self.sim.base_url, self.call_sid),
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
