//! A department-only scheduled call end to end: the worker reserves the
//! department's free agent and dials through the real provider client, and
//! the real status webhooks free the agent's slot exactly once.

use sqlx::PgPool;
use switchboard_jobs::outbound::CallStatus;
use switchboard_jobs::ports::Provider;

use super::outbound_journey::{
    Journey, exotel_reports, next_call_placed, provider_sid, twilio_dial_action, twilio_reports_in_sequence,
    wait_for_status,
};
use crate::inbound::world::{agent, department};
use crate::outbound::reach::{department_call, load, set_busy};
use crate::outbound::{AGENT, CUSTOMER};
use crate::support::{count, migrate};

/// `(agent_id, released)` of the provider's call row.
async fn call_agent(pool: &PgPool, sid: &str) -> (Option<i64>, bool) {
    sqlx::query_as("SELECT agent_id, agent_released_at IS NOT NULL FROM calls WHERE call_sid = $1")
        .bind(sid)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn twilio_bridges_the_reserved_agent_and_two_terminal_callbacks_free_the_slot_once(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    // The agent is on one other call already: a second release would show.
    let only = agent(&pool, sales, AGENT, &[], 2).await;
    set_busy(&pool, only, 1).await;
    let Journey { fake, app, workers, call_id: id } =
        Journey::start_for(&pool, Provider::Twilio, &department_call(sales)).await;

    let placed = next_call_placed(&pool, &fake, 1).await;
    assert_eq!(placed.get("To"), Some(CUSTOMER));
    assert!(placed.get("Twiml").unwrap().contains(&format!("<Number>{AGENT}</Number>")));
    let sid = provider_sid(&pool, id, 1).await;
    assert_eq!(load(&pool, only).await, (2, 2), "reserved while the call is placed");

    twilio_reports_in_sequence(&app, &placed, &sid, "in-progress", 2).await;
    assert_eq!(call_agent(&pool, &sid).await, (Some(only), false));
    twilio_dial_action(&app, &placed, &sid, "completed", "60").await;
    assert_eq!(load(&pool, only).await, (2, 2), "still on the call");
    twilio_reports_in_sequence(&app, &placed, &sid, "completed", 4).await;
    twilio_reports_in_sequence(&app, &placed, &sid, "completed", 5).await;

    wait_for_status(&pool, id, CallStatus::Completed).await;
    assert_eq!(call_agent(&pool, &sid).await, (Some(only), true));
    assert_eq!(load(&pool, only).await, (1, 2), "freed exactly once");
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn exotel_rings_the_reserved_agent_first_and_a_busy_customer_frees_the_agent_for_the_next_attempt(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    let only = agent(&pool, sales, AGENT, &[], 1).await;
    let Journey { fake, app, workers, call_id: id } =
        Journey::start_for(&pool, Provider::Exotel, &department_call(sales)).await;

    for n in [1, 2] {
        let placed = next_call_placed(&pool, &fake, n).await;
        assert_eq!((placed.get("From"), placed.get("To")), (Some(AGENT), Some(CUSTOMER)));
        let sid = provider_sid(&pool, id, n).await;
        assert_eq!(load(&pool, only).await, (1, 1));
        exotel_reports(&app, &placed, &sid, "busy").await;
        exotel_reports(&app, &placed, &sid, "completed").await;
        assert_eq!(load(&pool, only).await, (0, 1), "attempt {n} freed the agent once");
    }
    let held =
        count(&pool, "SELECT count(*) FROM calls WHERE agent_id IS NOT NULL AND agent_released_at IS NOT NULL").await;
    assert_eq!(held, 2);
    workers.stop().await;
}
