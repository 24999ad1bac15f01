//! Twilio's REST API as our `Telephony` port: create calls (limited to
//! [`CALL_TIME_LIMIT`], which the outbound watchdog relies on) and redirect
//! live ones, through the shared [`RestClient`] (form POSTs, Basic auth,
//! errors classified by what retrying would do); look calls up and end them
//! (`Status=completed`). A call bridging an agent
//! (an outbound follow-up) dials the agent once the customer answers, with a
//! `<Dial action>` reporting the agent's leg, and (unless switched off)
//! asynchronous answering-machine detection reporting who answered.

use secrecy::ExposeSecret;
use serde_json::Value;
use switchboard_jobs::outbound::watchdog::CALL_TIME_LIMIT;
use switchboard_jobs::ports::{
    CallDetails, LegDetails, OutboundCall, PlacedCall, PortError, PortFuture, Provider, Telephony,
};

use super::rest_client::RestClient;
use super::twilio_legs::{DIAL_ACTION_PATH, MACHINE_DETECTION_PATH};
use super::twiml;
use crate::config::TwilioConfig;

pub struct TwilioRest {
    rest: RestClient,
    config: TwilioConfig,
    machine_detection: bool,
}

impl TwilioRest {
    /// A client whose follow-ups ask for answering-machine detection.
    pub fn new(config: TwilioConfig) -> Self {
        let rest = RestClient::new(
            "Twilio",
            config.account_sid.clone(),
            config.auth_token.expose_secret().to_owned(),
            twilio_error,
        );
        Self { rest, config, machine_detection: true }
    }

    /// Whether follow-ups ask for answering-machine detection (`TWILIO_MACHINE_DETECTION`; billed per call).
    pub fn with_machine_detection(mut self, enabled: bool) -> Self {
        self.machine_detection = enabled;
        self
    }

    /// A path such as `/webhooks/twilio/status` becomes a URL Twilio can reach.
    fn public_url(&self, url: &str) -> String {
        if url.starts_with('/') { format!("{}{url}", self.config.public_base_url) } else { url.to_owned() }
    }

    /// The status callback URL, with `attempt_id` echoing the call's custom field.
    fn status_callback(&self, call: &OutboundCall) -> String {
        self.with_attempt(&call.status_callback, call)
    }

    /// `url` made public, with `attempt_id` echoing the call's custom field.
    fn with_attempt(&self, url: &str, call: &OutboundCall) -> String {
        let url = self.public_url(url);
        match &call.custom_field {
            None => url,
            Some(attempt) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                let query: String =
                    url::form_urlencoded::Serializer::new(String::new()).append_pair("attempt_id", attempt).finish();
                format!("{url}{separator}{query}")
            }
        }
    }

    fn calls_url(&self, suffix: &str) -> String {
        format!("{}/2010-04-01/Accounts/{}/Calls{suffix}", self.config.api_base, self.config.account_sid)
    }
}

/// A call resource's `field`, which Twilio always sends.
fn text(call: &Value, field: &str) -> Result<String, PortError> {
    call[field].as_str().map(str::to_owned).ok_or_else(|| PortError::Transient {
        message: format!("Twilio's call resource has no {field}"),
        retry_after: None,
    })
}

/// Twilio's error body: `{"code": 21211, "message": "..."}`.
fn twilio_error(body: &Value) -> String {
    format!(
        "{} (code {})",
        body["message"].as_str().unwrap_or("no message"),
        body["code"].as_i64().map_or_else(|| "none".to_owned(), |c| c.to_string())
    )
}

impl Telephony for TwilioRest {
    fn place_call<'a>(&'a self, call: &'a OutboundCall) -> PortFuture<'a, PlacedCall> {
        Box::pin(async move {
            let mut form = vec![
                ("To", call.to.clone()),
                ("From", call.caller_id.clone()),
                ("StatusCallback", self.status_callback(call)),
                ("Record", call.record.to_string()),
                ("TimeLimit", CALL_TIME_LIMIT.as_secs().to_string()),
            ];
            form.extend(["initiated", "ringing", "answered", "completed"].map(|e| ("StatusCallbackEvent", e.into())));
            match (&call.twiml, &call.from) {
                (Some(twiml), _) => form.push(("Twiml", twiml.clone())),
                (None, Some(agent)) => {
                    let action = self.with_attempt(DIAL_ACTION_PATH, call);
                    form.push(("Twiml", twiml::dial_agent(&call.caller_id, agent, &action)));
                    if self.machine_detection {
                        form.push(("MachineDetection", "Enable".to_owned()));
                        form.push(("AsyncAmd", "true".to_owned()));
                        form.push(("AsyncAmdStatusCallback", self.with_attempt(MACHINE_DETECTION_PATH, call)));
                    }
                }
                (None, None) => {}
            }
            if call.record {
                form.push(("RecordingStatusCallback", self.public_url("/webhooks/twilio/recording")));
            }
            let created = self.rest.post_form(self.calls_url(".json"), &form).await?;
            // Twilio took the request: the call may exist, whatever the body lacks.
            let call_sid = created["sid"].as_str().ok_or_else(|| PortError::OutcomeUnknown {
                message: "Twilio accepted the call but its answer has no call sid".into(),
            })?;
            Ok(PlacedCall { call_sid: call_sid.to_owned() })
        })
    }

    /// `Calls/{sid}.json`; once it completed, the leg its `<Dial>` placed
    /// (`Calls.json?ParentCallSid=`), whose status is the agent's.
    fn lookup_call<'a>(&'a self, _provider: Provider, call_sid: &'a str) -> PortFuture<'a, CallDetails> {
        Box::pin(async move {
            let call = self.rest.get(self.calls_url(&format!("/{call_sid}.json")), &[]).await?;
            let status = text(&call, "status")?;
            let agent = if status == "completed" {
                let children = self.rest.get(self.calls_url(".json"), &[("ParentCallSid", call_sid)]).await?;
                children["calls"].as_array().and_then(|legs| legs.first()).map(|leg| text(leg, "status")).transpose()?
            } else {
                None
            };
            let answered_by = call["answered_by"].as_str().unwrap_or_default();
            Ok(CallDetails {
                status,
                duration_secs: call["duration"].as_str().and_then(|d| d.parse().ok()),
                legs: LegDetails::Dialled {
                    agent,
                    machine: answered_by.starts_with("machine") || answered_by == "fax",
                },
                recording_url: None,
            })
        })
    }

    fn end_call<'a>(&'a self, _provider: Provider, call_sid: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let form = [("Status", "completed".to_owned())];
            self.rest.post_form(self.calls_url(&format!("/{call_sid}.json")), &form).await.map(drop)
        })
    }

    fn redirect_call<'a>(&'a self, call_sid: &'a str, url: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let form = [("Url", self.public_url(url)), ("Method", "POST".to_owned())];
            self.rest.post_form(self.calls_url(&format!("/{call_sid}.json")), &form).await.map(drop)
        })
    }
}
