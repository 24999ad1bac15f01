//! The accept loop: HTTP/1.1 over hyper with a header read timeout (a client
//! that trickles its headers is cut off instead of holding a connection), a
//! cap on open connections (each holds buffers: under overload they, not the
//! requests, are what grows the memory), the peer address for handlers
//! (`ConnectInfo`), and a graceful stop with a deadline: after it, the process
//! exits even with requests still in flight. axum's own `serve` has none of
//! these.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::limits::{self, Limits};

/// How long to pause accepting after an accept error (out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `stop` resolves, then lets requests in
/// flight finish for at most `limits.shutdown_deadline`.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
    limits: &Limits,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "web listening");
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut closing = http.clone();
    closing.keep_alive(false);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Over the cap, the connection still gets an answer (a 503, then
        // closed): cheaper for both sides than a connection left waiting.
        let room = connections.clone().try_acquire_owned().ok();
        let full = room.is_none();
        let app = app.clone();
        let service = tower::service_fn(move |request: axum::http::Request<Incoming>| {
            let app = app.clone();
            async move {
                let mut request = request.map(axum::body::Body::new);
                if full && request.uri().path() != "/healthz" {
                    return Ok::<_, Infallible>(limits::shed());
                }
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                app.oneshot(request).await
            }
        });
        let builder = if full { &closing } else { &http };
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(room);
        });
    }
    drop(listener);
    let in_flight = graceful.count();
    match tokio::time::timeout(limits.shutdown_deadline, graceful.shutdown()).await {
        Ok(()) => tracing::info!(connections = in_flight, "web stopped: every connection closed"),
        Err(_) => tracing::warn!(
            deadline = ?limits.shutdown_deadline,
            "web stopping with requests still in flight: the shutdown deadline passed"
        ),
    }
    Ok(())
}
