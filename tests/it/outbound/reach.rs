//! Whom an attempt reaches: a department's next free agent or a named agent,
//! reserved at dial time through inbound routing; waiting (not an attempt)
//! while nobody is free, up to the department's max wait; slots given back
//! when the provider refuses the call.

use std::time::Duration;

use chrono::TimeDelta;
use switchboard_jobs::outbound::CallStatus;
use switchboard_jobs::ports::{PortError, Provider};
use switchboard_jobs::queue::JobError;

use super::*;
use crate::inbound::world::{agent, department};
use crate::support::{Workers, count, migrate, wait_for_count, wait_until};

pub const SECOND_AGENT: &str = "+919812300002";

/// A service call for `department_id` and no one else.
pub fn department_call(department_id: i64) -> NewScheduledCall {
    NewScheduledCall { agent_phone: None, department_id: Some(department_id), ..new_call(Purpose::Service) }
}

/// `(current_calls, max_concurrent_calls)` of the agent.
pub async fn load(pool: &PgPool, agent_id: i64) -> (i32, i32) {
    sqlx::query_as("SELECT current_calls, max_concurrent_calls FROM agents WHERE id = $1")
        .bind(agent_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// An agent of a new department who is on one other call already (so a
/// second release of their slot would show), and a call for that department.
pub async fn agent_on_another_call(pool: &PgPool) -> (i64, NewScheduledCall) {
    let sales = department(pool, "sales", "round_robin", None, 60).await;
    let agent_id = agent(pool, sales, AGENT, &[], 2).await;
    set_busy(pool, agent_id, 1).await;
    (agent_id, department_call(sales))
}

pub async fn set_busy(pool: &PgPool, agent_id: i64, current_calls: i32) {
    sqlx::query("UPDATE agents SET current_calls = $2 WHERE id = $1")
        .bind(agent_id)
        .bind(current_calls)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_department_only_call_reserves_the_departments_free_agent_and_dials_them_first_on_exotel(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "least_busy", None, 60).await;
    let busy = agent(&pool, sales, AGENT, &[], 1).await;
    set_busy(&pool, busy, 1).await;
    let free = agent(&pool, sales, SECOND_AGENT, &[], 1).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let (id, _) = schedule(&pool, &department_call(sales), clock.now()).await;

    run(&pool, &ports(phone.clone(), clock, Provider::Exotel), queued_attempt(&pool, id, 1).await.unwrap().0)
        .await
        .unwrap();

    let placed = phone.placed().pop().expect("a call placed");
    assert_eq!(
        (placed.from.as_deref(), placed.to.as_str(), placed.caller_id.as_str()),
        (Some(SECOND_AGENT), CUSTOMER, EXOPHONE)
    );
    assert_eq!(load(&pool, free).await, (1, 1), "the free agent's slot is held");
    assert_eq!(load(&pool, busy).await, (1, 1));
    let attempt = attempts(&pool, id).await.pop().unwrap();
    assert_eq!((attempt.agent_id, attempt.provider_call_sid.is_some()), (Some(free), true));
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Dialing);
}

#[sqlx::test(migrations = false)]
async fn a_call_for_a_named_agent_reserves_that_agent_even_when_a_colleague_is_free(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    agent(&pool, sales, SECOND_AGENT, &[], 1).await;
    let named = agent(&pool, sales, AGENT, &[], 2).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let call = NewScheduledCall { agent_phone: None, agent_id: Some(named), ..new_call(Purpose::Service) };
    let (id, _) = schedule(&pool, &call, clock.now()).await;

    run(&pool, &ports(phone.clone(), clock, Provider::Twilio), queued_attempt(&pool, id, 1).await.unwrap().0)
        .await
        .unwrap();

    assert_eq!(phone.placed()[0].from.as_deref(), Some(AGENT));
    assert_eq!(load(&pool, named).await, (1, 2));
    assert_eq!(attempts(&pool, id).await[0].agent_id, Some(named));
}

#[sqlx::test(migrations = false)]
async fn with_every_agent_busy_the_call_waits_without_spending_an_attempt_and_dials_once_one_is_freed(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 3600).await;
    let only = agent(&pool, sales, AGENT, &[], 1).await;
    set_busy(&pool, only, 1).await;
    // A Monday in the future, so each 2-second snooze holds until the test moves the job on.
    let clock = TestClock::at(ist(2030, 11, 25, 11, 0));
    let phone = FakePhone::answering([]);
    let (id, _) = schedule(&pool, &department_call(sales), clock.now()).await;
    let workers =
        Workers::start(&pool, switchboard_jobs::registry(), ports(phone.clone(), clock.clone(), Provider::Exotel));

    fast_forward_jobs(&pool).await;
    wait_for_count(&pool, "SELECT count(*) FROM job_errors WHERE outcome = 'snoozed'", 1).await;
    let job_attempts =
        count(&pool, "SELECT attempts::bigint FROM apalis.jobs WHERE job_type = 'retry-scheduled-call'").await;
    assert_eq!(job_attempts, 0, "a snooze is not a job attempt");
    assert!(attempts(&pool, id).await.is_empty(), "nor a call attempt");
    assert!(phone.placed().is_empty());
    let waiting = call_row(&pool, id).await;
    assert_eq!(
        (waiting.status, waiting.last_error.as_deref(), waiting.agent_wait_started_at),
        (CallStatus::Scheduled, Some("waiting for a free agent"), Some(clock.now()))
    );

    set_busy(&pool, only, 0).await;
    wait_until(Duration::from_secs(20), "the freed agent to be dialled", || async {
        fast_forward_jobs(&pool).await;
        attempts(&pool, id).await.first().is_some_and(|a| a.provider_call_sid.is_some())
    })
    .await;
    workers.stop().await;
    assert_eq!(phone.placed().len(), 1);
    assert_eq!(phone.placed()[0].from.as_deref(), Some(AGENT));
    assert_eq!(load(&pool, only).await, (1, 1));
    let dialled = call_row(&pool, id).await;
    assert_eq!((dialled.status, dialled.agent_wait_started_at), (CallStatus::Dialing, None));
}

