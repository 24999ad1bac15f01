//! Routing: fair turns, load limits under concurrency, skills, overflow, and
//! the `route-call` job bridging through Twilio's (faked) REST API or Exotel's Connect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::ports::{OutboundCall, PortError, Ports, Provider, Telephony};
use switchboard_jobs::routing::{self, Department, Strategy};
use tokio::sync::Barrier;

use super::world::*;
use crate::support::fake_providers::FakeProviders;
use crate::support::{Workers, job_state, migrate, spawn_app_with, wait_until};

fn plain(id: i64, strategy: Strategy) -> Department {
    Department { id, strategy, required_skills: Vec::new() }
}

async fn reserve(pool: &PgPool, department: &Department) -> Option<i64> {
    let mut tx = pool.begin().await.unwrap();
    let agent = routing::reserve(&mut tx, department).await.unwrap();
    tx.commit().await.unwrap();
    agent.map(|a| a.id)
}

#[sqlx::test(migrations = false)]
async fn a_thousand_calls_spread_within_one_of_even_over_five_round_robin_agents(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    for n in 0..5 {
        agent(&pool, sales, &format!("+1415555020{n}"), &[], 1).await;
    }
    let mut calls_per_agent: HashMap<i64, u32> = HashMap::new();

    for _ in 0..1000 {
        let agent = reserve(&pool, &plain(sales, Strategy::RoundRobin)).await.expect("an agent is always free");
        *calls_per_agent.entry(agent).or_default() += 1;
        // Always free: the call ends at once.
        sqlx::query("UPDATE agents SET current_calls = 0 WHERE id = $1").bind(agent).execute(&pool).await.unwrap();
    }

    assert_eq!(calls_per_agent.len(), 5);
    let (min, max) = (calls_per_agent.values().min().unwrap(), calls_per_agent.values().max().unwrap());
    assert!(max - min <= 1, "uneven spread: {calls_per_agent:?}");
}

#[sqlx::test(migrations = false)]
async fn four_concurrent_routers_never_put_an_agent_over_its_max(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "least_busy", None, 60).await;
    for n in 0..3 {
        agent(&pool, sales, &format!("+1415555030{n}"), &[], 2).await;
    }
    let barrier = Arc::new(Barrier::new(4));

    let routers = (0..4).map(|_| {
        let (pool, barrier) = (pool.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let mut reserved = 0;
            for _ in 0..10 {
                reserved += u32::from(reserve(&pool, &plain(sales, Strategy::LeastBusy)).await.is_some());
            }
            reserved
        })
    });
    let reserved: u32 = futures::future::join_all(routers).await.into_iter().map(Result::unwrap).sum();

    assert_eq!(reserved, 6, "exactly the 3 x 2 slots are handed out");
    let over = count(&pool, "SELECT count(*) FROM agents WHERE current_calls > max_concurrent_calls").await;
    assert_eq!(over, 0);
    assert_eq!(count(&pool, "SELECT sum(current_calls) FROM agents").await, 6);
}

#[sqlx::test(migrations = false)]
async fn skill_based_routing_never_picks_an_agent_missing_a_skill(pool: PgPool) {
    migrate(&pool).await;
    let support = department(&pool, "support", "skill_based", None, 60).await;
    agent(&pool, support, "+14155550401", &["hindi"], 5).await;
    agent(&pool, support, "+14155550402", &["insurance"], 5).await;
    let both = agent(&pool, support, "+14155550403", &["hindi", "insurance", "claims"], 2).await;
    let department = Department {
        id: support,
        strategy: Strategy::SkillBased,
        required_skills: vec!["hindi".into(), "insurance".into()],
    };

    let picks =
        [reserve(&pool, &department).await, reserve(&pool, &department).await, reserve(&pool, &department).await];

    assert_eq!(picks, [Some(both), Some(both), None]);
}

#[sqlx::test(migrations = false)]
async fn least_busy_prefers_the_lowest_load_against_each_agents_max(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "least_busy", None, 60).await;
    let half_busy = agent(&pool, sales, "+14155550501", &[], 4).await;
    let third_busy = agent(&pool, sales, "+14155550502", &[], 3).await;
    sqlx::query("UPDATE agents SET current_calls = 2 WHERE id = $1").bind(half_busy).execute(&pool).await.unwrap();
    sqlx::query("UPDATE agents SET current_calls = 1 WHERE id = $1").bind(third_busy).execute(&pool).await.unwrap();

    assert_eq!(reserve(&pool, &plain(sales, Strategy::LeastBusy)).await, Some(third_busy));
}

fn twilio_ports(fake: &FakeProviders) -> Ports {
    Ports { telephony: Some(Arc::new(TwilioRest::new(twilio_config(&fake.base_url)))), ..Ports::default() }
}

