//! Webhooks under hostile input: caps before any work, the authentic event
//! kept when one of its fields is bad, signed business keys for dedupe, and
//! callers without a usable number carried end to end.

use sqlx::PgPool;

use crate::after_call::World;
use crate::inbound::world::*;
use crate::support::{TestApp, migrate, spawn_app_with, wait_for_count};

async fn exotel_get(app: &TestApp, endpoint: &str, query: &str) -> reqwest::Response {
    let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/{endpoint}?{query}", app.base_url);
    app.client.get(url).send().await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn thousands_of_unsigned_fields_are_refused_with_413_before_any_signature_work(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let form = (0..9_000).map(|i| format!("f{i}=")).collect::<Vec<_>>().join("&");
    let json = serde_json::Value::Object((0..1_000).map(|i| (format!("f{i}"), 1.into())).collect()).to_string();

    let twilio = app
        .client
        .post(format!("{}/webhooks/twilio/status", app.base_url))
        .header("X-Twilio-Signature", "forged")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    let twilio_json = app
        .client
        .post(format!("{}/webhooks/twilio/status?bodySHA256=00", app.base_url))
        .header("X-Twilio-Signature", "forged")
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    let exotel = app
        .client
        .post(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", app.base_url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();

    assert_eq!([twilio.status(), twilio_json.status(), exotel.status()].map(|s| s.as_u16()), [413, 413, 413]);
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn a_webhook_body_over_64_kib_is_413_even_where_the_api_takes_more(pool: PgPool) {
    migrate(&pool).await;
    let state = switchboard::web::AppState::new(pool.clone(), vec![]).with_webhooks(webhooks());
    let app = crate::support::serve_state_with_limit(&pool, state, 1024 * 1024).await;
    let body = format!("CallSid={}&Junk={}", call_sid(1), "x".repeat(70 * 1024));

    let response = app
        .client
        .post(format!("{}/webhooks/twilio/status", app.base_url))
        .header("X-Twilio-Signature", "forged")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 413);
    assert!(!stored_anything(&pool).await);
}

#[sqlx::test(migrations = false)]
async fn nul_characters_in_optional_fields_keep_the_event_and_drop_the_field(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some("+918041234567"), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(1);
    let status = [("CallSid", sid.as_str()), ("CallStatus", "ringing"), ("From", "+1415\0"), ("SequenceNumber", "0")];

    let twilio = twilio_post(&app, "/webhooks/twilio/status?attempt_id=a%00b", &status).send().await.unwrap();
    let connect = exotel_get(
        &app,
        "connect",
        "CallSid=b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&CallFrom=09876543210&CallTo=08041234567&department=sa%00les",
    )
    .await;
    let exotel_status = app
        .client
        .post(format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", app.base_url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(&b"CallSid=c6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d&Status=completed&CustomField=x%00&From=0\x00"[..])
        .send()
        .await
        .unwrap();

    assert_eq!([twilio.status(), connect.status(), exotel_status.status()].map(|s| s.as_u16()), [200, 200, 200]);
    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 3);
    assert_eq!(count(&pool, "SELECT count(*) FROM calls WHERE attempt_id IS NULL").await, 3);
    let department: Option<String> = sqlx::query_scalar(
        "SELECT d.name FROM calls c JOIN departments d ON d.id = c.department_id WHERE c.provider = 'exotel'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert_eq!(department.as_deref(), Some("sales"), "the called number's department, the bad name ignored");
    let stored: String =
        sqlx::query_scalar("SELECT body FROM webhook_events WHERE endpoint = 'status' AND provider = 'exotel'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(stored.ends_with("From=0\u{FFFD}"), "{stored}");
}

#[sqlx::test(migrations = false)]
async fn negative_durations_and_dates_in_year_9999_are_ignored_and_the_event_kept(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(2);
    let twilio = [
        ("CallSid", sid.as_str()),
        ("CallStatus", "completed"),
        ("SequenceNumber", "3"),
        ("CallDuration", "-5"),
        ("Timestamp", "Fri, 31 Dec 9999 23:59:59 +0000"),
    ];
    let exotel_sid = "d6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d";

    let twilio = twilio_post(&app, "/webhooks/twilio/status", &twilio).send().await.unwrap();
    let exotel = exotel_get(
        &app,
        "status",
        &format!("CallSid={exotel_sid}&Status=completed&ConversationDuration=-30&DateUpdated=9999-12-31+23:59:59"),
    )
    .await;

    assert_eq!((twilio.status().as_u16(), exotel.status().as_u16()), (200, 200));
    let calls: Vec<(Option<i32>, bool)> =
        sqlx::query_as("SELECT duration_secs, coalesce(ended_at < now() + interval '1 day', true) FROM calls")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(calls, vec![(None, true), (None, true)]);
}

#[sqlx::test(migrations = false)]
async fn an_over_long_or_malformed_recording_sid_is_refused_at_the_edge(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(3);
    let long = format!("RE{}", "0".repeat(5_000));
    let recording = |recording_sid: &'static str| {
        [
            ("CallSid", sid.clone()),
            ("RecordingSid", recording_sid.to_owned()),
            ("RecordingUrl", format!("https://api.twilio.com/2010-04-01/Accounts/ACx/Recordings/{recording_sid}")),
            ("RecordingStatus", "completed".to_owned()),
        ]
    };
    let long: &'static str = Box::leak(long.into_boxed_str());

    let over_long = twilio_post(&app, "/webhooks/twilio/recording", &borrowed(&recording(long))).send().await.unwrap();
    let not_hex = twilio_post(&app, "/webhooks/twilio/recording", &borrowed(&recording("RE-not-a-sid"))).send();

    assert_eq!((over_long.status().as_u16(), not_hex.await.unwrap().status().as_u16()), (400, 400));
    assert_eq!(count(&pool, "SELECT count(*) FROM recordings").await, 0);
}

#[sqlx::test(migrations = false)]
async fn one_signed_request_replayed_under_twenty_idempotency_tokens_is_stored_once(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(4);
    let params = [("CallSid", sid.as_str()), ("CallStatus", "ringing"), ("SequenceNumber", "1")];

    for replay in 0..21 {
        let token = format!("replay-{replay}");
        let response = twilio_post(&app, "/webhooks/twilio/status", &params)
            .header("I-Twilio-Idempotency-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    assert_eq!(count(&pool, "SELECT count(*) FROM webhook_events").await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_60_kb_idempotency_token_is_not_stored(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(5);
    let params = [("CallSid", sid.as_str()), ("CallStatus", "ringing"), ("SequenceNumber", "1")];

    let response = twilio_post(&app, "/webhooks/twilio/status", &params)
        .header("I-Twilio-Idempotency-Token", "t".repeat(60_000))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let longest: i32 = sqlx::query_scalar("SELECT max(length(headers::text) + length(dedupe_key)) FROM webhook_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(longest < 1_000, "{longest} characters of headers and key stored");
}

/// Root menu on our number: 1 -> sales.
async fn ivr_to_sales(pool: &PgPool) -> i64 {
    let sales = department(pool, "sales", "round_robin", None, 60).await;
    let menu: i64 = sqlx::query_scalar(
        "INSERT INTO ivr_menus (phone_number, prompt) VALUES ($1, 'Press 1 for sales.') RETURNING id",
    )
    .bind(OUR_NUMBER)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO ivr_options (menu_id, digit, department_id) VALUES ($1, '1', $2)")
        .bind(menu)
        .bind(sales)
        .execute(pool)
        .await
        .unwrap();
    menu
}

#[sqlx::test(migrations = false)]
async fn callers_without_a_number_are_routed_recorded_transcribed_and_analysed_without_a_lead(pool: PgPool) {
    migrate(&pool).await;
    let menu = ivr_to_sales(&pool).await;
    let world = World::start(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;

    for (n, caller) in [(11, "anonymous"), (12, "client:alice"), (13, "sip:alice@example.com")] {
        let sid = call_sid(n);
        let recording_sid = format!("RE{n:032x}");
        let call = [("CallSid", sid.as_str()), ("From", caller), ("To", OUR_NUMBER), ("CallStatus", "ringing")];
        let pressed = [("CallSid", sid.as_str()), ("From", caller), ("To", OUR_NUMBER), ("Digits", "1")];
        let url = world.fakes.recording_url(&recording_sid);
        let recording = [
            ("CallSid", sid.as_str()),
            ("RecordingSid", recording_sid.as_str()),
            ("RecordingUrl", url.as_str()),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", "95"),
        ];
        let statuses = [
            twilio_post(&app, "/webhooks/twilio/voice", &call).send().await.unwrap().status(),
            twilio_post(&app, &format!("/webhooks/twilio/ivr?menu={menu}&attempt=0"), &pressed)
                .send()
                .await
                .unwrap()
                .status(),
            twilio_post(&app, "/webhooks/twilio/recording", &recording).send().await.unwrap().status(),
        ];
        assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 200], "{caller}");
    }

    wait_for_count(&pool, "SELECT count(*) FROM insights WHERE no_lead_reason IS NOT NULL", 3).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM calls WHERE from_number IS NULL AND department_id IS NOT NULL").await,
        3
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM transcripts WHERE status = 'transcribed'").await, 3);
    assert_eq!(count(&pool, "SELECT count(*) FROM leads").await, 0);
    let failed = "SELECT count(*) FROM job_overview WHERE state IN ('dead', 'retrying') AND kind <> 'route-call'";
    assert_eq!(count(&pool, failed).await, 0, "route-call has no telephony here; the after-call chain never fails");
    world.workers.stop().await;
}
