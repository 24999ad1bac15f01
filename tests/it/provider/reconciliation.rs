//! Reconciliation: the final status webhook of an answered call is lost, and
//! `reconcile-call` asks the provider's REST API (a fake Twilio/Exotel on a
//! loopback port, in their documented shapes) once the call has been silent
//! for `RECONCILE_AFTER`; what it answers is applied as the webhook would
//! have been, and the agent's slot comes back within the interval.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use switchboard_jobs::outbound::CallStatus;
use switchboard_jobs::ports::{Ports, Provider};
use switchboard_jobs::queue::{Job, JobContext};
use switchboard_jobs::reconcile_call::ReconcileCall;

use super::leg_outcomes::{Placed, place};
use crate::outbound::reach::load;
use crate::outbound::{TestClock, call_row, ist};
use crate::seams::exotel_rest::EXOTEL_SID;
use crate::seams::outbound_journey::provider_ports;
use crate::support::{Workers, count, wait_until};

/// How long a call holding a slot may be silent here.
const RECONCILE_AFTER: Duration = Duration::from_millis(500);

fn reconciling_ports(placed: &Placed, provider: Provider) -> Ports {
    let ports = provider_ports(&placed.fake.base_url, TestClock::at(ist(2026, 11, 25, 11, 0)), provider);
    Ports { reconcile_after: Some(RECONCILE_AFTER), ..ports }
}

/// Workers reconcile until the agent is off the call (their other call stays).
async fn slot_comes_back(pool: &PgPool, placed: &Placed, provider: Provider) {
    let workers = Workers::start(pool, switchboard_jobs::registry(), reconciling_ports(placed, provider));
    wait_until(Duration::from_secs(20), "the agent's slot back", || async { load(pool, placed.agent).await == (1, 2) })
        .await;
    workers.stop().await;
}

async fn released_by_reconcile(pool: &PgPool, sid: &str) -> bool {
    sqlx::query_scalar("SELECT released_by_reconcile FROM calls WHERE call_sid = $1")
        .bind(sid)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A second run finds nothing to do: the slot stays given back once.
async fn run_again(pool: &PgPool, placed: &Placed, provider: Provider) {
    let ctx = JobContext {
        pool: pool.clone(),
        ports: Arc::new(reconciling_ports(placed, provider)),
        job_id: "again".into(),
        attempt: 1,
        max_attempts: 25,
    };
    ReconcileCall { provider, call_sid: placed.sid.clone() }.run(ctx).await.expect("nothing left to do");
    assert_eq!(load(pool, placed.agent).await, (1, 2), "released once");
}

#[sqlx::test(migrations = false)]
async fn a_twilio_call_whose_final_status_is_lost_gives_its_slot_back_from_the_rest_api(pool: PgPool) {
    let placed = place(&pool, Provider::Twilio).await;
    placed.twilio_status("in-progress", 2).await;
    assert_eq!(load(&pool, placed.agent).await, (2, 2));
    // The web was down: the <Dial action> and the final status never arrive.
    let calls = "/2010-04-01/Accounts/ACtest/Calls";
    placed.fake.serve(
        &format!("{calls}/{}.json", placed.sid),
        json!({"sid": placed.sid, "account_sid": "ACtest", "status": "completed", "duration": "95",
               "direction": "outbound-api", "answered_by": "human", "parent_call_sid": null}),
    );
    placed.fake.serve(
        &format!("{calls}.json?ParentCallSid={}", placed.sid),
        json!({"calls": [{"sid": "CAfedcba9876543210fedcba9876543210", "parent_call_sid": placed.sid,
                          "status": "completed", "duration": "90", "direction": "outbound-dial"}],
               "page": 0, "page_size": 50}),
    );

    slot_comes_back(&pool, &placed, Provider::Twilio).await;

    assert!(released_by_reconcile(&pool, &placed.sid).await);
    assert_eq!(placed.outcome(&pool).await.as_deref(), Some("completed"), "the agent's leg completed too");
    assert_eq!(call_row(&pool, placed.call_id).await.status, CallStatus::Completed);
    run_again(&pool, &placed, Provider::Twilio).await;
}

#[sqlx::test(migrations = false)]
async fn an_exotel_call_whose_status_callback_is_dropped_is_settled_from_call_details(pool: PgPool) {
    let placed = place(&pool, Provider::Exotel).await;
    // Exotel sends nothing until the end, and dropped that.
    placed.fake.serve(
        &format!("/v1/Accounts/{EXOTEL_SID}/Calls/{}.json?details=true", placed.sid),
        json!({"Call": {
            "Sid": placed.sid, "ParentCallSid": null, "Status": "completed", "Duration": "80",
            "Direction": "outbound-api", "AnsweredBy": null, "DateUpdated": "2026-11-25 11:06:00",
            "RecordingUrl": "https://recordings.exotel.test/call.mp3?X-Amz-Expires=600",
            "Details": {"ConversationDuration": 65, "Leg1Status": "completed", "Leg2Status": "completed",
                        "Legs": [{"Leg": {"Id": 1, "OnCallDuration": 80}}, {"Leg": {"Id": 2, "OnCallDuration": 65}}]}
        }}),
    );

    slot_comes_back(&pool, &placed, Provider::Exotel).await;

    assert!(released_by_reconcile(&pool, &placed.sid).await);
    assert_eq!(placed.outcome(&pool).await.as_deref(), Some("completed"));
    assert_eq!(count(&pool, "SELECT count(*) FROM apalis.jobs WHERE job_type = 'fetch-recording'").await, 1);
    run_again(&pool, &placed, Provider::Exotel).await;
}
