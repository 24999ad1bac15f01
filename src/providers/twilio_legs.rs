//! What Twilio reports about the legs of an outbound follow-up (the customer's
//! call, whose TwiML dials the agent): the `<Dial action>` request when the
//! agent's leg ends (`DialCallStatus`, `DialCallSid`, `DialCallDuration`), and
//! the asynchronous answering-machine detection result (`AnsweredBy`), each
//! with the attempt id we put in its URL.

use switchboard_jobs::calls::CallStatus;

use super::fields::{Fields, seconds};
use super::identifiers::{CallSid, attempt_id, shown};
use super::twilio::{call_sid, call_status, required};

/// Where `<Dial action>` reports the agent's leg of a follow-up (joined to the public base URL).
pub const DIAL_ACTION_PATH: &str = "/webhooks/twilio/dial";
/// Where the asynchronous answering-machine detection result goes.
pub const MACHINE_DETECTION_PATH: &str = "/webhooks/twilio/amd";

/// `<Dial action>`: the agent's leg ended.
#[derive(Debug, Clone)]
pub struct DialResult {
    /// The customer's call (the parent, running the `<Dial>`).
    pub call_sid: CallSid,
    pub dial_call_sid: Option<CallSid>,
    pub dial_status: CallStatus,
    pub dial_duration_secs: Option<i32>,
    /// The outbound attempt (our `attempt_id` query parameter).
    pub attempt_id: Option<String>,
}

impl DialResult {
    pub fn parse(fields: &Fields) -> Result<Self, String> {
        Ok(Self {
            call_sid: call_sid(fields)?,
            dial_call_sid: fields.get("DialCallSid").and_then(|raw| CallSid::twilio(raw).ok()),
            dial_status: call_status(required(fields, "DialCallStatus")?)?,
            dial_duration_secs: seconds("DialCallDuration", fields.get("DialCallDuration")),
            attempt_id: attempt_id(fields.query_param("attempt_id")),
        })
    }
}

/// Who answered the customer's phone, as answering-machine detection heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    Human,
    /// An answering machine (`machine_start`, `machine_end_*`) or a fax.
    Machine,
    Unknown,
}

impl AnsweredBy {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "human" => Ok(Self::Human),
            "fax" => Ok(Self::Machine),
            "unknown" => Ok(Self::Unknown),
            machine if machine.starts_with("machine_") && machine.len() <= 32 => Ok(Self::Machine),
            other => Err(format!("AnsweredBy={} is not a detection result", shown(other))),
        }
    }
}

/// `AsyncAmdStatusCallback`: what answered the customer's call.
#[derive(Debug, Clone)]
pub struct MachineDetection {
    pub call_sid: CallSid,
    pub answered_by: AnsweredBy,
    pub attempt_id: Option<String>,
}

impl MachineDetection {
    pub fn parse(fields: &Fields) -> Result<Self, String> {
        Ok(Self {
            call_sid: call_sid(fields)?,
            answered_by: AnsweredBy::parse(required(fields, "AnsweredBy")?)?,
            attempt_id: attempt_id(fields.query_param("attempt_id")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(query: &str, body: &str) -> Fields {
        Fields::parse(Some(query), Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap()
    }

    const ATTEMPT: &str = "0190f3c2-6a1e-7cc0-8d3e-6f1a2b3c4d5e";

    #[test]
    fn a_dial_action_names_the_agents_leg_and_the_attempt() {
        let body = "CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=in-progress&DialCallStatus=no-answer\
                    &DialCallSid=CAfedcba9876543210fedcba9876543210&DialCallDuration=0";
        let dial = DialResult::parse(&fields(&format!("attempt_id={ATTEMPT}"), body)).unwrap();
        assert_eq!(dial.dial_status, CallStatus::NoAnswer);
        assert_eq!(dial.attempt_id.as_deref(), Some(ATTEMPT));
        assert_eq!(dial.dial_duration_secs, Some(0));
        assert!(DialResult::parse(&fields("", "CallSid=CA0123456789abcdef0123456789abcdef")).is_err());
    }

    #[test]
    fn machines_and_faxes_are_machines() {
        for (raw, expected) in [
            ("human", AnsweredBy::Human),
            ("machine_start", AnsweredBy::Machine),
            ("machine_end_beep", AnsweredBy::Machine),
            ("fax", AnsweredBy::Machine),
            ("unknown", AnsweredBy::Unknown),
        ] {
            assert_eq!(AnsweredBy::parse(raw), Ok(expected), "{raw}");
        }
        assert!(AnsweredBy::parse("robot").is_err());
    }
}
