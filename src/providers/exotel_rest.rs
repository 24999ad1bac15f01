//! Exotel's REST API as our `Telephony` port: "connect two numbers"
//! (`Calls/connect.json`), which rings the agent (`From`) first and the
//! customer (`To`) once the agent answers, both seeing the ExoPhone
//! (`CallerId`). The attempt id rides in `CustomField`; the terminal status
//! comes back as JSON to the status callback. Calls are limited to
//! [`CALL_TIME_LIMIT`], which the outbound watchdog relies on. Requests go
//! through the shared [`RestClient`].

use secrecy::ExposeSecret;
use serde_json::Value;
use switchboard_jobs::outbound::watchdog::CALL_TIME_LIMIT;
use switchboard_jobs::ports::{OutboundCall, PlacedCall, PortError, PortFuture, Telephony};

use super::rest_client::RestClient;
use crate::config::ExotelConfig;

pub struct ExotelRest {
    rest: RestClient,
    connect_url: String,
}

impl ExotelRest {
    pub fn new(config: ExotelConfig) -> Self {
        let connect_url = format!("{}/v1/Accounts/{}/Calls/connect.json", config.api_base, config.account_sid);
        Self {
            rest: RestClient::new("Exotel", config.api_key, config.api_token.expose_secret().to_owned(), exotel_error),
            connect_url,
        }
    }
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
            let created = self.rest.post_form(self.connect_url.clone(), &form).await?;
            // Exotel took the request: the call may exist, whatever the body lacks.
            let call_sid = created["Call"]["Sid"].as_str().ok_or_else(|| PortError::OutcomeUnknown {
                message: "Exotel accepted the call but its answer has no Call.Sid".into(),
            })?;
            Ok(PlacedCall { call_sid: call_sid.to_owned() })
        })
    }
}
