//! `make bench` (`cargo bench --bench dovecot`): the side-by-side figure through a real Dovecot. mailpass
//! behind Dovecot (the 2.3 checkpassword route, the 2.3 Lua route, the 2.4 Lua route) next to two references of
//! the same Dovecot, its own passwd-file passdb holding the same password twice: for one user as an `{ARGON2ID}`
//! hash at mailpass's parameters (m=19456 KiB, t=2, p=1, verified by Dovecot with libsodium), the reference
//! (1.00x, "x argon2"), and for another as `{SSHA256}` (`doveadm pw -s SSHA256`), the floor of a passdb that
//! verifies a fast hash ("x ssha256").
//!
//! What is timed: IMAP `LOGIN user pass` on a connection that is already open, from sending the command to the
//! tagged answer (connecting, the greeting and LOGOUT are not timed); and the whole `doveadm -c CONF auth test
//! -x service=imap user pass` process for the checkpassword route and the 2.3 passwd-file. The mailpass user has
//! 10 app passwords; the app-password rows log in with the last one made, the passwd-file rows with the main
//! password; one more checkpassword row logs in with the main password, like for like with the `{ARGON2ID}` row.
//!
//! Goals (printed with "met" or "not met", never asserted): a main-password login on the checkpassword route
//! within 1.2x the `{ARGON2ID}` passdb; an app-password login (accepted by its keyed tag, no argon2) on the 2.3
//! checkpassword route within 0.35x the `{ARGON2ID}` passdb and 1.5x the `{SSHA256}` floor, on the Lua routes
//! within 2x the `{SSHA256}` floor of the same Dovecot.
//!
//! The rows are measured round-robin in one run (all Dovecots run side by side), so that drift on a shared
//! machine hits every row alike: compare the ratios, not the milliseconds. Every login must succeed (IMAP
//! `a1 OK`, doveadm exit 0 with "auth succeeded"), or the run aborts: the timing of a failed login means nothing,
//! and with only successes Dovecot's auth_failure_delay never applies. The auth cache is off (Dovecot's default,
//! checked with doveconf), so every login verifies a hash.
//!
//! The Dovecots are the end-to-end tests' (tests/dovecot/server.rs): own temp dirs and configs generated from
//! the shipped dovecot-conf/ files, loopback high ports, started as root and stopped by pid when the run ends,
//! also when it fails. Dovecot 2.4 runs in the Debian 13 chroot that the end-to-end tests build; when it is not
//! there, its rows are skipped with a note (this bench does not build it).
//!
//! The binary is not built here: `make bench` builds it first. `MAILPASS_BIN` names another binary (default
//! `target/release/mailpass`), `BENCH_ITERS` the number of measured rounds (default 30, after 3 warm-up rounds).
//! Needs root.

#[path = "../tests/dovecot/client.rs"]
#[allow(dead_code)]
mod client;
// The harness's common module (the admin CLI runner); it allows its own dead code.
#[path = "../tests/common/mod.rs"]
mod common;
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

use phc::phc_params_in_db;
use route::{
    add_user_with_app_passwords, dovecot_version, imap_login, start_uncached, still_running,
};
use stats::{median, percentile, sorted};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Instant, SystemTime};

use argon2::{Argon2, Params, PasswordHasher};

use server::{Flavor, Options, Route};

const WARMUP_ROUNDS: usize = 3;
const DEFAULT_ITERS: usize = 30;
/// A main-password login on the checkpassword route against Dovecot's own argon2 passdb.
const GOAL: f64 = 1.2;
/// An app-password login on the 2.3 checkpassword route: against the native `{ARGON2ID}` passdb, and against the
/// native `{SSHA256}` passdb, the floor of a passdb that verifies a fast hash.
const APP_GOAL_ARGON2: f64 = 0.35;
const APP_GOAL_FAST: f64 = 1.5;
/// An app-password login on a Lua route (2.3 and 2.4) against that Dovecot's native `{SSHA256}` passdb.
const LUA_APP_GOAL_FAST: f64 = 2.0;

