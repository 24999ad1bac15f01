//! The operator API: agents, departments, IVR menus, calls and statistics.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::world::*;
use crate::support::{API_TOKEN, TestApp, migrate, spawn_app_with};

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.client.request(method, format!("{}/api{path}", app.base_url)).bearer_auth(API_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = false)]
async fn agents_are_created_listed_updated_and_their_status_set(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let (status, sales) = send(&app, Method::POST, "/departments", Some(json!({"name": "sales"}))).await;
    assert_eq!(status, 201);

    let new_agent =
        json!({"name": "Asha", "phone": "+91 98765 43210", "department_id": sales["id"], "skills": ["hindi"]});
    let (status, agent) = send(&app, Method::POST, "/agents", Some(new_agent)).await;
    assert_eq!(status, 201);
    assert_eq!((agent["phone"].as_str(), agent["status"].as_str()), (Some("+919876543210"), Some("offline")));
    let id = agent["id"].as_i64().unwrap();

    let (status, updated) = send(
        &app,
        Method::PATCH,
        &format!("/agents/{id}"),
        Some(json!({"skills": ["hindi", "claims"], "max_concurrent_calls": 3})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (updated["skills"].clone(), updated["max_concurrent_calls"].as_i64()),
        (json!(["hindi", "claims"]), Some(3))
    );
    let (status, available) =
        send(&app, Method::PUT, &format!("/agents/{id}/status"), Some(json!({"status": "available"}))).await;
    assert_eq!((status, available["status"].as_str()), (200, Some("available")));
    let (_, listed) = send(&app, Method::GET, "/agents?status=available", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, _) = send(&app, Method::DELETE, &format!("/agents/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, Method::GET, &format!("/agents/{id}"), None).await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrations = false)]
async fn invalid_fields_are_422_naming_the_field(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let cases = [
        ("/agents", json!({"name": "A", "phone": "98765"}), "phone"),
        ("/agents", json!({"phone": "+919876543210"}), "name"),
        ("/agents", json!({"name": "A", "phone": "+919876543210", "max_concurrent_calls": 0}), "max_concurrent_calls"),
        ("/agents", json!({"name": "A", "phone": "+919876543210", "status": "asleep"}), "status"),
        ("/agents", json!({"name": "A", "phone": "+919876543210", "department_id": 999}), "department_id"),
        ("/departments", json!({"name": "d", "strategy": "random"}), "strategy"),
        ("/departments", json!({"name": "d", "overflow_action": "transfer"}), "overflow_number"),
        ("/departments", json!({"name": "d", "max_wait_secs": 0}), "max_wait_secs"),
        ("/ivr-menus", json!({"prompt": "Hi", "options": [{"digit": "12", "department_id": 1}]}), "options.digit"),
        ("/ivr-menus", json!({"prompt": "Hi", "options": [{"digit": "1"}]}), "options"),
        ("/ivr-menus", json!({"prompt": "Hi", "options": [{"digit": "1", "department_id": 999}]}), "options"),
    ];
    for (path, body, field) in cases {
        let (status, error) = send(&app, Method::POST, path, Some(body.clone())).await;
        assert_eq!((status, error["field"].as_str()), (422, Some(field)), "{path} {body}: {error}");
    }
    let (status, error) = send(&app, Method::GET, "/calls?phone=12345", None).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("phone")));
    for (query, field) in [("/calls?agent_id=abc", "agent_id"), ("/calls?limit=many", "limit")] {
        let (status, error) = send(&app, Method::GET, query, None).await;
        assert_eq!((status, error["field"].as_str()), (422, Some(field)), "{query}: {error}");
    }
    assert_eq!(super::world::count(&pool, "SELECT count(*) FROM agents").await, 0);
}

#[sqlx::test(migrations = false)]
async fn ivr_menus_are_stored_with_their_options_and_replaced_whole(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let (_, sales) = send(&app, Method::POST, "/departments", Some(json!({"name": "sales"}))).await;
    let (_, sub) = send(
        &app,
        Method::POST,
        "/ivr-menus",
        Some(json!({"prompt": "Press 2 for sales.", "options": [{"digit": "2", "department_id": sales["id"]}]})),
    )
    .await;
    let root =
        json!({"phone_number": OUR_NUMBER, "prompt": "Press 1.", "options": [{"digit": "1", "submenu_id": sub["id"]}]});

    let (status, created) = send(&app, Method::POST, "/ivr-menus", Some(root)).await;
    assert_eq!(status, 201);
    assert_eq!(created["options"], json!([{"digit": "1", "department_id": null, "submenu_id": sub["id"]}]));
    let id = created["id"].as_i64().unwrap();
    let replacement = json!({"phone_number": OUR_NUMBER, "prompt": "Press 3.", "max_retries": 1, "options": [{"digit": "3", "department_id": sales["id"]}]});
    let (status, replaced) = send(&app, Method::PUT, &format!("/ivr-menus/{id}"), Some(replacement)).await;

    assert_eq!(status, 200);
    assert_eq!((replaced["prompt"].as_str(), replaced["max_retries"].as_i64()), (Some("Press 3."), Some(1)));
    assert_eq!(replaced["options"].as_array().unwrap().len(), 1);
    let (_, all) = send(&app, Method::GET, "/ivr-menus", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
}

async fn call_row(pool: &PgPool, sid: &str, status: &str, direction: &str, agent: Option<i64>, duration: Option<i32>) {
    sqlx::query(
        "INSERT INTO calls (provider, call_sid, direction, from_number, to_number, status, agent_id, duration_secs)
         VALUES ('twilio', $1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(sid)
    .bind(direction)
    .bind(CALLER)
    .bind(OUR_NUMBER)
    .bind(status)
    .bind(agent)
    .bind(duration)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn calls_are_filtered_and_paged_newest_first_by_cursor(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    for n in 0..5 {
        call_row(&pool, &call_sid(n), if n == 4 { "busy" } else { "completed" }, "inbound", None, Some(10)).await;
    }

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = send(&app, Method::GET, &format!("/calls?limit=2&status=completed{cursor}"), None).await;
        assert_eq!(status, 200);
        seen.extend(page["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }

    assert_eq!(seen, [call_sid(3), call_sid(2), call_sid(1), call_sid(0)]);
    let (status, one) = send(&app, Method::GET, &format!("/calls/{}", call_sid(4)), None).await;
    assert_eq!((status, one["status"].as_str()), (200, Some("busy")));
    let (_, by_phone) = send(&app, Method::GET, "/calls?phone=%2B14155550000", None).await;
    assert_eq!(by_phone["calls"], json!([]));
}

#[sqlx::test(migrations = false)]
async fn stats_count_calls_by_status_direction_and_agent_and_the_waiting_queue(pool: PgPool) {
    migrate(&pool).await;
    let sales = department(&pool, "sales", "round_robin", None, 60).await;
    let asha = agent(&pool, sales, "+14155550801", &[], 1).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    call_row(&pool, &call_sid(1), "completed", "inbound", Some(asha), Some(30)).await;
    call_row(&pool, &call_sid(2), "completed", "outbound", Some(asha), Some(90)).await;
    call_row(&pool, &call_sid(3), "ringing", "inbound", None, None).await;
    sqlx::query("UPDATE calls SET routing_state = 'waiting', department_id = $1, queued_at = now() - interval '30 seconds' WHERE call_sid = $2")
        .bind(sales)
        .bind(call_sid(3))
        .execute(&pool)
        .await
        .unwrap();

    let (_, calls) = send(&app, Method::GET, "/stats/calls", None).await;
    let (_, queue) = send(&app, Method::GET, "/stats/queue", None).await;

    assert_eq!(calls["total"], 3);
    assert_eq!(calls["by_status"], json!({"completed": 2, "ringing": 1}));
    assert_eq!(calls["by_direction"], json!({"inbound": 2, "outbound": 1}));
    assert_eq!(calls["average_duration_secs"], 60.0);
    assert_eq!(calls["per_agent"], json!([{"agent_id": asha, "name": "+14155550801", "calls": 2}]));
    assert_eq!(queue["waiting"], 1);
    assert!(queue["oldest_wait_secs"].as_f64().unwrap() >= 30.0);
}
