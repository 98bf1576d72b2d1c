//! Refusing banned addresses without opening SQLite.
//!
//! A flood from a banned network should cost as little as possible, and opening SQLite (schema, WAL index)
//! is half of what a refusal cost. So beside the database live two plain files:
//! - `DB.bans`, a snapshot of the active bans (minus networks that hold an allowlisted address). A change of
//!   bans or allowlist removes it inside its write transaction and writes it anew after the commit, from a
//!   fresh read under `DB.bans.lock`, so the file never holds what the database did not commit, and the last
//!   writer always writes the latest state. The auth path reads it first; when it is missing or unreadable,
//!   the auth path asks the database as before, so the file makes refusals cheaper and nothing else.
//! - `DB.refused`, where such refusals are appended (one line each, under a shared lock), and which writers
//!   fold into the failure log: renamed to `DB.refused.ingest`, then read under an exclusive lock inside the
//!   write transaction, which also stores how far it got (inode and offset, in the database's `meta`), so two
//!   ingesters never take the same line and none is skipped. A failing login takes one chunk (`AUTH_CHUNK`
//!   lines in `bans.rs`), so that a flood of refusals never makes a login slow; admin commands take all there
//!   was when they started.
//! - The log is bounded: past `CAP` (16 MiB) a refusal is not written line by line; `DB.refused.overflow`
//!   only counts it for its banned network (one line per network), and ingesting adds those counts to the
//!   database (`ban list` shows them as `unlogged_refusals`). What the admin loses for those refusals is the
//!   time, address, user and service of each; the network and how many remain. On disk: at most the cap in
//!   `DB.refused` plus a file being drained in `DB.refused.ingest`.
//!
//! A crash between an ingester's commit and its removal of a drained file folds that file in a second time
//! (the rows say `banned`, never counted, so no ban follows from it).
//!
//! The directory belongs to the Dovecot auth user while root runs admin commands in it: every file is opened
//! without following symlinks, temp files are created exclusively under random names, and paths are taken from
//! the database's real path, so that every spelling of it finds the same files.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
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

/// Opens `DB<suffix>` with `options`, the way every file beside the database is opened: no symlink followed,
/// a regular file only, and (when created by root) owned like the database.
pub fn open_beside(db: &Path, suffix: &str, options: &mut OpenOptions) -> io::Result<File> {
    let file = open_plain(options, &beside(db, suffix))?;
    own_like_db(&file, db);
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

/// Gives a file the database's owner and, when the database is shared with a group (the Dovecot auth user
/// and the self-service page's user, see the README's "Who owns the database"), the group's read and write
/// too: whichever of them (or root) created the file, the others can still use it. Only root can give a file
/// away; anyone else still gives it the database's group, which they are a member of. Failing leaves it as it
/// is.
fn own_like_db(file: &File, db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(db) {
        if std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid())).is_err() {
            let _ = std::os::unix::fs::fchown(file, None, Some(meta.gid()));
        }
        let group = meta.mode() & 0o060;
        if group != 0 {
            let _ = file.set_permissions(fs::Permissions::from_mode(0o600 | group));
        }
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

/// Past this size `DB.refused` takes no more lines: a flood from banned networks between two ingests must
/// not fill the disk, nor leave the next ingester more than it can read.
pub const CAP: u64 = 16 << 20;

/// No real line is longer (a user name is at most 512 bytes): a chunk of n lines reads at most n times this.
const MAX_LINE: u64 = 1024;

/// A refusal recorded in `DB.refused`, to be folded into the failure log.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub time: i64,
    pub ip: String,
    pub user: String,
    pub service: String,
}

/// Appends a refusal by the ban of `network`. The file may be renamed away by an ingester at any moment: after
/// taking the shared lock, the line goes only into the file that still has the name. Past `CAP`, only the
/// count of `network`'s refusals goes up (in `DB.refused.overflow`).
pub fn append(db: &Path, refusal: &Refusal, network: &str) -> io::Result<()> {
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
            if file.metadata()?.len() >= CAP {
                drop(file);
                return count_unlogged(db, network);
            }
            return file.write_all(line.as_bytes());
        }
    }
    Err(io::Error::other("the refusal log kept being renamed"))
}

