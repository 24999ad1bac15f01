//! Secrets and endpoints from the environment, refused at start when unsafe.
//! A secret is held in a `secrecy` type (its `Debug` prints `[REDACTED]`),
//! taken exactly as set (whitespace around one is refused: a pasted newline
//! is not part of a key, and trimming it silently would hide the mistake),
//! and long enough where guessing it opens a door (`EXOTEL_WEBHOOK_SECRET`,
//! `API_TOKENS`). An endpoint must be an absolute http(s) URL. Every refusal
//! names the variable, never its value.

use anyhow::bail;
use secrecy::{ExposeSecret, SecretString};

/// The fewest characters of a secret that alone guards a door (128 bits as
/// hex, or more as base64): `openssl rand -hex 16` makes one.
pub const MIN_GUARD_CHARS: usize = 32;

/// Variables holding one secret, whichever module reads them.
const SINGLE_SECRETS: [&str; 7] = [
    "EXOTEL_WEBHOOK_SECRET",
    "TWILIO_AUTH_TOKEN",
    "EXOTEL_API_KEY",
    "EXOTEL_API_TOKEN",
    "OPENAI_API_KEY",
    "CRM_WEBHOOK_SECRET",
    "AWS_SECRET_ACCESS_KEY",
];

/// Variables holding comma-separated secrets.
const LISTED_SECRETS: [&str; 2] = ["API_TOKENS", "TWILIO_WEBHOOK_SHARED_KEY"];

/// Variables holding an endpoint we send requests (and often credentials) to.
const ENDPOINTS: [&str; 7] = [
    "PUBLIC_BASE_URL",
    "OUTBOUND_STATUS_CALLBACK",
    "TWILIO_API_BASE",
    "EXOTEL_API_BASE",
    "OPENAI_BASE_URL",
    "CRM_WEBHOOK_URL",
    "S3_ENDPOINT",
];

/// Checks every secret and endpoint variable, whichever module reads it
/// later, so no process starts with one that is malformed.
pub fn refuse_unsafe_settings() -> anyhow::Result<()> {
    for name in SINGLE_SECRETS {
        secret(name)?;
    }
    for name in LISTED_SECRETS {
        secret_list(name, 1)?;
    }
    for name in ENDPOINTS {
        endpoint(name)?;
    }
    Ok(())
}

/// The secret in `name`, `None` when unset or empty; whitespace around it is refused.
pub fn secret(name: &str) -> anyhow::Result<Option<SecretString>> {
    let Some(raw) = raw(name) else { return Ok(None) };
    if raw.trim() != raw {
        bail!("{name} has whitespace around it; set it to the secret alone (the value is not shown)");
    }
    Ok(Some(raw.into()))
}

/// Like [`secret`], and refused when shorter than [`MIN_GUARD_CHARS`].
pub fn guarding_secret(name: &str) -> anyhow::Result<Option<SecretString>> {
    let found = secret(name)?;
    if found.as_ref().is_some_and(|secret| secret.expose_secret().chars().count() < MIN_GUARD_CHARS) {
        bail!("{name} is shorter than {MIN_GUARD_CHARS} characters (make one with `openssl rand -hex 16`)");
    }
    Ok(found)
}

/// The comma-separated secrets in `name` (empty entries skipped), each taken
/// exactly and at least `min_chars` long; the error says which entry.
pub fn secret_list(name: &str, min_chars: usize) -> anyhow::Result<Vec<SecretString>> {
    let Some(raw) = raw(name) else { return Ok(Vec::new()) };
    let mut secrets = Vec::new();
    for (index, entry) in raw.split(',').enumerate().filter(|(_, e)| !e.is_empty()) {
        let position = index + 1;
        if entry.trim() != entry {
            bail!("{name}: entry {position} has whitespace around it; separate entries with a bare comma");
        }
        if entry.chars().count() < min_chars {
            bail!("{name}: entry {position} is shorter than {min_chars} characters");
        }
        secrets.push(entry.into());
    }
    Ok(secrets)
}

/// The absolute http(s) URL in `name` with a host, `None` when unset.
pub fn endpoint(name: &str) -> anyhow::Result<Option<url::Url>> {
    let Some(raw) = raw(name) else { return Ok(None) };
    let parsed = url::Url::parse(raw.trim()).map_err(|e| anyhow::anyhow!("{name} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        bail!("{name} must be an http:// or https:// URL with a host");
    }
    Ok(Some(parsed))
}

/// The variable as set, `None` when unset or empty.
fn raw(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
