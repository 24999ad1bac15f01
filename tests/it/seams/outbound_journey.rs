//! A scheduled call through the real provider clients (a fake Twilio/Exotel
//! API) and the real status webhooks: each attempt's status, echoed back with
//! its attempt id (Twilio `attempt_id`, Exotel `CustomField`), plans the next
//! attempt until the call completes or runs out of attempts. A request the
//! provider may have acted on is never repeated, and an attempt whose status
//! never comes is given up by its watchdog.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Value, json};
use sqlx::PgPool;
use switchboard::providers::exotel_rest::ExotelRest;
use switchboard::providers::telephony_router::TelephonyRouter;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::outbound::watchdog::{CALL_TIME_LIMIT, NO_OUTCOME_AFTER};
use switchboard_jobs::outbound::{CallStatus, NewScheduledCall};
use switchboard_jobs::ports::{Clock, Ports, Provider, Telephony};
use switchboard_jobs::retry_scheduled_call::RetryScheduledCall;
use switchboard_jobs::window::Purpose;
use uuid::Uuid;

use super::exotel_rest::{RawProvider, exotel_config};
use crate::inbound::world::{EXOTEL_SECRET, PUBLIC_BASE, twilio_callback, twilio_config, webhooks};
use crate::outbound::reach::{agent_on_another_call, load};
use crate::outbound::{
    AGENT, CUSTOMER, TestClock, attempts, call_row, fast_forward_jobs, ist, jobs_for_attempt, new_call, ports,
    queued_attempt, run, schedule,
};
use crate::support::fake_providers::{FakeProviders, Received};
use crate::support::{TestApp, Workers, count, job_state, migrate, spawn_app_with, wait_until};

/// When the journeys start: a weekday morning inside every window.
fn journey_start() -> chrono::DateTime<chrono::Utc> {
    ist(2026, 11, 25, 11, 0)
}

/// Ports placing calls through both real clients pointed at `api_base`, with
/// status callbacks to our real webhooks for `provider`.
pub(crate) fn provider_ports(api_base: &str, clock: Arc<TestClock>, provider: Provider) -> Ports {
    let router = TelephonyRouter {
        twilio: Some(Arc::new(TwilioRest::new(twilio_config(api_base)))),
        exotel: Some(Arc::new(ExotelRest::new(exotel_config(api_base)))),
    };
    let mut ports = ports(Arc::new(router) as Arc<dyn Telephony>, clock, provider);
    let line = ports.outbound_line.as_mut().unwrap();
    line.status_callback = match provider {
        Provider::Twilio => format!("{PUBLIC_BASE}/webhooks/twilio/status"),
        Provider::Exotel => format!("{PUBLIC_BASE}/webhooks/exotel/{EXOTEL_SECRET}/status"),
    };
    ports
}

/// A service call to the customer scheduled inside the window, workers placing
/// calls through both real clients pointed at the fake, and the web app.
pub(super) struct Journey {
    pub fake: FakeProviders,
    pub app: TestApp,
    pub workers: Workers,
    pub call_id: Uuid,
}

impl Journey {
    async fn start(pool: &PgPool, provider: Provider) -> Self {
        Self::start_for(pool, provider, &new_call(Purpose::Service)).await
    }

    pub(super) async fn start_for(pool: &PgPool, provider: Provider, call: &NewScheduledCall) -> Self {
        Self::start_with_clock(pool, provider, call, TestClock::at(journey_start())).await
    }

    /// The journey with workers whose time the test moves.
    async fn start_with_clock(
        pool: &PgPool,
        provider: Provider,
        call: &NewScheduledCall,
        clock: Arc<TestClock>,
    ) -> Self {
        let fake = FakeProviders::start().await;
        let (call_id, _) = schedule(pool, call, clock.now()).await;
        let workers =
            Workers::start(pool, switchboard_jobs::registry(), provider_ports(&fake.base_url, clock, provider));
        Self { fake, app: spawn_app_with(pool, webhooks()).await, workers, call_id }
    }
}

