//! Weak or malformed settings stop a process at start, with a message naming
//! the variable and never showing its value; config structs holding secrets
//! print none of them through `Debug`.

use std::time::Duration;

use sqlx::PgPool;
use switchboard::config::{DatabaseConfig, WebhookConfig};

use crate::inbound::world::{AUTH_TOKEN, twilio_config};
use crate::support::binary;
use crate::support::throwaway_pg::free_port;

/// Starts `process` with `name=value` and expects it to refuse at start
/// naming `name`, without `shown_nowhere` anywhere in what it printed.
async fn refused(pool: &PgPool, process: &str, name: &str, value: &str, shown_nowhere: &str) {
    let run = binary::command(pool, &[process]).env("PORT", free_port().to_string()).env(name, value).output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap_or_else(|_| panic!("{process} kept running with {name} set badly"))
        .expect("switchboard runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{process} started with {name} set badly: {printed}");
    assert!(printed.contains(name), "the refusal names {name}: {printed}");
    assert!(!printed.contains(shown_nowhere), "the refusal shows the value of {name}: {printed}");
}

#[sqlx::test(migrations = false)]
async fn an_exotel_webhook_secret_under_32_characters_is_refused_at_start(pool: PgPool) {
    let short = "exotel-secret-of-31-characters!";
    assert_eq!(short.len(), 31);
    refused(&pool, "web", "EXOTEL_WEBHOOK_SECRET", short, short).await;
}

#[sqlx::test(migrations = false)]
async fn an_api_token_under_32_characters_is_refused_at_start(pool: PgPool) {
    let long = "a-token-of-plenty-characters-0123456789";
    let short = "guessable-token";
    refused(&pool, "web", "API_TOKENS", &format!("{long},{short}"), short).await;
}

#[sqlx::test(migrations = false)]
async fn whitespace_around_any_secret_is_refused_at_start_by_web_and_worker(pool: PgPool) {
    let secret = "sk-0123456789abcdef0123456789abcdef";
    refused(&pool, "web", "TWILIO_AUTH_TOKEN", &format!("{secret}\n"), secret).await;
    refused(&pool, "worker", "OPENAI_API_KEY", &format!(" {secret}"), secret).await;
    refused(&pool, "web", "EXOTEL_WEBHOOK_SECRET", &format!("{secret} "), secret).await;
    let tokens = format!("{secret}, second-token-0123456789abcdef01234567");
    refused(&pool, "web", "API_TOKENS", &tokens, secret).await;
}

#[sqlx::test(migrations = false)]
async fn a_crm_or_openai_url_that_is_not_http_is_refused_at_start(pool: PgPool) {
    let password = "hunter2-in-the-url";
    refused(&pool, "worker", "CRM_WEBHOOK_URL", &format!("crm.example.com/leads?key={password}"), password).await;
    refused(&pool, "worker", "CRM_WEBHOOK_URL", &format!("ftp://u:{password}@crm.example.com/"), password).await;
    refused(&pool, "web", "OPENAI_BASE_URL", "http//localhost:8000/v1", "localhost:8000").await;
    refused(&pool, "worker", "OPENAI_BASE_URL", "http://:8080/v1", ":8080").await;
}

#[test]
fn config_holding_secrets_prints_none_of_them() {
    let database = DatabaseConfig {
        url: "postgres://app:db-password-1@db.example.com/switchboard".into(),
        pooled_url: Some("postgres://app:db-password-2@pgbouncer/switchboard".into()),
        max_connections: None,
        require_tls: true,
        application_name: "switchboard-test".into(),
    };
    let webhooks = WebhookConfig {
        twilio: Some(twilio_config("https://api.twilio.com")),
        twilio_shared_keys: vec!["shared-key-secret".into()],
        exotel_secret: Some("exotel-path-secret-0123456789abcdef".into()),
        ..WebhookConfig::default()
    };
    let printed = format!("{database:?} {webhooks:?}");
    for secret in ["db-password-1", "db-password-2", AUTH_TOKEN, "shared-key-secret", "exotel-path-secret"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
}
