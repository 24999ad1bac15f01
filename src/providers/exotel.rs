//! Exotel webhooks: Exotel signs nothing, so a request must present our secret
//! in its path (compared in constant time) and, when configured, come from an
//! allowed address. Its parameters (any key case, form or JSON with `Legs`)
//! parsed into typed values, and the Connect applet's JSON answer.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use switchboard_jobs::calls::CallStatus;
use switchboard_jobs::outbound::Report;

use super::fields::{Fields, event_time, ignored_unless, seconds, url};
use super::identifiers::{CallSid, Digits, attempt_id, shown};
use crate::ip_block::IpBlock;
use switchboard_jobs::phone::PhoneNumber;

/// Why an Exotel request was refused (logged; never the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("EXOTEL_WEBHOOK_SECRET is not set: Exotel webhooks are closed")]
    NotConfigured,
    #[error("wrong secret in the webhook path")]
    WrongSecret,
    #[error("client address {0} is not in EXOTEL_ALLOWED_IPS")]
    AddressNotAllowed(IpAddr),
    #[error("client address unknown and EXOTEL_ALLOWED_IPS is set")]
    AddressUnknown,
}

/// What an Exotel request must get past.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    pub secret: Option<SecretString>,
    /// Empty: any address.
    pub allowed: Vec<IpBlock>,
}

impl Gate {
    pub fn check(&self, presented: &str, client: Option<IpAddr>) -> Result<(), Refusal> {
        let secret = self.secret.as_ref().ok_or(Refusal::NotConfigured)?;
        if !bool::from(secret.expose_secret().as_bytes().ct_eq(presented.as_bytes())) {
            return Err(Refusal::WrongSecret);
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        let client = client.ok_or(Refusal::AddressUnknown)?;
        if self.allowed.iter().any(|block| block.contains(client)) {
            Ok(())
        } else {
            Err(Refusal::AddressNotAllowed(client))
        }
    }
}

fn present<'a>(fields: &'a Fields, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| fields.get_ignore_case(n)).filter(|v| !v.trim().is_empty())
}

/// A number in any form Exotel sends; one that is not a number (withheld,
/// SIP, junk) is ignored and the call goes on without it.
fn number(fields: &Fields, names: &[&str]) -> Option<PhoneNumber> {
    present(fields, names).and_then(|raw| ignored_unless(names[0], PhoneNumber::parse_indian(raw).ok()))
}

fn call_sid(fields: &Fields) -> Result<CallSid, String> {
    CallSid::exotel(present(fields, &["CallSid"]).ok_or("CallSid is missing")?)
}

/// A Passthru or Connect request from a flow.
#[derive(Debug, Clone)]
pub struct FlowRequest {
    pub call_sid: CallSid,
    pub from: Option<PhoneNumber>,
    pub to: Option<PhoneNumber>,
    /// `None` for silence, and for keys that are not keypad digits (ignored).
    pub digits: Option<Digits>,
}

impl FlowRequest {
    pub fn parse(fields: &Fields) -> Result<Self, String> {
        let digits = Digits::parse(present(fields, &["digits"]).unwrap_or_default());
        Ok(Self {
            call_sid: call_sid(fields)?,
            from: number(fields, &["CallFrom", "From"]),
            to: number(fields, &["CallTo", "To"]),
            digits: ignored_unless("digits", digits.ok()).flatten(),
        })
    }
}

/// A StatusCallback: the call ended (or was answered). Optional fields that
/// are malformed or absurd are ignored; the event is kept.
#[derive(Debug, Clone)]
pub struct StatusCallback {
    pub call_sid: CallSid,
    pub status: CallStatus,
    pub recording_url: Option<String>,
    pub duration_secs: Option<i32>,
    pub updated_at: DateTime<Utc>,
    pub from: Option<PhoneNumber>,
    pub to: Option<PhoneNumber>,
    /// What we put in `CustomField` when placing the call (an outbound attempt id).
    pub custom_field: Option<String>,
    /// Connect's two legs (the agent's, dialled first, then the customer's),
    /// when the callback lists them.
    pub legs: Option<[Leg; 2]>,
}

