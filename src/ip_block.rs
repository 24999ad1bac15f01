//! Allow-lists of client addresses: an address or a CIDR block, parsed from
//! settings (`EXOTEL_ALLOWED_IPS`) and matched against IPv4, IPv6 and
//! IPv4-mapped IPv6 addresses.

use std::net::IpAddr;

/// An address or a CIDR block (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u32,
}

impl IpBlock {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (addr, prefix) = raw.trim().split_once('/').map_or((raw.trim(), None), |(a, p)| (a, Some(p)));
        let network: IpAddr = addr.parse().map_err(|_| format!("{raw:?} is not an IP address or CIDR block"))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse().ok().filter(|p| *p <= width).ok_or_else(|| format!("{raw:?} has a bad prefix"))?,
        };
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.into(), 128, self.prefix) == masked(ip.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u32, prefix: u32) -> u128 {
    if prefix == 0 { 0 } else { bits >> (width - prefix) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_wider_than_the_address_is_refused() {
        assert!(IpBlock::parse("10.0.0.0/33").is_err());
        assert!(IpBlock::parse("2001:db8::/129").is_err());
        assert!(IpBlock::parse("10.0.0.0/8").is_ok());
    }
}
