//! A follow-up's outcome from what each leg did, driven through the real
//! provider clients (a fake Twilio/Exotel REST API) and the real webhooks in
//! the providers' documented shapes: `completed` only when the agent and the
//! customer both talked; an agent who never answers, or a customer's
//! voicemail, is a failed attempt the backoff plans again.

use serde_json::{Value, json};
use sqlx::PgPool;
use switchboard_jobs::outbound::CallStatus;
use switchboard_jobs::ports::Provider;
use uuid::Uuid;

use crate::inbound::world::{EXOTEL_SECRET, PUBLIC_BASE, webhooks};
use crate::outbound::reach::{agent_on_another_call, load};
use crate::outbound::{TestClock, attempts, call_row, ist, jobs_for_attempt, queued_attempt, run, schedule};
use crate::seams::outbound_journey::{provider_ports, twilio_dial_action, twilio_reports_in_sequence, twilio_requests};
use crate::support::fake_providers::{FakeProviders, Received};
use crate::support::{TestApp, migrate, spawn_app_with};

/// A follow-up placed through `provider`'s real client: the agent (on one
/// other call) reserved, the provider asked once.
pub(super) struct Placed {
    pub app: TestApp,
    pub fake: FakeProviders,
    pub call_id: Uuid,
    pub agent: i64,
    pub request: Received,
    pub sid: String,
}

pub(super) async fn place(pool: &PgPool, provider: Provider) -> Placed {
    migrate(pool).await;
    let (agent, call) = agent_on_another_call(pool).await;
    let now = ist(2026, 11, 25, 11, 0);
    let fake = FakeProviders::start().await;
    let ports = provider_ports(&fake.base_url, TestClock::at(now), provider);
    let (call_id, _) = schedule(pool, &call, now).await;
    run(pool, &ports, queued_attempt(pool, call_id, 1).await.unwrap().0).await.expect("placed");
    let [request] = fake.placed().try_into().expect("one provider request");
    let sid = attempts(pool, call_id).await[0].provider_call_sid.clone().expect("the provider's sid");
    assert_eq!(load(pool, agent).await, (2, 2), "the agent's slot is reserved");
    Placed { app: spawn_app_with(pool, webhooks()).await, fake, call_id, agent, request, sid }
}

impl Placed {
    pub(super) async fn twilio_status(&self, status: &str, sequence: i32) {
        twilio_reports_in_sequence(&self.app, &self.request, &self.sid, status, sequence).await;
    }

    async fn twilio_dial_action(&self, dial_status: &str, seconds: &str) {
        twilio_dial_action(&self.app, &self.request, &self.sid, dial_status, seconds).await;
    }

    /// Twilio's asynchronous answering-machine detection result.
    async fn twilio_answered_by(&self, answered_by: &str) {
        let url = self.request.get("AsyncAmdStatusCallback").expect("machine detection asked for");
        let extra = [("AnsweredBy", answered_by), ("MachineDetectionDuration", "2350")];
        twilio_requests(&self.app, url, &self.request, &self.sid, "in-progress", &extra).await;
    }

    /// Exotel's terminal StatusCallback as JSON with its `Legs`: the agent's, then the customer's.
    async fn exotel_reports(&self, status: &str, talked: i64, legs: Value) {
        let body = json!({
            "CallSid": self.sid, "Status": status, "EventType": "terminal", "Direction": "outbound-api",
            "DateUpdated": "2026-11-25 11:05:00", "From": self.request.get("From"), "To": self.request.get("To"),
            "ConversationDuration": talked, "CustomField": self.request.get("CustomField"), "Legs": legs,
        });
        let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status", self.app.base_url);
        assert_eq!(self.app.client.post(url).json(&body).send().await.unwrap().status(), 200);
    }

    pub(super) async fn outcome(&self, pool: &PgPool) -> Option<String> {
        attempts(pool, self.call_id).await[0].outcome.clone()
    }

    /// The attempt failed with `outcome`: the agent's slot back, attempt 2 planned by the backoff.
    async fn assert_retried(&self, pool: &PgPool, outcome: &str) {
        assert_eq!(self.outcome(pool).await.as_deref(), Some(outcome));
        let call = call_row(pool, self.call_id).await;
        assert_eq!(call.status, CallStatus::Scheduled, "{:?}", call.last_error);
        let (_, due) = queued_attempt(pool, self.call_id, 2).await.expect("attempt 2 planned");
        assert_eq!(Some(due), call.next_attempt_at);
        assert_eq!(load(pool, self.agent).await, (1, 2), "the agent's slot is back, once");
        assert_eq!(self.fake.placed().len(), 1);
    }
}

