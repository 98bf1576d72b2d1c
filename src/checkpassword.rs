//! The checkpassword protocol as Dovecot speaks it: the request on fd 3, the mode and request facts in the
//! environment, the reply on fd 4 (or through the REPLY program), the answer in the exit code. The exit
//! codes are decided in one place, `Answer::exit_code`; the table is in the README.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::auth::{self, Attempt, Authenticator, Decision, Hint, Outcome, Reason};
use crate::bans::{self, Policy};
use crate::config::{Config, ConfigError};
use crate::logline::LogLine;
use crate::password::Hasher;
use crate::secret::Secret;
use crate::store::Store;
use crate::sys;
use crate::{banlist, clock, net};

/// Dovecot never sends more; anything longer is not Dovecot.
const MAX_REQUEST: usize = 512;

/// The reply program Dovecot appends; mailpass writes what it would write itself (see the README).
const DOVECOT_REPLY: &str = "checkpassword-reply";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Check,
    UserdbLookup,
    CredentialsLookup,
}

impl Mode {
    fn from_env() -> Mode {
        let set = |name| std::env::var_os(name).is_some_and(|v| v == "1");
        match (set("AUTHORIZED"), set("CREDENTIALS_LOOKUP")) {
            (false, _) => Mode::Check,
            (true, false) => Mode::UserdbLookup,
            (true, true) => Mode::CredentialsLookup,
        }
    }

    fn is_lookup(self) -> bool {
        self != Mode::Check
    }
}

/// Every way a run can end.
enum Answer {
    /// Success (or, with `nologin`, a refusal the client is told about): the reply fields go out.
    Reply(Vec<String>),
    Failed,
    UnknownUser,
    Misuse,
    TempFail,
}

impl Answer {
    fn exit_code(&self, mode: Mode) -> u8 {
        match (self, mode.is_lookup()) {
            (Answer::Reply(_), false) => 0,
            (Answer::Reply(_), true) => 2,
            (Answer::Failed, false) => 1,
            (Answer::Failed | Answer::UnknownUser, true) => 3,
            (Answer::UnknownUser, false) => 1,
            (Answer::Misuse, _) => 2,
            (Answer::TempFail, _) => 111,
        }
    }
}

/// Facts about the request that Dovecot puts in the environment.
struct RequestEnv {
    service: String,
    ip: Option<String>,
}

impl RequestEnv {
    fn from_env() -> RequestEnv {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        RequestEnv {
            service: var("SERVICE").unwrap_or_else(|| "-".into()),
            ip: var("TCPREMOTEIP").or_else(|| var("REMOTE_IP")),
        }
    }

    fn log(&self, result: &str, reason: &str, user: &str) -> LogLine {
        LogLine::new()
            .field("result", result)
            .field("reason", reason)
            .field("user", user)
            .optional("ip", self.ip.as_deref())
            .field("service", &self.service)
    }
}

struct Request {
    user: Vec<u8>,
    secret: Secret,
}

/// Runs one checkpassword request and returns the exit code. Never panics outward: a panic is a temporary
/// failure, like every internal fault.
pub fn run(db: &Path, config: Result<Config, ConfigError>, reply: &[OsString]) -> u8 {
    sys::close_descriptors_from(5);
    let mode = Mode::from_env();
    let env = RequestEnv::from_env();
    // Nothing is shared across the unwind boundary but read-only inputs; a panic only picks the exit code.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve(db, config, reply, mode, &env)
    })) {
        Ok(code) => code,
        Err(_) => {
            env.log("tempfail", "internal_error", "-").emit();
            Answer::TempFail.exit_code(mode)
        }
    }
}

