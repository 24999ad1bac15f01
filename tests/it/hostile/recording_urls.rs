//! Recording URLs an attacker with a provider's webhook secret could send:
//! internal addresses, plain http, a redirect elsewhere, a page that is not
//! audio. Each is a dead `fetch-recording` job saying why, with nothing
//! stored; a recording from the provider's own host still arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::PgPool;
use switchboard::recording_fetch::{BasicAuth, Loopback, RecordingDownloader};
use switchboard_jobs::fetch_recording::{RecordingRef, request_fetch};
use switchboard_jobs::ports::{Ports, Provider};

use crate::after_call::fakes::{ACCOUNT_SID, AUTH_TOKEN, fake_mp3};
use crate::after_call::{World, count, job_errors, wait_for_count};
use crate::support::{migrate, wait_until};

/// A recording host on loopback that misbehaves by path, counting every request.
struct HostileHost {
    base_url: String,
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl HostileHost {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let app =
            Router::new()
                .route("/audio/{file}", get(audio))
                .route(
                    "/html/{file}",
                    get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<h1>internal admin</h1>") }),
                )
                .route("/moved/{file}", get(|Path(file): Path<String>| async move { found(&format!("/audio/{file}")) }))
                .route(
                    "/elsewhere/{file}",
                    get(move |Path(file): Path<String>| async move {
                        found(&format!("http://localhost:{port}/audio/{file}"))
                    }),
                )
                .layer(axum::middleware::from_fn_with_state(hits.clone(), count_hit));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base_url: format!("http://127.0.0.1:{port}"), port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn count_hit(
    State(hits): State<Arc<AtomicUsize>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

/// Audio only for Twilio's account credentials, as Twilio's API answers.
async fn audio(headers: HeaderMap) -> Response {
    if !headers.contains_key(header::AUTHORIZATION) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    ([(header::CONTENT_TYPE, "audio/mpeg")], fake_mp3(4096)).into_response()
}

/// What the recording webhook does for a Twilio recording at `url`.
async fn announce_at(pool: &PgPool, n: u32, url: &str) {
    let recording = RecordingRef {
        provider: Provider::Twilio,
        call_sid: format!("CA{n:032}"),
        recording_sid: format!("RE{n:032}"),
        url: url.to_owned(),
        duration_seconds: Some(95),
        customer_phone: Some(crate::after_call::CUSTOMER.to_owned()),
    };
    let mut tx = pool.begin().await.unwrap();
    request_fetch(&mut tx, &recording).await.unwrap().expect("a new job");
    tx.commit().await.unwrap();
}

async fn wait_for_dead_fetches(pool: &PgPool, expected: i64) {
    wait_until(Duration::from_secs(30), "dead fetch-recording jobs", || async {
        count(pool, "job_overview WHERE kind = 'fetch-recording' AND state = 'dead'").await == expected
    })
    .await;
}

/// The dead jobs' messages, sorted (jobs fail in any order).
async fn dead_messages(pool: &PgPool) -> Vec<String> {
    let mut messages: Vec<String> = job_errors(pool, "fetch-recording")
        .await
        .into_iter()
        .map(|(outcome, message)| {
            assert_eq!(outcome, "dead", "{message}");
            message
        })
        .collect();
    messages.sort();
    messages
}

fn files_under(dir: &std::path::Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[sqlx::test(migrations = false)]
async fn internal_addresses_and_plain_http_are_dead_jobs_without_a_request(pool: PgPool) {
    migrate(&pool).await;
    let host = HostileHost::start().await;
    let world = World::build(&pool, None, |ports, _| {
        let twilio = BasicAuth { user: ACCOUNT_SID.to_owned(), secret: AUTH_TOKEN.to_owned() };
        let refusing =
            RecordingDownloader::new(Some(twilio), None, 1 << 20, Duration::from_secs(10), Loopback::Refused);
        Ports { recording_fetcher: Some(Arc::new(refusing.unwrap())), ..ports }
    })
    .await;
    let twilio_path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE1");
    announce_at(&pool, 1, &format!("{}/audio/RE1.mp3", host.base_url)).await;
    announce_at(&pool, 2, &format!("https://10.0.0.5{twilio_path}")).await;
    announce_at(&pool, 3, "http://169.254.169.254/latest/meta-data/iam/security-credentials/").await;
    announce_at(&pool, 4, &format!("http://api.twilio.com{twilio_path}")).await;
    announce_at(&pool, 5, &format!("https://[::1]:{}/audio/RE5.mp3", host.port)).await;
    wait_for_dead_fetches(&pool, 5).await;

    assert_eq!(
        dead_messages(&pool).await,
        vec![
            "recording URL refused: 10.0.0.5 is a private, loopback or link-local address",
            "recording URL refused: 127.0.0.1 is a private, loopback or link-local address",
            "recording URL refused: 169.254.169.254 is a private, loopback or link-local address",
            "recording URL refused: ::1 is a private, loopback or link-local address",
            "recording URL refused: http, not https",
        ]
    );
    assert_eq!(host.hits(), 0, "nothing was requested");
    assert_eq!(count(&pool, "recordings WHERE status = 'pending'").await, 5);
    assert_eq!(count(&pool, "transcripts").await, 0);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_redirect_elsewhere_or_a_page_that_is_not_audio_is_dead_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    let host = HostileHost::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = switchboard::storage::RecordingStorage::Local(switchboard::storage::LocalDir::new(dir.path()));
    let world = World::build(&pool, Some(storage), |ports, _| ports).await;
    announce_at(&pool, 1, &format!("{}/elsewhere/RE1.mp3", host.base_url)).await;
    announce_at(&pool, 2, &format!("{}/html/RE2.mp3", host.base_url)).await;
    announce_at(&pool, 3, &format!("{}/moved/RE3.mp3", host.base_url)).await;
    wait_for_dead_fetches(&pool, 2).await;
    wait_for_count(&pool, "recordings WHERE status = 'stored'", 1).await;

    assert_eq!(
        dead_messages(&pool).await,
        vec![
            "the recording answered Content-Type text/html, not audio/*; not stored",
            "the recording redirected to another host (localhost); not followed",
        ]
    );
    let stored: String = sqlx::query_scalar("SELECT storage_key FROM recordings WHERE status = 'stored'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, format!("twilio/CA{0:032}/RE{0:032}.mp3", 3), "the same-host redirect was followed");
    assert_eq!(std::fs::read(dir.path().join(&stored)).unwrap(), fake_mp3(4096));
    assert_eq!(files_under(dir.path()), 1, "nothing else stored: {:?}", walk(dir.path()));
    assert_eq!(host.hits(), 4, "one request each, and the redirect's target");
    world.workers.stop().await;
}
