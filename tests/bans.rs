//! The failure log and the ban policy, driven through the real binary: logins arrive the way Dovecot sends them
//! (request on fd 3, `TCPREMOTEIP` in the environment), the admin looks with `ban ...` and `failures list`.
//! One scenario per test, each named for what the admin or the user sees. The contract is README.md
//! ("Failures and bans") and issue 4.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Output;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::{Env, Reply, TEST_CONFIG, decision, json, now, totp_code};
use serde_json::Value;

const ALICE: &str = "alice@example.org";
const ALICE_PW: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/// The test config (small argon2) with a `[bans]` section.
fn config_with_bans(bans: &str) -> String {
    // TEST_CONFIG ends inside [userdb]; a new table header starts a new section.
    format!("{TEST_CONFIG}\n[bans]\n{bans}\n")
}

/// An environment whose database exists (the auth path never creates one).
fn env_with(config: &str) -> Env {
    let env = Env::with_config(config);
    env.ok(&["ban", "list"], "");
    env
}

fn env_default() -> Env {
    env_with(TEST_CONFIG)
}

fn logged_reason(r: &Reply) -> String {
    decision(r).get("reason").cloned().unwrap_or_default()
}

/// A login that must be a plain authentication failure (exit 1) logged with `reason`; returns the log line.
fn refused(r: &Reply, reason: &str) -> HashMap<String, String> {
    assert_eq!(r.code, Some(1), "expected exit 1 (failure): {r:?}");
    let log = decision(r);
    assert_eq!(log.get("result").map(String::as_str), Some("fail"), "{r:?}");
    assert_eq!(log.get("reason").map(String::as_str), Some(reason), "{r:?}");
    log
}

fn accepted(r: &Reply) {
    assert_eq!(r.code, Some(0), "expected success: {r:?}");
    assert!(
        !r.fd4.split('\t').any(|f| f == "nologin"),
        "success must not carry nologin: {r:?}"
    );
    assert_eq!(decision(r).get("result").map(String::as_str), Some("ok"));
}

/// A wrong-password login from `ip` that must fail with `wrong_password`; returns the log line.
fn wrong_password(env: &Env, ip: &str, user: &str, secret: &str) -> HashMap<String, String> {
    let r = env.login(user, secret).ip(ip).run();
    refused(&r, "wrong_password")
}

