//! `make bench` (`cargo bench --bench storm`): a storm of failing logins, the load that a password-guessing
//! botnet puts on Dovecot's checkpassword route, where Dovecot starts one `mailpass checkpassword` per login and
//! does not limit how many run at once.
//!
//! 500 processes for real users without 2FA (wrong passwords: one argon2 verification each), from 500 different
//! documentation addresses (198.51.100.0/24, 203.0.113.0/24: only strings in TCPREMOTEIP, no traffic is sent; one
//! attempt per address, far below the ban threshold, so every attempt reaches argon2), are all spawned with an
//! empty fd 3 first, so that they block reading their request, and then released at the same instant by writing
//! every request. Meanwhile an app-password user logs in from 127.0.0.1, one login every 50 ms (20 a second, what a
//! busy server's phones and desktop apps make; a loop without pauses would itself take a third of the machine, which
//! is not the load the storm's throughput goal is about).
//! Reported, each next to its goal, with "met" or "not met" (nothing here fails the run for a missed goal):
//!
//! - peak resident memory of all mailpass processes (VmRSS from `/proc/PID/statm`, every live storm process and
//!   the app-password login in flight, summed every few ms), against `cap x 20 MiB + 500 x` the resident size of
//!   a mailpass process that does not hash, measured in this run: one storm login that waits for an argon2 slot
//!   while the bench holds them all (it has read its request, opened the database and queued; a storm process
//!   never gets bigger without hashing). A binary without slots hashes at once; the bench then takes the larger
//!   of that process's size before it hashes and the median of the 500 processes blocked reading fd 3. `cap` is `[argon2] max_concurrent` (0 or absent: the number of CPUs), how
//!   many verifications mailpass lets run at once machine-wide; the bench leaves the key out (a binary without it
//!   would reject it) and takes the CPU count;
//! - failing-login throughput (exit-1 answers per second from the release to the last answer) against 0.9 x
//!   cores / one warm argon2 verification (the login bench's libsodium floor, measured in this run);
//! - correctness: no wrong password succeeds; every failure (exit 1) has its row in the failure log afterwards;
//!   temporary failures (exit 111: mailpass's own time limit, or a busy database) are counted;
//! - the app-password user's logins during the storm: all must succeed, their median within 3x of the same
//!   user's median when idle (measured in this run before the storm).
//!
//! The storm stops by itself: mailpass's own limit (`[auth] timeout`, 15 s, counted from each process's start,
//! so the spawning phase is reported) and this bench's `STORM_LIMIT`, after which every process still running is
//! killed by pid. Every process is also killed and reaped when the bench fails or panics (`Storm`'s Drop). The
//! database and config live in a temp dir that is removed at the end.
//!
//! Memory: with a binary that verifies without a cap, the storm takes about 24 MiB per process (12 GiB for 500).
//!
//! The binary is not built here: `make bench` builds it first. `MAILPASS_BIN` names another binary (default
//! `target/release/mailpass`), `BENCH_ITERS` the number of idle app-password logins and floor verifications
//! (default 20, after 3 warm-up rounds).

#[path = "support/checkpassword.rs"]
#[allow(dead_code)]
mod checkpassword;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/settings.rs"]
mod settings;
#[path = "support/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use argon2::Params;

use checkpassword::{Expect, Pending, Setup, login, spawn};
use floor::Floor;
use stats::{median, percentile, sorted};

const STORM: usize = 500;
/// Real users without 2FA that the storm tries (round-robin), each with its own main password.
const STORM_USERS: usize = 10;
const APP_USER: &str = "app@example.org";
const APP_USER_PASSWORD: &str = "storm bench app user main password";
const APP_PASSWORDS: usize = 10;
const LOOPBACK: &str = "127.0.0.1";
/// The address of the login that measures the baseline (not one of the storm's; its row is not counted).
const BASELINE_IP: &str = "192.0.2.250";

