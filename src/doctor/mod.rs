//! `mailpass doctor`: checks of what admins get wrong in a mailpass set-up, each with the fix. One file per
//! area: the config file (`config.rs`), Dovecot's config as `doveconf` reads it (`dovecot.rs`), the database
//! and the files beside it (`database.rs`), time synchronisation (`clock.rs`). The checks only look: they
//! never create, migrate or change anything (the database is opened read-only), so that a missing or broken
//! database is diagnosed rather than repaired behind the admin's back. Printing is `admin/doctor.rs`'s job.

mod clock;
mod config;
mod database;
mod dovecot;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use dovecot::Runner;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works today, but a likely trouble: does not make doctor fail.
    Warn,
    /// Logins fail, or will: doctor exits 1.
    Fail,
    /// Could not be checked (something it needs is missing or failed first).
    Skip,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One finding: what was checked, what was found, and (unless it is fine) what to do about it.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn skip(name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skip,
            message: message.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What to check.
pub struct Options<'a> {
    pub db: &'a Path,
    pub config: &'a Path,
    /// The config file was named (a missing one is then an error, as for every command).
    pub config_explicit: bool,
    /// Dovecot's config file; `None`: whatever `doveconf` reads by default.
    pub dovecot_config: Option<&'a Path>,
    /// The `doveconf` program: a path, or a name looked up on PATH.
    pub doveconf: &'a OsStr,
}

/// Every check, in the order they are shown: config, Dovecot, database, clock.
///
/// The database checks run last: when run as root they take on the identity of the user Dovecot runs
/// mailpass as (or the directory's owner) before they open the database, for the rest of the process, so that
/// the files SQLite may create beside it get the owner the logins need, and the open sees what a login sees.
pub fn diagnose(options: &Options) -> Vec<Check> {
    let mut checks = config::checks(options.config, options.config_explicit);
    let found = dovecot::checks(options.dovecot_config, options.doveconf, options.db);
    let clock = clock::checks();
    checks.extend(found.checks);
    checks.extend(database::checks(options.db, found.runner.as_ref()));
    checks.extend(clock);
    checks
}

/// Only the config file's checks (`mailpass config check`).
pub fn diagnose_config(options: &Options) -> Vec<Check> {
    config::checks(options.config, options.config_explicit)
}

/// A group's id by name (or the number itself), from /etc/group, where the Debian package's `mailpass` group
/// and Dovecot's groups live; `None` for a group it does not list.
fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// A group's name from /etc/group, else its number (as `chgrp` takes either).
fn group_name(gid: u32) -> String {
    std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|groups| {
            groups.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2].parse() == Ok(gid)).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| gid.to_string())
}

/// What a program printed, and whether it exited 0.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The last line of stderr (where programs put the reason), else of stdout.
    fn reason(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(String::from)
        };
        last(&self.stderr)
            .or_else(|| last(&self.stdout))
            .unwrap_or_else(|| "no output".into())
    }
}

/// How long one program may take: `chronyc` waits for a daemon that may not answer, `doveconf` reads files.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Where programs are looked for when PATH is not set (Dovecot's and systemd's programs live here).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A program by name on PATH (or the system directories), or the path itself when it holds a `/`.
fn find_program(name: &OsStr) -> Option<PathBuf> {
    let as_path = Path::new(name);
    if name.as_encoded_bytes().contains(&b'/') {
        return as_path.is_file().then(|| as_path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| SYSTEM_PATH.into());
    std::env::split_paths(&path)
        .chain(std::env::split_paths(SYSTEM_PATH))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a program with an environment of its own (no locale, the system PATH), nothing on stdin, and a time
/// limit; its output is read as it comes, so a long `doveconf -n` cannot fill a pipe and stall.
fn run_program(program: &Path, args: &[&OsStr]) -> Result<Ran, String> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "{} did not answer within {} s",
                    program.display(),
                    PROGRAM_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("cannot wait for {}: {e}", program.display())),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Ran {
        success: status?.success(),
        stdout,
        stderr,
    })
}
