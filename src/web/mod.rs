//! The web process: provider webhooks, the operator API and health checks,
//! over one axum router with a body limit and request tracing.

mod api;
mod auth;
mod call_key;
pub mod call_outcome;
mod calling_policy_api;
mod console;
mod contacts_api;
mod error;
mod health;
mod jobs_api;
mod leads_api;
pub mod limits;
mod metrics;
mod openapi;
mod params;
mod recordings_api;
mod rejections;
mod request_id;
mod request_log;
mod scheduled_calls_api;
mod serve;
mod transcripts_api;
mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::WebhookConfig;

pub use error::ApiError;
pub(crate) use params::Params;
pub use serve::{bind, serve_with};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Bearer tokens accepted on `/api/*` (`API_TOKENS`); empty = the API is closed.
    pub api_tokens: Arc<Vec<SecretString>>,
    /// Where recordings are served from (`RECORDING_STORAGE`); `None`: not served.
    pub recordings: Option<Arc<crate::storage::RecordingStorage>>,
    /// How provider webhooks are authenticated and answered; all closed by default.
    pub webhooks: Arc<WebhookConfig>,
    /// The in-flight cap and deadlines (`WEB_*`).
    pub gate: limits::Gate,
}

impl AppState {
    pub fn new(pool: PgPool, api_tokens: Vec<SecretString>) -> Self {
        Self {
            pool,
            api_tokens: Arc::new(api_tokens),
            recordings: None,
            webhooks: Arc::default(),
            gate: limits::Gate::default(),
        }
    }

    pub fn with_recordings(self, recordings: Arc<crate::storage::RecordingStorage>) -> Self {
        Self { recordings: Some(recordings), ..self }
    }

    pub fn with_webhooks(self, webhooks: WebhookConfig) -> Self {
        Self { webhooks: Arc::new(webhooks), ..self }
    }

    pub fn with_limits(self, limits: limits::Limits) -> Self {
        Self { gate: limits::Gate::new(limits), ..self }
    }
}

/// The whole HTTP surface, without a socket (tests drive it with `oneshot`).
pub fn app(state: AppState, body_limit_bytes: usize) -> Router {
    let api = Router::new()
        .merge(jobs_api::routes())
        .merge(scheduled_calls_api::routes())
        .merge(calling_policy_api::routes())
        .merge(contacts_api::routes())
        .merge(recordings_api::routes())
        .merge(transcripts_api::routes())
        .merge(leads_api::routes())
        .merge(api::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_api_token))
        .layer(axum::middleware::from_fn(rejections::as_json));
    Router::new()
        .merge(health::routes())
        .merge(webhooks::routes())
        .nest("/api", api)
        .merge(metrics::routes(state.clone()))
        .merge(console::routes(state.clone()))
        .merge(openapi::routes())
        .layer(axum::middleware::from_fn(metrics::track_request))
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(axum::middleware::from_fn(request_log::log_request))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::guard))
        .layer(axum::middleware::from_fn(request_id::in_span))
        .with_state(state)
}

/// Serves `app` on `listener` until `stop` resolves, with the default limits.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, stop, &limits::Limits::default()).await
}
