//! Overload and slow clients: a burst of connections to a stalled web waits
//! in the accept queue, a full web sheds at once, slow headers and
//! bodies are cut off, every request has a deadline, webhooks wait briefly for
//! the pool, and the web stops within its own deadline even while the
//! database is blackholed.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use switchboard::web::limits::Limits;
use switchboard::web::{self, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::inbound::world::*;
use crate::support::throwaway_pg::{ThrowawayPg, free_port};
use crate::support::{TestApp, binary, migrate, wait_until};

/// Far longer than anything here should take; only a broken limit reaches it.
const NEVER: Duration = Duration::from_secs(30);

/// Limits with everything long except what a test shortens.
fn limits() -> Limits {
    Limits {
        max_in_flight: 64,
        max_connections: 256,
        header_read_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(60),
        request_deadline: Duration::from_secs(60),
        webhook_pool_wait: Duration::from_secs(60),
        shutdown_deadline: Duration::from_secs(20),
    }
}

async fn serve(pool: &PgPool, limits: Limits) -> TestApp {
    let state = AppState::new(pool.clone(), vec![]).with_webhooks(webhooks()).with_limits(limits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        web::serve_with(listener, web::app(state, 64 * 1024), std::future::pending(), &limits).await
    });
    TestApp { base_url, client: reqwest::Client::new(), pool: pool.clone() }
}

/// A connection that sent a request's headers and 2 of its 100 body bytes.
async fn half_sent_request(base_url: &str) -> TcpStream {
    let mut stream = TcpStream::connect(base_url.trim_start_matches("http://")).await.unwrap();
    let head = "POST /webhooks/twilio/status HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nCa";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(NEVER, stream.read_to_end(&mut answer)).await.expect("the server ends the connection").ok();
    String::from_utf8_lossy(&answer).into_owned()
}

#[sqlx::test(migrations = false)]
async fn a_full_web_answers_503_with_retry_after_at_once_and_healthz_still_answers(pool: PgPool) {
    migrate(&pool).await;
    let app = serve(&pool, Limits { max_in_flight: 2, ..limits() }).await;
    let held = [half_sent_request(&app.base_url).await, half_sent_request(&app.base_url).await];
    let readyz = format!("{}/readyz", app.base_url);

    let shed = std::sync::Mutex::new(None);
    wait_until(NEVER, "a request to be shed", || async {
        let response = app.client.get(&readyz).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let refused = response.status() == 503 && retry_after.is_some();
        *shed.lock().unwrap() = retry_after;
        refused
    })
    .await;
    let healthz = app.client.get(format!("{}/healthz", app.base_url)).send().await.unwrap();
    drop(held);

    assert_eq!(shed.into_inner().unwrap().as_deref(), Some("1"));
    assert_eq!(healthz.status(), 200);
    wait_until(NEVER, "room again once the held requests are gone", || async {
        app.client.get(&readyz).send().await.unwrap().status() == 200
    })
    .await;
}

/// What the server answers to `request` sent on a new connection, up to its
/// close. The write may meet a reset: a server that answers before reading
/// the whole request resets the connection when it closes.
async fn answer_on_a_new_connection(base_url: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(base_url.trim_start_matches("http://")).await.unwrap();
    let _ = stream.write_all(request.as_bytes()).await;
    read_to_close(&mut stream).await
}

