//! Speech to text and structured extraction against any OpenAI-compatible
//! server (`OPENAI_BASE_URL`): OpenAI, whisper.cpp, speaches, vLLM, LocalAI.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OPENAI_API_KEY` | (none: transcribe and analyze jobs go dead saying so) | bearer key; local servers accept any |
//! | `OPENAI_BASE_URL` | `https://api.openai.com/v1` | the API root |
//! | `TRANSCRIBE_MODEL` | `whisper-1` | `verbose_json` with segments; `gpt-*-transcribe` models answer `json` only |
//! | `ANALYZE_MODEL` | `gpt-4o-mini` | chat model with structured outputs |
//! | `ANALYZE_TEMPERATURE` | `0`, none for reasoning models (`o1`, `o3`, `o4-*`, `gpt-5*`), which refuse it | sampling temperature of the extraction; `none` sends none |
//! | `ANALYZE_INPUT_PRICE_PER_MTOK` | `0.15` | US dollars per million prompt tokens, for the cost estimate |
//! | `ANALYZE_OUTPUT_PRICE_PER_MTOK` | `0.60` | US dollars per million completion tokens |
//! | `OPENAI_TIMEOUT` | `300s` | one request |
//! | `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID` | (none) | read by async-openai: sent as `OpenAI-Organization`, `OpenAI-Project` |
//!
//! Extraction requests are built from async-openai's types
//! (`CreateChatCompletionRequest` with a strict `json_schema` response format)
//! and sent by its client over our own transport (its `middleware` feature):
//! the client's own answers drop the response headers, so our transport reads
//! `x-request-id`, and classifies a failed answer by status, error code,
//! `x-should-retry` and `retry-after-ms`/`retry-after` (telephony.md 5.3)
//! before the client sees it. The client never retries by itself; the job
//! queue does. Transcriptions are our own multipart request through the same
//! transport, because async-openai's form gives the `file` part no
//! `Content-Type` (the official SDK sends the audio's type), and they are read
//! from the raw body, because OpenAI-compatible servers (whisper.cpp,
//! speaches) leave out fields that async-openai's response types require (`usage`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use async_openai::config::Config;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage, CreateChatCompletionRequest, FinishReason,
    ResponseFormat, ResponseFormatJsonSchema,
};
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::Value;
use switchboard_jobs::ports::{
    Analyzer, Audio, Extraction, ExtractionRequest, PortError, PortFuture, Transcriber, Transcription,
};

use crate::config::{duration, var};

/// Prices in millionths of a US dollar per million tokens: integers, never float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrices {
    pub input_micro_usd_per_mtok: i64,
    pub output_micro_usd_per_mtok: i64,
}

