//! `make bench` (`cargo bench --bench web`): what the self-service page's load does to mail logins. One real
//! Dovecot 2.3 on the checkpassword route and one `mailpass web`, both on the same database; 50 users signed in
//! on the page (50 sessions, one each); IMAP logins with an app password measured with and without the page
//! under load.
//!
//! What is timed: IMAP `LOGIN user app-password` on a connection that is already open, from sending the command
//! to the tagged answer (connecting, the greeting and LOGOUT are not timed), as in benches/dovecot.rs; the user
//! has 10 app passwords and logs in with the last one made. Each round has three phases, in an order that rotates
//! so that drift on a shared machine hits all alike: idle (the page gets no request), paced and flat out. Under
//! load, 50 client threads, each with its own signed-in session and connection, loop over `GET /`,
//! `GET /app-passwords`, `POST /app-passwords` (creates an app password with a name of its own; the page shows it
//! once) and `POST /app-passwords/revoke` (revokes it again, so that the list stays short). Paced, each client
//! pauses 0.5 to 1.5 s (uniform) before each request: 50 people using the page at once, each clicking about once
//! a second, which is what the goal is about. Flat out, the clients do not pause (about 38 requests a second
//! each): a stress figure, reported against the same goal. The logins of a loaded phase start once the clients
//! have had 200 answers in it (four per client on average, so that every kind of request is in the mix); the
//! phase ends after them, and the clients finish the cycle they are in, without pausing, before the next phase
//! starts. The request rows count only the requests sent while a measured phase's load ran.
//!
//! Reported: the IMAP medians and p90 of the three phases and each load's ratio to idle, against the goal "IMAP
//! LOGIN under web load <= 1.2x idle", with "met" or "not met" (never asserted); per load, each kind of web
//! request's median and p90, the requests per second over the loaded phases, and the CPU time the page and the
//! bench's own clients used meanwhile (the clients run on the same machine). The run fails only when a login or
//! a request does: every IMAP login must answer `a1 OK`, every page 200, every creation show a new app password,
//! every revocation answer 303 (a benchmark of a failure is meaningless).
//!
//! Setup, not measured: the users (the admin CLI), and the 50 sign-ins on the page, each of which runs argon2.
//! Argon2 runs at mailpass's default parameters (m=19456 KiB, t=2, p=1, the production config; checked in the
//! database), not the tests' small ones; the page runs with the default `[web]` settings.
//!
//! The Dovecot is the end-to-end tests' (tests/dovecot/server.rs): own temp dir and config generated from the
//! shipped dovecot-conf/ files, loopback high ports, started as root and stopped by pid when the run ends, also
//! when it fails. The page runs as the database's owner (Dovecot's auth user, as `make demo` runs it), listens on
//! a loopback port the kernel picks and is stopped by pid (SIGTERM, then SIGKILL) when the run ends, also when it
//! fails.
//!
//! The binary is not built here: `make bench` builds it first. `MAILPASS_BIN` names another binary (default
//! `target/release/mailpass`); it is both what Dovecot runs and the page. `BENCH_ITERS` sets the number of
//! measured rounds (default 20, after one warm-up round), each with 10 logins per phase. Needs root.

#[path = "../tests/dovecot/client.rs"]
#[allow(dead_code)]
mod client;
// The harness's common module (the admin CLI runner); it allows its own dead code.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/web/cookies.rs"]
mod cookies;
#[path = "../tests/dovecot/server.rs"]
#[allow(dead_code)]
mod server;

#[path = "support/phc.rs"]
mod phc;
#[path = "support/route.rs"]
mod route;
#[path = "support/settings.rs"]
mod settings;
#[path = "support/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::Params;

use phc::phc_params_in_db;
use route::{
    add_user_with_app_passwords, admin, dovecot_version, imap_login, start_uncached, still_running,
};
use server::{Flavor, Options, Route};
use stats::{median, percentile, sorted};

