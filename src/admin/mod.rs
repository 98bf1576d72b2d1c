//! The admin commands: users, app passwords, TOTP. Each prints for people by default and JSON with `--json`;
//! errors go back to `lib.rs`, which maps them to exit codes.

mod app_password;
mod backup;
mod bans;
mod doctor;
mod import;
mod totp;
mod user;

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::account::Account;
use crate::cli::{Command, PasswordInput};
use crate::config::Config;
use crate::error::Error;
use crate::password::policy::MAX_BYTES;
use crate::secret::Secret;
use crate::store::Store;
use crate::{clock, store};

/// What every admin command works with.
struct Admin<'a> {
    store: Store,
    config: &'a Config,
    now: i64,
}

pub fn run(db: &Path, config: &Config, command: Command) -> Result<(), Error> {
    // Every admin command, not only those that read a password: others print fresh app passwords, TOTP
    // secrets and recovery codes, and all of them read the database key. One call here covers them all and
    // costs nothing; a failure (a kernel without these calls) is worth a warning, not a refused command.
    if let Err(e) = crate::sys::protect_memory() {
        eprintln!("mailpass: warning: cannot keep secrets out of core files: {e}");
    }
    let now = clock::now();
    // Read before acting as the directory owner: import sources and copies to restore are often readable by
    // root alone.
    let source = match &command {
        Command::Import(c) => Some(import::read(c, now)?),
        _ => None,
    };
    let copy = match &command {
        Command::Restore { file, yes, .. } => Some(backup::read(file, *yes)?),
        _ => None,
    };
    act_as_directory_owner(db)?;
    let store = Store::open_or_create(db).map_err(|e| match e {
        store::StoreError::Create { .. } => Error::Io(format!(
            "{e} (create the directory first, e.g. `install -d -m 0700 {}`)",
            db.parent().map_or(".".into(), |p| p.display().to_string())
        )),
        other => other.into(),
    })?;
    // Refusals that the auth path left beside the database join the failure log before anyone looks at it.
    if let Err(e) = crate::bans::Policy::new(&config.bans).ingest_all_refusals(&store) {
        eprintln!("mailpass: warning: {e}");
    }
    let mut admin = Admin { store, config, now };
    match command {
        Command::User(c) => user::run(&admin, c),
        Command::AppPassword(c) => app_password::run(&admin, c),
        Command::Totp(c) => totp::run(&admin, c),
        Command::Ban(c) => bans::run(&admin, c),
        Command::Failures(c) => bans::failures(&admin, c),
        Command::Import(c) => match source {
            Some(source) => import::run(&admin, c, source),
            None => Err(Error::Io("the import source was not read".into())),
        },
        Command::Backup { file, json } => backup::backup(&admin, &file, json.json),
        Command::Restore { json, .. } => match copy {
            Some(copy) => backup::restore(&mut admin, copy, json.json),
            None => Err(Error::Io("the copy to restore was not read".into())),
        },
        Command::Checkpassword { .. } | Command::Web { .. } => Err(Error::Usage(
            "checkpassword and web are not admin commands".into(),
        )),
        Command::Doctor { .. } | Command::Config(_) => Err(Error::Usage(
            "doctor and config check run through `diagnose`, before any store is opened".into(),
        )),
    }
}

/// `doctor` and `config check`: they must work on a broken config or database, so they neither load the
/// config first nor open the store (which would create or migrate it); they look, read-only.
pub fn diagnose(
    db: &Path,
    config: &Path,
    config_explicit: bool,
    command: Command,
) -> Result<(), Error> {
    if let Err(e) = crate::sys::protect_memory() {
        eprintln!("mailpass: warning: cannot keep secrets out of core files: {e}");
    }
    match command {
        Command::Doctor {
            dovecot_config,
            doveconf,
            json,
        } => doctor::doctor(
            &crate::doctor::Options {
                db,
                config,
                config_explicit,
                dovecot_config: dovecot_config.as_deref(),
                doveconf: &doveconf,
            },
            json.json,
        ),
        Command::Config(crate::cli::ConfigCommand::Check(json)) => {
            doctor::config_check(config, config_explicit, json.json)
        }
        _ => Err(Error::Usage("not a diagnostic command".into())),
    }
}

/// Root acts as the owner of the database's directory before it touches anything there. That directory
/// belongs to the Dovecot auth user, who could otherwise plant a symlink at the database (or its `-wal`,
/// `-shm`, ban list) and have root create or overwrite a file anywhere; as that user, root's commands can do
/// no more there than the auth user can already. New files get that owner too, as the auth path needs.
fn act_as_directory_owner(db: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    if crate::sys::effective_uid() != 0 {
        return Ok(());
    }
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(meta) = std::fs::metadata(dir) else {
        // A missing directory: opening the database says so, with the fix.
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    crate::sys::act_as(meta.uid(), meta.gid()).map_err(|e| {
        Error::Io(format!(
            "cannot act as the owner (uid {}) of {}: {e}",
            meta.uid(),
            dir.display()
        ))
    })
}

impl Admin<'_> {
    /// The account layer, which decides what the user, app password and TOTP commands mean.
    fn account(&self) -> Account<'_> {
        Account::new(&self.store, self.config, self.now)
    }
}

fn print_json(value: &Value) {
    println!("{value:#}");
}

fn time_json(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(clock::rfc3339(t)))
}

/// A new main password: prompted twice on a terminal, or one line from standard input. Whether it is good
/// enough is the account layer's to say.
fn read_new_password(input: &PasswordInput) -> Result<Secret, Error> {
    let password = if input.password_stdin {
        // Room for the longest password Dovecot passes on (its whole request is 512 bytes), so that the
        // buffer never reallocates and leaves a copy of the password behind; longer input is cut there.
        let mut line = Zeroizing::new(Vec::with_capacity(MAX_BYTES + 2));
        std::io::Read::take(std::io::stdin().lock(), (MAX_BYTES + 2) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::Io(format!("cannot read the password from standard input: {e}")))?;
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        Secret::from_slice(trimmed)
    } else if std::io::stdin().is_terminal() {
        let first = prompt("New password: ")?;
        let second = prompt("Repeat password: ")?;
        if first.expose() != second.expose() {
            return Err(Error::Refused(
                "the two passwords differ; nothing was changed".into(),
            ));
        }
        first
    } else {
        return Err(Error::Usage(
            "standard input is not a terminal: pass the password on it with --password-stdin"
                .into(),
        ));
    };
    Ok(password)
}

fn prompt(text: &str) -> Result<Secret, Error> {
    let typed = Zeroizing::new(
        rpassword::prompt_password(text)
            .map_err(|e| Error::Io(format!("cannot read the password: {e}")))?,
    );
    Ok(Secret::from_slice(typed.as_bytes()))
}