impl TokenPrices {
    /// The cost of one request, rounded up to the next millionth of a dollar.
    pub fn cost_micro_usd(&self, prompt_tokens: i64, completion_tokens: i64) -> i64 {
        let total = i128::from(prompt_tokens) * i128::from(self.input_micro_usd_per_mtok)
            + i128::from(completion_tokens) * i128::from(self.output_micro_usd_per_mtok);
        i64::try_from((total + 999_999) / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// `"0.15"` (dollars) -> 150000 (millionths of a dollar), exactly.
pub fn parse_usd(name: &str, raw: &str) -> anyhow::Result<i64> {
    let (whole, fraction) = raw.trim().split_once('.').unwrap_or((raw.trim(), ""));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) || fraction.len() > 6 {
        bail!("{name}={raw:?} is not a dollar amount with at most 6 decimals (like 0.15)");
    }
    let whole: i64 = whole.parse().with_context(|| format!("{name}={raw:?} is too large"))?;
    let fraction: i64 = format!("{fraction:0<6}").parse().expect("six digits");
    whole.checked_mul(1_000_000).and_then(|w| w.checked_add(fraction)).with_context(|| format!("{name} is too large"))
}

pub struct OpenAi {
    http: reqwest::Client,
    config: OpenAIConfig,
    transcribe_model: String,
    analyze_model: String,
    /// `None`: the request carries no `temperature`.
    analyze_temperature: Option<f32>,
    prices: TokenPrices,
}

/// Reasoning models refuse a `temperature` (400 `unsupported_value`).
fn refuses_temperature(model: &str) -> bool {
    let mut chars = model.chars();
    let o_series = chars.next() == Some('o') && chars.next().is_some_and(|c| c.is_ascii_digit());
    o_series || model.starts_with("gpt-5")
}

/// `ANALYZE_TEMPERATURE`: a number, or `none` to send none; unset, 0 for
/// models that take one and none for reasoning models.
fn analyze_temperature(model: &str, raw: Option<&str>) -> anyhow::Result<Option<f32>> {
    match raw.map(str::trim) {
        None => Ok((!refuses_temperature(model)).then_some(0.0)),
        Some(none) if none.eq_ignore_ascii_case("none") => Ok(None),
        Some(number) => {
            let value: f32 = number
                .parse()
                .ok()
                .filter(|t: &f32| (0.0..=2.0).contains(t))
                .with_context(|| format!("ANALYZE_TEMPERATURE={number:?} is not a number from 0 to 2, or none"))?;
            Ok(Some(value))
        }
    }
}

impl OpenAi {
    pub fn new(
        base_url: &str,
        api_key: String,
        transcribe_model: String,
        analyze_model: String,
        prices: TokenPrices,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        let config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/')).with_api_key(api_key);
        let analyze_temperature = analyze_temperature(&analyze_model, None)?;
        Ok(Self { http, config, transcribe_model, analyze_model, analyze_temperature, prices })
    }

    /// The extraction's sampling temperature; `None` sends none.
    pub fn with_analyze_temperature(mut self, temperature: Option<f32>) -> Self {
        self.analyze_temperature = temperature;
        self
    }

    /// `None` when `OPENAI_API_KEY` is unset.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(api_key) = var("OPENAI_API_KEY") else { return Ok(None) };
        let price = |name: &str, default: &str| parse_usd(name, &var(name).unwrap_or_else(|| default.to_owned()));
        let prices = TokenPrices {
            input_micro_usd_per_mtok: price("ANALYZE_INPUT_PRICE_PER_MTOK", "0.15")?,
            output_micro_usd_per_mtok: price("ANALYZE_OUTPUT_PRICE_PER_MTOK", "0.60")?,
        };
        let analyze_model = var("ANALYZE_MODEL").unwrap_or_else(|| "gpt-4o-mini".to_owned());
        let temperature = analyze_temperature(&analyze_model, var("ANALYZE_TEMPERATURE").as_deref())?;
        let openai = Self::new(
            &var("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
            api_key,
            var("TRANSCRIBE_MODEL").unwrap_or_else(|| "whisper-1".to_owned()),
            analyze_model,
            prices,
            duration("OPENAI_TIMEOUT", "300s")?,
        )?;
        Ok(Some(openai.with_analyze_temperature(temperature)))
    }

    /// An async-openai client for one request, sending through [`send`], and
    /// the slot where that request's `x-request-id` lands.
    fn client(&self) -> (async_openai::Client<OpenAIConfig>, RequestId) {
        let request_id = RequestId::default();
        let (http, seen) = (self.http.clone(), request_id.clone());
        let transport = tower::service_fn(move |factory: HttpRequestFactory| {
            let (http, seen) = (http.clone(), seen.clone());
            async move { send(&http, factory, &seen).await }
        });
        let client = async_openai::Client::build(self.http.clone(), self.config.clone()).with_http_service(transport);
        (client, request_id)
    }
}

/// The `x-request-id` of the one request a client made, success or not.
#[derive(Clone, Default)]
struct RequestId(Arc<Mutex<Option<String>>>);

impl RequestId {
    fn take(&self) -> Option<String> {
        self.0.lock().expect("request id lock").take()
    }
}

/// Our transport under async-openai's client: one attempt, no retries (the
/// job queue retries), the request id kept, and a failed answer classified
/// here, where its headers are still at hand.
async fn send(
    http: &reqwest::Client,
    factory: HttpRequestFactory,
    request_id: &RequestId,
) -> Result<reqwest::Response, OpenAIError> {
    let request = factory.build().await?;
    execute(http, request, request_id).await.map_err(boxed)
}

/// Sends `request` once; a 2xx answer, or its failure classified.
async fn execute(
    http: &reqwest::Client,
    request: reqwest::Request,
    request_id: &RequestId,
) -> Result<reqwest::Response, PortError> {
    let transient = |message: String| PortError::Transient { message, retry_after: None };
    let response =
        http.execute(request).await.map_err(|e| transient(format!("OpenAI request failed: {}", e.without_url())))?;
    let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    *request_id.0.lock().expect("request id lock") = id;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body =
        response.bytes().await.map_err(|e| transient(format!("OpenAI answer unreadable: {}", e.without_url())))?;
    Err(failure(status.as_u16(), &headers, &body))
}

fn boxed(error: PortError) -> OpenAIError {
    OpenAIError::Boxed(Box::new(error))
}

/// What async-openai's client returned, as a port error: our transport's
/// classification when it made one, else transient (an unreadable or
/// unexpected answer) or permanent (a request it refused to build).
fn port_error(error: OpenAIError) -> PortError {
    let transient = |message: String| PortError::Transient { message, retry_after: None };
    match error {
        OpenAIError::Boxed(inner) => match inner.downcast::<PortError>() {
            Ok(classified) => *classified,
            Err(other) => transient(format!("OpenAI transport: {other}")),
        },
        OpenAIError::Reqwest(e) => transient(format!("OpenAI answer unreadable: {}", e.without_url())),
        OpenAIError::JSONDeserialize(e, _) => transient(format!("OpenAI answered an unexpected body: {e}")),
        OpenAIError::InvalidArgument(message) => PortError::Permanent { message: format!("OpenAI request: {message}") },
        other => transient(format!("OpenAI: {other}")),
    }
}

/// OpenAI's error semantics (telephony.md 5.3): `insufficient_quota`, 400,
/// 401, 403 and 404 are dead at once with the API's message; 408, 409, 429
/// and 5xx retry after `retry-after-ms`/`retry-after` when given. An explicit
/// `x-should-retry` header wins.
fn failure(status: u16, headers: &HeaderMap, body: &[u8]) -> PortError {
    let error: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| error["error"][name].as_str().map(str::to_owned);
    let message = field("message").unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    let code = field("code").or_else(|| field("type")).unwrap_or_default();
    let mut message = if code.is_empty() {
        format!("OpenAI {status}: {message}")
    } else {
        format!("OpenAI {status} {code}: {message}")
    };
    if let Some(request_id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        message.push_str(&format!(" (x-request-id {request_id})"));
    }
    let should_retry = headers.get("x-should-retry").and_then(|v| v.to_str().ok());
    let retryable = match should_retry {
        Some("true") => true,
        Some("false") => false,
        _ => code != "insufficient_quota" && matches!(status, 408 | 409 | 429 | 500..),
    };
    if retryable {
        PortError::Transient { message, retry_after: crate::retry_after::from_headers(headers) }
    } else {
        PortError::Permanent { message }
    }
}

/// `gpt-4o-transcribe`, `gpt-4o-mini-transcribe`, `gpt-transcribe` and the
/// like answer `json` only (no segments, no language).
fn answers_json_only(model: &str) -> bool {
    model.starts_with("gpt-") && model.contains("transcribe")
}

/// The media type of an audio file OpenAI accepts, by its extension (the
/// official SDK sends it with the `file` part; the spec recommends one).
fn audio_type(filename: &str) -> &'static str {
    let extension = filename.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "webm" => "audio/webm",
        "m4a" | "mp4" => "audio/mp4",
        _ => "audio/mpeg",
    }
}

