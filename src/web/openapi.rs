//! `GET /api/openapi.json`: the OpenAPI 3.1 document of `/api`, generated
//! from the handlers' `#[utoipa::path]` annotations and their types, with the
//! one error shape every refusal has. The answers built as JSON values (leads,
//! scheduled calls, policies, job stats) are described by the schemas here.

use std::collections::BTreeMap;

use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::AppState;

pub fn routes() -> Router<AppState> {
    let document = document();
    Router::new().route("/api/openapi.json", get(|| async move { Json(document) }))
}

/// The document as JSON. utoipa 5 writes a link's `operationId` as
/// `operation_id` (its `Link` has no camelCase rename), which no client
/// understands; the links of responses are put right here.
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    let links = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses").and_then(serde_json::Value::as_object_mut))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(serde_json::Value::as_object_mut))
        .flat_map(|links| links.values_mut())
        .filter_map(serde_json::Value::as_object_mut);
    for link in links {
        if let Some(id) = link.remove("operation_id") {
            link.insert("operationId".into(), id);
        }
    }
    document
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard operator API",
        description = "Agents, departments, IVR menus, calls, recordings, transcripts, leads, scheduled calls, \
                       calling policy, opt-outs and queue statistics. Every request needs `Authorization: Bearer \
                       <one of API_TOKENS>`. Every refusal is JSON: `{\"error\": ...}`, and a 422 also names the \
                       `field` and says what is wrong with it in `message`."
    ),
    paths(
        super::api::agents::create, super::api::agents::list, super::api::agents::read, super::api::agents::update,
        super::api::agents::remove, super::api::agents::set_status,
        super::api::departments::create, super::api::departments::list, super::api::departments::read,
        super::api::departments::replace, super::api::departments::remove,
        super::api::ivr_menus::create, super::api::ivr_menus::list, super::api::ivr_menus::read,
        super::api::ivr_menus::replace, super::api::ivr_menus::remove,
        super::api::calls::list, super::api::calls::read,
        super::api::stats::call_stats, super::api::stats::queue_stats,
        super::recordings_api::recording, super::recordings_api::reprocess,
        super::transcripts_api::search,
        super::leads_api::list, super::leads_api::show,
        super::scheduled_calls_api::create, super::scheduled_calls_api::list, super::scheduled_calls_api::show,
        super::scheduled_calls_api::cancel, super::scheduled_calls_api::stats,
        super::calling_policy_api::show, super::calling_policy_api::replace,
        super::contacts_api::opt_out, super::contacts_api::show_opt_out, super::contacts_api::remove_opt_out,
        super::contacts_api::show_contact, super::contacts_api::save_contact,
        super::jobs_api::stats,
    ),
    components(schemas(ErrorBody, ValidationError)),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every refusal: what was wrong, in words.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A 422: the field that is wrong and why (`error` is `field: message`).
#[derive(Serialize, ToSchema)]
pub struct ValidationError {
    pub error: String,
    pub field: String,
    pub message: String,
}

/// The refusals any operation may answer: 400 (the body is not JSON, or a
/// path parameter is malformed), 401, 413 (a body over `BODY_LIMIT_BYTES`),
/// 422 (naming the field) and 503 (the
/// database is unreachable or the web is shedding load: retry later).
pub struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("400", "The body is not JSON, or a path parameter is malformed.", "ErrorBody"),
            ("401", "Missing or unknown bearer token.", "ErrorBody"),
            ("413", "The body is larger than BODY_LIMIT_BYTES.", "ErrorBody"),
            ("422", "A field or parameter is invalid: `field` names it.", "ValidationError"),
            ("503", "The database is unreachable or the web is shedding load: retry later.", "ErrorBody"),
        ]
        .into_iter()
        .map(|(status, description, schema)| (status.to_owned(), json_response(description, schema)))
        .collect()
    }
}

/// 404: the thing named in the path does not exist.
pub struct Missing;

impl utoipa::IntoResponses for Missing {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([("404".to_owned(), json_response("Not found.", "ErrorBody"))])
    }
}

fn json_response(description: &str, schema: &str) -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// Jobs per kind and state, as operators see them.
#[derive(Serialize, ToSchema)]
pub struct JobStats {
    pub counts: Vec<KindStateCount>,
    /// Seconds the oldest job due now has waited; null when none waits.
    pub oldest_pending_age_s: Option<f64>,
    pub finished_last_5m: i64,
}