const DEFAULT_ITERS: usize = 20;
const WARMUP_ROUNDS: usize = 1;
/// IMAP logins in each phase of a round.
const LOGINS_PER_PHASE: usize = 10;
/// Signed-in web sessions, one user each, and as many client threads.
const WEB_USERS: usize = 50;
/// IMAP LOGIN under web load against idle.
const GOAL: f64 = 1.2;
/// A paced session's mean pause before each request: one request a second, a fast human's clicking.
const THINK: Duration = Duration::from_secs(1);

const IMAP_USER: &str = "imap@example.org";
const IMAP_PASSWORD: &str = "bench imap main password";
/// The IMAP user's app passwords; the logins use the last one made.
const APP_PASSWORDS: usize = 10;

/// How long one HTTP request may take before the run fails.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the page may take to say where it listens, and to stop.
const WEB_START_TIMEOUT: Duration = Duration::from_secs(10);
const WEB_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a loaded phase waits for every client's first answer, and the clients to finish their cycles.
const RAMP_TIMEOUT: Duration = Duration::from_secs(30);
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(150);

fn main() -> ExitCode {
    // `cargo test --all-targets` runs harness = false benches as plain programs; only `cargo bench` passes
    // `--bench`. Do not start Dovecot inside a test run.
    if !std::env::args().skip(1).any(|arg| arg == "--bench") {
        println!("web bench: skipped (run it with `make bench` or `cargo bench --bench web`)");
        return ExitCode::SUCCESS;
    }
    // What identifies this run's processes: the Dovecot's config, and the route's copy of mailpass (the page
    // and every checkpassword process run it).
    let mut needles = Vec::new();
    // The route (Dovecot) and the page are stopped when `run` returns or unwinds, before the check below.
    let result = run(&mut needles);
    let mut ok = true;
    if let Err(e) = result {
        eprintln!("bench web: error: {e}");
        ok = false;
    }
    let running = still_running(&needles);
    if running.is_empty() {
        println!("dovecot and mailpass web: stopped");
    } else {
        eprintln!(
            "bench web: error: still running after the run: {}",
            running.join("; ")
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn web_user(i: usize) -> (String, String) {
    (
        format!("web{i:02}@example.org"),
        format!("web bench password {i:02}"),
    )
}

/// The users: the IMAP user with `APP_PASSWORDS` app passwords (the last is returned), and the web users.
fn add_users(route: &Route) -> Result<String, String> {
    let password =
        add_user_with_app_passwords(route, IMAP_USER, IMAP_PASSWORD, APP_PASSWORDS, "mail")?;
    for i in 1..=WEB_USERS {
        let (user, password) = web_user(i);
        admin(
            route,
            &["user", "add", &user, "--password-stdin"],
            &format!("{password}\n"),
        )?;
    }
    // The admin CLI ran as root: the database files belong to the auth user again.
    route.chown_db(route.auth_ids)?;
    Ok(password)
}

/// A process's user and system CPU time so far, in clock ticks (`/proc/PID/stat`, all its threads).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, which may hold spaces): state is the first, utime
    // the 12th, stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `mailpass web` on a loopback port the kernel picks, as the database's owner; stopped by pid when dropped.
struct WebServer {
    child: Option<Child>,
    pid: u32,
    /// `http://127.0.0.1:PORT`: also the Origin its forms must send (no `[web] origin` in the config).
    url: String,
    /// Its stderr lines, read by a thread.
    log: Arc<Mutex<Vec<String>>>,
}

impl WebServer {
    fn start(route: &Route) -> Result<WebServer, String> {
        // The route's copy of the binary: the one Dovecot runs, reachable by the auth user.
        let bin = route.layout.host("mailpass");
        let (uid, gid) = route.auth_ids;
        let mut child = Command::new(&bin)
            .env_clear()
            .env("MAILPASS_DB", &route.env.db)
            .env("MAILPASS_CONFIG", &route.env.config)
            .current_dir(route.layout.host("db"))
            .args(["web", "--listen", "127.0.0.1:0"])
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {} web: {e}", bin.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut server = WebServer {
            child: Some(child),
            pid,
            url: String::new(),
            log: log.clone(),
        };
        let Some(stderr) = stderr else {
            return Err("mailpass web: no stderr pipe".into());
        };
        // Every line goes to the log, and to the bench thread until it has read where the page listens.
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + WEB_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("mailpass web: listening on ") {
                        server.url = url.to_string();
                        return Ok(server);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "mailpass web exited before it listened\n{}",
                        server.log_tail(10)
                    ));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "mailpass web did not say where it listens within {WEB_START_TIMEOUT:?}\n{}",
                        server.log_tail(10)
                    ));
                }
            }
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "--- last lines of mailpass web's stderr:\n{}",
            log[log.len().saturating_sub(n)..].join("\n")
        )
    }

    /// SIGTERM (a graceful stop), then SIGKILL if it is still running after `WEB_STOP_TIMEOUT`; reaps it.
    /// Returns how it ended; does nothing the second time.
    fn stop(&mut self) -> Option<Result<ExitStatus, String>> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + WEB_STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(Ok(status)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Some(Err(format!(
            "mailpass web (pid {}) did not stop within {WEB_STOP_TIMEOUT:?} of SIGTERM and was killed",
            self.pid
        )))
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response, read whole.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    /// The `value` of the first input named `name`.
    fn input_value(&self, name: &str) -> Option<&str> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(&self.body[start..end])
    }

    /// The values of the checked boxes named `name`, as a browser sends them.
    fn checked(&self, name: &str) -> Vec<&str> {
        let marker = format!("name=\"{name}\" value=\"");
        self.body
            .match_indices(&marker)
            .filter_map(|(at, _)| {
                let start = at + marker.len();
                let end = self.body[start..].find('"')? + start;
                let tag_end = self.body[end..].find('>')? + end;
                self.body[end..tag_end]
                    .contains(" checked")
                    .then(|| &self.body[start..end])
            })
            .collect()
    }

    /// The text of the element with this id (no markup inside it).
    fn text_of(&self, id: &str) -> Option<&str> {
        let marker = format!("id=\"{id}\"");
        let at = self.body.find(&marker)?;
        let start = self.body[at..].find('>')? + at + 1;
        let end = self.body[start..].find('<')? + start;
        Some(self.body[start..end].trim())
    }

    /// What went wrong, for a message: the status and the start of the body.
    fn describe(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!(
            "HTTP {}{}: {body}",
            self.status,
            self.location
                .as_deref()
                .map(|l| format!(" to {l}"))
                .unwrap_or_default()
        )
    }
}

