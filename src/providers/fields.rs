//! A webhook's parameters as the provider sent them: the query string and the
//! body (form-encoded, `multipart/form-data` or a JSON object) merged, every
//! field kept, nothing trimmed, within [`MAX_FIELDS`]. A value no column can hold (one with a NUL
//! character) is kept for the signature but never read: the event stays, the
//! bad field is as good as absent.

/// The most fields a webhook may carry, query and body together. Twilio's
/// richest callbacks have about 40 (a status callback with every caller-location
/// field and our own query parameters), Exotel's about 25; a request with more
/// is refused before any other work, signature checks included.
pub const MAX_FIELDS: usize = 256;

/// Why a webhook's parameters could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("more than {MAX_FIELDS} fields")]
    TooMany,
    #[error("{0}")]
    Malformed(String),
}

use chrono::{DateTime, Utc};

/// Name/value pairs in the order received; a name may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// The body's own pairs (what Twilio signs for a form POST).
    pub body: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

impl Fields {
    /// Parses `query` and a body of `content_type`. A JSON body must be an
    /// object; nested values (Exotel `Legs`) are kept as their JSON text.
    pub fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Result<Self, FieldsError> {
        let query = query.map(|q| pairs(q.as_bytes(), MAX_FIELDS)).transpose()?.unwrap_or_default();
        let room = MAX_FIELDS - query.len();
        let body = if is_json(content_type) {
            json_pairs(body, room)?
        } else {
            std::str::from_utf8(body).map_err(|_| FieldsError::Malformed("the body is not UTF-8".to_owned()))?;
            pairs(body, room)?
        };
        Ok(Self { body, query })
    }

    /// Like [`parse`](Self::parse), and also `multipart/form-data` (one of the
    /// two content types Exotel's StatusCallback may use): text parts in
    /// order, each UTF-8; a file part is refused.
    pub async fn parse_any(
        query: Option<&str>,
        content_type: Option<&str>,
        body: bytes::Bytes,
    ) -> Result<Self, FieldsError> {
        match content_type.filter(|ct| is_multipart(Some(ct))) {
            Some(content_type) => {
                let query = query.map(|q| pairs(q.as_bytes(), MAX_FIELDS)).transpose()?.unwrap_or_default();
                let body = multipart_pairs(content_type, body, MAX_FIELDS - query.len()).await?;
                Ok(Self { body, query })
            }
            None => Self::parse(query, content_type, &body),
        }
    }

    /// The first usable value of `name` (body first, then query), matched exactly.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.usable().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first usable value of `name`, ignoring ASCII case (Exotel's keys vary in case).
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.usable().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Our own parameter `name` in the query string (never the provider's body).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, v)| k == name && usable(v)).map(|(_, v)| v.as_str())
    }

    fn usable(&self) -> impl Iterator<Item = &(String, String)> {
        self.body.iter().chain(&self.query).filter(|(_, v)| usable(v))
    }
}

/// PostgreSQL text cannot hold NUL; no provider sends one.
fn usable(value: &str) -> bool {
    !value.contains('\0')
}

/// The longest call or recording a provider reports (Twilio's `TimeLimit`
/// tops out at 24 h; Exotel's at 4 h).
pub const MAX_CALL_SECS: i32 = 86_400;

/// How far a provider's event time may be from our clock before it is taken
/// for a broken or hostile value (year 9999, Exotel's `1970-01-01 05:30:00`
/// placeholder): providers send within seconds and retry for minutes, so a
/// day ahead is a wrong clock; replayed and reconciled events may be old,
/// but not ten years old.
const EVENT_TIME_AHEAD: chrono::TimeDelta = chrono::TimeDelta::days(1);
const EVENT_TIME_BEHIND: chrono::TimeDelta = chrono::TimeDelta::days(3653);

/// Longer than any URL a provider hands out; a longer one is not theirs.
const MAX_URL_LEN: usize = 2048;

/// An absolute http(s) URL of reasonable length, as given (not re-encoded).
pub fn url(raw: &str) -> Option<String> {
    let parsed = url::Url::parse(raw).ok()?;
    (raw.len() <= MAX_URL_LEN && matches!(parsed.scheme(), "http" | "https")).then(|| raw.to_owned())
}

