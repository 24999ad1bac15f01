//! The `retry-scheduled-call` job and `record_outcome`: the gate at dial time,
//! one provider call per attempt (never a second one when the first request's
//! outcome is unknown), the watchdog of attempts whose final status never
//! comes, backoff through the window, cancel.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use sqlx::PgPool;
use switchboard_jobs::outbound::contacts::{Contact, OptOut};
use switchboard_jobs::outbound::watchdog::{CALL_TIME_LIMIT, NO_OUTCOME_AFTER};
use switchboard_jobs::outbound::{self, CallStatus, Outcome, Report, Rules, record_outcome};
use switchboard_jobs::phone::PhoneNumber;
use switchboard_jobs::ports::{PortError, Provider};
use switchboard_jobs::queue::{Job, JobContext, JobError};
use switchboard_jobs::window::{self, CallingPolicy, Purpose};
use uuid::Uuid;

use super::reach::{agent_on_another_call, load};
use super::*;
use crate::support::{Workers, job_state, migrate, wait_for_count, wait_until};

async fn outcome(pool: &PgPool, attempt_id: Uuid, status: &str, at: chrono::DateTime<Utc>) -> Outcome {
    let mut tx = pool.begin().await.unwrap();
    let outcome = record_outcome(&mut tx, attempt_id, &Report::Call(status), at).await.unwrap();
    tx.commit().await.unwrap();
    outcome
}

async fn job_attempts_and_run_at(pool: &PgPool) -> (i32, chrono::DateTime<Utc>) {
    sqlx::query_as("SELECT attempts, run_at FROM apalis.jobs WHERE job_type = 'retry-scheduled-call'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn promotional_call_requested_at_2230_ist_is_placed_at_0900_next_day_with_no_attempt_spent(pool: PgPool) {
    migrate(&pool).await;
    // Future instants (a Thursday night, then Friday morning): a snooze to a time
    // already past would run again at once, and the snooze could not be observed.
    let (requested, next_morning) = (ist(2030, 11, 28, 22, 30), ist(2030, 11, 29, 9, 0));
    let clock = TestClock::at(requested);
    let phone = FakePhone::answering([]);
    let (id, planned) = schedule(&pool, &new_call(Purpose::Promotional), requested).await;
    assert_eq!(planned, next_morning, "planned for the window's opening");

    // The job is due at 22:30 (as if the policy had changed): it snoozes, without an attempt.
    let workers =
        Workers::start(&pool, switchboard_jobs::registry(), ports(phone.clone(), clock.clone(), Provider::Exotel));
    fast_forward_jobs(&pool).await;
    wait_for_count(&pool, "SELECT count(*) FROM job_errors WHERE outcome = 'snoozed'", 1).await;
    assert_eq!(job_attempts_and_run_at(&pool).await, (0, next_morning));
    assert!(attempts(&pool, id).await.is_empty());
    assert!(phone.placed().is_empty());

    clock.set(next_morning);
    fast_forward_jobs(&pool).await;
    wait_until(Duration::from_secs(10), "the call to be placed", || async {
        attempts(&pool, id).await.first().is_some_and(|a| a.provider_call_sid.is_some())
    })
    .await;
    workers.stop().await;
    let placed = attempts(&pool, id).await;
    assert_eq!(placed.len(), 1);
    assert_eq!((placed[0].number, placed[0].dialed_at), (1, next_morning));
    assert_eq!(phone.placed().len(), 1);
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Dialing);
}

