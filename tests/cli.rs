//! The admin command line as an admin sees it: `mailpass user ...`, `mailpass app-password ...`,
//! `mailpass totp ...`, the global `--db` / `--config` options, exit codes (0 done, 1 refused or missing,
//! 2 usage), one-line error messages and the `--json` shapes documented in the README.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Env, json};
use serde_json::Value;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const NOBODY: &str = "nobody@example.org";
const APP_ALPHABET: &str = "0123456789abcdefghjkmnpqrstvwxyz";
const ALL_SERVICES: [&str; 4] = ["imap", "pop3", "smtp", "sieve"];

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn admin(env: &Env, args: &[&str], stdin: &str) -> Output {
    env.admin(args, stdin)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `stderr` is exactly one non-empty line (an optional trailing newline allowed).
fn assert_one_line(stderr: &str, what: &str) {
    let line = stderr.strip_suffix('\n').unwrap_or(stderr);
    let line = line.strip_suffix('\r').unwrap_or(line);
    assert!(
        !line.trim().is_empty(),
        "{what}: expected a one-line error on stderr, got nothing"
    );
    assert!(
        !line.contains('\n'),
        "{what}: expected a one-line error on stderr, got {} lines:\n{stderr}",
        stderr.lines().count()
    );
}

/// Asserts the exit code of a refused command and that its error is one line on stderr.
fn assert_refused(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout_of(out),
        stderr_of(out)
    );
    assert_one_line(&stderr_of(out), what);
}

/// Asserts a usage error: exit 2 and something on stderr (the one-line rule has its own test).
fn assert_usage(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: expected usage error (exit 2), got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout_of(out),
        stderr_of(out)
    );
    assert!(
        !stderr_of(out).trim().is_empty(),
        "{what}: usage error without a message on stderr"
    );
}

fn now_secs() -> i64 {
    common::now() as i64
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs() as i64
}

/// Parses an RFC 3339 UTC time (`...Z`) and returns Unix seconds.
fn rfc3339(v: &Value, what: &str) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected an RFC 3339 time string, got {v}"));
    assert!(
        s.ends_with('Z'),
        "{what}: expected UTC with a Z suffix: {s}"
    );
    let t =
        humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{what}: not RFC 3339 ({e}): {s}"));
    unix(t)
}

/// Asserts an RFC 3339 UTC time close to now (generous: this is not a timing assertion).
fn assert_recent(v: &Value, what: &str) {
    let t = rfc3339(v, what);
    let now = now_secs();
    assert!(
        (t - now).abs() < 3600,
        "{what}: {v} is not about now ({now})"
    );
}

fn field<'a>(obj: &'a Value, key: &str, what: &str) -> &'a Value {
    obj.as_object()
        .unwrap_or_else(|| panic!("{what}: expected a JSON object, got {obj}"))
        .get(key)
        .unwrap_or_else(|| panic!("{what}: missing key {key:?} in {obj}"))
}

fn services_of(v: &Value, what: &str) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: services must be an array, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{what}: service must be a string, got {s}"))
                .to_string()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The app-password format: `xxxx-xxxx-xxxx-xxxx`, 16 characters of lowercase Crockford base32.
fn assert_app_password_format(pw: &str) {
    let groups: Vec<&str> = pw.split('-').collect();
    assert_eq!(groups.len(), 4, "app password {pw:?} is not four groups");
    for g in &groups {
        assert_eq!(
            g.len(),
            4,
            "app password {pw:?}: group {g:?} is not 4 chars"
        );
        for c in g.chars() {
            assert!(
                APP_ALPHABET.contains(c),
                "app password {pw:?}: {c:?} is outside {APP_ALPHABET}"
            );
        }
    }
}

/// Walks a JSON value and fails on any key that looks like a stored secret.
fn assert_no_secret_keys(v: &Value, what: &str) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                let key = k.to_ascii_lowercase();
                assert!(
                    key != "password"
                        && !key.contains("hash")
                        && !key.contains("secret")
                        && !key.contains("tag")
                        && !key.contains("phc"),
                    "{what}: key {k:?} looks like a secret: {v}"
                );
                assert_no_secret_keys(val, what);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_no_secret_keys(i, what)),
        _ => {}
    }
}

/// Fails if any of `secrets` (or an argon2 PHC string) appears in `text`.
fn assert_text_has_no_secrets(text: &str, secrets: &[&str], what: &str) {
    assert!(
        !text.contains("$argon2"),
        "{what}: a password hash leaked: {text}"
    );
    for s in secrets {
        let bare: String = s.chars().filter(|c| *c != '-').collect();
        assert!(
            !text.contains(s) && !text.to_lowercase().contains(&bare.to_lowercase()),
            "{what}: the secret {s:?} appears in the output: {text}"
        );
    }
}

fn user_list(env: &Env) -> Vec<Value> {
    let v = json(&env.ok(&["user", "list", "--json"], ""));
    v.as_array()
        .unwrap_or_else(|| panic!("user list --json must be an array, got {v}"))
        .clone()
}

fn user_entry(env: &Env, name: &str) -> Option<Value> {
    user_list(env)
        .into_iter()
        .find(|u| u.get("name").and_then(Value::as_str) == Some(name))
}

fn app_passwords(env: &Env, user: &str) -> Vec<Value> {
    let v = json(&env.ok(&["app-password", "list", user, "--json"], ""));
    v.as_array()
        .unwrap_or_else(|| panic!("app-password list --json must be an array, got {v}"))
        .clone()
}

fn app_password_named(env: &Env, user: &str, name: &str) -> Option<Value> {
    app_passwords(env, user)
        .into_iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some(name))
}

/// The status of an app password as list shows it; absent counts as "absent".
fn status_of(env: &Env, user: &str, name: &str) -> String {
    match app_password_named(env, user, name) {
        Some(a) => field(&a, "status", "app-password list")
            .as_str()
            .unwrap_or("<non-string>")
            .to_string(),
        None => "absent".into(),
    }
}

fn add_json(env: &Env, user: &str, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["app-password", "add", user, "--name", name, "--json"];
    args.extend_from_slice(extra);
    json(&env.ok(&args, ""))
}

fn totp_status(env: &Env, user: &str) -> Value {
    json(&env.ok(&["totp", "status", user, "--json"], ""))
}

fn totp_state(env: &Env, user: &str) -> String {
    let v = totp_status(env, user);
    field(&v, "state", "totp status --json")
        .as_str()
        .unwrap_or_else(|| panic!("totp state must be a string: {v}"))
        .to_string()
}

/// Enrolls TOTP and returns the base32 secret.
fn enroll(env: &Env, user: &str) -> String {
    let v = json(&env.ok(&["totp", "enroll", user, "--json"], ""));
    field(&v, "secret", "totp enroll --json")
        .as_str()
        .expect("secret string")
        .to_string()
}

/// Enrolls and confirms TOTP; returns the secret.
fn activate_totp(env: &Env, user: &str) -> String {
    let secret = enroll(env, user);
    let code = common::totp_code(&secret, common::now());
    env.ok(&["totp", "confirm", user, &code], "");
    secret
}

/// A 6-digit code that is not valid for `secret` anywhere near now.
fn wrong_code(secret: &str) -> String {
    let now = common::now();
    let near: BTreeSet<String> = (0..=8)
        .map(|i| common::totp_code(secret, now - 120 + i * 30))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .expect("some wrong code")
}

