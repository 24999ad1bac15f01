//! Downloads recordings from the provider that made them: Twilio's
//! `RecordingUrl` plus `.mp3` with the account's Basic auth, Exotel's URL as
//! given. Only from where [`allowed`] and [`addresses`] say, following a
//! redirect only within the same host, keeping only `audio/*` answers; streamed
//! to a temporary file with a size limit and a timeout, hashed on the way, so a
//! recording is never whole in memory.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` | (none) | Basic auth for Twilio recording media, sent only over https to Twilio's API host |
//! | `EXOTEL_API_KEY`, `EXOTEL_API_TOKEN` | (none) | Basic auth, sent only over https to `exotel.com` and its subdomains |
//! | `RECORDING_MAX_BYTES` | 104857600 | larger recordings are refused (dead job) |
//! | `RECORDING_FETCH_TIMEOUT` | `120s` | the whole download |
//! | `RECORDING_FETCH_ALLOW_LOOPBACK` | `false` | `true` (or `1`): recording URLs on a loopback address (127.0.0.1, ::1) are fetched, over http too, and Twilio's credentials go there: for the demo's and the tests' simulators only |

mod addresses;
mod allowed;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use switchboard_jobs::ports::{Downloaded, PortError, PortFuture, Provider, RecordingFetcher, RecordingSource};
use tokio::io::AsyncWriteExt;
use url::Url;

pub use addresses::Loopback;
use addresses::{CheckedResolver, forbidden_in};

use crate::config::{duration, flag, parsed, var};

/// Redirects followed within one host before giving up.
const MAX_REDIRECTS: usize = 5;

/// An account's Basic-auth pair. No `Debug`: the secret must not reach logs.
pub struct BasicAuth {
    pub user: String,
    pub secret: String,
}

impl BasicAuth {
    fn from_env(user: &str, secret: &str) -> Option<Self> {
        Some(Self { user: var(user)?, secret: var(secret)? })
    }
}

pub struct RecordingDownloader {
    client: reqwest::Client,
    twilio: Option<BasicAuth>,
    exotel: Option<BasicAuth>,
    max_bytes: u64,
    loopback: Loopback,
}

impl RecordingDownloader {
    pub fn new(
        twilio: Option<BasicAuth>,
        exotel: Option<BasicAuth>,
        max_bytes: u64,
        timeout: Duration,
        loopback: Loopback,
    ) -> anyhow::Result<Self> {
        // No proxy: one would resolve names itself, past our checks.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { loopback }))
            .build()?;
        Ok(Self { client, twilio, exotel, max_bytes, loopback })
    }

