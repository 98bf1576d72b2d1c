//! `make bench` (`cargo bench --bench login`): the cost of one login through the whole `mailpass
//! checkpassword` process, started the way Dovecot starts it (request on a pipe at fd 3, reply read to end of
//! file from a pipe at fd 4, log line on a stderr pipe), next to the floor: one warm argon2id verification at the
//! same parameters in a long-lived process.
//!
//! The rows are measured round-robin in one run, so that drift on a shared machine hits every row alike; compare
//! the ratios, not the milliseconds. Nothing here asserts a time; a login that does not give its expected exit
//! code aborts the run, because the timing of a broken login means nothing.
//!
//! The binary is not built here: `make bench` builds it first. `MAILPASS_BIN` names another binary (default
//! `target/release/mailpass`), `BENCH_ITERS` the number of measured rounds (default 40, after 3 warm-up rounds).
//!
//! The floor runs in a helper process (this program again, with `MAILPASS_BENCH_ROLE=floor`) that never forks:
//! every fork write-protects the forking process's memory, and the next verification then takes one page fault
//! per page of argon2's 19 MiB working memory. Measured in this process between spawns, the "warm" verification
//! was about 2.5 ms (11 %) slower than in a process that does not fork, which would flatter every ratio.
//!
//! "Warm" needs care too: `verify_password` allocates argon2's blocks (64-byte aligned) on every call, and with
//! glibc's malloc the heap was seen to grow by 19 MiB of fresh, faulting pages per verification for the first
//! eight or so (about 28 ms each instead of 23) before it settled at about 150 MiB and reused its memory. The
//! helper verifies until its resident size stops growing before it answers.
//!
//! The floor verifies with libsodium, as mailpass does for its own hashes (and Dovecot for `{ARGON2ID}`). A
//! second, informational floor row verifies with the `argon2` crate, which mailpass uses only for hashes that
//! libsodium cannot take (more than one lane, other salt sizes), to show what libsodium saves.

#[path = "support/phc.rs"]
mod phc;
#[path = "support/stats.rs"]
mod stats;

use phc::phc_params_in_db;
use stats::{median, percentile, sorted};
use std::fmt::Display;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use argon2::{Argon2, Params, PasswordHasher, PasswordVerifier};
use command_fds::{CommandFdExt, FdMapping};

const WARMUP_ROUNDS: usize = 3;
const DEFAULT_ITERS: usize = 40;
const GOAL: f64 = 1.3;
const BANNED_GOAL: f64 = 0.1;
const LOOPBACK: &str = "127.0.0.1";
/// A documentation address (RFC 5737), banned by hand in the set-up.
const BANNED_IP: &str = "192.0.2.66";
const ROLE_VAR: &str = "MAILPASS_BENCH_ROLE";

const APP_USER: &str = "bench@example.org";
const MAIN_USER: &str = "main@example.org";
const UNKNOWN_USER: &str = "nobody@example.org";
const APP_USER_PASSWORD: &str = "bench main password 1";
const MAIN_USER_PASSWORD: &str = "bench main password 2";
const APP_PASSWORDS: usize = 10;

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Ok("floor-sodium") => return floor_helper(sodium::verifier()),
        Ok("floor-argon2") => return floor_helper(argon2_crate_verifier()),
        _ => {}
    }
    // `cargo test --all-targets` runs harness = false benches as plain programs; only `cargo bench` passes
    // `--bench`. Do not spend minutes measuring inside a test run.
    if !std::env::args().skip(1).any(|arg| arg == "--bench") {
        println!("login bench: skipped (run it with `make bench` or `cargo bench --bench login`)");
        return;
    }
    run();
}

fn die(msg: impl Display) -> ! {
    eprintln!("bench login: error: {msg}");
    std::process::exit(1);
}

/// What one login is expected to do.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Exit 0 with `user=...` on fd 4 and no `nologin` flag.
    Success,
    /// Exit 1 (authentication failed).
    Failure,
}

impl Expect {
    fn code(self) -> i32 {
        match self {
            Expect::Success => 0,
            Expect::Failure => 1,
        }
    }
}

enum Kind {
    /// One argon2id verification in the floor helper with this index.
    Floor(usize),
    /// One `mailpass checkpassword` process.
    Login {
        user: String,
        secret: String,
        expect: Expect,
        /// TCPREMOTEIP: loopback (allowlisted, never banned) except for the banned-address row.
        ip: &'static str,
    },
}