fn recovery_codes(env: &Env, user: &str) -> Vec<String> {
    env.ok(&["totp", "recovery-codes", user], "")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------------------

#[test]
fn admin_adds_a_user_with_the_password_on_stdin() {
    let env = Env::new();
    let out = admin(
        &env,
        &["user", "add", ALICE, "--password-stdin"],
        "correct horse\n",
    );
    assert_eq!(out.status.code(), Some(0), "user add: {}", stderr_of(&out));
    let alice = user_entry(&env, ALICE).expect("alice is listed after user add");
    assert_eq!(alice["enabled"], Value::Bool(true));
    assert_eq!(alice["totp"], "none");
    assert_eq!(alice["app_passwords"], 0);
}

#[test]
fn password_from_stdin_loses_only_its_line_ending() {
    let env = Env::new();
    env.ok(&["user", "add", ALICE, "--password-stdin"], "pass word\r\n");
    env.ok(&["user", "add", BOB, "--password-stdin"], "pass word");
    for user in [ALICE, BOB] {
        let ok = env.login(user, "pass word").run();
        assert_eq!(
            ok.code,
            Some(0),
            "{user} logs in with the stdin password: {ok:?}"
        );
        let bad = env.login(user, "pass word\r").run();
        assert_eq!(
            bad.code,
            Some(1),
            "{user}: the line ending is not part of it: {bad:?}"
        );
    }
    let carol = "carol@example.org";
    env.ok(
        &["user", "add", carol, "--password-stdin"],
        " spaced out \n",
    );
    let ok = env.login(carol, " spaced out ").run();
    assert_eq!(ok.code, Some(0), "spaces are part of the password: {ok:?}");
    let trimmed = env.login(carol, "spaced out").run();
    assert_eq!(
        trimmed.code,
        Some(1),
        "only the line ending goes: {trimmed:?}"
    );
}

#[test]
fn user_add_without_password_stdin_off_a_terminal_is_refused() {
    let env = Env::new();
    env.ok(&["user", "list"], "");
    let out = env
        .command()
        .args(["user", "add", ALICE])
        .stdin(Stdio::null())
        .output()
        .expect("run mailpass");
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "no terminal to prompt on and no --password-stdin: {:?} {}",
        out.status.code(),
        stderr_of(&out)
    );
    assert_one_line(&stderr_of(&out), "user add without a terminal");
    assert!(user_entry(&env, ALICE).is_none(), "no user was created");
}

#[test]
fn adding_an_existing_user_is_refused_with_one_line() {
    let env = Env::new();
    env.add_user(ALICE, "first");
    let out = admin(
        &env,
        &["user", "add", ALICE, "--password-stdin"],
        "second\n",
    );
    assert_refused(&out, 1, "user add of an existing user");
    assert_eq!(user_list(&env).len(), 1, "still one user");
}

#[test]
fn user_list_json_has_name_enabled_totp_app_passwords_created_at() {
    let env = Env::new();
    assert_eq!(
        json(&env.ok(&["user", "list", "--json"], "")),
        Value::Array(vec![]),
        "an empty DB lists no users"
    );
    env.add_user(ALICE, "pw-a");
    env.add_user(BOB, "pw-b");
    env.add_app_password(BOB, "Phone", &[]);
    env.add_app_password(BOB, "Laptop", &[]);

    let users = user_list(&env);
    assert_eq!(users.len(), 2, "{users:?}");
    for u in &users {
        let what = "user list --json entry";
        assert!(field(u, "name", what).is_string(), "{u}");
        assert!(field(u, "enabled", what).is_boolean(), "{u}");
        assert_eq!(field(u, "totp", what), "none", "{u}");
        assert!(field(u, "app_passwords", what).is_u64(), "{u}");
        assert_recent(field(u, "created_at", what), "user list created_at");
        assert_no_secret_keys(u, what);
    }
    let bob = user_entry(&env, BOB).expect("bob listed");
    assert_eq!(
        bob["app_passwords"], 2,
        "bob has two active app passwords: {bob}"
    );
    env.ok(&["app-password", "revoke", BOB, "Phone"], "");
    let bob = user_entry(&env, BOB).expect("bob listed");
    assert_eq!(
        bob["app_passwords"], 1,
        "a revoked one is not counted: {bob}"
    );

    let plain = env.ok(&["user", "list"], "");
    assert!(
        plain.contains(ALICE) && plain.contains(BOB),
        "plain list: {plain}"
    );
}

#[test]
fn user_names_are_stored_lowercased() {
    let env = Env::new();
    env.add_user("Alice@Example.ORG", "pw");
    let names: Vec<Value> = user_list(&env)
        .into_iter()
        .map(|u| u["name"].clone())
        .collect();
    assert_eq!(names, vec![Value::from(ALICE)]);
    let out = admin(&env, &["user", "add", ALICE, "--password-stdin"], "pw2\n");
    assert_refused(&out, 1, "adding the lowercase form of an existing user");
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["name"], ALICE);
}

#[test]
fn commands_accept_the_user_name_in_any_case() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let show = json(&env.ok(&["user", "show", "ALICE@example.org", "--json"], ""));
    assert_eq!(show["name"], ALICE, "canonical name shown: {show}");
    env.add_app_password("Alice@Example.org", "Phone", &[]);
    assert_eq!(app_passwords(&env, ALICE).len(), 1);
    env.ok(&["user", "disable", "Alice@Example.Org"], "");
    assert_eq!(user_entry(&env, ALICE).expect("alice")["enabled"], false);
}

#[test]
fn user_show_json_has_state_app_passwords_and_second_factor_clients() {
    let env = Env::new();
    env.add_user(ALICE, "main-secret");
    let pw = env.add_app_password(ALICE, "iPhone Mail", &["--services", "imap,smtp"]);

    let out = env.ok(&["user", "show", ALICE, "--json"], "");
    let v = json(&out);
    let what = "user show --json";
    assert_eq!(field(&v, "name", what), ALICE);
    assert_eq!(field(&v, "enabled", what), true);
    assert_recent(field(&v, "created_at", what), "user show created_at");

    let totp = field(&v, "totp", what);
    assert_eq!(field(totp, "state", "user show totp"), "none", "{v}");
    assert!(
        field(totp, "enrolled_at", "user show totp").is_null(),
        "{v}"
    );
    let left = field(totp, "recovery_codes_left", "user show totp");
    assert!(
        left.is_null() || left == 0,
        "no recovery codes without TOTP: {v}"
    );

    let apps = field(&v, "app_passwords", what)
        .as_array()
        .unwrap_or_else(|| panic!("app_passwords must be an array: {v}"));
    assert_eq!(apps.len(), 1, "{v}");
    let app = &apps[0];
    assert_eq!(field(app, "name", what), "iPhone Mail");
    assert_eq!(
        services_of(field(app, "services", what), what),
        set(&["imap", "smtp"])
    );
    for key in [
        "id",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_ip",
        "last_service",
    ] {
        field(app, key, "user show app password");
    }
    assert_eq!(
        field(&v, "second_factor_required", what),
        &Value::Array(vec![]),
        "no refused clients yet: {v}"
    );
    assert_no_secret_keys(&v, what);
    assert_text_has_no_secrets(&out, &[&pw, "main-secret"], what);

    let plain = env.ok(&["user", "show", ALICE], "");
    assert!(
        plain.contains(ALICE),
        "plain user show names the user: {plain}"
    );
    assert!(
        plain.contains("iPhone Mail"),
        "plain user show lists app passwords: {plain}"
    );
    assert_text_has_no_secrets(&plain, &[&pw, "main-secret"], "user show");
}

