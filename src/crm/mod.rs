//! The optional CRM push: each lead POSTed as JSON, signed the Standard
//! Webhooks way ([`signing`]) so the receiver can trust it, refuse a replay
//! by its timestamp, and dedupe on its id. Redirects are not followed: the
//! signed request goes to `CRM_WEBHOOK_URL` or nowhere.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CRM_WEBHOOK_URL` | (none: no push) | where leads are POSTed |
//! | `CRM_WEBHOOK_SECRET` | (required with the URL) | Standard Webhooks secret, `whsec_<base64>` of at least 24 bytes |
//! | `CRM_WEBHOOK_TIMEOUT` | `10s` | one delivery |
//!
//! Headers: `webhook-id` (the delivery id: the same on every retry of one
//! lead push), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

pub mod signing;

use std::time::Duration;

use anyhow::Context;
use switchboard_jobs::ports::{CrmSink, PortError, PortFuture};

use crate::config::{duration, var};
use signing::{ID_HEADER, SIGNATURE_HEADER, SigningKey, TIMESTAMP_HEADER};

pub struct CrmWebhook {
    client: reqwest::Client,
    url: String,
    key: SigningKey,
}

impl CrmWebhook {
    /// `secret` in the Standard Webhooks form (`whsec_<base64>`).
    pub fn new(url: String, secret: &str, timeout: Duration) -> anyhow::Result<Self> {
        let key = SigningKey::parse("CRM_WEBHOOK_SECRET", secret)?;
        let client = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { client, url, key })
    }

    /// `None` when `CRM_WEBHOOK_URL` is unset.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(url) = var("CRM_WEBHOOK_URL") else { return Ok(None) };
        let secret = var("CRM_WEBHOOK_SECRET").context("CRM_WEBHOOK_SECRET is required with CRM_WEBHOOK_URL")?;
        Ok(Some(Self::new(url, &secret, duration("CRM_WEBHOOK_TIMEOUT", "10s")?)?))
    }
}

impl CrmSink for CrmWebhook {
    fn deliver<'a>(&'a self, delivery_id: &'a str, lead: &'a serde_json::Value) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let body = serde_json::to_vec(lead).expect("JSON value serializes");
            let timestamp = chrono::Utc::now().timestamp();
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(ID_HEADER, delivery_id)
                .header(TIMESTAMP_HEADER, timestamp)
                .header(SIGNATURE_HEADER, self.key.sign(delivery_id, timestamp, &body))
                .body(body)
                .send()
                .await
                // Without the URL: a CRM endpoint often carries its token in the query.
                .map_err(|e| PortError::Transient {
                    message: format!("CRM webhook: {}", e.without_url()),
                    retry_after: None,
                })?;
            let status = response.status();
            match status.as_u16() {
                200..=299 => Ok(()),
                300..=399 => Err(PortError::Permanent {
                    message: format!(
                        "CRM webhook answered {status}: redirects are not followed; set CRM_WEBHOOK_URL to the final URL"
                    ),
                }),
                408 | 409 | 425 | 429 | 500.. => Err(PortError::Transient {
                    message: format!("CRM webhook answered {status}"),
                    retry_after: crate::retry_after::from_headers(response.headers()),
                }),
                _ => Err(PortError::Permanent {
                    message: format!("CRM webhook answered {status}: check CRM_WEBHOOK_URL and CRM_WEBHOOK_SECRET"),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[tokio::test]
    async fn a_failed_delivery_does_not_name_the_url() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?token=crm-url-secret", closed.local_addr().unwrap());
        drop(closed);
        let crm = CrmWebhook::new(url, TEST_SECRET, Duration::from_secs(5)).unwrap();
        let error = crm.deliver("d1", &serde_json::json!({})).await.unwrap_err();
        let PortError::Transient { message, .. } = error else { panic!("{error:?}") };
        assert!(message.starts_with("CRM webhook: "), "{message}");
        assert!(!message.contains("crm-url-secret") && !message.contains("127.0.0.1"), "{message}");
    }
}
