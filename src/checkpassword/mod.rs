//! The checkpassword protocol as Dovecot speaks it: the request on fd 3, the mode and request facts in the
//! environment (`request.rs`), the reply on fd 4 or through the REPLY program and the exit code
//! (`reply.rs`), all within a time limit (`watchdog.rs`). What the answer is comes from `auth.rs` (the
//! decision) and `refusal.rs` (how a refusal with a hint reaches this client).
//!
//! Each run logs one line: the decision that Dovecot actually got. It goes out after the reply, so that a
//! reply that could not be delivered is logged as the temporary failure Dovecot saw.

mod reply;
mod request;
mod watchdog;

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::auth::{self, Attempt, Authenticator, Decision, Outcome, Reason};
use crate::bans::{self, Policy};
use crate::config::{self, Config};
use crate::logline::{Level, LogLine};
use crate::net::Origin;
use crate::password::{Gate, Hasher};
use crate::refusal::{self, Consumer};
use crate::secret::Secret;
use crate::store::Store;
use crate::{banlist, clock, sys};

use reply::Answer;
use request::{Mode, RequestEnv};

/// Runs one checkpassword request and returns the exit code. Never panics outward: a panic is a temporary
/// failure, like every internal fault.
pub fn run(
    db: &Path,
    config_path: &Path,
    explicit_config: bool,
    caller: Caller,
    reply: &[OsString],
) -> u8 {
    let started = Instant::now();
    // First of all, before fd 3 is read: the password must never reach a core file or another process of the
    // Dovecot auth user through /proc/PID/mem. Should the kernel refuse (it cannot for these arguments), the
    // login still goes on: refusing every login for a protection mailpass long ran without would turn it into
    // an outage; the Error line tells the admin.
    if let Err(e) = sys::protect_memory() {
        LogLine::new()
            .field("fault", "memory_unprotected")
            .field("error", &e.to_string())
            .emit(Level::Error);
    }
    sys::close_descriptors_from(5);
    let mode = Mode::from_env();
    let env = RequestEnv::from_env();
    // The limit holds from here on, reading the config included; the config can only move it.
    let default_limit = Duration::from_secs(config::AuthConfig::default().timeout);
    if let Err(e) = watchdog::start(default_limit) {
        // Without the time limit a hung database would hang the login for minutes: refuse to run.
        env.log("tempfail", "internal_error", "-")
            .field("error", &format!("cannot start the time limit: {e}"))
            .emit(Level::Error);
        return Answer::TempFail.exit_code(mode);
    }
    // Both protocol descriptors are taken before any file is opened, which could land on their numbers if
    // Dovecot did not open them. fd 4 stays open until the reply: a REPLY program exec'ed from here
    // inherits it.
    let fds = Fds {
        request: sys::take_inherited_fd(3),
        reply: sys::take_inherited_fd(4),
    };
    // Non-dumpable keeps new tracers out, but one that attached before (another process of the Dovecot auth
    // user, in the moment between exec and `protect_memory`) stays: then the password is not read at all.
    if let Some(tracer) = tracer() {
        env.log("tempfail", "traced", "-")
            .field("error", &format!("process {tracer} is tracing this login"))
            .emit(Level::Error);
        return Answer::TempFail.exit_code(mode);
    }
    let config = Config::load(config_path, explicit_config);
    // Nothing is shared across the unwind boundary but read-only inputs; a panic only picks the exit code.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve(db, config, caller, reply, fds, mode, &env, started)
    })) {
        Ok(code) => code,
        Err(_) => {
            env.log("tempfail", "internal_error", "-")
                .emit(Level::Error);
            Answer::TempFail.exit_code(mode)
        }
    }
}

/// The pid of a process tracing this one (`TracerPid` in /proc/self/status), if any. Unreadable means unknown,
/// which is not treated as traced.
fn tracer() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid != 0)
}

/// Who runs mailpass, which decides how "next passdb" and a final refusal travel when `[auth] next_passdb`
/// is on (see the README's "Route 2").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Dovecot's checkpassword passdb: success, failure (which a chain continues on) or internal failure.
    Dovecot,
    /// The same, run with `--chained` by the chained config: a failure is known to go on to the next passdb.
    DovecotChained,
    /// mailpass.lua: exit 4 is PASSDB_RESULT_NEXT, and a failure is final (`result_failure = return-fail`).
    Lua,
}