#[sqlx::test(migrations = false)]
async fn busy_then_no_answer_then_completed_takes_three_attempts_spaced_by_the_backoff(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 10, 0));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Exotel);
    let (id, planned) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;

    let mut due = planned;
    for (attempt, status, nominal_backoff_s) in [(1, "busy", 300), (2, "no-answer", 600)] {
        clock.set(due);
        let (job, _) = queued_attempt(&pool, id, attempt).await.expect("attempt queued");
        run(&pool, &ports, job).await.expect("placed");
        let placed = attempts(&pool, id).await.pop().unwrap();
        let answered_at = due + TimeDelta::seconds(45);
        let Outcome::NextAttemptAt(next) = outcome(&pool, placed.id, status, answered_at).await else {
            panic!("attempt {attempt} should plan another")
        };
        let (_, run_at) = queued_attempt(&pool, id, attempt + 1).await.expect("next attempt queued");
        assert_eq!(run_at, next);
        let waited = (next - answered_at).num_seconds();
        assert!(
            (nominal_backoff_s * 8 / 10..=nominal_backoff_s * 12 / 10).contains(&waited),
            "{waited}s after {status}"
        );
        due = next;
    }
    clock.set(due);
    run(&pool, &ports, queued_attempt(&pool, id, 3).await.unwrap().0).await.expect("placed");
    let last = attempts(&pool, id).await.pop().unwrap();
    assert_eq!(outcome(&pool, last.id, "completed", due + TimeDelta::seconds(90)).await, Outcome::Completed);

    let stored = attempts(&pool, id).await;
    let outcomes: Vec<_> = stored.iter().map(|a| a.outcome.clone().unwrap()).collect();
    assert_eq!(outcomes, ["busy", "no-answer", "completed"]);
    for pair in stored.windows(2) {
        let gap = (pair[1].dialed_at - pair[0].outcome_at.unwrap()).num_seconds();
        let nominal = 300 * 2i64.pow(pair[0].number as u32 - 1);
        assert!((nominal * 8 / 10..=nominal * 12 / 10).contains(&gap), "gap {gap}s, nominal {nominal}s");
    }
    let policy = CallingPolicy::default();
    assert!(stored.iter().all(|a| window::is_open(&policy, Purpose::Service, IST, a.dialed_at)));
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Completed);
}

#[sqlx::test(migrations = false)]
async fn a_retry_that_would_land_after_closing_waits_for_the_next_opening(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 20, 35));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Promotional), clock.now()).await;
    run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await.unwrap();
    let placed = attempts(&pool, id).await.pop().unwrap();
    let next = outcome(&pool, placed.id, "no-answer", ist(2026, 11, 23, 20, 41)).await;
    assert_eq!(next, Outcome::NextAttemptAt(ist(2026, 11, 24, 9, 0)), "20:45 and later is inside the end buffer");
}

#[sqlx::test(migrations = false)]
async fn the_last_failed_attempt_marks_the_call_exhausted(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Exotel);
    let call = NewScheduledCall { max_attempts: 2, ..new_call(Purpose::Transactional) };
    let (id, _) = schedule(&pool, &call, clock.now()).await;
    for attempt in 1..=2 {
        let (job, run_at) = queued_attempt(&pool, id, attempt).await.unwrap();
        clock.set(run_at);
        run(&pool, &ports, job).await.unwrap();
        let placed = attempts(&pool, id).await.pop().unwrap();
        let result = outcome(&pool, placed.id, "busy", run_at + TimeDelta::seconds(20)).await;
        assert_eq!(matches!(result, Outcome::Exhausted), attempt == 2);
    }
    let call = call_row(&pool, id).await;
    assert_eq!((call.status.as_str(), call.last_error.as_deref()), ("exhausted", Some("attempt 2: busy")));
    assert!(queued_attempt(&pool, id, 3).await.is_none());
    // The status webhook may repeat itself: nothing changes.
    let last = attempts(&pool, id).await.pop().unwrap();
    assert_eq!(outcome(&pool, last.id, "busy", clock.now()).await, Outcome::Ignored);
}

#[sqlx::test(migrations = false)]
async fn progress_statuses_and_unknown_attempts_change_nothing(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Transactional), clock.now()).await;
    run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await.unwrap();
    let placed = attempts(&pool, id).await.pop().unwrap();
    assert_eq!(outcome(&pool, placed.id, "ringing", clock.now()).await, Outcome::Ignored);
    assert_eq!(outcome(&pool, Uuid::now_v7(), "completed", clock.now()).await, Outcome::UnknownAttempt);
    assert_eq!(attempts(&pool, id).await[0].outcome, None);
}