#[sqlx::test(migrations = false)]
async fn a_connection_beyond_the_cap_is_answered_503_and_closed_and_healthz_still_answers(pool: PgPool) {
    migrate(&pool).await;
    let app = serve(&pool, Limits { max_in_flight: 2, max_connections: 2, ..limits() }).await;
    let address = app.base_url.trim_start_matches("http://");
    let idle = [TcpStream::connect(address).await.unwrap(), TcpStream::connect(address).await.unwrap()];

    let readyz = answer_on_a_new_connection(&app.base_url, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let healthz = answer_on_a_new_connection(&app.base_url, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    drop(idle);

    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    assert!(readyz.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{readyz}");
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
    wait_until(NEVER, "room again once the idle connections are gone", || async {
        app.client.get(format!("{}/readyz", app.base_url)).send().await.unwrap().status() == 200
    })
    .await;
}

/// More connections at once than tokio's default listen backlog (1024) holds.
const BURST: usize = 1_500;
/// On loopback a queued handshake completes in microseconds; a dropped one is
/// retried by the client only after 1 s.
const SOONER_THAN_A_SYN_RETRANSMIT: Duration = Duration::from_millis(500);

#[sqlx::test(migrations = false)]
async fn a_burst_of_connections_while_the_web_is_stalled_waits_in_the_accept_queue_instead_of_being_dropped(
    pool: PgPool,
) {
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    assert!(somaxconn > BURST, "net.core.somaxconn is {somaxconn}: no listener here can queue {BURST} connections");
    migrate(&pool).await;
    let port = free_port();
    let mut web = binary::command(&pool, &["web"]).env("PORT", port.to_string()).spawn().unwrap();
    binary::web_answering(port).await;
    let address = format!("127.0.0.1:{port}");

    let web_pid = web.id().unwrap();
    assert_eq!(binary::send_signal(web_pid, "STOP"), 0);
    let attempts = (0..BURST).map(|_| {
        tokio::time::timeout(SOONER_THAN_A_SYN_RETRANSMIT, async {
            let mut stream = TcpStream::connect(&address).await?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await?;
            Ok::<_, std::io::Error>(stream)
        })
    });
    let attempts = futures::future::join_all(attempts).await;
    assert_eq!(binary::send_signal(web_pid, "CONT"), 0);
    let queued: Vec<TcpStream> = attempts.into_iter().filter_map(|attempt| attempt.ok()?.ok()).collect();
    assert_eq!(queued.len(), BURST, "connection attempts dropped while the web was stalled");

    let answers =
        futures::future::join_all(queued.into_iter().map(|mut stream| async move { read_to_close(&mut stream).await }))
            .await;
    let unanswered: Vec<&String> = answers.iter().filter(|answer| !answer.starts_with("HTTP/1.1 200")).collect();
    assert!(unanswered.is_empty(), "{} of {BURST} not answered 200, e.g. {:?}", unanswered.len(), unanswered.first());
    web.kill().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn over_the_cap_a_silent_connection_is_closed_after_the_header_timeout_and_a_webhook_gets_its_503_whole(
    pool: PgPool,
) {
    migrate(&pool).await;
    let limits =
        Limits { max_in_flight: 1, max_connections: 1, header_read_timeout: Duration::from_millis(300), ..limits() };
    let app = serve(&pool, limits).await;
    let address = app.base_url.trim_start_matches("http://");
    let _held = half_sent_request(&app.base_url).await;
    let mut silent = TcpStream::connect(address).await.unwrap();

    let webhook = answer_on_a_new_connection(
        &app.base_url,
        &format!(
            "POST /webhooks/twilio/status HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 4000\r\n\r\nCallSid={}",
            "A".repeat(3992)
        ),
    )
    .await;
    let silent_answer = read_to_close(&mut silent).await;

    assert!(webhook.starts_with("HTTP/1.1 503"), "{webhook}");
    assert!(webhook.ends_with(r#"{"error":"too many connections; retry shortly"}"#), "{webhook}");
    assert_eq!(silent_answer, "", "a connection that sent nothing is closed unanswered");
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn over_the_cap_a_request_larger_than_the_accept_loop_reads_still_gets_its_503(pool: PgPool) {
    migrate(&pool).await;
    let app = serve(&pool, Limits { max_in_flight: 1, max_connections: 1, ..limits() }).await;
    let _held = half_sent_request(&app.base_url).await;

    // 64 KiB: the loop reads 8 KiB, so the close resets the connection; the
    // answer must have left before it.
    let body = format!("CallSid={}", "A".repeat(64 * 1024));
    let request = format!(
        "POST /webhooks/twilio/status HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let webhook = answer_on_a_new_connection(&app.base_url, &request).await;

    assert!(webhook.starts_with("HTTP/1.1 503"), "{webhook}");
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn a_body_that_stops_arriving_is_answered_408(pool: PgPool) {
    migrate(&pool).await;
    let app = serve(&pool, Limits { body_read_timeout: Duration::from_millis(200), ..limits() }).await;

    let mut stream = half_sent_request(&app.base_url).await;
    let answer = read_to_close(&mut stream).await;

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn a_client_that_trickles_its_headers_is_disconnected(pool: PgPool) {
    migrate(&pool).await;
    let app = serve(&pool, Limits { header_read_timeout: Duration::from_millis(200), ..limits() }).await;
    let mut stream = TcpStream::connect(app.base_url.trim_start_matches("http://")).await.unwrap();

    stream.write_all(b"POST /webhooks/twilio/status HTTP/1.1\r\nHo").await.unwrap();
    let answer = read_to_close(&mut stream).await;

    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
}

#[sqlx::test(migrations = false)]
async fn a_request_past_its_deadline_is_answered_503_with_retry_after(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some("+918041234567"), 600).await;
    let mut config = webhooks();
    config.exotel_connect_deadline = Duration::from_secs(60);
    let state = AppState::new(pool.clone(), vec![]).with_webhooks(config);
    let limits = Limits { request_deadline: Duration::from_millis(300), ..limits() };
    let app = crate::support::serve_state(&pool, state.with_limits(limits)).await;
    let connect = format!(
        "{}/webhooks/exotel/{EXOTEL_SECRET}/connect?CallSid=e6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&CallFrom=09876543210&CallTo=08041234567",
        app.base_url
    );

    let response = app.client.get(connect).timeout(NEVER).send().await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[sqlx::test(migrations = false)]
async fn a_webhook_waits_only_briefly_for_a_pooled_connection(pool: PgPool) {
    migrate(&pool).await;
    let options = (*pool.connect_options()).clone();
    let one =
        PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(120)).connect_lazy_with(options);
    let state = AppState::new(one.clone(), vec![]).with_webhooks(webhooks());
    let app = crate::support::serve_state(
        &pool,
        state.with_limits(Limits { webhook_pool_wait: Duration::from_millis(100), ..limits() }),
    )
    .await;
    let held = one.acquire().await.unwrap();
    let sid = call_sid(1);

    let response = twilio_post(&app, "/webhooks/twilio/status", &[("CallSid", &sid), ("CallStatus", "ringing")])
        .timeout(NEVER)
        .send()
        .await
        .unwrap();
    drop(held);

    assert_eq!(response.status(), 503);
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn the_web_exits_within_its_shutdown_deadline_with_the_database_blackholed_and_a_client_stalled(pool: PgPool) {
    let database = ThrowawayPg::start();
    let migrated = binary::command(&pool, &["migrate"]).env("DATABASE_URL", database.url()).output().await.unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let direct = PgPoolOptions::new().max_connections(1).connect(&database.url()).await.unwrap();
    department(&direct, "sales", "round_robin", Some("+918041234567"), 600).await;
    let port = free_port();
    let mut web = binary::command(&pool, &["web"])
        .env("DATABASE_URL", database.url())
        .env("PORT", port.to_string())
        .env("EXOTEL_WEBHOOK_SECRET", EXOTEL_SECRET)
        .env("EXOTEL_CONNECT_DEADLINE", "60s")
        .env("WEB_REQUEST_DEADLINE", "60s")
        .env("WEB_BODY_READ_TIMEOUT", "60s")
        .env("WEB_SHUTDOWN_DEADLINE", "2s")
        .spawn()
        .unwrap();
    let base = binary::web_answering(port).await;
    let client = reqwest::Client::new();
    let connect = client
        .get(format!(
            "{base}/webhooks/exotel/{EXOTEL_SECRET}/connect?CallSid=f6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&CallFrom=09876543210&CallTo=08041234567"
        ))
        .send();
    let in_flight = tokio::spawn(connect);
    wait_until(NEVER, "the call to wait for an agent", || async {
        crate::support::count(&direct, "SELECT count(*) FROM calls WHERE routing_state = 'waiting'").await == 1
    })
    .await;
    direct.close().await;

    let stalled = half_sent_request(&base).await;

    database.freeze();
    assert_eq!(binary::send_signal(web.id().unwrap(), "TERM"), 0);
    let exited = tokio::time::timeout(Duration::from_secs(15), web.wait()).await;
    database.thaw();

    let status = exited.expect("the web exits within its shutdown deadline").unwrap();
    assert!(status.success(), "exit status {status}");
    in_flight.abort();
    drop(stalled);
}
