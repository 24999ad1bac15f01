//! Which network addresses a recording may come from: public ones only, so a
//! recording URL cannot reach the worker's own network (a database, the
//! instance metadata service at 169.254.169.254). Host names are resolved
//! here, every address checked, and the connection made only to the
//! addresses checked: a name that answers one address to a check and another
//! to the connection (DNS rebinding) has no second answer to give.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether loopback addresses are reachable: only the demo's and the tests'
/// simulators need them (`RECORDING_FETCH_ALLOW_LOOPBACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loopback {
    Refused,
    Allowed,
}

impl Loopback {
    /// True for an address a recording may be fetched from.
    pub fn reachable(self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_public(ip) || (self == Self::Allowed && ip.is_loopback())
    }
}

/// An address on the public internet: not private, loopback, link-local,
/// unspecified, shared (carrier NAT), multicast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240; // reserved
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address that decides.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || segments[0] == 0x2001 && segments[1] == 0x0db8; // documentation
    !special
}

/// A name that resolved to an address recordings may not come from.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, a private, loopback or link-local address")]
pub struct ForbiddenAddress {
    pub host: String,
    pub ip: IpAddr,
}

/// The recording client's resolver: the system's answer, refused whole when
/// any address in it is not [`Loopback::reachable`].
pub struct CheckedResolver {
    pub loopback: Loopback,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let loopback = self.loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(forbidden) = addrs.iter().find(|a| !loopback.reachable(a.ip())) {
                return Err(Box::new(ForbiddenAddress { host, ip: forbidden.ip() }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The [`ForbiddenAddress`] somewhere in `error`'s chain, if that is why it failed.
pub fn forbidden_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ForbiddenAddress> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(forbidden) = e.downcast_ref::<ForbiddenAddress>() {
            return Some(forbidden);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip(internal)), "{internal}");
        }
        for public in ["52.84.1.1", "13.235.1.1", "2600:1f18::1", "64:ff9b::3454:101"] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn loopback_is_reachable_only_when_allowed_and_private_never() {
        assert!(!Loopback::Refused.reachable(ip("127.0.0.1")));
        assert!(Loopback::Allowed.reachable(ip("127.0.0.1")));
        assert!(Loopback::Allowed.reachable(ip("::1")));
        assert!(!Loopback::Allowed.reachable(ip("10.0.0.1")));
        assert!(!Loopback::Allowed.reachable(ip("169.254.169.254")));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
        let resolve = |loopback| CheckedResolver { loopback }.resolve("localhost".parse().unwrap());
        let error = resolve(Loopback::Refused).await.err().expect("localhost is loopback");
        let forbidden = forbidden_in(error.as_ref()).expect("a ForbiddenAddress");
        assert_eq!(forbidden.host, "localhost");
        assert!(forbidden.ip.is_loopback(), "{forbidden}");
        let addrs: Vec<_> = resolve(Loopback::Allowed).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
