//! What the providers' REST clients share: one HTTP client with timeouts, form
//! POSTs with HTTP Basic auth, and failures classified by what retrying would
//! do (unreachable, timeouts, 429 and 5xx are transient, honouring
//! `Retry-After`; any other 4xx is permanent and carries the provider's message).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_jobs::ports::PortError;

/// A provider account's REST endpoint. No `Debug`: the secret must not reach logs.
pub struct RestClient {
    http: reqwest::Client,
    provider: &'static str,
    user: String,
    secret: String,
    /// Reads the provider's own error message out of an error body.
    describe_error: fn(&Value) -> String,
}

impl RestClient {
    pub fn new(provider: &'static str, user: String, secret: String, describe_error: fn(&Value) -> String) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("a client with timeouts builds");
        Self { http, provider, user, secret, describe_error }
    }

    /// POSTs `form` to `url` and returns the JSON answer of a 2xx.
    pub async fn post_form(&self, url: String, form: &[(&str, String)]) -> Result<Value, PortError> {
        let provider = self.provider;
        let response =
            self.http.post(url).basic_auth(&self.user, Some(&self.secret)).form(form).send().await.map_err(|e| {
                PortError::Transient { message: format!("{provider} unreachable: {e}"), retry_after: None }
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = format!("{provider} answered {status}: {}", (self.describe_error)(&body));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(PortError::Transient { message, retry_after })
        } else {
            Err(PortError::Permanent { message })
        }
    }
}
