//! Failures and bans: every failed login is appended to the failure log, and a policy decides which networks
//! to ban. Unlike a log watcher, mailpass knows the true outcome of each login, so it can refuse to count what
//! is not an attack:
//! - identical retries (same network, same user, same secret) count once: a phone retrying a stale password
//!   every minute is one failure, not a brute force;
//! - "second factor required" never counts: the correct main password proves the sender is the user;
//! - failures for many users from one network (spraying) count as they come;
//! - failures from addresses that do not parse count too, all in one bucket (`unparsed`, see `net.rs`), which
//!   can be banned like a network: no address escapes the policy by being malformed.
//!
//! Recording and deciding happen in one write transaction, so concurrent auth processes neither lose a failure
//! nor ban twice.

use std::net::IpAddr;

use crate::banlist;
use crate::config::BansConfig;
use crate::net::{self, Bucket, Network, Origin};
use crate::store::{BanRecord, Failure, NetworkRange, Store, StoreError};

/// The failure reason of a refused banned address.
pub const BANNED_REASON: &str = "banned";

/// The most refusals one failing login folds into the failure log (a few ms of inserts).
pub const AUTH_CHUNK: usize = 2000;

/// The refusals an admin command folds in per transaction.
const ADMIN_CHUNK: usize = 50_000;

/// The reason stored for a ban that the policy started.
pub const AUTO_REASON: &str = "too many failed logins";

pub struct Policy {
    config: BansConfig,
    allow: Vec<Network>,
}

/// A failure as the auth path or `ban record` reports it.
pub struct NewFailure<'a> {
    pub time: i64,
    pub ip: Option<&'a str>,
    pub user: &'a str,
    pub service: Option<&'a str>,
    pub reason: &'a str,
    /// Whether this kind of failure can count toward a ban at all.
    pub counts: bool,
    /// A keyed fingerprint of user + secret: identical retries have identical fingerprints.
    pub fingerprint: Option<&'a [u8]>,
}

/// What recording a failure did.
#[derive(Debug, Default)]
pub struct Recorded {
    pub counted: bool,
    /// The ban this failure started, if it was the one that crossed the threshold.
    pub ban: Option<String>,
}

impl Policy {
    pub fn new(config: &BansConfig) -> Policy {
        Policy {
            allow: config
                .allow
                .iter()
                .filter_map(|n| Network::parse(n).ok())
                .collect(),
            config: config.clone(),
        }
    }

    /// The network an address counts in.
    pub fn network_of(&self, ip: IpAddr) -> Network {
        Network::containing(ip, self.config.ipv4_prefix, self.config.ipv6_prefix)
    }

    /// What an attempt from `origin` counts in.
    pub fn bucket_of(&self, origin: Origin) -> Bucket {
        match origin {
            Origin::Ip(ip) => Bucket::Network(self.network_of(ip)),
            Origin::Unparsed => Bucket::Unparsed,
        }
    }