/// One leg of a call, as `Legs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// `completed`, `busy`, `no-answer`, `failed`, `canceled`, or `null` when never dialled.
    pub status: String,
    /// `AnsweredBy` is `Machine` (voicemail, an IVR).
    pub machine: bool,
}

impl Leg {
    fn new(status: Option<&str>, answered_by: Option<&str>) -> Option<Self> {
        let status = status.unwrap_or("null").trim();
        let known = status.len() <= 16 && status.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
        let machine = answered_by.is_some_and(|by| by.trim().eq_ignore_ascii_case("machine"));
        ignored_unless("Legs", known.then(|| Self { status: status.to_ascii_lowercase(), machine }))
    }
}

/// The first two legs: from `Legs` as JSON (a JSON body keeps it as its text),
/// or as form fields `Legs[0][Status]`; `None` when there are not two.
fn legs(fields: &Fields) -> Option<[Leg; 2]> {
    let listed: Vec<Leg> = match present(fields, &["Legs"]) {
        Some(json) => {
            let legs: Vec<Value> = serde_json::from_str(json).ok()?;
            let text = |leg: &Value, name: &str| -> Option<String> {
                let object = leg.as_object()?;
                let value = object.iter().find(|(key, _)| key.eq_ignore_ascii_case(name))?.1;
                value.as_str().map(str::to_owned)
            };
            legs.iter()
                .take(2)
                .filter_map(|leg| Leg::new(text(leg, "Status").as_deref(), text(leg, "AnsweredBy").as_deref()))
                .collect()
        }
        None => (0..2)
            .filter_map(|n| {
                let status = fields.get_ignore_case(&format!("Legs[{n}][Status]"));
                let answered_by = fields.get_ignore_case(&format!("Legs[{n}][AnsweredBy]"));
                if status.is_none() && answered_by.is_none() {
                    return None;
                }
                Leg::new(status, answered_by)
            })
            .collect(),
    };
    listed.try_into().ok()
}

impl StatusCallback {
    pub fn parse(fields: &Fields) -> Result<Self, String> {
        let now = Utc::now();
        let status = present(fields, &["Status", "CallStatus"]).ok_or("Status is missing")?;
        let recording_url = present(fields, &["RecordingUrl"]).and_then(|raw| ignored_unless("RecordingUrl", url(raw)));
        Ok(Self {
            call_sid: call_sid(fields)?,
            status: status.parse().map_err(|_| format!("Status={} is not a call status", shown(status)))?,
            recording_url,
            duration_secs: seconds("ConversationDuration", present(fields, &["ConversationDuration"])),
            updated_at: event_time("DateUpdated", present(fields, &["DateUpdated"]), exotel_time, now).unwrap_or(now),
            from: number(fields, &["From", "CallFrom"]),
            to: number(fields, &["To", "CallTo"]),
            custom_field: attempt_id(present(fields, &["CustomField"])),
            legs: legs(fields),
        })
    }
}

impl StatusCallback {
    /// What the callback says about an outbound attempt: its two legs when
    /// listed, else only the call's status.
    pub fn report(&self) -> Report<'_> {
        match &self.legs {
            Some([agent, customer]) => Report::Legs {
                agent: &agent.status,
                customer: &customer.status,
                customer_machine: customer.machine,
                conversation_secs: self.duration_secs,
            },
            None => Report::Call(self.status.as_str()),
        }
    }
}

