//! The web's logs as Heroku's log stream gets them (`LOG_FORMAT=logfmt`,
//! stderr not a terminal): every line of a request carries the router's
//! `X-Request-ID`, or a fresh id the response echoes when there was none;
//! no ANSI colour codes.

use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::binary;
use crate::support::throwaway_pg::free_port;

const ROUTER_ID: &str = "f0e9b0a4-6d5b-4c1e-9d3a-5c1b2a3d4e5f";

#[sqlx::test(migrations = false)]
async fn every_line_of_a_request_carries_herokus_request_id(pool: PgPool) {
    let port = free_port();
    let mut web = binary::command(&pool, &["web"])
        .env("PORT", port.to_string())
        .env("LOG_FORMAT", "logfmt")
        .env("RUST_LOG", "info,switchboard=debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = binary::web_answering(port).await;
    let client = reqwest::Client::new();

    // Not migrated: 503, logged as a warning.
    let routed = client.get(format!("{base}/readyz")).header("X-Request-ID", ROUTER_ID).send().await.unwrap();
    assert_eq!(routed.status(), 503);
    assert_eq!(routed.headers()["x-request-id"], ROUTER_ID, "the response echoes the router's id");
    let unrouted = client.get(format!("{base}/metrics")).send().await.unwrap();
    let fresh = unrouted.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "a request without one gets a UUID: {fresh}");

    assert_eq!(binary::send_signal(web.id().unwrap(), "TERM"), 0);
    let mut lines = BufReader::new(web.stderr.take().unwrap()).lines();
    let mut logs = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        logs.push(line);
    }
    let all = logs.join("\n");
    assert!(!all.contains('\u{1b}'), "no ANSI codes off a terminal:\n{all}");
    let of = |path: &str| -> Vec<&String> { logs.iter().filter(|l| l.contains(&format!("path={path} "))).collect() };
    let (readyz, metrics) = (of("/readyz"), of("/metrics"));
    assert!(!readyz.is_empty() && !metrics.is_empty(), "both requests were logged:\n{all}");
    for line in readyz {
        assert!(line.contains(&format!("request_id={ROUTER_ID}")), "{line}");
        assert!(line.starts_with("ts=") && line.contains(" level="), "logfmt: {line}");
    }
    for line in metrics {
        assert!(line.contains(&format!("request_id={fresh}")), "{line}");
    }
}
