//! Exotel signs nothing: what stands behind its path secret. The allow-list
//! reads the address Heroku's router saw (the rightmost `X-Forwarded-For`
//! entry, whatever the client put before it), and a caller's say-so cannot
//! make us call a number abroad.

use sqlx::PgPool;
use switchboard::config::WebhookConfig;
use switchboard::ip_block::IpBlock;
use switchboard_jobs::phone::NumberPrefixes;

use crate::inbound::world::*;
use crate::support::{TestApp, count, migrate, spawn_app_with};

const EXOTEL_ADDRESS: &str = "203.0.113.40";

async fn behind_a_router_admitting(pool: &PgPool, block: &str) -> TestApp {
    let config = WebhookConfig {
        exotel_allowed_ips: vec![IpBlock::parse(block).unwrap()],
        trust_forwarded_for: true,
        ..webhooks()
    };
    spawn_app_with(pool, config).await
}

fn passthru(app: &TestApp) -> reqwest::RequestBuilder {
    let query = "CallSid=b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&CallFrom=09876543210&CallTo=08041234567";
    app.client.get(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/voice?{query}", app.base_url))
}

#[sqlx::test(migrations = false)]
async fn the_allow_list_reads_the_rightmost_forwarded_entry_of_the_last_line(pool: PgPool) {
    migrate(&pool).await;
    let app = behind_a_router_admitting(&pool, "203.0.113.0/24").await;

    // The client claims an allowed address on a line of its own; the router's line comes last.
    let spoofed_line = passthru(&app)
        .header("X-Forwarded-For", EXOTEL_ADDRESS)
        .header("X-Forwarded-For", "198.51.100.9")
        .send()
        .await
        .unwrap();
    let spoofed_entry = passthru(&app).header("X-Forwarded-For", format!("{EXOTEL_ADDRESS}, 198.51.100.9")).send();
    let spoofed_entry = spoofed_entry.await.unwrap();
    let unreadable = passthru(&app).header("X-Forwarded-For", format!("{EXOTEL_ADDRESS}, unknown")).send();
    let unreadable = unreadable.await.unwrap();
    assert_eq!([spoofed_line.status(), spoofed_entry.status(), unreadable.status()].map(|s| s.as_u16()), [403; 3]);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 0);

    let through_the_router = passthru(&app)
        .header("X-Forwarded-For", "198.51.100.9")
        .header("X-Forwarded-For", format!("10.1.2.3, {EXOTEL_ADDRESS}"))
        .send()
        .await
        .unwrap();
    assert_eq!(through_the_router.status(), 200);
}

async fn callback_department(pool: &PgPool) {
    let id = department(pool, "sales", "round_robin", Some("+918041234567"), 1).await;
    sqlx::query("UPDATE departments SET overflow_action = 'callback' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

async fn connect(app: &TestApp, sid: &str, caller: &str) -> reqwest::Response {
    let query = format!("CallSid={sid}&CallFrom={caller}&CallTo=08041234567");
    let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/connect?{query}", app.base_url);
    app.client.get(url).send().await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_connect_webhook_calls_back_only_numbers_under_the_allowed_prefixes(pool: PgPool) {
    migrate(&pool).await;
    callback_department(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;

    let abroad = connect(&app, "c6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d", "%2B442071838750").await;
    let at_home = connect(&app, "d6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d", "09876543210").await;

    assert_eq!([abroad.status(), at_home.status()], [200, 200]);
    assert_eq!(count(&pool, "SELECT count(*) FROM calls WHERE routing_state = 'overflowed'").await, 2);
    let called_back: Vec<String> =
        sqlx::query_scalar("SELECT customer_phone FROM scheduled_calls").fetch_all(&pool).await.unwrap();
    assert_eq!(called_back, ["+919876543210"]);
}

#[sqlx::test(migrations = false)]
async fn a_deployment_that_allows_a_prefix_calls_back_there(pool: PgPool) {
    migrate(&pool).await;
    callback_department(&pool).await;
    let config = WebhookConfig { callback_prefixes: NumberPrefixes::parse("+44,+91").unwrap(), ..webhooks() };
    let app = spawn_app_with(&pool, config).await;

    connect(&app, "c6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d", "%2B442071838750").await;

    assert_eq!(count(&pool, "SELECT count(*) FROM scheduled_calls WHERE customer_phone = '+442071838750'").await, 1);
}

#[sqlx::test(migrations = false)]
async fn mistyped_webhook_paths_and_numbers_in_paths_reach_the_log_masked(pool: PgPool) {
    use std::process::Stdio;
    let port = crate::support::throwaway_pg::free_port();
    let web = crate::support::binary::command(&pool, &["web"])
        .env("PORT", port.to_string())
        .env("RUST_LOG", "debug")
        .env("EXOTEL_WEBHOOK_SECRET", EXOTEL_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = crate::support::binary::web_answering(port).await;
    let client = reqwest::Client::new();

    for path in [
        format!("/webhooks/exotel/{EXOTEL_SECRET}/stauts"),
        format!("/webhooks/exotel//{EXOTEL_SECRET}/status"),
        format!("/webhooks/exotl/{EXOTEL_SECRET}/status"),
        "/api/contacts/+919876543210".to_owned(),
        "/api/opt-outs/%2B919876543210".to_owned(),
    ] {
        let answered = client.get(format!("{base}{path}")).send().await.unwrap();
        assert!(answered.status().is_client_error(), "{path}: {}", answered.status());
    }
    assert_eq!(crate::support::binary::send_signal(web.id().unwrap(), "TERM"), 0);
    let output = web.wait_with_output().await.unwrap();

    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(log.contains("/webhooks/exotl/***/status"), "the request lines are there: {log}");
    assert!(log.contains("/api/contacts/{phone}"), "matched routes log their template: {log}");
    for secret in [EXOTEL_SECRET, "9876543210"] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
}
