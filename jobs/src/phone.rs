//! `PhoneNumber`: a number in E.164 (`+919876543210`), parsed once at the
//! edge (API bodies, Twilio's E.164, the Indian national forms Exotel sends)
//! so the core never handles raw strings. The one phone type of both crates.
//! Also how numbers are masked wherever they could reach a log, and
//! `NumberPrefixes`, the countries or ranges a deployment may call.

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

/// `+919876543210` -> `+91******3210`: enough to tell calls apart in logs.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep_head = if chars[0] == '+' { 3 } else { 2 };
    let hidden = chars.len() - keep_head - 4;
    chars[..keep_head].iter().chain(std::iter::repeat_n(&'*', hidden)).chain(&chars[chars.len() - 4..]).collect()
}

/// `text` with every run that looks like a phone number (7 digits or more,
/// with an optional leading `+`) masked, for free text that may quote one:
/// a provider's error message ("The 'To' number +14155550100 is not valid").
pub fn mask_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        out.push_str(&if digits >= 7 { mask(run) } else { run.clone() });
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
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

/// E.164 prefixes (`+91`, `+1415`; `+` alone for anywhere) a number must
/// start with to be called without an operator asking for it: overflow
/// callbacks go to the number the caller's provider reported, which on
/// Exotel nothing signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPrefixes(Vec<String>);

impl NumberPrefixes {
    /// Comma-separated prefixes, each `+` and up to 15 digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let prefixes: Vec<String> =
            raw.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
        let well_formed = |p: &String| {
            p.strip_prefix('+').is_some_and(|digits| digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        };
        match prefixes.iter().find(|p| !well_formed(p)) {
            Some(bad) => Err(format!("{bad:?} is not + followed by digits")),
            None if prefixes.is_empty() => Err("no prefix given (+ alone allows every number)".to_owned()),
            None => Ok(Self(prefixes)),
        }
    }

    pub fn allows(&self, number: &PhoneNumber) -> bool {
        self.0.iter().any(|prefix| number.as_str().starts_with(prefix.as_str()))
    }
}

impl Default for NumberPrefixes {
    /// India, where the deployment's Exotel numbers and calling window are.
    fn default() -> Self {
        Self(vec!["+91".to_owned()])
    }
}

impl fmt::Display for NumberPrefixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::{NumberPrefixes, PhoneNumber, mask, mask_in_text};

    #[test]
    fn prefixes_allow_numbers_that_start_with_one_of_them() {
        let number = |raw: &str| PhoneNumber::parse(raw).unwrap();
        let india = NumberPrefixes::default();
        assert!(india.allows(&number("+919876543210")));
        assert!(!india.allows(&number("+442071838750")));
        let listed = NumberPrefixes::parse(" +44, +1415 ").unwrap();
        assert!(listed.allows(&number("+442071838750")) && listed.allows(&number("+14155550100")));
        assert!(!listed.allows(&number("+12125550100")));
        assert!(NumberPrefixes::parse("+").unwrap().allows(&number("+12125550100")));
        for bad in ["91", "+9a", "", " , ", "+1234567890123456"] {
            assert!(NumberPrefixes::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn masks_all_but_country_code_and_last_four() {
        assert_eq!(mask("+919876543210"), "+91******3210");
        assert_eq!(mask("+14158675309"), "+14*****5309");
        assert_eq!(mask("12345"), "*****");
    }

    #[test]
    fn masks_numbers_inside_free_text_and_leaves_short_figures() {
        assert_eq!(
            mask_in_text("The 'To' number +14155550100 is not valid (21211), call 09876543210"),
            "The 'To' number +14*****0100 is not valid (21211), call 09*****3210"
        );
        assert_eq!(mask_in_text("answered 503 after 15s"), "answered 503 after 15s");
        assert_eq!(mask_in_text("+ plus"), "+ plus");
    }

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
