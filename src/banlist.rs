//! Refusing banned addresses without opening SQLite.
//!
//! A flood from a banned network should cost as little as possible, and opening SQLite (schema, WAL index)
//! is half of what a refusal cost. So beside the database live two plain files:
//! - `DB.bans`, a snapshot of the active bans (minus networks that hold an allowlisted address). A change of
//!   bans or allowlist removes it inside its write transaction and writes it anew after the commit, from a
//!   fresh read under `DB.bans.lock`, so the file never holds what the database did not commit, and the last
//!   writer always writes the latest state. The auth path reads it first; when it is missing or unreadable,
//!   the auth path asks the database as before, so the file makes refusals cheaper and nothing else.
//! - `DB.refused`, where such refusals are appended (one line each, under a shared lock), and which the next
//!   process that writes failures folds into the failure log (under an exclusive lock, inside its write
//!   transaction, so two ingesters never race), so nothing is lost.
//!
//! The directory belongs to the Dovecot auth user while root runs admin commands in it: every file is opened
//! without following symlinks, temp files are created exclusively under random names, and paths are taken from
//! the database's real path, so that every spelling of it finds the same files.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::net::{Bucket, Origin};

const HEADER: &str = "mailpass-bans 1";

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let real = fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut name = OsString::from(real.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens without following a symlink, and refuses anything but a regular file.
fn open_plain(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// Holds `DB.bans.lock` while the snapshot is read and written, so writers replace it in order.
pub fn lock(db: &Path) -> io::Result<File> {
    let file = open_plain(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600),
        &beside(db, ".bans.lock"),
    )?;
    own_like_db(&file, db);
    file.lock()?;
    Ok(file)
}

/// Gives a file the database's owner, so that whichever user wrote it (root running an admin command, or
/// the Dovecot auth user) the other can still use it. Failing (not root) leaves it to its creator.
fn own_like_db(file: &File, db: &Path) {
    if let Ok(meta) = fs::metadata(db) {
        let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
    }
}

/// Rewrites `DB.bans` with these bans (network or `unparsed`, until; `None` = permanent).
pub fn write(db: &Path, bans: &[(Bucket, Option<i64>)]) -> io::Result<()> {
    let target = beside(db, ".bans");
    let tmp = beside(
        db,
        &format!(
            ".bans.{}.{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ),
    );
    let mut text = format!("{HEADER}\n");
    for (network, until) in bans {
        let until = until.map_or("-".to_string(), |t| t.to_string());
        text.push_str(&format!("{network} {until}\n"));
    }
    let result = (|| {
        let mut file = open_plain(
            OpenOptions::new().write(true).create_new(true).mode(0o600),
            &tmp,
        )?;
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

/// The banned network (or bucket) that `DB.bans` says holds `origin` at `now`, if the file can be read.
pub fn lookup(db: &Path, origin: Origin, now: i64) -> Option<String> {
    let text = fs::read_to_string(beside(db, ".bans")).ok()?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return None;
    }
    lines.find_map(|line| {
        let (network, until) = line.split_once(' ')?;
        let active = until == "-" || until.parse::<i64>().is_ok_and(|t| t > now);
        let network = Bucket::parse(network).ok()?;
        (active && network.holds(origin)).then(|| network.to_string())
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
        let mut file = open_plain(
            OpenOptions::new().append(true).create(true).mode(0o600),
            &path,
        )?;
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
/// renamed by an ingester that failed is read first. Call it inside the write transaction that stores the
/// rows (ingesters then never race), and `done` after the commit. Lines that do not parse are skipped.
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
    let file = match open_plain(OpenOptions::new().read(true), &taken) {
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
    for line in BufReader::new(&file).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
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
        let same = fs::symlink_metadata(&path)
            .is_ok_and(|m| m.ino() == file.metadata().map_or(0, |f| f.ino()));
        if same {
            let _ = fs::remove_file(path);
        }
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
            (Bucket::parse("192.0.2.0/24").expect("net"), Some(100)),
            (Bucket::parse("2001:db8::/64").expect("net"), None),
            (Bucket::Unparsed, Some(100)),
        ];
        write(&db, &bans).expect("write");
        let ip = |s: &str| Origin::Ip(s.parse().expect("ip"));
        assert_eq!(
            lookup(&db, Origin::Unparsed, 50).as_deref(),
            Some("unparsed")
        );
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
