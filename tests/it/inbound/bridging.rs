//! Bridging a caller to an agent through Twilio, and the races around it: the
//! agent leg's status beating Twilio's answer to us, the job running again
//! while Twilio places the leg, a leg Twilio never tells us about, the caller
//! hanging up meanwhile. Each `route-call` run is driven by hand, so every
//! interleaving is the one the test sets up.

use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::ports::Ports;
use switchboard_jobs::queue::{Job, JobContext, JobError};
use switchboard_jobs::release_silent_agent::{LONGEST_SILENCE, ReleaseSilentAgent};
use switchboard_jobs::route_call::RouteCall;
use tokio::sync::oneshot;

use super::scripted_twilio::ScriptedTwilio;
use super::world::*;
use crate::support::fake_providers::FakeProviders;
use crate::support::{API_TOKEN, TestApp, migrate, spawn_app_with};

fn ports(api_base: &str) -> Arc<Ports> {
    Arc::new(Ports { telephony: Some(Arc::new(TwilioRest::new(twilio_config(api_base)))), ..Ports::default() })
}

/// One run of the call's `route-call`, as a worker would run it.
async fn route(pool: &PgPool, ports: &Arc<Ports>, call_id: i64) -> Result<(), JobError> {
    let ctx =
        JobContext { pool: pool.clone(), ports: ports.clone(), job_id: "by-hand".into(), attempt: 1, max_attempts: 10 };
    RouteCall { call_id }.run(ctx).await
}

