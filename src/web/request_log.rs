//! One log line per request (method, path, status, time), its path fit for a
//! log: the template of the route that matched (`/api/contacts/{phone}`,
//! `/webhooks/exotel/{secret}/status`), never the raw path, which can carry
//! Exotel's secret or a phone number. A path no route matched (a mistyped
//! webhook URL) is logged with every segment that is not a plain word
//! masked, and the segment after `exotel` masked whatever it is.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_owned(),
        None => masked_path(request.uri().path()),
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, elapsed_ms, "request");
    } else {
        tracing::debug!(%method, %path, status, elapsed_ms, "request");
    }
    response
}

/// The longest segment shown as it is: longer than any route's own words,
/// shorter than any secret a setting accepts (32 characters).
const LONGEST_SHOWN: usize = 24;

/// `path` with every segment that is not a plain word (letters, `-`, `_`,
/// `.`; no digits, so no phone number or id) shown as `***`, and the segment
/// after an `exotel` segment (the webhook secret's place) masked too.
pub fn masked_path(path: &str) -> String {
    let mut after_exotel = false;
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let plain = segment.len() <= LONGEST_SHOWN
                && segment.bytes().all(|b| b.is_ascii_alphabetic() || b"-_.".contains(&b));
            let shown = if (plain && !after_exotel) || segment.is_empty() { segment } else { "***" };
            after_exotel = segment.eq_ignore_ascii_case("exotel");
            shown
        })
        .collect();
    segments.join("/")
}

#[cfg(test)]
mod tests {
    use super::masked_path;

    #[test]
    fn a_mistyped_exotel_path_never_shows_its_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        assert_eq!(masked_path(&format!("/webhooks/exotel/{secret}/stauts")), "/webhooks/exotel/***/stauts");
        assert_eq!(masked_path(&format!("/webhooks/exotel//{secret}/status")), "/webhooks/exotel//***/status");
        assert_eq!(masked_path(&format!("/webhooks/Exotel/{secret}")), "/webhooks/Exotel/***");
        assert_eq!(masked_path(&format!("/webhook/exotl/{secret}/voice")), "/webhook/exotl/***/voice");
        assert_eq!(masked_path("/webhooks/exotel/short/voice"), "/webhooks/exotel/***/voice");
        assert_eq!(masked_path("/webhooks/exotel/%73ecret/voice"), "/webhooks/exotel/***/voice");
    }

    #[test]
    fn phone_numbers_and_ids_in_paths_are_masked() {
        assert_eq!(masked_path("/api/opt-out/+919876543210"), "/api/opt-out/***");
        assert_eq!(masked_path("/api/contact/%2B919876543210/x"), "/api/contact/***/x");
        assert_eq!(masked_path("/api/calls/CA0123/recordings"), "/api/calls/***/recordings");
        assert_eq!(masked_path("/webhooks/twilio/voice"), "/webhooks/twilio/voice");
    }
}