const WARMUP_ROUNDS: usize = 3;
const DEFAULT_ITERS: usize = 20;
/// The bench's own bound on the storm, from the release; mailpass's limit (15 s) should end it long before.
const STORM_LIMIT: Duration = Duration::from_secs(60);
/// At most this many app-password logins during the storm.
const MAX_APP_LOGINS: usize = 2000;
/// How often the resident memory of every process is summed.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How often the storm processes are checked for their exit (the precision of the answer times).
const REAP_EVERY: Duration = Duration::from_millis(5);
/// The nice value of the bench's sampler and reaper threads (the logins run at 0).
const BENCH_NICE: &str = "-10";
/// How long the blocked processes get to reach their read of fd 3, and the baseline login its wait for a slot.
const SETTLE: Duration = Duration::from_millis(300);
/// One app-password login starts this often during the storm.
const APP_LOGIN_EVERY: Duration = Duration::from_millis(50);

/// The argon2 working memory one verification may add (19 MiB at m=19456 KiB, and a little more).
const ARGON2_MIB: f64 = 20.0;
const THROUGHPUT_GOAL: f64 = 0.9;
const APP_LATENCY_GOAL: f64 = 3.0;

fn main() -> ExitCode {
    if floor::serve_role() {
        return ExitCode::SUCCESS;
    }
    // `cargo test --all-targets` runs harness = false benches as plain programs; only `cargo bench` passes
    // `--bench`. Do not start a storm inside a test run.
    if !std::env::args().skip(1).any(|arg| arg == "--bench") {
        println!("storm bench: skipped (run it with `make bench` or `cargo bench --bench storm`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench storm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The resident size (KiB) of one storm login that has read its request, opened the database and is waiting
/// for an argon2 slot, all of which the bench holds meanwhile (`DB.argon2.N` beside the database, as mailpass
/// takes them). It is then let go and must answer as a storm login does.
fn waiting_for_a_slot(setup: &Setup, cap: usize, page_kib: u64) -> Result<f64, String> {
    let db = fs::canonicalize(&setup.db).map_err(|e| format!("database path: {e}"))?;
    let mut held = Vec::new();
    for n in 0..cap {
        let path = format!("{}.argon2.{n}", db.display());
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        file.lock().map_err(|e| format!("locking {path}: {e}"))?;
        held.push(file);
    }
    let mut pending = spawn(
        setup,
        &storm_user(0),
        "baseline wrong password",
        BASELINE_IP,
        None,
    )?;
    pending.release();
    std::thread::sleep(SETTLE);
    let kib = resident_of_pid(pending.pid(), page_kib) as f64;
    drop(held);
    let outcome = pending.finish()?;
    if let Some(why) = outcome.mismatch(Expect::Failure, &storm_user(0)) {
        return Err(format!("the baseline login: {why}"));
    }
    Ok(kib)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The n-th documentation address (RFC 5737): 198.51.100.1-254, then 203.0.113.1-254.
fn storm_ip(n: usize) -> String {
    if n < 254 {
        format!("198.51.100.{}", n + 1)
    } else {
        format!("203.0.113.{}", n - 254 + 1)
    }
}

fn storm_user(n: usize) -> String {
    format!("storm-{}@example.org", n % STORM_USERS)
}

/// How one storm process ended.
struct Answer {
    /// From the release to the exit.
    after: Duration,
    code: Option<i32>,
    stderr: String,
    /// Killed by this bench at `STORM_LIMIT`.
    killed: bool,
}

/// The storm's processes. Dropping it kills (SIGKILL, by pid) and reaps every one that has not been reaped, so
/// that no process outlives the bench, whatever way it ends.
struct Storm {
    pending: Vec<Option<Pending>>,
}

impl Drop for Storm {
    fn drop(&mut self) {
        for pending in self.pending.iter_mut().flatten() {
            // Child::kill does nothing for a child already reaped (no pid reuse can be hit).
            let _ = pending.child.kill();
            let _ = pending.child.wait();
        }
    }
}

/// Resident memory of a set of processes from `/proc/PID/statm`, read again and again through files opened once
/// (a sweep over 500 processes then costs well under a millisecond: the storm's CPU is not the sampler's).
struct Resident {
    files: Vec<File>,
    page_kib: u64,
}

impl Resident {
    fn open(pids: &[u32], page_kib: u64) -> Result<Resident, String> {
        let files = pids
            .iter()
            .map(|pid| {
                File::open(format!("/proc/{pid}/statm"))
                    .map_err(|e| format!("/proc/{pid}/statm: {e} (did the process die at once?)"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Resident { files, page_kib })
    }

    /// Each process's resident KiB; 0 for one that has exited.
    fn each(&self) -> Vec<u64> {
        self.files
            .iter()
            .map(|f| read_statm(f, self.page_kib))
            .collect()
    }

    fn total(&self) -> u64 {
        self.files
            .iter()
            .map(|f| read_statm(f, self.page_kib))
            .sum()
    }
}

/// The resident field of statm (pages) in KiB, 0 when the process is gone.
fn read_statm(file: &File, page_kib: u64) -> u64 {
    let mut buf = [0u8; 128];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return 0;
    };
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_kib)
}

fn resident_of_pid(pid: u32, page_kib: u64) -> u64 {
    File::open(format!("/proc/{pid}/statm")).map_or(0, |f| read_statm(&f, page_kib))
}

fn page_kib() -> Result<u64, String> {
    let out = Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .map_err(|e| format!("getconf PAGESIZE: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u64>()
        .map(|bytes| (bytes / 1024).max(1))
        .map_err(|_| "getconf PAGESIZE printed no number".to_string())
}

/// Raises the calling thread's priority (nice -10; Linux nice values are per thread) so that it is scheduled
/// promptly among 500 hashing processes at nice 0: otherwise the sampler saw one sample in 300 ms and the reaper
/// lagged by seconds. Processes this thread spawns afterwards would inherit it: the storm's threads that raise
/// it spawn nothing more.
fn raise_priority() -> Result<(), String> {
    let link = fs::read_link("/proc/thread-self").map_err(|e| format!("/proc/thread-self: {e}"))?;
    let tid = link
        .file_name()
        .and_then(|t| t.to_str())
        .ok_or_else(|| format!("/proc/thread-self -> {}", link.display()))?
        .to_string();
    let out = Command::new("renice")
        .args(["-n", BENCH_NICE, "-p", &tid])
        .output()
        .map_err(|e| format!("renice: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "renice -n {BENCH_NICE} -p {tid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Sends `sig` (STOP, CONT) to every process of the group.
fn signal_group(pgid: i32, sig: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pgid}")])
        .status()
        .map_err(|e| format!("kill -{sig}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} -- -{pgid}: {status}"))
    }
}

/// The peak of the summed resident memory, as the sampler saw it.
struct Peak {
    kib: u64,
    at: Option<Instant>,
    sweeps: usize,
    /// The sweeps' own durations (their cost), in microseconds.
    sweep_micros: Vec<f64>,
    /// Whether the sampler's priority was raised, or why not.
    raised: Result<(), String>,
}

impl Default for Peak {
    fn default() -> Self {
        Peak {
            kib: 0,
            at: None,
            sweeps: 0,
            sweep_micros: Vec::new(),
            raised: Ok(()),
        }
    }
}

/// One app-password login during the storm: milliseconds, and why it failed if it did.
type AppLogin = (f64, Option<String>);

/// Sets the flag when dropped: the storm's threads stop also when the main thread unwinds.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn run() -> Result<(), String> {
    let iters = settings::iterations(DEFAULT_ITERS)?;
    let bin = settings::binary()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // `[argon2] max_concurrent` is left out of the config (0 or absent = the number of CPUs).
    let cap = cores;
    let page_kib = page_kib()?;

    let (m, t, p) = (
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
    );
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    // Bans as shipped (threshold 10 per address in 10 minutes): each storm address fails once, so none is banned
    // and every attempt reaches argon2. The app-password user logs in from 127.0.0.1 (allowlisted by default).
    // No `max_concurrent` key: the default (the number of CPUs) is what the goal assumes.
    let setup = Setup::in_dir(&bin, tmp.path(), (m, t, p))?;

    println!("mailpass storm benchmark");
    println!("  binary: {}", bin.display());
    println!(
        "  argon2id m={m} KiB, t={t}, p={p}; {cores} CPUs, so cap = {cap} ([argon2] max_concurrent left out)"
    );
    println!(
        "  storm: {STORM} wrong passwords for {STORM_USERS} users without 2FA, one attempt from each of {STORM} \
         documentation addresses, released at once; bench limit {}s",
        STORM_LIMIT.as_secs()
    );

    for n in 0..STORM_USERS {
        setup.admin(
            &["user", "add", &storm_user(n), "--password-stdin"],
            &format!("storm user {n} main password\n"),
        )?;
    }
    setup.admin(
        &["user", "add", APP_USER, "--password-stdin"],
        &format!("{APP_USER_PASSWORD}\n"),
    )?;
    let mut app_password = String::new();
    for i in 1..=APP_PASSWORDS {
        app_password = setup.add_app_password(APP_USER, &format!("p{i}"))?;
    }
    let app_login = || -> Result<AppLogin, String> {
        let outcome = login(&setup, APP_USER, &app_password, LOOPBACK)?;
        let why = outcome.mismatch(Expect::Success, APP_USER).map(|why| {
            let log = outcome.stderr.trim();
            if log.is_empty() {
                why
            } else {
                format!("{why} ({log})")
            }
        });
        Ok((outcome.millis, why))
    };

    // Idle: the warm verification and the app-password login, round-robin.
    let mut floor = Floor::start("floor-sodium");
    let (mut verify_ms, mut idle_ms) = (Vec::new(), Vec::new());
    for round in 0..WARMUP_ROUNDS + iters {
        let verify = floor.measure();
        let (millis, why) = app_login()?;
        if let Some(why) = why {
            return Err(format!(
                "idle app-password login, run {}: {why}; the storm's comparison would mean nothing",
                round + 1
            ));
        }
        if round >= WARMUP_ROUNDS {
            verify_ms.push(verify);
            idle_ms.push(millis);
        }
    }
    floor.stop();
    let verify_median = median(&sorted(&verify_ms));
    let idle_median = median(&sorted(&idle_ms));
    println!(
        "  idle, {iters} rounds after {WARMUP_ROUNDS} warm-up: warm argon2id verification (libsodium) {verify_median:.2} ms, \
         app-password login (10th of 10) {idle_median:.2} ms"
    );

    let waiting_kib = waiting_for_a_slot(&setup, cap, page_kib)?;

    // Every storm process, blocked reading its empty fd 3.
    let spawning = Instant::now();
    let mut storm = Storm {
        pending: Vec::with_capacity(STORM),
    };
    // One process group (led by the first), so that one signal can stop or continue them all.
    let mut group = 0;
    for n in 0..STORM {
        let pending = spawn(
            &setup,
            &storm_user(n),
            &format!("wrong password {n}"),
            &storm_ip(n),
            Some(group),
        )?;
        if n == 0 {
            group = i32::try_from(pending.pid()).map_err(|_| "pid out of range".to_string())?;
        }
        storm.pending.push(Some(pending));
    }
    let spawned_in = spawning.elapsed();
    std::thread::sleep(SETTLE);
    let pids: Vec<u32> = storm.pending.iter().flatten().map(Pending::pid).collect();
    let resident = Resident::open(&pids, page_kib)?;
    let early: Vec<u32> = storm
        .pending
        .iter_mut()
        .flatten()
        .filter_map(|p| match p.child.try_wait() {
            Ok(None) => None,
            _ => Some(p.pid()),
        })
        .collect();
    if !early.is_empty() {
        return Err(format!(
            "{} storm process(es) exited before their request was written (pids {early:?}): is the config valid?",
            early.len()
        ));
    }
    let blocked = sorted(
        &resident
            .each()
            .into_iter()
            .map(|k| k as f64)
            .collect::<Vec<_>>(),
    );
    let baseline_kib = median(&blocked).max(waiting_kib);
    let blocked_total_kib: f64 = blocked.iter().sum();
    println!(
        "  {STORM} processes spawned in {:.2} s (the first waited {:.2} s for its request; mailpass's time limit \
         counts from its start); blocked reading fd 3, each resident {:.2} MiB (median), {:.0} MiB together; \
         a login waiting for an argon2 slot: {:.2} MiB",
        spawned_in.as_secs_f64(),
        (spawned_in + SETTLE).as_secs_f64(),
        median(&blocked) / 1024.0,
        blocked_total_kib / 1024.0,
        waiting_kib / 1024.0
    );

    let stop = AtomicBool::new(false);
    let app_pid = AtomicU32::new(0);
    let mut released_at = None::<Instant>;
    let peak = Mutex::new(Peak::default());
    let app_logins: Mutex<Vec<AppLogin>> = Mutex::new(Vec::new());
    let app_errors = AtomicU64::new(0);
    let (mut release_spread, mut written_in) = (Duration::ZERO, Duration::ZERO);
    // The sampler, the app-password user and the release start together.
    let go = Barrier::new(3);
    let mut answers: Vec<Option<Answer>> = (0..STORM).map(|_| None).collect();

    std::thread::scope(|scope| -> Result<(), String> {
        let _stop_on_drop = StopOnDrop(&stop);
        let go = &go;

        // The sampler: the sum over every storm process and the app-password login in flight.
        let (resident, stop, app_pid, peak) = (&resident, &stop, &app_pid, &peak);
        scope.spawn(move || {
            // The sampler must see the storm, not wait behind it: see `raise_priority`.
            let raised = raise_priority();
            go.wait();
            let mut local = Peak {
                raised,
                ..Peak::default()
            };
            while !stop.load(Ordering::SeqCst) {
                let sweep = Instant::now();
                let mut kib = resident.total();
                let pid = app_pid.load(Ordering::SeqCst);
                if pid != 0 {
                    kib += resident_of_pid(pid, resident.page_kib);
                }
                local.sweep_micros.push(sweep.elapsed().as_secs_f64() * 1e6);
                local.sweeps += 1;
                if kib > local.kib {
                    local.kib = kib;
                    local.at = Some(sweep);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            *peak.lock().unwrap_or_else(|e| e.into_inner()) = local;
        });

        // The app-password user, one login after another until the storm is over (bounded in count and time).
        let (app_logins, app_errors) = (&app_logins, &app_errors);
        let setup = &setup;
        let app_secret = app_password.as_str();
        scope.spawn(move || {
            go.wait();
            let deadline = Instant::now() + STORM_LIMIT;
            let mut done = Vec::new();
            while !stop.load(Ordering::SeqCst)
                && done.len() < MAX_APP_LOGINS
                && Instant::now() < deadline
            {
                let next = Instant::now() + APP_LOGIN_EVERY;
                let pending = match spawn(setup, APP_USER, app_secret, LOOPBACK, None) {
                    Ok(p) => p,
                    Err(_) => {
                        app_errors.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                };
                app_pid.store(pending.pid(), Ordering::SeqCst);
                let outcome = pending.finish();
                app_pid.store(0, Ordering::SeqCst);
                match outcome {
                    Ok(outcome) => {
                        let why = outcome.mismatch(Expect::Success, APP_USER);
                        done.push((outcome.millis, why));
                    }
                    Err(_) => {
                        app_errors.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            *app_logins.lock().unwrap_or_else(|e| e.into_inner()) = done;
        });

        // Release. Writing 500 requests one after the other would let the first ones hash while this thread
        // waits for the CPU behind them (2.5 s measured for the loop); so the group is stopped, every request
        // written, and the group continued with one signal. This thread, which reaps and times the answers, runs
        // at a raised priority from here on (it spawns nothing more, so no login inherits it).
        let reaper_raised = raise_priority();
        let writing = Instant::now();
        signal_group(group, "STOP")?;
        for pending in storm.pending.iter_mut().flatten() {
            pending.release();
        }
        written_in = writing.elapsed();
        go.wait();
        let release = Instant::now();
        released_at = Some(release);
        signal_group(group, "CONT")?;
        release_spread = release.elapsed();
        if let Err(e) = reaper_raised {
            println!("  note: the reaper runs at normal priority ({e}): answer times may lag");
        }

        // Reap every storm process as it exits; kill what is left at the bench's limit.
        let mut left = STORM;
        while left > 0 {
            let now = Instant::now();
            let over = now.duration_since(release) >= STORM_LIMIT;
            for (n, slot) in storm.pending.iter_mut().enumerate() {
                let Some(pending) = slot else { continue };
                let exited = pending
                    .child
                    .try_wait()
                    .map_err(|e| format!("waiting for storm process {}: {e}", pending.pid()))?;
                let (status_after, killed) = match exited {
                    Some(_) => (release.elapsed(), false),
                    None if over => {
                        let _ = pending.child.kill();
                        (release.elapsed(), true)
                    }
                    None => continue,
                };
                let Some(done) = slot.take() else { continue };
                let outcome = done.finish()?;
                answers[n] = Some(Answer {
                    after: status_after,
                    code: if killed { None } else { outcome.code },
                    stderr: outcome.stderr,
                    killed,
                });
                left -= 1;
            }
            if left > 0 {
                std::thread::sleep(REAP_EVERY);
            }
        }
        stop.store(true, Ordering::SeqCst);
        Ok(())
    })?;
    drop(storm);

    let answers: Vec<Answer> = answers.into_iter().flatten().collect();
    if answers.len() != STORM {
        return Err(format!(
            "{} of {STORM} storm processes accounted for",
            answers.len()
        ));
    }
    let last = answers.iter().map(|a| a.after).max().unwrap_or_default();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut tempfail_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let (mut failures, mut tempfails, mut successes, mut killed) = (0, 0, 0, 0);
    for a in &answers {
        let key = match (a.killed, a.code) {
            (true, _) => {
                killed += 1;
                "killed by the bench".to_string()
            }
            (false, Some(code)) => format!("exit {code}"),
            (false, None) => "a signal".to_string(),
        };
        *codes.entry(key).or_default() += 1;
        match a.code {
            Some(0) => successes += 1,
            Some(1) => failures += 1,
            Some(111) => {
                tempfails += 1;
                let reason = a
                    .stderr
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("reason="))
                    .unwrap_or("no reason logged");
                *tempfail_reasons.entry(reason.to_string()).or_default() += 1;
            }
            _ => {}
        }
    }
    let (rows, bans) = count_rows(&setup.db)?;

    let peak = peak.into_inner().unwrap_or_else(|e| e.into_inner());
    let app_logins = app_logins.into_inner().unwrap_or_else(|e| e.into_inner());
    let app_ok: Vec<f64> = app_logins
        .iter()
        .filter(|(_, why)| why.is_none())
        .map(|(ms, _)| *ms)
        .collect();
    let app_failed: Vec<&str> = app_logins
        .iter()
        .filter_map(|(_, why)| why.as_deref())
        .collect();

    if let Err(e) = &peak.raised {
        println!("  note: the sampler ran at normal priority ({e}): it may have missed the peak");
    }
    println!(
        "  requests written to the stopped group in {:.2} ms, released with one SIGCONT to the group (`kill` \
         returned after {:.2} ms); last answer \
         {:.2} s after the release",
        written_in.as_secs_f64() * 1e3,
        release_spread.as_secs_f64() * 1e3,
        last.as_secs_f64()
    );
    println!();
    let answer_list: Vec<String> = codes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("answers: {}", answer_list.join(", "));
    if tempfails > 0 {
        let reasons: Vec<String> = tempfail_reasons
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "temporary failures (exit 111): {tempfails} ({})",
            reasons.join(", ")
        );
    } else {
        println!("temporary failures (exit 111): 0");
    }
    println!("bans made by the storm: {bans} (expected 0: one attempt per address)");
    let sweep = median(&sorted(&peak.sweep_micros));
    let peak_after = match (peak.at, released_at) {
        (Some(at), Some(release)) => at.saturating_duration_since(release).as_secs_f64(),
        _ => 0.0,
    };
    println!(
        "memory: {} samples every {} ms (a sweep over {STORM} processes took {sweep:.0} us, median); peak {:.2} s \
         after the release",
        peak.sweeps,
        SAMPLE_EVERY.as_millis(),
        peak_after
    );
    println!();

    let goal_kib = cap as f64 * ARGON2_MIB * 1024.0 + STORM as f64 * baseline_kib;
    let peak_kib = peak.kib as f64;
    println!(
        "goal: peak resident memory of all mailpass processes <= cap x {ARGON2_MIB:.0} MiB + {STORM} x {:.2} MiB \
         (not hashing) = {:.0} MiB ({:.0} MiB = {:.2}x the goal: {})",
        baseline_kib / 1024.0,
        goal_kib / 1024.0,
        mib(peak.kib),
        peak_kib / goal_kib,
        verdict(peak_kib <= goal_kib)
    );
    let secs = last.as_secs_f64().max(1e-9);
    let throughput = failures as f64 / secs;
    let goal_rate = THROUGHPUT_GOAL * cores as f64 / (verify_median / 1e3);
    println!(
        "goal: failing-login throughput >= {THROUGHPUT_GOAL} x {cores} cores / {verify_median:.2} ms warm \
         verification = {goal_rate:.1}/s ({failures} failures in {secs:.2} s = {throughput:.1}/s = {:.2}x cores / \
         verification: {})",
        throughput / goal_rate * THROUGHPUT_GOAL,
        verdict(throughput >= goal_rate)
    );
    println!(
        "goal: no wrong password accepted ({successes} of {STORM} exit 0: {})",
        verdict(successes == 0)
    );
    println!(
        "goal: every failure recorded ({rows} rows in the failure log for {failures} exit-1 answers; {tempfails} \
         temporary failures, {killed} killed: {}{})",
        verdict(rows == failures as u64),
        if failures == 0 {
            ", but vacuously: no login answered exit 1"
        } else {
            ""
        }
    );
    let all_ok = !app_logins.is_empty() && app_failed.is_empty() && app_errors.into_inner() == 0;
    let mut failed_note = String::new();
    if let Some(first) = app_failed.first() {
        failed_note = format!("; first failure: {first}");
    }
    println!(
        "goal: app-password logins during the storm all succeed ({} of {} succeeded{failed_note}: {})",
        app_ok.len(),
        app_logins.len(),
        verdict(all_ok)
    );
    // Every attempt counts for the latency, a failed one with the time the user waited for it.
    let app_all: Vec<f64> = app_logins.iter().map(|(ms, _)| *ms).collect();
    if app_all.is_empty() {
        println!(
            "goal: app-password login during the storm <= {APP_LATENCY_GOAL}x idle (no login ran: not met)"
        );
    } else {
        let during = sorted(&app_all);
        let storm_median = median(&during);
        let ratio = storm_median / idle_median;
        println!(
            "goal: app-password login during the storm <= {APP_LATENCY_GOAL}x idle (median of all {} attempts \
             {storm_median:.2} ms, p90 {:.2} ms, against {idle_median:.2} ms idle = {ratio:.2}x: {})",
            during.len(),
            percentile(&during, 90.0),
            verdict(ratio <= APP_LATENCY_GOAL)
        );
    }
    Ok(())
}

/// Failure rows of the storm's users, and bans, in the database after the storm.
fn count_rows(db: &Path) -> Result<(u64, u64), String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("opening {}: {e}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| format!("busy_timeout: {e}"))?;
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM failures WHERE user LIKE 'storm-%@example.org' AND ip IS NOT ?1",
            [BASELINE_IP],
            |r| r.get(0),
        )
        .map_err(|e| format!("counting failure rows: {e}"))?;
    let bans: i64 = conn
        .query_row("SELECT count(*) FROM bans", [], |r| r.get(0))
        .map_err(|e| format!("counting bans: {e}"))?;
    Ok((rows.max(0) as u64, bans.max(0) as u64))
}
