//! The outbound HTTP API: scheduling with validation, listing, detail with
//! attempts, cancel, stats, the calling policy, opt-outs and contacts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use switchboard_jobs::outbound::{Report, record_outcome};

use super::*;
use crate::support::{API_TOKEN, TestApp, migrate, spawn_app};

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.client.request(method, format!("{}/api{path}", app.base_url)).bearer_auth(API_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// A Monday morning in IST, far enough ahead to be in the future.
const MONDAY_1030_IST: &str = "2030-01-07T10:30:00+05:30";

fn request(purpose: &str) -> Value {
    json!({
        "customer_phone": "+91 98765 43210",
        "agent_phone": AGENT,
        "purpose": purpose,
        "preferred_time": MONDAY_1030_IST,
        "context": { "lead_id": 7, "note": "asked for a callback" },
    })
}

#[sqlx::test(migrations = false)]
async fn scheduling_a_call_answers_201_with_its_id_and_first_planned_time(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let (status, body) = call(&app, Method::POST, "/scheduled-calls", Some(request("service"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["planned_at"], "2030-01-07T05:00:00Z");
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let stored = call_row(&pool, id).await;
    assert_eq!(
        (stored.customer_phone.as_str(), stored.status.as_str(), stored.max_attempts),
        (CUSTOMER, "scheduled", 3)
    );
    assert_eq!(stored.context["lead_id"], 7);
    let (_, run_at) = queued_attempt(&pool, id, 1).await.expect("first attempt queued");
    assert_eq!(run_at.to_rfc3339(), "2030-01-07T05:00:00+00:00");
}

#[sqlx::test(migrations = false)]
async fn a_promotional_request_outside_the_window_is_planned_for_its_opening(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let mut body = request("promotional");
    body["preferred_time"] = json!("2030-01-07T22:30:00+05:30");
    let (status, answer) = call(&app, Method::POST, "/scheduled-calls", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(answer["planned_at"], "2030-01-08T03:30:00Z", "09:00 IST the next day");
}

#[sqlx::test(migrations = false)]
async fn an_invalid_request_is_422_naming_the_field(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let cases = [
        ("customer_phone", json!("98765 43210")),
        ("purpose", json!("marketing")),
        ("preferred_time", json!("tomorrow")),
        ("max_attempts", json!(0)),
        ("retry", json!({ "initial_delay_s": 300, "multiplier": 0.5, "max_delay_s": 3600 })),
        ("retry", json!({ "initial_delay_s": 600, "multiplier": 2, "max_delay_s": 60 })),
    ];
    let expected =
        ["customer_phone", "purpose", "preferred_time", "max_attempts", "retry.multiplier", "retry.max_delay_s"];
    for ((field, value), expected) in cases.into_iter().zip(expected) {
        let mut body = request("service");
        body[field] = value;
        let (status, answer) = call(&app, Method::POST, "/scheduled-calls", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {answer}");
        assert_eq!(answer["field"], expected);
    }
    let mut nobody = request("service");
    nobody.as_object_mut().unwrap().remove("agent_phone");
    let (status, answer) = call(&app, Method::POST, "/scheduled-calls", Some(nobody)).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("agent_id")));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_calls").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = false)]
async fn an_unknown_agent_or_department_or_two_targets_are_422_naming_the_field(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let department = crate::inbound::world::department(&pool, "sales", "round_robin", None, 60).await;
    let cases = [
        (json!({ "agent_id": 999 }), "agent_id"),
        (json!({ "department_id": 999 }), "department_id"),
        (json!({ "agent_id": 1, "department_id": department }), "department_id"),
        (json!({ "department_id": department, "agent_phone": AGENT }), "agent_phone"),
    ];
    for (whom, field) in cases {
        let mut body = request("service");
        body.as_object_mut().unwrap().remove("agent_phone");
        body.as_object_mut().unwrap().extend(whom.as_object().unwrap().clone());
        let (status, answer) = call(&app, Method::POST, "/scheduled-calls", Some(body)).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{answer}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_calls").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = false)]
async fn a_call_for_a_department_or_an_agent_stores_whom_it_reaches(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let department = crate::inbound::world::department(&pool, "sales", "round_robin", None, 60).await;
    let agent = crate::inbound::world::agent(&pool, department, AGENT, &[], 1).await;
    let mut stored = Vec::new();
    let whoms =
        [json!({ "department_id": department }), json!({ "department": "sales" }), json!({ "agent_id": agent })];
    for whom in whoms {
        let mut body = request("service");
        body.as_object_mut().unwrap().remove("agent_phone");
        body.as_object_mut().unwrap().extend(whom.as_object().unwrap().clone());
        let (status, answer) = call(&app, Method::POST, "/scheduled-calls", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let (_, detail) =
            call(&app, Method::GET, &format!("/scheduled-calls/{}", answer["id"].as_str().unwrap()), None).await;
        stored.push((detail["department_id"].as_i64(), detail["department"].clone(), detail["agent_id"].as_i64()));
    }
    assert_eq!(
        stored,
        [
            (Some(department), json!("sales"), None),
            (Some(department), json!("sales"), None),
            (None, Value::Null, Some(agent))
        ]
    );
    let mut unknown = request("service");
    unknown.as_object_mut().unwrap().remove("agent_phone");
    unknown.as_object_mut().unwrap().insert("department".into(), json!("marketing"));
    let (status, answer) = call(&app, Method::POST, "/scheduled-calls", Some(unknown)).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("department")), "{answer}");
}

#[sqlx::test(migrations = false)]
async fn the_detail_shows_every_attempt_with_its_outcome(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let (_, created) = call(&app, Method::POST, "/scheduled-calls", Some(request("transactional"))).await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let (job, run_at) = queued_attempt(&pool, id, 1).await.unwrap();
    let clock = TestClock::at(run_at);
    run(&pool, &ports(FakePhone::answering([]), clock, Provider::Exotel), job).await.unwrap();
    let attempt = attempts(&pool, id).await.pop().unwrap();
    let mut tx = pool.begin().await.unwrap();
    record_outcome(&mut tx, attempt.id, &Report::Call("no-answer"), run_at + chrono::TimeDelta::seconds(40))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (status, detail) = call(&app, Method::GET, &format!("/scheduled-calls/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "scheduled");
    assert_eq!(detail["last_error"], "attempt 1: no-answer");
    let listed = detail["attempts"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["number"].as_i64(), listed[0]["outcome"].as_str()), (Some(1), Some("no-answer")));
    assert_eq!(listed[0]["id"], attempt.id.to_string());

    let (missing, _) = call(&app, Method::GET, &format!("/scheduled-calls/{}", Uuid::now_v7()), None).await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = false)]
async fn the_list_filters_by_status_purpose_and_date(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    call(&app, Method::POST, "/scheduled-calls", Some(request("service"))).await;
    let (_, promotional) = call(&app, Method::POST, "/scheduled-calls", Some(request("promotional"))).await;
    let mut later = request("service");
    later["preferred_time"] = json!("2030-02-04T10:30:00+05:30");
    call(&app, Method::POST, "/scheduled-calls", Some(later)).await;
    let promotional_id = promotional["id"].as_str().unwrap();
    call(&app, Method::POST, &format!("/scheduled-calls/{promotional_id}/cancel"), None).await;

    let count = |body: Value| body["scheduled_calls"].as_array().unwrap().len();
    assert_eq!(count(call(&app, Method::GET, "/scheduled-calls", None).await.1), 3);
    assert_eq!(count(call(&app, Method::GET, "/scheduled-calls?purpose=service", None).await.1), 2);
    assert_eq!(count(call(&app, Method::GET, "/scheduled-calls?date=2030-01-07", None).await.1), 2);
    let (_, cancelled) = call(&app, Method::GET, "/scheduled-calls?status=cancelled", None).await;
    assert_eq!(cancelled["scheduled_calls"][0]["id"], promotional_id);
    let (status, bad) = call(&app, Method::GET, "/scheduled-calls?date=07-01-2030", None).await;
    assert_eq!((status, bad["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("date")));
}

#[sqlx::test(migrations = false)]
async fn cancel_answers_200_then_409_once_ended_and_stats_count_it(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let (_, created) = call(&app, Method::POST, "/scheduled-calls", Some(request("service"))).await;
    call(&app, Method::POST, "/scheduled-calls", Some(request("service"))).await;
    let path = format!("/scheduled-calls/{}/cancel", created["id"].as_str().unwrap());
    let (first, body) = call(&app, Method::POST, &path, None).await;
    assert_eq!((first, body["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (second, _) = call(&app, Method::POST, &path, None).await;
    assert_eq!(second, StatusCode::CONFLICT);
    let (unknown, _) = call(&app, Method::POST, &format!("/scheduled-calls/{}/cancel", Uuid::now_v7()), None).await;
    assert_eq!(unknown, StatusCode::NOT_FOUND);

    let (status, stats) = call(&app, Method::GET, "/stats/scheduled-calls", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (stats["scheduled_calls"]["cancelled"].as_i64(), stats["scheduled_calls"]["scheduled"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["scheduled_calls"]["completed"], 0);
}

#[sqlx::test(migrations = false)]
async fn the_calling_policy_round_trips_and_one_without_open_time_is_refused(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let (status, defaults) = call(&app, Method::GET, "/calling-policy", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(defaults["default"]["timezone"], "Asia/Kolkata");
    assert_eq!(defaults["default"]["promotional_hours"], json!({ "open": "09:00:00", "close": "21:00:00" }));

    let policy = json!({
        "default": { "weekends_allowed": false, "holidays": ["2030-01-07"] },
        "overrides": { "transactional": { "business_hours": { "mon": { "open": "07:00", "close": "23:00" } }, "end_buffer_minutes": 0 } },
    });
    let (status, saved) = call(&app, Method::PUT, "/calling-policy", Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (_, read_back) = call(&app, Method::GET, "/calling-policy", None).await;
    assert_eq!(read_back, saved);
    assert_eq!(read_back["overrides"]["transactional"]["business_hours"]["tue"], Value::Null);

    // The holiday moves a Monday request to Tuesday.
    let (_, scheduled) = call(&app, Method::POST, "/scheduled-calls", Some(request("service"))).await;
    assert_eq!(scheduled["planned_at"], "2030-01-08T03:30:00Z");

    let closed = json!({ "default": { "business_hours": { "sat": { "open": "09:00", "close": "18:00" } }, "weekends_allowed": false } });
    let (status, refused) = call(&app, Method::PUT, "/calling-policy", Some(closed)).await;
    assert_eq!((status, refused["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("default.business_hours")));
    let no_promotional_time =
        json!({ "overrides": { "promotional": { "promotional_hours": { "open": "21:00", "close": "22:00" } } } });
    let (status, refused) = call(&app, Method::PUT, "/calling-policy", Some(no_promotional_time)).await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("overrides.promotional.business_hours"))
    );
    let (status, refused) =
        call(&app, Method::PUT, "/calling-policy", Some(json!({ "default": { "timezone": "Mars/Base" } }))).await;
    assert_eq!((status, refused["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("body")));
    let (_, unchanged) = call(&app, Method::GET, "/calling-policy", None).await;
    assert_eq!(unchanged, saved);
}

#[sqlx::test(migrations = false)]
async fn opt_outs_are_added_shown_and_removed_by_phone(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let path = "/opt-outs/%2B919876543210";
    let (status, _) = call(&app, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, added) = call(&app, Method::POST, path, Some(json!({ "reason": "asked on a call" }))).await;
    assert_eq!((status, added["phone"].as_str()), (StatusCode::CREATED, Some(CUSTOMER)));
    let (again, _) = call(&app, Method::POST, path, None).await;
    assert_eq!(again, StatusCode::OK);
    let (status, shown) = call(&app, Method::GET, path, None).await;
    assert_eq!((status, shown["reason"].as_str()), (StatusCode::OK, Some("asked on a call")));
    assert_eq!(call(&app, Method::DELETE, path, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, Method::DELETE, path, None).await.0, StatusCode::NOT_FOUND);
    let (status, bad) = call(&app, Method::POST, "/opt-outs/12345", None).await;
    assert_eq!((status, bad["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("phone")));
}

#[sqlx::test(migrations = false)]
async fn a_contacts_ncpr_flag_and_zone_are_set_through_the_api(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let path = "/contacts/%2B919876543210";
    let body = json!({ "timezone": "Asia/Dubai", "ncpr_registered": true });
    let (status, saved) = call(&app, Method::PUT, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!((saved["timezone"].as_str(), saved["ncpr_registered"].as_bool()), (Some("Asia/Dubai"), Some(true)));
    let (_, shown) = call(&app, Method::GET, path, None).await;
    assert_eq!(shown, saved);
    let (status, refused) = call(&app, Method::PUT, path, Some(json!({ "timezone": "Nowhere" }))).await;
    assert_eq!((status, refused["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("timezone")));
}