/// One browser: its own connection and cookie jar; forms sent with the page's Origin.
struct Visitor {
    url: String,
    client: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

impl Visitor {
    fn new(url: &str) -> Result<Visitor, String> {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Visitor {
            url: url.to_string(),
            client,
            cookies: BTreeMap::new(),
        })
    }

    fn get(&mut self, path: &str) -> Result<Page, String> {
        let request = self.client.get(format!("{}{path}", self.url));
        self.send(request).map_err(|e| format!("GET {path}: {e}"))
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Page, String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        let request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &self.url)
            .body(form.finish());
        self.send(request).map_err(|e| format!("POST {path}: {e}"))
    }

    fn send(&mut self, mut request: reqwest::blocking::RequestBuilder) -> Result<Page, String> {
        if let Some(jar) = cookies::header(&self.cookies) {
            request = request.header("cookie", jar);
        }
        let response = request.send().map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers();
        for cookie in headers.get_all("set-cookie") {
            cookies::keep(&mut self.cookies, cookie.to_str().unwrap_or_default());
        }
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .text()
            .map_err(|e| format!("reading the body: {e}"))?;
        Ok(Page {
            status,
            location,
            body,
        })
    }

    /// Signs in with the password as the form does (its CSRF token, the page's Origin): a 303 to `/`.
    fn sign_in(&mut self, user: &str, password: &str) -> Result<(), String> {
        let form = self.get("/sign-in")?;
        let csrf = match (form.status, form.input_value("csrf")) {
            (200, Some(csrf)) => csrf.to_string(),
            _ => return Err(format!("GET /sign-in: {}", form.describe())),
        };
        let page = self.post(
            "/sign-in",
            &[("csrf", &csrf), ("user", user), ("password", password)],
        )?;
        if page.status != 303 || page.location.as_deref() != Some("/") {
            return Err(format!("POST /sign-in as {user}: {}", page.describe()));
        }
        Ok(())
    }
}