#[test]
fn user_passwd_changes_the_password() {
    let env = Env::new();
    env.add_user(ALICE, "old-password");
    let out = admin(
        &env,
        &["user", "passwd", ALICE, "--password-stdin"],
        "new-password\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "user passwd: {}",
        stderr_of(&out)
    );
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["name"], ALICE);
    assert_eq!(show["enabled"], true);

    let out = admin(&env, &["user", "passwd", ALICE, "--password-stdin"], "\n");
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "an empty new password is refused: {:?} {}",
        out.status.code(),
        stderr_of(&out)
    );
    assert_one_line(&stderr_of(&out), "user passwd with an empty password");
}

#[test]
fn user_del_removes_the_user_and_its_app_passwords() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_user(BOB, "pw");
    env.add_app_password(ALICE, "Phone", &[]);
    env.ok(&["user", "del", ALICE], "");

    assert_refused(
        &admin(&env, &["user", "show", ALICE], ""),
        1,
        "user show after del",
    );
    assert!(
        user_entry(&env, ALICE).is_none(),
        "alice is no longer listed"
    );
    assert!(user_entry(&env, BOB).is_some(), "bob is untouched");
    assert_refused(
        &admin(&env, &["user", "del", ALICE], ""),
        1,
        "user del twice",
    );

    env.add_user(ALICE, "pw");
    assert!(
        app_passwords(&env, ALICE).is_empty(),
        "a re-created user does not inherit the old app passwords"
    );
    assert_eq!(totp_state(&env, ALICE), "none");
}

#[test]
fn disable_and_enable_show_in_user_list() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_user(BOB, "pw");
    env.ok(&["user", "disable", ALICE], "");
    assert_eq!(user_entry(&env, ALICE).expect("alice")["enabled"], false);
    assert_eq!(user_entry(&env, BOB).expect("bob")["enabled"], true);
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["enabled"], false, "{show}");
    env.ok(&["user", "enable", ALICE], "");
    assert_eq!(user_entry(&env, ALICE).expect("alice")["enabled"], true);
}

#[test]
fn every_command_refuses_an_unknown_user() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let cases: &[(&[&str], &str)] = &[
        (&["user", "passwd", NOBODY, "--password-stdin"], "pw\n"),
        (&["user", "del", NOBODY], ""),
        (&["user", "disable", NOBODY], ""),
        (&["user", "enable", NOBODY], ""),
        (&["user", "show", NOBODY], ""),
        (&["user", "show", NOBODY, "--json"], ""),
        (&["app-password", "add", NOBODY, "--name", "Phone"], ""),
        (
            &["app-password", "add", NOBODY, "--name", "Phone", "--json"],
            "",
        ),
        (&["app-password", "list", NOBODY], ""),
        (&["app-password", "list", NOBODY, "--json"], ""),
        (&["app-password", "revoke", NOBODY, "Phone"], ""),
        (&["app-password", "revoke", NOBODY, "--all"], ""),
        (&["totp", "enroll", NOBODY], ""),
        (&["totp", "enroll", NOBODY, "--json"], ""),
        (&["totp", "confirm", NOBODY, "123456"], ""),
        (&["totp", "status", NOBODY], ""),
        (&["totp", "status", NOBODY, "--json"], ""),
        (&["totp", "disable", NOBODY], ""),
        (&["totp", "recovery-codes", NOBODY], ""),
    ];
    for (args, stdin) in cases {
        let out = admin(&env, args, stdin);
        assert_refused(&out, 1, &format!("mailpass {}", args.join(" ")));
    }
    assert_eq!(
        user_list(&env).len(),
        1,
        "no command created the unknown user"
    );
}

#[test]
fn bad_usage_exits_2() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["user"],
        &["user", "frobnicate", ALICE],
        &["user", "add"],
        &["user", "passwd"],
        &["user", "del"],
        &["user", "show"],
        &["user", "disable"],
        &["user", "enable"],
        &["app-password"],
        &["app-password", "frobnicate", ALICE],
        &["app-password", "add", ALICE],
        &["app-password", "add", "--name", "Phone"],
        &["app-password", "list"],
        &["app-password", "revoke", ALICE],
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Phone",
            "--services",
            "foo",
        ],
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Phone",
            "--services",
            "imap,foo",
        ],
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Phone",
            "--expires-in",
            "banana",
        ],
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Phone",
            "--expires-in",
            "90",
        ],
        &["totp"],
        &["totp", "frobnicate", ALICE],
        &["totp", "enroll"],
        &["totp", "confirm", ALICE],
        &["totp", "status"],
        &["totp", "recovery-codes"],
        &["user", "list", "--frobnicate"],
    ];
    for args in cases {
        let out = admin(&env, args, "");
        assert_usage(&out, &format!("mailpass {}", args.join(" ")));
    }
    assert!(
        app_passwords(&env, ALICE).is_empty(),
        "no usage error created an app password"
    );
}

#[test]
fn usage_errors_are_one_line_on_stderr() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let cases: &[&[&str]] = &[
        &["user", "add"],
        &["user", "frobnicate"],
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Phone",
            "--services",
            "foo",
        ],
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Phone",
            "--expires-in",
            "banana",
        ],
        &["user", "add", BOB, "--password", "secret"],
        &["totp", "confirm", ALICE],
        &["frobnicate"],
    ];
    let mut multi_line = Vec::new();
    for args in cases {
        let out = admin(&env, args, "");
        assert_usage(&out, &format!("mailpass {}", args.join(" ")));
        let stderr = stderr_of(&out);
        if stderr.trim_end().contains('\n') {
            multi_line.push(format!("mailpass {}:\n{stderr}", args.join(" ")));
        }
    }
    assert!(
        multi_line.is_empty(),
        "{} of {} usage errors are not one line on stderr:\n{}",
        multi_line.len(),
        cases.len(),
        multi_line.join("\n")
    );
}

#[test]
fn a_password_in_argv_is_a_usage_error() {
    let env = Env::new();
    env.ok(&["user", "list"], "");
    let out = admin(&env, &["user", "add", ALICE, "--password", "secret"], "");
    assert_usage(&out, "user add --password secret");
    assert!(user_entry(&env, ALICE).is_none(), "no user was created");

    let out = admin(
        &env,
        &["user", "add", ALICE, "--password-stdin", "secret"],
        "secret\n",
    );
    assert_usage(&out, "user add --password-stdin with a password argument");
    assert!(user_entry(&env, ALICE).is_none(), "no user was created");

    env.add_user(ALICE, "pw");
    let out = admin(&env, &["user", "passwd", ALICE, "--password", "secret"], "");
    assert_usage(&out, "user passwd --password secret");
}