fn serve(
    db: &Path,
    config: Result<Config, ConfigError>,
    reply: &[OsString],
    mode: Mode,
    env: &RequestEnv,
) -> u8 {
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            env.log("tempfail", "bad_config", "-")
                .field("error", &e.to_string())
                .emit();
            return Answer::TempFail.exit_code(mode);
        }
    };
    if let Err(e) = start_watchdog(Duration::from_secs(config.auth.timeout), mode) {
        // Without the time limit a hung database would hang the login for minutes: refuse to run.
        env.log("tempfail", "internal_error", "-")
            .field("error", &format!("cannot start the time limit: {e}"))
            .emit();
        return Answer::TempFail.exit_code(mode);
    }
    // Both protocol descriptors are taken before anything opens a file that could land on their numbers.
    // fd 4 stays open until the reply: a REPLY program exec'ed from here inherits it.
    let fd4 = sys::take_inherited_fd(4);
    let request = match read_request() {
        Ok(request) => request,
        Err(problem) => {
            env.log("tempfail", "bad_request", "-")
                .field("error", problem)
                .emit();
            return Answer::Misuse.exit_code(mode);
        }
    };
    let Some(user) = valid_user_name(&request.user) else {
        env.log("fail", "invalid_user_name", "-").emit();
        return Answer::Failed.exit_code(mode);
    };
    if mode == Mode::Check
        && let Some(network) = refused_by_banlist(db, &config, env, user)
    {
        env.log("fail", bans::BANNED_REASON, user)
            .field("ban", &network)
            .field("credential", "-")
            .emit();
        return Answer::Failed.exit_code(mode);
    }
    let busy = Duration::from_secs((config.auth.timeout / 2).clamp(1, 5));
    let store = match Store::open_existing(db, busy) {
        Ok(store) => store,
        Err(e) => {
            env.log("tempfail", "db_unavailable", user)
                .field("error", &e.to_string())
                .emit();
            return Answer::TempFail.exit_code(mode);
        }
    };
    let answer = match mode {
        Mode::Check => check(&store, &config, env, user, &request.secret),
        Mode::UserdbLookup | Mode::CredentialsLookup => lookup(&store, &config, env, user, mode),
    };
    drop(store);
    deliver(answer, reply, fd4, mode, env, user)
}

/// Refuses a banned address from the ban list beside the database, without opening SQLite (see
/// `banlist.rs`). `None` sends the attempt on to the database, which refuses banned addresses as well.
fn refused_by_banlist(db: &Path, config: &Config, env: &RequestEnv, user: &str) -> Option<String> {
    let ip = net::parse_ip(env.ip.as_deref()?)?;
    if Policy::new(&config.bans).allowlisted_by_config(ip) {
        return None;
    }
    let now = clock::now();
    let network = banlist::lookup(db, ip, now)?;
    let refusal = banlist::Refusal {
        time: now,
        ip: ip.to_string(),
        user: user.to_string(),
        service: env.service.clone(),
    };
    banlist::append(db, &refusal).ok()?;
    Some(network)
}

fn check(store: &Store, config: &Config, env: &RequestEnv, user: &str, secret: &Secret) -> Answer {
    let hasher = match Hasher::new(&config.argon2) {
        Ok(hasher) => hasher,
        Err(e) => {
            env.log("tempfail", "bad_config", user)
                .field("error", &e.to_string())
                .emit();
            return Answer::TempFail;
        }
    };
    let authenticator = Authenticator {
        store,
        hasher: &hasher,
        config,
        now: crate::clock::now(),
    };
    let attempt = Attempt {
        user,
        secret,
        service: &env.service,
        ip: env.ip.as_deref(),
    };
    match authenticator.authenticate(&attempt) {
        Ok(decision) => {
            log_decision(env, &decision);
            answer_for(&decision, config)
        }
        Err(e) => {
            env.log("tempfail", e.kind(), user)
                .field("error", &e.to_string())
                .emit();
            Answer::TempFail
        }
    }
}

fn log_decision(env: &RequestEnv, decision: &Decision) {
    let line = match &decision.outcome {
        Outcome::Accepted(credential) => {
            let name = match credential {
                auth::Credential::AppPassword { name, .. } => name.as_str(),
                other => other.reason(),
            };
            env.log("ok", credential.reason(), &decision.user)
                .field("credential", name)
        }
        Outcome::Rejected(reason) => {
            let mut line = env.log("fail", reason.name(), &decision.user);
            if let Some(network) = &decision.ban {
                line = line.field("ban", network);
            }
            if *reason == Reason::SecondFactorRequired || *reason == Reason::MainPasswordRefused {
                let fix = format!("mailpass app-password add {} --name ...", decision.user);
                line.field("credential", "main_password")
                    .field("hint", &fix)
            } else {
                line.field("credential", "-")
            }
        }
    };
    line.emit();
}

