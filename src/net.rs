//! IP networks (CIDR): parsing, the network an address counts in, and containment.
//!
//! Every network is also kept as a 16-byte range (IPv4 inside ::ffff:0:0/96), so that SQLite can answer
//! "is this address in any banned network" with one indexed comparison of blobs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a single host). Host bits are cleared.
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = parse_ip(addr)
            .ok_or_else(|| format!("{text:?} is not an IP address or CIDR network"))?;
        let max = max_prefix(addr);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Network::new(addr, prefix))
    }

    pub fn new(addr: IpAddr, prefix: u8) -> Network {
        let prefix = prefix.min(max_prefix(addr));
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Network { addr, prefix }
    }

    /// The network an address counts in: /32 and /64 by default, so one IPv6 host cannot dodge a ban by
    /// hopping through its own /64.
    pub fn containing(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> Network {
        match ip {
            IpAddr::V4(_) => Network::new(ip, v4_prefix),
            IpAddr::V6(_) => Network::new(ip, v6_prefix),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (start, end) = self.range();
        let ip = bytes16(ip);
        start <= ip && ip <= end
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// First and last address, as 16 bytes each.
    pub fn range(&self) -> ([u8; 16], [u8; 16]) {
        let start = bytes16(self.addr);
        let host_bits = u32::from(max_prefix(self.addr) - self.prefix);
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let end = (u128::from_be_bytes(start) | span).to_be_bytes();
        (start, end)
    }

    /// The form nftables and people read: a bare address for a single host, CIDR otherwise.
    pub fn display_compact(&self) -> String {
        if self.prefix == max_prefix(self.addr) {
            self.addr.to_string()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses an address as Dovecot sends it; an IPv4-mapped IPv6 address is the IPv4 address it carries.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

pub fn bytes16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).expect("ip")
    }

    #[test]
    fn networks_parse_and_clear_host_bits() {
        assert_eq!(
            Network::parse("192.0.2.77/24").expect("v4").to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            Network::parse("192.0.2.77").expect("host").to_string(),
            "192.0.2.77/32"
        );
        assert_eq!(
            Network::parse("2001:db8:1:2:3::9/64")
                .expect("v6")
                .to_string(),
            "2001:db8:1:2::/64"
        );
        assert!(Network::parse("192.0.2.1/33").is_err());
        assert!(Network::parse("banana").is_err());
    }

    #[test]
    fn ipv6_hosts_count_per_64_by_default() {
        let a = Network::containing(ip("2001:db8:1:2::1"), 32, 64);
        let b = Network::containing(ip("2001:db8:1:2:ffff::5"), 32, 64);
        assert_eq!(a, b);
        assert!(!a.contains(ip("2001:db8:1:3::1")));
        assert_eq!(
            Network::containing(ip("192.0.2.7"), 32, 64).display_compact(),
            "192.0.2.7"
        );
    }

    #[test]
    fn mapped_ipv4_is_plain_ipv4() {
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert!(
            Network::parse("192.0.2.0/24")
                .expect("net")
                .contains(ip("::ffff:192.0.2.200"))
        );
    }

    #[test]
    fn ranges_cover_exactly_the_network() {
        let n = Network::parse("10.1.0.0/16").expect("net");
        assert!(n.contains(ip("10.1.255.255")));
        assert!(!n.contains(ip("10.2.0.0")));
        let all = Network::parse("::/0").expect("all");
        assert!(all.contains(ip("2001:db8::1")));
        assert!(
            Network::parse("0.0.0.0/0")
                .expect("all v4")
                .contains(ip("203.0.113.9"))
        );
        assert!(
            !Network::parse("0.0.0.0/0")
                .expect("all v4")
                .contains(ip("2001:db8::1"))
        );
    }
}
