//! Which recording URLs are fetched, and which see the account's
//! credentials. A URL is fetched over https from its provider's own hosts:
//! Twilio's API (`api.twilio.com`, and its regional `api.*.twilio.com`);
//! Exotel's hosts (`exotel.com`, `exotel.in` and their subdomains, such as
//! `recordings.exotel.com`) and the S3 storage its recording links point at
//! (`*.amazonaws.com` with an `s3` label, as Exotel's network requirements
//! list). An address given as a number must be public; a loopback one is
//! taken, over http too, only when [`Loopback::Allowed`] (the demo's and the
//! tests' simulators). Credentials go only to the provider's API hosts over
//! https (Twilio's simulator on loopback stands in for its API).

use std::net::IpAddr;

use url::{Host, Url};

use super::addresses::{Loopback, is_public};
use switchboard_jobs::ports::Provider;

/// Why `url` is not fetched for `provider`, or `None` when it may be.
/// The reason names the host, never the whole URL (Exotel's links are signed).
pub fn refusal(provider: Provider, url: &Url, loopback: Loopback) -> Option<String> {
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else { return Some("it has no host".to_owned()) };
    if let Some(ip) = literal_ip(url).filter(|ip| !is_public(*ip)) {
        return (!loopback.reachable(ip)).then(|| format!("{ip} is a private, loopback or link-local address"));
    }
    if url.scheme() != "https" {
        return Some(format!("{}, not https", url.scheme()));
    }
    match provider {
        Provider::Twilio if !is_twilio_api(host) => Some(format!("{host} is not Twilio's API host (api.twilio.com)")),
        Provider::Exotel if !(is_exotel(host) || within(host, "exotel.in") || is_s3(host)) => {
            Some(format!("{host} is not an Exotel host (exotel.com, exotel.in) or the S3 storage it uses"))
        }
        _ => None,
    }
}

/// True when `url` (already allowed by [`refusal`]) may carry `provider`'s credentials.
pub fn sees_credentials(provider: Provider, url: &Url, loopback: Loopback) -> bool {
    let host = url.host_str().unwrap_or_default();
    let https = url.scheme() == "https";
    match provider {
        Provider::Twilio => {
            (https && is_twilio_api(host))
                || literal_ip(url).is_some_and(|ip| ip.to_canonical().is_loopback() && loopback.reachable(ip))
        }
        Provider::Exotel => https && is_exotel(host),
    }
}

/// The address when the URL's host is written as one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(v4.into()),
        Host::Ipv6(v6) => Some(v6.into()),
        Host::Domain(_) => None,
    }
}

/// `host` is `domain` or one of its subdomains: not a look-alike such as `evilexotel.com`.
fn within(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain).is_some_and(|prefix| prefix.is_empty() || prefix.ends_with('.'))
}

fn is_twilio_api(host: &str) -> bool {
    host == "api.twilio.com" || (host.starts_with("api.") && within(host, "twilio.com"))
}

fn is_exotel(host: &str) -> bool {
    within(host, "exotel.com")
}

/// An S3 endpoint: `s3.amazonaws.com`, `s3-ap-southeast-1.amazonaws.com`,
/// `s3.ap-south-1.amazonaws.com`, `bucket.s3.amazonaws.com` and the like.
fn is_s3(host: &str) -> bool {
    host.strip_suffix(".amazonaws.com")
        .is_some_and(|rest| rest.split('.').any(|label| label == "s3" || label.starts_with("s3-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(provider: Provider, url: &str, loopback: Loopback) -> Option<String> {
        refusal(provider, &Url::parse(url).unwrap(), loopback)
    }

    #[test]
    fn twilio_recordings_come_only_from_its_api_over_https() {
        let twilio = |url| refused(Provider::Twilio, url, Loopback::Refused);
        assert_eq!(twilio("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.mp3"), None);
        assert_eq!(twilio("https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.mp3"), None);
        assert_eq!(twilio("http://api.twilio.com/r").as_deref(), Some("http, not https"));
        assert_eq!(
            twilio("https://evil.example/r").as_deref(),
            Some("evil.example is not Twilio's API host (api.twilio.com)")
        );
        assert!(twilio("https://api.twilio.com.evil.example/r").is_some());
        assert!(twilio("https://s3.amazonaws.com/r").is_some());
    }

    #[test]
    fn exotel_recordings_come_from_its_hosts_or_s3() {
        let exotel = |url| refused(Provider::Exotel, url, Loopback::Refused);
        for allowed in [
            "https://recordings.exotel.com/exotelrecordings/acme/c.mp3",
            "https://api.in.exotel.com/v1/Accounts/a/Calls/c.mp3",
            "https://my.exotel.in/r.mp3",
            "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/acme/c.mp3",
            "https://s3.ap-south-1.amazonaws.com/exotelrecordings/leg.wav",
            "https://exotelrecordings.s3.amazonaws.com/acme/c.mp3",
        ] {
            assert_eq!(exotel(allowed), None, "{allowed}");
        }
        for refused in [
            "https://evilexotel.com/r.mp3",
            "https://exotel.com.evil.example/r.mp3",
            "https://ec2-1-2-3-4.compute.amazonaws.com/r.mp3",
            "https://amazonaws.com/r.mp3",
            "http://recordings.exotel.com/r.mp3",
        ] {
            assert!(exotel(refused).is_some(), "{refused}");
        }
    }

    #[test]
    fn internal_addresses_are_refused_and_loopback_only_when_allowed() {
        for provider in [Provider::Twilio, Provider::Exotel] {
            for (url, ip) in [
                ("https://10.0.0.5/r.mp3", "10.0.0.5"),
                ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
                ("https://[::1]/r.mp3", "::1"),
                ("http://127.0.0.1:8080/r.mp3", "127.0.0.1"),
            ] {
                let reason = refused(provider, url, Loopback::Refused);
                assert_eq!(reason, Some(format!("{ip} is a private, loopback or link-local address")), "{url}");
            }
            assert_eq!(refused(provider, "http://127.0.0.1:8080/r.mp3", Loopback::Allowed), None);
            assert!(refused(provider, "http://10.0.0.5/r.mp3", Loopback::Allowed).is_some());
            assert!(
                refused(provider, "https://8.8.8.8/r.mp3", Loopback::Allowed).is_some(),
                "a public number is no host"
            );
        }
    }

    #[test]
    fn credentials_go_only_to_the_providers_api_over_https() {
        let sees = |provider, url| sees_credentials(provider, &Url::parse(url).unwrap(), Loopback::Refused);
        assert!(sees(Provider::Twilio, "https://api.twilio.com/r"));
        assert!(sees(Provider::Exotel, "https://api.exotel.com/v1/Accounts/a/Calls/c.mp3"));
        assert!(sees(Provider::Exotel, "https://RECORDINGS.Exotel.com/r.mp3"));
        assert!(!sees(Provider::Exotel, "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/r.mp3"));
        assert!(!sees(Provider::Exotel, "https://my.exotel.in/r.mp3"));
        assert!(!sees(Provider::Exotel, "http://api.exotel.com/r.mp3"));
        assert!(!sees(Provider::Twilio, "http://127.0.0.1:8080/r"));
        let loopback = Url::parse("http://127.0.0.1:8080/r").unwrap();
        assert!(sees_credentials(Provider::Twilio, &loopback, Loopback::Allowed));
        assert!(!sees_credentials(Provider::Exotel, &loopback, Loopback::Allowed));
    }
}