#[test]
fn a_password_longer_than_dovecot_passes_on_is_refused() {
    let env = Env::new();
    let long = "x".repeat(600);
    let out = admin(
        &env,
        &["user", "add", ALICE, "--password-stdin"],
        &format!("{long}\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_one_line(&stderr_of(&out), "long password");
    assert!(user_entry(&env, ALICE).is_none());
    let fits = "y".repeat(500);
    let out = admin(
        &env,
        &["user", "add", ALICE, "--password-stdin"],
        &format!("{fits}\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn an_empty_password_is_refused() {
    let env = Env::new();
    for stdin in ["\n", "\r\n", ""] {
        let out = admin(&env, &["user", "add", ALICE, "--password-stdin"], stdin);
        assert!(
            matches!(out.status.code(), Some(1) | Some(2)),
            "empty password {stdin:?}: expected exit 1 or 2, got {:?}: {}",
            out.status.code(),
            stderr_of(&out)
        );
        assert_one_line(&stderr_of(&out), &format!("empty password {stdin:?}"));
        assert!(user_entry(&env, ALICE).is_none(), "no user for {stdin:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// App passwords
// ---------------------------------------------------------------------------------------------------------

#[test]
fn app_password_add_prints_only_the_password() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let out = env
        .command()
        .args(["app-password", "add", ALICE, "--name", "iPhone Mail"])
        .stdin(Stdio::null())
        .output()
        .expect("run mailpass");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    let line = stdout.strip_suffix('\n').unwrap_or(&stdout);
    assert!(
        !line.contains('\n'),
        "stdout must be the password alone: {stdout:?}"
    );
    assert_eq!(line.len(), 19, "xxxx-xxxx-xxxx-xxxx: {line:?}");
    assert_app_password_format(line);
    assert!(
        !stderr_of(&out).trim().is_empty(),
        "guidance goes to stderr, and there is some"
    );
    assert!(
        !stderr_of(&out).contains(line),
        "the password is printed once, on stdout only"
    );
}

#[test]
fn app_password_add_json_has_id_name_services_times_and_password() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let v = add_json(&env, ALICE, "iPhone Mail", &[]);
    let what = "app-password add --json";
    assert!(field(&v, "id", what).is_i64(), "id is a number: {v}");
    assert_eq!(field(&v, "name", what), "iPhone Mail");
    assert_eq!(
        services_of(field(&v, "services", what), what),
        set(&ALL_SERVICES),
        "default services are all four: {v}"
    );
    assert_recent(field(&v, "created_at", what), "created_at");
    assert!(
        field(&v, "expires_at", what).is_null(),
        "no expiry by default: {v}"
    );
    let pw = field(&v, "password", what)
        .as_str()
        .expect("password string");
    assert_app_password_format(pw);

    let v = add_json(&env, ALICE, "Mac", &["--services", "imap,smtp"]);
    assert_eq!(
        services_of(&v["services"], what),
        set(&["imap", "smtp"]),
        "{v}"
    );
    let v = add_json(&env, ALICE, "Sieve", &["--services", "sieve"]);
    assert_eq!(services_of(&v["services"], what), set(&["sieve"]), "{v}");
}

#[test]
fn app_password_expires_in_sets_expires_at() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    for (dur, secs) in [
        ("90d", 90 * 86400),
        ("12h", 12 * 3600),
        ("30m", 1800),
        ("45s", 45),
    ] {
        let v = add_json(&env, ALICE, &format!("temp {dur}"), &["--expires-in", dur]);
        let created = rfc3339(&v["created_at"], "created_at");
        let expires = rfc3339(&v["expires_at"], &format!("expires_at for {dur}: {v}"));
        assert!(
            (expires - created - secs).abs() <= 2,
            "--expires-in {dur}: expires_at - created_at = {} s, want {secs}: {v}",
            expires - created
        );
        let expected = now_secs() + secs;
        assert!(
            (expires - expected).abs() < 3600,
            "--expires-in {dur}: {} is not about now + {secs} s",
            v["expires_at"]
        );
        let listed = app_password_named(&env, ALICE, &format!("temp {dur}")).expect("listed");
        assert_eq!(
            listed["expires_at"], v["expires_at"],
            "list agrees with add"
        );
    }
}

#[test]
fn an_expired_app_password_is_listed_as_expired() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_app_password(ALICE, "Short", &["--expires-in", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(status_of(&env, ALICE, "Short"), "expired");
    assert_eq!(
        user_entry(&env, ALICE).expect("alice")["app_passwords"],
        0,
        "an expired one is not counted as active"
    );
}

#[test]
fn an_expiry_beyond_the_calendar_is_refused_and_stores_nothing() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    // 99999999 days is about 274,000 years: no RFC 3339 time can show it.
    let out = admin(
        &env,
        &[
            "app-password",
            "add",
            ALICE,
            "--name",
            "Forever",
            "--expires-in",
            "99999999d",
        ],
        "",
    );
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "expected a refusal (exit 2, bad duration), got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout_of(&out),
        stderr_of(&out)
    );
    assert_one_line(&stderr_of(&out), "--expires-in 99999999d");
    assert!(
        out.stdout.is_empty(),
        "no password is handed out: {}",
        stdout_of(&out)
    );
    let list = admin(&env, &["app-password", "list", ALICE, "--json"], "");
    assert_eq!(
        list.status.code(),
        Some(0),
        "app-password list still works: {}",
        stderr_of(&list)
    );
    assert_eq!(
        json(&stdout_of(&list)),
        Value::Array(vec![]),
        "nothing was stored"
    );
}

#[test]
fn two_app_passwords_are_different() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let a = add_json(&env, ALICE, "Phone", &[]);
    let b = add_json(&env, ALICE, "Laptop", &[]);
    assert_ne!(a["password"], b["password"]);
    assert_ne!(a["id"], b["id"]);
    let c = env.add_app_password(ALICE, "Tablet", &[]);
    let d = env.add_app_password(ALICE, "Watch", &[]);
    assert_ne!(c, d);
}

#[test]
fn the_same_app_password_name_twice_is_refused() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_user(BOB, "pw");
    env.add_app_password(ALICE, "Phone", &[]);
    let out = admin(&env, &["app-password", "add", ALICE, "--name", "Phone"], "");
    assert_refused(&out, 1, "app-password add with a name already in use");
    assert!(
        out.stdout.is_empty(),
        "no password printed for a refused add"
    );
    assert_eq!(app_passwords(&env, ALICE).len(), 1);
    env.add_app_password(BOB, "Phone", &[]);
    assert_eq!(
        app_passwords(&env, BOB).len(),
        1,
        "another user may use the name"
    );
}

#[test]
fn app_password_list_shows_metadata_and_never_the_password() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let added = add_json(&env, ALICE, "iPhone Mail", &["--services", "imap,smtp"]);
    let pw = added["password"].as_str().expect("password").to_string();

    let out = env.ok(&["app-password", "list", ALICE, "--json"], "");
    let list = json(&out);
    let entries = list.as_array().expect("array");
    assert_eq!(entries.len(), 1, "{list}");
    let a = &entries[0];
    let what = "app-password list --json";
    assert_eq!(field(a, "id", what), &added["id"]);
    assert_eq!(field(a, "name", what), "iPhone Mail");
    assert_eq!(
        services_of(field(a, "services", what), what),
        set(&["imap", "smtp"])
    );
    assert_eq!(field(a, "created_at", what), &added["created_at"]);
    for key in [
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_ip",
        "last_service",
    ] {
        assert!(
            field(a, key, what).is_null(),
            "{key} is null before use: {a}"
        );
    }
    assert_eq!(field(a, "status", what), "active");
    assert_no_secret_keys(&list, what);
    assert_text_has_no_secrets(&out, &[&pw], what);

    let plain = env.ok(&["app-password", "list", ALICE], "");
    assert!(
        plain.contains("iPhone Mail"),
        "plain list names it: {plain}"
    );
    assert_text_has_no_secrets(&plain, &[&pw], "app-password list");
}

