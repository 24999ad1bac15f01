//! A scheduled call through the real provider clients (a fake Twilio/Exotel
//! API) and the real status webhooks: each attempt's status, echoed back with
//! its attempt id (Twilio `attempt_id`, Exotel `CustomField`), plans the next
//! attempt until the call completes or runs out of attempts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use switchboard::providers::exotel_rest::ExotelRest;
use switchboard::providers::telephony_router::TelephonyRouter;
use switchboard::providers::twilio_rest::TwilioRest;
use switchboard_jobs::outbound::{CallStatus, NewScheduledCall};
use switchboard_jobs::ports::{Provider, Telephony};
use switchboard_jobs::window::Purpose;
use uuid::Uuid;

use super::exotel_rest::exotel_config;
use crate::inbound::world::{EXOTEL_SECRET, PUBLIC_BASE, twilio_config, twilio_post, webhooks};
use crate::outbound::{
    AGENT, CUSTOMER, TestClock, attempts, call_row, fast_forward_jobs, ist, new_call, ports, schedule,
};
use crate::support::fake_providers::{FakeProviders, Received};
use crate::support::{TestApp, Workers, count, migrate, spawn_app_with, wait_until};

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
        let fake = FakeProviders::start().await;
        let now = ist(2026, 11, 25, 11, 0);
        let (call_id, _) = schedule(pool, call, now).await;
        let router = TelephonyRouter {
            twilio: Some(Arc::new(TwilioRest::new(twilio_config(&fake.base_url)))),
            exotel: Some(Arc::new(ExotelRest::new(exotel_config(&fake.base_url)))),
        };
        let mut ports = ports(Arc::new(router) as Arc<dyn Telephony>, TestClock::at(now), provider);
        let line = ports.outbound_line.as_mut().unwrap();
        line.status_callback = match provider {
            Provider::Twilio => format!("{PUBLIC_BASE}/webhooks/twilio/status"),
            Provider::Exotel => format!("{PUBLIC_BASE}/webhooks/exotel/{EXOTEL_SECRET}/status"),
        };
        let workers = Workers::start(pool, switchboard_jobs::registry(), ports);
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
pub(super) async fn twilio_reports_in_sequence(
    app: &TestApp,
    placed: &Received,
    sid: &str,
    status: &str,
    sequence: i32,
) {
    let sequence = sequence.to_string();
    let callback = placed.get("StatusCallback").expect("a status callback");
    let path_and_query = callback.strip_prefix(PUBLIC_BASE).expect("our public URL");
    assert!(path_and_query.starts_with("/webhooks/twilio/status?attempt_id="), "{path_and_query}");
    let params = [
        ("CallSid", sid),
        ("AccountSid", "ACtest"),
        ("From", placed.get("From").unwrap()),
        ("To", placed.get("To").unwrap()),
        ("Direction", "outbound-api"),
        ("CallStatus", status),
        ("SequenceNumber", sequence.as_str()),
    ];
    let response = twilio_post(app, path_and_query, &params).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// Exotel POSTs the terminal status as JSON, echoing `CustomField`.
pub(super) async fn exotel_reports(app: &TestApp, placed: &Received, sid: &str, status: &str) {
    assert_eq!(
        placed.get("StatusCallback"),
        Some(format!("{PUBLIC_BASE}/webhooks/exotel/{EXOTEL_SECRET}/status").as_str())
    );
    let body = json!({
        "CallSid": sid, "Status": status, "EventType": "terminal", "Direction": "outbound-api",
        "From": placed.get("From"), "To": placed.get("To"), "CustomField": placed.get("CustomField"),
        "DateUpdated": "2026-11-25 11:05:00", "Legs": [{"OnCallDuration": 0, "Status": status, "AnsweredBy": "NA"}]
    });
    let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", app.base_url);
    let response = app.client.post(url).json(&body).send().await.unwrap();
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
    fast_forward_jobs(&pool).await;
    let planned = count(
        &pool,
        "SELECT count(*) FROM job_overview WHERE kind = 'retry-scheduled-call' AND state IN ('pending', 'scheduled')",
    )
    .await;
    assert_eq!(planned, 0, "no fourth attempt is planned");
    workers.stop().await;
}
