//! `mailpass ban ...` and `mailpass failures list`: the admin's side of the failure log and the bans.

use serde_json::{Value, json};

use super::{Admin, print_json, time_json};
use crate::auth::Reason;
use crate::bans::{self, NewFailure, Policy};
use crate::cli::{AllowCommand, BanCommand, ExportFormat, FailuresCommand};
use crate::clock;
use crate::error::Error;
use crate::net::{self, Bucket, Network, Origin};
use crate::store::{BanRecord, FailureFilter};

/// What `ban record` stores when no reason is given.
const EXTERNAL_REASON: &str = "external";

pub(super) fn run(admin: &Admin, command: BanCommand) -> Result<(), Error> {
    let policy = Policy::new(&admin.config.bans);
    match command {
        BanCommand::List(json) => {
            let bans = admin.store.active_bans(admin.now)?;
            // Refusals past the refusal log's cap were only counted (see `banlist.rs`): say how many.
            let unlogged = bans
                .iter()
                .map(|b| admin.store.unlogged_refusals(&b.network))
                .collect::<Result<Vec<_>, _>>()?;
            if json.json {
                print_json(&Value::Array(
                    bans.iter()
                        .zip(&unlogged)
                        .map(|(b, n)| {
                            let mut v = ban_json(b);
                            v["unlogged_refusals"] = json!(n);
                            v
                        })
                        .collect(),
                ));
            } else {
                for (b, n) in bans.iter().zip(&unlogged) {
                    match n {
                        0 => println!("{}", ban_line(b)),
                        n => println!("{}\t{n} refusals counted, not logged", ban_line(b)),
                    }
                }
            }
        }
        BanCommand::Add {
            network,
            duration,
            reason,
        } => {
            let network = parse_bucket(&network)?;
            let seconds = duration
                .map(|d| clock::parse_duration(&d).map_err(Error::Usage))
                .transpose()?;
            let reason = reason.unwrap_or_else(|| "manual".into());
            policy.ban_manually(&admin.store, network, seconds, &reason, admin.now)?;
            eprintln!(
                "banned {network} {}",
                seconds.map_or("permanently".to_string(), |s| format!(
                    "until {}",
                    clock::rfc3339(admin.now + s)
                ))
            );
        }
        BanCommand::Remove { network } => {
            let network = parse_bucket(&network)?;
            if !policy.lift(&admin.store, &network, admin.now)? {
                return Err(Error::Refused(format!(
                    "{network} is not banned: `mailpass ban list` shows the bans"
                )));
            }
            eprintln!("lifted the ban of {network}");
        }
        BanCommand::Check { ip, json } => {
            // A typo must not read as "not banned": what does not parse is a usage error here, although the
            // auth path counts such an address in the unparsed bucket (which `ban list` shows).
            let addr = net::parse_ip(&ip).ok_or_else(|| {
                Error::Usage(format!(
                    "{ip:?} is not an IP address (logins from addresses that do not parse are refused by \
                     a ban of `{}`, see `mailpass ban list`)",
                    net::UNPARSED
                ))
            })?;
            let ban = policy.refusal(&admin.store, Origin::Ip(addr), admin.now)?;
            if json.json {
                print_json(&json!({"ip": addr.to_string(), "banned": ban.as_ref().map(ban_json)}));
            } else if let Some(ban) = &ban {
                println!("{}", ban_line(ban));
            }
            if ban.is_some() {
                return Err(Error::Status(1));
            }
        }
        BanCommand::Record {
            ip,
            user,
            service,
            reason,
        } => {
            if net::parse_ip(&ip).is_none() {
                return Err(Error::Usage(format!("{ip:?} is not an IP address")));
            }
            let reason = reason.unwrap_or_else(|| EXTERNAL_REASON.into());
            let counts = Reason::from_name(&reason).is_none_or(Reason::counts);
            let recorded = policy.record(
                &admin.store,
                &NewFailure {
                    time: admin.now,
                    ip: Some(&ip),
                    user: user.as_deref().unwrap_or("-"),
                    service: service.as_deref(),
                    reason: &reason,
                    counts,
                    fingerprint: None,
                },
            )?;
            match recorded.ban {
                Some(network) => eprintln!("recorded; {network} is now banned"),
                None => eprintln!(
                    "recorded ({})",
                    if recorded.counted {
                        "counted"
                    } else {
                        "not counted"
                    }
                ),
            }
        }
        BanCommand::Export { format } => {
            // The auth path never refuses an allowlisted address; the firewall must not either.
            let allowlist = policy.allowlist(&admin.store)?;
            // Nor can a firewall match the unparsed bucket: the auth path alone refuses it.
            let (bans, spared): (Vec<BanRecord>, Vec<BanRecord>) = admin
                .store
                .active_bans(admin.now)?
                .into_iter()
                .partition(|b| {
                    Network::parse(&b.network)
                        .is_ok_and(|n| !allowlist.iter().any(|a| a.overlaps(&n)))
                });
            for b in &spared {
                if b.network == net::UNPARSED {
                    eprintln!(
                        "not exported: {} (addresses mailpass cannot parse) is no address a firewall can match",
                        b.network
                    );
                } else {
                    eprintln!("not exported: {} holds an allowlisted address", b.network);
                }
            }
            match format {
                ExportFormat::Nft => {
                    print!(
                        "{}",
                        bans::export_nft(&bans, admin.now, &admin.config.bans.firewall_ports)
                    )
                }
                ExportFormat::Plain => {
                    for b in &bans {
                        println!("{}", b.network);
                    }
                }
            }
        }
        BanCommand::Allow(AllowCommand::Add { network }) => {
            let network = parse_network(&network)?;
            if !policy.allow(&admin.store, network, admin.now)? {
                return Err(Error::Refused(format!("{network} is already allowlisted")));
            }
            eprintln!("{network} will never be banned");
        }
        BanCommand::Allow(AllowCommand::Remove { network }) => {
            let network = parse_network(&network)?;
            if !policy.disallow(&admin.store, &network, admin.now)? {
                return Err(Error::Refused(format!(
                    "{network} is not on the allowlist: `mailpass ban allow list` shows it \
                     (entries from mailpass.toml's [bans] allow are changed there)"
                )));
            }
            eprintln!("{network} is no longer allowlisted");
        }
        BanCommand::Allow(AllowCommand::List(json)) => {
            let from_db = admin.store.allowlist()?;
            let from_config = admin.config.bans.allow.iter().map(|n| {
                let n = Network::parse(n).map_or(n.clone(), |n| n.to_string());
                (n, "config", Value::Null)
            });
            let from_db = from_db
                .into_iter()
                .map(|(n, t)| (n, "database", Value::String(clock::rfc3339(t))));
            let all: Vec<_> = from_config.chain(from_db).collect();
            if json.json {
                print_json(&Value::Array(
                    all.iter()
                        .map(|(n, source, added)| json!({"network": n, "source": source, "added_at": added}))
                        .collect(),
                ));
            } else {
                for (n, source, _) in &all {
                    println!("{n}\t{source}");
                }
            }
        }
        BanCommand::Prune => {
            let n = policy.prune(&admin.store, admin.now)?;
            eprintln!(
                "deleted {n} failure(s) older than {} s",
                admin.config.bans.retention
            );
        }
    }
    Ok(())
}