const USER: &str = "bench@example.org";
const MAIN_PASSWORD: &str = "bench main password";
/// The passwd-file user whose hash is `{SSHA256}` (same password).
const FAST_USER: &str = "fast@example.org";
/// The mailpass user's app passwords; the rows log in with the last one made.
const APP_PASSWORDS: usize = 10;

fn main() -> ExitCode {
    // `cargo test --all-targets` runs harness = false benches as plain programs; only `cargo bench` passes
    // `--bench`. Do not start Dovecots inside a test run.
    if !std::env::args().skip(1).any(|arg| arg == "--bench") {
        println!(
            "dovecot bench: skipped (run it with `make bench` or `cargo bench --bench dovecot`)"
        );
        return ExitCode::SUCCESS;
    }
    let started = SystemTime::now() - std::time::Duration::from_secs(1);
    let mut needles = Vec::new();
    let mut lua_flavors = Vec::new();
    // Every Route is dropped (its Dovecot stopped) when `run` returns or unwinds, before the checks below.
    let result = run(&mut needles, &mut lua_flavors);
    let mut ok = true;
    if let Err(e) = result {
        eprintln!("bench dovecot: error: {e}");
        ok = false;
    }
    let running = still_running(&needles);
    if running.is_empty() {
        let instances = needles
            .iter()
            .filter(|n| n.ends_with("dovecot.conf"))
            .count();
        println!("dovecot: all {instances} instances stopped");
    } else {
        eprintln!(
            "bench dovecot: error: Dovecot still running after the run: {}",
            running.join("; ")
        );
        ok = false;
    }
    let leftovers: Vec<PathBuf> = lua_flavors
        .iter()
        .flat_map(|f| server::leftover_lua_temp_files(*f, started))
        .collect();
    if !leftovers.is_empty() {
        eprintln!("bench dovecot: error: mailpass.lua left temp files behind: {leftovers:?}");
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a row measures.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    /// `a1 LOGIN` on an open IMAP connection, until the tagged answer.
    Imap,
    /// One `doveadm -c CONF auth test -x service=imap USER PASSWORD` process.
    Doveadm,
}

struct Row {
    name: String,
    /// Index into the started routes.
    route: usize,
    probe: Probe,
    user: &'static str,
    password: String,
    /// The row this one is compared with (itself for a reference row): Dovecot's `{ARGON2ID}` passdb.
    reference: usize,
    /// The same Dovecot's `{SSHA256}` passdb row, the floor of a fast hash.
    fast: usize,
    /// Printed above the row when it starts a group.
    group: Option<String>,
    samples: Vec<f64>,
    /// Logins (warm-up included) that succeeded as they must.
    checked: usize,
}

/// One `doveadm auth test` process; returns its milliseconds from spawn to exit.
fn doveadm_auth(route: &Route, user: &str, password: &str) -> Result<f64, String> {
    let conf = route.layout.seen("dovecot.conf");
    let mut cmd = route.flavor.program("/usr/bin/doveadm");
    cmd.args([
        "-c",
        &conf,
        "auth",
        "test",
        "-x",
        "service=imap",
        user,
        password,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run doveadm: {e}"))?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("auth succeeded") {
        return Err(format!(
            "doveadm auth test: {} (expected exit 0): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(millis)
}

/// `doveadm pw -s SSHA256` of `password` (Dovecot 2.3 on the host; the 2.4 passwd-file reads the same string).
fn ssha256(password: &str) -> Result<String, String> {
    let out = Flavor::PasswdFile23
        .program("/usr/bin/doveadm")
        .args(["pw", "-s", "SSHA256", "-p", password])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run doveadm pw: {e}"))?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !hash.starts_with("{SSHA256}") {
        return Err(format!(
            "doveadm pw -s SSHA256: {} {hash}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(hash)
}

/// Starts one route; remembers its config path and mailpass copy (to check afterwards that nothing of it runs)
/// and, for Lua, its flavor.
fn start(
    flavor: Flavor,
    options: &Options,
    needles: &mut Vec<String>,
    lua_flavors: &mut Vec<Flavor>,
) -> Result<Route, String> {
    let route = start_uncached(flavor, "bench", options, needles)?;
    if flavor.uses_lua() && !lua_flavors.contains(&flavor) {
        lua_flavors.push(flavor);
    }
    Ok(route)
}

/// The bench user on a mailpass route: the main password, `APP_PASSWORDS` app passwords (the last is returned).
fn mailpass_user(route: &Route) -> Result<String, String> {
    let password = add_user_with_app_passwords(route, USER, MAIN_PASSWORD, APP_PASSWORDS, "bench")?;
    route.chown_db(route.auth_ids)?;
    Ok(password)
}

fn run(needles: &mut Vec<String>, lua_flavors: &mut Vec<Flavor>) -> Result<(), String> {
    let iters = settings::iterations(DEFAULT_ITERS)?;
    let bin = settings::binary()?;
    for flavor in [Flavor::PasswdFile23, Flavor::Checkpassword23, Flavor::Lua23] {
        flavor
            .check_installed()
            .map_err(|e| format!("{}: {e}", flavor.name()))?;
    }
    // Dovecot 2.4 only when the end-to-end tests' chroot is there and healthy: this bench does not build it.
    let chroot = server::chroot24();
    let with_24 = if !chroot.join(".mailpass-chroot-ok").is_file() {
        Err(format!(
            "no Dovecot 2.4 chroot at {} (`sh tests/support/dovecot24-chroot.sh` or `make test` builds it)",
            chroot.display()
        ))
    } else {
        Flavor::PasswdFile24
            .check_installed()
            .and_then(|()| Flavor::Lua24.check_installed())
    };

    let (m, t, p) = (
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
    );
    let expected_phc = format!("$argon2id$v=19$m={m},t={t},p={p}$");
    let phc = Argon2::default()
        .hash_password(MAIN_PASSWORD.as_bytes())
        .map_err(|e| format!("hashing the passwd-file password: {e}"))?
        .to_string();
    if !phc.starts_with(&expected_phc) {
        return Err(format!(
            "the argon2 crate's default hash {phc} is not {expected_phc}..."
        ));
    }
    let ssha = ssha256(MAIN_PASSWORD)?;
    let options = Options {
        argon2: (m, t, p),
        bin: bin.clone(),
        passwd_file: vec![
            (USER.to_string(), format!("{{ARGON2ID}}{phc}")),
            (FAST_USER.to_string(), ssha),
        ],
    };

    println!("mailpass through a real Dovecot: IMAP LOGIN and doveadm auth test");
    println!("  binary: {}", bin.display());
    println!(
        "  argon2id m={m} KiB, t={t}, p={p} everywhere; {iters} rounds after {WARMUP_ROUNDS} warm-up rounds, \
         round-robin"
    );
    println!(
        "  passwd-file: {USER}:{{ARGON2ID}}{expected_phc}... (Dovecot verifies it with libsodium), \
         {FAST_USER}:{{SSHA256}}... (`doveadm pw -s SSHA256`, same password)"
    );
    println!(
        "  mailpass: {USER} with its main password and {APP_PASSWORDS} app passwords; the app-password rows use \
         the last one made"
    );

    let v23 = dovecot_version(Flavor::Checkpassword23);
    let mut routes: Vec<Route> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();

    // Dovecot 2.3: the reference and the two mailpass routes.
    routes.push(start(Flavor::PasswdFile23, &options, needles, lua_flavors)?);
    let pf23 = routes.len() - 1;
    routes.push(start(
        Flavor::Checkpassword23,
        &options,
        needles,
        lua_flavors,
    )?);
    let cp23 = routes.len() - 1;
    routes.push(start(Flavor::Lua23, &options, needles, lua_flavors)?);
    let lua23 = routes.len() - 1;
    let cp_app = mailpass_user(&routes[cp23])?;
    let lua23_app = mailpass_user(&routes[lua23])?;

    // A group starts with the Dovecot's two passwd-file rows: `{ARGON2ID}` (the reference) and `{SSHA256}`.
    let group = |rows: &mut Vec<Row>, title: String, passwd_file: usize, probe: Probe| -> usize {
        let index = rows.len();
        for (name, user, group) in [
            ("passwd-file {ARGON2ID}, main password", USER, Some(title)),
            ("passwd-file {SSHA256}, main password", FAST_USER, None),
        ] {
            rows.push(Row {
                name: name.to_string(),
                route: passwd_file,
                probe,
                user,
                password: MAIN_PASSWORD.to_string(),
                reference: index,
                fast: index + 1,
                group,
                samples: Vec::with_capacity(iters),
                checked: 0,
            });
        }
        index
    };
    let member =
        |rows: &mut Vec<Row>, reference: usize, name: &str, route: usize, password: &str| {
            let probe = rows[reference].probe;
            rows.push(Row {
                name: name.to_string(),
                route,
                probe,
                user: USER,
                password: password.to_string(),
                reference,
                fast: reference + 1,
                group: None,
                samples: Vec::with_capacity(iters),
                checked: 0,
            });
        };

    let imap23 = group(
        &mut rows,
        format!("IMAP LOGIN on an open connection, Dovecot {v23}"),
        pf23,
        Probe::Imap,
    );
    member(
        &mut rows,
        imap23,
        "mailpass checkpassword, app password",
        cp23,
        &cp_app,
    );
    member(
        &mut rows,
        imap23,
        "mailpass checkpassword, main password",
        cp23,
        MAIN_PASSWORD,
    );
    member(
        &mut rows,
        imap23,
        "mailpass Lua, app password",
        lua23,
        &lua23_app,
    );

    let mut note_24 = None;
    match with_24 {
        Ok(()) => {
            let v24 = dovecot_version(Flavor::Lua24);
            routes.push(start(Flavor::PasswdFile24, &options, needles, lua_flavors)?);
            let pf24 = routes.len() - 1;
            routes.push(start(Flavor::Lua24, &options, needles, lua_flavors)?);
            let lua24 = routes.len() - 1;
            let lua24_app = mailpass_user(&routes[lua24])?;
            let imap24 = group(
                &mut rows,
                format!("IMAP LOGIN on an open connection, Dovecot {v24}"),
                pf24,
                Probe::Imap,
            );
            member(
                &mut rows,
                imap24,
                "mailpass Lua, app password",
                lua24,
                &lua24_app,
            );
        }
        Err(why) => note_24 = Some(why),
    }

    let doveadm23 = group(
        &mut rows,
        format!("doveadm auth test (whole process), Dovecot {v23}"),
        pf23,
        Probe::Doveadm,
    );
    member(
        &mut rows,
        doveadm23,
        "mailpass checkpassword, app password",
        cp23,
        &cp_app,
    );

    for route in &routes {
        if route.flavor.is_passwd_file() {
            continue;
        }
        let (same, other) = phc_params_in_db(&route.env.db, &expected_phc);
        if other > 0 || same < 1 {
            return Err(format!(
                "route {}: the database holds {same} PHC string(s) with m={m},t={t},p={p} and {other} with \
                 other parameters: mailpass would not verify at the reference's parameters",
                route.layout.name
            ));
        }
    }
    for route in &routes {
        println!(
            "  {}: Dovecot {} on 127.0.0.1:{}, {}",
            route.flavor.name(),
            dovecot_version(route.flavor),
            route.ports.imap,
            route.layout.host.display()
        );
    }
    println!("  auth cache: off (auth_cache_size = 0 on every route)");
    if let Some(why) = &note_24 {
        println!("  Dovecot 2.4 rows skipped: {why}");
    }

    let total = WARMUP_ROUNDS + iters;
    for round in 0..total {
        // Rotate the starting row so that no row always follows the same one.
        for k in 0..rows.len() {
            let i = (round + k) % rows.len();
            let row = &mut rows[i];
            let route = &routes[row.route];
            let measured = match row.probe {
                Probe::Imap => imap_login(route.ports.imap, row.user, &row.password),
                Probe::Doveadm => doveadm_auth(route, row.user, &row.password),
            };
            let millis = measured.map_err(|why| {
                format!(
                    "row \"{}\" ({}), run {} of {total}: {why}; a benchmark of a failed login is meaningless.\n{}",
                    row.name,
                    route.layout.name,
                    round + 1,
                    route.log_tail(15)
                )
            })?;
            row.checked += 1;
            if round >= WARMUP_ROUNDS {
                row.samples.push(millis);
            }
        }
    }
    for route in &routes {
        route.stop();
    }

    println!();
    println!(
        "{:<48} {:>10} {:>8} {:>9} {:>9}",
        "row", "median ms", "p90 ms", "x argon2", "x ssha256"
    );
    let medians: Vec<f64> = rows.iter().map(|r| median(&sorted(&r.samples))).collect();
    // (what, ratio, met) per goal.
    let (mut main_goal, mut app_goal, mut lua_goal) = (Vec::new(), Vec::new(), Vec::new());
    for (i, row) in rows.iter().enumerate() {
        if let Some(title) = &row.group {
            println!("{title}");
        }
        let s = sorted(&row.samples);
        let ratio = medians[i] / medians[row.reference];
        let fast = medians[i] / medians[row.fast];
        let name = if row.reference == i {
            format!("  {} (ref)", row.name)
        } else if row.fast == i {
            format!("  {} (fast)", row.name)
        } else {
            format!("  {}", row.name)
        };
        println!(
            "{:<48} {:>10.2} {:>8.2} {:>8.2}x {:>8.2}x",
            name,
            medians[i],
            percentile(&s, 90.0),
            ratio,
            fast
        );
        let flavor = routes[row.route].flavor;
        let app = row.name.ends_with("app password");
        match (flavor, row.probe, app) {
            (Flavor::Checkpassword23, Probe::Imap, true) => app_goal.push((
                format!("{ratio:.2}x {{ARGON2ID}}, {fast:.2}x {{SSHA256}}"),
                ratio <= APP_GOAL_ARGON2 && fast <= APP_GOAL_FAST,
            )),
            (Flavor::Checkpassword23, probe, _) => {
                let what = match probe {
                    Probe::Imap => "IMAP",
                    Probe::Doveadm => "doveadm",
                };
                main_goal.push((
                    format!(
                        "{what} {} {ratio:.2}x",
                        row.name.trim_start_matches("mailpass checkpassword, ")
                    ),
                    ratio <= GOAL,
                ));
            }
            (Flavor::Lua23 | Flavor::Lua24, Probe::Imap, true) => lua_goal.push((
                format!(
                    "{} {fast:.2}x",
                    if flavor == Flavor::Lua23 {
                        "2.3"
                    } else {
                        "2.4"
                    }
                ),
                fast <= LUA_APP_GOAL_FAST,
            )),
            _ => {}
        }
    }
    println!();
    let checked: usize = rows.iter().map(|r| r.checked).sum();
    if rows.iter().any(|r| r.checked != total) {
        return Err("a row was not measured in every round".into());
    }
    println!(
        "logins ok: all {checked} ({} rows x {total} runs, warm-up included): IMAP LOGIN `a1 OK`, doveadm exit 0 \
         with \"auth succeeded\"",
        rows.len()
    );
    let line = |goal: &str, parts: &[(String, bool)]| {
        let values: Vec<&str> = parts.iter().map(|(what, _)| what.as_str()).collect();
        let met = !parts.is_empty() && parts.iter().all(|(_, met)| *met);
        println!(
            "goal: {goal} ({}: {})",
            values.join(", "),
            if met { "met" } else { "not met" }
        );
    };
    line(
        &format!(
            "checkpassword route, main password (IMAP) and doveadm <= {GOAL}x Dovecot's native {{ARGON2ID}}"
        ),
        &main_goal,
    );
    line(
        &format!(
            "app-password IMAP LOGIN, 2.3 checkpassword <= {APP_GOAL_ARGON2}x native {{ARGON2ID}} and <= \
             {APP_GOAL_FAST}x native {{SSHA256}}"
        ),
        &app_goal,
    );
    line(
        &format!(
            "app-password IMAP LOGIN, Lua routes <= {LUA_APP_GOAL_FAST}x the same Dovecot's native {{SSHA256}}"
        ),
        &lua_goal,
    );
    drop(routes);
    Ok(())
}
