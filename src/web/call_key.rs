//! A call as the API and the console name it: `{sid}`, with `?provider=`
//! when both providers have a call of that sid (an Exotel sid may be any
//! alphanumerics, a Twilio one included). Everything about the call is then
//! looked up by (provider, sid), never by the sid alone.

use serde::Deserialize;
use sqlx::PgPool;
use switchboard_jobs::ports::Provider;

use super::ApiError;

/// `?provider=twilio|exotel`, needed only when the sid alone is ambiguous.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Which {
    /// `twilio` or `exotel`: whose call `{sid}` is.
    #[param(value_type = Option<String>)]
    pub provider: Option<Provider>,
}

/// The provider of call `sid` (a call row or a recording of it): 404 when
/// none has it, 422 on `provider` when both do and `which` does not say.
pub async fn resolve(pool: &PgPool, sid: &str, which: &Which) -> Result<Provider, ApiError> {
    let providers: Vec<Provider> = sqlx::query_scalar(
        "SELECT provider FROM (SELECT provider FROM calls WHERE call_sid = $1
                               UNION SELECT provider FROM recordings WHERE call_sid = $1) AS known
         WHERE $2::text IS NULL OR provider = $2 ORDER BY provider",
    )
    .bind(sid)
    .bind(which.provider)
    .fetch_all(pool)
    .await?;
    match providers.as_slice() {
        [] => Err(ApiError::NotFound(format!("call {sid}"))),
        [provider] => Ok(*provider),
        _ => Err(ApiError::validation("provider", format!("both providers have a call {sid}: say twilio or exotel"))),
    }
}
