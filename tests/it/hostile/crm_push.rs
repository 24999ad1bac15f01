//! The CRM push as a receiver sees it: verifiable with a Standard Webhooks
//! library, one `webhook-id` for every retry of a push, a replay detectable by
//! its timestamp, and no redirect followed with the signed lead.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::post;
use switchboard::crm::CrmWebhook;
use switchboard_jobs::ports::{CrmSink, PortError};

use crate::after_call::fakes::{CRM_SECRET, Canned, CrmDelivery, Endpoint, Fakes};

fn crm_at(url: String) -> CrmWebhook {
    CrmWebhook::new(url, CRM_SECRET, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn a_push_and_its_retry_verify_under_one_webhook_id_and_a_replay_is_detectable() {
    let receiver = Fakes::start().await;
    receiver.fail(Endpoint::Crm, Canned::status(503));
    let crm = crm_at(format!("{}/crm", receiver.base_url));
    let lead = serde_json::json!({ "phone": "+919876543210", "lead_score": 82 });

    assert!(matches!(crm.deliver("switchboard-insight-7", &lead).await, Err(PortError::Transient { .. })));
    crm.deliver("switchboard-insight-7", &lead).await.unwrap();

    let deliveries = receiver.crm_deliveries();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(deliveries.len(), 2);
    for delivery in &deliveries {
        assert_eq!(delivery.delivery_id, "switchboard-insight-7", "the same id on the retry: the receiver dedupes");
        assert_eq!(delivery.verify(CRM_SECRET, now), Ok(()));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&delivery.body).unwrap(), lead);
    }

    let captured = &deliveries[1];
    assert_eq!(
        captured.verify(CRM_SECRET, now + 6 * 60),
        Err("webhook-timestamp is more than five minutes away: a replay"),
        "replayed six minutes later"
    );
    let later = captured.timestamp.parse::<i64>().unwrap() + 1;
    let forged = CrmDelivery { timestamp: later.to_string(), ..captured.clone() };
    assert_eq!(forged.verify(CRM_SECRET, now), Err("no signature matches"), "re-sent with a new timestamp");
    let other_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_eq!(captured.verify(other_secret, now), Err("no signature matches"));
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_signed_lead() {
    let receiver = Fakes::start().await;
    let target = format!("{}/crm", receiver.base_url);
    let app = Router::new()
        .route("/hook", post(move || async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let error = crm_at(url).deliver("switchboard-insight-8", &serde_json::json!({})).await.unwrap_err();
    assert_eq!(
        error,
        PortError::Permanent {
            message: "CRM webhook answered 307 Temporary Redirect: redirects are not followed; set CRM_WEBHOOK_URL to the final URL"
                .into()
        }
    );
    assert!(receiver.crm_deliveries().is_empty(), "the redirect's target got nothing");
}
