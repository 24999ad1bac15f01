//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): the
//! secret as `whsec_<base64>` (the prefix optional, as the reference
//! libraries take it), and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{webhook-id}.{webhook-timestamp}.{body}">`, so a receiver verifies with
//! its usual library, refuses an old timestamp (a replay) and dedupes on the id.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The fewest key bytes the specification allows.
const MIN_KEY_BYTES: usize = 24;

/// The HMAC key decoded from the secret. No `Debug`: it must not reach logs.
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// `whsec_<base64>` or the base64 alone, decoding to at least 24 bytes.
    /// Errors name the variable, never the value.
    pub fn parse(name: &str, secret: &str) -> anyhow::Result<Self> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD.decode(encoded).ok().with_context(|| {
            format!("{name} is not a Standard Webhooks secret: whsec_ then base64 (make one with `echo whsec_$(openssl rand -base64 32)`)")
        })?;
        if key.len() < MIN_KEY_BYTES {
            bail!("{name} decodes to {} bytes; Standard Webhooks secrets are at least {MIN_KEY_BYTES}", key.len());
        }
        Ok(Self(key))
    }

    /// `v1,<base64>` for the message `id` sent at `timestamp` (Unix seconds) with `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specifications_test_vector() {
        let key = SigningKey::parse("S", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let unprefixed = SigningKey::parse("S", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            unprefixed.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#),
            signature
        );
    }

    #[test]
    fn secrets_that_are_not_base64_or_too_short_are_refused_without_showing_them() {
        let error = SigningKey::parse("CRM_WEBHOOK_SECRET", "whsec_not base64!").err().unwrap().to_string();
        assert!(error.starts_with("CRM_WEBHOOK_SECRET is not a Standard Webhooks secret"), "{error}");
        assert!(!error.contains("not base64!"), "{error}");
        let short = SigningKey::parse("CRM_WEBHOOK_SECRET", "whsec_c2hvcnQ=").err().unwrap().to_string();
        assert_eq!(short, "CRM_WEBHOOK_SECRET decodes to 5 bytes; Standard Webhooks secrets are at least 24");
    }
}