fn answer_for(decision: &Decision, config: &Config) -> Answer {
    match (&decision.outcome, decision.hint) {
        (Outcome::Accepted(_), _) => Answer::Reply(user_fields(&decision.user, config)),
        (Outcome::Rejected(_), Some(hint)) => Answer::Reply(refusal_fields(&decision.user, hint)),
        (Outcome::Rejected(_), None) => Answer::Failed,
    }
}

fn lookup(store: &Store, config: &Config, env: &RequestEnv, user: &str, mode: Mode) -> Answer {
    match auth::lookup(store, user) {
        Ok(None) => {
            env.log("fail", "user_unknown", user).emit();
            Answer::UnknownUser
        }
        Ok(Some(_)) if mode == Mode::CredentialsLookup => {
            // mailpass keeps only hashes: there is no password to hand back for CRAM-MD5 and friends.
            env.log("tempfail", "credentials_lookup_unsupported", user)
                .emit();
            Answer::TempFail
        }
        Ok(Some(name)) => {
            env.log("ok", "userdb_lookup", &name).emit();
            Answer::Reply(user_fields(&name, config))
        }
        Err(e) => {
            env.log("tempfail", e.kind(), user)
                .field("error", &e.to_string())
                .emit();
            Answer::TempFail
        }
    }
}

fn user_fields(user: &str, config: &Config) -> Vec<String> {
    std::iter::once(format!("user={user}"))
        .chain(
            config
                .userdb
                .fields(user)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        )
        .collect()
}

/// "Success + nologin + reason" is the only answer whose text Dovecot shows a client (`NO [CONTACTADMIN]`).
fn refusal_fields(user: &str, hint: Hint) -> Vec<String> {
    vec![
        format!("user={user}"),
        "nologin".to_string(),
        format!("reason={}", hint.client_text()),
    ]
}

/// Sends the answer: fields to fd 4 (or the REPLY program) and the exit code.
fn deliver(
    answer: Answer,
    reply: &[OsString],
    fd4: Option<File>,
    mode: Mode,
    env: &RequestEnv,
    user: &str,
) -> u8 {
    let Answer::Reply(fields) = answer else {
        return answer.exit_code(mode);
    };
    match reply.split_first() {
        Some((program, args)) if !is_dovecot_reply(program) => {
            if fields.iter().any(|f| f == "nologin") {
                // A qmail-style caller knows no nologin: the refusal is a plain failure there.
                return Answer::Failed.exit_code(mode);
            }
            let error = exec_reply(program, args, &fields, mode);
            env.log("tempfail", "reply_exec_failed", user)
                .field("error", &error.to_string())
                .emit();
            Answer::TempFail.exit_code(mode)
        }
        _ => match write_fd4(fd4, &fields) {
            Ok(()) => Answer::Reply(fields).exit_code(mode),
            Err(e) => {
                env.log("tempfail", "reply_write_failed", user)
                    .field("error", &e)
                    .emit();
                Answer::TempFail.exit_code(mode)
            }
        },
    }
}

fn is_dovecot_reply(program: &OsString) -> bool {
    Path::new(program)
        .file_name()
        .is_some_and(|n| n == DOVECOT_REPLY)
}

fn write_fd4(fd4: Option<File>, fields: &[String]) -> Result<(), String> {
    let mut fd4 = fd4.ok_or("fd 4 is not open: nowhere to send the reply")?;
    fd4.write_all(fields.join("\t").as_bytes())
        .map_err(|e| format!("writing fd 4: {e}"))
}