#[derive(Serialize, ToSchema)]
pub struct KindStateCount {
    pub kind: String,
    /// pending, scheduled, running, retrying, dead or done.
    pub state: String,
    pub count: i64,
}

/// Waits between attempts of a scheduled call: `initial_delay_s * multiplier^(n-1)`, +-20%, capped.
#[derive(Serialize, ToSchema)]
pub struct RetrySettings {
    #[schema(minimum = 1, maximum = 86400)]
    pub initial_delay_s: i32,
    #[schema(minimum = 1, maximum = 10)]
    pub multiplier: f64,
    #[schema(maximum = 604800)]
    pub max_delay_s: i32,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledCall {
    pub id: Uuid,
    pub customer_phone: String,
    pub agent_phone: Option<String>,
    pub department: Option<String>,
    pub agent_id: Option<i64>,
    pub department_id: Option<i64>,
    pub agent_wait_started_at: Option<DateTime<Utc>>,
    /// transactional, service or promotional.
    pub purpose: String,
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    pub preferred_time: DateTime<Utc>,
    pub max_attempts: i32,
    pub retry_initial_delay_s: i32,
    pub retry_multiplier: f64,
    pub retry_max_delay_s: i32,
    pub status: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Attempt {
    pub id: Uuid,
    pub scheduled_call_id: Uuid,
    pub number: i32,
    pub dialed_at: DateTime<Utc>,
    pub provider_call_sid: Option<String>,
    pub agent_id: Option<i64>,
    /// What the legs did (`completed` only when both talked; `busy`, `no-answer`, `voicemail`,
    /// `agent-no-answer`...), `rejected`, `no-agent` or `no-outcome`; null while awaited.
    pub outcome: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// A scheduled call with every attempt so far.
#[derive(Serialize, ToSchema)]
pub struct ScheduledCallDetail {
    #[serde(flatten)]
    pub call: ScheduledCall,
    pub attempts: Vec<Attempt>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledCalls {
    pub scheduled_calls: Vec<ScheduledCall>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledCallCreated {
    pub id: Uuid,
    pub status: String,
    /// The first moment the calling window allows.
    pub planned_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledCallCancelled {
    pub id: Uuid,
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledCallStats {
    /// Scheduled calls per status (every status, 0 included).
    pub scheduled_calls: BTreeMap<String, i64>,
    /// Attempts per outcome (`pending` while awaited).
    pub attempts: BTreeMap<String, i64>,
}

/// The default policy and the purposes that differ from it.
#[derive(Serialize, ToSchema)]
pub struct PolicySet {
    #[schema(value_type = Object)]
    pub default: serde_json::Value,
    #[schema(value_type = Object)]
    pub overrides: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct OptOut {
    pub phone: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct Contact {
    pub phone: String,
    pub timezone: Option<String>,
    pub ncpr_registered: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct Lead {
    pub id: i64,
    pub phone: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub budget_min_inr: Option<i64>,
    pub budget_max_inr: Option<i64>,
    pub preferred_locations: Vec<String>,
    pub property_type: Option<String>,
    pub property_size: Option<String>,
    pub purpose: Option<String>,
    pub timeline: Option<String>,
    pub financing_needed: Option<bool>,
    pub score: Option<i32>,
    pub hot: bool,
    pub sentiment: Option<String>,
    pub summary: Option<String>,
    pub next_best_action: Option<String>,
    pub follow_up_due_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Leads {
    pub leads: Vec<Lead>,
    /// Pass as `before` for the next page; null on the last one.
    pub next_before: Option<i64>,
}

/// A lead with the calls it came from.
#[derive(Serialize, ToSchema)]
pub struct LeadWithCalls {
    #[serde(flatten)]
    pub lead: Lead,
    pub calls: Vec<LeadCall>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadCall {
    pub call_sid: String,
    pub insight_id: i64,
    pub linked_at: String,
    pub crm_delivered_at: Option<String>,
    pub lead_score: Option<i32>,
    pub sentiment: Option<String>,
    pub summary: Option<String>,
    pub cost_micro_usd: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Reprocessing {
    pub call_sid: String,
    /// The step the chain starts again from.
    pub from: String,
    pub jobs_enqueued: i64,
}
