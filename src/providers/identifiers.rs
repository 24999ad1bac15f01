//! Provider strings parsed into typed values at the edge: `CallSid` and
//! `Digits` (phone numbers are `switchboard_jobs::phone::PhoneNumber`). The
//! core never sees the raw strings.

use std::fmt;

/// A provider's call id (Twilio `CA` + 32 hex, Exotel 32 alphanumerics).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallSid(String);

impl CallSid {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = (1..=64).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_alphanumeric());
        if valid { Ok(Self(raw.to_owned())) } else { Err(format!("{raw:?} is not a call id")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
        if valid { Ok(Some(Self(bare.to_owned()))) } else { Err(format!("{raw:?} are not keypad digits")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sids_are_short_and_alphanumeric() {
        assert!(CallSid::parse("CA1234567890abcdef1234567890abcdef").is_ok());
        assert!(CallSid::parse("").is_err());
        assert!(CallSid::parse("CA12'; DROP").is_err());
    }

    #[test]
    fn exotel_quotes_are_stripped_and_silence_is_none() {
        assert_eq!(Digits::parse("\"12\"").unwrap().unwrap().as_str(), "12");
        assert_eq!(Digits::parse("").unwrap(), None);
        assert_eq!(Digits::parse("\"\"").unwrap(), None);
        assert!(Digits::parse("1a").is_err());
    }
}
