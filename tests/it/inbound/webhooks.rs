//! Webhook intake: authenticated, parsed, stored once with its job, answered.

use futures::future::join_all;
use sqlx::PgPool;

use super::world::*;
use crate::support::{migrate, spawn_app_with};

#[sqlx::test(migrations = false)]
async fn incoming_twilio_call_is_stored_with_its_call_and_route_job(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(1);

    let response = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    assert!(response.text().await.unwrap().contains(&format!("<Enqueue>{sid}</Enqueue>")));
    let (from, state): (String, String) =
        sqlx::query_as("SELECT from_number, routing_state FROM calls WHERE call_sid = $1")
            .bind(&sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((from.as_str(), state.as_str()), (CALLER, "waiting"));
    assert_eq!(count(&app.pool, "SELECT count(*) FROM webhook_events WHERE endpoint = 'voice'").await, 1);
    assert_eq!(route_jobs(&app.pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn twilio_json_body_is_accepted_when_its_body_sha256_was_signed(pool: PgPool) {
    use sha2::Digest;
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let body = serde_json::json!({"CallSid": call_sid(3), "CallStatus": "ringing", "SequenceNumber": 1}).to_string();
    let path = format!("/webhooks/twilio/status?bodySHA256={}", hex::encode(sha2::Sha256::digest(body.as_bytes())));
    let validator = switchboard::providers::twilio::RequestValidator::new(AUTH_TOKEN);
    let signature = validator.signature(&format!("{PUBLIC_BASE}{path}"), &[]);
    let send = |body: String| {
        app.client
            .post(format!("{}{path}", app.base_url))
            .header("X-Twilio-Signature", signature.clone())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    let tampered = send(body.replace("ringing", "completed")).await.unwrap();
    let genuine = send(body).await.unwrap();

    assert_eq!((tampered.status().as_u16(), genuine.status().as_u16()), (403, 200));
    let status: String = sqlx::query_scalar("SELECT status FROM calls").fetch_one(&pool).await.unwrap();
    assert_eq!(status, "ringing");
}

#[sqlx::test(migrations = false)]
async fn twilio_json_body_without_body_sha256_is_refused_since_nothing_signs_it(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let path = "/webhooks/twilio/status";
    let url_only = switchboard::providers::twilio::RequestValidator::new(AUTH_TOKEN)
        .signature(&format!("{PUBLIC_BASE}{path}"), &[]);
    let body = serde_json::json!({"CallSid": call_sid(3), "CallStatus": "completed", "SequenceNumber": 9});

    let response = app
        .client
        .post(format!("{}{path}", app.base_url))
        .header("X-Twilio-Signature", url_only)
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn wrong_or_missing_twilio_signature_is_403_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let params = incoming_call(&call_sid(1));
    let url = format!("{}/webhooks/twilio/voice", app.base_url);

    let missing = app.client.post(&url).form(&params).send().await.unwrap();
    let wrong = app
        .client
        .post(&url)
        .header("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .form(&params)
        .send()
        .await
        .unwrap();
    let mut tampered = borrowed(&params);
    let signed = twilio_post(&app, "/webhooks/twilio/voice", &tampered).build().unwrap();
    tampered[2].1 = "+14155550000";
    let replayed = app
        .client
        .post(&url)
        .header("X-Twilio-Signature", signed.headers()["X-Twilio-Signature"].clone())
        .form(&tampered)
        .send()
        .await
        .unwrap();

    assert_eq!([missing.status(), wrong.status(), replayed.status()], [403, 403, 403]);
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn wrong_exotel_secret_is_403_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let query = "CallSid=b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&CallFrom=09876543210&CallTo=08041234567";

    let wrong =
        app.client.get(format!("{}/webhooks/exotel/not-the-secret/voice?{query}", app.base_url)).send().await.unwrap();
    let right =
        app.client.get(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/voice?{query}", app.base_url)).send().await.unwrap();

    assert_eq!(wrong.status(), 403);
    assert_eq!(right.status(), 200);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM calls WHERE from_number = '+919876543210'").await, 1);
}

#[sqlx::test(migrations = false)]
async fn exotel_allow_list_refuses_other_addresses(pool: PgPool) {
    migrate(&pool).await;
    let allow = |block: &str| switchboard::config::WebhookConfig {
        exotel_allowed_ips: vec![switchboard::ip_block::IpBlock::parse(block).unwrap()],
        ..webhooks()
    };
    let query = "CallSid=b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&CallFrom=09876543210";
    let elsewhere = spawn_app_with(&pool, allow("203.0.113.0/24")).await;
    let loopback = spawn_app_with(&pool, allow("127.0.0.0/8")).await;

    let refused = elsewhere
        .client
        .get(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/voice?{query}", elsewhere.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(!stored_anything(&pool).await);
    let admitted = loopback
        .client
        .get(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/voice?{query}", loopback.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(admitted.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn malformed_webhook_is_400_and_oversized_is_413_and_neither_is_stored(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let mut params = incoming_call(&call_sid(1));
    params[3].1 = "not-a-number".into();

    let malformed = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&params)).send().await.unwrap();
    let huge = "x".repeat(100 * 1024);
    let oversized = twilio_post(&app, "/webhooks/twilio/voice", &[("CallSid", huge.as_str())]).send().await.unwrap();

    assert_eq!(malformed.status(), 400);
    assert!(malformed.text().await.unwrap().contains("To"));
    assert_eq!(oversized.status(), 413);
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn duplicate_webhook_twice_and_ten_times_concurrently_stores_one_event_and_one_job(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let (first, second) = (call_sid(1), call_sid(2));

    let answers: Vec<String> = {
        let mut texts = Vec::new();
        for _ in 0..2 {
            let response =
                twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&first))).send().await.unwrap();
            assert_eq!(response.status(), 200);
            texts.push(response.text().await.unwrap());
        }
        texts
    };
    assert_eq!(answers[0], answers[1]);

    let params = incoming_call(&second);
    let concurrent =
        join_all((0..10).map(|_| twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&params)).send())).await;
    assert!(concurrent.iter().all(|r| r.as_ref().unwrap().status() == 200));

    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM calls").await, 2);
    assert_eq!(route_jobs(&pool).await, 2);
}

async fn post_status(app: &crate::support::TestApp, sid: &str, status: &str, sequence: i32) {
    let params = vec![
        ("CallSid", sid.to_owned()),
        ("CallStatus", status.to_owned()),
        ("SequenceNumber", sequence.to_string()),
        ("CallDuration", "42".to_owned()),
        ("Timestamp", "Sat, 21 Nov 2026 10:00:0{sequence} +0000".replace("{sequence}", &sequence.to_string())),
    ];
    let response = twilio_post(app, "/webhooks/twilio/status", &borrowed(&params)).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn out_of_order_status_events_keep_the_newest_state_and_free_the_agent_once(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let agent = agent(&pool, sales, "+14155550111", &[], 3).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(7);
    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();
    // The agent holds this call and one other.
    sqlx::query("UPDATE agents SET current_calls = 2 WHERE id = $1").bind(agent).execute(&pool).await.unwrap();
    sqlx::query("UPDATE calls SET agent_id = $1, routing_state = 'bridged' WHERE call_sid = $2")
        .bind(agent)
        .bind(&sid)
        .execute(&pool)
        .await
        .unwrap();

    for (status, sequence) in [("ringing", 1), ("completed", 3), ("in-progress", 2), ("initiated", 0), ("completed", 3)]
    {
        post_status(&app, &sid, status, sequence).await;
    }

    let (status, sequence, duration, ended): (String, i32, Option<i32>, bool) = sqlx::query_as(
        "SELECT status, last_sequence, duration_secs, ended_at IS NOT NULL FROM calls WHERE call_sid = $1",
    )
    .bind(&sid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), sequence, duration, ended), ("completed", 3, Some(42), true));
    assert_eq!(count(&pool, &format!("SELECT current_calls::bigint FROM agents WHERE id = {agent}")).await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events WHERE endpoint = 'status'").await, 4);
}

#[tokio::test]
async fn a_stopped_database_is_503_and_the_providers_retry_after_it_is_back_is_stored_once() {
    use crate::support::throwaway_pg::{StopMode, ThrowawayPg, wait_until_accepting};
    let server = ThrowawayPg::start();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .test_before_acquire(true)
        .connect_lazy(&server.url())
        .unwrap();
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let params = incoming_call(&call_sid(1));

    server.stop(StopMode::Fast);
    let refused = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&params)).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    server.pg_ctl_start();
    wait_until_accepting(&server.url(), std::time::Duration::from_secs(30)).await;
    for _ in 0..2 {
        let retried = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&params)).send().await.unwrap();
        assert_eq!(retried.status(), 200);
    }

    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(route_jobs(&pool).await, 1);
}

