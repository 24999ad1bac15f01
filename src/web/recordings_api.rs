//! `GET /api/calls/{sid}/recording` (a redirect to a presigned URL, or the file
//! streamed) and `POST /api/calls/{sid}/reprocess?from=<step>` (the chain again).

use anyhow::anyhow;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use switchboard_jobs::pipeline::{self, Step};
use switchboard_jobs::ports::Provider;
use tokio::io::AsyncReadExt;

use super::call_key::{self, Which};
use super::{ApiError, AppState, Params};
use crate::storage::Retrieval;

pub fn routes() -> Router<AppState> {
    Router::new().route("/calls/{sid}/recording", get(recording)).route("/calls/{sid}/reprocess", post(reprocess))
}

#[utoipa::path(get, path = "/api/calls/{sid}/recording", operation_id = "get_calls_sid_recording", tag = "calls", params(("sid" = String, Path, description = "the provider's call sid"), crate::web::call_key::Which), responses((status = 200, description = "the audio", content_type = "audio/*", body = Vec<u8>), (status = 307, description = "to a presigned URL of the audio"), (status = 500, description = "no recording storage is configured", body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
pub(crate) async fn recording(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    Params(which): Params<Which>,
) -> Result<Response, ApiError> {
    let provider = call_key::resolve(&state.pool, &sid, &which).await?;
    let stored: Option<(String, String)> = sqlx::query_as(
        "SELECT storage_key, content_type FROM recordings
         WHERE provider = $1 AND call_sid = $2 AND status = 'stored' ORDER BY id DESC LIMIT 1",
    )
    .bind(provider)
    .bind(&sid)
    .fetch_optional(&state.pool)
    .await?;
    let (key, content_type) = stored.ok_or_else(|| ApiError::NotFound(format!("a stored recording of call {sid}")))?;
    let storage = state.recordings.as_ref().ok_or_else(|| anyhow!("no recording storage configured"))?;
    match storage.retrieve(&key).await.map_err(|e| anyhow!(e))? {
        Retrieval::Redirect(url) => Ok(Redirect::temporary(&url).into_response()),
        Retrieval::File(file, len) => Ok((
            [(header::CONTENT_TYPE, content_type), (header::CONTENT_LENGTH, len.to_string())],
            Body::from_stream(chunks(file)),
        )
            .into_response()),
    }
}

/// The file as a stream of 64 KiB chunks; ends after the first read error.
fn chunks(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReprocessFrom {
    from: Option<String>,
    /// `twilio` or `exotel`: whose call `{sid}` is, when both have one.
    #[param(value_type = Option<String>)]
    provider: Option<Provider>,
}

impl ReprocessFrom {
    /// The step named by `from` (default: the start of the chain).
    fn step(&self) -> Result<Step, ApiError> {
        let Some(name) = &self.from else { return Ok(Step::default()) };
        serde_json::from_value(json!(name))
            .map_err(|_| ApiError::validation("from", "must be fetch-recording, transcribe, analyze or create-lead"))
    }
}

#[utoipa::path(post, path = "/api/calls/{sid}/reprocess", operation_id = "post_calls_sid_reprocess", tag = "calls", params(("sid" = String, Path, description = "the provider's call sid"), ReprocessFrom), responses((status = 202, body = crate::web::openapi::Reprocessing), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn reprocess(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    Params(query): Params<ReprocessFrom>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let from = query.step()?;
    let provider = call_key::resolve(&state.pool, &sid, &Which { provider: query.provider }).await?;
    let mut tx = state.pool.begin().await?;
    let enqueued = pipeline::reprocess(&mut tx, provider, &sid, from).await?;
    tx.commit().await?;
    if enqueued == 0 {
        return Err(ApiError::NotFound(format!("anything to reprocess for call {sid} from {from:?}")));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "call_sid": sid, "from": from, "jobs_enqueued": enqueued }))))
}
