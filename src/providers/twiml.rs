//! The TwiML documents we answer Twilio with. URLs are paths: Twilio resolves
//! them against the URL it just requested, our public one. TwiML we hand over
//! with a call we create has no such URL: its URLs are absolute.

/// `<Response/>`: nothing more to do (status and recording callbacks).
pub const EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

fn response(verbs: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response>{verbs}</Response>"#)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// Offers a menu: one key, sent to `/webhooks/twilio/ivr` even when nothing was pressed.
pub fn gather(menu_id: i64, attempt: i32, prompt: &str, timeout_secs: i32, notice: Option<&str>) -> String {
    let notice = notice.map(|n| format!("<Say>{}</Say>", escape(n))).unwrap_or_default();
    response(&format!(
        r#"{notice}<Gather input="dtmf" numDigits="1" timeout="{timeout_secs}" actionOnEmptyResult="true" action="/webhooks/twilio/ivr?menu={menu_id}&amp;attempt={attempt}" method="POST"><Say>{}</Say></Gather>"#,
        escape(prompt)
    ))
}

/// Holds the caller in a queue of their own (named after their CallSid), so
/// the agent `route-call` reserves dequeues exactly this caller.
pub fn enqueue(call_sid: &str) -> String {
    response(&format!("<Enqueue>{}</Enqueue>", escape(call_sid)))
}

/// Takes a message; the recording reaches `/webhooks/twilio/recording` like any other.
pub fn voicemail() -> String {
    response(concat!(
        "<Say>Sorry, nobody can take your call right now. Please leave a message after the tone.</Say>",
        r#"<Record maxLength="120" playBeep="true" action="/webhooks/twilio/hangup" method="POST" "#,
        r#"recordingStatusCallback="/webhooks/twilio/recording" recordingStatusCallbackEvent="completed"/>"#,
    ))
}

pub fn callback_promise() -> String {
    say_and_hang_up("All our agents are busy. We will call you back shortly. Goodbye.")
}

pub fn transfer(number: &str) -> String {
    response(&format!("<Dial>{}</Dial>", escape(number)))
}

/// A follow-up's customer answered: dial the agent, showing `caller_id`;
/// when the agent's leg ends, Twilio reports it to `action` (an absolute URL).
pub fn dial_agent(caller_id: &str, agent: &str, action: &str) -> String {
    response(&format!(
        r#"<Dial callerId="{}" action="{}" method="POST"><Number>{}</Number></Dial>"#,
        escape(caller_id),
        escape(action),
        escape(agent)
    ))
}

pub fn say_and_hang_up(text: &str) -> String {
    response(&format!("<Say>{}</Say><Hangup/>", escape(text)))
}

pub fn hang_up() -> String {
    response("<Hangup/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_escaped_and_the_action_carries_menu_and_attempt() {
        let twiml = gather(7, 1, "Sales & <support>", 5, Some("Sorry, that is not an option."));
        assert!(twiml.contains("<Say>Sales &amp; &lt;support&gt;</Say>"));
        assert!(twiml.contains(r#"action="/webhooks/twilio/ivr?menu=7&amp;attempt=1""#));
        assert!(twiml.starts_with("<?xml") && twiml.ends_with("</Response>"));
    }
}
