//! A sid is the provider's: an Exotel `CallSid` may be any alphanumerics, a
//! Twilio call or recording sid included, so nothing an Exotel request sends
//! can attach to a Twilio call, and every view looks a call up by
//! (provider, sid).

use serde_json::Value;
use sqlx::PgPool;

use crate::inbound::world::*;
use crate::support::{API_TOKEN, TestApp, count, migrate, spawn_app_with};

const TWILIO_RECORDING: &str = "RE0123456789abcdef0123456789abcdef";

async fn exotel_recording(app: &TestApp, sid: &str) {
    let query = format!(
        "CallSid={sid}&Status=completed&RecordingUrl=https://recordings.exotel.com/exotelrecordings/acme/{sid}.mp3"
    );
    let url = format!("{}/webhooks/exotel/{EXOTEL_SECRET}/status?{query}", app.base_url);
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 200);
}

async fn call_view(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.client.get(format!("{}/api{path}", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn providers_of_recordings(view: &Value) -> Vec<&str> {
    view["recordings"].as_array().unwrap().iter().map(|r| r["provider"].as_str().unwrap()).collect()
}

#[sqlx::test(migrations = false)]
async fn an_exotel_request_cannot_attach_its_recording_to_a_twilio_call_of_the_same_sid(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(77);
    let twilio = [
        ("CallSid", sid.as_str()),
        ("RecordingSid", TWILIO_RECORDING),
        ("RecordingUrl", &format!("https://api.twilio.com/2010-04-01/Accounts/ACx/Recordings/{TWILIO_RECORDING}")),
        ("RecordingStatus", "completed"),
    ];
    assert_eq!(twilio_post(&app, "/webhooks/twilio/recording", &twilio).send().await.unwrap().status(), 200);

    exotel_recording(&app, &sid).await;
    exotel_recording(&app, TWILIO_RECORDING).await;

    assert_eq!(count(&pool, "SELECT count(*) FROM recordings WHERE provider = 'twilio'").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM recordings WHERE provider = 'exotel'").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM apalis.jobs WHERE job_type = 'fetch-recording'").await, 3);

    let (twilio_status, twilio_view) = call_view(&app, &format!("/calls/{sid}?provider=twilio")).await;
    let (exotel_status, exotel_view) = call_view(&app, &format!("/calls/{sid}?provider=exotel")).await;
    assert_eq!((twilio_status, exotel_status), (200, 200));
    assert_eq!(providers_of_recordings(&twilio_view), ["twilio"]);
    assert_eq!(providers_of_recordings(&exotel_view), ["exotel"]);

    let (ambiguous, error) = call_view(&app, &format!("/calls/{sid}")).await;
    assert_eq!((ambiguous, error["field"].as_str()), (422, Some("provider")));
    let (wrong, _) = call_view(&app, &format!("/calls/{sid}?provider=skype")).await;
    assert_eq!(wrong, 422);
}