/// A caller waiting for the department of the number they called, as `/voice` leaves them.
async fn waiting_caller(app: &TestApp, sid: &str) -> i64 {
    let response = twilio_post(app, "/webhooks/twilio/voice", &borrowed(&incoming_call(sid))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    sqlx::query_scalar("SELECT id FROM calls WHERE call_sid = $1").bind(sid).fetch_one(&app.pool).await.unwrap()
}

async fn slots_held(pool: &PgPool, agent: i64) -> i64 {
    count(pool, &format!("SELECT current_calls::bigint FROM agents WHERE id = {agent}")).await
}

#[derive(Debug, sqlx::FromRow)]
struct Routing {
    routing_state: String,
    agent_id: Option<i64>,
    bridge_call_sid: Option<String>,
    reroutes: i32,
}

async fn routing(pool: &PgPool, sid: &str) -> Routing {
    sqlx::query_as("SELECT routing_state, agent_id, bridge_call_sid, reroutes FROM calls WHERE call_sid = $1")
        .bind(sid)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Twilio reporting an agent leg's progress to the StatusCallback it was given.
async fn leg_reports(app: &TestApp, status_callback: &str, leg_sid: &str, status: &str, sequence: &str) {
    let params = [
        ("CallSid", leg_sid),
        ("CallStatus", status),
        ("SequenceNumber", sequence),
        ("Direction", "outbound-api"),
        ("From", OUR_NUMBER),
        ("To", "+14155550901"),
    ];
    let response = twilio_callback(app, status_callback, &params).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

async fn caller_hangs_up(app: &TestApp, sid: &str) {
    let params = [("CallSid", sid), ("CallStatus", "completed"), ("SequenceNumber", "5"), ("Direction", "inbound")];
    let response = twilio_post(app, "/webhooks/twilio/status", &params).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn a_leg_reported_busy_before_twilio_answers_us_frees_the_agent_and_routes_the_caller_again(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let busy = agent(&pool, sales, "+14155550901", &[], 1).await;
    let next = agent(&pool, sales, "+14155550902", &[], 1).await;
    let twilio = ScriptedTwilio::start().await;
    let app = Arc::new(spawn_app_with(&pool, webhooks()).await);
    let ports = ports(&twilio.base_url);
    let sid = call_sid(21);
    let call_id = waiting_caller(&app, &sid).await;
    let reporter = app.clone();
    twilio.then(move |leg| {
        Box::pin(async move { leg_reports(&reporter, &leg.status_callback, &leg.leg_sid, "busy", "1").await })
    });

    route(&pool, &ports, call_id).await.unwrap();

    let missed = routing(&pool, &sid).await;
    assert_eq!((missed.routing_state.as_str(), missed.agent_id, missed.reroutes), ("waiting", None, 1));
    assert_eq!(slots_held(&pool, busy).await, 0);
    assert_eq!(route_jobs(&pool).await, 2, "the first routing and the one after the miss");
    assert_eq!(count(&pool, "SELECT count(*) FROM calls").await, 1, "the leg has no calls row of its own");
    route(&pool, &ports, call_id).await.unwrap();
    let dialled: Vec<String> = twilio.created().into_iter().map(|c| c.to).collect();
    assert_eq!(dialled, ["+14155550901", "+14155550902"]);
    assert_eq!((routing(&pool, &sid).await.agent_id, slots_held(&pool, next).await), (Some(next), 1));
}

#[sqlx::test(migrations = false)]
async fn a_rerun_while_twilio_places_the_leg_does_not_dial_the_agent_again(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let asha = agent(&pool, sales, "+14155550901", &[], 1).await;
    let twilio = ScriptedTwilio::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let ports = ports(&twilio.base_url);
    let sid = call_sid(22);
    let call_id = waiting_caller(&app, &sid).await;
    let (rerun_pool, rerun_ports) = (pool.clone(), ports.clone());
    let (reran, rerun) = oneshot::channel();
    twilio.then(move |_| {
        Box::pin(async move {
            let _ = reran.send(route(&rerun_pool, &rerun_ports, call_id).await);
        })
    });

    route(&pool, &ports, call_id).await.unwrap();
    route(&pool, &ports, call_id).await.unwrap();

    let rerun = rerun.await.unwrap();
    assert!(matches!(rerun, Err(JobError::Snooze { .. })), "the re-run waits for the attempt in flight: {rerun:?}");
    let created = twilio.created();
    assert_eq!(created.len(), 1, "{created:?}");
    let bridged = routing(&pool, &sid).await;
    assert_eq!(
        (bridged.routing_state.as_str(), bridged.bridge_call_sid),
        ("bridged", Some(created[0].leg_sid.clone()))
    );
    assert_eq!(slots_held(&pool, asha).await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_bridge_attempt_unheard_of_past_its_bound_is_missed_and_the_caller_routed_again(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    // The fake answers 500 for this number: Twilio may or may not have placed the leg.
    let unheard = agent(&pool, sales, "+14155550500", &[], 1).await;
    let next = agent(&pool, sales, "+14155550902", &[], 1).await;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let ports = ports(&fake.base_url);
    let sid = call_sid(23);
    let call_id = waiting_caller(&app, &sid).await;

    let first = route(&pool, &ports, call_id).await;
    let rerun = route(&pool, &ports, call_id).await;
    assert!(matches!(first, Err(JobError::Snooze { .. })), "{first:?}");
    assert!(matches!(rerun, Err(JobError::Snooze { .. })), "{rerun:?}");
    assert_eq!((fake.placed().len(), slots_held(&pool, unheard).await), (1, 1));
    sqlx::query("UPDATE calls SET bridge_started_at = now() - interval '1 minute' WHERE id = $1")
        .bind(call_id)
        .execute(&pool)
        .await
        .unwrap();
    route(&pool, &ports, call_id).await.unwrap();
    route(&pool, &ports, call_id).await.unwrap();

    let dialled: Vec<String> = fake.placed().iter().map(|r| r.get("To").unwrap().to_owned()).collect();
    assert_eq!(dialled, ["+14155550500", "+14155550902"]);
    assert_eq!((slots_held(&pool, unheard).await, slots_held(&pool, next).await), (0, 1));
    let rerouted = routing(&pool, &sid).await;
    assert_eq!((rerouted.routing_state.as_str(), rerouted.agent_id, rerouted.reroutes), ("bridged", Some(next), 1));
}

#[sqlx::test(migrations = false)]
async fn a_leg_twilio_certainly_did_not_take_gives_the_agent_back_at_once_and_the_retry_routes_again(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    // The fake answers 503 for this number: Twilio did not take the request.
    let unavailable = agent(&pool, sales, "+14155550503", &[], 1).await;
    let next = agent(&pool, sales, "+14155550902", &[], 1).await;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let ports = ports(&fake.base_url);
    let sid = call_sid(24);
    let call_id = waiting_caller(&app, &sid).await;

    let first = route(&pool, &ports, call_id).await;
    assert!(matches!(first, Err(JobError::Retry { .. })), "a job retry, not a wait: {first:?}");
    let waiting = routing(&pool, &sid).await;
    assert_eq!((waiting.routing_state.as_str(), waiting.agent_id), ("waiting", None));
    assert_eq!(slots_held(&pool, unavailable).await, 0, "the slot comes back at once");

    route(&pool, &ports, call_id).await.unwrap();
    let dialled: Vec<String> = fake.placed().iter().map(|r| r.get("To").unwrap().to_owned()).collect();
    assert_eq!(dialled, ["+14155550503", "+14155550902"]);
    assert_eq!((routing(&pool, &sid).await.agent_id, slots_held(&pool, next).await), (Some(next), 1));
}

#[sqlx::test(migrations = false)]
async fn a_caller_who_hangs_up_while_their_agent_is_reserved_is_abandoned_and_the_agents_leg_ended(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let asha = agent(&pool, sales, "+14155550901", &[], 1).await;
    let twilio = ScriptedTwilio::start().await;
    let app = Arc::new(spawn_app_with(&pool, webhooks()).await);
    let ports = ports(&twilio.base_url);
    let sid = call_sid(24);
    let call_id = waiting_caller(&app, &sid).await;
    let (caller, caller_sid) = (app.clone(), sid.clone());
    twilio.then(move |_| Box::pin(async move { caller_hangs_up(&caller, &caller_sid).await }));

    route(&pool, &ports, call_id).await.unwrap();
    let leg = twilio.created().remove(0);
    assert_eq!(twilio.ended(), std::slice::from_ref(&leg.leg_sid), "the leg Twilio placed anyway is hung up");
    leg_reports(&app, &leg.status_callback, &leg.leg_sid, "canceled", "2").await;
    route(&pool, &ports, call_id).await.unwrap();

    let abandoned = routing(&pool, &sid).await;
    assert_eq!(abandoned.routing_state, "abandoned");
    assert_eq!(abandoned.bridge_call_sid, Some(leg.leg_sid), "the leg is still known, for its recording");
    assert_eq!(slots_held(&pool, asha).await, 0);
    assert_eq!((route_jobs(&pool).await, twilio.created().len()), (1, 1), "nobody routes or dials again");
}

async fn api(app: &TestApp, path: &str) -> Value {
    let response = app.client.get(format!("{}/api{path}", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_agent_legs_statuses_and_recording_add_no_call_to_the_list_or_the_stats(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let asha = agent(&pool, sales, "+14155550901", &[], 1).await;
    let twilio = ScriptedTwilio::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(25);
    let call_id = waiting_caller(&app, &sid).await;
    route(&pool, &ports(&twilio.base_url), call_id).await.unwrap();
    let leg = twilio.created().remove(0);

    for (status, sequence) in [("initiated", "0"), ("ringing", "1"), ("in-progress", "2"), ("completed", "3")] {
        leg_reports(&app, &leg.status_callback, &leg.leg_sid, status, sequence).await;
    }
    let recording = [
        ("CallSid", leg.leg_sid.as_str()),
        ("RecordingSid", "RE00000000000000000000000000000025"),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/ACtest/Recordings/RE00000000000000000000000000000025",
        ),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "61"),
    ];
    assert_eq!(twilio_post(&app, "/webhooks/twilio/recording", &recording).send().await.unwrap().status(), 200);

    let listed = api(&app, "/calls").await;
    let sids: Vec<&str> = listed["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap()).collect();
    assert_eq!(sids, [sid.as_str()]);
    let stats = api(&app, "/stats/calls").await;
    assert_eq!((stats["total"].as_i64(), stats["by_direction"]["inbound"].as_i64()), (Some(1), Some(1)));
    let recorded: String = sqlx::query_scalar("SELECT call_sid FROM recordings").fetch_one(&pool).await.unwrap();
    assert_eq!(recorded, sid);
    assert_eq!(slots_held(&pool, asha).await, 0, "the agent is free once their leg is over");
}

/// One run of the call's `release-silent-agent`, as a worker would run it.
async fn watch(pool: &PgPool, call_id: i64) -> Result<(), JobError> {
    let ctx = JobContext {
        pool: pool.clone(),
        ports: Arc::new(Ports::default()),
        job_id: "by-hand".into(),
        attempt: 1,
        max_attempts: 10,
    };
    ReleaseSilentAgent { call_id }.run(ctx).await
}

#[sqlx::test(migrations = false)]
async fn a_call_never_heard_of_again_gives_its_agent_back_after_the_longest_silence_once(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let asha = agent(&pool, sales, "+14155550901", &[], 1).await;
    let twilio = ScriptedTwilio::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(40);
    let call_id = waiting_caller(&app, &sid).await;
    route(&pool, &ports(&twilio.base_url), call_id).await.unwrap();
    assert_eq!(slots_held(&pool, asha).await, 1);
    let (watchdogs, due_in): (i64, f64) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM min(run_at) - now())::float8 FROM apalis.jobs WHERE job_type = $1",
    )
    .bind(ReleaseSilentAgent::KIND)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(watchdogs, 1, "the reservation is watched");
    assert!((due_in - LONGEST_SILENCE.as_secs_f64()).abs() < 60.0, "due after the longest silence: {due_in}s");

    let early = watch(&pool, call_id).await;
    assert!(matches!(early, Err(JobError::Snooze { .. })), "a call heard of lately is looked at later: {early:?}");
    assert_eq!(slots_held(&pool, asha).await, 1);

    sqlx::query("UPDATE calls SET updated_at = now() - interval '5 hours' WHERE id = $1")
        .bind(call_id)
        .execute(&pool)
        .await
        .unwrap();
    watch(&pool, call_id).await.unwrap();
    watch(&pool, call_id).await.unwrap();
    assert_eq!(slots_held(&pool, asha).await, 0, "the slot comes back once, however often the job runs");
    let released =
        count(&pool, &format!("SELECT count(*) FROM calls WHERE id = {call_id} AND agent_released_at IS NOT NULL"))
            .await;
    assert_eq!(released, 1);
}