#[sqlx::test(migrations = false)]
async fn cancel_stops_every_future_attempt_including_a_snoozed_one(pool: PgPool) {
    migrate(&pool).await;
    // In the future, so the snooze to the morning holds until the test moves the job on.
    let clock = TestClock::at(ist(2030, 11, 28, 22, 30));
    let phone = FakePhone::answering([]);
    let (id, _) = schedule(&pool, &new_call(Purpose::Promotional), clock.now()).await;
    let workers =
        Workers::start(&pool, switchboard_jobs::registry(), ports(phone.clone(), clock.clone(), Provider::Exotel));
    fast_forward_jobs(&pool).await;
    wait_for_count(&pool, "SELECT count(*) FROM job_errors WHERE outcome = 'snoozed'", 1).await;

    let cancelled = outbound::cancel(&mut pool.acquire().await.unwrap(), id).await.unwrap();
    assert_eq!(cancelled, outbound::Cancelled::Now);
    clock.set(ist(2030, 11, 29, 9, 0));
    fast_forward_jobs(&pool).await;
    let job_id: String = sqlx::query_scalar("SELECT id FROM apalis.jobs WHERE job_type = 'retry-scheduled-call'")
        .fetch_one(&pool)
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the snoozed job to end", || async {
        job_state(&pool, &job_id).await == "done"
    })
    .await;
    workers.stop().await;
    assert!(phone.placed().is_empty());
    assert!(attempts(&pool, id).await.is_empty());
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Cancelled);
}

#[sqlx::test(migrations = false)]
async fn an_outcome_arriving_after_cancel_plans_no_further_attempt(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await.unwrap();
    outbound::cancel(&mut pool.acquire().await.unwrap(), id).await.unwrap();
    let placed = attempts(&pool, id).await.pop().unwrap();
    assert_eq!(outcome(&pool, placed.id, "no-answer", clock.now()).await, Outcome::Stopped);
    assert!(queued_attempt(&pool, id, 2).await.is_none());
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Cancelled);
}

#[sqlx::test(migrations = false)]
async fn an_opted_out_number_gets_no_promotional_call_but_a_transactional_one_goes(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    let (promotional, _) = schedule(&pool, &new_call(Purpose::Promotional), clock.now()).await;
    let (transactional, _) = schedule(&pool, &new_call(Purpose::Transactional), clock.now()).await;
    OptOut::add(&mut pool.acquire().await.unwrap(), &PhoneNumber::parse(CUSTOMER).unwrap(), Some("asked on a call"))
        .await
        .unwrap();

    run(&pool, &ports, queued_attempt(&pool, promotional, 1).await.unwrap().0).await.unwrap();
    run(&pool, &ports, queued_attempt(&pool, transactional, 1).await.unwrap().0).await.unwrap();

    let blocked = call_row(&pool, promotional).await;
    assert_eq!((blocked.status.as_str(), blocked.last_error.as_deref()), ("blocked", Some("the number opted out")));
    assert!(attempts(&pool, promotional).await.is_empty());
    assert_eq!(attempts(&pool, transactional).await.len(), 1);
    assert_eq!(phone.placed().len(), 1);
}