/// The checkpassword protocol's descriptors: the request (fd 3) and the reply (fd 4).
struct Fds {
    request: Option<File>,
    reply: Option<File>,
}

/// An answer and the line that says why, logged once the answer is delivered.
struct Answered {
    answer: Answer,
    line: LogLine,
    /// `result:reason`, for the line that reports the answer lost.
    summary: String,
}

impl Answered {
    fn new(env: &RequestEnv, answer: Answer, result: &str, reason: &str, user: &str) -> Answered {
        Answered {
            answer,
            line: env.log(result, reason, user),
            summary: format!("{result}:{reason}"),
        }
    }

    fn with(mut self, key: &str, value: &str) -> Answered {
        self.line = self.line.field(key, value);
        self
    }

    /// For what happens before a request is decided: logged at once, nothing to deliver.
    fn now(self, mode: Mode) -> u8 {
        let code = self.answer.exit_code(mode);
        self.line.emit(level_of(&self.answer));
        code
    }
}

/// How a refusal reaches Dovecot. A hint goes to a login process as "success + nologin + reason" (see
/// `refusal.rs`). In a chain through Dovecot's checkpassword passdb, where a failure would let the next
/// passdb decide, every refusal is final: the nologin form (with Dovecot's own words when there is no hint) to
/// a login process, an internal failure to anyone else. `delay` gives the `delay_until` of a nologin form.
fn refusal_answer<E>(
    config: &Config,
    caller: Caller,
    env: &RequestEnv,
    user: &str,
    hint: Option<auth::Hint>,
    delay: impl FnOnce() -> Result<Option<i64>, E>,
) -> Result<Answer, E> {
    let chained = match caller {
        Caller::DovecotChained => true,
        Caller::Dovecot => config.auth.next_passdb,
        Caller::Lua => false,
    };
    let consumer = Consumer::of(&env.service, env.session.as_deref());
    Ok(match consumer {
        Consumer::LoginProcess if hint.is_some() || chained => Answer::Refuse(
            refusal::nologin_fields(user, hint, delay()?, config.web.page_url().as_deref()),
        ),
        Consumer::LoginProcess | Consumer::Other if chained => Answer::Stop,
        _ => Answer::Failed,
    })
}

fn level_of(answer: &Answer) -> Level {
    match answer {
        Answer::TempFail | Answer::Misuse => Level::Error,
        _ => Level::Info,
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    db: &Path,
    config: Result<Config, config::ConfigError>,
    caller: Caller,
    reply: &[OsString],
    fds: Fds,
    mode: Mode,
    env: &RequestEnv,
    started: Instant,
) -> u8 {
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            return Answered::new(env, Answer::TempFail, "tempfail", "bad_config", "-")
                .with("error", &e.to_string())
                .now(mode);
        }
    };
    watchdog::set_limit(Duration::from_secs(config.auth.timeout));
    let fd4 = fds.reply;
    if let Some(text) = env.ip.as_deref()
        && Origin::of(text) == Some(Origin::Unparsed)
    {
        // Dovecot sent an address that is none: it still counts (in the `unparsed` bucket, so that malformed
        // addresses cannot dodge the ban policy), but someone should find out why.
        LogLine::new()
            .field("fault", "unparsed_address")
            .field("ip", text)
            .field("counted_in", crate::net::UNPARSED)
            .emit(Level::Error);
    }
    let request = match request::read_request(fds.request) {
        Ok(request) => request,
        Err(problem) => {
            // For a lookup, exit 2 would read as success: a malformed one is an internal failure there.
            let answer = if mode.is_lookup() {
                Answer::TempFail
            } else {
                Answer::Misuse
            };
            return Answered::new(env, answer, "tempfail", "bad_request", "-")
                .with("error", problem)
                .now(mode);
        }
    };
    let Some(user) = request::valid_user_name(&request.user) else {
        // No name mailpass could know: in a chain, the next passdb decides.
        if config.auth.next_passdb && mode == Mode::Check {
            let answer = next_answer(caller);
            return Answered::new(env, answer, "next", "invalid_user_name", "-").now(mode);
        }
        return Answered::new(env, Answer::Failed, "fail", "invalid_user_name", "-")
            .with("counted", "no")
            .now(mode);
    };
    // A reply that cannot go out would be lost after codes are burnt and steps claimed: check first.
    if reply::writes_fd4(reply) && !fd4.as_ref().is_some_and(sys::is_writable) {
        return Answered::new(env, Answer::TempFail, "tempfail", "reply_unusable", user)
            .with(
                "error",
                "fd 4 is not open for writing: nowhere to send the reply",
            )
            .now(mode);
    }
    if mode == Mode::Check
        && let Some(network) = refused_by_banlist(db, &config, env, user)
    {
        // The ban list is read without opening SQLite: the brake is Dovecot's failure delay alone.
        let now = clock::now();
        let delay = || {
            let wait = config.auth.failure_delay;
            Ok::<_, std::convert::Infallible>((wait > 0).then(|| now + wait as i64 + 1))
        };
        let Ok(answer) = refusal_answer(&config, caller, env, user, None, delay);
        let answered = Answered::new(env, answer, "fail", bans::BANNED_REASON, user)
            .with("counted", "no")
            .with("ban", &network)
            .with("credential", "-");
        return deliver(answered, reply, fd4, mode, env, user);
    }
    let busy = Duration::from_secs((config.auth.timeout / 2).clamp(1, 5));
    let store = match Store::open_existing(db, busy) {
        Ok(store) => store,
        Err(e) => {
            return Answered::new(env, Answer::TempFail, "tempfail", "db_unavailable", user)
                .with("error", &e.to_string())
                .now(mode);
        }
    };
    let answered = match mode {
        Mode::Check => {
            // A wait for an argon2 slot leaves a third of the time limit for the hashing and the record.
            let limit = Duration::from_secs(config.auth.timeout);
            let gate = Gate::beside(db, config.argon2.max_concurrent, started + limit * 2 / 3);
            check(&store, &config, caller, &gate, env, user, &request.secret)
        }
        Mode::UserdbLookup | Mode::CredentialsLookup => lookup(&store, &config, env, user, mode),
    };
    drop(store);
    deliver(answered, reply, fd4, mode, env, user)
}

