//! What keeps one web process answering under overload and slow clients: a
//! cap on requests in flight and one on open connections (beyond either a
//! fast 503 with `Retry-After`, never a queue), a deadline on reading a request's body (408) and on the whole
//! request (503), a short wait for a pooled connection on webhooks, and (in
//! [`super::serve`]) a header read timeout and a shutdown deadline.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WEB_MAX_IN_FLIGHT` | 32 | requests handled at once; more are answered 503 at once (`GET /healthz` is never refused) |
//! | `WEB_MAX_CONNECTIONS` | 256 | connections open at once; a request on any further one is answered 503 at once and the connection closed (`GET /healthz` is never refused) |
//! | `WEB_HEADER_READ_TIMEOUT` | `5s` | a connection that has not sent a request's headers within this is closed |
//! | `WEB_BODY_READ_TIMEOUT` | `5s` | a request whose body has not arrived within this is answered 408 |
//! | `WEB_REQUEST_DEADLINE` | `10s` | a request not answered within this is answered 503 (Twilio gives up after 15 s) |
//! | `WEBHOOK_POOL_WAIT` | `250ms` | how long a webhook waits for a database connection before a 503 |
//! | `WEB_SHUTDOWN_DEADLINE` | `20s` | on SIGTERM, how long requests in flight may take before the process exits anyway (Heroku kills at 30 s) |

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use super::AppState;
use crate::config::{duration, parsed, positive_duration};

/// What a shed or timed-out client is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_in_flight: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub request_deadline: Duration,
    pub webhook_pool_wait: Duration,
    pub shutdown_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 32,
            max_connections: 256,
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(5),
            request_deadline: Duration::from_secs(10),
            webhook_pool_wait: Duration::from_millis(250),
            shutdown_deadline: Duration::from_secs(20),
        }
    }
}

impl Limits {
    pub fn from_env() -> anyhow::Result<Self> {
        let limits = Self {
            max_in_flight: parsed("WEB_MAX_IN_FLIGHT", 32)?,
            max_connections: parsed("WEB_MAX_CONNECTIONS", 256)?,
            header_read_timeout: positive_duration("WEB_HEADER_READ_TIMEOUT", "5s")?,
            body_read_timeout: positive_duration("WEB_BODY_READ_TIMEOUT", "5s")?,
            request_deadline: positive_duration("WEB_REQUEST_DEADLINE", "10s")?,
            webhook_pool_wait: positive_duration("WEBHOOK_POOL_WAIT", "250ms")?,
            shutdown_deadline: duration("WEB_SHUTDOWN_DEADLINE", "20s")?,
        };
        anyhow::ensure!(limits.max_in_flight > 0, "WEB_MAX_IN_FLIGHT must be at least 1");
        anyhow::ensure!(
            limits.max_connections >= limits.max_in_flight,
            "WEB_MAX_CONNECTIONS must be at least WEB_MAX_IN_FLIGHT"
        );
        anyhow::ensure!(
            limits.shutdown_deadline < Duration::from_secs(30),
            "WEB_SHUTDOWN_DEADLINE must be under 30s: Heroku kills the process 30 s after SIGTERM"
        );
        Ok(limits)
    }
}

/// The in-flight cap, shared by every clone of the router's state.
#[derive(Clone)]
pub struct Gate {
    pub limits: Arc<Limits>,
    in_flight: Arc<Semaphore>,
}

impl Gate {
    pub fn new(limits: Limits) -> Self {
        Self { in_flight: Arc::new(Semaphore::new(limits.max_in_flight)), limits: Arc::new(limits) }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// Admits the request if there is room, reads its body against the body
/// deadline, and answers it within the request deadline.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let gate = &state.gate;
    let _permit = match gate.in_flight.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) if request.uri().path() == "/healthz" => None,
        Err(_) => return shed(),
    };
    let too_slow = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(gate.limits.body_read_timeout)),
            tripped: too_slow.clone(),
        })
    });
    let answered = tokio::time::timeout(gate.limits.request_deadline, next.run(request)).await;
    if too_slow.load(Ordering::Relaxed) {
        return refusal(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time");
    }
    answered.unwrap_or_else(|_| {
        metrics::counter!("switchboard_http_requests_past_deadline_total").increment(1);
        tracing::warn!(deadline = ?gate.limits.request_deadline, "request deadline passed: answered 503");
        refusal(StatusCode::SERVICE_UNAVAILABLE, "the request took too long; retry shortly")
    })
}

/// The answer to a request the web has no room for, counted.
pub(super) fn shed() -> Response {
    count_shed();
    refusal(StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight; retry shortly")
}

/// Counts a request the web had no room for.
pub(super) fn count_shed() {
    metrics::counter!("switchboard_http_requests_shed_total").increment(1);
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    if status == StatusCode::REQUEST_TIMEOUT {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that fails once its deadline passes, marking the request
/// as too slow (the handler's own rejection is then replaced by a 408).
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    tripped: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
struct BodyTooSlow;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.tripped.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A webhook's transaction, or [`sqlx::Error::PoolTimedOut`] (a 503 the
/// provider retries) when no connection is free within `WEBHOOK_POOL_WAIT`:
/// under overload a provider is better served by a fast refusal than by a
/// 5 s wait for the pool.
pub async fn begin_webhook(state: &AppState) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let started = Instant::now();
    match tokio::time::timeout(state.gate.limits.webhook_pool_wait, state.pool.begin()).await {
        Ok(tx) => tx,
        Err(_) => {
            tracing::warn!(waited = ?started.elapsed(), "no database connection for a webhook in time: 503");
            Err(sqlx::Error::PoolTimedOut)
        }
    }
}