async fn routing_state(pool: &PgPool, sid: &str) -> String {
    sqlx::query_scalar("SELECT routing_state FROM calls WHERE call_sid = $1").bind(sid).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn route_call_reserves_an_agent_and_calls_them_to_dequeue_the_caller(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let agent = agent(&pool, sales, "+14155550601", &[], 1).await;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let workers = Workers::start(&pool, switchboard_jobs::registry(), twilio_ports(&fake));
    let sid = call_sid(11);

    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();
    wait_until(Duration::from_secs(10), "the call to be bridged", || async {
        routing_state(&pool, &sid).await == "bridged"
    })
    .await;
    let job: String =
        sqlx::query_scalar("SELECT id FROM apalis.jobs WHERE job_type = 'route-call'").fetch_one(&pool).await.unwrap();
    wait_until(Duration::from_secs(10), "route-call to finish", || async { job_state(&pool, &job).await == "done" })
        .await;
    workers.stop().await;

    let sent = fake.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/2010-04-01/Accounts/ACtest/Calls.json");
    assert_eq!(sent[0].get("To"), Some("+14155550601"));
    assert_eq!(sent[0].get("From"), Some(OUR_NUMBER));
    assert!(sent[0].get("Twiml").unwrap().contains(&format!("<Dial><Queue>{sid}</Queue></Dial>")));
    let attempt =
        sent[0].get("StatusCallback").unwrap().strip_prefix("https://switchboard.test/webhooks/twilio/status?bridge=");
    assert!(attempt.is_some_and(|id| id.parse::<uuid::Uuid>().is_ok()), "{:?}", sent[0].get("StatusCallback"));
    assert!(sent[0].authorization.as_deref().unwrap().starts_with("Basic "));
    let (agent_id, bridge): (i64, Option<String>) =
        sqlx::query_as("SELECT agent_id, bridge_call_sid FROM calls WHERE call_sid = $1")
            .bind(&sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(agent_id, agent);
    assert!(bridge.is_some());
    assert_eq!(count(&pool, &format!("SELECT current_calls::bigint FROM agents WHERE id = {agent}")).await, 1);
}

#[sqlx::test(migrations = false)]
async fn an_empty_department_overflows_to_voicemail_after_its_max_wait(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 1).await;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let workers = Workers::start(&pool, switchboard_jobs::registry(), twilio_ports(&fake));
    let sid = call_sid(12);

    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();
    wait_until(Duration::from_secs(15), "the call to overflow", || async {
        routing_state(&pool, &sid).await == "overflowed"
    })
    .await;
    workers.stop().await;

    let sent = fake.received();
    assert_eq!(sent.len(), 1, "one redirect, no agent call");
    assert_eq!(sent[0].path, format!("/2010-04-01/Accounts/ACtest/Calls/{sid}.json"));
    assert_eq!(sent[0].get("Url"), Some("https://switchboard.test/webhooks/twilio/overflow"));
    let overflow_twiml = twilio_post(&app, "/webhooks/twilio/overflow", &[("CallSid", sid.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(overflow_twiml.contains("<Record"), "{overflow_twiml}");
    assert!(overflow_twiml.contains(r#"recordingStatusCallback="/webhooks/twilio/recording""#));
    let action: String = sqlx::query_scalar("SELECT overflow_action FROM calls WHERE call_sid = $1")
        .bind(&sid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(action, "voicemail");
}

fn exotel_connect_url(app: &crate::support::TestApp, sid: &str) -> String {
    format!(
        "{}/webhooks/exotel/{EXOTEL_SECRET}/connect?CallSid={sid}&CallFrom=09876543210&CallTo=08041234567",
        app.base_url
    )
}

#[sqlx::test(migrations = false)]
async fn exotel_connect_answers_the_agent_route_call_picked(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some("+918041234567"), 60).await;
    agent(&pool, sales, "+919800000001", &[], 1).await;
    let app = spawn_app_with(
        &pool,
        switchboard::config::WebhookConfig { exotel_connect_deadline: Duration::from_secs(10), ..webhooks() },
    )
    .await;
    let workers = Workers::start(&pool, switchboard_jobs::registry(), Ports::default());

    let answer: serde_json::Value =
        app.client.get(exotel_connect_url(&app, "exo1")).send().await.unwrap().json().await.unwrap();
    workers.stop().await;

    assert_eq!(answer["destination"]["numbers"], serde_json::json!(["+919800000001"]));
    assert_eq!(answer["outgoing_phone_number"], "+918041234567");
}

#[sqlx::test(migrations = false)]
async fn exotel_connect_answers_nobody_when_the_deadline_passes(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some("+918041234567"), 60).await;
    let app = spawn_app_with(&pool, webhooks()).await;

    let response = app.client.get(exotel_connect_url(&app, "exo2")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["destination"]["numbers"], serde_json::json!([]));
    assert_eq!(routing_state(&pool, "exo2").await, "overflowed");
    assert_eq!(route_jobs(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn exotel_connect_answers_the_transfer_number_when_the_department_overflows_to_a_transfer(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some("+918041234567"), 60).await;
    sqlx::query("UPDATE departments SET overflow_action = 'transfer', overflow_number = '+919812345678' WHERE id = $1")
        .bind(sales)
        .execute(&pool)
        .await
        .unwrap();
    let app = spawn_app_with(&pool, webhooks()).await;

    let answer: serde_json::Value =
        app.client.get(exotel_connect_url(&app, "exo3")).send().await.unwrap().json().await.unwrap();

    assert_eq!(answer["destination"]["numbers"], serde_json::json!(["+919812345678"]));
    assert_eq!(answer["outgoing_phone_number"], "+918041234567");
    assert_eq!(routing_state(&pool, "exo3").await, "overflowed");
}

fn agent_leg(to: &str) -> OutboundCall {
    OutboundCall {
        provider: Provider::Twilio,
        from: None,
        to: to.into(),
        caller_id: OUR_NUMBER.into(),
        twiml: Some("<Response/>".into()),
        custom_field: Some("attempt 9".into()),
        status_callback: "/webhooks/twilio/status".into(),
        record: false,
    }
}

#[tokio::test]
async fn twilio_rest_errors_are_transient_on_5xx_and_permanent_with_twilios_message_on_4xx() {
    let fake = FakeProviders::start().await;
    let client = TwilioRest::new(twilio_config(&fake.base_url));

    let placed = client.place_call(&agent_leg("+14155550700")).await.unwrap();
    let unavailable = client.place_call(&agent_leg("+14155550503")).await.unwrap_err();
    let invalid = client.place_call(&agent_leg("+14155550400")).await.unwrap_err();
    let unreachable =
        TwilioRest::new(twilio_config("http://127.0.0.1:9")).place_call(&agent_leg("+14155550700")).await.unwrap_err();

    assert!(placed.call_sid.starts_with("CA"));
    assert_eq!(
        fake.received()[0].get("StatusCallback"),
        Some("https://switchboard.test/webhooks/twilio/status?attempt_id=attempt+9")
    );
    assert!(matches!(unavailable, PortError::Transient { .. }));
    assert!(matches!(unreachable, PortError::Transient { .. }));
    match invalid {
        PortError::Permanent { message } => assert!(message.contains("not a valid phone number"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[sqlx::test(migrations = false)]
async fn an_agent_who_does_not_answer_is_freed_and_the_caller_routed_to_the_next(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", Some(OUR_NUMBER), 60).await;
    let first = agent(&pool, sales, "+14155550901", &[], 1).await;
    let second = agent(&pool, sales, "+14155550902", &[], 1).await;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let workers = Workers::start(&pool, switchboard_jobs::registry(), twilio_ports(&fake));
    let sid = call_sid(13);
    let agent_of = |pool: PgPool, sid: String| async move {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT agent_id FROM calls WHERE call_sid = $1 AND routing_state = 'bridged'",
        )
        .bind(sid)
        .fetch_optional(&pool)
        .await
        .unwrap()
        .flatten()
    };

    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();
    wait_until(Duration::from_secs(10), "the first agent to be called", || async {
        agent_of(pool.clone(), sid.clone()).await == Some(first)
    })
    .await;
    let bridge: String = sqlx::query_scalar("SELECT bridge_call_sid FROM calls WHERE call_sid = $1")
        .bind(&sid)
        .fetch_one(&pool)
        .await
        .unwrap();
    let missed = [
        ("CallSid", bridge.as_str()),
        ("CallStatus", "no-answer"),
        ("SequenceNumber", "2"),
        ("Direction", "outbound-api"),
    ];
    let status_callback = fake.received()[0].get("StatusCallback").unwrap().to_owned();
    twilio_callback(&app, &status_callback, &missed).send().await.unwrap();
    wait_until(Duration::from_secs(10), "the second agent to be called", || async {
        agent_of(pool.clone(), sid.clone()).await == Some(second)
    })
    .await;
    workers.stop().await;

    let called: Vec<_> = fake.received().iter().map(|r| r.get("To").unwrap().to_owned()).collect();
    assert_eq!(called, ["+14155550901", "+14155550902"]);
    assert_eq!(count(&pool, &format!("SELECT current_calls::bigint FROM agents WHERE id = {first}")).await, 0);
    assert_eq!(count(&pool, &format!("SELECT current_calls::bigint FROM agents WHERE id = {second}")).await, 1);
}
