//! Speech to text and structured extraction against any OpenAI-compatible
//! server (`OPENAI_BASE_URL`): OpenAI, whisper.cpp, speaches, vLLM, LocalAI.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OPENAI_API_KEY` | (none: transcribe and analyze jobs go dead saying so) | bearer key; local servers accept any |
//! | `OPENAI_BASE_URL` | `https://api.openai.com/v1` | the API root |
//! | `TRANSCRIBE_MODEL` | `whisper-1` | `verbose_json` with segments; `gpt-*-transcribe` models answer `json` only |
//! | `ANALYZE_MODEL` | `gpt-4o-mini` | chat model with structured outputs |
//! | `ANALYZE_INPUT_PRICE_PER_MTOK` | `0.15` | US dollars per million prompt tokens, for the cost estimate |
//! | `ANALYZE_OUTPUT_PRICE_PER_MTOK` | `0.60` | US dollars per million completion tokens |
//! | `OPENAI_TIMEOUT` | `300s` | one request |
//!
//! Why reqwest and not `async-openai`'s client: async-openai 0.43 drops the
//! response headers, both on success and on error, so `retry-after-ms`,
//! `retry-after`, `x-should-retry` and `x-request-id` (telephony.md 5.3) would
//! be lost. The two requests are small; we send them ourselves and classify
//! failures by status, error code and headers.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::{Value, json};
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
    client: reqwest::Client,
    base_url: String,
    api_key: String,
    transcribe_model: String,
    analyze_model: String,
    prices: TokenPrices,
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
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        Ok(Self { client, base_url, api_key, transcribe_model, analyze_model, prices })
    }

    /// `None` when `OPENAI_API_KEY` is unset.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(api_key) = var("OPENAI_API_KEY") else { return Ok(None) };
        let price = |name: &str, default: &str| parse_usd(name, &var(name).unwrap_or_else(|| default.to_owned()));
        let prices = TokenPrices {
            input_micro_usd_per_mtok: price("ANALYZE_INPUT_PRICE_PER_MTOK", "0.15")?,
            output_micro_usd_per_mtok: price("ANALYZE_OUTPUT_PRICE_PER_MTOK", "0.60")?,
        };
        Ok(Some(Self::new(
            &var("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
            api_key,
            var("TRANSCRIBE_MODEL").unwrap_or_else(|| "whisper-1".to_owned()),
            var("ANALYZE_MODEL").unwrap_or_else(|| "gpt-4o-mini".to_owned()),
            prices,
            duration("OPENAI_TIMEOUT", "300s")?,
        )?))
    }

    /// Sends `request`; a failure comes back classified, the body parsed on success.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(T, Option<String>), PortError> {
        let response = request
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| PortError::Transient { message: format!("OpenAI request failed: {e}"), retry_after: None })?;
        let status = response.status();
        let headers = response.headers().clone();
        let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(|e| PortError::Transient {
            message: format!("OpenAI answer unreadable: {e}"),
            retry_after: None,
        })?;
        if !status.is_success() {
            return Err(failure(status.as_u16(), &headers, &body));
        }
        let parsed = serde_json::from_slice(&body).map_err(|e| PortError::Transient {
            message: format!("OpenAI answered {status} with an unexpected body: {e}"),
            retry_after: None,
        })?;
        Ok((parsed, request_id))
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

fn audio_mime(filename: &str) -> &'static str {
    if filename.ends_with(".wav") { "audio/wav" } else { "audio/mpeg" }
}

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
            let mime = audio_mime(&audio.filename);
            let file = Part::bytes(audio.body).file_name(audio.filename).mime_str(mime).expect("static mime type");
            let mut form = Form::new().part("file", file).text("model", self.transcribe_model.clone());
            form = if answers_json_only(&self.transcribe_model) {
                form.text("response_format", "json")
            } else {
                form.text("response_format", "verbose_json").text("timestamp_granularities[]", "segment")
            };
            let request = self.client.post(format!("{}/audio/transcriptions", self.base_url)).multipart(form);
            let (body, request_id): (TranscriptionBody, _) = self.send(request).await?;
            Ok(Transcription {
                text: body.text,
                language: body.language,
                duration_seconds: body.duration,
                segments: body.segments,
                model: self.transcribe_model.clone(),
                request_id,
            })
        })
    }
}

#[derive(Deserialize)]
struct ChatCompletion {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: i64,
    completion_tokens: i64,
}

impl Analyzer for OpenAi {
    fn extract<'a>(&'a self, request: &'a ExtractionRequest<'a>) -> PortFuture<'a, Extraction> {
        Box::pin(async move {
            let body = json!({
                "model": self.analyze_model,
                "temperature": 0,
                "messages": [
                    { "role": "system", "content": request.system_prompt },
                    { "role": "user", "content": request.transcript },
                ],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": { "name": request.schema_name, "strict": true, "schema": request.schema },
                },
            });
            let http = self.client.post(format!("{}/chat/completions", self.base_url)).json(&body);
            let (completion, request_id): (ChatCompletion, _) = self.send(http).await?;
            let transient = |message: String| PortError::Transient { message, retry_after: None };
            let choice =
                completion.choices.into_iter().next().ok_or_else(|| transient("no choices in the answer".into()))?;
            if let Some(refusal) = choice.message.refusal {
                return Err(transient(format!("the model refused: {refusal}")));
            }
            if choice.finish_reason.as_deref() == Some("length") {
                return Err(transient("the answer was cut off (finish_reason=length): JSON incomplete".into()));
            }
            let json = choice.message.content.ok_or_else(|| transient("the answer has no content".into()))?;
            let (prompt_tokens, completion_tokens) =
                completion.usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
            Ok(Extraction {
                json,
                model: completion.model.unwrap_or_else(|| self.analyze_model.clone()),
                request_id,
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
    fn gpt_transcribe_models_answer_json_only() {
        assert!(answers_json_only("gpt-4o-transcribe"));
        assert!(answers_json_only("gpt-4o-mini-transcribe-2025-12-15"));
        assert!(!answers_json_only("whisper-1"));
    }
}