#[sqlx::test(migrations = false)]
async fn an_ncpr_registered_number_gets_no_promotional_call_but_a_service_one_goes(pool: PgPool) {
    migrate(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    Contact::save(&mut conn, &PhoneNumber::parse(CUSTOMER).unwrap(), None, true).await.unwrap();
    let promotional = Rules::load(&mut conn, CUSTOMER, Purpose::Promotional).await.unwrap();
    let service = Rules::load(&mut conn, CUSTOMER, Purpose::Service).await.unwrap();
    assert_eq!(promotional.blocked_reason(), Some("the number is on the NCPR/DND registry"));
    assert_eq!(service.blocked_reason(), None);
}

#[sqlx::test(migrations = false)]
async fn a_contacts_own_zone_decides_when_it_is_called(pool: PgPool) {
    migrate(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    Contact::save(&mut conn, &PhoneNumber::parse(CUSTOMER).unwrap(), Some(chrono_tz::America::New_York), false)
        .await
        .unwrap();
    drop(conn);
    // 10:00 IST is 23:30 in New York (EST): the call waits for 09:00 there.
    let (_, planned) = schedule(&pool, &new_call(Purpose::Promotional), ist(2026, 11, 23, 10, 0)).await;
    assert_eq!(
        planned,
        chrono_tz::America::New_York.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap().with_timezone(&Utc)
    );
}

#[sqlx::test(migrations = false)]
async fn a_worker_killed_while_the_provider_answers_does_not_place_a_second_call(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;

    let silent = Arc::new(SilentPhone::default());
    let first_ports = ports(silent.clone(), clock.clone(), Provider::Exotel);
    let first_run = tokio::spawn({
        let (pool, job) = (pool.clone(), job.clone());
        async move { run(&pool, &first_ports, job).await }
    });
    silent.reached.notified().await;
    first_run.abort(); // the worker dies while the provider creates the call
    assert!(first_run.await.unwrap_err().is_cancelled());

    let phone = FakePhone::answering([]);
    let rerun = run(&pool, &ports(phone.clone(), clock.clone(), Provider::Exotel), job).await;
    assert!(phone.placed().is_empty(), "no second call for the same attempt");
    let recorded = attempts(&pool, id).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(silent.calls.lock().unwrap()[0].custom_field, Some(recorded[0].id.to_string()));
    let deadline = recorded[0].dialed_at + delta(NO_OUTCOME_AFTER);
    assert!(
        matches!(rerun, Err(JobError::Snooze { until, .. }) if until == deadline),
        "waits for the status: {rerun:?}"
    );
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Dialing, "the status webhook settles it");
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_attempt_whose_worker_died_is_given_up_after_ten_minutes_freeing_its_slot_and_planning_the_next(
    pool: PgPool,
) {
    migrate(&pool).await;
    let (only, call) = agent_on_another_call(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let (id, _) = schedule(&pool, &call, clock.now()).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;
    let silent = Arc::new(SilentPhone::default());
    let first_run = tokio::spawn({
        let (pool, job, ports) = (pool.clone(), job.clone(), ports(silent.clone(), clock.clone(), Provider::Exotel));
        async move { run(&pool, &ports, job).await }
    });
    silent.reached.notified().await;
    first_run.abort(); // the worker dies while the provider is asked
    assert!(first_run.await.unwrap_err().is_cancelled());
    let dialed_at = attempts(&pool, id).await[0].dialed_at;
    let deadline = dialed_at + delta(NO_OUTCOME_AFTER);
    assert_eq!(watchdog_due_at(&pool, id, 1).await, Some(deadline), "the watchdog was enqueued with the attempt");
    assert_eq!(load(&pool, only).await, (2, 2));

    let phone = FakePhone::answering([]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    clock.set(deadline);
    run(&pool, &ports, job.clone()).await.expect("the watchdog gives the attempt up");

    let given_up = attempts(&pool, id).await;
    assert_eq!(
        (given_up[0].outcome.as_deref(), given_up[0].error.as_deref()),
        (Some("no-outcome"), Some("attempt 1: no final status from the provider within 10 min"))
    );
    assert_eq!(load(&pool, only).await, (1, 2), "the slot is given back");
    let (_, next_at) = queued_attempt(&pool, id, 2).await.expect("attempt 2 planned");
    assert!(next_at >= deadline + TimeDelta::seconds(240), "after the backoff: {next_at}");
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Scheduled);

    // The watchdog delivered again, and the status webhook arriving late, change nothing.
    run(&pool, &ports, job).await.expect("nothing left to do");
    assert_eq!(outcome(&pool, given_up[0].id, "completed", clock.now()).await, Outcome::Ignored);
    assert_eq!(attempts(&pool, id).await, given_up);
    assert_eq!(load(&pool, only).await, (1, 2), "released once");
    assert_eq!(jobs_for_attempt(&pool, id, 2).await, 1);
    assert!(phone.placed().is_empty(), "nothing dialled again");
}

#[sqlx::test(migrations = false)]
async fn an_unknown_provider_outcome_keeps_the_attempt_and_its_slot_for_the_status_webhook_and_dials_once(
    pool: PgPool,
) {
    migrate(&pool).await;
    let (only, call) = agent_on_another_call(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let unknown = PortError::OutcomeUnknown { message: "Exotel may have received the request: timed out".into() };
    let phone = FakePhone::answering([Err(unknown)]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &call, clock.now()).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;

    run(&pool, &ports, job.clone()).await.expect("not a job retry");
    let kept = attempts(&pool, id).await;
    assert_eq!((kept.len(), kept[0].outcome.as_deref(), kept[0].provider_call_sid.as_deref()), (1, None, None));
    let waiting = call_row(&pool, id).await;
    assert_eq!(waiting.status, CallStatus::Dialing, "not failed");
    assert_eq!(
        waiting.last_error.as_deref(),
        Some("attempt 1: waiting for the provider's status, Exotel may have received the request: timed out")
    );
    assert_eq!(load(&pool, only).await, (2, 2), "the slot stays reserved");
    assert!(matches!(run(&pool, &ports, job).await, Err(JobError::Snooze { .. })), "a redelivery waits");
    assert_eq!(phone.placed().len(), 1, "one request for the attempt");

    let settled = outcome(&pool, kept[0].id, "no-answer", clock.now() + TimeDelta::seconds(50)).await;
    assert!(matches!(settled, Outcome::NextAttemptAt(_)), "{settled:?}");
    assert_eq!(attempts(&pool, id).await[0].outcome.as_deref(), Some("no-answer"));
}

#[sqlx::test(migrations = false)]
async fn a_call_the_provider_confirmed_is_given_up_only_once_its_time_limit_has_passed(pool: PgPool) {
    migrate(&pool).await;
    let (only, call) = agent_on_another_call(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 10, 0));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &call, clock.now()).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;
    run(&pool, &ports, job.clone()).await.expect("placed");
    let dialed_at = attempts(&pool, id).await[0].dialed_at;

    // Exotel reports only the end of a call: ten minutes on, it may be a conversation.
    clock.set(dialed_at + delta(NO_OUTCOME_AFTER));
    let deadline = dialed_at + delta(CALL_TIME_LIMIT + NO_OUTCOME_AFTER);
    let early = run(&pool, &ports, job.clone()).await;
    assert!(matches!(early, Err(JobError::Snooze { until, .. }) if until == deadline), "{early:?}");
    assert_eq!(attempts(&pool, id).await[0].outcome, None);

    // Its terminal callback was dropped.
    clock.set(deadline);
    run(&pool, &ports, job).await.expect("given up");
    let given_up = attempts(&pool, id).await;
    assert_eq!(
        (given_up[0].outcome.as_deref(), given_up[0].error.as_deref()),
        (Some("no-outcome"), Some("attempt 1: no final status from the provider within 250 min"))
    );
    assert_eq!(load(&pool, only).await, (1, 2));
    assert!(queued_attempt(&pool, id, 2).await.is_some());
}

#[sqlx::test(migrations = false)]
async fn a_call_canceled_at_the_provider_is_cancelled_not_retried(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let ports = ports(FakePhone::answering([]), clock.clone(), Provider::Twilio);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await.unwrap();
    let placed = attempts(&pool, id).await.pop().unwrap();

    assert_eq!(outcome(&pool, placed.id, "canceled", clock.now()).await, Outcome::Cancelled);

    let call = call_row(&pool, id).await;
    assert_eq!(
        (call.status, call.last_error.as_deref()),
        (CallStatus::Cancelled, Some("attempt 1: canceled at the provider by our side"))
    );
    assert_eq!(attempts(&pool, id).await[0].outcome.as_deref(), Some("canceled"));
    assert!(queued_attempt(&pool, id, 2).await.is_none(), "no retry");
}

/// Everything the test's own thread logs, as text.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[sqlx::test(migrations = false)]
async fn a_refusal_quoting_the_number_is_logged_masked_and_stored_in_full(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let refusal = PortError::Permanent { message: format!("Exotel answered 400: {CUSTOMER} is not a valid number") };
    let ports = ports(FakePhone::answering([Err(refusal)]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt().with_writer({
        let logs = logs.clone();
        move || logs.clone()
    });
    let logging = tracing::subscriber::set_default(subscriber.with_ansi(false).finish());

    run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await.expect("the job itself is done");
    drop(logging);

    let logged = logs.text();
    assert!(logged.contains("provider refused the call"), "{logged}");
    assert!(logged.contains("+91******3210 is not a valid number"), "{logged}");
    assert!(!logged.contains(CUSTOMER), "{logged}");
    let stored = format!("Exotel answered 400: {CUSTOMER} is not a valid number");
    assert_eq!(call_row(&pool, id).await.last_error, Some(stored));
}

#[sqlx::test(migrations = false)]
async fn a_provider_outage_is_a_job_retry_not_a_call_attempt(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let outage = PortError::Transient { message: "503 from provider".into(), retry_after: None };
    let phone = FakePhone::answering([Err(outage)]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;

    assert!(matches!(run(&pool, &ports, job.clone()).await, Err(JobError::Retry { .. })));
    assert!(attempts(&pool, id).await.is_empty());
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Scheduled);

    run(&pool, &ports, job).await.expect("placed on the job's retry");
    let recorded = attempts(&pool, id).await;
    assert_eq!((recorded.len(), recorded[0].number), (1, 1));
    assert_eq!(phone.placed().len(), 2);
}

#[sqlx::test(migrations = false)]
async fn a_provider_refusing_the_number_fails_the_call_with_its_message(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let refusal = PortError::Permanent { message: "400: 'To' is not a valid phone number".into() };
    let ports = ports(FakePhone::answering([Err(refusal)]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    run(&pool, &ports, queued_attempt(&pool, id, 1).await.unwrap().0).await.expect("the job itself is done");
    let call = call_row(&pool, id).await;
    assert_eq!(
        (call.status.as_str(), call.last_error.as_deref()),
        ("failed", Some("400: 'To' is not a valid phone number"))
    );
    let recorded = attempts(&pool, id).await;
    assert_eq!(recorded[0].outcome.as_deref(), Some("rejected"));
}

#[sqlx::test(migrations = false)]
async fn exotel_rings_the_agent_first_with_the_exophone_as_caller_id_and_records(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    run(&pool, &ports(phone.clone(), clock.clone(), Provider::Exotel), queued_attempt(&pool, id, 1).await.unwrap().0)
        .await
        .unwrap();
    let call = phone.placed().pop().unwrap();
    let attempt = attempts(&pool, id).await.pop().unwrap();
    assert_eq!((call.from.as_deref(), call.to.as_str(), call.caller_id.as_str()), (Some(AGENT), CUSTOMER, EXOPHONE));
    assert_eq!((call.custom_field, call.record, call.twiml), (Some(attempt.id.to_string()), true, None));
    assert_eq!(attempt.provider_call_sid.as_deref(), Some("CA00000000000000000000000000000001"));
}

#[sqlx::test(migrations = false)]
async fn twilio_rings_the_customer_and_bridges_the_agent_with_the_same_caller_id(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    run(&pool, &ports(phone.clone(), clock.clone(), Provider::Twilio), queued_attempt(&pool, id, 1).await.unwrap().0)
        .await
        .unwrap();
    let placed = phone.placed().pop().unwrap();
    let attempt = attempts(&pool, id).await.pop().unwrap();
    assert_eq!(
        (placed.from.as_deref(), placed.to.as_str(), placed.caller_id.as_str()),
        (Some(AGENT), CUSTOMER, EXOPHONE)
    );
    assert_eq!(
        (placed.custom_field, placed.twiml),
        (Some(attempt.id.to_string()), None),
        "the client builds the <Dial>"
    );
}

#[sqlx::test(migrations = false)]
async fn a_duplicate_delivery_of_a_finished_attempt_dials_nothing(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let phone = FakePhone::answering([]);
    let ports = ports(phone.clone(), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    let first = queued_attempt(&pool, id, 1).await.unwrap().0;
    run(&pool, &ports, first.clone()).await.unwrap();
    let placed = attempts(&pool, id).await.pop().unwrap();
    outcome(&pool, placed.id, "busy", clock.now()).await;
    // The call is waiting for attempt 2; attempt 1's job is delivered again.
    run(&pool, &ports, first).await.unwrap();
    assert_eq!(phone.placed().len(), 1);
    assert_eq!(attempts(&pool, id).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_provider_outage_on_the_jobs_last_run_fails_the_call(pool: PgPool) {
    migrate(&pool).await;
    let clock = TestClock::at(ist(2026, 11, 23, 11, 0));
    let outage = PortError::Transient { message: "connection refused".into(), retry_after: None };
    let ports = ports(FakePhone::answering([Err(outage)]), clock.clone(), Provider::Exotel);
    let (id, _) = schedule(&pool, &new_call(Purpose::Service), clock.now()).await;
    let job = queued_attempt(&pool, id, 1).await.unwrap().0;
    let last_run =
        JobContext { pool: pool.clone(), ports: Arc::new(ports), job_id: "test".into(), attempt: 6, max_attempts: 6 };
    assert!(matches!(job.run(last_run).await, Err(JobError::Retry { .. })), "the queue marks the job dead");
    let call = call_row(&pool, id).await;
    assert_eq!(
        (call.status, call.last_error.as_deref()),
        (CallStatus::Failed, Some("provider unavailable: connection refused"))
    );
    assert!(attempts(&pool, id).await.is_empty());
}
