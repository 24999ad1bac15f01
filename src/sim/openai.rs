//! A simulated OpenAI-compatible server: `/v1/audio/transcriptions` answers
//! `verbose_json` (or `json`) for the script named in the uploaded audio,
//! `/v1/chat/completions` answers the script's insight as a `json_schema`
//! completion with token usage. Every eighth transcription request is
//! rate-limited (429 with `retry-after-ms`, as OpenAI does), so retries show.
//! Unknown audio or text is a 400 in OpenAI's error shape: the job goes dead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::scripts::{self, Script};

pub fn app() -> Router {
    Router::new()
        .route("/v1/audio/transcriptions", post(transcription))
        .route("/v1/chat/completions", post(chat))
        .with_state(Arc::new(AtomicUsize::new(0)))
}

/// One transcription request in this many is answered 429.
const RATE_LIMITED_EVERY: usize = 8;

fn invalid_request(message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": null } });
    (StatusCode::BAD_REQUEST, [("x-request-id", "req_sim_invalid")], axum::Json(body)).into_response()
}

async fn transcription(State(requests): State<Arc<AtomicUsize>>, body: Bytes) -> Response {
    if requests.fetch_add(1, Ordering::Relaxed) % RATE_LIMITED_EVERY == RATE_LIMITED_EVERY - 1 {
        return rate_limited();
    }
    let Some(script) = scripts::in_audio(&body) else {
        return invalid_request("Audio file might be corrupted or unsupported (the simulator knows no script for it)");
    };
    let verbose = String::from_utf8_lossy(&body).contains("verbose_json");
    let answer = if verbose { verbose_json(script) } else { json!({ "text": script.transcript() }) };
    ([("x-request-id", format!("req_sim_stt_{}", script.id))], axum::Json(answer)).into_response()
}

fn rate_limited() -> Response {
    let body = json!({ "error": { "message": "Rate limit reached for whisper-1 on requests per min (RPM): Limit 50, Used 50, Requested 1.",
                                  "type": "requests", "param": null, "code": "rate_limit_exceeded" } });
    let headers =
        [("x-request-id", "req_sim_rate_limited"), ("retry-after-ms", "300"), ("x-ratelimit-remaining-requests", "0")];
    (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(body)).into_response()
}

/// Whisper's `verbose_json`: one segment per turn, spread over the call.
fn verbose_json(script: &Script) -> Value {
    let per_turn = f64::from(script.duration_secs) / script.turns.len() as f64;
    let segments: Vec<Value> = script
        .turns
        .iter()
        .enumerate()
        .map(|(i, turn)| {
            json!({ "id": i, "seek": 0, "start": per_turn * i as f64, "end": per_turn * (i + 1) as f64,
                    "text": turn, "tokens": [], "temperature": 0.0, "avg_logprob": -0.25,
                    "compression_ratio": 1.3, "no_speech_prob": 0.02 })
        })
        .collect();
    json!({
        "task": "transcribe", "language": script.language, "duration": f64::from(script.duration_secs),
        "text": script.transcript(), "segments": segments,
        "usage": { "type": "duration", "seconds": script.duration_secs }
    })
}

async fn chat(axum::Json(request): axum::Json<Value>) -> Response {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let transcript = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str());
    let Some(script) = transcript.and_then(scripts::by_transcript_message) else {
        return invalid_request("The simulator has no scripted answer for this transcript");
    };
    let content = script.insight().to_string();
    let prompt_chars: usize = messages.iter().filter_map(|m| m["content"].as_str()).map(str::len).sum::<usize>()
        + request["response_format"].to_string().len();
    let (prompt_tokens, completion_tokens) = (prompt_chars.div_ceil(4), content.len().div_ceil(4));
    let answer = json!({
        "id": format!("chatcmpl-sim-{}", script.id), "object": "chat.completion", "created": chrono::Utc::now().timestamp(),
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": null, "annotations": [] },
                      "logprobs": null, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                   "total_tokens": prompt_tokens + completion_tokens },
        "system_fingerprint": "fp_switchboard_sim"
    });
    ([("x-request-id", format!("req_sim_chat_{}", script.id))], axum::Json(answer)).into_response()
}
