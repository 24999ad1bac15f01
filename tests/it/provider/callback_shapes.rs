//! Every documented way a provider may deliver a callback reaches the same
//! place: Exotel's StatusCallback as `multipart/form-data` or JSON, Twilio's
//! webhooks by GET, and Twilio webhooks signed with a Webhooks SharedKey
//! (HMAC-SHA256). Each is stored once however often it is delivered, and acted on.

use sqlx::PgPool;
use switchboard::config::WebhookConfig;
use switchboard::providers::twilio::{Algorithm, RequestValidator};

use crate::inbound::world::{EXOTEL_SECRET, PUBLIC_BASE, agent, call_sid, department, webhooks};
use crate::support::{TestApp, count, migrate, spawn_app_with};

const EXOTEL_SID: &str = "b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d";
const SHARED_KEY: &str = "whsk-test-secret";

/// An agent holding two calls, one of them `call_sid` at `provider`, bridged.
async fn agent_on_call(pool: &PgPool, provider: &str, call_sid: &str) -> i64 {
    let sales = department(pool, "sales", "round_robin", None, 60).await;
    let agent = agent(pool, sales, "+919800000001", &[], 3).await;
    sqlx::query("UPDATE agents SET current_calls = 2 WHERE id = $1").bind(agent).execute(pool).await.unwrap();
    sqlx::query(
        "INSERT INTO calls (provider, call_sid, direction, from_number, to_number, status, agent_id, routing_state)
         VALUES ($1, $2, 'inbound', '+919876543210', '+918041234567', 'in-progress', $3, 'bridged')",
    )
    .bind(provider)
    .bind(call_sid)
    .bind(agent)
    .execute(pool)
    .await
    .unwrap();
    agent
}

async fn load(pool: &PgPool, agent: i64) -> i64 {
    count(pool, &format!("SELECT current_calls::bigint FROM agents WHERE id = {agent}")).await
}

async fn call_status(pool: &PgPool, call_sid: &str) -> String {
    sqlx::query_scalar("SELECT status FROM calls WHERE call_sid = $1").bind(call_sid).fetch_one(pool).await.unwrap()
}

/// Exotel's terminal StatusCallback fields (telephony.md 3.4), as text.
fn exotel_terminal() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CallSid", EXOTEL_SID),
        ("Status", "completed"),
        ("EventType", "terminal"),
        ("DateUpdated", "2026-11-21 15:30:00"),
        ("From", "09876543210"),
        ("To", "08041234567"),
        ("ConversationDuration", "65"),
        ("Direction", "inbound"),
        ("RecordingUrl", "https://recordings.exotel.test/b6cf.mp3?X-Amz-Signature=abc&X-Amz-Expires=3600"),
    ]
}

fn multipart_body(fields: &[(&str, &str)], boundary: &str) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body + &format!("--{boundary}--\r\n")
}

/// Exotel's delivery is stored once, the call completed, the agent freed once
/// and the recording handed on once, however often it arrives.
async fn assert_exotel_callback_acted_on_once(pool: &PgPool, agent: i64) {
    assert_eq!(count(pool, "SELECT count(*) FROM webhook_events WHERE endpoint = 'status'").await, 1);
    assert_eq!(call_status(pool, EXOTEL_SID).await, "completed");
    assert_eq!(load(pool, agent).await, 1, "the agent's slot comes back once");
    assert_eq!(count(pool, "SELECT count(*) FROM recordings").await, 1);
    assert_eq!(count(pool, "SELECT count(*) FROM apalis.jobs WHERE job_type = 'fetch-recording'").await, 1);
}

fn exotel_status_url(app: &TestApp) -> String {
    format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", app.base_url)
}