/// The web requests of a client's cycle.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Overview,
    List,
    Create,
    Revoke,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Overview, Kind::List, Kind::Create, Kind::Revoke];

    fn name(self) -> &'static str {
        match self {
            Kind::Overview => "GET / (overview)",
            Kind::List => "GET /app-passwords",
            Kind::Create => "POST /app-passwords (create)",
            Kind::Revoke => "POST /app-passwords/revoke (303)",
        }
    }
}

/// How the 50 sessions use the page in a loaded phase.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    /// Each session pauses about `THINK` before each request: 50 people on the page at once.
    Paced,
    /// Each session sends its next request as soon as the last is answered: a stress figure.
    FlatOut,
}

impl Load {
    const ALL: [Load; 2] = [Load::Paced, Load::FlatOut];

    fn name(self) -> &'static str {
        match self {
            Load::Paced => "50 sessions, a request a second each",
            Load::FlatOut => "50 sessions flat out (stress)",
        }
    }
}

/// One answered web request.
struct Sample {
    load: Load,
    kind: Kind,
    millis: f64,
    /// When the request was sent.
    start: Instant,
    /// When the answer was read whole.
    end: Instant,
}

/// One client: a signed-in user and what it measured.
struct Client {
    user: String,
    visitor: Visitor,
    /// Cycles done, for the app passwords' names.
    cycles: usize,
    /// The app password the page showed last.
    last_shown: String,
    samples: Vec<Sample>,
    /// The load of the phase the cycle under way started in.
    load: Load,
    /// Whether the next request is the first of a loaded phase (its pause is shorter, to spread the start).
    fresh: bool,
    /// The phase the client last started a cycle in (`Control`'s count of phases).
    phase_seen: u64,
}

