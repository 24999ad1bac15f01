//! Outbound scheduled calls: the API, the `retry-scheduled-call` job, the
//! agent each attempt reaches, and what a call's outcome plans next. The provider is a recording `Telephony` port;
//! time is a movable clock, and queued jobs are fast-forwarded by `run_at`.

mod api;
mod job;
pub mod reach;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;
use sqlx::PgPool;
use switchboard_jobs::outbound::{self, Attempt, NewScheduledCall, RetrySettings, ScheduledCall};
use switchboard_jobs::phone::PhoneNumber;
use switchboard_jobs::ports::{
    Clock, OutboundCall, OutboundLine, PlacedCall, PortError, PortFuture, Ports, Provider, Telephony,
};
use switchboard_jobs::queue::{Job, JobContext, JobError};
use switchboard_jobs::retry_scheduled_call::RetryScheduledCall;
use switchboard_jobs::window::Purpose;
use tokio::sync::Notify;
use uuid::Uuid;

pub const IST: Tz = chrono_tz::Asia::Kolkata;
pub const CUSTOMER: &str = "+919876543210";
pub const AGENT: &str = "+919812345678";
pub const EXOPHONE: &str = "+918047112233";

pub fn ist(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    IST.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("IST has no clock changes").with_timezone(&Utc)
}

/// A clock the test moves by hand.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn at(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(now)))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap() = now;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A provider that records every call it is asked to place and answers with
/// the scripted results (a new call sid once the script runs out).
#[derive(Default)]
pub struct FakePhone {
    pub calls: Mutex<Vec<OutboundCall>>,
    script: Mutex<VecDeque<Result<PlacedCall, PortError>>>,
}

impl FakePhone {
    pub fn answering(script: impl IntoIterator<Item = Result<PlacedCall, PortError>>) -> Arc<Self> {
        Arc::new(Self { calls: Mutex::default(), script: Mutex::new(script.into_iter().collect()) })
    }

    pub fn placed(&self) -> Vec<OutboundCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl Telephony for FakePhone {
    fn place_call<'a>(&'a self, call: &'a OutboundCall) -> PortFuture<'a, PlacedCall> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(call.clone());
        let sid = format!("CA{:032}", calls.len());
        let answer = self.script.lock().unwrap().pop_front().unwrap_or(Ok(PlacedCall { call_sid: sid }));
        Box::pin(async move { answer })
    }
}

/// A provider that takes the request and never answers, like a worker killed
/// while the provider is creating the call.
#[derive(Default)]
pub struct SilentPhone {
    pub calls: Mutex<Vec<OutboundCall>>,
    pub reached: Notify,
}

impl Telephony for SilentPhone {
    fn place_call<'a>(&'a self, call: &'a OutboundCall) -> PortFuture<'a, PlacedCall> {
        self.calls.lock().unwrap().push(call.clone());
        self.reached.notify_one();
        Box::pin(std::future::pending())
    }
}

pub fn ports(phone: Arc<dyn Telephony>, clock: Arc<TestClock>, provider: Provider) -> Ports {
    Ports {
        telephony: Some(phone),
        outbound_line: Some(OutboundLine {
            provider,
            caller_id: EXOPHONE.into(),
            status_callback: "https://switchboard.test/webhooks/status".into(),
        }),
        clock: Some(clock),
        ..Ports::default()
    }
}

pub fn new_call(purpose: Purpose) -> NewScheduledCall {
    NewScheduledCall {
        customer_phone: PhoneNumber::parse(CUSTOMER).unwrap(),
        agent_phone: Some(PhoneNumber::parse(AGENT).unwrap()),
        agent_id: None,
        department_id: None,
        purpose,
        preferred_time: None,
        context: json!({ "lead": 42 }),
        max_attempts: 3,
        retry: RetrySettings::default(),
    }
}

/// Schedules `call` as the API would at `now`; returns its id and first planned time.
pub async fn schedule(pool: &PgPool, call: &NewScheduledCall, now: DateTime<Utc>) -> (Uuid, DateTime<Utc>) {
    let mut tx = pool.begin().await.unwrap();
    let scheduled = outbound::schedule(&mut tx, call, now).await.expect("scheduled");
    tx.commit().await.unwrap();
    (scheduled.id, scheduled.planned_at)
}

/// The queued job for attempt `attempt` of a call, with its run time.
pub async fn queued_attempt(pool: &PgPool, id: Uuid, attempt: i32) -> Option<(RetryScheduledCall, DateTime<Utc>)> {
    let rows: Vec<(Vec<u8>, DateTime<Utc>)> = sqlx::query_as("SELECT job, run_at FROM apalis.jobs WHERE job_type = $1")
        .bind(RetryScheduledCall::KIND)
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(payload, run_at)| (serde_json::from_slice::<RetryScheduledCall>(&payload).unwrap(), run_at))
        .find(|(job, _)| job.scheduled_call_id == id && job.attempt == attempt)
}

/// When the watchdog delivery of attempt `attempt` of a call is due, if it was enqueued.
pub async fn watchdog_due_at(pool: &PgPool, id: Uuid, attempt: i32) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT run_at FROM apalis.jobs WHERE job_type = $1 AND idempotency_key = $2")
        .bind(RetryScheduledCall::KIND)
        .bind(format!("{id}/{attempt}/watchdog"))
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// How many jobs would place attempt `attempt` of a call (its own and its watchdog delivery).
pub async fn jobs_for_attempt(pool: &PgPool, id: Uuid, attempt: i32) -> usize {
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE job_type = $1")
        .bind(RetryScheduledCall::KIND)
        .fetch_all(pool)
        .await
        .unwrap();
    payloads
        .iter()
        .map(|payload| serde_json::from_slice::<RetryScheduledCall>(payload).unwrap())
        .filter(|job| job.scheduled_call_id == id && job.attempt == attempt)
        .count()
}

/// Runs one job the way a worker would, on its first delivery.
pub async fn run(pool: &PgPool, ports: &Ports, job: RetryScheduledCall) -> Result<(), JobError> {
    let ctx = JobContext {
        pool: pool.clone(),
        ports: Arc::new(ports.clone()),
        job_id: "test".into(),
        attempt: 1,
        max_attempts: 6,
    };
    job.run(ctx).await
}

pub async fn call_row(pool: &PgPool, id: Uuid) -> ScheduledCall {
    ScheduledCall::find(&mut pool.acquire().await.unwrap(), id).await.unwrap().expect("the call exists")
}

pub async fn attempts(pool: &PgPool, id: Uuid) -> Vec<Attempt> {
    Attempt::all_for(&mut pool.acquire().await.unwrap(), id).await.unwrap()
}

/// Makes every queued `retry-scheduled-call` job due now (the worker's clock is the database's).
pub async fn fast_forward_jobs(pool: &PgPool) {
    sqlx::query("UPDATE apalis.jobs SET run_at = now() WHERE job_type = $1 AND status = 'Pending'")
        .bind(RetryScheduledCall::KIND)
        .execute(pool)
        .await
        .unwrap();
}
