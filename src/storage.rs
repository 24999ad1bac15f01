//! Recordings at rest: a local directory (the default) or S3 and
//! S3-compatible stores through `aws-sdk-s3`, behind the `RecordingStore` port.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RECORDING_STORAGE` | `local` | `local` or `s3`; `local` is refused on a Heroku dyno (`DYNO` set), whose disk is wiped at every restart |
//! | `RECORDING_DIR` | `./recordings` | the directory for `local` |
//! | `S3_BUCKET` | (required for `s3`) | bucket for recordings |
//! | `S3_REGION` | `AWS_REGION`, else `us-east-1` | the bucket's region |
//! | `S3_ENDPOINT` | (AWS) | an S3-compatible endpoint (MinIO, R2, moto); path-style addressing |
//! | `S3_SSE` | `AES256` | server-side encryption: `AES256`, `aws:kms` or `none` |
//! | `S3_SSE_KMS_KEY_ID` | (bucket default) | the KMS key for `aws:kms` |
//! | `RECORDING_URL_TTL` | `15m` | lifetime of presigned GET URLs (at most 7 days) |
//!
//! S3 credentials come from the AWS default chain (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, profiles, instance roles). Checksums are sent and
//! checked only when an operation requires them: many S3-compatible stores
//! reject the SDK's default CRC32 trailers.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Builder, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use switchboard_jobs::ports::{PortError, PortFuture, RecordingStore};

use crate::config::{duration, var};

/// The configured store; the web streams from it or redirects to it.
pub enum RecordingStorage {
    Local(LocalDir),
    S3(S3Store),
}

/// How the web hands a recording to a client.
pub enum Retrieval {
    /// A presigned URL to redirect to.
    Redirect(String),
    /// A local file to stream, with its length.
    File(tokio::fs::File, u64),
}

impl RecordingStorage {
    pub async fn from_env() -> anyhow::Result<Self> {
        match var("RECORDING_STORAGE").as_deref().unwrap_or("local") {
            "local" if crate::config::on_dyno() => bail!(
                "RECORDING_STORAGE is `local` (the default) on a Heroku dyno (DYNO is set): a dyno's disk is its \
                 own and is wiped at every restart, so the web could not serve what a worker stored and it would \
                 be gone within a day. Set RECORDING_STORAGE=s3 and S3_BUCKET (docs/deploy-heroku.md)"
            ),
            "local" => Ok(Self::Local(LocalDir::new(var("RECORDING_DIR").unwrap_or_else(|| "recordings".to_owned())))),
            "s3" => Ok(Self::S3(S3Store::connect(S3Settings::from_env()?, None).await)),
            other => bail!("RECORDING_STORAGE={other:?} is not valid: use `local` or `s3`"),
        }
    }

    pub async fn retrieve(&self, key: &str) -> Result<Retrieval, PortError> {
        match self {
            Self::Local(dir) => {
                let file = tokio::fs::File::open(dir.path(key)?).await.map_err(|e| io_error(key, e))?;
                let len = file.metadata().await.map_err(|e| io_error(key, e))?.len();
                Ok(Retrieval::File(file, len))
            }
            Self::S3(s3) => Ok(Retrieval::Redirect(s3.presign(key).await?)),
        }
    }

    fn store(&self) -> &dyn RecordingStore {
        match self {
            Self::Local(dir) => dir,
            Self::S3(s3) => s3,
        }
    }
}

impl RecordingStore for RecordingStorage {
    fn put_file<'a>(&'a self, key: &'a str, file: &'a Path, content_type: &'a str) -> PortFuture<'a, ()> {
        self.store().put_file(key, file, content_type)
    }

    fn get<'a>(&'a self, key: &'a str) -> PortFuture<'a, Vec<u8>> {
        self.store().get(key)
    }

    fn presigned_url<'a>(&'a self, key: &'a str) -> PortFuture<'a, Option<String>> {
        self.store().presigned_url(key)
    }
}

/// Recordings as files under one directory, keys as relative paths.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The file for `key`; a key that would leave the directory is refused.
    fn path(&self, key: &str) -> Result<PathBuf, PortError> {
        let relative = Path::new(key);
        if key.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(PortError::Permanent { message: format!("storage key {key:?} is not a plain relative path") });
        }
        Ok(self.root.join(relative))
    }
}

fn io_error(key: &str, error: std::io::Error) -> PortError {
    let message = format!("recording {key}: {error}");
    match error.kind() {
        std::io::ErrorKind::NotFound => PortError::Permanent { message },
        _ => PortError::Transient { message, retry_after: None },
    }
}