/// One more refusal of `network` that the full refusal log does not hold. `DB.refused.overflow` keeps one
/// line per network (`network count`): it grows with the number of banned networks, not with the flood.
fn count_unlogged(db: &Path, network: &str) -> io::Result<()> {
    let mut file = open_plain(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600),
        &beside(db, ".refused.overflow"),
    )?;
    own_like_db(&file, db);
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut counts = parse_counts(&text);
    match counts.iter_mut().find(|(n, _)| n == network) {
        Some((_, count)) => *count += 1,
        None => counts.push((clean(network).replace(' ', "_"), 1)),
    }
    let text: String = counts.iter().map(|(n, c)| format!("{n} {c}\n")).collect();
    file.set_len(0)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())
}

fn parse_counts(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (network, count) = l.split_once(' ')?;
            Some((network.to_string(), count.parse().ok()?))
        })
        .collect()
}

/// A chunk of refusals taken out of the refusal log, still held (exclusively locked) until `done`.
pub struct Taken {
    pub refusals: Vec<Refusal>,
    /// Per network, the refusals that the full log could not hold line by line.
    pub unlogged: Vec<(String, u64)>,
    /// Where the next chunk starts (the taken file's inode and offset), `None` once the file is read to its end.
    pub position: Option<(u64, u64)>,
    /// Whether a refusal log was there to take from.
    pub found: bool,
    /// Whether this take renamed `DB.refused` (a fresh file) rather than going on with one taken before.
    pub renamed: bool,
    held: Option<(File, PathBuf)>,
    overflow: Option<File>,
}

/// What one take did, for an ingester that goes on until the log is drained.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub found: bool,
    pub renamed: bool,
    /// Whether the taken file was read to its end.
    pub finished: bool,
}

impl Taken {
    pub fn progress(&self) -> Progress {
        Progress {
            found: self.found,
            renamed: self.renamed,
            finished: self.position.is_none(),
        }
    }
}

/// Takes at most `max_lines` refusals, from `position` on (as the last take that committed left it). The
/// refusal log is renamed to `DB.refused.ingest` when no such file is left to go on with, then read once no
/// appender holds it. Call it inside the write transaction that stores the rows and the new position (ingesters
/// then never race, and no line is taken twice or skipped), and `done` after the commit. Lines that do not
/// parse are skipped.
pub fn take(db: &Path, position: Option<(u64, u64)>, max_lines: usize) -> io::Result<Taken> {
    let mut taken = Taken {
        refusals: Vec::new(),
        unlogged: Vec::new(),
        position: None,
        found: false,
        renamed: false,
        held: None,
        overflow: None,
    };
    take_overflow(db, &mut taken)?;
    let path = beside(db, ".refused.ingest");
    if !path.exists() {
        match fs::rename(beside(db, ".refused"), &path) {
            Ok(()) => taken.renamed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(taken),
            Err(e) => return Err(e),
        }
    }
    let mut file = match open_plain(OpenOptions::new().read(true), &path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(taken),
        Err(e) => return Err(e),
    };
    file.lock()?;
    // Another ingester may have finished with this file while we waited for the lock.
    let meta = file.metadata()?;
    if !fs::metadata(&path).is_ok_and(|m| m.ino() == meta.ino()) {
        return Ok(taken);
    }
    taken.found = true;
    // No appender writes to this file any more (they check the name after their lock): its length is final.
    let start = position
        .filter(|&(ino, offset)| ino == meta.ino() && offset <= meta.len())
        .map_or(0, |(_, offset)| offset);
    file.seek(io::SeekFrom::Start(start))?;
    let budget = max_lines as u64 * MAX_LINE;
    let mut reader = BufReader::new((&file).take(budget));
    let mut consumed = 0u64;
    let mut lines = 0;
    let mut line = Vec::new();
    while lines < max_lines {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)? as u64;
        if n == 0 {
            break;
        }
        let at_end = start + consumed + n >= meta.len();
        if !line.ends_with(b"\n") && !at_end {
            // Cut off by the budget: the line waits for the next chunk, unless it alone is longer than any real
            // line, which is garbage and skipped.
            if lines == 0 {
                consumed += n;
            }
            break;
        }
        consumed += n;
        lines += 1;
        taken.refusals.extend(parse_line(&line));
    }
    let offset = start + consumed;
    taken.position = (offset < meta.len()).then_some((meta.ino(), offset));
    taken.held = Some((file, path));
    Ok(taken)
}