    /// Whether the config's allowlist holds the address (the database's is reflected in the ban list).
    pub fn allowlisted_by_config(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(ip))
    }

    /// Changes bans or the allowlist in `change` (a write transaction) and then the ban list beside the
    /// database (see `banlist.rs`): removed inside the transaction, so that neither a crash nor a failed
    /// commit can leave it holding what the database does not; written anew after the commit.
    fn change_bans<T>(
        &self,
        store: &Store,
        now: i64,
        change: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = store.immediate(|s| {
            banlist::remove(s.path()).map_err(StoreError::BanList)?;
            change(s)
        })?;
        self.write_banlist(store, now)?;
        Ok(value)
    }

    /// Writes the ban list from a fresh read of the database, under its lock, so that the last writer
    /// writes the latest state. If it cannot be written it stays absent: a missing list only costs speed.
    pub fn write_banlist(&self, store: &Store, now: i64) -> Result<(), StoreError> {
        let _lock = banlist::lock(store.path()).map_err(StoreError::BanList)?;
        let allowlist = self.allowlist(store)?;
        let bans: Vec<(Bucket, Option<i64>)> = store
            .active_bans(now)?
            .iter()
            .filter_map(|b| Some((Bucket::parse(&b.network).ok()?, b.until)))
            .filter(|(b, _)| !touches(&allowlist, b))
            .collect();
        if banlist::write(store.path(), &bans).is_err() {
            banlist::remove(store.path()).map_err(StoreError::BanList)?;
        }
        Ok(())
    }

    /// Folds everything the auth path had appended beside the database when this started into the failure
    /// log, a chunk per transaction (what banned networks append meanwhile is left for later). For admin
    /// commands, which may take their time.
    pub fn ingest_all_refusals(&self, store: &Store) -> Result<(), StoreError> {
        let mut renamed = false;
        loop {
            let chunk = self.ingest_refusals(store, ADMIN_CHUNK)?;
            renamed |= chunk.renamed;
            if !chunk.found || (chunk.finished && renamed) {
                return Ok(());
            }
        }
    }

    /// Folds at most `max_lines` refusals that the auth path appended beside the database into the failure
    /// log, and the counts of those that did not fit in it. The chunk is taken inside the write transaction,
    /// which also moves the position it ends at, so that two ingesters never take the same lines.
    pub fn ingest_refusals(
        &self,
        store: &Store,
        max_lines: usize,
    ) -> Result<banlist::Progress, StoreError> {
        let taken = store.immediate(|s| {
            let position = s.refusal_log_position()?;
            let taken =
                banlist::take(s.path(), position, max_lines).map_err(StoreError::RefusalLog)?;
            for (network, count) in &taken.unlogged {
                s.add_unlogged_refusals(network, *count)?;
            }
            s.set_refusal_log_position(taken.position)?;
            for r in &taken.refusals {
                let network = Origin::of(&r.ip).map(|o| self.bucket_of(o).to_string());
                s.record_failure(&Failure {
                    time: r.time,
                    ip: Some(&r.ip),
                    network: network.as_deref(),
                    user: &r.user,
                    service: Some(&r.service),
                    reason: BANNED_REASON,
                    fingerprint: None,
                    counted: false,
                })?;
            }
            Ok(taken)
        })?;
        let progress = taken.progress();
        banlist::done(taken);
        Ok(progress)
    }

    /// Lifts a ban; false if the network was not banned.
    pub fn lift(&self, store: &Store, network: &Bucket, now: i64) -> Result<bool, StoreError> {
        self.change_bans(store, now, |s| s.lift_ban(&network.to_string(), now))
    }

    /// Adds a network to the database's allowlist; false if it was there.
    pub fn allow(&self, store: &Store, network: Network, now: i64) -> Result<bool, StoreError> {
        let (start, end) = network.range();
        let name = network.to_string();
        self.change_bans(store, now, |s| {
            s.allow(
                &NetworkRange {
                    network: &name,
                    start: &start,
                    end: &end,
                },
                now,
            )
        })
    }

    /// Removes a network from the database's allowlist; false if it was not there.
    pub fn disallow(&self, store: &Store, network: &Network, now: i64) -> Result<bool, StoreError> {
        self.change_bans(store, now, |s| s.disallow(&network.to_string()))
    }

    fn allowlisted(&self, store: &Store, ip: IpAddr) -> Result<bool, StoreError> {
        Ok(self.allow.iter().any(|n| n.contains(ip)) || store.is_allowlisted(&net::key(ip))?)
    }

    /// Every allowlisted network: the config's and the database's.
    pub fn allowlist(&self, store: &Store) -> Result<Vec<Network>, StoreError> {
        let from_db = store.allowlist()?;
        Ok(self
            .allow
            .iter()
            .copied()
            .chain(from_db.iter().filter_map(|(n, _)| Network::parse(n).ok()))
            .collect())
    }

    /// Whether a ban of `bucket` would also shut out an allowlisted address.
    pub fn touches_allowlist(&self, store: &Store, bucket: &Bucket) -> Result<bool, StoreError> {
        Ok(touches(&self.allowlist(store)?, bucket))
    }

    /// The ban that refuses an attempt from `origin`, checked before any hashing. Allowlisted addresses are
    /// never refused; an unparseable one is refused by a ban of the unparsed bucket.
    pub fn refusal(
        &self,
        store: &Store,
        origin: Origin,
        now: i64,
    ) -> Result<Option<BanRecord>, StoreError> {
        match origin {
            Origin::Ip(ip) => match store.active_ban_containing(&net::key(ip), now)? {
                Some(ban) if !self.allowlisted(store, ip)? => Ok(Some(ban)),
                _ => Ok(None),
            },
            Origin::Unparsed => Ok(store.ban(net::UNPARSED)?.filter(|b| b.is_active(now))),
        }
    }

    /// Appends a failure and applies the policy, atomically.
    pub fn record(&self, store: &Store, f: &NewFailure) -> Result<Recorded, StoreError> {
        let origin = f.ip.and_then(Origin::of);
        // Stored in one canonical spelling, so that `failures list --ip` finds it however Dovecot wrote it;
        // an address that does not parse as it came.
        let ip_text = match origin {
            Some(Origin::Ip(ip)) => Some(ip.to_string()),
            _ => None,
        };
        let ip_text = ip_text.as_deref().or(f.ip);
        let network = origin.map(|o| self.bucket_of(o));
        let network_text = network.map(|n| n.to_string());
        let recorded = store.immediate(|s| {
            let window_start = f.time - self.config.window;
            let counted = match (&network_text, f.fingerprint) {
                _ if !f.counts => false,
                (None, _) => false,
                (Some(n), Some(fp)) => !s.counted_identical_failure(n, fp, window_start)?,
                (Some(_), None) => true,
            };
            s.record_failure(&Failure {
                time: f.time,
                ip: ip_text,
                network: network_text.as_deref(),
                user: f.user,
                service: f.service,
                reason: f.reason,
                fingerprint: f.fingerprint,
                counted,
            })?;
            let mut recorded = Recorded { counted, ban: None };
            // A network that holds an allowlisted address is never banned, not even for its other addresses:
            // the firewall export cannot make exceptions inside a banned network.
            if let (true, true, Some(network)) = (counted, self.config.enabled, network)
                && !self.touches_allowlist(s, &network)?
            {
                recorded.ban = self.ban_if_over_threshold(s, network, f.time)?;
            }
            Ok(recorded)
        })?;
        if recorded.ban.is_some() {
            // A new ban only adds to the list: until it is written, the database refuses just the same.
            self.write_banlist(store, f.time)?;
        }
        // A failing login is a writer anyway: it folds in a chunk of what banned addresses left beside the
        // database, small enough that a flood of refusals cannot make logins slow.
        let _ = self.ingest_refusals(store, AUTH_CHUNK);
        if rand::random_ratio(1, 256) {
            // Opportunistic pruning keeps the table small without a cron job; losing it to an error is harmless.
            let _ = self.prune(store, f.time);
        }
        Ok(recorded)
    }

    fn ban_if_over_threshold(
        &self,
        s: &Store,
        network: Bucket,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let name = network.to_string();
        let previous = s.ban(&name)?;
        if previous.as_ref().is_some_and(|b| b.is_active(now)) {
            return Ok(None);
        }
        // Failures from before the last ban ended or was lifted were already answered by that ban. One in
        // the very second a ban expired came after it (a ban is active while `until > now`); one in the
        // second of a lift may have come before it.
        let ended = previous
            .as_ref()
            .map_or(0, |b| match (b.lifted_at, b.until) {
                (Some(lifted), _) => lifted,
                (None, Some(until)) => until,
                (None, None) => 0,
            });
        let counted_after = previous
            .as_ref()
            .map_or(0, |b| b.lifted_at.unwrap_or(ended - 1));
        let since = (now - self.config.window).max(counted_after);
        if s.counted_failures(&name, since)? < self.config.threshold {
            return Ok(None);
        }
        let repeats = previous
            .filter(|_| ended > now - self.config.retention)
            .map_or(0, |b| b.count);
        let count = repeats + 1;
        let ban = BanRecord {
            network: name.clone(),
            since: now,
            until: Some(now + self.ban_length(count)),
            reason: AUTO_REASON.into(),
            count,
            lifted_at: None,
        };
        put(s, &network, &ban)?;
        Ok(Some(name))
    }

    /// The `count`-th ban lasts ban_time × 2^(count-1), at most max_ban_time.
    fn ban_length(&self, count: i64) -> i64 {
        let doublings = (count - 1).clamp(0, 32) as u32;
        self.config
            .ban_time
            .saturating_mul(1i64 << doublings)
            .min(self.config.max_ban_time)
    }

    /// A ban by the admin: timed (`seconds`) or permanent.
    pub fn ban_manually(
        &self,
        store: &Store,
        network: Bucket,
        seconds: Option<i64>,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.change_bans(store, now, |s| {
            let count = s.ban(&network.to_string())?.map_or(0, |b| b.count) + 1;
            let ban = BanRecord {
                network: network.to_string(),
                since: now,
                until: seconds.map(|d| now + d),
                reason: reason.into(),
                count,
                lifted_at: None,
            };
            put(s, &network, &ban)
        })
    }

    pub fn prune(&self, store: &Store, now: i64) -> Result<usize, StoreError> {
        store.prune_failures(now - self.config.retention)
    }
}

