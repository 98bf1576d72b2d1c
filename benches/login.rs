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
//! The floor runs in a helper process (this program again) that never forks and verifies until its heap stops
//! growing before it is measured: see `support/floor.rs` for why both matter.
//!
//! The floor verifies with libsodium, as mailpass does for its own hashes (and Dovecot for `{ARGON2ID}`). A
//! second, informational floor row verifies with the `argon2` crate, which mailpass uses only for hashes that
//! libsodium cannot take (more than one lane, other salt sizes), to show what libsodium saves.

#[path = "support/checkpassword.rs"]
#[allow(dead_code)]
mod checkpassword;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/phc.rs"]
mod phc;
#[path = "support/settings.rs"]
mod settings;
#[path = "support/stats.rs"]
mod stats;

use checkpassword::{Expect, Setup, login};
use floor::Floor;
use phc::phc_params_in_db;
use stats::{median, percentile, sorted};
use std::fmt::Display;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Instant;

use command_fds::{CommandFdExt, FdMapping};

use argon2::Params;

const WARMUP_ROUNDS: usize = 3;
const DEFAULT_ITERS: usize = 40;
/// Main-password logins: a process start and a fresh mapping of argon2's memory on top of the verification.
const GOAL: f64 = 1.3;
/// An accepted app password is found by its keyed tag and verified without argon2: a process start and SQLite.
const APP_GOAL: f64 = 0.15;
const BANNED_GOAL: f64 = 0.1;
const LOOPBACK: &str = "127.0.0.1";
/// A documentation address (RFC 5737), banned by hand in the set-up.
const BANNED_IP: &str = "192.0.2.66";

const APP_USER: &str = "bench@example.org";
const MAIN_USER: &str = "main@example.org";
const UNKNOWN_USER: &str = "nobody@example.org";
const APP_USER_PASSWORD: &str = "bench main password 1";
const MAIN_USER_PASSWORD: &str = "bench main password 2";
const APP_PASSWORDS: usize = 10;

fn main() {
    if floor::serve_role() {
        return;
    }
    // `cargo test --all-targets` runs harness = false benches as plain programs; only `cargo bench` passes
    // `--bench`. Do not spend minutes measuring inside a test run.
    if !std::env::args().skip(1).any(|arg| arg == "--bench") {
        println!("login bench: skipped (run it with `make bench` or `cargo bench --bench login`)");
        return;
    }
    run();
}

/// `mailpass --version`, started exactly as a login is (pipes mapped to fd 3 and fd 4, stderr read, so the same
/// fork and exec path), in milliseconds: what any login costs before it does anything.
fn process_start(setup: &Setup) -> f64 {
    let started = Instant::now();
    let pipe = || std::io::pipe().unwrap_or_else(|e| die(format_args!("pipe: {e}")));
    let ((fd3, _keep3), (_keep4, fd4)) = (pipe(), pipe());
    let mut cmd = setup.command();
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .fd_mappings(vec![
            FdMapping {
                parent_fd: OwnedFd::from(fd3),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: OwnedFd::from(fd4),
                child_fd: 4,
            },
        ])
        .unwrap_or_else(|e| die(format_args!("fd mappings: {e}")));
    let out = cmd
        .spawn()
        .and_then(|child| child.wait_with_output())
        .unwrap_or_else(|e| die(format_args!("mailpass --version: {e}")));
    if !out.status.success() {
        die(format_args!("mailpass --version: {}", out.status));
    }
    started.elapsed().as_secs_f64() * 1e3
}

fn die(msg: impl Display) -> ! {
    eprintln!("bench login: error: {msg}");
    std::process::exit(1);
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
    /// `mailpass --version`: what starting the binary costs before it does anything, the floor under every login.
    Start,
}

struct Row {
    name: &'static str,
    kind: Kind,
    /// Milliseconds of the measured rounds.
    samples: Vec<f64>,
    /// Runs (warm-up included) that gave the expected exit code.
    checked: usize,
}

fn run() {
    let iters = settings::iterations(DEFAULT_ITERS).unwrap_or_else(|e| die(e));
    let bin = settings::binary().unwrap_or_else(|e| die(e));

    let (m, t, p) = (
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
    );
    let tmp = tempfile::tempdir().unwrap_or_else(|e| die(format_args!("temp dir: {e}")));
    let setup = Setup::in_dir(&bin, tmp.path(), (m, t, p)).unwrap_or_else(|e| die(e));

    println!("mailpass login benchmark");
    println!("  binary: {}", bin.display());
    println!(
        "  argon2id m={m} KiB, t={t}, p={p}; {iters} rounds after {WARMUP_ROUNDS} warm-up rounds, round-robin"
    );

    // The database: one user with 10 app passwords, one with none.
    let admin = |args: &[&str], stdin: &str| setup.admin(args, stdin).unwrap_or_else(|e| die(e));
    admin(
        &["user", "add", APP_USER, "--password-stdin"],
        &format!("{APP_USER_PASSWORD}\n"),
    );
    admin(
        &["user", "add", MAIN_USER, "--password-stdin"],
        &format!("{MAIN_USER_PASSWORD}\n"),
    );
    let mut last_app_password = String::new();
    for i in 1..=APP_PASSWORDS {
        last_app_password = setup
            .add_app_password(APP_USER, &format!("p{i}"))
            .unwrap_or_else(|e| die(e));
    }
    let expected_phc = format!("$argon2id$v=19$m={m},t={t},p={p}$");
    let (same, other) = phc_params_in_db(&setup.db, &expected_phc);
    if other > 0 || same < 1 {
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

    rows.push(Row {
        name: "  process start: mailpass --version",
        kind: Kind::Start,
        samples: Vec::with_capacity(iters),
        checked: 0,
    });

    // A banned address: refused before any hashing.
    admin(&["ban", "add", BANNED_IP, "--reason", "bench"], "");
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
                    let outcome = login(&setup, user, secret, ip).unwrap_or_else(|e| die(e));
                    if let Some(why) = outcome.mismatch(*expect, user) {
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
                Kind::Start => process_start(&setup),
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
    let (mut app_ratio, mut main_ratio, mut banned_ratio) = (None, None, None);
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
        match &row.kind {
            Kind::Login {
                expect: Expect::Success,
                user,
                ..
            } if user == APP_USER => app_ratio = Some(ratio),
            Kind::Login {
                expect: Expect::Success,
                ..
            } => main_ratio = Some(ratio),
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
            Kind::Floor(_) | Kind::Start => None,
        })
        .collect();
    println!("exit codes ok: {}", codes.join(", "));
    let verdict = |met: bool| if met { "met" } else { "not met" };
    if let Some(ratio) = app_ratio {
        println!(
            "goal: app-password login <= {APP_GOAL}x floor: accepted by its keyed tag, no argon2 ({ratio:.2}x: {})",
            verdict(ratio <= APP_GOAL)
        );
    }
    if let Some(ratio) = main_ratio {
        println!(
            "goal: main-password login <= {GOAL}x floor ({ratio:.2}x: {})",
            verdict(ratio <= GOAL)
        );
    }
    if let Some(ratio) = banned_ratio {
        println!(
            "goal: refusing a banned address < {BANNED_GOAL}x floor ({ratio:.3}x: {})",
            verdict(ratio < BANNED_GOAL)
        );
    }
}
