//! The accept loop: HTTP/1.1 over hyper with a header read timeout (a client
//! that trickles its headers is cut off instead of holding a connection), a
//! cap on open connections (each holds buffers: under overload they, not the
//! requests, are what grows the memory), the peer address for handlers
//! (`ConnectInfo`), and a graceful stop with a deadline: after it, the process
//! exits even with requests still in flight. axum's own `serve` has none of
//! these.
//!
//! The listener asks the kernel for the deepest accept queue it allows: a
//! connection attempt that finds the queue full is dropped, and its client
//! tries again only after a 1 s SYN retransmit, while in a deeper queue the
//! same burst waits milliseconds.
//!
//! A connection over the cap is answered by the accept loop itself, without a
//! task or hyper when its request has arrived: a 503 (or, for `GET /healthz`,
//! the same answer as the route's) written straight to the socket, then
//! closed. Under overload nearly every connection takes that path, so what
//! it costs decides how much CPU is left for the requests the web did take,
//! and whether the kernel's listen queue overflows (a dropped connection
//! attempt costs its client a 1 s SYN retransmit).

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
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::limits::{self, Limits};

/// The listen backlog asked for. The kernel caps it at `net.core.somaxconn`
/// (4096 by default since Linux 5.4), so the queue is as deep as the machine
/// allows; tokio's own `TcpListener::bind` asks for 1024, which a burst of
/// new connections at ten times the web's best rate overflowed in most runs
/// (docs/benchmarks.md).
const LISTEN_BACKLOG: u32 = 65_535;

/// How long to pause accepting after an accept error (out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The whole answer to a request on a connection over the cap.
const OVER_CAP_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 47\r\n\r\n\
{\"error\":\"too many connections; retry shortly\"}";

/// The request line of the one request answered even over the cap, and its
/// answer (the same as `GET /healthz`'s: the process is up).
const HEALTH_CHECK: &[u8] = b"GET /healthz ";
const HEALTHY_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 15\r\n\r\n\
{\"status\":\"ok\"}";

/// How much of a request over the cap is read (all of a webhook's, so that
/// closing does not reset the connection under the answer).
const REQUEST_READ: usize = 8 * 1024;

/// A listener on `address` with the deepest accept queue the kernel allows.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

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
        let Ok(room) = connections.clone().try_acquire_owned() else {
            refuse_over_cap(stream, limits.header_read_timeout);
            continue;
        };
        let app = app.clone();
        let service = tower::service_fn(move |request: axum::http::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
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

/// Answers a connection over the cap and closes it: in place when its
/// request has arrived (the usual case: a client writes it right after
/// connecting), else from a task that waits for it at most `read_timeout`.
fn refuse_over_cap(stream: TcpStream, read_timeout: Duration) {
    let mut request = [0u8; REQUEST_READ];
    match stream.try_read(&mut request) {
        Ok(read) => answer_over_cap(&stream, &request[..read]),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
            // The buffer is not held across the wait: an idle connection
            // over the cap costs its socket and a small task, no more.
            tokio::spawn(async move {
                if let Ok(Ok(())) = tokio::time::timeout(read_timeout, stream.readable()).await {
                    let mut request = [0u8; REQUEST_READ];
                    if let Ok(read) = stream.try_read(&mut request) {
                        answer_over_cap(&stream, &request[..read]);
                    }
                }
            });
        }
        Err(_) => {}
    }
}

/// Writes the answer to `request` (what arrived of it) on a fresh socket,
/// whose send buffer takes it whole, and sends the FIN. `MSG_MORE` holds the
/// answer back until the shutdown right after, so the answer and the FIN
/// leave in one segment and the client acknowledges both at once: fewer
/// packets per refused connection for the web's core. Both are on their way
/// before the socket closes, so the rest of a request that arrives late (it
/// resets the connection at the close) comes after the answer.
fn answer_over_cap(stream: &TcpStream, request: &[u8]) {
    let answer = if request.starts_with(HEALTH_CHECK) {
        HEALTHY_ANSWER
    } else {
        limits::count_shed();
        OVER_CAP_ANSWER
    };
    let socket = socket2::SockRef::from(stream);
    let _ = socket.send_with_flags(answer, libc::MSG_MORE);
    let _ = socket.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_over_the_cap_declare_their_own_body_length() {
        for answer in [OVER_CAP_ANSWER, HEALTHY_ANSWER] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let declared = head.lines().find_map(|line| line.strip_prefix("content-length: ")).unwrap();
            assert_eq!(declared.parse::<usize>().unwrap(), body.len(), "{text}");
            serde_json::from_str::<serde_json::Value>(body).unwrap();
        }
    }
}