/// Takes the per-network counts of refusals past the cap, locked until `done` clears them.
fn take_overflow(db: &Path, taken: &mut Taken) -> io::Result<()> {
    let mut file = match open_plain(
        OpenOptions::new().read(true).write(true),
        &beside(db, ".refused.overflow"),
    ) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    taken.unlogged = parse_counts(&text);
    taken.overflow = Some(file);
    Ok(())
}

fn parse_line(line: &[u8]) -> Option<Refusal> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\n');
    let mut fields = line.split('\t');
    let (Some(time), Some(ip), Some(user), Some(service)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    Some(Refusal {
        time: time.parse().ok()?,
        ip: ip.to_string(),
        user: user.to_string(),
        service: service.to_string(),
    })
}

/// After the commit: removes a taken file read to its end, clears the counts taken, releases the locks.
pub fn done(taken: Taken) {
    if let Some(file) = taken.overflow {
        let _ = file.set_len(0);
    }
    if let Some((file, path)) = taken.held {
        let same = fs::symlink_metadata(&path)
            .is_ok_and(|m| m.ino() == file.metadata().map_or(0, |f| f.ino()));
        if same && taken.position.is_none() {
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
        append(&db, &r(1), "n").expect("append");
        append(&db, &r(2), "n").expect("append");
        let taken = take(&db, None, 100).expect("take");
        assert_eq!(taken.refusals.len(), 2);
        assert_eq!(taken.refusals[1].time, 2);
        assert_eq!(taken.refusals[0].user, "a b");
        done(taken);
        append(&db, &r(3), "n").expect("append");
        let taken = take(&db, None, 100).expect("take");
        assert_eq!(
            taken.refusals,
            vec![Refusal {
                user: "a b".into(),
                ..r(3)
            }]
        );
        done(taken);
        assert!(take(&db, None, 100).expect("take").refusals.is_empty());
    }

    #[test]
    fn the_files_beside_a_group_shared_database_are_shared_with_the_group_too() {
        use std::os::unix::fs::PermissionsExt;
        for (db_mode, expected) in [(0o660, 0o660), (0o600, 0o600)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = dir.path().join("db");
            fs::write(&db, b"").expect("db");
            fs::set_permissions(&db, fs::Permissions::from_mode(db_mode)).expect("chmod");
            write(&db, &[(Bucket::Unparsed, None)]).expect("write");
            drop(lock(&db).expect("lock"));
            let refusal = Refusal {
                time: 1,
                ip: "192.0.2.7".into(),
                user: "a".into(),
                service: "imap".into(),
            };
            append(&db, &refusal, "n").expect("append");
            drop(
                open_beside(
                    &db,
                    ".argon2.0",
                    OpenOptions::new().write(true).create(true).mode(0o600),
                )
                .expect("slot"),
            );
            for suffix in [".bans", ".bans.lock", ".refused", ".argon2.0"] {
                let mode = fs::metadata(beside(&db, suffix)).expect("stat").mode() & 0o777;
                assert_eq!(mode, expected, "{suffix} beside a {db_mode:o} database");
            }
        }
    }
}