#[sqlx::test(migrations = false)]
async fn nobody_free_within_the_departments_max_wait_counts_a_no_agent_attempt_and_plans_the_next(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    let only = agent(&pool, sales, AGENT, &[], 1).await;
    set_busy(&pool, only, 1).await;
    let start = ist(2026, 11, 23, 11, 0);
    let clock = TestClock::at(start);
    let phone = FakePhone::answering([]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &department_call(sales), start).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;

    let Err(JobError::Snooze { until, .. }) = run(&pool, &ports, job.clone()).await else { panic!("snoozed") };
    assert_eq!(until, start + TimeDelta::seconds(2), "it looks again shortly");
    clock.set(start + TimeDelta::seconds(59));
    let Err(JobError::Snooze { until, .. }) = run(&pool, &ports, job.clone()).await else { panic!("snoozed") };
    assert_eq!(until, start + TimeDelta::seconds(60), "never past the max wait");
    clock.set(start + TimeDelta::seconds(60));
    run(&pool, &ports, job).await.expect("the attempt is counted");

    assert!(phone.placed().is_empty(), "nobody was dialled");
    let counted = attempts(&pool, id).await;
    assert_eq!(counted.len(), 1);
    assert_eq!(
        (counted[0].outcome.as_deref(), counted[0].error.as_deref(), counted[0].agent_id),
        (Some("no-agent"), Some("attempt 1: no agent was free within 60s"), None)
    );
    let call = call_row(&pool, id).await;
    assert_eq!((call.status, call.agent_wait_started_at), (CallStatus::Scheduled, None));
    let (_, next_at) = queued_attempt(&pool, id, 2).await.expect("attempt 2 planned");
    assert!(next_at > start + TimeDelta::seconds(60), "after the backoff");
    assert_eq!(load(&pool, only).await, (1, 1), "no slot was taken");
}

#[sqlx::test(migrations = false)]
async fn the_reserved_slot_is_given_back_when_the_provider_refuses_or_is_down(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    let only = agent(&pool, sales, AGENT, &[], 1).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let refusal = PortError::Permanent { message: "400: 'To' is not a valid phone number".into() };
    let outage = PortError::Transient { message: "connection refused".into(), retry_after: None };
    for (answer, status) in [(refusal, CallStatus::Failed), (outage, CallStatus::Scheduled)] {
        let ports = ports(FakePhone::answering([Err(answer)]), clock.clone(), Provider::Exotel);
        let (id, _) = schedule(&pool, &department_call(sales), clock.now()).await;
        let _ = run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await;
        assert_eq!(call_row(&pool, id).await.status, status);
        assert_eq!(load(&pool, only).await, (0, 1), "the agent is free again");
    }
}

#[sqlx::test(migrations = false)]
async fn a_call_whose_department_was_deleted_fails_without_dialling(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let (id, _) = schedule(&pool, &department_call(sales), clock.now()).await;
    sqlx::query("DELETE FROM departments WHERE id = $1").bind(sales).execute(&pool).await.unwrap();

    run(&pool, &ports(phone.clone(), clock, Provider::Exotel), queued_attempt(&pool, id, 1).await.unwrap().0)
        .await
        .unwrap();

    let call = call_row(&pool, id).await;
    assert_eq!(
        (call.status, call.last_error.as_deref()),
        (CallStatus::Failed, Some("the call's agent or department no longer exists"))
    );
    assert!(phone.placed().is_empty());
}

#[sqlx::test(migrations = false)]
async fn two_department_calls_and_one_free_agent_the_second_call_waits_instead_of_overbooking_the_agent(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    let only = agent(&pool, sales, AGENT, &[], 1).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    let (first, _) = schedule(&pool, &department_call(sales), clock.now()).await;
    let (second, _) = schedule(&pool, &department_call(sales), clock.now()).await;

    run(&pool, &ports, queued_attempt(&pool, first, 1).await.unwrap().0).await.expect("dialled");
    let waiting = run(&pool, &ports, queued_attempt(&pool, second, 1).await.unwrap().0).await;

    assert!(matches!(waiting, Err(JobError::Snooze { .. })), "{waiting:?}");
    assert_eq!(phone.placed().len(), 1);
    assert_eq!(load(&pool, only).await, (1, 1), "never over max_concurrent_calls");
    assert!(attempts(&pool, second).await.is_empty());
}