struct Row {
    name: &'static str,
    kind: Kind,
    /// Milliseconds of the measured rounds.
    samples: Vec<f64>,
    /// Runs (warm-up included) that gave the expected exit code.
    checked: usize,
}

struct Setup {
    bin: PathBuf,
    db: PathBuf,
    config: PathBuf,
    dir: PathBuf,
}

impl Setup {
    /// A `mailpass` command with nothing of the caller's environment in it.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("MAILPASS_DB", &self.db)
            .env("MAILPASS_CONFIG", &self.config)
            .current_dir(&self.dir);
        cmd
    }

    /// Runs an admin command that must succeed and returns its stdout.
    fn admin(&self, args: &[&str], stdin: &str) -> String {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| die(format_args!("cannot run {}: {e}", self.bin.display())));
        if let Some(mut input) = child.stdin.take()
            && let Err(e) = input.write_all(stdin.as_bytes())
        {
            die(format_args!("mailpass {args:?}: writing stdin: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| die(format_args!("mailpass {args:?}: {e}")));
        if !out.status.success() {
            die(format_args!(
                "setup command `mailpass {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8(out.stdout)
            .unwrap_or_else(|_| die(format_args!("mailpass {args:?}: stdout is not UTF-8")))
    }
}

/// The outcome of one `mailpass checkpassword` process.
struct Outcome {
    millis: f64,
    code: Option<i32>,
    fd4: String,
    stderr: String,
}

/// Runs one login as Dovecot does and times it from spawn to exit (reply read to end of file).
fn login(setup: &Setup, user: &str, secret: &str, ip: &str) -> Outcome {
    let mut request = Vec::with_capacity(user.len() + secret.len() + 3);
    request.extend_from_slice(user.as_bytes());
    request.push(0);
    request.extend_from_slice(secret.as_bytes());
    request.extend_from_slice(&[0, 0]);

    let mut cmd = setup.command();
    cmd.arg("checkpassword")
        .env("SERVICE", "imap")
        .env("TCPREMOTEIP", ip)
        .env("PROTO", "TCP")
        .env("ORIG_UID", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());

    let start = Instant::now();
    let (fd3_read, mut fd3_write) = std::io::pipe().unwrap_or_else(|e| die(e));
    let (mut fd4_read, fd4_write) = std::io::pipe().unwrap_or_else(|e| die(e));
    cmd.fd_mappings(vec![
        FdMapping {
            parent_fd: OwnedFd::from(fd3_read),
            child_fd: 3,
        },
        FdMapping {
            parent_fd: OwnedFd::from(fd4_write),
            child_fd: 4,
        },
    ])
    .unwrap_or_else(|e| die(format_args!("fd mappings: {e}")));
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| die(format_args!("cannot run {}: {e}", setup.bin.display())));
    // Dovecot writes the whole request and closes its end, then reads the reply to end of file.
    let _ = fd3_write.write_all(&request);
    drop(fd3_write);
    // The parent's copies of the mapped ends live in `cmd`; without this, fd 4 never reaches end of file.
    drop(cmd);
    let mut fd4 = Vec::new();
    if let Err(e) = fd4_read.read_to_end(&mut fd4) {
        die(format_args!("reading fd 4: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| die(format_args!("waiting for mailpass: {e}")));
    let millis = start.elapsed().as_secs_f64() * 1e3;

    Outcome {
        millis,
        code: out.status.code(),
        fd4: String::from_utf8_lossy(&fd4).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Why an outcome is not what the row expects, if it is not.
fn mismatch(outcome: &Outcome, expect: Expect, user: &str) -> Option<String> {
    if outcome.code != Some(expect.code()) {
        return Some(format!(
            "expected exit {}, got {}",
            expect.code(),
            outcome
                .code
                .map_or_else(|| "a signal".to_string(), |c| format!("exit {c}"))
        ));
    }
    if expect == Expect::Success {
        let fields: Vec<&str> = outcome.fd4.split('\t').collect();
        if !fields.contains(&format!("user={user}").as_str()) {
            return Some(format!(
                "exit 0 but the reply on fd 4 has no user={user} (Dovecot: temporary failure)"
            ));
        }
        if fields.contains(&"nologin") {
            return Some("exit 0 but the reply says nologin: the login was refused".to_string());
        }
    }
    None
}

/// This process's resident and transparent-huge-page memory, in KiB.
fn memory_kib() -> (u64, u64) {
    let (mut rss, mut huge) = (0, 0);
    if let Ok(text) = fs::read_to_string("/proc/self/smaps_rollup") {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let value = value.parse().unwrap_or(0);
            match key {
                "Rss:" => rss = value,
                "AnonHugePages:" => huge = value,
                _ => {}
            }
        }
    }
    (rss, huge)
}

const FLOOR_PASSWORD: &[u8] = b"floor password";

/// One verification of `FLOOR_PASSWORD` against a hash made once, at the default parameters.
type Verifier = Box<dyn Fn() -> Result<(), String>>;

fn argon2_crate_verifier() -> Verifier {
    let argon2 = Argon2::default();
    let phc = argon2
        .hash_password(FLOOR_PASSWORD)
        .unwrap_or_else(|e| die(format_args!("floor: hashing: {e}")))
        .to_string();
    Box::new(move || {
        argon2
            .verify_password(FLOOR_PASSWORD, phc.as_str())
            .map_err(|e| e.to_string())
    })
}

/// libsodium's argon2id, linked as mailpass links it. The bench's only unsafe code: three C calls.
#[allow(unsafe_code)]
mod sodium {
    use super::{FLOOR_PASSWORD, Verifier, die};

    #[link(name = "sodium")]
    unsafe extern "C" {
        fn sodium_init() -> i32;
        fn crypto_pwhash_argon2id_str(
            out: *mut u8,
            passwd: *const u8,
            passwdlen: u64,
            opslimit: u64,
            memlimit: usize,
        ) -> i32;
        fn crypto_pwhash_argon2id_str_verify(
            str: *const u8,
            passwd: *const u8,
            passwdlen: u64,
        ) -> i32;
    }

    /// crypto_pwhash_argon2id_STRBYTES.
    const STR_BYTES: usize = 128;

    pub fn verifier() -> Verifier {
        let (m, t) = (
            argon2::Params::DEFAULT_M_COST,
            argon2::Params::DEFAULT_T_COST,
        );
        let mut phc = [0u8; STR_BYTES];
        // SAFETY: `phc` has the STRBYTES libsodium writes (a NUL-terminated string); the password pointer and
        // length come from one slice.
        let made = unsafe {
            sodium_init() >= 0
                && crypto_pwhash_argon2id_str(
                    phc.as_mut_ptr(),
                    FLOOR_PASSWORD.as_ptr(),
                    FLOOR_PASSWORD.len() as u64,
                    u64::from(t),
                    m as usize * 1024,
                ) == 0
        };
        if !made {
            die("floor: libsodium could not hash");
        }
        Box::new(move || {
            // SAFETY: `phc` is the NUL-terminated string libsodium wrote above; the password as above.
            let rc = unsafe {
                crypto_pwhash_argon2id_str_verify(
                    phc.as_ptr(),
                    FLOOR_PASSWORD.as_ptr(),
                    FLOOR_PASSWORD.len() as u64,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err("libsodium: verification failed".into())
            }
        })
    }
}

/// The floor helper's end of the pipe protocol: first a line `ready WARMUPS RSS_KIB HUGE_KIB`, then for each
/// line in, one verification and its nanoseconds out.
fn floor_helper(verifier: Verifier) {
    let verify = || {
        let start = Instant::now();
        let verified = verifier();
        let nanos = start.elapsed().as_nanos();
        if let Err(e) = verified {
            die(format_args!("floor: verification failed: {e}"));
        }
        nanos
    };
    // Verify until the heap stops growing (three verifications in a row without new resident memory).
    let (mut warmups, mut steady, mut last) = (0, 0, memory_kib().0);
    while steady < 3 && warmups < 40 {
        verify();
        warmups += 1;
        let rss = memory_kib().0;
        steady = if rss > last + 1024 { 0 } else { steady + 1 };
        last = last.max(rss);
    }
    let (rss, huge) = memory_kib();
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "ready {warmups} {rss} {huge}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return;
    }
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let nanos = verify();
        if writeln!(stdout, "{nanos}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

struct Floor {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    /// What the helper said when it was ready: its warm-up verifications, resident and huge-page KiB.
    ready: String,
}

impl Floor {
    /// Starts a floor helper in `role` (`floor-sodium`, `floor-argon2`) and waits until it is warm.
    fn start(role: &str) -> Floor {
        let exe = std::env::current_exe().unwrap_or_else(|e| die(format_args!("current_exe: {e}")));
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_VAR, role)
            .env_remove("GLIBC_TUNABLES")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| die(format_args!("cannot start the floor helper: {e}")));
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            die("floor helper without pipes");
        };
        let mut floor = Floor {
            child,
            to,
            from: BufReader::new(from),
            ready: String::new(),
        };
        let line = floor.read_line();
        let words: Vec<u64> = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| die(format_args!("floor helper said {line:?}")))
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [warmups, rss, huge] = words[..] {
            floor.ready = format!(
                "warm after {warmups} verifications, resident {} MiB, on huge pages {} MiB",
                rss / 1024,
                huge / 1024
            );
        }
        floor
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(n) if n > 0 => line.trim().to_string(),
            _ => die("the floor helper died"),
        }
    }

    /// One warm verification in the helper, in milliseconds.
    fn measure(&mut self) -> f64 {
        if writeln!(self.to, "v")
            .and_then(|()| self.to.flush())
            .is_err()
        {
            die("the floor helper died");
        }
        let line = self.read_line();
        let nanos: u64 = line
            .parse()
            .unwrap_or_else(|_| die(format_args!("floor helper said {line:?}")));
        nanos as f64 / 1e6
    }

    fn stop(self) {
        let Floor {
            mut child,
            to,
            from,
            ..
        } = self;
        drop(to);
        drop(from);
        let _ = child.wait();
    }
}

fn run() {
    let iters = match std::env::var("BENCH_ITERS") {
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => die(format_args!(
                "BENCH_ITERS={s:?}: expected a positive integer"
            )),
        },
        Err(_) => DEFAULT_ITERS,
    };
    let bin = std::env::var_os("MAILPASS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mailpass"));
    if !bin.is_file() {
        die(format_args!(
            "{} not found: run `cargo build --release` (or `make bench`), or set MAILPASS_BIN",
            bin.display()
        ));
    }

    let (m, t, p) = (
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
    );
    let tmp = tempfile::tempdir().unwrap_or_else(|e| die(format_args!("temp dir: {e}")));
    let setup = Setup {
        bin: bin.clone(),
        db: tmp.path().join("mailpass.db"),
        config: tmp.path().join("mailpass.toml"),
        dir: tmp.path().to_path_buf(),
    };
    let config = format!(
        "[argon2]\nmemory_kib = {m}\niterations = {t}\nparallelism = {p}\n\n\
         [userdb]\nhome = \"/var/vmail/%d/%n\"\nuid = \"5000\"\ngid = \"5000\"\n"
    );
    if let Err(e) = fs::write(&setup.config, config) {
        die(format_args!("writing the config: {e}"));
    }

    println!("mailpass login benchmark");
    println!("  binary: {}", bin.display());
    println!(
        "  argon2id m={m} KiB, t={t}, p={p}; {iters} rounds after {WARMUP_ROUNDS} warm-up rounds, round-robin"
    );

    // The database: one user with 10 app passwords, one with none.
    setup.admin(
        &["user", "add", APP_USER, "--password-stdin"],
        &format!("{APP_USER_PASSWORD}\n"),
    );
    setup.admin(
        &["user", "add", MAIN_USER, "--password-stdin"],
        &format!("{MAIN_USER_PASSWORD}\n"),
    );
    let mut last_app_password = String::new();
    for i in 1..=APP_PASSWORDS {
        let name = format!("p{i}");
        let out = setup.admin(
            &["app-password", "add", APP_USER, "--name", &name, "--json"],
            "",
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| {
            die(format_args!(
                "app-password add --json printed no JSON ({e}): {out}"
            ))
        });
        last_app_password = match json.get("password").and_then(|v| v.as_str()) {
            Some(pw) if !pw.is_empty() => pw.to_string(),
            _ => die(format_args!(
                "app-password add --json printed no \"password\": {out}"
            )),
        };
    }
    let expected_phc = format!("$argon2id$v=19$m={m},t={t},p={p}$");
    let (same, other) = phc_params_in_db(&setup.db, &expected_phc);
    if other > 0 || same < 2 {
        println!(
            "  warning: the DB holds {same} PHC string(s) with m={m},t={t},p={p} and {other} with other \
             parameters: the logins may not verify at the floor's parameters"
        );
    }

    let mut rows = vec![
        Row {
            name: "floor: argon2id verify, libsodium (warm)",
            kind: Kind::Floor(0),
            samples: Vec::with_capacity(iters),
            checked: 0,
        },
        Row {
            name: "  same with the argon2 crate (informational)",
            kind: Kind::Floor(1),
            samples: Vec::with_capacity(iters),
            checked: 0,
        },
        Row {
            name: "app-password login (10th of 10)",
            kind: Kind::Login {
                user: APP_USER.into(),
                secret: last_app_password,
                expect: Expect::Success,
                ip: LOOPBACK,
            },
            samples: Vec::with_capacity(iters),
            checked: 0,
        },
        Row {
            name: "main-password login",
            kind: Kind::Login {
                user: MAIN_USER.into(),
                secret: MAIN_USER_PASSWORD.into(),
                expect: Expect::Success,
                ip: LOOPBACK,
            },
            samples: Vec::with_capacity(iters),
            checked: 0,
        },
        Row {
            name: "wrong password",
            kind: Kind::Login {
                user: MAIN_USER.into(),
                secret: "not the password".into(),
                expect: Expect::Failure,
                ip: LOOPBACK,
            },
            samples: Vec::with_capacity(iters),
            checked: 0,
        },
        Row {
            name: "unknown user",
            kind: Kind::Login {
                user: UNKNOWN_USER.into(),
                secret: MAIN_USER_PASSWORD.into(),
                expect: Expect::Failure,
                ip: LOOPBACK,
            },
            samples: Vec::with_capacity(iters),
            checked: 0,
        },
    ];

    // A banned address: refused before any hashing.
    setup.admin(&["ban", "add", BANNED_IP, "--reason", "bench"], "");
    rows.push(Row {
        name: "banned address (refused before hashing)",
        kind: Kind::Login {
            user: MAIN_USER.into(),
            secret: MAIN_USER_PASSWORD.into(),
            expect: Expect::Failure,
            ip: BANNED_IP,
        },
        samples: Vec::with_capacity(iters),
        checked: 0,
    });

    let mut floors = vec![Floor::start("floor-sodium"), Floor::start("floor-argon2")];
    println!("  libsodium floor helper: {}", floors[0].ready);
    println!("  argon2 crate floor helper: {}", floors[1].ready);
    let total = WARMUP_ROUNDS + iters;
    for round in 0..total {
        // Rotate the starting row so that no row always follows the same one.
        for k in 0..rows.len() {
            let i = (round + k) % rows.len();
            let row = &mut rows[i];
            let millis = match &row.kind {
                Kind::Floor(helper) => floors[*helper].measure(),
                Kind::Login {
                    user,
                    secret,
                    expect,
                    ip,
                } => {
                    let outcome = login(&setup, user, secret, ip);
                    if let Some(why) = mismatch(&outcome, *expect, user) {
                        die(format_args!(
                            "row \"{}\", run {} of {total}: {why}; a benchmark of a broken login is meaningless.\n  \
                             fd 4: {:?}\n  stderr: {}",
                            row.name,
                            round + 1,
                            outcome.fd4,
                            outcome.stderr.trim()
                        ));
                    }
                    row.checked += 1;
                    outcome.millis
                }
            };
            if round >= WARMUP_ROUNDS {
                row.samples.push(millis);
            }
        }
    }
    for floor in floors {
        floor.stop();
    }

    let floor_median = median(&sorted(&rows[0].samples));
    println!();
    println!(
        "{:<42} {:>10} {:>8} {:>8}",
        "row", "median ms", "p90 ms", "x floor"
    );
    let mut goal_parts = Vec::new();
    let mut goal_met = true;
    let mut banned_ratio = None;
    for row in &rows {
        let s = sorted(&row.samples);
        let med = median(&s);
        let ratio = med / floor_median;
        println!(
            "{:<42} {:>10.2} {:>8.2} {:>7.2}x",
            row.name,
            med,
            percentile(&s, 90.0),
            ratio
        );
        match row.kind {
            Kind::Login {
                expect: Expect::Success,
                ..
            } => {
                goal_parts.push(format!("{} {ratio:.2}x", row.name));
                goal_met &= ratio <= GOAL;
            }
            Kind::Login { ip: BANNED_IP, .. } => banned_ratio = Some(ratio),
            _ => {}
        }
    }
    println!();
    let codes: Vec<String> = rows
        .iter()
        .filter_map(|row| match &row.kind {
            Kind::Login { expect, .. } => Some(format!(
                "{} exit {} ({}/{total})",
                row.name,
                expect.code(),
                row.checked
            )),
            Kind::Floor(_) => None,
        })
        .collect();
    println!("exit codes ok: {}", codes.join(", "));
    println!(
        "goal: successful logins <= {GOAL}x floor ({}: {})",
        goal_parts.join(", "),
        if goal_met { "met" } else { "not met" }
    );
    if let Some(ratio) = banned_ratio {
        println!(
            "goal: refusing a banned address < {BANNED_GOAL}x floor ({ratio:.3}x: {})",
            if ratio < BANNED_GOAL {
                "met"
            } else {
                "not met"
            }
        );
    }
}
