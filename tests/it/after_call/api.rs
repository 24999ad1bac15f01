//! The after-call API: recordings, transcript search, leads, reprocessing,
//! and what a call's detail page includes.

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use switchboard::storage::RecordingStorage;
use switchboard::web::{AppState, call_outcome};

use super::fakes::Endpoint;
use super::{CUSTOMER, World, announce, count, wait_for_count, wait_for_jobs};
use crate::support::moto::Moto;
use crate::support::{API_TOKEN, TestApp, migrate, serve_state, wait_until};

/// The web app serving recordings from `storage`.
async fn app_with(pool: &PgPool, storage: Arc<RecordingStorage>) -> TestApp {
    serve_state(pool, AppState::new(pool.clone(), vec![API_TOKEN.into()]).with_recordings(storage)).await
}

async fn app_for(pool: &PgPool, world: &World) -> TestApp {
    app_with(pool, world.storage.clone()).await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(format!("{}{path}", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_local_recording_is_streamed_and_unknown_calls_are_404(pool: PgPool) {
    migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0101", 95, CUSTOMER).await;
    wait_for_count(&pool, "recordings WHERE status = 'stored'", 1).await;
    let app = app_for(&pool, &world).await;

    let response = get(&app, "/api/calls/CA0101/recording").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.bytes().await.unwrap(), world.fakes.recording());
    assert_eq!(get(&app, "/api/calls/CA9999/recording").await.status(), 404);
    let anonymous = app.client.get(format!("{}/api/calls/CA0101/recording", app.base_url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_s3_recording_is_a_redirect_to_a_presigned_url(pool: PgPool) {
    migrate(&pool).await;
    let moto = Moto::start().await;
    let storage = Arc::new(RecordingStorage::S3(moto.store("recordings").await));
    let body = super::fakes::fake_mp3(10_000);
    crate::support::put_bytes(storage.as_ref(), "twilio/CA0102/RE0102.mp3", &body).await.unwrap();
    sqlx::query(
        "INSERT INTO recordings (provider, call_sid, recording_sid, source_url, status, storage_key, content_type, bytes, sha256)
         VALUES ('twilio', 'CA0102', 'RE0102', 'https://api.twilio.com/x', 'stored', 'twilio/CA0102/RE0102.mp3', 'audio/mpeg', $1, $2)",
    )
    .bind(body.len() as i64)
    .bind(hex::encode(Sha256::digest(&body)))
    .execute(&pool)
    .await
    .unwrap();
    let app = app_with(&pool, storage).await;

    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects
        .get(format!("{}/api/calls/CA0102/recording", app.base_url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&moto.endpoint) && location.contains("X-Amz-Signature="), "{location}");
    let fetched = reqwest::get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&fetched)), hex::encode(Sha256::digest(&body)));
}

#[sqlx::test(migrations = false)]
async fn transcript_search_returns_calls_with_highlighted_snippets(pool: PgPool) {
    migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0103", 95, CUSTOMER).await;
    wait_for_count(&pool, "transcripts", 1).await;
    let app = app_for(&pool, &world).await;

    let hits: Vec<Value> = get(&app, "/api/transcripts/search?q=whitefield%20flat").await.json().await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["call_sid"], "CA0103");
    let snippet = hits[0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>Whitefield</mark>") && snippet.contains("<mark>flat</mark>"), "{snippet}");

    let recording: i64 = sqlx::query_scalar(
        "INSERT INTO recordings (provider, call_sid, recording_sid, source_url) VALUES ('twilio', 'CA0106', 'RE0106', 'x')
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let text = "He said <script>alert('x')</script> Koramangala & Indiranagar, 5 > 3, \"cheaper\" <b>really";
    sqlx::query(
        "INSERT INTO transcripts (recording_id, call_sid, status, text) VALUES ($1, 'CA0106', 'transcribed', $2)",
    )
    .bind(recording)
    .bind(text)
    .execute(&pool)
    .await
    .unwrap();
    let hits: Vec<Value> = get(&app, "/api/transcripts/search?q=koramangala").await.json().await.unwrap();
    let snippet = hits[0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>Koramangala</mark> &amp; Indiranagar, 5 &gt; 3, &quot;cheaper&quot;"), "{snippet}");
    let markup = snippet.replace("<mark>", "").replace("</mark>", "");
    assert!(
        !markup.contains('<') && !markup.contains('>') && !markup.contains('"'),
        "only our marks are markup: {snippet}"
    );

    let none: Vec<Value> = get(&app, "/api/transcripts/search?q=villa").await.json().await.unwrap();
    assert!(none.is_empty());
    let missing = get(&app, "/api/transcripts/search").await;
    assert_eq!(missing.status(), 422);
    assert_eq!(missing.json::<Value>().await.unwrap()["field"], "q");
    world.workers.stop().await;
}

async fn insert_lead(pool: &PgPool, phone: &str, score: i32, hot: bool, location: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO leads (phone, score, hot, preferred_locations, latest_insight_id)
         VALUES ($1, $2, $3, ARRAY[$4], 0) RETURNING id",
    )
    .bind(phone)
    .bind(score)
    .bind(hot)
    .bind(location)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn leads_are_filtered_paged_and_shown_with_their_calls(pool: PgPool) {
    migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0104", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls", 1).await;
    insert_lead(&pool, "+919800000001", 30, false, "Andheri West").await;
    insert_lead(&pool, "+919800000002", 90, true, "Whitefield Main Road").await;
    let app = app_for(&pool, &world).await;

    let phones = |page: &Value| -> Vec<String> {
        page["leads"].as_array().unwrap().iter().map(|l| l["phone"].as_str().unwrap().to_owned()).collect()
    };
    let hot: Value = get(&app, "/api/leads?hot=true").await.json().await.unwrap();
    assert_eq!(phones(&hot), vec!["+919800000002", CUSTOMER]);
    let scored: Value = get(&app, "/api/leads?min_score=20&max_score=85").await.json().await.unwrap();
    assert_eq!(phones(&scored), vec!["+919800000001", CUSTOMER]);
    let located: Value = get(&app, "/api/leads?location=whitefield").await.json().await.unwrap();
    assert_eq!(phones(&located), vec!["+919800000002", CUSTOMER]);

    let first: Value = get(&app, "/api/leads?limit=2").await.json().await.unwrap();
    assert_eq!(phones(&first), vec!["+919800000002", "+919800000001"]);
    let next = first["next_before"].as_i64().unwrap();
    let second: Value = get(&app, &format!("/api/leads?limit=2&before={next}")).await.json().await.unwrap();
    assert_eq!(phones(&second), vec![CUSTOMER]);
    assert_eq!(second["next_before"], Value::Null);
    assert_eq!(get(&app, "/api/leads?limit=0").await.status(), 422);

    let id: i64 =
        sqlx::query_scalar("SELECT id FROM leads WHERE phone = $1").bind(CUSTOMER).fetch_one(&pool).await.unwrap();
    let lead: Value = get(&app, &format!("/api/leads/{id}")).await.json().await.unwrap();
    assert_eq!(lead["name"], "Rahul");
    assert_eq!(lead["calls"][0]["call_sid"], "CA0104");
    assert_eq!(lead["calls"][0]["lead_score"], 82);
    assert_eq!(get(&app, "/api/leads/999999").await.status(), 404);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn reprocessing_from_analyze_replaces_the_insight_and_keeps_one_lead(pool: PgPool) {
    migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0105", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls", 1).await;

    let outcome = call_outcome::for_call(&pool, switchboard_jobs::ports::Provider::Twilio, "CA0105").await.unwrap();
    assert_eq!(outcome["recordings"][0]["status"], "stored");
    assert_eq!(outcome["transcripts"][0]["status"], "transcribed");
    assert_eq!(outcome["insights"][0]["lead_score"], 82);
    assert_eq!(outcome["lead"]["phone"], CUSTOMER);
    let old_insight = outcome["insights"][0]["id"].as_i64().unwrap();

    let mut second = super::fakes::hot_insight();
    second["lead_score"] = serde_json::json!(55);
    world.fakes.set_insight(second);
    let app = app_for(&pool, &world).await;
    let url = format!("{}/api/calls/CA0105/reprocess?from=analyze", app.base_url);
    let response = app.client.post(&url).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["jobs_enqueued"], 1);
    wait_until(std::time::Duration::from_secs(30), "a second analysis", || async {
        world.fakes.hits(Endpoint::Chat) == 2
    })
    .await;
    wait_for_jobs(&pool, "analyze", "done").await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;
    wait_for_jobs(&pool, "create-lead", "done").await;

    let (insight, revision, score): (i64, i32, i32) =
        sqlx::query_as("SELECT id, revision, lead_score FROM insights").fetch_one(&pool).await.unwrap();
    assert_eq!((insight, revision, score), (old_insight, 2, 55), "replaced in place, the lead link kept");
    let lead_score: i32 = sqlx::query_scalar("SELECT score FROM leads").fetch_one(&pool).await.unwrap();
    assert_eq!(lead_score, 55, "the re-analysis is the call's newest word");
    let deliveries: Vec<String> = world.fakes.crm_deliveries().into_iter().map(|d| d.delivery_id).collect();
    assert_eq!(deliveries, vec![format!("switchboard-insight-{insight}"), format!("switchboard-insight-{insight}-r2")]);
    assert_eq!(count(&pool, "leads").await, 1);
    assert_eq!(count(&pool, "transcripts").await, 1);
    let bad_step = app.client.post(format!("{url}-later")).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(bad_step.status(), 422);
    assert_eq!(bad_step.json::<Value>().await.unwrap()["field"], "from");
    let unknown = app.client.post(format!("{}/api/calls/CA9999/reprocess", app.base_url)).bearer_auth(API_TOKEN);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
    world.workers.stop().await;
}
