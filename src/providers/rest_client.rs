//! What the providers' REST clients share: one HTTP client with timeouts, form
//! POSTs with HTTP Basic auth, and failures classified by what retrying would
//! do (form POSTs and GETs). A request that certainly never left (no
//! connection could be made), a 429 or a 503 is transient, honouring
//! `Retry-After` (read by [`crate::retry_after`], capped); one that may have
//! reached the provider (a timeout or reset after sending, another 5xx, a 2xx
//! whose JSON cannot be read) has an unknown outcome, since creating a call is
//! not idempotent; any other 4xx is permanent and carries the provider's message.

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
        self.send(self.http.post(url).form(form)).await
    }

    /// GETs `url` with `query` and returns the JSON answer of a 2xx.
    pub async fn get(&self, url: String, query: &[(&str, &str)]) -> Result<Value, PortError> {
        self.send(self.http.get(url).query(query)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, PortError> {
        let provider = self.provider;
        let response = request
            .basic_auth(&self.user, Some(&self.secret))
            .send()
            .await
            .map_err(|e| unsent_or_unknown(provider, e))?;
        let status = response.status();
        let retry_after = crate::retry_after::from_headers(response.headers());
        let body = response.bytes().await;
        if status.is_success() {
            let unreadable = |e: String| PortError::OutcomeUnknown {
                message: format!("{provider} took the request ({status}) but its answer is unreadable: {e}"),
            };
            let body = body.map_err(|e| unreadable(e.to_string()))?;
            return serde_json::from_slice(&body).map_err(|e| unreadable(e.to_string()));
        }
        let body: Value = body.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        let message = format!("{provider} answered {status}: {}", (self.describe_error)(&body));
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Err(PortError::Transient { message, retry_after })
            }
            _ if status.is_server_error() => Err(PortError::OutcomeUnknown { message }),
            _ => Err(PortError::Permanent { message }),
        }
    }
}

/// A connection that could not be made (refused, DNS, connect timeout) means
/// the request never left; any later failure may come after the provider got it.
fn unsent_or_unknown(provider: &str, error: reqwest::Error) -> PortError {
    if error.is_connect() {
        PortError::Transient { message: format!("{provider} unreachable: {error}"), retry_after: None }
    } else {
        PortError::OutcomeUnknown { message: format!("{provider} may have received the request: {error}") }
    }
}
