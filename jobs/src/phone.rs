//! `PhoneNumber`: a number in E.164 (`+919876543210`), parsed once at the
//! edge (API bodies, Twilio's E.164, the Indian national forms Exotel sends)
//! so the core never handles raw strings. The one phone type of both crates.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts `+` and 8 to 15 digits, the first not 0; spaces, dashes, dots
    /// and parentheses between digits are dropped.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let digits = compact.strip_prefix('+').ok_or("must be in E.164 form, starting with +")?;
        let well_formed =
            (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
        if well_formed { Ok(Self(compact)) } else { Err("must be + followed by 8 to 15 digits".to_owned()) }
    }

    /// Like [`parse`](Self::parse), but also takes the Indian national forms
    /// Exotel sends (`09876543210`, `9876543210`, `919876543210`).
    pub fn parse_indian(raw: &str) -> Result<Self, String> {
        let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let national = match compact.len() {
            _ if compact.starts_with('+') => return Self::parse(&compact),
            11 if compact.starts_with('0') => &compact[1..],
            12 if compact.starts_with("91") => &compact[2..],
            _ => compact.as_str(),
        };
        Self::parse(&format!("+91{national}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<PhoneNumber> for String {
    fn from(number: PhoneNumber) -> Self {
        number.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PhoneNumber;

    #[test]
    fn keeps_e164_and_drops_separators() {
        assert_eq!(PhoneNumber::parse("+91 98765-43210").unwrap().as_str(), "+919876543210");
    }

    #[test]
    fn refuses_local_forms_letters_and_overlong_numbers() {
        for raw in ["09876543210", "4158675309", "+0123456789", "+91abc", "+123", "anonymous", "+1234567890123456", ""]
        {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn indian_national_forms_become_e164() {
        for raw in ["09876543210", "9876543210", "919876543210", "+919876543210", "098765-43210"] {
            assert_eq!(PhoneNumber::parse_indian(raw).unwrap().as_str(), "+919876543210", "{raw}");
        }
        assert_eq!(PhoneNumber::parse_indian("+1 415-867-5309").unwrap().as_str(), "+14158675309");
        assert!(PhoneNumber::parse_indian("12345").is_err());
    }
}
