//! Exotel's REST API as our `Telephony` port: "connect two numbers"
//! (`Calls/connect.json`), which rings the agent (`From`) first and the
//! customer (`To`) once the agent answers, both seeing the ExoPhone
//! (`CallerId`). The attempt id rides in `CustomField`; the terminal status
//! comes back as JSON to the status callback; Call Details
//! (`Calls/{sid}.json?details=true`) tell a call's status and legs when the
//! callback is lost. Exotel's v1 API documents no way to end a live call, so
//! `end_call` is refused (Connect dials the agent itself: no bridge gap to
//! close). Calls are limited to
//! [`CALL_TIME_LIMIT`], which the outbound watchdog relies on. Requests go
//! through the shared [`RestClient`].

use secrecy::ExposeSecret;
use serde_json::Value;
use switchboard_jobs::outbound::watchdog::CALL_TIME_LIMIT;
use switchboard_jobs::ports::{
    CallDetails, LegDetails, OutboundCall, PlacedCall, PortError, PortFuture, Provider, Telephony,
};

use super::rest_client::RestClient;
use crate::config::ExotelConfig;

pub struct ExotelRest {
    rest: RestClient,
    /// `.../v1/Accounts/{sid}/Calls`
    calls_url: String,
}

impl ExotelRest {
    pub fn new(config: ExotelConfig) -> Self {
        let calls_url = format!("{}/v1/Accounts/{}/Calls", config.api_base, config.account_sid);
        let secret = config.api_token.expose_secret().to_owned();
        Self { rest: RestClient::new("Exotel", config.api_key, secret, exotel_error), calls_url }
    }

    /// Call Details with the legs (`Calls/{sid}.json?details=true`, telephony.md 3.3).
    pub async fn call_details(&self, call_sid: &str) -> Result<CallDetails, PortError> {
        let answer = self.rest.get(format!("{}/{call_sid}.json", self.calls_url), &[("details", "true")]).await?;
        let call = &answer["Call"];
        let status = call["Status"].as_str().ok_or_else(|| PortError::Transient {
            message: "Exotel's Call Details have no Call.Status".into(),
            retry_after: None,
        })?;
        let details = &call["Details"];
        let leg = |name: &str| details[name].as_str().unwrap_or("null").to_owned();
        let legs = if details.is_object() {
            LegDetails::Connect {
                agent: leg("Leg1Status"),
                customer: leg("Leg2Status"),
                customer_machine: call["AnsweredBy"].as_str().is_some_and(|by| by.eq_ignore_ascii_case("machine")),
                conversation_secs: whole_seconds(&details["ConversationDuration"]),
            }
        } else {
            LegDetails::Unknown
        };
        Ok(CallDetails {
            status: status.to_owned(),
            duration_secs: whole_seconds(&call["Duration"]),
            legs,
            recording_url: call["RecordingUrl"].as_str().filter(|url| !url.is_empty()).map(str::to_owned),
        })
    }
}

/// Exotel writes durations as numbers or as strings (`"17"`).
fn whole_seconds(value: &Value) -> Option<i32> {
    value.as_i64().or_else(|| value.as_str()?.trim().parse().ok()).and_then(|s| i32::try_from(s).ok())
}

/// Exotel's error body: `{"RestException": {"Status": 400, "Message": "..."}}`.
fn exotel_error(body: &Value) -> String {
    let exception = &body["RestException"];
    let message = exception["Message"].as_str().or_else(|| body["message"].as_str()).unwrap_or("no message");
    match exception["Code"].as_i64() {
        Some(code) => format!("{message} (code {code})"),
        None => message.to_owned(),
    }
}

/// The form for `Calls/connect.json` (telephony.md 3.2).
fn connect_form(call: &OutboundCall) -> Result<Vec<(&'static str, String)>, PortError> {
    let agent = call.from.clone().ok_or_else(|| PortError::Permanent {
        message: "Exotel Connect rings an agent first: the call has no From (agent) number".into(),
    })?;
    let mut form = vec![
        ("From", agent),
        ("To", call.to.clone()),
        ("CallerId", call.caller_id.clone()),
        ("CallType", "trans".to_owned()),
        ("Record", call.record.to_string()),
        ("TimeLimit", CALL_TIME_LIMIT.as_secs().to_string()),
        ("StatusCallback", call.status_callback.clone()),
        ("StatusCallbackEvents[0]", "terminal".to_owned()),
        ("StatusCallbackContentType", "application/json".to_owned()),
    ];
    if let Some(custom) = &call.custom_field {
        form.push(("CustomField", custom.clone()));
    }
    Ok(form)
}

impl Telephony for ExotelRest {
    fn place_call<'a>(&'a self, call: &'a OutboundCall) -> PortFuture<'a, PlacedCall> {
        Box::pin(async move {
            let form = connect_form(call)?;
            let created = self.rest.post_form(format!("{}/connect.json", self.calls_url), &form).await?;
            // Exotel took the request: the call may exist, whatever the body lacks.
            let call_sid = created["Call"]["Sid"].as_str().ok_or_else(|| PortError::OutcomeUnknown {
                message: "Exotel accepted the call but its answer has no Call.Sid".into(),
            })?;
            Ok(PlacedCall { call_sid: call_sid.to_owned() })
        })
    }

    fn lookup_call<'a>(&'a self, _provider: Provider, call_sid: &'a str) -> PortFuture<'a, CallDetails> {
        Box::pin(self.call_details(call_sid))
    }
}