    pub fn from_env() -> anyhow::Result<Self> {
        let loopback = match flag("RECORDING_FETCH_ALLOW_LOOPBACK", false)? {
            true => Loopback::Allowed,
            false => Loopback::Refused,
        };
        Self::new(
            BasicAuth::from_env("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
            BasicAuth::from_env("EXOTEL_API_KEY", "EXOTEL_API_TOKEN"),
            parsed("RECORDING_MAX_BYTES", 100 * 1024 * 1024)?,
            duration("RECORDING_FETCH_TIMEOUT", "120s")?,
            loopback,
        )
    }

    /// The URL to GET: the source's, with `.mp3` for Twilio's extensionless
    /// links; refused unless [`allowed::refusal`] lets it through.
    fn url(&self, source: &RecordingSource) -> Result<Url, PortError> {
        let mut url = Url::parse(&source.url)
            .map_err(|e| PortError::Permanent { message: format!("recording URL {:?}: {e}", source.url) })?;
        if source.provider == Provider::Twilio && extension_of(url.path()).is_none() {
            url.set_path(&format!("{}.mp3", url.path()));
        }
        match allowed::refusal(source.provider, &url, self.loopback) {
            Some(reason) => Err(PortError::Permanent { message: format!("recording URL refused: {reason}") }),
            None => Ok(url),
        }
    }

    /// The credentials `url` may carry; Twilio's are required.
    fn credentials(&self, provider: Provider, url: &Url) -> Result<Option<&BasicAuth>, PortError> {
        let auth = match provider {
            Provider::Twilio => Some(self.twilio.as_ref().ok_or_else(|| PortError::Permanent {
                message:
                    "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set: cannot fetch Twilio recordings".to_owned(),
            })?),
            Provider::Exotel => self.exotel.as_ref(),
        };
        Ok(auth.filter(|_| allowed::sees_credentials(provider, url, self.loopback)))
    }

    /// GETs `url`, following redirects only within its own scheme, host and port.
    async fn get(&self, mut url: Url, auth: Option<&BasicAuth>) -> Result<reqwest::Response, PortError> {
        for _ in 0..=MAX_REDIRECTS {
            let request = self.client.get(url.clone());
            let request = match auth {
                Some(auth) => request.basic_auth(&auth.user, Some(&auth.secret)),
                None => request,
            };
            let response = request.send().await.map_err(send_error)?;
            if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            let next = location.and_then(|l| url.join(l).ok()).ok_or_else(|| PortError::Permanent {
                message: format!("the recording answered {} without a usable Location", response.status()),
            })?;
            if (next.scheme(), next.host_str(), next.port_or_known_default())
                != (url.scheme(), url.host_str(), url.port_or_known_default())
            {
                return Err(PortError::Permanent {
                    message: format!(
                        "the recording redirected to another host ({}); not followed",
                        next.host_str().unwrap_or_default()
                    ),
                });
            }
            url = next;
        }
        Err(PortError::Permanent { message: format!("the recording redirected more than {MAX_REDIRECTS} times") })
    }

    /// The provider announced `length` bytes.
    fn too_large(&self, length: u64) -> PortError {
        PortError::Permanent {
            message: format!(
                "recording is {length} bytes, over RECORDING_MAX_BYTES={}; not downloaded",
                self.max_bytes
            ),
        }
    }

    /// More than the limit arrived without a length announced.
    fn grew_too_large(&self) -> PortError {
        PortError::Permanent {
            message: format!("recording is over RECORDING_MAX_BYTES={} bytes; download stopped", self.max_bytes),
        }
    }

    /// The body streamed to a temporary file: its path, length and SHA-256.
    async fn save(&self, response: reqwest::Response) -> Result<(tempfile::TempPath, u64, String), PortError> {
        let (file, path) = tempfile::Builder::new().prefix("recording-").tempfile().map_err(disk_error)?.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(send_error)?;
            bytes += chunk.len() as u64;
            if bytes > self.max_bytes {
                return Err(self.grew_too_large());
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(disk_error)?;
        }
        file.flush().await.map_err(disk_error)?;
        Ok((path, bytes, hex::encode(hasher.finalize())))
    }
}

/// A failed request: permanent when the host resolved to an address we do
/// not fetch from, else transient. Without the URL: Exotel's links carry
/// signatures that must not reach logs.
fn send_error(error: reqwest::Error) -> PortError {
    if let Some(forbidden) = forbidden_in(&error) {
        return PortError::Permanent { message: format!("recording URL refused: {forbidden}") };
    }
    PortError::Transient { message: format!("downloading the recording: {}", error.without_url()), retry_after: None }
}

fn disk_error(error: std::io::Error) -> PortError {
    PortError::Transient { message: format!("writing the recording to a temporary file: {error}"), retry_after: None }
}

/// `mp3`/`wav` when the URL path already names one.
fn extension_of(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    ["mp3", "wav"].into_iter().find(|ext| lower.ends_with(&format!(".{ext}")))
}

/// The answer's media type, lowercase and without parameters.
fn media_type(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get(reqwest::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or(value).trim().to_ascii_lowercase())
}

fn rejected(provider: Provider, status: StatusCode, retry_after: Option<Duration>) -> PortError {
    let credential = match provider {
        Provider::Twilio => "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        Provider::Exotel => "EXOTEL_API_KEY and EXOTEL_API_TOKEN (and the recording URL's validity)",
    };
    match status.as_u16() {
        // Exotel's links are pre-signed for 5-60 minutes; S3 refuses an expired one with 403.
        403 if provider == Provider::Exotel => PortError::Expired {
            message: format!("Exotel's recording link answered {status}: expired, or {credential}"),
        },
        401 | 403 => PortError::Permanent {
            message: format!("{provider:?} answered {status} for the recording: check {credential}"),
        },
        404 => PortError::Transient { message: format!("recording not ready yet ({status})"), retry_after },
        408 | 429 | 500..=599 => {
            PortError::Transient { message: format!("{provider:?} answered {status}"), retry_after }
        }
        _ => PortError::Permanent { message: format!("{provider:?} answered {status} for the recording") },
    }
}

impl RecordingFetcher for RecordingDownloader {
    fn download<'a>(&'a self, source: &'a RecordingSource) -> PortFuture<'a, Downloaded> {
        Box::pin(async move {
            let url = self.url(source)?;
            let auth = self.credentials(source.provider, &url)?;
            let response = self.get(url, auth).await?;
            let status = response.status();
            if !status.is_success() {
                return Err(rejected(source.provider, status, crate::retry_after::from_headers(response.headers())));
            }
            if let Some(length) = response.content_length().filter(|l| *l > self.max_bytes) {
                return Err(self.too_large(length));
            }
            let media_type = media_type(&response);
            let extension = match media_type.as_deref() {
                Some("audio/wav" | "audio/x-wav" | "audio/wave") => "wav",
                Some(audio) if audio.starts_with("audio/") => extension_of(response.url().path()).unwrap_or("mp3"),
                other => {
                    return Err(PortError::Permanent {
                        message: format!(
                            "the recording answered Content-Type {}, not audio/*; not stored",
                            other.unwrap_or("(none)")
                        ),
                    });
                }
            };
            let (file, bytes, sha256) = self.save(response).await?;
            let content_type = if extension == "wav" { "audio/wav" } else { "audio/mpeg" };
            Ok(Downloaded {
                file,
                bytes,
                content_type: content_type.to_owned(),
                extension: extension.to_owned(),
                sha256,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn downloader(max_bytes: u64) -> RecordingDownloader {
        RecordingDownloader::new(None, None, max_bytes, Duration::from_secs(5), Loopback::Allowed).unwrap()
    }

    fn exotel(url: &str) -> RecordingSource {
        RecordingSource { provider: Provider::Exotel, url: url.to_owned() }
    }

    #[tokio::test]
    async fn a_recording_growing_past_the_limit_without_a_length_is_refused() {
        use axum::body::Body;
        let chunks = || futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![0u8; 512])));
        let app = axum::Router::new().route(
            "/r.mp3",
            axum::routing::get(move || async move { ([("content-type", "audio/mpeg")], Body::from_stream(chunks())) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/r.mp3", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let error = downloader(1000).download(&exotel(&url)).await.unwrap_err();
        assert_eq!(
            error,
            PortError::Permanent {
                message: "recording is over RECORDING_MAX_BYTES=1000 bytes; download stopped".into()
            }
        );
        let downloaded = downloader(4096).download(&exotel(&url)).await.unwrap();
        assert_eq!(downloaded.bytes, 4096);
        assert_eq!(std::fs::metadata(&downloaded.file).unwrap().len(), 4096);
        let path = downloaded.file.to_path_buf();
        drop(downloaded);
        assert!(!path.exists(), "the temporary file goes with the download");
    }
}