impl RecordingStore for LocalDir {
    /// Copied to a temporary file and renamed, so a reader never sees half a recording.
    fn put_file<'a>(&'a self, key: &'a str, file: &'a Path, _content_type: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| io_error(key, e))?;
            }
            let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4()));
            tokio::fs::copy(file, &partial).await.map_err(|e| io_error(key, e))?;
            tokio::fs::rename(&partial, &path).await.map_err(|e| io_error(key, e))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> PortFuture<'a, Vec<u8>> {
        Box::pin(async move { tokio::fs::read(self.path(key)?).await.map_err(|e| io_error(key, e)) })
    }

    fn presigned_url<'a>(&'a self, _key: &'a str) -> PortFuture<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }
}

/// Where and how recordings go in S3.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub encryption: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub url_ttl: Duration,
}

impl S3Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let encryption = match var("S3_SSE").as_deref().unwrap_or("AES256") {
            "none" => None,
            "AES256" => Some(ServerSideEncryption::Aes256),
            "aws:kms" => Some(ServerSideEncryption::AwsKms),
            other => bail!("S3_SSE={other:?} is not valid: use AES256, aws:kms or none"),
        };
        let url_ttl = duration("RECORDING_URL_TTL", "15m")?;
        if url_ttl > Duration::from_secs(7 * 86400) {
            bail!("RECORDING_URL_TTL is over 7 days, the longest a SigV4 presigned URL lasts");
        }
        Ok(Self {
            bucket: var("S3_BUCKET").context("S3_BUCKET is required when RECORDING_STORAGE=s3")?,
            region: var("S3_REGION").or_else(|| var("AWS_REGION")).unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint: var("S3_ENDPOINT"),
            encryption,
            kms_key_id: var("S3_SSE_KMS_KEY_ID"),
            url_ttl,
        })
    }
}

pub struct S3Store {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
}

impl S3Store {
    /// A client for `settings`; `credentials` override the AWS default chain (tests).
    pub async fn connect(settings: S3Settings, credentials: Option<Credentials>) -> Self {
        let builder = match credentials {
            Some(credentials) => Builder::new().behavior_version_latest().credentials_provider(credentials),
            // The region is ours to give: without it the default chain asks the instance metadata service.
            None => Builder::from(
                &aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(Region::new(settings.region.clone()))
                    .load()
                    .await,
            ),
        };
        let mut builder = builder
            .region(Region::new(settings.region.clone()))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Self { client: aws_sdk_s3::Client::from_conf(builder.build()), settings }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    async fn presign(&self, key: &str) -> Result<String, PortError> {
        let config = PresigningConfig::expires_in(self.settings.url_ttl)
            .map_err(|e| PortError::Permanent { message: format!("RECORDING_URL_TTL: {e}") })?;
        let request = self.client.get_object().bucket(&self.settings.bucket).key(key).presigned(config).await;
        Ok(request.map_err(|e| s3_error(key, e))?.uri().to_owned())
    }
}

/// 4xx answers (other than throttling) will not change on retry; the rest may.
fn s3_error<E>(key: &str, error: SdkError<E, HttpResponse>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let message = format!("S3 {key}: {}", DisplayErrorContext(&error));
    match status {
        Some(code) if (400..500).contains(&code) && code != 408 && code != 429 => PortError::Permanent { message },
        _ => PortError::Transient { message, retry_after: None },
    }
}

impl RecordingStore for S3Store {
    /// One PUT streamed from the file (retries read it again).
    fn put_file<'a>(&'a self, key: &'a str, file: &'a Path, content_type: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let body = ByteStream::from_path(file).await.map_err(|e| PortError::Transient {
                message: format!("S3 {key}: reading the downloaded file: {e}"),
                retry_after: None,
            })?;
            let request = self
                .client
                .put_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .content_type(content_type)
                .set_server_side_encryption(self.settings.encryption.clone())
                .set_ssekms_key_id(self.settings.kms_key_id.clone())
                .body(body);
            request.send().await.map_err(|e| s3_error(key, e))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> PortFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let object = self
                .client
                .get_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| s3_error(key, e))?;
            let body = object.body.collect().await.map_err(|e| PortError::Transient {
                message: format!("S3 {key}: reading the body: {e}"),
                retry_after: None,
            })?;
            Ok(body.into_bytes().to_vec())
        })
    }

    fn presigned_url<'a>(&'a self, key: &'a str) -> PortFuture<'a, Option<String>> {
        Box::pin(async move { self.presign(key).await.map(Some) })
    }
}