/// A duration in whole seconds, `0..=MAX_CALL_SECS`; anything else is ignored (`None`).
pub fn seconds(name: &str, raw: Option<&str>) -> Option<i32> {
    let raw = raw.map(str::trim).filter(|v| !v.is_empty())?;
    ignored_unless(name, raw.parse().ok().filter(|s| (0..=MAX_CALL_SECS).contains(s)))
}

/// A provider's event time, read by `parse`, within a day ahead or ten years
/// behind `now`; anything else is ignored (`None`).
pub fn event_time(
    name: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let raw = raw.map(str::trim).filter(|v| !v.is_empty())?;
    let plausible = |at: &DateTime<Utc>| *at <= now + EVENT_TIME_AHEAD && *at >= now - EVENT_TIME_BEHIND;
    ignored_unless(name, parse(raw).filter(plausible))
}

/// `value`, or `None` with a line saying which field was ignored (never its
/// value: it may be a phone number, or 60 kB of junk).
pub fn ignored_unless<T>(name: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        tracing::warn!(field = name, "webhook field ignored: not a value it can hold");
    }
    value
}

pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

pub fn is_multipart(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Text parts, at most `room` of them.
async fn multipart_pairs(
    content_type: &str,
    body: bytes::Bytes,
    room: usize,
) -> Result<Vec<(String, String)>, FieldsError> {
    let malformed = FieldsError::Malformed;
    let boundary = multer::parse_boundary(content_type).map_err(|e| malformed(format!("multipart body: {e}")))?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut pairs = Vec::new();
    while let Some(part) = parts.next_field().await.map_err(|e| malformed(format!("multipart body: {e}")))? {
        if pairs.len() == room {
            return Err(FieldsError::TooMany);
        }
        let name = part.name().ok_or_else(|| malformed("a multipart part has no name".to_owned()))?.to_owned();
        if part.file_name().is_some() {
            return Err(malformed(format!("multipart part {name:?} is a file; only text fields are expected")));
        }
        let value = part.bytes().await.map_err(|e| malformed(format!("multipart part {name:?}: {e}")))?;
        let value = String::from_utf8(value.to_vec())
            .map_err(|_| malformed(format!("multipart part {name:?} is not UTF-8")))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// At most `room` pairs; one more is [`FieldsError::TooMany`], found without reading further.
fn pairs(raw: &[u8], room: usize) -> Result<Vec<(String, String)>, FieldsError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw).take(room + 1).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if pairs.len() > room { Err(FieldsError::TooMany) } else { Ok(pairs) }
}

fn json_pairs(body: &[u8], room: usize) -> Result<Vec<(String, String)>, FieldsError> {
    let malformed = |e: String| FieldsError::Malformed(e);
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| malformed("the JSON body is not an object".to_owned()))?;
    if object.len() > room {
        return Err(FieldsError::TooMany);
    }
    Ok(object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_query_merge_with_the_body_first() {
        let fields = Fields::parse(Some("menu=2&CallSid=q"), None, b"CallSid=CA1&From=%2B14158675309").unwrap();
        assert_eq!(fields.get("CallSid"), Some("CA1"));
        assert_eq!(fields.get("From"), Some("+14158675309"));
        assert_eq!(fields.get("menu"), Some("2"));
        assert_eq!(fields.get("callsid"), None);
        assert_eq!(fields.get_ignore_case("callsid"), Some("CA1"));
        assert_eq!(fields.query_param("CallSid"), Some("q"));
    }

    fn multipart(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut body = String::from("preamble\r\n");
        for (name, value) in parts {
            body.push_str(&format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
        }
        body.push_str("--XyZ--\r\n");
        body.into_bytes()
    }

    #[tokio::test]
    async fn multipart_text_parts_merge_like_a_form_and_files_are_refused() {
        let content_type = Some("multipart/form-data; boundary=XyZ");
        let body =
            multipart(&[("CallSid", "b6cf"), ("Status", "completed"), ("RecordingUrl", "https://x/r.mp3?a=1&b=2")]);
        let fields = Fields::parse_any(Some("extra=1"), content_type, body.into()).await.unwrap();
        assert_eq!(fields.get("CallSid"), Some("b6cf"));
        assert_eq!(fields.get("RecordingUrl"), Some("https://x/r.mp3?a=1&b=2"));
        assert_eq!(fields.get("extra"), Some("1"));
        let file = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nx\r\n--XyZ--\r\n";
        assert!(Fields::parse_any(None, content_type, file.as_bytes().to_vec().into()).await.is_err());
        let unterminated = b"--XyZ\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n\r\nb6cf".to_vec();
        assert!(Fields::parse_any(None, content_type, unterminated.into()).await.is_err());
        assert!(Fields::parse_any(None, Some("multipart/form-data"), b"x".to_vec().into()).await.is_err());
        let form = Fields::parse_any(None, None, b"CallSid=b6cf".to_vec().into()).await.unwrap();
        assert_eq!(form.get("CallSid"), Some("b6cf"));
    }

    #[tokio::test]
    async fn multipart_bodies_count_against_the_cap_of_fields() {
        let content_type = Some("multipart/form-data; boundary=XyZ");
        let names: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("F{i}")).collect();
        let parts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        let body = multipart(&parts);
        assert_eq!(Fields::parse_any(None, content_type, body.into()).await, Err(FieldsError::TooMany));
        let body = multipart(&parts[..MAX_FIELDS - 1]);
        assert!(Fields::parse_any(Some("extra=1"), content_type, body.into()).await.is_ok());
    }

    #[test]
    fn json_objects_keep_nested_values_as_text() {
        let body = br#"{"CallSid":"abc","Legs":[{"Status":"completed"}],"ConversationDuration":42}"#;
        let fields = Fields::parse(None, Some("application/json; charset=utf-8"), body).unwrap();
        assert_eq!(fields.get("ConversationDuration"), Some("42"));
        assert_eq!(fields.get("Legs"), Some(r#"[{"Status":"completed"}]"#));
        assert!(Fields::parse(None, Some("application/json"), b"[1]").is_err());
    }

    #[test]
    fn more_than_the_cap_of_fields_is_refused_in_query_body_and_json_alike() {
        let form = |n: usize| (0..n).map(|i| format!("F{i}=x")).collect::<Vec<_>>().join("&");
        assert!(Fields::parse(None, None, form(MAX_FIELDS).as_bytes()).is_ok());
        assert_eq!(Fields::parse(None, None, form(MAX_FIELDS + 1).as_bytes()), Err(FieldsError::TooMany));
        assert_eq!(Fields::parse(Some(&form(MAX_FIELDS + 1)), None, b""), Err(FieldsError::TooMany));
        assert_eq!(Fields::parse(Some(&form(200)), None, form(57).as_bytes()), Err(FieldsError::TooMany));
        let json = serde_json::Value::Object((0..=MAX_FIELDS).map(|i| (format!("F{i}"), 1.into())).collect());
        assert_eq!(
            Fields::parse(None, Some("application/json"), json.to_string().as_bytes()),
            Err(FieldsError::TooMany)
        );
    }

    #[test]
    fn a_value_with_a_nul_is_kept_for_signing_but_never_read() {
        let fields = Fields::parse(Some("attempt_id=a%00b"), None, b"From=%2B1415%00&From=%2B14158675309").unwrap();
        assert_eq!(fields.get("From"), Some("+14158675309"));
        assert_eq!(fields.query_param("attempt_id"), None);
        assert_eq!(fields.body.len(), 2);
        let json = Fields::parse(None, Some("application/json"), br#"{"CallFrom":"0\u0000"}"#).unwrap();
        assert_eq!(json.get_ignore_case("callfrom"), None);
    }

    #[test]
    fn negative_or_absurd_durations_are_ignored() {
        assert_eq!(seconds("CallDuration", Some("42")), Some(42));
        assert_eq!(seconds("CallDuration", Some(" 0 ")), Some(0));
        for bad in ["-5", "86401", "99999999999", "1e3", "forty", ""] {
            assert_eq!(seconds("CallDuration", Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn event_times_far_from_our_clock_or_unreadable_are_ignored() {
        let now = Utc::now();
        let rfc3339 = |raw: &str| DateTime::parse_from_rfc3339(raw).ok().map(|t| t.to_utc());
        let read = |raw: &str| event_time("Timestamp", Some(raw), rfc3339, now);
        assert_eq!(read(&now.to_rfc3339()), Some(now));
        assert_eq!(read("9999-12-31T00:00:00Z"), None);
        assert_eq!(read("1970-01-01T05:30:00+05:30"), None);
        assert_eq!(read(&(now + chrono::TimeDelta::days(2)).to_rfc3339()), None);
        assert_eq!(read("yesterday"), None);
        assert_eq!(event_time("Timestamp", None, rfc3339, now), None);
    }
}
