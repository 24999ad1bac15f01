//! The `callback` overflow action: a caller nobody could take gets one
//! scheduled service call back, through either provider's webhooks, which
//! reaches the department's next free agent.

use std::sync::Arc;

use sqlx::PgPool;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::outbound::callback::schedule_overflow_callback;
use switchboard_jobs::phone::NumberPrefixes;
use switchboard_jobs::ports::{Ports, Provider};

use crate::inbound::world::{
    CALLER, EXOTEL_SECRET, OUR_NUMBER, agent, borrowed, department, incoming_call, twilio_config, twilio_post, webhooks,
};
use crate::outbound::reach::load;
use crate::outbound::{AGENT, FakePhone, TestClock, attempts, ports, queued_attempt, run};
use crate::support::fake_providers::FakeProviders;
use crate::support::{Workers, count, migrate, spawn_app_with, wait_for_count};

/// `(customer_phone, department, purpose, status, overflow_call_sid)` of every scheduled call.
async fn callbacks(pool: &PgPool) -> Vec<(String, Option<String>, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT customer_phone, department, purpose, status, context->>'overflow_call_sid' FROM scheduled_calls ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The test's callers are in the US (`+1`).
fn us() -> NumberPrefixes {
    NumberPrefixes::parse("+1").unwrap()
}

async fn callback_department(pool: &PgPool, inbound_number: &str) {
    let id = department(pool, "sales", "round_robin", Some(inbound_number), 1).await;
    sqlx::query("UPDATE departments SET overflow_action = 'callback' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_twilio_caller_nobody_takes_in_a_callback_department_is_scheduled_one_service_call_back(pool: PgPool) {
    migrate(&pool).await;
    callback_department(&pool, OUR_NUMBER).await;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let ports = Ports {
        telephony: Some(Arc::new(TwilioRest::new(twilio_config(&fake.base_url)))),
        callback_prefixes: us(),
        ..Ports::default()
    };
    let workers = Workers::start(&pool, switchboard_jobs::registry(), ports);
    let sid = crate::inbound::world::call_sid(31);

    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();
    wait_for_count(&pool, "SELECT count(*) FROM calls WHERE routing_state = 'overflowed'", 1).await;
    workers.stop().await;

    let overflow = twilio_post(&app, "/webhooks/twilio/overflow", &[("CallSid", sid.as_str())]).send().await.unwrap();
    assert!(overflow.text().await.unwrap().contains("We will call you back"));
    assert_eq!(
        callbacks(&pool).await,
        [(
            CALLER.to_owned(),
            Some("sales".to_owned()),
            "service".to_owned(),
            "scheduled".to_owned(),
            Some(sid.clone())
        )]
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM apalis.jobs WHERE job_type = 'retry-scheduled-call'").await, 1);

    // Asked again for the same call (a re-run), nothing more is scheduled.
    let call_id = count(&pool, "SELECT id FROM calls").await;
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(schedule_overflow_callback(&mut tx, call_id, chrono::Utc::now(), &us()).await.unwrap(), None);
    tx.commit().await.unwrap();
    assert_eq!(callbacks(&pool).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn an_exotel_caller_nobody_takes_before_the_connect_deadline_is_scheduled_a_call_back(pool: PgPool) {
    migrate(&pool).await;
    callback_department(&pool, "+918041234567").await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let url = format!(
        "{}/webhooks/exotel/{EXOTEL_SECRET}/connect?CallSid=exo31&CallFrom=09876543210&CallTo=08041234567",
        app.base_url
    );

    let answer: serde_json::Value = app.client.get(url).send().await.unwrap().json().await.unwrap();

    assert_eq!(answer["destination"]["numbers"], serde_json::json!([]));
    let [(phone, department, purpose, _, origin)] = callbacks(&pool).await.try_into().expect("one callback");
    assert_eq!(
        (phone.as_str(), department.as_deref(), purpose.as_str(), origin.as_deref()),
        ("+919876543210", Some("sales"), "service", Some("exo31"))
    );
}

#[sqlx::test(migrations = false)]
async fn a_voicemail_department_schedules_no_call_back(pool: PgPool) {
    migrate(&pool).await;
    department(&pool, "sales", "round_robin", Some("+918041234567"), 1).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let url = format!(
        "{}/webhooks/exotel/{EXOTEL_SECRET}/connect?CallSid=exo32&CallFrom=09876543210&CallTo=08041234567",
        app.base_url
    );

    app.client.get(url).send().await.unwrap();

    assert!(callbacks(&pool).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn an_overflow_callback_reaches_an_agent_of_the_department_once_one_is_free(pool: PgPool) {
    migrate(&pool).await;
    callback_department(&pool, "+918041234567").await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let url = format!(
        "{}/webhooks/exotel/{EXOTEL_SECRET}/connect?CallSid=exo33&CallFrom=09876543210&CallTo=08041234567",
        app.base_url
    );
    app.client.get(url).send().await.unwrap();
    let [(customer, ..)] = callbacks(&pool).await.try_into().expect("one callback");
    let sales: i64 = count(&pool, "SELECT id FROM departments WHERE name = 'sales'").await;
    let free = agent(&pool, sales, AGENT, &[], 1).await;

    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM scheduled_calls").fetch_one(&pool).await.unwrap();
    let (job, planned_at) = queued_attempt(&pool, id, 1).await.expect("the callback's first attempt");
    let phone = FakePhone::answering([]);
    run(&pool, &ports(phone.clone(), TestClock::at(planned_at), Provider::Exotel), job).await.unwrap();

    let placed = phone.placed().pop().expect("the callback is dialled");
    assert_eq!((placed.from.as_deref(), placed.to.as_str()), (Some(AGENT), customer.as_str()));
    assert_eq!(load(&pool, free).await, (1, 1));
    assert_eq!(attempts(&pool, id).await[0].agent_id, Some(free));
}