#[sqlx::test(migrations = false)]
async fn an_exotel_status_callback_as_multipart_form_data_is_stored_once_and_frees_the_agent(pool: PgPool) {
    migrate(&pool).await;
    let agent = agent_on_call(&pool, "exotel", EXOTEL_SID).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let boundary = "----ExotelBoundary7MA4YWxkTrZu0gW";

    for _ in 0..3 {
        let response = app
            .client
            .post(exotel_status_url(&app))
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .body(multipart_body(&exotel_terminal(), boundary))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    assert_exotel_callback_acted_on_once(&pool, agent).await;
    let url: String = sqlx::query_scalar("SELECT source_url FROM recordings").fetch_one(&pool).await.unwrap();
    assert!(url.ends_with("X-Amz-Signature=abc&X-Amz-Expires=3600"), "the link is kept whole: {url}");
}

#[sqlx::test(migrations = false)]
async fn an_exotel_status_callback_as_json_is_stored_once_and_frees_the_agent(pool: PgPool) {
    migrate(&pool).await;
    let agent = agent_on_call(&pool, "exotel", EXOTEL_SID).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let mut body: serde_json::Map<String, serde_json::Value> =
        exotel_terminal().into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
    body.insert("ConversationDuration".into(), 65.into());
    body.insert("Legs".into(), serde_json::json!([{"OnCallDuration": 70, "Status": "completed", "AnsweredBy": "NA"}]));

    for _ in 0..3 {
        let response = app.client.post(exotel_status_url(&app)).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    assert_exotel_callback_acted_on_once(&pool, agent).await;
}

#[sqlx::test(migrations = false)]
async fn a_malformed_multipart_status_callback_is_400_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let truncated = multipart_body(&exotel_terminal(), "XyZ").replace("--XyZ--\r\n", "");

    for (content_type, body) in [
        ("multipart/form-data; boundary=XyZ", truncated),
        ("multipart/form-data", multipart_body(&exotel_terminal(), "XyZ")),
    ] {
        let response =
            app.client.post(exotel_status_url(&app)).header("Content-Type", content_type).body(body).send().await;
        assert_eq!(response.unwrap().status(), 400, "{content_type}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 0);
}

/// Twilio's terminal status of `sid` (telephony.md 1.2).
fn twilio_completed(sid: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", "ACtest"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid),
        ("CallStatus", "completed"),
        ("CallbackSource", "call-progress-events"),
        ("CallDuration", "42"),
        ("Direction", "inbound"),
        ("From", "+14155550199"),
        ("To", "+14155550100"),
        ("SequenceNumber", "3"),
        ("Timestamp", "Sat, 21 Nov 2026 10:00:03 +0000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[sqlx::test(migrations = false)]
async fn a_twilio_status_webhook_configured_with_get_is_verified_stored_once_and_frees_the_agent(pool: PgPool) {
    migrate(&pool).await;
    let sid = call_sid(21);
    let agent = agent_on_call(&pool, "twilio", &sid).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(twilio_completed(&sid)).finish();
    let path_and_query = format!("/webhooks/twilio/status?{query}");
    // A GET signs its URL, parameters included, and no body fields.
    let sign = |token: &str| RequestValidator::new(token).signature(&format!("{PUBLIC_BASE}{path_and_query}"), &[]);
    let signature = sign(crate::inbound::world::AUTH_TOKEN);
    let get = |signature: String| {
        app.client.get(format!("{}{path_and_query}", app.base_url)).header("X-Twilio-Signature", signature).send()
    };

    let forged = get(sign("another-accounts-token")).await.unwrap();
    assert_eq!(forged.status(), 403);
    for _ in 0..2 {
        let response = get(signature.clone()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("<Response/>"));
    }

    assert_eq!(call_status(&pool, &sid).await, "completed");
    assert_eq!(load(&pool, agent).await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events WHERE endpoint = 'status'").await, 1);
}

fn shared_key_webhooks() -> WebhookConfig {
    WebhookConfig { twilio_shared_keys: vec!["a-retired-key".into(), SHARED_KEY.into()], ..webhooks() }
}

const SETTINGS: &str = "key=WK7d5b6a2f0e9c4d3b8a1f2e3d4c5b6a7f,algorithm=HMAC_SHA256";

#[sqlx::test(migrations = false)]
async fn a_twilio_webhook_signed_with_a_shared_key_is_verified_stored_once_and_frees_the_agent(pool: PgPool) {
    migrate(&pool).await;
    let sid = call_sid(22);
    let agent = agent_on_call(&pool, "twilio", &sid).await;
    let app = spawn_app_with(&pool, shared_key_webhooks()).await;
    let params = twilio_completed(&sid);
    let url = format!("{PUBLIC_BASE}/webhooks/twilio/status");
    let post = |signature: String, settings: Option<&str>| {
        let request = app
            .client
            .post(format!("{}/webhooks/twilio/status", app.base_url))
            .header("X-Twilio-Signature", signature)
            .form(&params);
        match settings {
            Some(settings) => request.header("X-Twilio-Webhooks-Signature-Settings", settings),
            None => request,
        }
        .send()
    };
    let sha256 = RequestValidator::shared_key_signature(SHARED_KEY, Algorithm::HmacSha256, &url, &params);
    let by_auth_token = RequestValidator::new(crate::inbound::world::AUTH_TOKEN).signature(&url, &params);

    // The settings header says a SharedKey signed it: the auth token's signature no longer counts,
    // and a SharedKey signature without the header is not the auth token's either.
    assert_eq!(post(by_auth_token, Some(SETTINGS)).await.unwrap().status(), 403);
    assert_eq!(post(sha256.clone(), None).await.unwrap().status(), 403);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 0);
    for _ in 0..2 {
        assert_eq!(post(sha256.clone(), Some(SETTINGS)).await.unwrap().status(), 200);
    }

    assert_eq!(call_status(&pool, &sid).await, "completed");
    assert_eq!(load(&pool, agent).await, 1);
    let settings: String =
        sqlx::query_scalar("SELECT headers->>'x-twilio-webhooks-signature-settings' FROM webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(settings, SETTINGS, "the raw event keeps which key signed it");
}

#[sqlx::test(migrations = false)]
async fn a_shared_key_signature_is_refused_while_no_shared_key_is_configured(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let params = twilio_completed(&call_sid(23));
    let url = format!("{PUBLIC_BASE}/webhooks/twilio/status");
    let signature = RequestValidator::shared_key_signature(SHARED_KEY, Algorithm::HmacSha256, &url, &params);

    let response = app
        .client
        .post(format!("{}/webhooks/twilio/status", app.base_url))
        .header("X-Twilio-Signature", signature)
        .header("X-Twilio-Webhooks-Signature-Settings", SETTINGS)
        .form(&params)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 0);
}