/// Whether the page showed an app password: `xxxx-xxxx-xxxx-xxxx`, letters and digits.
fn is_app_password(shown: &str) -> bool {
    let groups: Vec<&str> = shown.split('-').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Client {
    /// Pauses as the phase's load says, then sends `request` and keeps its time.
    fn timed(
        &mut self,
        control: &Control,
        kind: Kind,
        request: impl FnOnce(&mut Visitor) -> Result<Page, String>,
    ) -> Result<Page, String> {
        control.think(std::mem::take(&mut self.fresh));
        let load = self.load;
        let start = Instant::now();
        let page = request(&mut self.visitor)?;
        let end = Instant::now();
        self.samples.push(Sample {
            load,
            kind,
            millis: (end - start).as_secs_f64() * 1e3,
            start,
            end,
        });
        Ok(page)
    }

    /// The overview, the list, a new app password, its revocation; each answer checked.
    fn cycle(&mut self, control: &Control) -> Result<(), String> {
        let done = &control.done;
        self.cycles += 1;
        let user = self.user.clone();
        let page = self.timed(control, Kind::Overview, |v| v.get("/"))?;
        if page.status != 200 || !page.body.contains(&user) {
            return Err(format!(
                "GET / as {user}: {} (expected 200 with the user's name)",
                page.describe()
            ));
        }
        done.fetch_add(1, Ordering::Relaxed);

        let page = self.timed(control, Kind::List, |v| v.get("/app-passwords"))?;
        let csrf = page.input_value("csrf").map(str::to_string);
        let services: Vec<String> = page
            .checked("services")
            .into_iter()
            .map(String::from)
            .collect();
        let (200, Some(csrf), false) = (page.status, csrf, services.is_empty()) else {
            return Err(format!(
                "GET /app-passwords as {user}: {} (expected 200 with the create form)",
                page.describe()
            ));
        };
        done.fetch_add(1, Ordering::Relaxed);

        let name = format!("load {}", self.cycles);
        let mut fields = vec![("csrf", csrf.as_str()), ("name", name.as_str())];
        fields.extend(services.iter().map(|s| ("services", s.as_str())));
        fields.push(("expires", ""));
        let page = self.timed(control, Kind::Create, |v| v.post("/app-passwords", &fields))?;
        let shown = page.text_of("new-app-password").unwrap_or_default();
        if page.status != 200 || !is_app_password(shown) || shown == self.last_shown {
            return Err(format!(
                "POST /app-passwords as {user}: {} (expected 200 with a new app password)",
                page.describe()
            ));
        }
        self.last_shown = shown.to_string();
        done.fetch_add(1, Ordering::Relaxed);

        let page = self.timed(control, Kind::Revoke, |v| {
            v.post(
                "/app-passwords/revoke",
                &[("csrf", csrf.as_str()), ("name", name.as_str())],
            )
        })?;
        if page.status != 303 || page.location.as_deref() != Some("/app-passwords?notice=revoked") {
            return Err(format!(
                "POST /app-passwords/revoke as {user}: {} (expected 303 to /app-passwords?notice=revoked)",
                page.describe()
            ));
        }
        done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// Clients wait (the idle phase, and between phases).
    Park,
    /// Clients loop over their cycle.
    Load(Load),
    /// Clients return.
    Stop,
}

/// What the bench thread and the clients share.
struct Control {
    /// The phase, how many clients are inside a cycle, and how many phases have begun.
    state: Mutex<(Phase, usize, u64)>,
    changed: Condvar,
    /// Requests answered so far (all clients).
    done: AtomicUsize,
    /// The first client failure.
    failed: Mutex<Option<String>>,
}

impl Control {
    fn set(&self, phase: Phase) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = phase;
        state.2 += 1;
        self.changed.notify_all();
    }

    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until no client is inside a cycle.
    fn quiesce(&self) -> Result<(), String> {
        let deadline = Instant::now() + QUIESCE_TIMEOUT;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.1 > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} web clients still busy {QUIESCE_TIMEOUT:?} after the load ended",
                    state.1
                ));
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// The pause before a request in a paced phase: uniform over 0.5 to 1.5 `THINK` (0 to 1 for the first
    /// request of the phase, so that the sessions do not start in step). It ends early when the phase does, so
    /// that the client finishes its cycle at once.
    fn think(&self, first: bool) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == Phase::Load(Load::Paced) {
            let pause = THINK.mul_f64(if first {
                rand::random_range(0.0..1.0)
            } else {
                rand::random_range(0.5..1.5)
            });
            let _ = self
                .changed
                .wait_timeout_while(state, pause, |s| s.0 == Phase::Load(Load::Paced))
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A client's loop: one cycle after the other while the phase is `Load`.
    fn serve(&self, client: &mut Client) {
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while state.0 == Phase::Park {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                let Phase::Load(load) = state.0 else {
                    return;
                };
                // A client may come back from its last cycle only after the next phase began.
                client.fresh = state.2 != client.phase_seen;
                client.phase_seen = state.2;
                client.load = load;
                state.1 += 1;
            }
            let result = client.cycle(self);
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.1 -= 1;
                if let Err(e) = &result {
                    self.failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert_with(|| e.clone());
                    state.0 = Phase::Stop;
                }
                self.changed.notify_all();
            }
            if result.is_err() {
                return;
            }
        }
    }
}

/// Sets `Stop` when dropped, so that the clients return whatever way the bench thread leaves.
struct StopOnDrop<'a>(&'a Control);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(Phase::Stop);
    }
}

/// What the loaded phases of one load measured.
#[derive(Default)]
struct Loaded {
    logins: Vec<f64>,
    /// From the load's start to its end signal.
    windows: Vec<(Instant, Instant)>,
    /// CPU ticks used meanwhile by the page and by this process (its clients).
    web_ticks: u64,
    bench_ticks: u64,
}

