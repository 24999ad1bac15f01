//! A webhook's parameters as the provider sent them: the query string and the
//! body (form-encoded, `multipart/form-data` or a JSON object) merged, every
//! field kept, nothing trimmed.

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
    pub fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Result<Self, String> {
        let query = query.map(|q| pairs(q.as_bytes())).unwrap_or_default();
        let body = if is_json(content_type) {
            json_pairs(body)?
        } else {
            std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
            pairs(body)
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
    ) -> Result<Self, String> {
        match content_type.filter(|ct| is_multipart(Some(ct))) {
            Some(content_type) => Ok(Self {
                body: multipart_pairs(content_type, body).await?,
                query: query.map(|q| pairs(q.as_bytes())).unwrap_or_default(),
            }),
            None => Self::parse(query, content_type, &body),
        }
    }

    /// The first value of `name` (body first, then query), matched exactly.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, ignoring ASCII case (Exotel's keys vary in case).
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.all().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn all(&self) -> impl Iterator<Item = &(String, String)> {
        self.body.iter().chain(&self.query)
    }
}

pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

pub fn is_multipart(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

async fn multipart_pairs(content_type: &str, body: bytes::Bytes) -> Result<Vec<(String, String)>, String> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| format!("multipart body: {e}"))?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut pairs = Vec::new();
    while let Some(part) = parts.next_field().await.map_err(|e| format!("multipart body: {e}"))? {
        let name = part.name().ok_or("a multipart part has no name")?.to_owned();
        if part.file_name().is_some() {
            return Err(format!("multipart part {name:?} is a file; only text fields are expected"));
        }
        let value = part.bytes().await.map_err(|e| format!("multipart part {name:?}: {e}"))?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| format!("multipart part {name:?} is not UTF-8"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn json_pairs(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let object = value.as_object().ok_or("the JSON body is not an object")?;
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
    use super::Fields;

    #[test]
    fn form_and_query_merge_with_the_body_first() {
        let fields = Fields::parse(Some("menu=2&CallSid=q"), None, b"CallSid=CA1&From=%2B14158675309").unwrap();
        assert_eq!(fields.get("CallSid"), Some("CA1"));
        assert_eq!(fields.get("From"), Some("+14158675309"));
        assert_eq!(fields.get("menu"), Some("2"));
        assert_eq!(fields.get("callsid"), None);
        assert_eq!(fields.get_ignore_case("callsid"), Some("CA1"));
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

    #[test]
    fn json_objects_keep_nested_values_as_text() {
        let body = br#"{"CallSid":"abc","Legs":[{"Status":"completed"}],"ConversationDuration":42}"#;
        let fields = Fields::parse(None, Some("application/json; charset=utf-8"), body).unwrap();
        assert_eq!(fields.get("ConversationDuration"), Some("42"));
        assert_eq!(fields.get("Legs"), Some(r#"[{"Status":"completed"}]"#));
        assert!(Fields::parse(None, Some("application/json"), b"[1]").is_err());
    }
}
