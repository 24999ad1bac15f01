//! A webhook's parameters as the provider sent them: the query string and the
//! body (form-encoded or a JSON object) merged, every field kept, nothing trimmed.

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

    #[test]
    fn json_objects_keep_nested_values_as_text() {
        let body = br#"{"CallSid":"abc","Legs":[{"Status":"completed"}],"ConversationDuration":42}"#;
        let fields = Fields::parse(None, Some("application/json; charset=utf-8"), body).unwrap();
        assert_eq!(fields.get("ConversationDuration"), Some("42"));
        assert_eq!(fields.get("Legs"), Some(r#"[{"Status":"completed"}]"#));
        assert!(Fields::parse(None, Some("application/json"), b"[1]").is_err());
    }
}
