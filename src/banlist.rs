//! Refusing banned addresses without opening SQLite.
//!
//! A flood from a banned network should cost as little as possible, and opening SQLite (schema, WAL index)
//! is half of what a refusal cost. So beside the database live two plain files:
//! - `DB.bans`, a snapshot of the active bans (minus networks that hold an allowlisted address), rewritten
//!   atomically inside every write transaction that changes bans or the allowlist. The auth path reads it
//!   first; when it is missing or unreadable, the auth path asks the database as before, so the file can make
//!   a refusal cheaper but never lets a banned address through that the database would refuse.
//! - `DB.refused`, where such refusals are appended (one line each, under a shared lock), and which the next
//!   process that writes failures folds into the failure log (under an exclusive lock), so nothing is lost.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::net::Network;

const HEADER: &str = "mailpass-bans 1";

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(db.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Gives a file the database's owner, so that whichever user wrote it (root running an admin command, or
/// the Dovecot auth user) the other can still use it. Failing (not root) leaves it to its creator.
fn own_like_db(file: &File, db: &Path) {
    if let Ok(meta) = fs::metadata(db) {
        let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
    }
}

/// Rewrites `DB.bans` with these bans (network, until; `None` = permanent).
pub fn write(db: &Path, bans: &[(Network, Option<i64>)]) -> io::Result<()> {
    let target = beside(db, ".bans");
    let tmp = beside(db, &format!(".bans.{}", std::process::id()));
    let mut text = format!("{HEADER}\n");
    for (network, until) in bans {
        let until = until.map_or("-".to_string(), |t| t.to_string());
        text.push_str(&format!("{network} {until}\n"));
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        own_like_db(&file, db);
        file.write_all(text.as_bytes())?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `DB.bans` (the auth path then asks the database).
pub fn remove(db: &Path) -> io::Result<()> {
    match fs::remove_file(beside(db, ".bans")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The banned network that `DB.bans` says holds `ip` at `now`, if the file can be read.
pub fn lookup(db: &Path, ip: IpAddr, now: i64) -> Option<String> {
    let text = fs::read_to_string(beside(db, ".bans")).ok()?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return None;
    }
    lines.find_map(|line| {
        let (network, until) = line.split_once(' ')?;
        let active = until == "-" || until.parse::<i64>().is_ok_and(|t| t > now);
        let network = Network::parse(network).ok()?;
        (active && network.contains(ip)).then(|| network.to_string())
    })
}

/// A refusal recorded in `DB.refused`, to be folded into the failure log.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub time: i64,
    pub ip: String,
    pub user: String,
    pub service: String,
}

/// Appends a refusal. The file may be renamed away by an ingester at any moment: after taking the shared
/// lock, the line goes only into the file that still has the name.
pub fn append(db: &Path, refusal: &Refusal) -> io::Result<()> {
    let path = beside(db, ".refused");
    let line = format!(
        "{}\t{}\t{}\t{}\n",
        refusal.time,
        clean(&refusal.ip),
        clean(&refusal.user),
        clean(&refusal.service)
    );
    for _ in 0..5 {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        file.lock_shared()?;
        let same =
            fs::metadata(&path).is_ok_and(|m| m.ino() == file.metadata().map_or(0, |f| f.ino()));
        if same {
            own_like_db(&file, db);
            return file.write_all(line.as_bytes());
        }
    }
    Err(io::Error::other("the refusal log kept being renamed"))
}

/// Refusals taken out of `DB.refused`, still held (exclusively locked) until `done`.
pub struct Taken {
    pub refusals: Vec<Refusal>,
    held: Option<(File, PathBuf)>,
}

/// Takes every refusal appended so far: the file is renamed, then read once no appender holds it. A file left
/// renamed by an ingester that failed is read first. The lock stays until `done`, after the rows are
/// committed, so two ingesters never take the same lines.
pub fn take(db: &Path) -> io::Result<Taken> {
    let nothing = Taken {
        refusals: Vec::new(),
        held: None,
    };
    let taken = beside(db, ".refused.ingest");
    if !taken.exists() {
        match fs::rename(beside(db, ".refused"), &taken) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(nothing),
            Err(e) => return Err(e),
        }
    }
    let file = match File::open(&taken) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(nothing),
        Err(e) => return Err(e),
    };
    file.lock()?;
    // Another ingester may have finished with this file while we waited for the lock.
    let same =
        fs::metadata(&taken).is_ok_and(|m| m.ino() == file.metadata().map_or(0, |f| f.ino()));
    if !same {
        return Ok(nothing);
    }
    let mut refusals = Vec::new();
    for line in BufReader::new(&file).lines() {
        let line = line?;
        let mut fields = line.split('\t');
        let (Some(time), Some(ip), Some(user), Some(service)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(time) = time.parse() else { continue };
        refusals.push(Refusal {
            time,
            ip: ip.to_string(),
            user: user.to_string(),
            service: service.to_string(),
        });
    }
    Ok(Taken {
        refusals,
        held: Some((file, taken)),
    })
}

/// Removes a taken file once its refusals are in the database (and only then releases its lock).
pub fn done(taken: Taken) {
    if let Some((file, path)) = taken.held {
        let _ = fs::remove_file(path);
        drop(file);
    }
}

/// Fields are tab-separated lines: no tabs or newlines inside (user names hold no control characters).
fn clean(value: &str) -> String {
    value.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_answers_for_active_bans_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        fs::write(&db, b"").expect("db");
        let bans = [
            (Network::parse("192.0.2.0/24").expect("net"), Some(100)),
            (Network::parse("2001:db8::/64").expect("net"), None),
        ];
        write(&db, &bans).expect("write");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            lookup(&db, ip("192.0.2.7"), 50).as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(lookup(&db, ip("192.0.2.7"), 100), None, "expired");
        assert_eq!(
            lookup(&db, ip("2001:db8::9"), 1 << 40).as_deref(),
            Some("2001:db8::/64")
        );
        assert_eq!(lookup(&db, ip("198.51.100.1"), 50), None);
        fs::write(beside(&db, ".bans"), "garbage\n192.0.2.0/24 -\n").expect("overwrite");
        assert_eq!(
            lookup(&db, ip("192.0.2.7"), 50),
            None,
            "a foreign file is ignored"
        );
    }

    #[test]
    fn appended_refusals_are_taken_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        let r = |n| Refusal {
            time: n,
            ip: "192.0.2.7".into(),
            user: "a\tb".into(),
            service: "imap".into(),
        };
        append(&db, &r(1)).expect("append");
        append(&db, &r(2)).expect("append");
        let taken = take(&db).expect("take");
        assert_eq!(taken.refusals.len(), 2);
        assert_eq!(taken.refusals[1].time, 2);
        assert_eq!(taken.refusals[0].user, "a b");
        done(taken);
        append(&db, &r(3)).expect("append");
        let taken = take(&db).expect("take");
        assert_eq!(
            taken.refusals,
            vec![Refusal {
                user: "a b".into(),
                ..r(3)
            }]
        );
        done(taken);
        assert!(take(&db).expect("take").refusals.is_empty());
    }
}