/// Whether any allowlisted network shares an address with `bucket` (the unparsed bucket holds none).
fn touches(allowlist: &[Network], bucket: &Bucket) -> bool {
    bucket
        .network()
        .is_some_and(|n| allowlist.iter().any(|a| a.overlaps(&n)))
}

fn put(s: &Store, network: &Bucket, ban: &BanRecord) -> Result<(), StoreError> {
    let (start, end) = network.range();
    s.put_ban(
        &NetworkRange {
            network: &ban.network,
            start: &start,
            end: &end,
        },
        ban,
    )
}

/// An nftables script that `nft -f` loads atomically: it replaces the `inet mailpass` table with sets of the
/// active bans (timed elements expire by themselves) and drops their traffic to the mail ports. A ban of the
/// unparsed bucket holds no address a firewall could match: it is left out.
pub fn export_nft(bans: &[BanRecord], now: i64, ports: &[u16]) -> String {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for ban in bans {
        let Ok(Bucket::Network(network)) = Bucket::parse(&ban.network) else {
            continue;
        };
        let element = match ban.until {
            Some(until) => format!(
                "{} timeout {}s",
                network.display_compact(),
                (until - now).max(1)
            ),
            None => network.display_compact(),
        };
        if network.is_ipv4() {
            v4.push(element)
        } else {
            v6.push(element)
        }
    }
    let set = |name: &str, kind: &str, elements: &[String]| {
        let mut s = format!("\tset {name} {{\n\t\ttype {kind}\n\t\tflags interval, timeout\n");
        if !elements.is_empty() {
            s.push_str(&format!("\t\telements = {{ {} }}\n", elements.join(", ")));
        }
        s.push_str("\t}\n");
        s
    };
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "#!/usr/sbin/nft -f\n\
         # Made by `mailpass ban export --format nft`: the active mailpass bans.\n\
         table inet mailpass\n\
         delete table inet mailpass\n\
         table inet mailpass {{\n{}{}\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 5; policy accept;\n\
         \t\tip saddr @banned4 tcp dport {{ {ports} }} drop\n\
         \t\tip6 saddr @banned6 tcp dport {{ {ports} }} drop\n\
         \t}}\n\
         }}\n",
        set("banned4", "ipv4_addr", &v4),
        set("banned6", "ipv6_addr", &v6),
    )
}

