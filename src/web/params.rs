//! Query strings parsed at the edge: a parameter that does not parse (`?agent_id=abc`)
//! or holds a NUL (which PostgreSQL text cannot store) is a 422 naming it, like
//! every other validation error of the API.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// `Query<T>` whose rejection is an [`ApiError::Validation`] on the parameter serde names.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(name) = parameter_with_nul(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::validation(name, "must not contain NUL (U+0000)"));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(invalid(&rejection.body_text())),
        }
    }
}

/// The first parameter whose decoded name or value holds a NUL.
fn parameter_with_nul(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "\u{FFFD}"))
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

    #[test]
    fn finds_a_nul_however_it_is_encoded() {
        assert_eq!(parameter_with_nul("q=a%00b&limit=5").as_deref(), Some("q"));
        assert_eq!(parameter_with_nul("limit=5&na%00me=x").as_deref(), Some("na\u{FFFD}me"));
        assert_eq!(parameter_with_nul("q=a+b&limit=5"), None);
    }
}
