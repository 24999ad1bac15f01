//! The world inbound tests build: webhook settings with known secrets, signed
//! provider requests, departments and agents, row counts.

use std::time::Duration;

use sqlx::PgPool;
use switchboard::config::{TwilioConfig, WebhookConfig};
use switchboard::providers::twilio::RequestValidator;

use crate::support::TestApp;
pub use crate::support::count;

pub const AUTH_TOKEN: &str = "test-twilio-auth-token";
pub const PUBLIC_BASE: &str = "https://switchboard.test";
pub const EXOTEL_SECRET: &str = "exotel-path-secret-0123456789abcdef";
pub const OUR_NUMBER: &str = "+14155550100";
pub const CALLER: &str = "+14155550199";

pub fn twilio_config(api_base: &str) -> TwilioConfig {
    TwilioConfig {
        account_sid: "ACtest".into(),
        auth_token: AUTH_TOKEN.into(),
        api_base: api_base.into(),
        public_base_url: PUBLIC_BASE.into(),
    }
}

pub fn webhooks() -> WebhookConfig {
    WebhookConfig {
        twilio: Some(twilio_config("http://127.0.0.1:9")),
        exotel_secret: Some(EXOTEL_SECRET.into()),
        exotel_connect_deadline: Duration::from_millis(800),
        ..WebhookConfig::default()
    }
}

pub fn call_sid(n: u32) -> String {
    format!("CA{n:032x}")
}

/// A POST Twilio signed, as Twilio would send it to `path_and_query`.
pub fn twilio_post(app: &TestApp, path_and_query: &str, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let owned: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = RequestValidator::new(AUTH_TOKEN).signature(&format!("{PUBLIC_BASE}{path_and_query}"), &owned);
    app.client.post(format!("{}{path_and_query}", app.base_url)).header("X-Twilio-Signature", signature).form(&owned)
}

/// A POST Twilio signed to one of the public URLs we handed it (a leg's StatusCallback).
pub fn twilio_callback(app: &TestApp, public_url: &str, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
    twilio_post(app, public_url.strip_prefix(PUBLIC_BASE).expect("one of our public URLs"), params)
}

pub fn incoming_call(sid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CallSid", sid.to_owned()),
        ("AccountSid", "ACtest".into()),
        ("From", CALLER.into()),
        ("To", OUR_NUMBER.into()),
        ("CallStatus", "ringing".into()),
        ("Direction", "inbound".into()),
        ("ApiVersion", "2010-04-01".into()),
    ]
}

pub fn borrowed<'a>(params: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A department; `inbound_number` sends calls to it when the number has no menu.
pub async fn department(
    pool: &PgPool,
    name: &str,
    strategy: &str,
    inbound_number: Option<&str>,
    max_wait_secs: i32,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO departments (name, strategy, inbound_number, max_wait_secs) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(strategy)
    .bind(inbound_number)
    .bind(max_wait_secs)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// An available agent.
pub async fn agent(pool: &PgPool, department: i64, phone: &str, skills: &[&str], max_concurrent: i32) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO agents (name, phone, department_id, skills, status, max_concurrent_calls)
         VALUES ($2, $2, $1, $3, 'available', $4) RETURNING id",
    )
    .bind(department)
    .bind(phone)
    .bind(skills.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    .bind(max_concurrent)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Rows in every table a webhook writes to.
pub async fn stored_anything(pool: &PgPool) -> bool {
    count(pool, "SELECT (SELECT count(*) FROM webhook_events) + (SELECT count(*) FROM calls) + (SELECT count(*) FROM apalis.jobs)")
        .await
        > 0
}

pub async fn route_jobs(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM apalis.jobs WHERE job_type = 'route-call'").await
}