#[sqlx::test(migrations = false)]
async fn a_twilio_follow_up_whose_agent_never_answers_is_retried(pool: PgPool) {
    let placed = place(&pool, Provider::Twilio).await;
    let twiml = placed.request.get("Twiml").unwrap();
    assert!(twiml.contains(&format!(r#"action="{PUBLIC_BASE}/webhooks/twilio/dial?attempt_id="#)), "{twiml}");
    assert_eq!(placed.request.get("MachineDetection"), Some("Enable"));
    assert_eq!(placed.request.get("AsyncAmd"), Some("true"));

    placed.twilio_status("initiated", 0).await;
    placed.twilio_status("in-progress", 2).await;
    placed.twilio_answered_by("human").await;
    placed.twilio_dial_action("no-answer", "0").await;
    placed.twilio_status("completed", 3).await;

    placed.assert_retried(&pool, "agent-no-answer").await;
}

#[sqlx::test(migrations = false)]
async fn a_twilio_follow_up_answered_by_the_customers_voicemail_is_retried(pool: PgPool) {
    let placed = place(&pool, Provider::Twilio).await;

    placed.twilio_status("in-progress", 2).await;
    placed.twilio_answered_by("machine_end_beep").await;
    // The agent had been dialled meanwhile and hears the greeting; their leg completes.
    placed.twilio_dial_action("completed", "14").await;
    placed.twilio_status("completed", 3).await;

    placed.assert_retried(&pool, "voicemail").await;
}

#[sqlx::test(migrations = false)]
async fn a_twilio_follow_up_completes_when_the_customer_and_the_agent_both_talk(pool: PgPool) {
    let placed = place(&pool, Provider::Twilio).await;

    placed.twilio_status("in-progress", 2).await;
    placed.twilio_answered_by("human").await;
    // The customer's call completing says nothing of the agent: no outcome yet.
    placed.twilio_status("completed", 3).await;
    assert_eq!(placed.outcome(&pool).await, None);
    placed.twilio_dial_action("completed", "95").await;

    assert_eq!(placed.outcome(&pool).await.as_deref(), Some("completed"));
    assert_eq!(call_row(&pool, placed.call_id).await.status, CallStatus::Completed);
    assert_eq!(jobs_for_attempt(&pool, placed.call_id, 2).await, 0);
    assert_eq!(load(&pool, placed.agent).await, (1, 2));
}

fn leg(status: Value, seconds: i64, answered_by: &str) -> Value {
    json!({ "OnCallDuration": seconds, "Status": status, "AnsweredBy": answered_by })
}

#[sqlx::test(migrations = false)]
async fn an_exotel_follow_up_whose_agent_never_answers_is_retried(pool: PgPool) {
    let placed = place(&pool, Provider::Exotel).await;
    placed.exotel_reports("no-answer", 0, json!([leg(json!("no-answer"), 0, "NA"), leg(Value::Null, 0, "NA")])).await;
    placed.assert_retried(&pool, "agent-no-answer").await;
}

#[sqlx::test(migrations = false)]
async fn an_exotel_follow_up_answered_by_the_customers_voicemail_is_retried(pool: PgPool) {
    let placed = place(&pool, Provider::Exotel).await;
    let legs = json!([leg(json!("completed"), 40, "NA"), leg(json!("completed"), 22, "Machine")]);
    placed.exotel_reports("completed", 22, legs).await;
    placed.assert_retried(&pool, "voicemail").await;
}

#[sqlx::test(migrations = false)]
async fn an_exotel_follow_up_the_customer_never_answered_is_retried_although_its_status_says_completed(pool: PgPool) {
    let placed = place(&pool, Provider::Exotel).await;
    let legs = json!([leg(json!("completed"), 35, "NA"), leg(json!("no-answer"), 0, "NA")]);
    placed.exotel_reports("completed", 0, legs).await;
    placed.assert_retried(&pool, "no-answer").await;
}

#[sqlx::test(migrations = false)]
async fn an_exotel_follow_up_completes_when_both_legs_talk(pool: PgPool) {
    let placed = place(&pool, Provider::Exotel).await;
    let legs = json!([leg(json!("completed"), 80, "NA"), leg(json!("completed"), 65, "Human")]);
    placed.exotel_reports("completed", 65, legs).await;

    assert_eq!(placed.outcome(&pool).await.as_deref(), Some("completed"));
    assert_eq!(call_row(&pool, placed.call_id).await.status, CallStatus::Completed);
    assert_eq!(jobs_for_attempt(&pool, placed.call_id, 2).await, 0);
    assert_eq!(load(&pool, placed.agent).await, (1, 2));
}