/// Makes the planned attempt due and waits until the provider was asked for call `n`.
pub(super) async fn next_call_placed(pool: &PgPool, fake: &FakeProviders, n: usize) -> Received {
    wait_until(Duration::from_secs(20), &format!("provider call {n}"), || async {
        fast_forward_jobs(pool).await;
        fake.placed().len() >= n
    })
    .await;
    let placed = fake.placed();
    assert_eq!(placed.len(), n, "one provider call per attempt");
    placed[n - 1].clone()
}

/// The provider's call sid for the attempt, once the job stored it.
pub(super) async fn provider_sid(pool: &PgPool, id: Uuid, number: usize) -> String {
    wait_until(Duration::from_secs(20), "the provider's call sid", || async {
        attempts(pool, id).await.get(number - 1).is_some_and(|a| a.provider_call_sid.is_some())
    })
    .await;
    attempts(pool, id).await[number - 1].provider_call_sid.clone().unwrap()
}

/// Twilio reports the call's final status to the URL it was given, signed.
async fn twilio_reports(app: &TestApp, placed: &Received, sid: &str, status: &str) {
    twilio_reports_in_sequence(app, placed, sid, status, 4).await;
}

/// Twilio reports a status, the `sequence`-th callback about the call.
pub(crate) async fn twilio_reports_in_sequence(
    app: &TestApp,
    placed: &Received,
    sid: &str,
    status: &str,
    sequence: i32,
) {
    let sequence = sequence.to_string();
    let callback = placed.get("StatusCallback").expect("a status callback");
    assert!(callback.starts_with(&format!("{PUBLIC_BASE}/webhooks/twilio/status?attempt_id=")), "{callback}");
    let extra = [("SequenceNumber", sequence.as_str()), ("CallbackSource", "call-progress-events")];
    twilio_requests(app, callback, placed, sid, status, &extra).await;
}

/// Twilio requests the `<Dial action>` of the TwiML we handed it: the agent's leg ended.
pub(crate) async fn twilio_dial_action(app: &TestApp, placed: &Received, sid: &str, dial_status: &str, seconds: &str) {
    let twiml = placed.get("Twiml").expect("TwiML");
    let start = twiml.find("<Dial").and_then(|dial| twiml[dial..].find("action=\"").map(|a| dial + a + 8));
    let action = start.map(|start| twiml[start..][..twiml[start..].find('"').unwrap()].replace("&amp;", "&"));
    let action = action.expect("the <Dial> has an action");
    let leg = [("DialCallStatus", dial_status), ("DialCallSid", "CAfedcba9876543210fedcba9876543210")];
    twilio_requests(app, &action, placed, sid, "in-progress", &[leg[0], leg[1], ("DialCallDuration", seconds)]).await;
}

/// Twilio requests `url` (one we gave it) about the customer's call, signed,
/// with the call's parameters and `extra`.
pub(crate) async fn twilio_requests(
    app: &TestApp,
    url: &str,
    placed: &Received,
    sid: &str,
    status: &str,
    extra: &[(&str, &str)],
) {
    let mut params = vec![
        ("CallSid", sid),
        ("AccountSid", "ACtest"),
        ("From", placed.get("From").unwrap()),
        ("To", placed.get("To").unwrap()),
        ("Direction", "outbound-api"),
        ("CallStatus", status),
    ];
    params.extend_from_slice(extra);
    let response = twilio_callback(app, url, &params).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
}

/// Exotel POSTs the terminal status as JSON, echoing `CustomField`.
pub(super) async fn exotel_reports(app: &TestApp, placed: &Received, sid: &str, status: &str) {
    assert_eq!(
        placed.get("StatusCallback"),
        Some(format!("{PUBLIC_BASE}/webhooks/exotel/{EXOTEL_SECRET}/status").as_str())
    );
    let mut body = exotel_status(sid, status, placed.get("CustomField").unwrap());
    body["From"] = json!(placed.get("From"));
    body["To"] = json!(placed.get("To"));
    post_exotel_status(app, &body).await;
}