/// What the rounds measured.
#[derive(Default)]
struct Measured {
    idle: Vec<f64>,
    paced: Loaded,
    flat_out: Loaded,
}

impl Measured {
    fn of(&self, load: Load) -> &Loaded {
        match load {
            Load::Paced => &self.paced,
            Load::FlatOut => &self.flat_out,
        }
    }
}

/// The rounds: each an idle, a paced and a flat-out phase of `LOGINS_PER_PHASE` IMAP logins, in an order that
/// rotates from round to round.
fn rounds(
    control: &Control,
    route: &Route,
    app_password: &str,
    web: &WebServer,
    iters: usize,
) -> Result<Measured, String> {
    let _stop = StopOnDrop(control);
    let web_pid = web.pid.to_string();
    let mut measured = Measured::default();
    let failed = |what: String| {
        let client = control
            .failure()
            .map(|f| format!("; a web client failed first: {f}"))
            .unwrap_or_default();
        format!("{what}{client}\n{}", web.log_tail(10))
    };
    let client_failed = || {
        control
            .failure()
            .map(|e| format!("a web client failed: {e}\n{}", web.log_tail(10)))
    };
    let total = WARMUP_ROUNDS + iters;
    let phases = [None, Some(Load::Paced), Some(Load::FlatOut)];
    for round in 0..total {
        let measure = round >= WARMUP_ROUNDS;
        for i in 0..phases.len() {
            let load = phases[(round + i) % phases.len()];
            let mut ticks = (0, 0);
            let mut start = Instant::now();
            if let Some(load) = load {
                ticks = (
                    cpu_ticks(&web_pid).unwrap_or(0),
                    cpu_ticks("self").unwrap_or(0),
                );
                start = Instant::now();
                let before = control.done.load(Ordering::Relaxed);
                control.set(Phase::Load(load));
                // The clients have had a whole cycle's answers (about a cycle each) before the logins start, so
                // that every kind of request is in the mix and the paced clients are out of step.
                let ramp = WEB_USERS * Kind::ALL.len();
                while control.done.load(Ordering::Relaxed) < before + ramp {
                    if let Some(e) = client_failed() {
                        return Err(e);
                    }
                    if start.elapsed() > RAMP_TIMEOUT {
                        return Err(failed(format!(
                            "the web clients answered fewer than {ramp} requests in {RAMP_TIMEOUT:?}"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let mut logins = Vec::with_capacity(LOGINS_PER_PHASE);
            for n in 0..LOGINS_PER_PHASE {
                let millis = imap_login(route.ports.imap, IMAP_USER, app_password).map_err(|why| {
                    failed(format!(
                        "IMAP login {} of the {} phase of round {} of {total}: {why}; a benchmark of a failed \
                         login is meaningless\n{}",
                        n + 1,
                        load.map_or("idle", Load::name),
                        round + 1,
                        route.log_tail(15)
                    ))
                })?;
                if let Some(e) = client_failed() {
                    return Err(e);
                }
                logins.push(millis);
            }
            let Some(load) = load else {
                if measure {
                    measured.idle.extend(logins);
                }
                continue;
            };
            let end = Instant::now();
            control.set(Phase::Park);
            if measure {
                let into = match load {
                    Load::Paced => &mut measured.paced,
                    Load::FlatOut => &mut measured.flat_out,
                };
                into.logins.extend(logins);
                into.windows.push((start, end));
                into.web_ticks += cpu_ticks(&web_pid).unwrap_or(0).saturating_sub(ticks.0);
                into.bench_ticks += cpu_ticks("self").unwrap_or(0).saturating_sub(ticks.1);
            }
            control.quiesce().map_err(failed)?;
            if let Some(e) = client_failed() {
                return Err(e);
            }
        }
    }
    Ok(measured)
}

fn run(needles: &mut Vec<String>) -> Result<(), String> {
    let iters = settings::iterations(DEFAULT_ITERS)?;
    let bin = settings::binary()?;
    let flavor = Flavor::Checkpassword23;
    flavor
        .check_installed()
        .map_err(|e| format!("{}: {e}", flavor.name()))?;
    let (m, t, p) = (
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
    );
    let options = Options {
        argon2: (m, t, p),
        bin: bin.clone(),
        passwd_file: Vec::new(),
    };
    let started = Instant::now();
    let route = start_uncached(flavor, "bench-web", &options, needles)?;
    let app_password = add_users(&route)?;
    let expected_phc = format!("$argon2id$v=19$m={m},t={t},p={p}$");
    let (same, other) = phc_params_in_db(&route.env.db, &expected_phc);
    if other > 0 || same < 1 {
        return Err(format!(
            "the database holds {same} PHC string(s) with m={m},t={t},p={p} and {other} with other parameters"
        ));
    }

    // Declared after the route: dropped (stopped) before it.
    let mut web = WebServer::start(&route)?;

    println!("mailpass web under load beside IMAP logins, through a real Dovecot");
    println!("  binary: {}", bin.display());
    println!(
        "  Dovecot {} on 127.0.0.1:{} (checkpassword route, auth cache off), mailpass web on {} as {}, one \
         database in {}",
        dovecot_version(flavor),
        route.ports.imap,
        web.url,
        server::AUTH_USER,
        route.layout.host.display()
    );
    println!(
        "  argon2id m={m} KiB, t={t}, p={p} (mailpass's defaults), default [web] settings; IMAP: {IMAP_USER} with \
         {APP_PASSWORDS} app passwords, logging in with the last one made"
    );

    let signing = Instant::now();
    let mut clients = Vec::with_capacity(WEB_USERS);
    for i in 1..=WEB_USERS {
        let (user, password) = web_user(i);
        let mut visitor = Visitor::new(&web.url)?;
        visitor
            .sign_in(&user, &password)
            .map_err(|e| format!("signing in: {e}\n{}", web.log_tail(10)))?;
        clients.push(Client {
            user,
            visitor,
            cycles: 0,
            last_shown: String::new(),
            samples: Vec::new(),
            load: Load::Paced,
            fresh: true,
            phase_seen: 0,
        });
    }
    println!(
        "  {WEB_USERS} users signed in on the page, one session each, in {:.2} s (setup, not measured; each \
         sign-in runs argon2)",
        signing.elapsed().as_secs_f64()
    );
    println!(
        "  {iters} rounds after {WARMUP_ROUNDS} warm-up round, each an idle, a paced and a flat-out phase (order \
         rotating) of {LOGINS_PER_PHASE} IMAP logins; under load {WEB_USERS} client threads loop over GET /, \
         GET /app-passwords, POST /app-passwords, POST /app-passwords/revoke, paced: each pausing 0.5 to 1.5 s \
         before each request, flat out: not pausing"
    );

    let control = Control {
        state: Mutex::new((Phase::Park, 0, 0)),
        changed: Condvar::new(),
        done: AtomicUsize::new(0),
        failed: Mutex::new(None),
    };
    let measuring = Instant::now();
    let measured = std::thread::scope(|scope| {
        for client in clients.iter_mut() {
            let control = &control;
            scope.spawn(move || control.serve(client));
        }
        rounds(&control, &route, &app_password, &web, iters)
    })?;
    let measuring = measuring.elapsed();
    if let Some(e) = control.failure() {
        return Err(format!("a web client failed: {e}\n{}", web.log_tail(10)));
    }
    match web.stop() {
        Some(Ok(status)) if status.success() => {}
        Some(Ok(status)) => {
            return Err(format!(
                "mailpass web ended with {status}\n{}",
                web.log_tail(10)
            ));
        }
        Some(Err(e)) => return Err(e),
        None => {}
    }
    let errors: Vec<String> = web
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains("error"))
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "mailpass web logged {} error(s), the first: {}",
            errors.len(),
            errors[0]
        ));
    }
    route.stop();

    // The report.
    let idle = sorted(&measured.idle);
    let idle_median = median(&idle);
    println!();
    println!(
        "{:<46} {:>7} {:>10} {:>8} {:>8}",
        "row", "count", "median ms", "p90 ms", "x idle"
    );
    println!("IMAP LOGIN on an open connection, app password");
    let mut rows = vec![("idle (the page gets no request)", idle)];
    rows.extend(Load::ALL.map(|load| (load.name(), sorted(&measured.of(load).logins))));
    for (name, samples) in &rows {
        println!(
            "  {:<44} {:>7} {:>10.2} {:>8.2} {:>7.2}x",
            name,
            samples.len(),
            median(samples),
            percentile(samples, 90.0),
            median(samples) / idle_median
        );
    }
    let all: Vec<&Sample> = clients.iter().flat_map(|c| &c.samples).collect();
    // The rows: requests sent while their load ran in a measured round. Not the warm-up's, nor those a client
    // sends to finish its cycle after the phase ended (without pausing, so not paced).
    let measured_sample = |s: &Sample| {
        measured
            .of(s.load)
            .windows
            .iter()
            .any(|(a, b)| s.start >= *a && s.start <= *b)
    };
    for load in Load::ALL {
        println!("web requests, {}", load.name());
        let row = |name: &str, kinds: &[Kind]| {
            let s = sorted(
                &all.iter()
                    .filter(|s| s.load == load && kinds.contains(&s.kind))
                    .filter(|s| measured_sample(s))
                    .map(|s| s.millis)
                    .collect::<Vec<_>>(),
            );
            if s.is_empty() {
                println!("  {name:<44} {:>7}", 0);
            } else {
                println!(
                    "  {name:<44} {:>7} {:>10.2} {:>8.2}",
                    s.len(),
                    median(&s),
                    percentile(&s, 90.0)
                );
            }
        };
        row(
            "page loads (GET / and GET /app-passwords)",
            &[Kind::Overview, Kind::List],
        );
        for kind in Kind::ALL {
            row(&format!("  {}", kind.name()), &[kind]);
        }
    }
    println!();
    let ticks = ticks_per_second();
    for load in Load::ALL {
        let loaded = measured.of(load);
        let load_secs: f64 = loaded
            .windows
            .iter()
            .map(|(a, b)| (*b - *a).as_secs_f64())
            .sum();
        let within = |kinds: &[Kind]| {
            all.iter()
                .filter(|s| s.load == load && kinds.contains(&s.kind))
                .filter(|s| {
                    loaded
                        .windows
                        .iter()
                        .any(|(a, b)| s.end >= *a && s.end <= *b)
                })
                .count()
        };
        println!(
            "{}: {} web requests answered in {load_secs:.1} s of measured load = {:.0}/s ({:.1} creations/s); \
             CPU meanwhile: mailpass web {:.2} cores, the bench's {WEB_USERS} clients {:.2} (of {} here)",
            load.name(),
            within(&Kind::ALL),
            within(&Kind::ALL) as f64 / load_secs,
            within(&[Kind::Create]) as f64 / load_secs,
            loaded.web_ticks as f64 / ticks / load_secs,
            loaded.bench_ticks as f64 / ticks / load_secs,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    let logins = (WARMUP_ROUNDS + iters) * 3 * LOGINS_PER_PHASE;
    println!(
        "checks ok: all {logins} IMAP logins `a1 OK` (warm-up included), all {} web requests answered (the \
         cycles finished after each phase included), every page 200, every creation showed a new app password, \
         every revocation 303; mailpass web logged no error and stopped on SIGTERM",
        all.len()
    );
    println!(
        "time: {:.1} s measuring, {:.1} s in all",
        measuring.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for (load, what) in [(Load::Paced, "goal"), (Load::FlatOut, "stress, same goal")] {
        let loaded_median = median(&sorted(&measured.of(load).logins));
        let ratio = loaded_median / idle_median;
        println!(
            "{what}: IMAP LOGIN with {} <= {GOAL}x idle (median {loaded_median:.2} ms against {idle_median:.2} \
             ms = {ratio:.2}x: {})",
            load.name(),
            if ratio <= GOAL { "met" } else { "not met" }
        );
    }
    drop(web);
    drop(route);
    Ok(())
}
