//! What the benchmarks that run a real Dovecot (benches/dovecot.rs, benches/web.rs) do with it: start a route
//! with the auth cache off, add a user with app passwords, time an IMAP login, and check afterwards that no
//! process of the run is left.

use std::fs;
use std::time::Instant;

use crate::client;
use crate::server::{Flavor, Options, Route};

/// Starts one route of `flavor` and checks that its auth cache is off (a cached answer would time nothing).
/// Its config path and its copy of mailpass go into `needles` first, for `still_running` to look for when the
/// run is over.
pub fn start_uncached(
    flavor: Flavor,
    label: &str,
    options: &Options,
    needles: &mut Vec<String>,
) -> Result<Route, String> {
    let route = Route::start_with(flavor, label, options)
        .map_err(|e| format!("route {} did not start: {e}", flavor.name()))?;
    needles.push(route.layout.seen("dovecot.conf"));
    needles.push(route.layout.host("mailpass").display().to_string());
    let cache = doveconf(&route, "auth_cache_size")?;
    if cache != "0" {
        return Err(format!(
            "route {}: auth_cache_size = {cache}; the bench needs the auth cache off",
            route.layout.name
        ));
    }
    Ok(route)
}

/// A setting as the route's Dovecot sees it (`doveconf -c CONF -h NAME`).
pub fn doveconf(route: &Route, name: &str) -> Result<String, String> {
    let out = route
        .flavor
        .program("/usr/bin/doveconf")
        .args(["-c", &route.layout.seen("dovecot.conf"), "-h", name])
        .output()
        .map_err(|e| format!("cannot run doveconf: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "doveconf -h {name} on route {}: {}",
            route.layout.name,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `dovecot --version` of a flavor, e.g. `2.3.19.1`.
pub fn dovecot_version(flavor: Flavor) -> String {
    flavor
        .program("/usr/sbin/dovecot")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .map(|v| v.split('-').next().unwrap_or(v).to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

/// Runs an admin command on the route's database that must succeed; returns its stdout.
pub fn admin(route: &Route, args: &[&str], stdin: &str) -> Result<String, String> {
    let out = route.env.admin(args, stdin);
    if !out.status.success() {
        return Err(format!(
            "route {}: `mailpass {}` failed ({}): {}",
            route.layout.name,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds `user` with `main_password` and `count` app passwords named PREFIX1, PREFIX2, ...; returns the last
/// one made. The admin CLI runs as root: call `Route::chown_db` once all users are in.
pub fn add_user_with_app_passwords(
    route: &Route,
    user: &str,
    main_password: &str,
    count: usize,
    prefix: &str,
) -> Result<String, String> {
    admin(
        route,
        &["user", "add", user, "--password-stdin"],
        &format!("{main_password}\n"),
    )?;
    let mut password = String::new();
    for i in 1..=count {
        let name = format!("{prefix}{i}");
        let out = admin(
            route,
            &["app-password", "add", user, "--name", &name, "--json"],
            "",
        )?;
        let json: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| format!("app-password add --json printed no JSON ({e}): {out}"))?;
        password = match json.get("password").and_then(|v| v.as_str()) {
            Some(pw) if !pw.is_empty() => pw.to_string(),
            _ => {
                return Err(format!(
                    "app-password add --json printed no password: {out}"
                ));
            }
        };
    }
    Ok(password)
}

/// One IMAP login on a fresh connection to `port`; returns the milliseconds from sending LOGIN to its tagged
/// answer (connecting, the greeting and LOGOUT are not timed). Anything but OK is an error.
pub fn imap_login(port: u16, user: &str, password: &str) -> Result<f64, String> {
    let mut imap = client::Imap::connect(port)?;
    let start = Instant::now();
    let answer = imap.login(user, password)?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    if !answer.starts_with("a1 OK") {
        return Err(format!("IMAP LOGIN answered {answer:?}"));
    }
    let bye = imap.logout()?;
    if !bye.starts_with("a2 OK") {
        return Err(format!("IMAP LOGOUT answered {bye:?}"));
    }
    Ok(millis)
}

/// The processes with one of `needles` (a Dovecot's config path, a binary path) among their arguments.
pub fn still_running(needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| needles.contains(a)) {
            found.push(format!("pid {pid}: {}", args.join(" ").trim()));
        }
    }
    found
}