/// The multipart form for `audio`: the `file` part with its name and audio
/// type, the model, and `verbose_json` with segments where the model can.
fn transcription_form(model: &str, audio: Audio) -> Form {
    let content_type = audio_type(&audio.filename);
    let file = Part::bytes(audio.body).file_name(audio.filename).mime_str(content_type).expect("a static media type");
    let form = Form::new().part("file", file).text("model", model.to_owned());
    if answers_json_only(model) {
        form.text("response_format", "json")
    } else {
        form.text("response_format", "verbose_json").text("timestamp_granularities[]", "segment")
    }
}

/// Both `json` and `verbose_json` answers; only `text` is required, so
/// OpenAI-compatible servers that send less still parse.
#[derive(Deserialize)]
struct TranscriptionBody {
    text: String,
    language: Option<String>,
    duration: Option<f64>,
    segments: Option<Value>,
}

impl Transcriber for OpenAi {
    fn transcribe<'a>(&'a self, audio: Audio) -> PortFuture<'a, Transcription> {
        Box::pin(async move {
            let request_id = RequestId::default();
            let request = self
                .http
                .post(self.config.url("/audio/transcriptions"))
                .headers(self.config.headers())
                .multipart(transcription_form(&self.transcribe_model, audio))
                .build()
                .map_err(|e| PortError::Permanent { message: format!("OpenAI request: {}", e.without_url()) })?;
            let response = execute(&self.http, request, &request_id).await?;
            let unreadable = |e: reqwest::Error| PortError::Transient {
                message: format!("OpenAI answer unreadable: {}", e.without_url()),
                retry_after: None,
            };
            let raw = response.bytes().await.map_err(unreadable)?;
            let body: TranscriptionBody = serde_json::from_slice(&raw).map_err(|e| PortError::Transient {
                message: format!("OpenAI answered an unexpected transcription body: {e}"),
                retry_after: None,
            })?;
            Ok(Transcription {
                text: body.text,
                language: body.language,
                duration_seconds: body.duration,
                segments: body.segments,
                model: self.transcribe_model.clone(),
                request_id: request_id.take(),
            })
        })
    }
}

