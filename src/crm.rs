//! The optional CRM push: each lead POSTed as JSON, signed with
//! HMAC-SHA256 so the receiver can trust it, under a delivery id it can dedupe on.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CRM_WEBHOOK_URL` | (none: no push) | where leads are POSTed |
//! | `CRM_WEBHOOK_SECRET` | (required with the URL) | HMAC key for `X-Switchboard-Signature` |
//! | `CRM_WEBHOOK_TIMEOUT` | `10s` | one delivery |
//!
//! Headers: `X-Switchboard-Delivery` (stable across retries) and
//! `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.

use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use switchboard_jobs::ports::{CrmSink, PortError, PortFuture};

use crate::config::{duration, var};

pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
pub const DELIVERY_HEADER: &str = "x-switchboard-delivery";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct CrmWebhook {
    client: reqwest::Client,
    url: String,
    secret: String,
}

impl CrmWebhook {
    pub fn new(url: String, secret: String, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self { client: reqwest::Client::builder().timeout(timeout).build()?, url, secret })
    }

    /// `None` when `CRM_WEBHOOK_URL` is unset.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(url) = var("CRM_WEBHOOK_URL") else { return Ok(None) };
        let secret = var("CRM_WEBHOOK_SECRET").context("CRM_WEBHOOK_SECRET is required with CRM_WEBHOOK_URL")?;
        Ok(Some(Self::new(url, secret, duration("CRM_WEBHOOK_TIMEOUT", "10s")?)?))
    }
}

impl CrmSink for CrmWebhook {
    fn deliver<'a>(&'a self, delivery_id: &'a str, lead: &'a serde_json::Value) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let body = serde_json::to_vec(lead).expect("JSON value serializes");
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, delivery_id)
                .header(SIGNATURE_HEADER, signature(self.secret.as_bytes(), &body))
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

    #[tokio::test]
    async fn a_failed_delivery_does_not_name_the_url() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?token=crm-url-secret", closed.local_addr().unwrap());
        drop(closed);
        let crm = CrmWebhook::new(url, "secret".to_owned(), Duration::from_secs(5)).unwrap();
        let error = crm.deliver("d1", &serde_json::json!({})).await.unwrap_err();
        let PortError::Transient { message, .. } = error else { panic!("{error:?}") };
        assert!(message.starts_with("CRM webhook: "), "{message}");
        assert!(!message.contains("crm-url-secret") && !message.contains("127.0.0.1"), "{message}");
    }
}