/// Execs a qmail-style REPLY program with the variables `checkpassword-reply` reads. Returns only on error.
fn exec_reply(
    program: &OsString,
    args: &[OsString],
    fields: &[String],
    mode: Mode,
) -> std::io::Error {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let mut extra = Vec::new();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "user" => {
                cmd.env("USER", value);
            }
            "userdb_home" => {
                cmd.env("HOME", value);
            }
            _ => {
                cmd.env(key, value);
                extra.push(key);
            }
        }
    }
    cmd.env("EXTRA", extra.join(" "));
    if mode.is_lookup() {
        // checkpassword-reply answers a lookup only when told it was authorized by its caller.
        cmd.env("AUTHORIZED", "2");
    }
    // Descriptors SQLite opened since start are gone with the store; close anything left but the reply pipe.
    sys::close_descriptors_from(5);
    cmd.exec()
}

fn read_request() -> Result<Request, &'static str> {
    let fd3 = sys::take_inherited_fd(3).ok_or(
        "fd 3 is not open: mailpass checkpassword is run by Dovecot's checkpassword passdb",
    )?;
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_REQUEST + 1));
    fd3.take(MAX_REQUEST as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|_| "cannot read the request on fd 3")?;
    parse_request(&buf)
}

/// `user NUL password NUL [timestamp NUL]`, at most 512 bytes.
fn parse_request(buf: &[u8]) -> Result<Request, &'static str> {
    if buf.len() > MAX_REQUEST {
        return Err("request on fd 3 is longer than 512 bytes");
    }
    let mut parts = buf.splitn(3, |&b| b == 0);
    let user = parts.next().unwrap_or_default();
    let (Some(secret), Some(_rest)) = (parts.next(), parts.next()) else {
        return Err("request on fd 3 is not NUL-terminated user and password");
    };
    Ok(Request {
        user: user.to_vec(),
        secret: Secret::from_slice(secret),
    })
}

/// A user name mailpass can hold: non-empty UTF-8 without control characters.
fn valid_user_name(raw: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(raw).ok()?;
    (!name.is_empty() && !name.chars().any(char::is_control)).then_some(name)
}

/// Dovecot never times out a checkpassword program, so mailpass bounds its own run time.
fn start_watchdog(limit: Duration, mode: Mode) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            LogLine::new()
                .field("result", "tempfail")
                .field("reason", "timeout")
                .emit();
            std::process::exit(i32::from(Answer::TempFail.exit_code(mode)));
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dovecot_request_parses_into_user_and_secret() {
        let r = parse_request(b"alice@example.org\0s3cret\0\0").expect("valid");
        assert_eq!(r.user, b"alice@example.org");
        assert_eq!(r.secret.expose(), b"s3cret");
        let lookup = parse_request(b"alice\0\0\0").expect("valid");
        assert!(lookup.secret.is_empty());
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(parse_request(b"alice").is_err());
        assert!(parse_request(b"alice\0secret").is_err());
        assert!(parse_request(&[b'a'; 513]).is_err());
        assert!(parse_request(b"").is_err());
    }

    #[test]
    fn user_names_must_be_clean_utf8() {
        assert_eq!(
            valid_user_name(b"alice@example.org"),
            Some("alice@example.org")
        );
        assert_eq!(valid_user_name(b""), None);
        assert_eq!(valid_user_name(b"al\xffice"), None);
        assert_eq!(valid_user_name(b"al\tice"), None);
    }

    #[test]
    fn exit_codes_follow_dovecots_table() {
        let reply = || Answer::Reply(vec![]);
        assert_eq!(reply().exit_code(Mode::Check), 0);
        assert_eq!(reply().exit_code(Mode::UserdbLookup), 2);
        assert_eq!(Answer::Failed.exit_code(Mode::Check), 1);
        assert_eq!(Answer::UnknownUser.exit_code(Mode::UserdbLookup), 3);
        assert_eq!(Answer::UnknownUser.exit_code(Mode::Check), 1);
        assert_eq!(Answer::Misuse.exit_code(Mode::Check), 2);
        assert_eq!(Answer::TempFail.exit_code(Mode::Check), 111);
    }

    #[test]
    fn only_dovecots_reply_program_is_replaced_by_writing_fd4() {
        assert!(is_dovecot_reply(
            &"/usr/lib/dovecot/checkpassword-reply".into()
        ));
        assert!(!is_dovecot_reply(&"/usr/sbin/qmail-pop3d".into()));
    }
}