#[test]
fn app_password_list_shows_when_where_and_how_it_was_last_used() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let pw = env.add_app_password(ALICE, "iPhone Mail", &[]);
    let login = env.login(ALICE, &pw).ip("192.0.2.7").service("pop3").run();
    assert_eq!(login.code, Some(0), "the app password logs in: {login:?}");
    let a = app_password_named(&env, ALICE, "iPhone Mail").expect("listed");
    assert_recent(&a["last_used_at"], "last_used_at");
    assert_eq!(a["last_ip"], "192.0.2.7", "{a}");
    assert_eq!(a["last_service"], "pop3", "{a}");
    assert_eq!(a["status"], "active", "{a}");
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["app_passwords"][0]["last_ip"], "192.0.2.7", "{show}");
}

#[test]
fn revoke_by_name_marks_it_revoked() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_app_password(ALICE, "iPhone Mail", &[]);
    env.add_app_password(ALICE, "Laptop", &[]);
    env.ok(&["app-password", "revoke", ALICE, "iPhone Mail"], "");
    let revoked = app_password_named(&env, ALICE, "iPhone Mail").expect("still listed");
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_recent(&revoked["revoked_at"], "revoked_at");
    assert_eq!(status_of(&env, ALICE, "Laptop"), "active");
}

#[test]
fn revoke_by_id_marks_it_revoked() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let a = add_json(&env, ALICE, "Phone", &[]);
    add_json(&env, ALICE, "Laptop", &[]);
    let id = a["id"].to_string();
    env.ok(&["app-password", "revoke", ALICE, &id], "");
    assert_eq!(status_of(&env, ALICE, "Phone"), "revoked");
    assert_eq!(status_of(&env, ALICE, "Laptop"), "active");
}

#[test]
fn revoke_all_revokes_every_app_password_of_the_user() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_user(BOB, "pw");
    for name in ["Phone", "Laptop", "Tablet"] {
        env.add_app_password(ALICE, name, &[]);
    }
    env.add_app_password(BOB, "Phone", &[]);
    env.ok(&["app-password", "revoke", ALICE, "--all"], "");
    for name in ["Phone", "Laptop", "Tablet"] {
        assert_eq!(status_of(&env, ALICE, name), "revoked", "{name}");
    }
    assert_eq!(
        status_of(&env, BOB, "Phone"),
        "active",
        "bob's is untouched"
    );
    assert_eq!(user_entry(&env, ALICE).expect("alice")["app_passwords"], 0);
}

#[test]
fn revoking_an_app_password_that_does_not_exist_is_refused() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    env.add_user(BOB, "pw");
    let a = add_json(&env, ALICE, "Phone", &[]);
    assert_refused(
        &admin(&env, &["app-password", "revoke", ALICE, "Nonexistent"], ""),
        1,
        "revoke of an unknown name",
    );
    assert_refused(
        &admin(&env, &["app-password", "revoke", ALICE, "999999"], ""),
        1,
        "revoke of an unknown id",
    );
    let id = a["id"].to_string();
    assert_refused(
        &admin(&env, &["app-password", "revoke", BOB, &id], ""),
        1,
        "revoke of another user's app password by id",
    );
    assert_refused(
        &admin(&env, &["app-password", "revoke", BOB, "Phone"], ""),
        1,
        "revoke of another user's app password by name",
    );
    assert_eq!(
        status_of(&env, ALICE, "Phone"),
        "active",
        "alice's is untouched"
    );
}

// ---------------------------------------------------------------------------------------------------------
// TOTP
// ---------------------------------------------------------------------------------------------------------

#[test]
fn totp_enroll_json_gives_a_160_bit_secret_and_an_otpauth_uri() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let v = json(&env.ok(&["totp", "enroll", ALICE, "--json"], ""));
    let secret = field(&v, "secret", "totp enroll --json")
        .as_str()
        .expect("string");
    assert_eq!(
        secret.len(),
        32,
        "160 bits of base32 is 32 characters: {secret}"
    );
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
        "RFC 4648 base32: {secret}"
    );
    let uri = field(&v, "uri", "totp enroll --json")
        .as_str()
        .expect("string");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(
        uri.contains(&format!("secret={secret}")),
        "uri carries the secret: {uri}"
    );
    assert!(uri.contains("alice"), "uri names the account: {uri}");
    assert!(
        uri.contains("mailpass"),
        "default issuer is mailpass: {uri}"
    );
    assert_eq!(totp_state(&env, ALICE), "pending");

    let again = enroll(&env, ALICE);
    assert_ne!(again, secret, "a new enrollment gets a new secret");
}

#[test]
fn totp_enroll_draws_a_qr_code_and_prints_the_uri() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let out = env.ok(&["totp", "enroll", ALICE], "");
    assert!(
        out.contains("otpauth://totp/"),
        "plain enroll prints the URI: {out}"
    );
    let qr_rows = out
        .lines()
        .filter(|l| l.chars().count() >= 20 && !l.chars().any(|c| c.is_ascii_alphanumeric()))
        .count();
    assert!(
        qr_rows >= 10,
        "plain enroll draws a QR code ({qr_rows} rows):\n{out}"
    );
    assert_eq!(totp_state(&env, ALICE), "pending");
}

#[test]
fn totp_goes_from_none_to_pending_to_active() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let v = totp_status(&env, ALICE);
    assert_eq!(v["state"], "none", "{v}");
    assert!(field(&v, "enrolled_at", "totp status").is_null(), "{v}");
    field(&v, "recovery_codes_left", "totp status");

    let secret = enroll(&env, ALICE);
    assert_eq!(totp_state(&env, ALICE), "pending");
    assert_eq!(user_entry(&env, ALICE).expect("alice")["totp"], "pending");

    let code = common::totp_code(&secret, common::now());
    let out = admin(&env, &["totp", "confirm", ALICE, &code], "");
    assert_eq!(out.status.code(), Some(0), "confirm: {}", stderr_of(&out));

    let v = totp_status(&env, ALICE);
    assert_eq!(v["state"], "active", "{v}");
    assert_recent(&v["enrolled_at"], "enrolled_at");
    assert_eq!(user_entry(&env, ALICE).expect("alice")["totp"], "active");
    let show_out = env.ok(&["user", "show", ALICE, "--json"], "");
    let show = json(&show_out);
    assert_eq!(show["totp"]["state"], "active", "{show}");
    assert_text_has_no_secrets(&show_out, &[&secret], "user show after enroll");
    let status_out = env.ok(&["totp", "status", ALICE, "--json"], "");
    assert_text_has_no_secrets(&status_out, &[&secret], "totp status after enroll");
    let plain = env.ok(&["totp", "status", ALICE], "");
    assert!(
        plain.contains("active"),
        "plain status says active: {plain}"
    );
}