/// Instructions, the transcript, and a strict JSON schema the answer must follow.
fn extraction_request(
    model: &str,
    temperature: Option<f32>,
    request: &ExtractionRequest<'_>,
) -> CreateChatCompletionRequest {
    let system = ChatCompletionRequestSystemMessage { content: request.system_prompt.into(), name: None };
    let user = ChatCompletionRequestUserMessage { content: request.transcript.into(), name: None };
    let json_schema = ResponseFormatJsonSchema {
        description: None,
        name: request.schema_name.to_owned(),
        schema: request.schema.clone(),
        strict: Some(true),
    };
    CreateChatCompletionRequest {
        model: model.to_owned(),
        messages: vec![system.into(), user.into()],
        temperature,
        response_format: Some(ResponseFormat::JsonSchema { json_schema }),
        ..CreateChatCompletionRequest::default()
    }
}

impl Analyzer for OpenAi {
    fn extract<'a>(&'a self, request: &'a ExtractionRequest<'a>) -> PortFuture<'a, Extraction> {
        Box::pin(async move {
            let (client, request_id) = self.client();
            let completion = client
                .chat()
                .create(extraction_request(&self.analyze_model, self.analyze_temperature, request))
                .await
                .map_err(port_error)?;
            let transient = |message: String| PortError::Transient { message, retry_after: None };
            let choice =
                completion.choices.into_iter().next().ok_or_else(|| transient("no choices in the answer".into()))?;
            if let Some(refusal) = choice.message.refusal {
                return Err(transient(format!("the model refused: {refusal}")));
            }
            if choice.finish_reason == Some(FinishReason::Length) {
                return Err(transient("the answer was cut off (finish_reason=length): JSON incomplete".into()));
            }
            let json = choice.message.content.ok_or_else(|| transient("the answer has no content".into()))?;
            let (prompt_tokens, completion_tokens) =
                completion.usage.map_or((0, 0), |u| (i64::from(u.prompt_tokens), i64::from(u.completion_tokens)));
            Ok(Extraction {
                json,
                model: completion.model,
                request_id: request_id.take(),
                prompt_tokens,
                completion_tokens,
                cost_micro_usd: self.prices.cost_micro_usd(prompt_tokens, completion_tokens),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_prices_become_exact_micro_dollars() {
        assert_eq!(parse_usd("P", "0.15").unwrap(), 150_000);
        assert_eq!(parse_usd("P", "2").unwrap(), 2_000_000);
        assert_eq!(parse_usd("P", "0.000001").unwrap(), 1);
        assert!(parse_usd("P", "0.0000001").is_err());
        assert!(parse_usd("P", "-1").is_err());
        assert!(parse_usd("P", "1e3").is_err());
    }

    #[test]
    fn cost_rounds_up_to_the_next_micro_dollar() {
        let prices = TokenPrices { input_micro_usd_per_mtok: 150_000, output_micro_usd_per_mtok: 600_000 };
        // 1000 * 0.15 + 200 * 0.60 = 270 micro-dollars exactly.
        assert_eq!(prices.cost_micro_usd(1000, 200), 270);
        assert_eq!(prices.cost_micro_usd(1, 0), 1);
        assert_eq!(prices.cost_micro_usd(0, 0), 0);
    }

    #[test]
    fn errors_are_classified_as_openai_documents_them() {
        let none = HeaderMap::new();
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(
            matches!(failure(429, &none, quota), PortError::Permanent { message } if message.contains("exceeded your current quota"))
        );
        let limited = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        let mut wait = HeaderMap::new();
        wait.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            failure(429, &wait, limited),
            PortError::Transient {
                message: "OpenAI 429 rate_limit_exceeded: Rate limit reached".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(failure(500, &none, b"oops"), PortError::Transient { .. }));
        for status in [400, 401, 403, 404] {
            assert!(matches!(failure(status, &none, b"{}"), PortError::Permanent { .. }), "{status}");
        }
    }

    #[test]
    fn our_transport_classification_survives_the_client() {
        let limited = PortError::Transient { message: "OpenAI 429".into(), retry_after: Some(Duration::from_secs(7)) };
        assert_eq!(port_error(boxed(limited.clone())), limited);
        let invalid = port_error(OpenAIError::InvalidArgument("no model".into()));
        assert!(matches!(invalid, PortError::Permanent { message } if message.contains("no model")));
    }

    #[test]
    fn extraction_asks_for_a_strict_json_schema_answer() {
        let request = ExtractionRequest {
            system_prompt: "Extract.",
            transcript: "Hello",
            schema_name: "call_insight",
            schema: serde_json::json!({ "type": "object" }),
        };
        let body = serde_json::to_value(extraction_request("gpt-4o-mini", Some(0.0), &request)).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "Hello");
        let format = &body["response_format"];
        assert_eq!(format["type"], "json_schema");
        assert_eq!(format["json_schema"]["name"], "call_insight");
        assert_eq!(format["json_schema"]["strict"], true);
        assert_eq!(format["json_schema"]["schema"]["type"], "object");
    }

    #[test]
    fn reasoning_models_get_no_temperature_unless_one_is_configured() {
        assert_eq!(analyze_temperature("gpt-4o-mini", None).unwrap(), Some(0.0));
        for reasoning in ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"] {
            assert_eq!(analyze_temperature(reasoning, None).unwrap(), None, "{reasoning}");
        }
        assert_eq!(analyze_temperature("gpt-4o-mini", Some("none")).unwrap(), None);
        assert_eq!(analyze_temperature("o3", Some("0.2")).unwrap(), Some(0.2));
        assert!(analyze_temperature("gpt-4o-mini", Some("hot")).is_err());
        assert!(analyze_temperature("gpt-4o-mini", Some("3")).is_err());
        let request = ExtractionRequest {
            system_prompt: "Extract.",
            transcript: "Hello",
            schema_name: "call_insight",
            schema: serde_json::json!({ "type": "object" }),
        };
        let body = serde_json::to_value(extraction_request("o4-mini", None, &request)).unwrap();
        assert!(body.get("temperature").is_none(), "{body}");
    }

    #[test]
    fn audio_parts_are_typed_by_their_extension() {
        assert_eq!(audio_type("RE1.mp3"), "audio/mpeg");
        assert_eq!(audio_type("call.WAV"), "audio/wav");
        assert_eq!(audio_type("x.m4a"), "audio/mp4");
        assert_eq!(audio_type("no-extension"), "audio/mpeg");
    }

    #[test]
    fn gpt_transcribe_models_answer_json_only() {
        assert!(answers_json_only("gpt-4o-transcribe"));
        assert!(answers_json_only("gpt-4o-mini-transcribe-2025-12-15"));
        assert!(!answers_json_only("whisper-1"));
    }
}
