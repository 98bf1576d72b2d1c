//! IP networks (CIDR): parsing, the network an address counts in, and containment.
//!
//! An address that does not parse still counts (fail closed): every such address falls in one bucket,
//! `unparsed`, which failures count in and bans hold like a network, but which holds no IP address and so
//! never reaches a firewall. IPv6 zone ids (`fe80::1%eth0`) are dropped before parsing: the address counts in
//! its /64 like any other.
//!
//! Every network is also kept as a range of 17-byte keys (a family byte, 4 or 6, then the address), so that
//! SQLite can answer "is this address in any banned network" with one indexed comparison of blobs, and so
//! that no IPv6 network (not even ::/0) can contain an IPv4 address.

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
        let written: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let max = max_prefix(written);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        // ::ffff:192.0.2.0/120 is how some tools write 192.0.2.0/24: clients in it arrive as IPv4.
        if let IpAddr::V6(v6) = written
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= 96
        {
            return Ok(Network::new(IpAddr::V4(v4), prefix - 96));
        }
        Ok(Network::new(written, prefix))
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
        let ip = key(ip);
        start <= ip && ip <= end
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Network) -> bool {
        let (a_start, a_end) = self.range();
        let (b_start, b_end) = other.range();
        a_start <= b_end && b_start <= a_end
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// First and last address, as keys (see `key`).
    pub fn range(&self) -> (Key, Key) {
        let start = key(self.addr);
        let host_bits = u32::from(max_prefix(self.addr) - self.prefix);
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let mut address = [0u8; 16];
        address.copy_from_slice(&start[1..]);
        let mut end = start;
        end[1..].copy_from_slice(&(u128::from_be_bytes(address) | span).to_be_bytes());
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

/// Parses an address as Dovecot sends it; an IPv4-mapped IPv6 address is the IPv4 address it carries, and an
/// IPv6 zone id (`%eth0`, link-local addresses only have one) is dropped.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match text.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() => IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?),
        Some(_) => return None,
        None => text.parse().ok()?,
    };
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// Where an attempt came from, as far as counting and bans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Ip(IpAddr),
    /// A non-empty address that does not parse (`01.02.03.04`, garbage).
    Unparsed,
}

impl Origin {
    /// `None` for no address at all (doveadm, local tools): such attempts count nowhere, as ever.
    pub fn of(text: &str) -> Option<Origin> {
        if text.trim().is_empty() {
            return None;
        }
        Some(parse_ip(text).map_or(Origin::Unparsed, Origin::Ip))
    }
}

/// The name of the bucket of unparseable addresses, in the failure log, the bans table and the CLI.
pub const UNPARSED: &str = "unparsed";

/// What failures count in and bans hold: a network, or the bucket of every address that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Network(Network),
    Unparsed,
}

impl Bucket {
    /// A network as `Network::parse` takes it, or `unparsed`.
    pub fn parse(text: &str) -> Result<Bucket, String> {
        if text.trim() == UNPARSED {
            return Ok(Bucket::Unparsed);
        }
        Network::parse(text).map(Bucket::Network)
    }

    /// The range of keys it holds. The unparsed bucket's is the one key of family 0, which no address has:
    /// a range query for an address never finds its ban.
    pub fn range(&self) -> (Key, Key) {
        match self {
            Bucket::Network(n) => n.range(),
            Bucket::Unparsed => ([0; 17], [0; 17]),
        }
    }

    pub fn holds(&self, origin: Origin) -> bool {
        match (self, origin) {
            (Bucket::Network(n), Origin::Ip(ip)) => n.contains(ip),
            (Bucket::Unparsed, Origin::Unparsed) => true,
            _ => false,
        }
    }

    /// The network, for what only networks have (the allowlist, the firewall).
    pub fn network(&self) -> Option<Network> {
        match self {
            Bucket::Network(n) => Some(*n),
            Bucket::Unparsed => None,
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bucket::Network(n) => n.fmt(f),
            Bucket::Unparsed => f.write_str(UNPARSED),
        }
    }
}

/// An address as a sortable key: the family (4 or 6), then the address right-aligned in 16 bytes.
pub type Key = [u8; 17];

pub fn key(ip: IpAddr) -> Key {
    let mut key = [0u8; 17];
    match ip {
        IpAddr::V4(a) => {
            key[0] = 4;
            key[13..].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            key[0] = 6;
            key[1..].copy_from_slice(&a.octets());
        }
    }
    key
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
    fn no_ipv6_network_contains_an_ipv4_address() {
        for v6 in ["::/0", "::/64", "::/96"] {
            let n = Network::parse(v6).expect("v6");
            assert!(!n.contains(ip("203.0.113.5")), "{v6}");
            assert!(
                !n.overlaps(&Network::parse("203.0.113.0/24").expect("v4")),
                "{v6}"
            );
        }
        assert!(
            Network::parse("::/0")
                .expect("all")
                .contains(ip("2001:db8::1"))
        );
    }

    #[test]
    fn a_mapped_network_is_the_ipv4_network_it_carries() {
        let n = Network::parse("::ffff:192.0.2.0/120").expect("mapped");
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.9")));
    }

    #[test]
    fn overlap_is_any_shared_address() {
        let net = |s| Network::parse(s).expect("net");
        assert!(net("10.0.0.0/8").overlaps(&net("10.1.2.3")));
        assert!(net("10.1.2.3").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.0.0.0/8").overlaps(&net("11.0.0.0/8")));
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
    fn a_zone_id_is_dropped_and_the_address_counts_in_its_64() {
        assert_eq!(ip("fe80::1%eth0"), ip("fe80::1"));
        assert_eq!(ip("[fe80::1%2]"), ip("fe80::1"));
        assert_eq!(parse_ip("fe80::1%"), None);
        assert_eq!(parse_ip("192.0.2.1%eth0"), None, "IPv4 has no zones");
        assert_eq!(
            Network::containing(ip("fe80::1:2%eth0"), 32, 64).to_string(),
            "fe80::/64"
        );
    }

    #[test]
    fn unparseable_addresses_share_one_bucket_that_holds_no_address() {
        for garbage in ["01.02.03.04", "banana", "1.2.3.4.5", "::g"] {
            assert_eq!(Origin::of(garbage), Some(Origin::Unparsed), "{garbage}");
        }
        assert_eq!(Origin::of(""), None);
        assert_eq!(Origin::of("  "), None);
        let bucket = Bucket::parse("unparsed").expect("bucket");
        assert_eq!(bucket.to_string(), "unparsed");
        assert!(bucket.holds(Origin::Unparsed));
        assert!(!bucket.holds(Origin::Ip(ip("0.0.0.0"))));
        let (start, end) = bucket.range();
        for any in ["0.0.0.0", "::", "255.255.255.255"] {
            assert!(!(start <= key(ip(any)) && key(ip(any)) <= end), "{any}");
        }
        assert!(
            !Bucket::parse("0.0.0.0/0")
                .expect("all")
                .holds(Origin::Unparsed)
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
