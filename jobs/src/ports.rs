//! The outside world as the handlers see it: one field per port (telephony
//! provider, recording store, transcriber, analyzer, CRM sink), implemented in
//! the `switchboard` crate so that no handler imports an HTTP or SDK client.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a port call returns; boxed so ports can be trait objects.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PortError>> + Send + 'a>>;

/// A port's failure, classified by what retrying would do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortError {
    /// Worth retrying (timeouts, 5xx, 429 rate limits), after `retry_after` if the other side said.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying cannot help (bad credentials, a 4xx about the request itself).
    #[error("{message}")]
    Permanent { message: String },
    /// The request may have reached the other side, which may have acted on it
    /// (a timeout after sending, a reset mid-answer, an unreadable 2xx): repeating
    /// it may repeat its effect, such as a second call.
    #[error("{message}")]
    OutcomeUnknown { message: String },
    /// A link the provider handed out no longer works (an Exotel pre-signed
    /// `RecordingUrl` past its validity): a fresh one is needed, not a retry.
    #[error("{message}")]
    Expired { message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Provider {
    Twilio,
    Exotel,
}

impl Provider {
    /// As stored and as in URLs: `twilio`, `exotel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Exotel => "exotel",
        }
    }
}

/// A call for the provider to place: `to`, bridged to `from` (the agent)
/// when given, both seeing `caller_id`, so neither sees the other's number.
/// Exotel Connect dials `from` first, then `to`. Twilio dials `to` and runs
/// `twiml`, or, without it, dials `from` once `to` answers, with a `<Dial
/// action>` reporting how the agent's leg ended.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundCall {
    pub provider: Provider,
    /// The agent bridged to `to`.
    pub from: Option<String>,
    pub to: String,
    /// Our number shown to the callee (Twilio `From`, Exotel `CallerId`).
    pub caller_id: String,
    /// Twilio only: what the answered leg does instead of bridging `from`.
    pub twiml: Option<String>,
    /// Echoed back in status callbacks (Exotel `CustomField`, a Twilio callback query parameter).
    pub custom_field: Option<String>,
    pub status_callback: String,
    pub record: bool,
}

/// The provider's id for a call it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    pub call_sid: String,
}

/// What the provider's REST API says of a call (Twilio `Calls/{sid}.json`,
/// Exotel Call Details), for reconciliation.
#[derive(Debug, Clone, PartialEq)]
pub struct CallDetails {
    /// The call's status, in the provider's spelling.
    pub status: String,
    pub duration_secs: Option<i32>,
    pub legs: LegDetails,
    /// Exotel: the recording's (pre-signed, short-lived) link.
    pub recording_url: Option<String>,
}

/// What the provider knows of a call's legs.
#[derive(Debug, Clone, PartialEq)]
pub enum LegDetails {
    /// Nothing beyond the call's own status.
    Unknown,
    /// Twilio: the leg `<Dial>` placed from the call (its child call), if
    /// any, and whether answering-machine detection heard a machine.
    Dialled { agent: Option<String>, machine: bool },
    /// Exotel Connect: the agent's leg (dialled first), the customer's,
    /// whether a machine answered the customer's, the seconds both talked.
    Connect { agent: String, customer: String, customer_machine: bool, conversation_secs: Option<i32> },
}

/// Places calls through the provider's REST API. Not idempotent: callers
/// record their attempt before calling.
pub trait Telephony: Send + Sync {
    fn place_call<'a>(&'a self, call: &'a OutboundCall) -> PortFuture<'a, PlacedCall>;

    /// What the provider's REST API says of call `call_sid` at `provider`.
    fn lookup_call<'a>(&'a self, provider: Provider, call_sid: &'a str) -> PortFuture<'a, CallDetails> {
        let _ = (provider, call_sid);
        Box::pin(async { Err(PortError::Permanent { message: "this provider cannot look a call up".into() }) })
    }

    /// Hangs up a live call (Twilio: `Status=completed`). Providers without
    /// a documented way (Exotel's v1 API) refuse.
    fn end_call<'a>(&'a self, provider: Provider, call_sid: &'a str) -> PortFuture<'a, ()> {
        let _ = (provider, call_sid);
        Box::pin(async { Err(PortError::Permanent { message: "this provider cannot end a live call".into() }) })
    }

    /// Points a live call at new instructions (Twilio: the TwiML at `url`; a
    /// path is joined to our public base URL). Providers without it refuse.
    fn redirect_call<'a>(&'a self, call_sid: &'a str, url: &'a str) -> PortFuture<'a, ()> {
        let _ = (call_sid, url);
        Box::pin(async { Err(PortError::Permanent { message: "this provider cannot redirect a live call".into() }) })
    }
}

/// Our side of outbound calls: the provider that places them, the number both
/// parties see (Twilio number or ExoPhone) and where status callbacks go.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundLine {
    pub provider: Provider,
    pub caller_id: String,
    pub status_callback: String,
}

/// What time it is for handlers that apply wall-clock rules (the calling
/// window); the system clock unless a test sets its own.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Where recordings live (S3 or a local directory). Keys are deterministic, so
/// a second `put_file` of the same key overwrites.
pub trait RecordingStore: Send + Sync {
    /// Stores the file at `file` under `key`, streamed: never whole in memory.
    fn put_file<'a>(&'a self, key: &'a str, file: &'a Path, content_type: &'a str) -> PortFuture<'a, ()>;
    fn get<'a>(&'a self, key: &'a str) -> PortFuture<'a, Vec<u8>>;
    /// A time-limited URL anyone can GET, or `None` when the store serves the
    /// bytes itself (a local directory).
    fn presigned_url<'a>(&'a self, key: &'a str) -> PortFuture<'a, Option<String>>;
}

/// A recording as the provider's callback named it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSource {
    pub provider: Provider,
    pub url: String,
}