#[test]
fn user_show_lists_clients_that_sent_the_main_password_without_a_code() {
    let env = Env::new();
    env.add_user(ALICE, "main-secret");
    activate_totp(&env, ALICE);
    let login = env
        .login(ALICE, "main-secret")
        .ip("192.0.2.7")
        .service("imap")
        .run();
    assert_ne!(login.code, Some(1), "not a plain wrong password: {login:?}");
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    let clients = show["second_factor_required"]
        .as_array()
        .unwrap_or_else(|| panic!("second_factor_required must be an array: {show}"));
    assert_eq!(clients.len(), 1, "{show}");
    let c = &clients[0];
    assert_recent(field(c, "time", "second_factor_required"), "time");
    assert_eq!(field(c, "ip", "second_factor_required"), "192.0.2.7");
    assert_eq!(field(c, "service", "second_factor_required"), "imap");
    let plain = env.ok(&["user", "show", ALICE], "");
    assert!(
        plain.contains("192.0.2.7"),
        "plain show lists the client: {plain}"
    );
}

#[test]
fn the_code_that_confirmed_totp_cannot_log_in_again() {
    let env = Env::new();
    env.add_user(ALICE, "main-secret");
    let secret = enroll(&env, ALICE);
    let code = common::totp_code(&secret, common::now());
    env.ok(&["totp", "confirm", ALICE, &code], "");
    let login = env.login(ALICE, &format!("main-secret{code}")).run();
    assert!(
        login.code != Some(0) || login.has_flag("nologin"),
        "the confirming code was accepted a second time: {login:?}"
    );
}

#[test]
fn a_wrong_totp_code_is_refused_and_leaves_it_pending() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let secret = enroll(&env, ALICE);
    let out = admin(&env, &["totp", "confirm", ALICE, &wrong_code(&secret)], "");
    assert_refused(&out, 1, "totp confirm with a wrong code");
    assert_eq!(totp_state(&env, ALICE), "pending");
    let code = common::totp_code(&secret, common::now());
    env.ok(&["totp", "confirm", ALICE, &code], "");
    assert_eq!(totp_state(&env, ALICE), "active");
}

#[test]
fn totp_confirm_without_enrollment_is_refused() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let out = admin(&env, &["totp", "confirm", ALICE, "123456"], "");
    assert_refused(&out, 1, "totp confirm with nothing enrolled");
    assert_eq!(totp_state(&env, ALICE), "none");
}

#[test]
fn totp_disable_returns_to_none() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    activate_totp(&env, ALICE);
    recovery_codes(&env, ALICE);
    env.ok(&["totp", "disable", ALICE], "");
    let v = totp_status(&env, ALICE);
    assert_eq!(v["state"], "none", "{v}");
    assert_eq!(user_entry(&env, ALICE).expect("alice")["totp"], "none");
    let left = &v["recovery_codes_left"];
    assert!(
        left.is_null() || left == 0,
        "recovery codes go with TOTP: {v}"
    );

    enroll(&env, ALICE);
    env.ok(&["totp", "disable", ALICE], "");
    assert_eq!(
        totp_state(&env, ALICE),
        "none",
        "a pending enrollment can be dropped"
    );
}

#[test]
fn recovery_codes_are_replaced_by_a_fresh_set() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let secret = activate_totp(&env, ALICE);
    let first = recovery_codes(&env, ALICE);
    assert!(!first.is_empty(), "some recovery codes are printed");
    let unique: BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "codes are distinct: {first:?}");
    for c in &first {
        assert!(c.len() >= 8, "a recovery code has some length: {c:?}");
    }
    let v = totp_status(&env, ALICE);
    assert_eq!(v["recovery_codes_left"], first.len(), "{v}");
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["totp"]["recovery_codes_left"], first.len(), "{show}");

    let second = recovery_codes(&env, ALICE);
    assert_eq!(second.len(), first.len(), "same size of set");
    let a: BTreeSet<&String> = first.iter().collect();
    let b: BTreeSet<&String> = second.iter().collect();
    assert!(a.is_disjoint(&b), "a fresh set: {first:?} vs {second:?}");
    assert_eq!(
        totp_status(&env, ALICE)["recovery_codes_left"],
        second.len()
    );

    let status_out = env.ok(&["totp", "status", ALICE, "--json"], "");
    let show_out = env.ok(&["user", "show", ALICE, "--json"], "");
    let codes: Vec<&str> = second.iter().map(String::as_str).collect();
    assert_text_has_no_secrets(&status_out, &codes, "totp status");
    assert_text_has_no_secrets(&show_out, &codes, "user show");
    assert_text_has_no_secrets(&show_out, &[&secret], "user show");
}

#[test]
fn recovery_codes_need_active_totp() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    assert_refused(
        &admin(&env, &["totp", "recovery-codes", ALICE], ""),
        1,
        "recovery-codes without TOTP",
    );
    enroll(&env, ALICE);
    assert_refused(
        &admin(&env, &["totp", "recovery-codes", ALICE], ""),
        1,
        "recovery-codes with TOTP pending",
    );
}

// ---------------------------------------------------------------------------------------------------------
// The database and the configuration file
// ---------------------------------------------------------------------------------------------------------

#[test]
fn the_first_admin_command_creates_the_db_owner_only() {
    let env = Env::new();
    assert!(!env.db.exists());
    let out = env.ok(&["user", "list", "--json"], "");
    assert_eq!(json(&out), Value::Array(vec![]));
    assert!(env.db.exists(), "user list creates the DB");
    let mode = std::fs::metadata(&env.db)
        .expect("stat db")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the DB is owner-only, got {mode:o}");
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = env.path(&format!("mailpass.db{suffix}"));
        if side.exists() {
            let mode = std::fs::metadata(&side).expect("stat").permissions().mode() & 0o777;
            assert_eq!(
                mode & 0o077,
                0,
                "{} is owner-only, got {mode:o}",
                side.display()
            );
        }
    }
    env.add_user(ALICE, "pw");
    let mode = std::fs::metadata(&env.db)
        .expect("stat db")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "still owner-only after a write, got {mode:o}");
}

/// A directory owned by `nobody` (as the database directory belongs to Dovecot's auth user), inside the
/// test's temp dir made traversable.
fn directory_owned_by_nobody(env: &Env) -> Option<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let (uid, gid) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "nobody").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })?;
    if std::fs::metadata("/proc/self").ok()?.uid() != 0 {
        return None;
    }
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).ok()?;
    let dir = env.path("owned-by-auth-user");
    std::fs::create_dir(&dir).ok()?;
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).ok()?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    Some((dir, uid))
}

#[test]
fn root_admin_commands_act_as_the_owner_of_the_database_directory() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let Some((dir, uid)) = directory_owned_by_nobody(&env) else {
        eprintln!("skipped: needs root and a `nobody` user");
        return;
    };
    let db = dir.join("mailpass.db");
    let db_s = db.to_str().expect("utf-8 path");
    env.ok(
        &["--db", db_s, "user", "add", ALICE, "--password-stdin"],
        "pw\n",
    );
    // Everything root made there belongs to the directory's owner, as the auth path needs.
    for entry in std::fs::read_dir(&dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let owner = std::fs::metadata(&path).expect("stat").uid();
        assert_eq!(owner, uid, "{} is owned by {owner}", path.display());
    }
}

