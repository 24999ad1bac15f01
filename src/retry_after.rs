//! How long the other side asked us to wait: `retry-after-ms` (OpenAI), then
//! `Retry-After` as seconds or an HTTP date (RFC 9110's three forms); never
//! more than [`MAX_WAIT`]. The one parser every outside client uses: the
//! providers' REST APIs, recording downloads, OpenAI and the CRM.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The longest wait we honour: a server asking for hours (or a bad clock in
/// an HTTP date) must not park a job that long; past this the job comes back
/// after 10 minutes and asks again.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

pub fn from_headers(headers: &HeaderMap) -> Option<Duration> {
    asked(headers).map(|wait| wait.min(MAX_WAIT))
}

fn asked(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) =
        header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms.min(MAX_WAIT.as_secs_f64() * 1000.0) / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    (http_date(value)? - chrono::Utc::now()).to_std().ok()
}

/// An HTTP date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or the
/// obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms that recipients must still accept.
fn http_date(value: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc2822(value) {
        return Some(at.to_utc());
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .into_iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "7")]);
        assert_eq!(from_headers(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn seconds_and_http_dates_are_understood() {
        assert_eq!(from_headers(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let wait = from_headers(&headers(&[("retry-after", &later)])).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(from_headers(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn the_obsolete_http_date_forms_are_understood() {
        let later = chrono::Utc::now() + chrono::Duration::seconds(120);
        for form in ["%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
            let value = later.format(form).to_string();
            let wait = from_headers(&headers(&[("retry-after", &value)])).expect(&value);
            assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{value}: {wait:?}");
        }
    }

    #[test]
    fn long_waits_are_capped_at_ten_minutes() {
        assert_eq!(from_headers(&headers(&[("retry-after", "86400")])), Some(MAX_WAIT));
        assert_eq!(from_headers(&headers(&[("retry-after-ms", "1e300")])), Some(MAX_WAIT));
        let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc2822();
        assert_eq!(from_headers(&headers(&[("retry-after", &tomorrow)])), Some(MAX_WAIT));
        assert_eq!(from_headers(&headers(&[("retry-after", "600")])), Some(MAX_WAIT));
    }
}