/// Delivers the answer, then logs what Dovecot got: the decision, or the temporary failure that replaced it.
fn deliver(
    answered: Answered,
    reply: &[OsString],
    fd4: Option<File>,
    mode: Mode,
    env: &RequestEnv,
    user: &str,
) -> u8 {
    let Answered {
        answer,
        line,
        summary,
    } = answered;
    let level = level_of(&answer);
    // A REPLY program replaces this process, so the line must go out before; if the exec fails, a second
    // line says so.
    let logged_before_exec = std::cell::Cell::new(false);
    let mut pending = Some(line);
    let delivered = reply::deliver(answer, reply, fd4, mode, || {
        if let Some(line) = pending.take() {
            line.emit(level);
            logged_before_exec.set(true);
        }
    });
    match delivered {
        Ok(code) => {
            if let Some(line) = pending {
                line.emit(level);
            }
            code
        }
        Err(error) => {
            let reason = if logged_before_exec.get() {
                "reply_exec_failed"
            } else {
                "reply_write_failed"
            };
            env.log("tempfail", reason, user)
                .field("lost", &summary)
                .field("error", &error)
                .emit(Level::Error);
            Answer::TempFail.exit_code(mode)
        }
    }
}

/// Refuses a banned address from the ban list beside the database, without opening SQLite (see
/// `banlist.rs`). `None` sends the attempt on to the database, which refuses banned addresses as well.
fn refused_by_banlist(db: &Path, config: &Config, env: &RequestEnv, user: &str) -> Option<String> {
    let text = env.ip.as_deref()?;
    let origin = Origin::of(text)?;
    let ip = match origin {
        Origin::Ip(ip) if Policy::new(&config.bans).allowlisted_by_config(ip) => return None,
        Origin::Ip(ip) => ip.to_string(),
        Origin::Unparsed => text.to_string(),
    };
    let now = clock::now();
    let network = banlist::lookup(db, origin, now)?;
    let refusal = banlist::Refusal {
        time: now,
        ip,
        user: user.to_string(),
        service: env.service.clone(),
    };
    banlist::append(db, &refusal, &network).ok()?;
    Some(network)
}