pub(super) fn failures(admin: &Admin, command: FailuresCommand) -> Result<(), Error> {
    let FailuresCommand::List {
        ip,
        user,
        since,
        json,
    } = command;
    let ip = match ip {
        Some(text) => Some(
            net::parse_ip(&text)
                .ok_or_else(|| Error::Usage(format!("{text:?} is not an IP address")))?
                .to_string(),
        ),
        None => None,
    };
    let since = since
        .map(|d| clock::parse_duration(&d).map_err(Error::Usage))
        .transpose()?
        .map(|s| admin.now - s);
    let list = admin.store.failures(&FailureFilter {
        ip: ip.as_deref(),
        user: user.as_deref(),
        since,
        reason: None,
        limit: 100_000,
    })?;
    if json.json {
        print_json(&Value::Array(
            list.iter()
                .map(|f| {
                    json!({
                        "time": clock::rfc3339(f.time),
                        "ip": f.ip,
                        "network": f.network,
                        "user": f.user,
                        "service": f.service,
                        "reason": f.reason,
                        "counted": f.counted,
                    })
                })
                .collect(),
        ));
    } else {
        for f in &list {
            println!(
                "{}  {:<15} {:<28} {:<10} {:<26} {}",
                clock::rfc3339(f.time),
                f.ip.as_deref().unwrap_or("-"),
                f.user,
                f.service.as_deref().unwrap_or("-"),
                f.reason,
                if f.counted { "counted" } else { "not counted" }
            );
        }
    }
    Ok(())
}

fn parse_network(text: &str) -> Result<Network, Error> {
    Network::parse(text).map_err(Error::Usage)
}

/// A network, or `unparsed` (the bucket of addresses that do not parse), for what a ban can hold.
fn parse_bucket(text: &str) -> Result<Bucket, Error> {
    Bucket::parse(text).map_err(|e| Error::Usage(format!("{e}, or `{}`", net::UNPARSED)))
}

fn ban_json(b: &BanRecord) -> Value {
    json!({
        "network": b.network,
        "since": clock::rfc3339(b.since),
        "until": time_json(b.until),
        "reason": b.reason,
        "count": b.count,
    })
}

fn ban_line(b: &BanRecord) -> String {
    format!(
        "{}\tsince {}\tuntil {}\t{}\t(ban #{})",
        b.network,
        clock::rfc3339(b.since),
        b.until.map_or("permanent".into(), clock::rfc3339),
        b.reason,
        b.count
    )
}