/// A downloaded recording, in a temporary file removed when this is dropped.
#[derive(Debug)]
pub struct Downloaded {
    pub file: tempfile::TempPath,
    pub bytes: u64,
    pub content_type: String,
    /// The file extension the key gets (`mp3`, `wav`).
    pub extension: String,
    /// Lowercase hex SHA-256 of the file, computed while streaming.
    pub sha256: String,
}

/// Downloads recordings with the provider's credentials, within a size limit,
/// to a temporary file.
pub trait RecordingFetcher: Send + Sync {
    fn download<'a>(&'a self, source: &'a RecordingSource) -> PortFuture<'a, Downloaded>;
}

/// Audio to transcribe; `filename` carries the extension the API needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub body: Vec<u8>,
    pub filename: String,
}

/// What speech-to-text gave back. `language`, `duration_seconds` and
/// `segments` are absent for models that answer plain `json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    pub text: String,
    pub language: Option<String>,
    pub duration_seconds: Option<f64>,
    pub segments: Option<serde_json::Value>,
    pub model: String,
    pub request_id: Option<String>,
}

pub trait Transcriber: Send + Sync {
    fn transcribe<'a>(&'a self, audio: Audio) -> PortFuture<'a, Transcription>;
}

/// A language model's structured answer about a transcript, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// The JSON text the model produced (already checked for refusal and truncation).
    pub json: String,
    pub model: String,
    pub request_id: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Estimated from the configured prices, in millionths of a US dollar.
    pub cost_micro_usd: i64,
}

/// What to extract from a transcript: instructions and a strict JSON schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractionRequest<'a> {
    pub system_prompt: &'a str,
    /// The user message: the transcript, delimited as untrusted data
    /// (`analyze::transcript_message`).
    pub transcript: &'a str,
    pub schema_name: &'a str,
    pub schema: serde_json::Value,
}

/// A language model answering in JSON that follows a schema. A refusal or a
/// truncated answer is a transient error (a retry may do better).
pub trait Analyzer: Send + Sync {
    fn extract<'a>(&'a self, request: &'a ExtractionRequest<'a>) -> PortFuture<'a, Extraction>;
}

/// Pushes a lead to the customer's CRM. The receiver dedupes on `delivery_id`.
pub trait CrmSink: Send + Sync {
    fn deliver<'a>(&'a self, delivery_id: &'a str, lead: &'a serde_json::Value) -> PortFuture<'a, ()>;
}

/// Every port a handler may call. Built once per worker process.
#[derive(Default, Clone)]
pub struct Ports {
    pub telephony: Option<Arc<dyn Telephony>>,
    pub outbound_line: Option<OutboundLine>,
    pub clock: Option<Arc<dyn Clock>>,
    pub recordings: Option<Arc<dyn RecordingStore>>,
    pub recording_fetcher: Option<Arc<dyn RecordingFetcher>>,
    pub transcriber: Option<Arc<dyn Transcriber>>,
    pub analyzer: Option<Arc<dyn Analyzer>>,
    /// `None` when no CRM is configured: leads stay in our database only.
    pub crm: Option<Arc<dyn CrmSink>>,
    /// Switches and thresholds of the after-call chain.
    pub pipeline: crate::pipeline_settings::PipelineSettings,
    /// Where overflow callbacks may go (`CALLBACK_ALLOWED_PREFIXES`).
    pub callback_prefixes: crate::phone::NumberPrefixes,
    /// How long a call holding an agent's slot may go unheard of before its
    /// provider is asked (`RECONCILE_AFTER`); `None`: [`RECONCILE_AFTER`].
    pub reconcile_after: Option<Duration>,
}

/// How long a call holding a slot may go unheard of by default: Twilio
/// retries a webhook for seconds, Exotel 5 and 15 minutes later.
pub const RECONCILE_AFTER: Duration = Duration::from_secs(3 * 60);

impl Ports {
    /// The telephony port, or a permanent error saying it is not configured.
    pub fn telephony(&self) -> Result<&dyn Telephony, PortError> {
        self.telephony
            .as_deref()
            .ok_or_else(|| unconfigured("no telephony provider configured (set TWILIO_* or EXOTEL_*)"))
    }

    /// The outbound line, or a permanent error saying it is not configured.
    pub fn outbound_line(&self) -> Result<&OutboundLine, PortError> {
        self.outbound_line
            .as_ref()
            .ok_or_else(|| unconfigured("no outbound line configured (set OUTBOUND_PROVIDER and OUTBOUND_CALLER_ID)"))
    }

    pub fn reconcile_after(&self) -> Duration {
        self.reconcile_after.unwrap_or(RECONCILE_AFTER)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.as_ref().map_or_else(Utc::now, |clock| clock.now())
    }

    pub fn recordings(&self) -> Result<&dyn RecordingStore, PortError> {
        self.recordings.as_deref().ok_or_else(|| unconfigured("no recording store configured"))
    }

    pub fn recording_fetcher(&self) -> Result<&dyn RecordingFetcher, PortError> {
        self.recording_fetcher.as_deref().ok_or_else(|| unconfigured("no recording fetcher configured"))
    }

    pub fn transcriber(&self) -> Result<&dyn Transcriber, PortError> {
        self.transcriber.as_deref().ok_or_else(|| unconfigured("no transcriber configured (set OPENAI_API_KEY)"))
    }

    pub fn analyzer(&self) -> Result<&dyn Analyzer, PortError> {
        self.analyzer.as_deref().ok_or_else(|| unconfigured("no analyzer configured (set OPENAI_API_KEY)"))
    }
}

/// A port the process was started without: retrying cannot make it appear.
fn unconfigured(message: &str) -> PortError {
    PortError::Permanent { message: message.into() }
}
