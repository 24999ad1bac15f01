//! Downloads recordings from the provider that made them: Twilio's
//! `RecordingUrl` plus `.mp3` with the account's Basic auth, Exotel's URL as
//! given. Streamed with a size limit and a timeout, hashed on the way.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` | (none) | Basic auth for Twilio recording media |
//! | `EXOTEL_API_KEY`, `EXOTEL_API_TOKEN` | (none) | Basic auth, sent only over https to `exotel.com` and its subdomains |
//! | `RECORDING_MAX_BYTES` | 104857600 | larger recordings are refused (dead job) |
//! | `RECORDING_FETCH_TIMEOUT` | `120s` | the whole download |

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use switchboard_jobs::ports::{Downloaded, PortError, PortFuture, Provider, RecordingFetcher, RecordingSource};

use crate::config::{duration, parsed, var};

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
}

impl RecordingDownloader {
    pub fn new(
        twilio: Option<BasicAuth>,
        exotel: Option<BasicAuth>,
        max_bytes: u64,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { client, twilio, exotel, max_bytes })
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(
            BasicAuth::from_env("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
            BasicAuth::from_env("EXOTEL_API_KEY", "EXOTEL_API_TOKEN"),
            parsed("RECORDING_MAX_BYTES", 100 * 1024 * 1024)?,
            duration("RECORDING_FETCH_TIMEOUT", "120s")?,
        )
    }

    fn request(&self, source: &RecordingSource) -> Result<reqwest::RequestBuilder, PortError> {
        let mut url = url::Url::parse(&source.url)
            .map_err(|e| PortError::Permanent { message: format!("recording URL {:?}: {e}", source.url) })?;
        let auth = match source.provider {
            Provider::Twilio => {
                if extension_of(url.path()).is_none() {
                    url.set_path(&format!("{}.mp3", url.path()));
                }
                Some(self.twilio.as_ref().ok_or_else(|| {
                    PortError::Permanent {
                        message: "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set: cannot fetch Twilio recordings"
                            .to_owned(),
                    }
                })?)
            }
            Provider::Exotel => self.exotel.as_ref().filter(|_| is_exotel(&url)),
        };
        let request = self.client.get(url);
        Ok(match auth {
            Some(auth) => request.basic_auth(&auth.user, Some(&auth.secret)),
            None => request,
        })
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
}

/// Exotel's own hosts over https: `exotel.com` or a subdomain of it, so that
/// the API token never reaches a look-alike (`evilexotel.com`) or the network
/// in clear. Other recording links (pre-signed storage URLs) get no credentials.
fn is_exotel(url: &url::Url) -> bool {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    url.scheme() == "https" && (host == "exotel.com" || host.ends_with(".exotel.com"))
}

/// `mp3`/`wav` when the URL path already names one.
fn extension_of(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    ["mp3", "wav"].into_iter().find(|ext| lower.ends_with(&format!(".{ext}")))
}

fn rejected(provider: Provider, status: StatusCode, retry_after: Option<Duration>) -> PortError {
    let credential = match provider {
        Provider::Twilio => "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        Provider::Exotel => "EXOTEL_API_KEY and EXOTEL_API_TOKEN (and the recording URL's validity)",
    };
    match status.as_u16() {
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
            // Without the URL: Exotel's links carry signatures that must not reach logs.
            let transient = |e: reqwest::Error| PortError::Transient {
                message: format!("downloading the recording: {}", e.without_url()),
                retry_after: None,
            };
            let response = self.request(source)?.send().await.map_err(transient)?;
            let status = response.status();
            if !status.is_success() {
                return Err(rejected(source.provider, status, crate::retry_after::from_headers(response.headers())));
            }
            if let Some(length) = response.content_length().filter(|l| *l > self.max_bytes) {
                return Err(self.too_large(length));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase());
            let extension = match content_type.as_deref() {
                Some("audio/wav" | "audio/x-wav" | "audio/wave") => "wav",
                Some("audio/mpeg" | "audio/mp3") => "mp3",
                _ => extension_of(response.url().path()).unwrap_or("mp3"),
            };
            let mut body = Vec::new();
            let mut hasher = Sha256::new();
            let mut chunks = response.bytes_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(transient)?;
                if (body.len() + chunk.len()) as u64 > self.max_bytes {
                    return Err(self.grew_too_large());
                }
                hasher.update(&chunk);
                body.extend_from_slice(&chunk);
            }
            let content_type = if extension == "wav" { "audio/wav" } else { "audio/mpeg" };
            Ok(Downloaded {
                body,
                content_type: content_type.to_owned(),
                extension: extension.to_owned(),
                sha256: hex::encode(hasher.finalize()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn downloader(max_bytes: u64) -> RecordingDownloader {
        let exotel = BasicAuth { user: "exotel-key".to_owned(), secret: "exotel-token".to_owned() };
        RecordingDownloader::new(None, Some(exotel), max_bytes, Duration::from_secs(5)).unwrap()
    }

    fn exotel(url: &str) -> RecordingSource {
        RecordingSource { provider: Provider::Exotel, url: url.to_owned() }
    }

    fn sends_credentials(url: &str) -> bool {
        let request = downloader(1024).request(&exotel(url)).unwrap().build().unwrap();
        request.headers().contains_key(reqwest::header::AUTHORIZATION)
    }

    #[test]
    fn exotel_credentials_go_only_to_exotel_hosts_over_https() {
        assert!(sends_credentials("https://api.exotel.com/v1/Accounts/a/Calls/c.mp3"));
        assert!(sends_credentials("https://api.in.exotel.com/v1/Accounts/a/Calls/c.mp3"));
        assert!(sends_credentials("https://exotel.com/r.mp3"));
        assert!(sends_credentials("https://RECORDINGS.Exotel.com/r.mp3"));
        for elsewhere in [
            "https://evilexotel.com/r.mp3",
            "https://exotel.com.evil.example/r.mp3",
            "https://exotel.in/r.mp3",
            "http://api.exotel.com/r.mp3",
            "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/r.mp3",
        ] {
            assert!(!sends_credentials(elsewhere), "{elsewhere}");
        }
    }

    #[tokio::test]
    async fn a_recording_growing_past_the_limit_without_a_length_is_refused() {
        use axum::body::Body;
        let chunks = || futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![0u8; 512])));
        let app =
            axum::Router::new().route("/r.mp3", axum::routing::get(move || async move { Body::from_stream(chunks()) }));
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
        assert_eq!(downloader(4096).download(&exotel(&url)).await.unwrap().body.len(), 4096);
    }
}
