//! Query strings parsed at the edge: a parameter that does not parse (`?agent_id=abc`)
//! is a 422 naming it, like every other validation error of the API.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// `Query<T>` whose rejection is an [`ApiError::Validation`] on the parameter serde names.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(invalid(&rejection.body_text())),
        }
    }
}

/// axum says `Failed to deserialize query string: agent_id: invalid digit found in string`.
fn invalid(text: &str) -> ApiError {
    let detail = text.split_once(": ").map_or(text, |(_, detail)| detail);
    match detail.split_once(": ") {
        Some((field, message)) if !field.contains(' ') => ApiError::validation(field, message),
        _ => ApiError::validation("query", detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_parameter_serde_names() {
        let error = invalid("Failed to deserialize query string: agent_id: invalid digit found in string");
        assert!(matches!(error, ApiError::Validation { ref field, .. } if field == "agent_id"), "{error:?}");
        let error = invalid("Failed to deserialize query string: missing field `q`");
        assert!(matches!(error, ApiError::Validation { ref field, .. } if field == "query"), "{error:?}");
    }
}