/// Exotel's terminal status of call `sid`, echoing `custom_field`.
fn exotel_status(sid: &str, status: &str, custom_field: &str) -> Value {
    json!({
        "CallSid": sid, "Status": status, "EventType": "terminal", "Direction": "outbound-api",
        "CustomField": custom_field, "DateUpdated": "2026-11-25 11:05:00",
        "Legs": [{"OnCallDuration": 0, "Status": status, "AnsweredBy": "NA"}]
    })
}

async fn post_exotel_status(app: &TestApp, body: &Value) {
    let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", app.base_url);
    let response = app.client.post(url).json(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

fn outcomes(attempts: &[switchboard_jobs::outbound::Attempt]) -> Vec<Option<&str>> {
    attempts.iter().map(|a| a.outcome.as_deref()).collect()
}

pub(super) async fn wait_for_status(pool: &PgPool, id: Uuid, status: CallStatus) {
    wait_until(Duration::from_secs(20), &format!("the call {}", status.as_str()), || async {
        call_row(pool, id).await.status == status
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn twilio_busy_then_no_answer_then_completed_takes_three_attempts_and_completes(pool: PgPool) {
    migrate(&pool).await;
    let Journey { fake, app, workers, call_id: id } = Journey::start(&pool, Provider::Twilio).await;

    for (n, status) in [(1, "busy"), (2, "no-answer"), (3, "completed")] {
        let placed = next_call_placed(&pool, &fake, n).await;
        assert_eq!(placed.path, "/2010-04-01/Accounts/ACtest/Calls.json");
        assert_eq!(placed.get("To"), Some(CUSTOMER));
        assert!(placed.get("Twiml").unwrap().contains(AGENT));
        let sid = provider_sid(&pool, id, n).await;
        if status == "completed" {
            twilio_dial_action(&app, &placed, &sid, "completed", "95").await;
        }
        twilio_reports(&app, &placed, &sid, status).await;
    }

    wait_for_status(&pool, id, CallStatus::Completed).await;
    let attempts = attempts(&pool, id).await;
    assert_eq!(outcomes(&attempts), [Some("busy"), Some("no-answer"), Some("completed")]);
    let callbacks: Vec<String> = fake.placed().iter().map(|r| r.get("StatusCallback").unwrap().to_owned()).collect();
    for (attempt, callback) in attempts.iter().zip(&callbacks) {
        assert!(callback.ends_with(&format!("attempt_id={}", attempt.id)), "{callback}");
    }
    let linked = count(&pool, "SELECT count(*) FROM calls WHERE provider = 'twilio' AND attempt_id IS NOT NULL").await;
    assert_eq!(linked, 3, "each provider call is stored with its attempt");
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn exotel_busy_no_answer_and_busy_again_exhausts_the_call_after_its_three_attempts(pool: PgPool) {
    migrate(&pool).await;
    let Journey { fake, app, workers, call_id: id } = Journey::start(&pool, Provider::Exotel).await;

    for (n, status) in [(1, "busy"), (2, "no-answer"), (3, "busy")] {
        let placed = next_call_placed(&pool, &fake, n).await;
        assert_eq!(placed.path, "/v1/Accounts/switchboard1/Calls/connect.json");
        assert_eq!((placed.get("From"), placed.get("To")), (Some(AGENT), Some(CUSTOMER)));
        let sid = provider_sid(&pool, id, n).await;
        exotel_reports(&app, &placed, &sid, status).await;
    }

    wait_for_status(&pool, id, CallStatus::Exhausted).await;
    let attempts = attempts(&pool, id).await;
    assert_eq!(outcomes(&attempts), [Some("busy"), Some("no-answer"), Some("busy")]);
    let custom_fields: Vec<String> = fake.placed().iter().map(|r| r.get("CustomField").unwrap().to_owned()).collect();
    assert_eq!(custom_fields, attempts.iter().map(|a| a.id.to_string()).collect::<Vec<_>>());
    assert_eq!(jobs_for_attempt(&pool, id, 4).await, 0, "no fourth attempt is planned");
    workers.stop().await;
}

/// The id of the job enqueued under `dedupe_key`.
async fn job_id(pool: &PgPool, dedupe_key: &str) -> String {
    sqlx::query_scalar("SELECT id FROM apalis.jobs WHERE idempotency_key = $1")
        .bind(dedupe_key)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn exotel_hanging_up_on_the_call_request_gets_no_second_request_and_the_status_webhook_settles_the_attempt(
    pool: PgPool,
) {
    migrate(&pool).await;
    let (only, call) = agent_on_another_call(&pool).await;
    let silent = RawProvider::answering("").await;
    let clock = TestClock::at(journey_start());
    let (id, _) = schedule(&pool, &call, clock.now()).await;
    let workers =
        Workers::start(&pool, switchboard_jobs::registry(), provider_ports(&silent.base_url, clock, Provider::Exotel));
    let app = spawn_app_with(&pool, webhooks()).await;

    let job = job_id(&pool, &format!("{id}/1")).await;
    wait_until(Duration::from_secs(20), "the attempt's job to end", || async {
        job_state(&pool, &job).await == "done"
    })
    .await;
    workers.stop().await;
    assert_eq!(silent.requests(), 1, "the request is not repeated");
    let kept = attempts(&pool, id).await;
    assert_eq!((kept.len(), kept[0].outcome.as_deref()), (1, None), "the attempt waits for its status");
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Dialing);
    assert_eq!(load(&pool, only).await, (2, 2), "its slot stays reserved");

    // Exotel had placed the call after all: its status names the attempt.
    post_exotel_status(&app, &exotel_status("exoplacedanyway", "busy", &kept[0].id.to_string())).await;

    assert_eq!(attempts(&pool, id).await[0].outcome.as_deref(), Some("busy"));
    assert_eq!(load(&pool, only).await, (1, 2), "the call's status freed the slot");
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Scheduled);
    assert_eq!(jobs_for_attempt(&pool, id, 2).await, 1);
    assert_eq!(silent.requests(), 1);
}

#[sqlx::test(migrations = false)]
async fn an_exotel_call_whose_status_never_comes_is_given_up_and_its_late_status_changes_nothing(pool: PgPool) {
    migrate(&pool).await;
    let (only, call) = agent_on_another_call(&pool).await;
    let clock = TestClock::at(journey_start());
    let Journey { fake, app, workers, call_id: id } =
        Journey::start_with_clock(&pool, Provider::Exotel, &call, clock.clone()).await;
    let placed = next_call_placed(&pool, &fake, 1).await;
    let sid = provider_sid(&pool, id, 1).await;
    workers.stop().await;
    assert_eq!(load(&pool, only).await, (2, 2));

    // Exotel dropped the terminal callback; the attempt's watchdog runs once
    // the call cannot still be going on.
    let dialed_at = attempts(&pool, id).await[0].dialed_at;
    clock.set(dialed_at + TimeDelta::from_std(CALL_TIME_LIMIT + NO_OUTCOME_AFTER).unwrap());
    let watchdog = RetryScheduledCall { scheduled_call_id: id, attempt: 1 };
    run(&pool, &provider_ports(&fake.base_url, clock, Provider::Exotel), watchdog).await.expect("given up");
    assert_eq!(attempts(&pool, id).await[0].outcome.as_deref(), Some("no-outcome"));
    assert_eq!(load(&pool, only).await, (1, 2), "the slot is given back");
    assert!(queued_attempt(&pool, id, 2).await.is_some());

    // Exotel's last retry of the callback arrives after all.
    exotel_reports(&app, &placed, &sid, "completed").await;

    assert_eq!(attempts(&pool, id).await[0].outcome.as_deref(), Some("no-outcome"));
    assert_eq!(load(&pool, only).await, (1, 2), "not released a second time");
    let held: Option<i64> =
        sqlx::query_scalar("SELECT agent_id FROM calls WHERE call_sid = $1").bind(&sid).fetch_one(&pool).await.unwrap();
    assert_eq!(held, None, "the late call row holds no slot");
    assert_eq!(jobs_for_attempt(&pool, id, 2).await, 1, "no extra attempt");
    assert_eq!(call_row(&pool, id).await.status, CallStatus::Scheduled);
    assert_eq!(fake.placed().len(), 1);
}