/// The mail ports the nft export closes by default (`[bans] firewall_ports`): SMTP, submission, IMAP, POP3
/// (plain and TLS), ManageSieve.
pub const MAIL_PORTS: &[u16] = &[25, 110, 143, 465, 587, 993, 995, 4190];

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(&BansConfig::default())
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_or_create(&dir.path().join("db")).expect("db");
        (dir, store)
    }

    fn fail<'a>(ip: &'a str, user: &'a str, fp: &'a [u8], time: i64) -> NewFailure<'a> {
        NewFailure {
            time,
            ip: Some(ip),
            user,
            service: Some("imap"),
            reason: "wrong_password",
            counts: true,
            fingerprint: Some(fp),
        }
    }

    #[test]
    fn the_tenth_distinct_failure_bans_the_address() {
        let (_d, s) = store();
        let p = policy();
        for i in 0..9u8 {
            let r = p
                .record(&s, &fail("192.0.2.7", "alice", &[i], 1000))
                .expect("record");
            assert!(r.counted && r.ban.is_none());
        }
        let r = p
            .record(&s, &fail("192.0.2.7", "alice", &[9], 1000))
            .expect("record");
        assert_eq!(r.ban.as_deref(), Some("192.0.2.7/32"));
        let ban = p
            .refusal(&s, Origin::Ip("192.0.2.7".parse().expect("ip")), 1001)
            .expect("check")
            .expect("banned");
        assert_eq!(ban.until, Some(1000 + 1800));
    }

    #[test]
    fn identical_retries_count_once() {
        let (_d, s) = store();
        let p = policy();
        for _ in 0..50 {
            p.record(&s, &fail("192.0.2.7", "alice", b"same", 1000))
                .expect("record");
        }
        assert!(
            p.refusal(&s, Origin::Ip("192.0.2.7".parse().expect("ip")), 1001)
                .expect("check")
                .is_none()
        );
        assert_eq!(s.counted_failures("192.0.2.7/32", 0).expect("count"), 1);
    }

    #[test]
    fn repeat_bans_double_up_to_the_maximum() {
        let p = policy();
        assert_eq!(p.ban_length(1), 1800);
        assert_eq!(p.ban_length(2), 3600);
        assert_eq!(p.ban_length(6), 57600);
        assert_eq!(p.ban_length(7), 86400);
        assert_eq!(p.ban_length(60), 86400);
    }

    #[test]
    fn nft_export_has_timed_and_permanent_elements() {
        let bans = [
            BanRecord {
                network: "192.0.2.7/32".into(),
                since: 0,
                until: Some(100),
                reason: "x".into(),
                count: 1,
                lifted_at: None,
            },
            BanRecord {
                network: "2001:db8::/64".into(),
                since: 0,
                until: None,
                reason: "x".into(),
                count: 1,
                lifted_at: None,
            },
        ];
        let script = export_nft(&bans, 40, MAIL_PORTS);
        assert!(
            script.contains("elements = { 192.0.2.7 timeout 60s }"),
            "{script}"
        );
        assert!(script.contains("elements = { 2001:db8::/64 }"), "{script}");
    }
}