/// Makes every insert into `webhook_events` fail with SQLSTATE `code`, as
/// the server would say it (`None`: inserts work again).
async fn events_fail_with(pool: &PgPool, code: Option<&str>) {
    let sql = match code {
        Some(code) => format!(
            "CREATE OR REPLACE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{code}'; END $$;
             CREATE OR REPLACE TRIGGER fail_event BEFORE INSERT ON webhook_events
                FOR EACH ROW EXECUTE FUNCTION fail_event();"
        ),
        None => "DROP TRIGGER fail_event ON webhook_events".to_owned(),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_database_going_away_is_503_so_the_provider_retries_and_other_errors_stay_500(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let params = incoming_call(&call_sid(1));

    let mut answered = Vec::new();
    for code in ["57P01", "57P03", "08006", "P0001"] {
        events_fail_with(&pool, Some(code)).await;
        let response = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&params)).send().await.unwrap();
        answered.push((code, response.status().as_u16()));
    }
    events_fail_with(&pool, None).await;
    let retried = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&params)).send().await.unwrap();

    assert_eq!(answered, [("57P01", 503), ("57P03", 503), ("08006", 503), ("P0001", 500)]);
    assert_eq!(retried.status(), 200);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(route_jobs(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn exotel_json_status_with_legs_completes_the_call(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let body = serde_json::json!({
        "CallSid": "b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d", "Status": "completed", "EventType": "terminal",
        "From": "09876543210", "To": "08041234567", "ConversationDuration": 65,
        "DateUpdated": "2026-11-21 15:30:00", "RecordingUrl": "https://recordings.exotel.test/abc.mp3",
        "Legs": [{"OnCallDuration": 70, "Status": "completed", "AnsweredBy": "Human"}]
    });
    let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", app.base_url);

    for _ in 0..2 {
        let response = app.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    let (status, duration): (String, Option<i32>) =
        sqlx::query_as("SELECT status, duration_secs FROM calls WHERE provider = 'exotel'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), duration), ("completed", Some(65)));
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 1);
}

#[sqlx::test(migrations = false)]
async fn webhooks_are_refused_until_their_secrets_are_configured(pool: PgPool) {
    migrate(&pool).await;
    let closed = crate::support::spawn_app(&pool).await;

    let twilio =
        twilio_post(&closed, "/webhooks/twilio/voice", &borrowed(&incoming_call(&call_sid(1)))).send().await.unwrap();
    let exotel = closed
        .client
        .get(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/voice?CallSid=abc", closed.base_url))
        .send()
        .await
        .unwrap();

    assert_eq!((twilio.status().as_u16(), exotel.status().as_u16()), (403, 403));
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn recording_of_a_bridged_agent_leg_belongs_to_the_callers_call_and_phone(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let (caller_sid, agent_leg) = (call_sid(1), call_sid(2));
    sqlx::query(
        "INSERT INTO calls (provider, call_sid, direction, from_number, to_number, status, routing_state, bridge_call_sid)
         VALUES ('twilio', $1, 'inbound', $2, $3, 'in-progress', 'bridged', $4)",
    )
    .bind(&caller_sid)
    .bind(CALLER)
    .bind(OUR_NUMBER)
    .bind(&agent_leg)
    .execute(&pool)
    .await
    .unwrap();
    let agent_status = [
        ("CallSid", agent_leg.as_str()),
        ("CallStatus", "completed"),
        ("Direction", "outbound-api"),
        ("From", OUR_NUMBER),
        ("To", "+14155550123"),
        ("SequenceNumber", "3"),
    ];
    twilio_post(&app, "/webhooks/twilio/status", &agent_status).send().await.unwrap();
    let recording = [
        ("CallSid", agent_leg.as_str()),
        ("RecordingSid", "RE00000000000000000000000000000001"),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/ACtest/Recordings/RE00000000000000000000000000000001",
        ),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "95"),
    ];

    let response = twilio_post(&app, "/webhooks/twilio/recording", &recording).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let (sid, customer): (String, String) =
        sqlx::query_as("SELECT call_sid, customer_phone FROM recordings").fetch_one(&pool).await.unwrap();
    assert_eq!((sid.as_str(), customer.as_str()), (caller_sid.as_str(), CALLER));
    assert_eq!(count(&pool, "SELECT count(*) FROM calls").await, 1, "the leg is no call of its own");
}