/// Exotel's `YYYY-MM-DD HH:mm:ss` carries no zone; it is India time.
fn exotel_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(with_zone) = DateTime::parse_from_rfc3339(raw) {
        return Some(with_zone.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    chrono_tz::Asia::Kolkata.from_local_datetime(&naive).single().map(|t| t.with_timezone(&Utc))
}

/// The Connect applet's answer: dial `number` (the agent, or an overflow's
/// transfer number), or nobody (`numbers: []` takes the flow's "no one
/// dialled" branch: queue or voicemail).
pub fn connect_answer(number: Option<&str>, caller_id: Option<&str>) -> Value {
    let numbers: Vec<&str> = number.into_iter().collect();
    let mut answer = json!({
        "fetch_after_attempt": false,
        "destination": { "numbers": numbers },
        "record": true,
        "recording_channels": "dual",
        "max_ringing_duration": 30,
    });
    if let Some(ours) = caller_id {
        answer["outgoing_phone_number"] = json!(ours);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(allowed: &[&str]) -> Gate {
        Gate { secret: Some("s3cret".into()), allowed: allowed.iter().map(|b| IpBlock::parse(b).unwrap()).collect() }
    }

    #[test]
    fn the_secret_must_match_exactly() {
        assert_eq!(gate(&[]).check("s3cret", None), Ok(()));
        assert_eq!(gate(&[]).check("s3cre", None), Err(Refusal::WrongSecret));
        assert_eq!(Gate::default().check("", None), Err(Refusal::NotConfigured));
    }

    #[test]
    fn allow_list_takes_addresses_and_blocks() {
        let gate = gate(&["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]);
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(gate.check("s3cret", ip("203.0.113.99")), Ok(()));
        assert_eq!(gate.check("s3cret", ip("::ffff:198.51.100.7")), Ok(()));
        assert_eq!(gate.check("s3cret", ip("2001:db8:1::5")), Ok(()));
        assert!(matches!(gate.check("s3cret", ip("198.51.100.8")), Err(Refusal::AddressNotAllowed(_))));
        assert_eq!(gate.check("s3cret", None), Err(Refusal::AddressUnknown));
    }

    #[test]
    fn status_callbacks_parse_with_any_key_case() {
        let body = br#"{"callsid":"b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d","STATUS":"no-answer","DateUpdated":"2026-11-21 10:00:00","ConversationDuration":0,"Legs":[{"Status":"no-answer"}],"CustomField":"0190f3c2-6a1e-7cc0-8d3e-6f1a2b3c4d5e"}"#;
        let fields = Fields::parse(None, Some("application/json"), body).unwrap();
        let status = StatusCallback::parse(&fields).unwrap();
        assert_eq!(status.status, CallStatus::NoAnswer);
        assert_eq!(status.updated_at.to_rfc3339(), "2026-11-21T04:30:00+00:00");
        assert_eq!(status.custom_field.as_deref(), Some("0190f3c2-6a1e-7cc0-8d3e-6f1a2b3c4d5e"));
        assert_eq!(status.legs, None, "one leg listed is not Connect's two");
    }

    #[test]
    fn both_legs_are_read_from_json_or_from_form_fields() {
        let body = br#"{"CallSid":"b6cf","Status":"completed","Legs":[{"OnCallDuration":41,"Status":"completed","AnsweredBy":"NA"},{"OnCallDuration":0,"Status":null,"AnsweredBy":"MACHINE"}]}"#;
        let json = StatusCallback::parse(&Fields::parse(None, Some("application/json"), body).unwrap()).unwrap();
        let expected =
            [Leg { status: "completed".into(), machine: false }, Leg { status: "null".into(), machine: true }];
        assert_eq!(json.legs, Some(expected.clone()));
        let form =
            "CallSid=b6cf&Status=completed&Legs%5B0%5D%5BStatus%5D=completed&Legs%5B1%5D%5BAnsweredBy%5D=Machine";
        let form = StatusCallback::parse(&Fields::parse(None, None, form.as_bytes()).unwrap()).unwrap();
        assert_eq!(form.legs, Some(expected));
    }

    #[test]
    fn passthru_digits_lose_their_quotes_and_numbers_become_e164() {
        let fields =
            Fields::parse(Some("CallSid=abc123&CallFrom=09876543210&CallTo=08041234567&digits=%222%22"), None, b"")
                .unwrap();
        let request = FlowRequest::parse(&fields).unwrap();
        assert_eq!(request.digits.unwrap().as_str(), "2");
        assert_eq!(request.from.unwrap().as_str(), "+919876543210");
    }

    #[test]
    fn connect_answers_name_the_agent_or_nobody() {
        assert_eq!(connect_answer(Some("+919800000001"), None)["destination"]["numbers"], json!(["+919800000001"]));
        assert_eq!(connect_answer(None, Some("+918041234567"))["destination"]["numbers"], json!([]));
    }
}