fn run_admin(env: &Env, args: &[&str]) -> Output {
    env.admin(args, "")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ban check IP`: Some(stdout) if banned (exit 1), None if not (exit 0).
fn ban_check(env: &Env, ip: &str) -> Option<String> {
    let out = run_admin(env, &["ban", "check", ip]);
    match out.status.code() {
        Some(0) => None,
        Some(1) => Some(text(&out.stdout)),
        other => panic!("ban check {ip} exited {other:?}: {}", text(&out.stderr)),
    }
}

fn bans(env: &Env) -> Vec<Value> {
    json(&env.ok(&["ban", "list", "--json"], ""))
        .as_array()
        .expect("ban list --json is an array")
        .clone()
}

fn ban_of<'a>(list: &'a [Value], network: &str) -> Option<&'a Value> {
    list.iter().find(|b| b["network"] == network)
}

fn failures(env: &Env, filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["failures", "list", "--json"];
    args.extend_from_slice(filter);
    json(&env.ok(&args, ""))
        .as_array()
        .expect("failures list --json is an array")
        .clone()
}

/// Unix seconds of an RFC 3339 time as the CLI prints it.
fn unix(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a time string: {v}"));
    let t = humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("bad time {s:?}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A ban's length in seconds (`until - since`), None for a permanent ban.
fn ban_length(ban: &Value) -> Option<i64> {
    if ban["until"].is_null() {
        None
    } else {
        Some(unix(&ban["until"]) - unix(&ban["since"]))
    }
}

/// Waits until `ban check IP` says not banned (timed bans in these tests last seconds).
fn wait_until_unbanned(env: &Env, ip: &str, limit: Duration) {
    let start = Instant::now();
    while ban_check(env, ip).is_some() {
        assert!(
            start.elapsed() < limit,
            "{ip} still banned after {limit:?}: {:?}",
            bans(env)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Enrolls and confirms TOTP for `user`; returns the base32 secret.
fn enable_totp(env: &Env, user: &str) -> String {
    let v = json(&env.ok(&["totp", "enroll", user, "--json"], ""));
    let secret = v["secret"].as_str().expect("secret").to_string();
    let code = totp_code(&secret, now());
    env.ok(&["totp", "confirm", user, &code], "");
    secret
}

/// A refusal on a 2FA account, logged with `reason`: for a Dovecot login process exit 0 with `nologin` and the
/// hint; for Postfix (`smtp`) and other clients a plain failure, exit 1.
fn refused_with_hint(r: &Reply, reason: &str) {
    match r.code {
        Some(0) => {
            assert!(r.has_flag("nologin"), "expected nologin: {r:?}");
            assert!(
                r.field("reason")
                    .is_some_and(|t| t.contains("app password")),
                "expected the hint: {r:?}"
            );
        }
        Some(1) => assert_eq!(r.fd4, "", "{r:?}"),
        _ => panic!("expected a refusal: {r:?}"),
    }
    assert_eq!(logged_reason(r), reason, "{r:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Threshold
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn ten_different_wrong_passwords_ban_the_address_and_then_even_the_right_password_is_refused() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.7";
    for i in 1..=9 {
        let log = wrong_password(&env, ip, ALICE, &format!("guess number {i}"));
        assert!(
            !log.contains_key("ban"),
            "failure {i} must not ban: {log:?}"
        );
    }
    assert_eq!(ban_check(&env, ip), None, "9 failures must not ban");
    assert!(bans(&env).is_empty());

    let log = wrong_password(&env, ip, ALICE, "guess number 10");
    assert_eq!(
        log.get("ban").map(String::as_str),
        Some("192.0.2.7/32"),
        "the 10th counted failure bans: {log:?}"
    );

    // The user's own right password is refused now: a plain failure, logged as banned, with the network.
    let r = env.login(ALICE, ALICE_PW).ip(ip).run();
    let log = refused(&r, "banned");
    assert_eq!(log.get("ban").map(String::as_str), Some("192.0.2.7/32"));

    let shown = ban_check(&env, ip).expect("ban check exits 1 for a banned address");
    assert!(shown.contains("192.0.2.7/32"), "ban check stdout: {shown}");
    assert!(
        shown.contains("too many failed logins"),
        "ban check stdout: {shown}"
    );

    let list = bans(&env);
    assert_eq!(list.len(), 1, "{list:?}");
    let ban = &list[0];
    assert_eq!(ban["network"], "192.0.2.7/32");
    assert_eq!(ban["count"], 1);
    assert_eq!(ban_length(ban), Some(1800), "default ban_time: {ban}");

    // Another address is not affected.
    accepted(&env.login(ALICE, ALICE_PW).ip("192.0.2.8").run());
    assert_eq!(ban_check(&env, "192.0.2.8"), None);

    // The refusal is recorded as its own reason and does not count.
    let rows = failures(&env, &["--ip", ip]);
    assert_eq!(rows.len(), 11, "{rows:?}");
    assert_eq!(rows[0]["reason"], "banned", "newest first: {rows:?}");
    assert_eq!(rows[0]["counted"], false);
    assert_eq!(
        rows.iter()
            .filter(|f| f["reason"] == "wrong_password" && f["counted"] == true)
            .count(),
        10
    );
}

#[test]
fn a_successful_login_does_not_reset_the_failure_count() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.30";
    for i in 1..=9 {
        wrong_password(&env, ip, ALICE, &format!("before success {i}"));
    }
    accepted(&env.login(ALICE, ALICE_PW).ip(ip).run());
    let log = wrong_password(&env, ip, ALICE, "after success");
    assert_eq!(log.get("ban").map(String::as_str), Some("192.0.2.30/32"));
    assert!(ban_check(&env, ip).is_some());
}

// ---------------------------------------------------------------------------------------------------------------
// Window
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn failures_spread_beyond_the_window_do_not_ban() {
    let env = env_with(&config_with_bans("window = 2\nthreshold = 3"));
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.40";
    let mut n = 0;
    for _round in 0..3 {
        for _ in 0..2 {
            n += 1;
            wrong_password(&env, ip, ALICE, &format!("spread out {n}"));
        }
        thread::sleep(Duration::from_millis(3100));
    }
    assert_eq!(n, 6);
    assert_eq!(
        ban_check(&env, ip),
        None,
        "6 failures, never 3 within 2 s: {:?}",
        bans(&env)
    );
    assert!(bans(&env).is_empty());
    accepted(&env.login(ALICE, ALICE_PW).ip(ip).run());

    // Control: three at once do ban with the same config.
    for i in 0..3 {
        wrong_password(&env, ip, ALICE, &format!("burst {i}"));
    }
    assert!(
        ban_check(&env, ip).is_some(),
        "3 failures within the window ban"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Identical retries
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_phone_retrying_a_stale_password_thirty_times_is_not_banned() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.50";
    for _ in 0..30 {
        let log = wrong_password(&env, ip, ALICE, "the old password");
        assert!(!log.contains_key("ban"), "{log:?}");
    }
    assert_eq!(ban_check(&env, ip), None);
    let rows = failures(&env, &["--ip", ip]);
    assert_eq!(rows.len(), 30, "every retry is recorded: {rows:?}");
    assert_eq!(
        rows.iter().filter(|f| f["counted"] == true).count(),
        1,
        "identical retries count once: {rows:?}"
    );
    assert!(rows.iter().all(|f| f["reason"] == "wrong_password"));
    // The user fixes the password on the phone and gets in.
    accepted(&env.login(ALICE, ALICE_PW).ip(ip).run());
}

// ---------------------------------------------------------------------------------------------------------------
// Second factor required
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn an_office_of_2fa_users_sending_their_main_passwords_is_never_banned() {
    let env = env_default();
    let ip = "192.0.2.60";
    let users: Vec<(String, String)> = (0..12)
        .map(|i| {
            (
                format!("user{i}@office.example"),
                format!("main password {i}"),
            )
        })
        .collect();
    let mut secrets = Vec::new();
    for (user, pw) in &users {
        env.add_user(user, pw);
        secrets.push(enable_totp(&env, user));
    }
    // 12 different users (12 different fingerprints, more than the threshold) ...
    for (user, pw) in &users {
        refused_with_hint(&env.login(user, pw).ip(ip).run(), "second_factor_required");
    }
    // ... and one of them 20 more times, on every service.
    let services = ["imap", "pop3", "submission", "sieve", "smtp"];
    for i in 0..20 {
        let r = env
            .login(&users[0].0, &users[0].1)
            .ip(ip)
            .service(services[i % services.len()])
            .run();
        refused_with_hint(&r, "second_factor_required");
    }
    assert_eq!(ban_check(&env, ip), None, "{:?}", bans(&env));
    assert!(bans(&env).is_empty());
    let rows = failures(&env, &["--ip", ip]);
    assert_eq!(rows.len(), 32, "{rows:?}");
    for row in &rows {
        assert_eq!(row["reason"], "second_factor_required", "{row}");
        assert_eq!(row["counted"], false, "{row}");
    }
    // The right password with a code still works from that address.
    let code = totp_code(&secrets[1], now() + 30);
    let r = env
        .login(&users[1].0, &format!("{}{code}", users[1].1))
        .ip(ip)
        .run();
    accepted(&r);
}

#[test]
fn wrong_totp_codes_after_the_right_password_do_count() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let secret = enable_totp(&env, ALICE);
    let ip = "192.0.2.61";
    let t = now();
    let valid: HashSet<String> = (0..=4)
        .map(|k| totp_code(&secret, t - 60 + 30 * k))
        .collect();
    let wrong: Vec<String> = (100_000..999_999)
        .step_by(7919)
        .map(|c| c.to_string())
        .filter(|c| !valid.contains(c))
        .take(10)
        .collect();
    let mut banned_by = None;
    for (n, code) in wrong.iter().enumerate() {
        let r = env.login(ALICE, &format!("{ALICE_PW}{code}")).ip(ip).run();
        // Past [totp] max_wrong_codes (5) the account refuses codes for a while: that counts too.
        refused_with_hint(&r, if n < 5 { "totp_wrong" } else { "totp_locked" });
        banned_by = decision(&r).get("ban").cloned();
    }
    assert_eq!(banned_by.as_deref(), Some("192.0.2.61/32"));
    assert!(ban_check(&env, ip).is_some());
}

// ---------------------------------------------------------------------------------------------------------------
// Spraying
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn spraying_one_password_each_at_ten_users_bans_the_address() {
    let env = env_default();
    let ip = "192.0.2.70";
    for i in 0..5 {
        env.add_user(&format!("real{i}@example.org"), &format!("real pw {i}"));
    }
    let mut last = HashMap::new();
    for i in 0..10 {
        // Half existing users, half unknown, one password each.
        let user = if i % 2 == 0 {
            format!("real{}@example.org", i / 2)
        } else {
            format!("nobody{i}@example.org")
        };
        let r = env.login(&user, "Summer2024!").ip(ip).run();
        let reason = if i % 2 == 0 {
            "wrong_password"
        } else {
            "unknown_user"
        };
        last = refused(&r, reason);
        if i < 9 {
            assert!(!last.contains_key("ban"), "attempt {i}: {last:?}");
        }
    }
    assert_eq!(last.get("ban").map(String::as_str), Some("192.0.2.70/32"));
    assert!(ban_check(&env, ip).is_some());
    refused(
        &env.login("real0@example.org", "real pw 0").ip(ip).run(),
        "banned",
    );
    let rows = failures(&env, &["--ip", ip]);
    assert_eq!(
        rows.iter().filter(|f| f["counted"] == true).count(),
        10,
        "{rows:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn ipv6_failures_add_up_per_64_and_ban_the_whole_64() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    for i in 1..=10 {
        let ip = format!("2001:db8:1:2::{i:x}");
        let log = wrong_password(&env, &ip, ALICE, &format!("v6 guess {i}"));
        if i < 10 {
            assert!(!log.contains_key("ban"), "{ip}: {log:?}");
        } else {
            assert_eq!(
                log.get("ban").map(String::as_str),
                Some("2001:db8:1:2::/64")
            );
        }
    }
    let list = bans(&env);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["network"], "2001:db8:1:2::/64");

    // Any address of that /64 is refused, even one that never failed.
    let r = env.login(ALICE, ALICE_PW).ip("2001:db8:1:2:ffff::9").run();
    let log = refused(&r, "banned");
    assert_eq!(
        log.get("ban").map(String::as_str),
        Some("2001:db8:1:2::/64")
    );
    assert!(ban_check(&env, "2001:db8:1:2:abcd::1").is_some());

    // The neighbouring /64 is not.
    assert_eq!(ban_check(&env, "2001:db8:1:3::1"), None);
    accepted(&env.login(ALICE, ALICE_PW).ip("2001:db8:1:3::1").run());

    // The rows carry the address as sent and the /64 it counts in.
    let rows = failures(&env, &["--ip", "2001:db8:1:2::3"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["network"], "2001:db8:1:2::/64");
}

#[test]
fn failures_from_a_link_local_address_with_a_zone_id_count_in_its_64_and_ban_it() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    for i in 1..=10 {
        let ip = format!("fe80::{i:x}%eth0");
        let log = wrong_password(&env, &ip, ALICE, &format!("zone guess {i}"));
        assert_eq!(log.contains_key("ban"), i == 10, "{ip}: {log:?}");
    }
    let list = bans(&env);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["network"], "fe80::/64");
    let rows = failures(&env, &["--ip", "fe80::3"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["network"], "fe80::/64");
    assert_eq!(rows[0]["counted"], true);

    // Another host of the /64, on another interface, is refused too.
    let r = env.login(ALICE, ALICE_PW).ip("fe80::beef%eth1").run();
    let log = refused(&r, "banned");
    assert_eq!(log.get("ban").map(String::as_str), Some("fe80::/64"));
    let script = env.ok(&["ban", "export", "--format", "nft"], "");
    assert!(script.contains("fe80::/64"), "{script}");
    if let Some(result) = nft_check(&env, &script, "zone.nft") {
        result.unwrap_or_else(|e| panic!("nft rejected the export: {e}"));
    }
}

/// The `--log dovecot` lines of a run at Dovecot's Error level.
fn error_lines(r: &Reply) -> Vec<&str> {
    r.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("\u{1}\u{4}"))
        .collect()
}

#[test]
fn failures_from_unparseable_addresses_count_together_and_ban_them_all() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let garbage = [
        "01.02.03.04",
        "banana",
        "192.0.2.1.1",
        "::g",
        "999.1.1.1",
        "fe80::1%",
        "192.0.2.7%eth0",
        "unknown",
        "1.2.3",
        "2001:db8::1::2",
    ];
    for (i, ip) in garbage.iter().enumerate() {
        let r = env
            .login(ALICE, &format!("garbage guess {i}"))
            .ip(ip)
            .args(&["--log", "dovecot"])
            .run();
        assert_eq!(r.code, Some(1), "{ip}: {r:?}");
        let errors = error_lines(&r);
        assert!(
            errors
                .iter()
                .any(|l| l.contains("fault=unparsed_address") && l.contains(&format!("ip={ip}"))),
            "an Error line names {ip}: {r:?}"
        );
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains("mailpass: result="))
            .expect("decision line");
        assert!(line.contains("reason=wrong_password"), "{line}");
        assert_eq!(line.contains("ban=unparsed"), i == 9, "{ip}: {line}");
    }
    let list = bans(&env);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["network"], "unparsed");
    let rows = failures(&env, &["--user", ALICE]);
    assert_eq!(rows.len(), 10, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["network"] == "unparsed" && r["counted"] == true),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r["ip"] == "01.02.03.04"), "{rows:?}");

    // Any other address that does not parse is refused before its password is looked at; real ones are not.
    let r = env.login(ALICE, ALICE_PW).ip("not-an-address").run();
    let log = refused(&r, "banned");
    assert_eq!(log.get("ban").map(String::as_str), Some("unparsed"));
    assert!(ban_of(&bans(&env), "unparsed").is_some());
    assert_eq!(ban_check(&env, "192.0.2.7"), None);
    accepted(&env.login(ALICE, ALICE_PW).ip("192.0.2.7").run());

    // The firewall never sees it: it is no address.
    let plain = env.ok(&["ban", "export", "--format", "plain"], "");
    assert_eq!(plain, "", "{plain}");
    let out = run_admin(&env, &["ban", "export", "--format", "nft"]);
    assert!(out.status.success(), "{out:?}");
    let script = text(&out.stdout);
    assert!(
        !script.contains("unparsed") && !script.contains("elements"),
        "{script}"
    );
    assert!(
        text(&out.stderr).contains("not exported: unparsed"),
        "{out:?}"
    );
    if let Some(result) = nft_check(&env, &script, "unparsed.nft") {
        result.unwrap_or_else(|e| panic!("nft rejected the export: {e}"));
    }

    // The admin lifts it like any ban.
    env.ok(&["ban", "remove", "unparsed"], "");
    assert!(bans(&env).is_empty());
    accepted(&env.login(ALICE, ALICE_PW).ip("not-an-address").run());
    env.ok(&["ban", "add", "unparsed", "--for", "1h"], "");
    refused(&env.login(ALICE, ALICE_PW).ip("banana").run(), "banned");
}

#[test]
fn failures_without_an_address_count_nowhere() {
    let env = env_with(&config_with_bans("threshold = 2"));
    env.add_user(ALICE, ALICE_PW);
    for i in 0..5 {
        let r = env
            .login(ALICE, &format!("local guess {i}"))
            .var("TCPREMOTEIP", "")
            .run();
        let log = refused(&r, "wrong_password");
        assert!(!log.contains_key("ban"), "{log:?}");
        assert!(!r.stderr.contains("unparsed"), "{r:?}");
    }
    assert!(bans(&env).is_empty());
    let rows = failures(&env, &["--user", ALICE]);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["network"].is_null() && r["counted"] == false)
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Allowlist
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn loopback_and_allowlisted_networks_are_never_banned() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);

    // Loopback is on the default allowlist.
    for i in 0..15 {
        wrong_password(&env, "127.0.0.1", ALICE, &format!("local guess {i}"));
    }
    assert_eq!(ban_check(&env, "127.0.0.1"), None);
    assert!(bans(&env).is_empty(), "{:?}", bans(&env));
    accepted(&env.login(ALICE, ALICE_PW).ip("127.0.0.1").run());

    // An office network added by the admin.
    env.ok(&["ban", "allow", "add", "198.51.100.0/24"], "");
    let again = run_admin(&env, &["ban", "allow", "add", "198.51.100.0/24"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "adding twice is refused: {again:?}"
    );
    for i in 0..15 {
        wrong_password(&env, "198.51.100.9", ALICE, &format!("office guess {i}"));
    }
    assert_eq!(ban_check(&env, "198.51.100.9"), None);
    assert!(bans(&env).is_empty(), "{:?}", bans(&env));
    accepted(&env.login(ALICE, ALICE_PW).ip("198.51.100.9").run());

    let allow = json(&env.ok(&["ban", "allow", "list", "--json"], ""));
    let allow = allow.as_array().expect("array");
    let sources: BTreeMap<&str, &str> = allow
        .iter()
        .map(|a| {
            (
                a["network"].as_str().expect("network"),
                a["source"].as_str().expect("source"),
            )
        })
        .collect();
    assert_eq!(
        sources,
        BTreeMap::from([
            ("127.0.0.0/8", "config"),
            ("::1/128", "config"),
            ("198.51.100.0/24", "database"),
        ]),
        "{allow:?}"
    );
    let added = allow
        .iter()
        .find(|a| a["network"] == "198.51.100.0/24")
        .expect("entry");
    assert!(added["added_at"].is_string(), "{added}");

    // Removed from the allowlist, the network can be banned again.
    env.ok(&["ban", "allow", "remove", "198.51.100.0/24"], "");
    let gone = json(&env.ok(&["ban", "allow", "list", "--json"], ""));
    assert!(
        !gone
            .as_array()
            .expect("array")
            .iter()
            .any(|a| a["network"] == "198.51.100.0/24"),
        "{gone}"
    );
    let again = run_admin(&env, &["ban", "allow", "remove", "198.51.100.0/24"]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    for i in 0..10 {
        let r = env
            .login(ALICE, &format!("after removal {i}"))
            .ip("198.51.100.9")
            .run();
        assert_eq!(r.code, Some(1), "{r:?}");
    }
    assert!(ban_check(&env, "198.51.100.9").is_some());
}

// ---------------------------------------------------------------------------------------------------------------
// Escalation
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn an_ipv6_ban_never_shuts_out_ipv4_clients() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    for network in ["::/0", "::/64", "::/96"] {
        env.ok(&["ban", "add", network], "");
    }
    assert_eq!(ban_check(&env, "198.51.100.9"), None);
    accepted(&env.login(ALICE, ALICE_PW).ip("198.51.100.9").run());
    refused(
        &env.login(ALICE, ALICE_PW).ip("2001:db8::1").run(),
        "banned",
    );
}

#[test]
fn a_network_holding_an_allowlisted_host_is_not_banned_nor_exported() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "allow", "add", "2001:db8:5:6::10"], "");
    for i in 0..12 {
        wrong_password(
            &env,
            &format!("2001:db8:5:6::{:x}", 0x20 + i),
            ALICE,
            &format!("guess {i}"),
        );
    }
    assert!(bans(&env).is_empty(), "{:?}", bans(&env));

    // A ban the admin makes by hand over it stays out of the firewall export.
    env.ok(&["ban", "add", "2001:db8:5::/48"], "");
    let script = env.ok(&["ban", "export", "--format", "nft"], "");
    assert!(!script.contains("2001:db8:5::/48"), "{script}");
    assert_eq!(ban_check(&env, "2001:db8:5:6::10"), None);
}

/// A file beside the database (`mailpass.db.bans`, `mailpass.db.refused`).
fn beside_db(env: &Env, suffix: &str) -> std::path::PathBuf {
    let mut name = env.db.clone().into_os_string();
    name.push(suffix);
    name.into()
}

#[test]
fn a_banned_address_is_refused_from_the_ban_list_and_the_refusal_reaches_the_failure_log() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.90"], "");
    assert!(
        beside_db(&env, ".bans").exists(),
        "ban add writes the ban list"
    );

    let r = env.login(ALICE, ALICE_PW).ip("192.0.2.90").run();
    refused(&r, "banned");
    assert!(
        beside_db(&env, ".refused").exists(),
        "refused without opening the database"
    );

    let list = failures(&env, &["--ip", "192.0.2.90"]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "banned");
    assert_eq!(list[0]["user"], ALICE);
    assert_eq!(list[0]["counted"], false);
    assert!(
        !beside_db(&env, ".refused").exists(),
        "folded into the failure log once"
    );
    assert_eq!(failures(&env, &["--ip", "192.0.2.90"]).len(), 1);
}

#[test]
fn without_the_ban_list_the_database_still_refuses() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.91"], "");
    std::fs::remove_file(beside_db(&env, ".bans")).expect("remove the ban list");
    refused(&env.login(ALICE, ALICE_PW).ip("192.0.2.91").run(), "banned");
    assert_eq!(failures(&env, &["--ip", "192.0.2.91"]).len(), 1);
}

#[test]
fn lifting_a_ban_or_allowlisting_takes_effect_at_the_next_login() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.92"], "");
    refused(&env.login(ALICE, ALICE_PW).ip("192.0.2.92").run(), "banned");
    env.ok(&["ban", "remove", "192.0.2.92"], "");
    accepted(&env.login(ALICE, ALICE_PW).ip("192.0.2.92").run());

    env.ok(&["ban", "add", "198.51.100.0/24"], "");
    refused(
        &env.login(ALICE, ALICE_PW).ip("198.51.100.5").run(),
        "banned",
    );
    env.ok(&["ban", "allow", "add", "198.51.100.0/24"], "");
    accepted(&env.login(ALICE, ALICE_PW).ip("198.51.100.5").run());
}

#[test]
fn refusals_are_all_recorded_while_many_processes_fold_them_in_at_once() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.93"], "");
    thread::scope(|s| {
        for t in 0..6 {
            let env = &env;
            s.spawn(move || {
                for i in 0..40 {
                    refused(
                        &env.login(ALICE, &format!("p{t}-{i}"))
                            .ip("192.0.2.93")
                            .run(),
                        "banned",
                    );
                }
            });
        }
        // Writers that fold the refusal log in meanwhile: failed logins elsewhere, and the admin looking.
        for t in 0..2 {
            let env = &env;
            s.spawn(move || {
                for i in 0..20 {
                    wrong_password(env, "127.0.0.1", ALICE, &format!("w{t}-{i}"));
                    failures(env, &["--ip", "192.0.2.93"]);
                }
            });
        }
    });
    assert_eq!(failures(&env, &["--ip", "192.0.2.93"]).len(), 240);
}

/// The rows of the failure log with reason `banned`, read straight from the database (an admin command would
/// fold the refusal log in first).
fn banned_rows(env: &Env) -> i64 {
    let db =
        rusqlite::Connection::open_with_flags(&env.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
    db.query_row(
        "SELECT count(*) FROM failures WHERE reason = 'banned'",
        [],
        |r| r.get(0),
    )
    .expect("count")
}

/// Writes `n` refusal lines of `ip` into `DB.refused` as banned logins would have, each with its own user
/// name padded to `user_len` bytes; returns the bytes written.
fn fill_refusal_log(env: &Env, ip: &str, n: usize, user_len: usize) -> u64 {
    let t = now();
    let mut text = String::with_capacity(n * (user_len + 32));
    for i in 0..n {
        text.push_str(&format!("{t}\t{ip}\t{i:0>user_len$}\timap\n"));
    }
    std::fs::write(beside_db(env, ".refused"), &text).expect("write the refusal log");
    text.len() as u64
}

/// What one failing login folds in at most (`bans::AUTH_CHUNK`).
const AUTH_CHUNK: i64 = 2000;

#[test]
fn a_huge_refusal_log_costs_a_failing_login_one_chunk_and_an_admin_command_drains_it() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    fill_refusal_log(&env, "192.0.2.95", 200_000, 6);

    // Each failing login folds in one chunk, no more, and leaves the rest where it was.
    wrong_password(&env, "127.0.0.1", ALICE, "first");
    let first = banned_rows(&env);
    assert!(0 < first && first <= AUTH_CHUNK, "{first}");
    assert!(beside_db(&env, ".refused.ingest").exists());
    wrong_password(&env, "127.0.0.1", ALICE, "second");
    let second = banned_rows(&env) - first;
    assert!(0 < second && second <= AUTH_CHUNK, "{second}");

    // An admin command takes all the rest, each line once.
    env.ok(&["ban", "list"], "");
    assert_eq!(banned_rows(&env), 200_000);
    assert!(!beside_db(&env, ".refused.ingest").exists());
    assert!(!beside_db(&env, ".refused").exists());
    wrong_password(&env, "127.0.0.1", ALICE, "third");
    assert_eq!(banned_rows(&env), 200_000);
}

#[test]
fn failing_logins_drain_the_refusal_log_chunk_by_chunk_while_refusals_go_on() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.97"], "");
    fill_refusal_log(&env, "192.0.2.97", 5000, 6);
    let mut before = 0;
    let mut refused_meanwhile = 0;
    for i in 0..4 {
        wrong_password(&env, "127.0.0.1", ALICE, &format!("drain {i}"));
        let now = banned_rows(&env);
        assert!(now - before <= AUTH_CHUNK, "run {i} took {}", now - before);
        before = now;
        // Banned logins keep appending to a fresh log meanwhile.
        refused(&env.login(ALICE, ALICE_PW).ip("192.0.2.97").run(), "banned");
        refused_meanwhile += 1;
    }
    assert_eq!(
        before,
        5000 + refused_meanwhile - 1,
        "all of the first log, and what came after it up to the last login"
    );
    env.ok(&["ban", "list"], "");
    assert_eq!(banned_rows(&env), 5000 + refused_meanwhile);
}

#[test]
fn past_its_cap_the_refusal_log_only_counts_refusals_per_network() {
    const CAP: u64 = 16 << 20;
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.96"], "");
    // Long lines (a long user name each) make a full log of few lines.
    let lines = (CAP / 900 + 1) as usize;
    let size = fill_refusal_log(&env, "192.0.2.96", lines, 960);
    assert!(size >= CAP, "{size}");
    for _ in 0..3 {
        refused(&env.login(ALICE, ALICE_PW).ip("192.0.2.96").run(), "banned");
    }
    assert_eq!(
        std::fs::metadata(beside_db(&env, ".refused"))
            .expect("refusal log")
            .len(),
        size,
        "the cap holds"
    );
    let list = bans(&env);
    let ban = ban_of(&list, "192.0.2.96/32").expect("banned");
    assert_eq!(ban["unlogged_refusals"], 3, "{ban}");
    assert_eq!(banned_rows(&env), lines as i64);
    assert!(!beside_db(&env, ".refused").exists());

    // Once folded in, refusals are logged line by line again, and the count stays.
    refused(&env.login(ALICE, ALICE_PW).ip("192.0.2.96").run(), "banned");
    let list = bans(&env);
    assert_eq!(
        ban_of(&list, "192.0.2.96/32").expect("banned")["unlogged_refusals"],
        3
    );
    assert_eq!(banned_rows(&env), lines as i64 + 1);
    let text = env.ok(&["ban", "list"], "");
    assert!(text.contains("3 refusals counted, not logged"), "{text}");
}

#[test]
fn the_ban_list_follows_the_real_database_path() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let link = env.path("link.db");
    std::os::unix::fs::symlink(&env.db, &link).expect("symlink");
    let via_link = |args: &[&str]| {
        let mut full = vec!["--db", link.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        env.ok(&full, "");
    };
    via_link(&["ban", "add", "192.0.2.94"]);
    env.ok(&["ban", "remove", "192.0.2.94"], "");
    let r = env
        .login(ALICE, ALICE_PW)
        .ip("192.0.2.94")
        .var("MAILPASS_DB", link.to_str().expect("utf-8"))
        .run();
    accepted(&r);
}

#[test]
fn a_planted_symlink_or_garbage_beside_the_database_is_not_read_as_refusals() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "1\t203.0.113.1\tfrom-a-symlink\timap\n").expect("secret");
    std::os::unix::fs::symlink(&secret, beside_db(&env, ".refused.ingest")).expect("symlink");
    env.ok(&["user", "list"], "");
    assert!(failures(&env, &["--user", "from-a-symlink"]).is_empty());

    std::fs::remove_file(beside_db(&env, ".refused.ingest")).expect("remove link");
    std::fs::write(
        beside_db(&env, ".refused"),
        b"\xff\xfe broken\n2\t203.0.113.2\tgood\timap\nnot a line\n",
    )
    .expect("refusals");
    let list = failures(&env, &["--ip", "203.0.113.2"]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["user"], "good");
}

#[test]
fn each_repeat_ban_lasts_twice_as_long_up_to_the_maximum() {
    let env = env_with(&config_with_bans(
        "ban_time = 2\nmax_ban_time = 8\nthreshold = 2\nwindow = 60",
    ));
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.80";
    let network = "192.0.2.80/32";
    let expected = [(1, 2), (2, 4), (3, 8), (4, 8)];
    for (round, (count, length)) in expected.into_iter().enumerate() {
        for k in 0..2 {
            wrong_password(&env, ip, ALICE, &format!("round {round} guess {k}"));
        }
        let list = bans(&env);
        let ban = ban_of(&list, network).unwrap_or_else(|| panic!("round {round}: {list:?}"));
        assert_eq!(ban["count"], count, "round {round}: {ban}");
        assert_eq!(ban_length(ban), Some(length), "round {round}: {ban}");
        assert_eq!(ban["reason"], "too many failed logins");
        refused(&env.login(ALICE, ALICE_PW).ip(ip).run(), "banned");
        wait_until_unbanned(&env, ip, Duration::from_secs(length as u64 + 3));
        // Step past the second the ban ended (see the test of that second below).
        thread::sleep(Duration::from_millis(1100));
        accepted(&env.login(ALICE, ALICE_PW).ip(ip).run());
    }
}

/// With threshold 1, every counted failure that the ban did not refuse must start a ban. A failure in the very
/// second the previous ban ends was not refused (the ban was over) and is counted, so it must ban again.
#[test]
fn a_failure_in_the_second_a_ban_ends_starts_the_next_ban() {
    let env = env_with(&config_with_bans(
        "ban_time = 1\nmax_ban_time = 8\nthreshold = 1\nwindow = 60",
    ));
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.81";
    let log = wrong_password(&env, ip, ALICE, "first");
    assert_eq!(log.get("ban").map(String::as_str), Some("192.0.2.81/32"));
    for round in 0..3 {
        wait_until_unbanned(&env, ip, Duration::from_secs(12));
        // Right away: most likely still the second in which the ban ended.
        let r = env
            .login(ALICE, &format!("just after the ban {round}"))
            .ip(ip)
            .run();
        let log = refused(&r, "wrong_password");
        let rows = failures(&env, &["--ip", ip]);
        assert_eq!(rows[0]["counted"], true, "{rows:?}");
        assert!(
            log.contains_key("ban"),
            "round {round}: a counted failure with threshold 1 did not ban: {log:?}; bans: {:?}; \
             failures: {rows:?}",
            bans(&env)
        );
    }
}

#[test]
fn lifting_a_ban_starts_the_repeat_count_over() {
    let env = env_with(&config_with_bans("threshold = 2"));
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.82";
    for k in 0..2 {
        wrong_password(&env, ip, ALICE, &format!("first {k}"));
    }
    assert_eq!(bans(&env)[0]["count"], 1);
    env.ok(&["ban", "remove", "192.0.2.82/32"], "");
    accepted(&env.login(ALICE, ALICE_PW).ip(ip).run());
    // The failures before the lift were answered by the lifted ban; two new ones start a first ban again.
    thread::sleep(Duration::from_millis(1100));
    let log = wrong_password(&env, ip, ALICE, "second 0");
    assert!(!log.contains_key("ban"), "{log:?}");
    let log = wrong_password(&env, ip, ALICE, "second 1");
    assert_eq!(log.get("ban").map(String::as_str), Some("192.0.2.82/32"));
    let list = bans(&env);
    assert_eq!(list[0]["count"], 1, "{list:?}");
    assert_eq!(ban_length(&list[0]), Some(1800), "{list:?}");
}

#[test]
fn a_ban_older_than_the_retention_is_forgotten_by_the_next_one() {
    let env = env_with(&config_with_bans(
        "ban_time = 1\nmax_ban_time = 8\nthreshold = 1\nretention = 1",
    ));
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.83";
    wrong_password(&env, ip, ALICE, "first");
    assert_eq!(bans(&env)[0]["count"], 1);
    wait_until_unbanned(&env, ip, Duration::from_secs(4));
    thread::sleep(Duration::from_millis(2100));
    let log = wrong_password(&env, ip, ALICE, "much later");
    assert_eq!(log.get("ban").map(String::as_str), Some("192.0.2.83/32"));
    let list = bans(&env);
    assert_eq!(list[0]["count"], 1, "{list:?}");
    assert_eq!(ban_length(&list[0]), Some(1), "{list:?}");
}

#[test]
fn with_bans_disabled_failures_are_recorded_but_nothing_is_banned() {
    let env = env_with(&config_with_bans("enabled = false"));
    env.add_user(ALICE, ALICE_PW);
    let ip = "192.0.2.84";
    for i in 0..12 {
        wrong_password(&env, ip, ALICE, &format!("guess {i}"));
    }
    assert_eq!(ban_check(&env, ip), None);
    assert!(bans(&env).is_empty());
    assert_eq!(failures(&env, &["--ip", ip]).len(), 12);
    // Manual bans still refuse.
    env.ok(&["ban", "add", ip, "--for", "1h"], "");
    refused(&env.login(ALICE, ALICE_PW).ip(ip).run(), "banned");
}

// ---------------------------------------------------------------------------------------------------------------
// Manual bans
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn an_admin_bans_and_unbans_networks_by_hand() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);

    let out = run_admin(
        &env,
        &[
            "ban",
            "add",
            "203.0.113.0/24",
            "--for",
            "1h",
            "--reason",
            "test",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // The right password is refused before any hashing: the log says banned, not a password outcome.
    let r = env.login(ALICE, ALICE_PW).ip("203.0.113.5").run();
    let log = refused(&r, "banned");
    assert_eq!(log.get("ban").map(String::as_str), Some("203.0.113.0/24"));
    let r = env
        .login("nobody@example.org", "x")
        .ip("203.0.113.200")
        .run();
    refused(&r, "banned");

    env.ok(&["ban", "add", "203.0.113.77"], "");
    let list = bans(&env);
    assert_eq!(list.len(), 2, "{list:?}");
    let timed = ban_of(&list, "203.0.113.0/24").expect("timed ban listed");
    assert_eq!(timed["reason"], "test");
    assert_eq!(timed["count"], 1);
    assert_eq!(ban_length(timed), Some(3600), "{timed}");
    let permanent = ban_of(&list, "203.0.113.77/32").expect("permanent ban listed");
    assert!(
        permanent["until"].is_null(),
        "no --for: permanent: {permanent}"
    );
    assert!(permanent["since"].is_string(), "{permanent}");
    assert!(permanent["reason"].is_string(), "{permanent}");
    assert_eq!(permanent["count"], 1);
    let shown = ban_check(&env, "203.0.113.77").expect("banned");
    assert!(shown.contains("permanent"), "{shown}");

    // Lifting the /24 lets its addresses in again; the permanent /32 inside it stays.
    env.ok(&["ban", "remove", "203.0.113.0/24"], "");
    accepted(&env.login(ALICE, ALICE_PW).ip("203.0.113.5").run());
    assert_eq!(ban_check(&env, "203.0.113.5"), None);
    refused(
        &env.login(ALICE, ALICE_PW).ip("203.0.113.77").run(),
        "banned",
    );
    env.ok(&["ban", "remove", "203.0.113.77"], "");
    accepted(&env.login(ALICE, ALICE_PW).ip("203.0.113.77").run());
    assert!(bans(&env).is_empty());

    // Removing what is not banned is refused; nonsense is a usage error.
    let out = run_admin(&env, &["ban", "remove", "203.0.113.0/24"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run_admin(&env, &["ban", "remove", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for bad in ["banana", "203.0.113.0/33", "2001:db8::/129", "300.1.2.3"] {
        let out = run_admin(&env, &["ban", "add", bad]);
        assert_eq!(out.status.code(), Some(2), "ban add {bad}: {out:?}");
        let out = run_admin(&env, &["ban", "remove", bad]);
        assert_eq!(out.status.code(), Some(2), "ban remove {bad}: {out:?}");
    }
    let out = run_admin(&env, &["ban", "check", "banana"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run_admin(&env, &["ban", "add", "192.0.2.1", "--for", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(bans(&env).is_empty(), "{:?}", bans(&env));
}

#[test]
fn a_timed_ban_stops_refusing_when_it_expires() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.90", "--for", "1s"], "");
    env.ok(&["ban", "add", "192.0.2.91", "--for", "3s"], "");
    let list = bans(&env);
    if let Some(b) = ban_of(&list, "192.0.2.90/32") {
        assert_eq!(ban_length(b), Some(1), "{b}");
    }
    let b = ban_of(&list, "192.0.2.91/32").expect("3 s ban listed");
    assert_eq!(ban_length(b), Some(3), "{b}");
    refused(&env.login(ALICE, ALICE_PW).ip("192.0.2.91").run(), "banned");

    thread::sleep(Duration::from_millis(3200));
    for ip in ["192.0.2.90", "192.0.2.91"] {
        assert_eq!(ban_check(&env, ip), None, "{ip}");
        accepted(&env.login(ALICE, ALICE_PW).ip(ip).run());
    }
    assert!(bans(&env).is_empty(), "{:?}", bans(&env));
    assert!(
        env.ok(&["ban", "export", "--format", "plain"], "")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// ban record and failures list
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn failures_recorded_elsewhere_count_like_logins() {
    let env = env_default();
    let ip = "192.0.2.100";
    for i in 0..9 {
        let user = format!("web{i}@example.org");
        env.ok(
            &[
                "ban",
                "record",
                "--ip",
                ip,
                "--user",
                &user,
                "--service",
                "webmail",
                "--reason",
                "wrong_password",
            ],
            "",
        );
    }
    assert_eq!(ban_check(&env, ip), None);
    let out = run_admin(
        &env,
        &[
            "ban",
            "record",
            "--ip",
            ip,
            "--user",
            "web9@example.org",
            "--reason",
            "wrong_password",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("banned"),
        "the 10th record says it banned: {out:?}"
    );
    assert!(ban_check(&env, ip).is_some());

    // "Second factor required" never counts, however often it is recorded.
    let other = "192.0.2.101";
    for _ in 0..15 {
        env.ok(
            &[
                "ban",
                "record",
                "--ip",
                other,
                "--user",
                ALICE,
                "--reason",
                "second_factor_required",
            ],
            "",
        );
    }
    assert_eq!(ban_check(&env, other), None);
    let rows = failures(&env, &["--ip", other]);
    assert_eq!(rows.len(), 15);
    assert!(
        rows.iter()
            .all(|f| f["counted"] == false && f["reason"] == "second_factor_required"),
        "{rows:?}"
    );

    // Bad input is a usage error.
    let out = run_admin(&env, &["ban", "record", "--ip", "not-an-ip"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run_admin(&env, &["ban", "record", "--user", ALICE]);
    assert_eq!(out.status.code(), Some(2), "--ip is required: {out:?}");
}

#[test]
fn failures_list_shows_each_failure_and_filters_by_ip_user_and_age() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    wrong_password(&env, "192.0.2.110", ALICE, "old guess");
    env.ok(
        &[
            "ban",
            "record",
            "--ip",
            "192.0.2.111",
            "--user",
            "bob@example.org",
        ],
        "",
    );
    thread::sleep(Duration::from_millis(3100));
    let r = env
        .login("carol@example.org", "whatever")
        .ip("192.0.2.110")
        .service("pop3")
        .run();
    refused(&r, "unknown_user");

    let all = failures(&env, &[]);
    assert_eq!(all.len(), 3, "{all:?}");
    for row in &all {
        for key in ["time", "ip", "user", "service", "reason", "counted"] {
            assert!(row.get(key).is_some(), "{key} missing: {row}");
        }
        assert!(row["counted"].is_boolean(), "{row}");
        unix(&row["time"]);
    }
    // Newest first.
    assert_eq!(all[0]["user"], "carol@example.org");
    assert_eq!(all[0]["ip"], "192.0.2.110");
    assert_eq!(all[0]["service"], "pop3");
    assert_eq!(all[0]["reason"], "unknown_user");
    assert_eq!(all[0]["counted"], true);
    assert_eq!(all[1]["user"], "bob@example.org");
    assert_eq!(all[1]["reason"], "external", "ban record's default reason");
    assert!(all[1]["service"].is_null(), "{}", all[1]);
    assert_eq!(all[2]["user"], ALICE);
    assert_eq!(all[2]["service"], "imap");
    assert_eq!(all[2]["reason"], "wrong_password");
    assert!(unix(&all[0]["time"]) >= unix(&all[2]["time"]) + 3);

    let by_ip = failures(&env, &["--ip", "192.0.2.110"]);
    assert_eq!(by_ip.len(), 2, "{by_ip:?}");
    assert!(by_ip.iter().all(|f| f["ip"] == "192.0.2.110"));
    let by_user = failures(&env, &["--user", ALICE]);
    assert_eq!(by_user.len(), 1, "{by_user:?}");
    assert_eq!(by_user[0]["ip"], "192.0.2.110");
    let recent = failures(&env, &["--since", "2s"]);
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0]["user"], "carol@example.org");
    let both = failures(&env, &["--ip", "192.0.2.110", "--since", "1h"]);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(failures(&env, &["--ip", "192.0.2.112"]).is_empty());

    // The human form has one line per failure.
    let plain = env.ok(&["failures", "list"], "");
    assert_eq!(plain.lines().count(), 3, "{plain}");
    let out = run_admin(&env, &["failures", "list", "--ip", "banana"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run_admin(&env, &["failures", "list", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// User names are case-insensitive (stored lowercased) and the log keeps the name as sent: asking for a user's
/// failures must find them whichever case the client sent, including the exact name the list shows.
#[test]
fn failures_list_by_user_finds_a_name_sent_in_another_case() {
    let env = env_default();
    env.add_user(ALICE, ALICE_PW);
    let sent = "Alice@Example.org";
    wrong_password(&env, "192.0.2.120", sent, "capitalised guess");
    let all = failures(&env, &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    let shown = all[0]["user"].as_str().expect("user").to_string();
    let by_shown = failures(&env, &["--user", &shown]);
    assert_eq!(
        by_shown.len(),
        1,
        "`failures list --user {shown}` (the name the list shows) finds nothing: {all:?}"
    );
    let by_canonical = failures(&env, &["--user", ALICE]);
    assert_eq!(
        by_canonical.len(),
        1,
        "`failures list --user {ALICE}` does not find the failure sent as {sent}: {all:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------------------------

/// Runs `nft -c -f` on the script if nft is installed. Ok(()) if it accepted it, Err(output) if it rejected it
/// for its syntax; None if nft is missing or cannot run here (no privileges or netlink in the sandbox).
fn nft_check(env: &Env, script: &str, name: &str) -> Option<Result<(), String>> {
    let path = env.path(name);
    std::fs::write(&path, script).expect("write script");
    let out = match std::process::Command::new("nft")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("note: nft is not available ({e}); the script's syntax was not checked");
            return None;
        }
    };
    if out.status.success() {
        return Some(Ok(()));
    }
    let err = text(&out.stderr);
    let environmental = [
        "Operation not permitted",
        "Permission denied",
        "Protocol not supported",
        "netlink",
        "Netlink",
        "cache initialization failed",
    ];
    if environmental.iter().any(|e| err.contains(e)) {
        println!(
            "note: nft -c cannot run in this sandbox, the script's syntax was not checked: {err}"
        );
        return None;
    }
    Some(Err(format!("{err}\n--- script ---\n{script}")))
}

#[test]
fn bans_export_as_plain_lines_and_as_an_nft_script() {
    let env = env_default();

    // No bans: an empty list, and a script with empty sets that nft still accepts.
    assert_eq!(env.ok(&["ban", "export", "--format", "plain"], ""), "");
    let empty = env.ok(&["ban", "export", "--format", "nft"], "");
    assert!(empty.contains("table inet mailpass"), "{empty}");
    if let Some(result) = nft_check(&env, &empty, "empty.nft") {
        result.unwrap_or_else(|e| panic!("nft rejected the empty export: {e}"));
    }

    env.ok(&["ban", "add", "192.0.2.7", "--for", "1h"], "");
    env.ok(&["ban", "add", "198.51.100.0/24", "--for", "2h"], "");
    env.ok(&["ban", "add", "2001:db8:1:2::/64"], "");
    env.ok(&["ban", "add", "2001:db8:9::/48", "--for", "30m"], "");
    env.ok(&["ban", "add", "203.0.113.9"], "");

    let plain = env.ok(&["ban", "export", "--format", "plain"], "");
    let lines: HashSet<&str> = plain.lines().collect();
    assert_eq!(plain.lines().count(), 5, "{plain}");
    assert_eq!(
        lines,
        HashSet::from([
            "192.0.2.7/32",
            "198.51.100.0/24",
            "2001:db8:1:2::/64",
            "2001:db8:9::/48",
            "203.0.113.9/32",
        ]),
        "{plain}"
    );

    let script = env.ok(&["ban", "export", "--format", "nft"], "");
    assert!(script.contains("table inet mailpass"), "{script}");
    // Timed elements carry their remaining time; permanent ones none.
    let timeout_of = |element: &str| -> Option<i64> {
        let at = script
            .find(&format!("{element} "))
            .or_else(|| script.find(&format!("{element},")))
            .or_else(|| script.find(&format!("{element} }}")))
            .unwrap_or_else(|| panic!("{element} not in the script: {script}"));
        let rest = &script[at + element.len()..];
        let rest = rest.trim_start();
        rest.strip_prefix("timeout ").map(|t| {
            let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
            assert!(
                t[digits.len()..].starts_with('s'),
                "timeout in seconds: {t}"
            );
            digits.parse().expect("timeout number")
        })
    };
    let t = timeout_of("192.0.2.7").expect("timed ban has a timeout");
    assert!((3590..=3600).contains(&t), "{t}: {script}");
    let t = timeout_of("198.51.100.0/24").expect("timed ban has a timeout");
    assert!((7190..=7200).contains(&t), "{t}: {script}");
    let t = timeout_of("2001:db8:9::/48").expect("timed ban has a timeout");
    assert!((1790..=1800).contains(&t), "{t}: {script}");
    assert_eq!(timeout_of("2001:db8:1:2::/64"), None, "{script}");
    assert_eq!(timeout_of("203.0.113.9"), None, "{script}");
    // IPv4 and IPv6 elements never share a set.
    for line in script.lines().filter(|l| l.contains("elements")) {
        assert!(
            !(line.contains("192.0.2.7") && line.contains("2001:db8")),
            "{script}"
        );
    }

    match nft_check(&env, &script, "bans.nft") {
        Some(Ok(())) => println!("nft -c -f accepted the export"),
        Some(Err(e)) => panic!("nft rejected the export: {e}"),
        None => {}
    }
    let out = run_admin(&env, &["ban", "export", "--format", "iptables"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn ban_prune_deletes_failures_older_than_the_retention() {
    let env = env_with(&config_with_bans("retention = 1"));
    env.add_user(ALICE, ALICE_PW);
    for i in 0..3 {
        wrong_password(&env, "192.0.2.130", ALICE, &format!("old {i}"));
    }
    thread::sleep(Duration::from_millis(2100));
    wrong_password(&env, "192.0.2.131", ALICE, "fresh");
    let out = run_admin(&env, &["ban", "prune"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("deleted"), "{out:?}");
    let rows = failures(&env, &[]);
    assert_eq!(rows.len(), 1, "only the fresh failure is left: {rows:?}");
    assert_eq!(rows[0]["ip"], "192.0.2.131");
}

// ---------------------------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn two_hundred_concurrent_failures_from_twenty_addresses_are_all_recorded_and_ban_each_once() {
    let env = env_default();
    const ADDRESSES: usize = 20;
    const PER_ADDRESS: usize = 10;
    const TOTAL: usize = ADDRESSES * PER_ADDRESS;
    let barrier = Barrier::new(TOTAL);
    let replies: Vec<(String, String, Reply)> = thread::scope(|s| {
        let handles: Vec<_> = (0..TOTAL)
            .map(|i| {
                let env = &env;
                let barrier = &barrier;
                s.spawn(move || {
                    let ip = format!("192.0.2.{}", i % ADDRESSES + 1);
                    let user = format!("attempt{i}@spray.example");
                    let secret = format!("secret number {i}");
                    let login = env.login(&user, &secret).ip(&ip);
                    barrier.wait();
                    (user, ip, login.run())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });

    let mut codes: BTreeMap<Option<i32>, usize> = BTreeMap::new();
    for (_, _, r) in &replies {
        *codes.entry(r.code).or_default() += 1;
    }
    let odd: Vec<_> = replies
        .iter()
        .filter(|(_, _, r)| r.code != Some(1))
        .take(3)
        .collect();
    assert_eq!(
        codes,
        BTreeMap::from([(Some(1), TOTAL)]),
        "every attempt is a plain failure: {odd:?}"
    );
    for (user, _, r) in &replies {
        let reason = logged_reason(r);
        assert!(
            reason == "unknown_user" || reason == "banned",
            "{user}: {r:?}"
        );
    }

    let rows = failures(&env, &[]);
    assert_eq!(rows.len(), TOTAL, "one row per attempt");
    let mut per_user: HashMap<&str, Vec<&Value>> = HashMap::new();
    for row in &rows {
        per_user
            .entry(row["user"].as_str().expect("user"))
            .or_default()
            .push(row);
    }
    let mut banned_rows = 0;
    for (user, ip, _) in &replies {
        let mine = per_user.get(user.as_str()).map_or(&[][..], Vec::as_slice);
        assert_eq!(mine.len(), 1, "{user}: {mine:?}");
        assert_eq!(mine[0]["ip"], ip.as_str(), "{user}");
        if mine[0]["reason"] == "banned" {
            banned_rows += 1;
            assert_eq!(mine[0]["counted"], false);
        } else {
            assert_eq!(mine[0]["reason"], "unknown_user");
        }
    }
    println!("{banned_rows} attempt(s) were refused as banned");

    let list = bans(&env);
    let networks: BTreeMap<String, i64> = list
        .iter()
        .map(|b| {
            (
                b["network"].as_str().expect("network").to_string(),
                b["count"].as_i64().expect("count"),
            )
        })
        .collect();
    let expected: BTreeMap<String, i64> = (1..=ADDRESSES)
        .map(|k| (format!("192.0.2.{k}/32"), 1))
        .collect();
    assert_eq!(list.len(), ADDRESSES, "{list:?}");
    assert_eq!(networks, expected, "{list:?}");
}

#[test]
fn the_firewall_export_closes_the_ports_the_admin_names() {
    let env = env_with(&format!(
        "{TEST_CONFIG}\n[bans]\nfirewall_ports = [143, 993, 4190]\n"
    ));
    env.ok(&["ban", "add", "192.0.2.99"], "");
    let script = env.ok(&["ban", "export", "--format", "nft"], "");
    assert!(
        script.contains("tcp dport { 143, 993, 4190 } drop"),
        "{script}"
    );
    assert!(!script.contains("25,"), "{script}");
    if let Some(Err(e)) = nft_check(&env, &script, "ports.nft") {
        panic!("nft rejected the export: {e}");
    }
}