/// Runs an admin command under `umask`, with `stdin`: the umask must not decide the database's mode.
fn admin_under_umask(env: &Env, umask: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_mailpass"))
        .args(args)
        .env_clear()
        .env("MAILPASS_DB", &env.db)
        .env("MAILPASS_CONFIG", &env.config)
        .current_dir(env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait sh")
}

/// Every file in `dir` with its owner, group and permission bits.
fn files_in(dir: &std::path::Path) -> Vec<(String, u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = e.metadata().expect("stat");
            (
                e.file_name().to_string_lossy().into_owned(),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777,
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn in_a_setgid_directory_the_db_is_made_for_the_group_whatever_the_umask() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    // As root, the directory is an unprivileged user's, as /var/lib/mailpass is dovecot's (2770, group
    // mailpass); otherwise the tester's own, in the tester's group.
    let dir = directory_owned_by_nobody(&env).map_or_else(
        || {
            let dir = env.path("shared");
            std::fs::create_dir(&dir).expect("mkdir");
            dir
        },
        |(dir, _)| dir,
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).expect("chmod g+s");
    let meta = std::fs::metadata(&dir).expect("stat dir");
    let db = dir.join("mailpass.db");
    let db_s = db.to_str().expect("utf-8 path");
    let out = admin_under_umask(
        &env,
        "077",
        &["--db", db_s, "user", "add", ALICE, "--password-stdin"],
        "pw\n",
    );
    assert!(out.status.success(), "{out:?}");
    let files = files_in(&dir);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert!(names.contains(&"mailpass.db"), "{files:?}");
    assert!(names.contains(&"mailpass.db-wal"), "{files:?}");
    // The database, its -wal and -shm, and whatever else is beside it: the directory owner's, the
    // directory's group's, 0660, although the umask said 077.
    for (name, uid, gid, mode) in &files {
        assert_eq!(
            (*uid, *gid, *mode),
            (meta.uid(), meta.gid(), 0o660),
            "{name}: {files:?}"
        );
    }
    // Writing again changes nothing.
    let out = admin_under_umask(&env, "077", &["--db", db_s, "user", "disable", ALICE], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(files_in(&dir), files);
}

#[test]
fn in_a_plain_directory_the_db_stays_owner_only_whatever_the_umask() {
    let env = Env::new();
    let out = admin_under_umask(
        &env,
        "000",
        &["user", "add", ALICE, "--password-stdin"],
        "pw\n",
    );
    assert!(out.status.success(), "{out:?}");
    let files = files_in(env.dir.path());
    for (name, _, _, mode) in files.iter().filter(|f| f.0.starts_with("mailpass.db")) {
        assert_eq!(*mode, 0o600, "{name}: {files:?}");
    }
    assert!(
        files.iter().any(|f| f.0 == "mailpass.db"),
        "no database: {files:?}"
    );
}

#[test]
fn a_symlink_planted_at_the_database_cannot_make_root_write_elsewhere() {
    let env = Env::new();
    let Some((dir, _)) = directory_owned_by_nobody(&env) else {
        eprintln!("skipped: needs root and a `nobody` user");
        return;
    };
    // The auth user owns the directory: it can put symlinks where the database and its WAL should be,
    // pointing at files only root may write.
    let root_only = env.path("root-only");
    std::fs::create_dir(&root_only).expect("mkdir");
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let victim = root_only.join("victim");
    std::fs::write(&victim, b"").expect("write the victim");
    let db = dir.join("mailpass.db");
    std::os::unix::fs::symlink(&victim, &db).expect("plant the symlink");
    let db_s = db.to_str().expect("utf-8 path");
    let out = env.admin(
        &["--db", db_s, "user", "add", ALICE, "--password-stdin"],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        std::fs::read(&victim).expect("read the victim"),
        b"",
        "root wrote a database into the file the symlink pointed at"
    );
    let names: Vec<_> = std::fs::read_dir(&root_only)
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["victim"], "nothing may appear beside it");
}

#[test]
fn db_flag_overrides_mailpass_db() {
    let env = Env::new();
    let other = env.path("other.db");
    let other_s = other.to_str().expect("utf-8 path");
    env.ok(
        &["--db", other_s, "user", "add", ALICE, "--password-stdin"],
        "pw\n",
    );
    assert!(other.exists(), "--db names the DB that is created");
    let listed = json(&env.ok(&["--db", other_s, "user", "list", "--json"], ""));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        !env.db.exists() || user_list(&env).is_empty(),
        "MAILPASS_DB's database did not get the user"
    );
    let mode = std::fs::metadata(&other)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "a DB made with --db is owner-only too");
}

#[test]
fn an_explicit_config_that_is_missing_is_an_error() {
    let env = Env::new();
    let out = admin(
        &env,
        &["--config", "/nonexistent/mailpass.toml", "user", "list"],
        "",
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "a missing --config file must fail: {}",
        stdout_of(&out)
    );
    assert_one_line(&stderr_of(&out), "--config /nonexistent");
    assert!(
        stderr_of(&out).contains("/nonexistent/mailpass.toml"),
        "the message names the file: {}",
        stderr_of(&out)
    );
}

#[test]
fn mailpass_config_naming_a_missing_file_is_an_error() {
    let env = Env::new();
    let out = env
        .command()
        .env("MAILPASS_CONFIG", "/nonexistent/mailpass.toml")
        .args(["user", "list"])
        .stdin(Stdio::null())
        .output()
        .expect("run mailpass");
    assert_ne!(
        out.status.code(),
        Some(0),
        "MAILPASS_CONFIG names the file explicitly"
    );
    assert_one_line(&stderr_of(&out), "MAILPASS_CONFIG=/nonexistent");
}