fn check(
    store: &Store,
    config: &Config,
    caller: Caller,
    gate: &Gate,
    env: &RequestEnv,
    user: &str,
    secret: &Secret,
) -> Answered {
    let tempfail = |reason: &str, error: String| {
        Answered::new(env, Answer::TempFail, "tempfail", reason, user).with("error", &error)
    };
    let hasher = match Hasher::new(&config.argon2) {
        Ok(hasher) => hasher,
        Err(e) => return tempfail("bad_config", e.to_string()),
    };
    let now = clock::now();
    let authenticator = Authenticator {
        store,
        hasher: &hasher,
        config,
        now,
        gate,
    };
    let attempt = Attempt {
        user,
        secret,
        service: &env.service,
        ip: env.ip.as_deref(),
    };
    let decision = match authenticator.authenticate(&attempt) {
        Ok(decision) => decision,
        Err(e @ auth::AuthError::Overloaded { counted }) => {
            return tempfail(e.kind(), e.to_string()).with("counted", yes_no(counted));
        }
        Err(auth::AuthError::Store(e)) => {
            return tempfail("db_unavailable", store.explain(e).to_string());
        }
        Err(e) => return tempfail(e.kind(), e.to_string()),
    };
    let answer = match &decision.outcome {
        Outcome::Accepted(_) => Answer::Accept(user_fields(&decision.user, config)),
        Outcome::Next => next_answer(caller),
        Outcome::Rejected(_) => {
            let delay = || {
                let policy = Policy::new(&config.bans);
                let network = env
                    .ip
                    .as_deref()
                    .and_then(Origin::of)
                    .map(|o| policy.bucket_of(o).to_string());
                refusal::delay_until(
                    store,
                    &config.auth,
                    network.as_deref(),
                    config.bans.window,
                    now,
                )
            };
            match refusal_answer(config, caller, env, &decision.user, decision.hint, delay) {
                Ok(answer) => answer,
                Err(e) => return tempfail("db_unavailable", e.to_string()),
            }
        }
    };
    decision_answered(env, answer, &decision)
}

fn decision_answered(env: &RequestEnv, answer: Answer, decision: &Decision) -> Answered {
    match &decision.outcome {
        Outcome::Accepted(credential) => {
            let name = match credential {
                auth::Credential::AppPassword { name, .. } => name.as_str(),
                other => other.reason(),
            };
            Answered::new(env, answer, "ok", credential.reason(), &decision.user)
                .with("credential", name)
        }
        Outcome::Next => Answered::new(env, answer, "next", "not_mine", &decision.user),
        Outcome::Rejected(reason) => {
            let stop = matches!(answer, Answer::Stop);
            let mut answered = Answered::new(env, answer, "fail", reason.name(), &decision.user)
                .with("counted", yes_no(decision.counted));
            if let Some(network) = &decision.ban {
                answered = answered.with("ban", network);
            }
            if stop {
                // A final refusal that Dovecot got as an internal failure: what the consumer saw.
                answered = answered.with("sent_as", "tempfail");
            }
            if *reason == Reason::SecondFactorRequired || *reason == Reason::MainPasswordRefused {
                let fix = format!("mailpass app-password add {} --name ...", decision.user);
                answered
                    .with("credential", "main_password")
                    .with("hint", &fix)
            } else {
                answered.with("credential", "-")
            }
        }
    }
}

/// "Let the next passdb decide", as each caller understands it: mailpass.lua's own exit code, or a failure,
/// which Dovecot's chained checkpassword passdb continues on.
fn next_answer(caller: Caller) -> Answer {
    match caller {
        Caller::Lua => Answer::Next,
        Caller::Dovecot | Caller::DovecotChained => Answer::Failed,
    }
}

/// The log's spelling of a flag, as a log watcher (fail2ban) matches it.
fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

fn lookup(store: &Store, config: &Config, env: &RequestEnv, user: &str, mode: Mode) -> Answered {
    match auth::lookup(store, user) {
        Ok(None) => Answered::new(env, Answer::UnknownUser, "fail", "user_unknown", user),
        Ok(Some(_)) if mode == Mode::CredentialsLookup => {
            // mailpass keeps only hashes: there is no password to hand back for CRAM-MD5 and friends.
            Answered::new(
                env,
                Answer::TempFail,
                "tempfail",
                "credentials_lookup_unsupported",
                user,
            )
        }
        Ok(Some(name)) => {
            let answer = Answer::Accept(user_fields(&name, config));
            Answered::new(env, answer, "ok", "userdb_lookup", &name)
        }
        Err(e) => Answered::new(env, Answer::TempFail, "tempfail", e.kind(), user)
            .with("error", &e.to_string()),
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
