//! Provider strings parsed into typed values at the edge, each against its
//! provider's format: `CallSid`, `RecordingSid`, `Digits`, our attempt ids
//! (phone numbers are `switchboard_jobs::phone::PhoneNumber`). The core never
//! sees the raw strings, and no error quotes a hostile one whole.

use std::fmt;

/// A provider's call id: Twilio `CA` + 32 hex digits; Exotel documents no
/// format (32 hex digits are what it sends), so up to 64 ASCII alphanumerics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallSid(String);

impl CallSid {
    pub fn twilio(raw: &str) -> Result<Self, String> {
        twilio_sid("CA", raw).map(Self).ok_or_else(|| format!("CallSid={} is not a Twilio call sid", shown(raw)))
    }

    pub fn exotel(raw: &str) -> Result<Self, String> {
        let valid = (1..=64).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_alphanumeric());
        if valid { Ok(Self(raw.to_owned())) } else { Err(format!("CallSid={} is not a call id", shown(raw))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Twilio recording id: `RE` + 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingSid(String);

impl RecordingSid {
    pub fn parse(raw: &str) -> Result<Self, String> {
        twilio_sid("RE", raw)
            .map(Self)
            .ok_or_else(|| format!("RecordingSid={} is not a Twilio recording sid", shown(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `prefix` + 32 hex digits, Twilio's shape for every resource id.
fn twilio_sid(prefix: &str, raw: &str) -> Option<String> {
    let hex = raw.strip_prefix(prefix)?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| raw.to_owned())
}

/// `raw` quoted for an error message, cut to 40 characters: a hostile
/// 60 kB value must not travel whole into answers and logs.
pub fn shown(raw: &str) -> String {
    match raw.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &raw[..cut], raw.len()),
        None => format!("{raw:?}"),
    }
}

/// One of our outbound attempt ids (a UUID) as a provider echoed it back
/// (Twilio `attempt_id` query parameter, Exotel `CustomField`); anything else
/// is not ours and is ignored.
pub fn attempt_id(raw: Option<&str>) -> Option<String> {
    raw.and_then(|r| r.trim().parse::<uuid::Uuid>().ok()).map(|id| id.to_string())
}

impl fmt::Display for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keys the caller pressed: `0-9`, `*`, `#`. Exotel wraps them in double quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits(String);

impl Digits {
    /// `None` when nothing was pressed (silence).
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let bare = raw.trim().trim_matches('"');
        if bare.is_empty() {
            return Ok(None);
        }
        let valid = bare.len() <= 32 && bare.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#');
        if valid { Ok(Some(Self(bare.to_owned()))) } else { Err(format!("{} are not keypad digits", shown(raw))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sids_follow_each_providers_format() {
        assert!(CallSid::twilio("CA1234567890abcdef1234567890abcdef").is_ok());
        assert!(CallSid::twilio("CA1234567890abcdef1234567890abcde").is_err());
        assert!(CallSid::twilio("RE1234567890abcdef1234567890abcdef").is_err());
        assert!(CallSid::twilio("").is_err());
        assert!(CallSid::exotel("b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d").is_ok());
        assert!(CallSid::exotel(&"a".repeat(65)).is_err());
        assert!(CallSid::exotel("CA12'; DROP").is_err());
        assert!(RecordingSid::parse("RE00000000000000000000000000000001").is_ok());
        assert!(RecordingSid::parse(&format!("RE{}", "0".repeat(5000))).is_err());
    }

    #[test]
    fn errors_never_quote_a_hostile_value_whole() {
        let error = RecordingSid::parse(&"x".repeat(60_000)).unwrap_err();
        assert!(error.len() < 120, "{error}");
        assert!(error.contains("60000 bytes"), "{error}");
    }

    #[test]
    fn only_our_own_attempt_ids_are_taken_back() {
        let id = "0190f3c2-6a1e-7cc0-8d3e-6f1a2b3c4d5e";
        assert_eq!(attempt_id(Some(id)).as_deref(), Some(id));
        assert_eq!(attempt_id(Some(&"a".repeat(60_000))), None);
        assert_eq!(attempt_id(Some("attempt-7")), None);
        assert_eq!(attempt_id(None), None);
    }

    #[test]
    fn exotel_quotes_are_stripped_and_silence_is_none() {
        assert_eq!(Digits::parse("\"12\"").unwrap().unwrap().as_str(), "12");
        assert_eq!(Digits::parse("").unwrap(), None);
        assert_eq!(Digits::parse("\"\"").unwrap(), None);
        assert!(Digits::parse("1a").is_err());
    }
}