#[test]
fn a_missing_default_config_means_built_in_defaults() {
    let env = Env::new();
    let out = env
        .command()
        .env_remove("MAILPASS_CONFIG")
        .args(["user", "list", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("run mailpass");
    assert_eq!(
        out.status.code(),
        Some(0),
        "no config anywhere is fine: {}",
        stderr_of(&out)
    );
    assert_eq!(json(&stdout_of(&out)), Value::Array(vec![]));
}

#[test]
fn a_broken_config_file_is_an_error() {
    let env = Env::new();
    let bad = env.path("bad.toml");
    std::fs::write(&bad, "[argon2\nmemory_kib = \"lots\"\n").expect("write");
    let out = admin(
        &env,
        &["--config", bad.to_str().expect("utf-8"), "user", "list"],
        "",
    );
    assert_ne!(out.status.code(), Some(0), "a broken config must fail");
    assert_one_line(&stderr_of(&out), "broken config");
}

#[test]
fn a_main_password_must_have_ten_characters_and_more_than_spaces_by_default() {
    let env = Env::with_config("");
    for (password, why) in [
        ("nine char", "shorter than 10 characters"),
        ("            ", "only spaces"),
    ] {
        let out = env.admin(
            &["user", "add", ALICE, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert_eq!(out.status.code(), Some(1), "{password:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(why), "{said}");
        assert!(
            !said.contains(password.trim()) || password.trim().is_empty(),
            "{said}"
        );
    }
    env.ok(&["user", "add", ALICE, "--password-stdin"], "ten chars!\n");
    // The admin may choose another minimum.
    let lenient = Env::with_config("[passwords]\nmin_length = 4\n");
    lenient.ok(&["user", "add", ALICE, "--password-stdin"], "abcd\n");
}

// ---------------------------------------------------------------------------------------------------------
// External users (Route 2: the main password stays in another passdb)
// ---------------------------------------------------------------------------------------------------------

#[test]
fn external_user_is_created_without_a_password_and_listed_as_external() {
    let env = Env::new();
    let out = admin(&env, &["user", "add", ALICE, "--external"], "");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("external"), "{}", stderr_of(&out));
    let entry = user_entry(&env, ALICE).expect("listed");
    assert_eq!(entry["external"], Value::Bool(true), "{entry}");
    assert_eq!(entry["password_scheme"], "external", "{entry}");
    let plain = env.ok(&["user", "list"], "");
    assert!(plain.contains("scheme=external"), "{plain}");
    let show = env.ok(&["user", "show", ALICE], "");
    assert!(show.contains("password:    external"), "{show}");
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["external"], Value::Bool(true), "{show}");
}

#[test]
fn local_user_is_not_external() {
    let env = Env::new();
    env.add_user(BOB, "bob's password");
    let entry = user_entry(&env, BOB).expect("listed");
    assert_eq!(entry["external"], Value::Bool(false), "{entry}");
    assert_eq!(entry["password_scheme"], "ARGON2ID", "{entry}");
}

#[test]
fn external_user_add_takes_no_password() {
    let env = Env::new();
    let out = admin(
        &env,
        &["user", "add", ALICE, "--external", "--password-stdin"],
        "x\n",
    );
    assert_usage(&out, "--external with --password-stdin");
    assert!(user_entry(&env, ALICE).is_none());
}

#[test]
fn external_user_add_of_an_existing_name_is_refused() {
    let env = Env::new();
    env.add_user(ALICE, "alice's password");
    let out = admin(&env, &["user", "add", ALICE, "--external"], "");
    assert_refused(&out, 1, "user add --external of an existing user");
    assert_eq!(user_entry(&env, ALICE).expect("listed")["external"], false);
}

#[test]
fn passwd_of_an_external_user_is_refused_with_where_to_change_it() {
    let env = Env::new();
    env.ok(&["user", "add", ALICE, "--external"], "");
    let out = admin(
        &env,
        &["user", "passwd", ALICE, "--password-stdin"],
        "new password\n",
    );
    assert_refused(&out, 1, "user passwd of an external user");
    assert!(
        stderr_of(&out).contains("external") && stderr_of(&out).contains("next passdb"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(user_entry(&env, ALICE).expect("listed")["external"], true);
}

#[test]
fn external_user_gets_app_passwords_and_totp() {
    let env = Env::new();
    env.ok(&["user", "add", ALICE, "--external"], "");
    let pw = env.add_app_password(ALICE, "phone", &[]);
    assert_app_password_format(&pw);
    let enrolled = json(&env.ok(&["totp", "enroll", ALICE, "--json"], ""));
    assert!(enrolled["secret"].is_string(), "{enrolled}");
}

#[test]
fn import_passwd_file_external_adds_the_users_as_external_ignoring_hashes() {
    let env = Env::new();
    env.add_user(BOB, "bob's password");
    let file = env.path("users");
    std::fs::write(
        &file,
        "alice@example.org:{SHA512-CRYPT}$6$salt$hash:::\n\
         carol@example.org:{NOSUCHSCHEME}xyz:::\n\
         bob@example.org:{PLAIN}secret:::\n",
    )
    .expect("write");
    let out = env.ok(
        &[
            "import",
            "passwd-file",
            file.to_str().expect("utf-8"),
            "--external",
            "--json",
        ],
        "",
    );
    let report = json(&out);
    let outcomes: Vec<(&str, &str)> = report["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["user"].as_str().expect("user"),
                l["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("alice@example.org", "imported"),
            ("carol@example.org", "imported"),
            ("bob@example.org", "skipped"),
        ]
    );
    for user in [ALICE, "carol@example.org"] {
        let entry = user_entry(&env, user).expect("imported");
        assert_eq!(entry["external"], true, "{entry}");
    }
    assert_eq!(user_entry(&env, BOB).expect("kept")["external"], false);
    // --update makes an existing local user external; a second run changes nothing.
    let args = [
        "import",
        "passwd-file",
        file.to_str().expect("utf-8"),
        "--external",
        "--update",
    ];
    let out = env.ok(&args, "");
    assert!(out.contains("0 imported, 1 updated, 2 skipped"), "{out}");
    assert_eq!(user_entry(&env, BOB).expect("kept")["external"], true);
    let out = env.ok(&args, "");
    assert!(out.contains("0 imported, 0 updated, 3 skipped"), "{out}");
}

#[test]
fn every_command_that_prints_something_speaks_json() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let secret = enroll(&env, ALICE);
    let code = common::totp_code(&secret, common::now());
    let confirmed = json(&env.ok(&["totp", "confirm", ALICE, &code, "--json"], ""));
    assert_eq!(confirmed["totp"], "active", "{confirmed}");
    let codes = json(&env.ok(&["totp", "recovery-codes", ALICE, "--json"], ""));
    assert_eq!(codes["codes"].as_array().map(Vec::len), Some(10), "{codes}");
    env.add_app_password(ALICE, "Phone", &[]);
    let revoked = json(&env.ok(&["app-password", "revoke", ALICE, "Phone", "--json"], ""));
    assert_eq!(revoked["revoked"], 1, "{revoked}");
    let free = json(&env.ok(&["ban", "check", "192.0.2.44", "--json"], ""));
    assert_eq!(free["banned"], Value::Null, "{free}");
    env.ok(&["ban", "add", "192.0.2.44"], "");
    let out = env.admin(&["ban", "check", "192.0.2.44", "--json"], "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "banned is exit 1, as without --json"
    );
    let banned = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(banned["banned"]["network"], "192.0.2.44/32", "{banned}");
}

#[test]
fn user_show_groups_a_stale_client_by_address_and_service() {
    let env = Env::new();
    env.add_user(ALICE, "main-secret");
    activate_totp(&env, ALICE);
    for (ip, service) in [
        ("192.0.2.7", "imap"),
        ("192.0.2.7", "imap"),
        ("192.0.2.7", "imap"),
        ("192.0.2.8", "smtp"),
    ] {
        env.login(ALICE, "main-secret")
            .ip(ip)
            .service(service)
            .run();
    }
    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    let clients = show["second_factor_required"].as_array().expect("array");
    assert_eq!(clients.len(), 2, "{show}");
    let phone = clients
        .iter()
        .find(|c| c["ip"] == "192.0.2.7")
        .expect("the phone");
    assert_eq!(phone["service"], "imap");
    assert_eq!(phone["count"], 3, "{phone}");
    assert!(phone["first"].as_str() <= phone["last"].as_str(), "{phone}");
    let plain = env.ok(&["user", "show", ALICE], "");
    assert!(
        plain.contains("ip=192.0.2.7  service=imap  3 times"),
        "{plain}"
    );
}
