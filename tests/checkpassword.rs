//! `mailpass checkpassword` driven the way Dovecot drives it: one scenario per test, each named for what the
//! user (or the admin reading the log) sees. The contract is README.md: "How a login is decided", the
//! checkpassword exit-code table, the reply fields and the log-line format.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use common::{
    Env, Reply, TEST_CONFIG, decision, decision_lines, doveadm_hash, json, now, totp_code,
    yescrypt_hash,
};

const ALICE: &str = "alice@example.org";
const ALICE_PW: &str = "correct horse battery staple";
const ALICE_HOME: &str = "/var/vmail/example.org/alice";
const BOB: &str = "bob@example.net";
const BOB_PW: &str = "Tr0ub4dor&3-bob";
const BOB_HOME: &str = "/var/vmail/example.net/bob";

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/// Asserts the log line's `result` and `reason`.
fn assert_logged(r: &Reply, result: &str, reason: &str) -> HashMap<String, String> {
    let log = decision(r);
    assert_eq!(
        log.get("result").map(String::as_str),
        Some(result),
        "log result: {r:?}"
    );
    assert_eq!(
        log.get("reason").map(String::as_str),
        Some(reason),
        "log reason: {r:?}"
    );
    log
}

/// Asserts that none of the secrets appears on stderr or in the reply.
fn assert_no_secret(r: &Reply, secrets: &[&str]) {
    for s in secrets {
        if s.len() >= 4 {
            assert!(
                !r.stderr.contains(s),
                "secret {s:?} leaked to stderr: {r:?}"
            );
            assert!(
                !r.fd4.contains(s),
                "secret {s:?} leaked to the reply: {r:?}"
            );
        }
    }
}

/// A successful password check: exit 0, the canonical user and the test config's userdb fields, no `nologin`.
fn assert_success(r: &Reply, user: &str, home: &str) {
    assert_eq!(r.code, Some(0), "expected success: {r:?}");
    assert!(
        !r.has_flag("nologin"),
        "success must not carry nologin: {r:?}"
    );
    assert!(
        r.field("reason").is_none(),
        "success must not carry a reason: {r:?}"
    );
    assert_eq!(r.field("user"), Some(user), "user field: {r:?}");
    assert_eq!(r.field("userdb_home"), Some(home), "userdb_home: {r:?}");
    assert_eq!(r.field("userdb_uid"), Some("5000"), "userdb_uid: {r:?}");
    assert_eq!(r.field("userdb_gid"), Some("5000"), "userdb_gid: {r:?}");
    assert!(
        !r.fd4.contains('\n'),
        "the reply must not contain LF: {r:?}"
    );
}

/// A plain authentication failure: exit 1, no `nologin` hint.
fn assert_auth_failed(r: &Reply) {
    assert_eq!(
        r.code,
        Some(1),
        "expected authentication failure (exit 1): {r:?}"
    );
    assert!(
        !r.has_flag("nologin"),
        "a plain failure carries no nologin: {r:?}"
    );
}

/// The 2FA-account refusal: exit 0 with `nologin` and a `reason=` that tells the user to use an app password.
fn assert_refused_with_hint(r: &Reply) {
    assert_eq!(r.code, Some(0), "expected exit 0 with nologin: {r:?}");
    assert!(r.has_flag("nologin"), "expected the nologin flag: {r:?}");
    let reason = r
        .field("reason")
        .unwrap_or_else(|| panic!("expected a reason= field: {r:?}"));
    assert!(
        reason.to_lowercase().contains("app password")
            || reason.to_lowercase().contains("app-password"),
        "the reason should tell the client to use an app password: {reason:?}"
    );
    assert!(
        !r.fd4.contains('\n'),
        "the reply must not contain LF: {r:?}"
    );
}

/// A refusal on a 2FA account for a client that is not a Dovecot login process (Postfix, doveadm): a plain
/// failure, exit 1 and nothing on fd 4. Never `nologin`, which they read as a success; and no text, which
/// Dovecot would drop from a failure anyway.
fn assert_refused_as_a_plain_failure(r: &Reply) {
    assert_eq!(r.code, Some(1), "expected exit 1: {r:?}");
    assert_eq!(r.fd4, "", "a failure has no reply: {r:?}");
}

/// What the client is shown: the exit code and the reply without `delay_until` (when Dovecot answers, not
/// what it says; the delay grows with the network's failures, whatever the password was).
fn shown(r: &Reply) -> (Option<i32>, Vec<String>) {
    let fields = r
        .fields()
        .into_iter()
        .filter(|f| !f.starts_with("delay_until="))
        .map(String::from)
        .collect();
    (r.code, fields)
}

fn add_alice(env: &Env) {
    env.add_user(ALICE, ALICE_PW);
}

/// Enrolls and confirms TOTP for `user`; returns the base32 secret. The confirming code (the current step) is
/// consumed: logins must use a later step (`now() + 30` is within the one-step skew).
fn enable_totp(env: &Env, user: &str) -> String {
    let out = env.ok(&["totp", "enroll", user, "--json"], "");
    let v = json(&out);
    let secret = v["secret"]
        .as_str()
        .expect("secret in enroll --json")
        .to_string();
    assert!(
        v["uri"]
            .as_str()
            .expect("uri in enroll --json")
            .starts_with("otpauth://"),
        "uri: {v}"
    );
    let code = totp_code(&secret, now());
    env.ok(&["totp", "confirm", user, &code], "");
    secret
}

/// A code the server has not seen yet (the step after the one used to confirm).
fn fresh_code(secret: &str) -> String {
    totp_code(secret, now() + 30)
}

fn recovery_codes(env: &Env, user: &str) -> Vec<String> {
    let out = env.ok(&["totp", "recovery-codes", user], "");
    let codes: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert!(
        codes.len() >= 2,
        "expected several recovery codes, got {out:?}"
    );
    codes
}

fn app_passwords_json(env: &Env, user: &str) -> Vec<serde_json::Value> {
    let out = env.ok(&["app-password", "list", user, "--json"], "");
    json(&out).as_array().expect("array").clone()
}

fn config_with(extra: &str) -> String {
    // TEST_CONFIG ends inside [userdb]; a new table header starts a new section.
    format!("{TEST_CONFIG}\n{extra}")
}

// ---------------------------------------------------------------------------------------------------------------
// App passwords
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn app_password_logs_in_without_a_code() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let app = env.add_app_password(ALICE, "iPhone Mail", &[]);

    let r = env.login(ALICE, &app).ip("192.0.2.7").run();
    assert_success(&r, ALICE, ALICE_HOME);
    let log = assert_logged(&r, "ok", "app_password");
    assert_eq!(log.get("user").map(String::as_str), Some(ALICE));
    assert_eq!(log.get("ip").map(String::as_str), Some("192.0.2.7"));
    assert_eq!(log.get("service").map(String::as_str), Some("imap"));
    assert_eq!(
        log.get("credential").map(String::as_str),
        Some("iPhone Mail")
    );
    assert_no_secret(&r, &[&app, ALICE_PW, &secret]);
}

#[test]
fn app_password_logs_in_on_account_without_totp() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Thunderbird", &[]);
    let r = env.login(ALICE, &app).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "app_password");
    assert_no_secret(&r, &[&app]);
}

#[test]
fn app_password_typed_without_dashes_with_spaces_or_in_uppercase_logs_in() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &[]);
    let compact: String = app.chars().filter(|c| *c != '-' && *c != ' ').collect();
    assert_eq!(
        compact.len(),
        16,
        "app passwords are 16 characters: {app:?}"
    );
    let spaced = compact
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join(" ");
    let upper = app.to_uppercase();
    let upper_compact = compact.to_uppercase();
    for variant in [&compact, &spaced, &upper, &upper_compact] {
        let r = env.login(ALICE, variant).run();
        assert_success(&r, ALICE, ALICE_HOME);
        assert_logged(&r, "ok", "app_password");
        assert_no_secret(&r, &[variant, &compact]);
    }
}

#[test]
fn app_password_with_look_alike_letters_logs_in() {
    let env = Env::new();
    add_alice(&env);
    // Find an app password that contains a 0 or a 1 (if the alphabet has them) and send o / l / i instead.
    let mut chosen = None;
    for i in 0..8 {
        let app = env.add_app_password(ALICE, &format!("device {i}"), &[]);
        if app.contains('0') || app.contains('1') {
            chosen = Some(app);
            break;
        }
    }
    let Some(app) = chosen else {
        // The alphabet has neither 0 nor 1: nothing to confuse them with.
        return;
    };
    let mut toggle = false;
    let typed: String = app
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => {
                toggle = !toggle;
                if toggle { 'l' } else { 'I' }
            }
            c => c,
        })
        .collect();
    let r = env.login(ALICE, &typed).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "app_password");
}

#[test]
fn user_with_several_app_passwords_logs_in_with_each() {
    let env = Env::new();
    add_alice(&env);
    let names = ["iPhone Mail", "Thunderbird", "K-9 Mail", "Laptop"];
    let apps: Vec<String> = names
        .iter()
        .map(|n| env.add_app_password(ALICE, n, &[]))
        .collect();
    for (name, app) in names.iter().zip(&apps) {
        let r = env.login(ALICE, app).run();
        assert_success(&r, ALICE, ALICE_HOME);
        let log = assert_logged(&r, "ok", "app_password");
        assert_eq!(
            log.get("credential").map(String::as_str),
            Some(*name),
            "{r:?}"
        );
    }
    // Another user's app password is no good for alice.
    env.add_user(BOB, BOB_PW);
    let bobs = env.add_app_password(BOB, "Bob's phone", &[]);
    let r = env.login(ALICE, &bobs).run();
    assert_auth_failed(&r);
    decision(&r);
}

#[test]
fn app_password_outside_its_services_is_refused() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "POP only", &["--services", "pop3"]);

    let r = env.login(ALICE, &app).service("imap").run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "app_password_out_of_scope");
    assert_no_secret(&r, &[&app]);

    let r = env.login(ALICE, &app).service("pop3").run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "app_password");
}

#[test]
fn app_password_outside_its_services_on_2fa_account_gets_the_app_password_hint() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let app = env.add_app_password(ALICE, "POP only", &["--services", "pop3"]);

    let r = env.login(ALICE, &app).service("imap").run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "app_password_out_of_scope");

    // Same answer as the main password alone: the client cannot tell the two apart.
    let main_alone = env.login(ALICE, ALICE_PW).service("imap").run();
    assert_eq!(main_alone.code, r.code);
    assert_eq!(shown(&main_alone), shown(&r));
}

#[test]
fn revoked_app_password_on_2fa_account_gets_the_app_password_hint() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let app = env.add_app_password(ALICE, "Old phone", &[]);
    env.ok(&["app-password", "revoke", ALICE, "Old phone"], "");

    let r = env.login(ALICE, &app).run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "app_password_revoked");

    // Not a valid app password: the same answer as every other refusal on a 2FA account.
    let main_alone = env.login(ALICE, ALICE_PW).run();
    assert_eq!(main_alone.code, r.code);
    assert_eq!(shown(&main_alone), shown(&r));
}

#[test]
fn revoked_app_password_on_app_passwords_only_service_gets_the_same_answer() {
    let env = Env::with_config(&config_with("[auth]\napp_passwords_only = [\"imap\"]\n"));
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Old phone", &[]);
    env.ok(&["app-password", "revoke", ALICE, "Old phone"], "");

    let r = env.login(ALICE, &app).service("imap").run();
    assert_logged(&r, "fail", "app_password_revoked");
    let main = env.login(ALICE, ALICE_PW).service("imap").run();
    assert_refused_with_hint(&main);
    assert_eq!(r.code, main.code, "{r:?} vs {main:?}");
    assert_eq!(shown(&r), shown(&main), "{r:?} vs {main:?}");
}

#[test]
fn app_password_for_smtp_covers_submission_and_postfix_smtp() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Sender", &["--services", "smtp"]);
    for service in ["submission", "smtp"] {
        let r = env.login(ALICE, &app).service(service).run();
        assert_success(&r, ALICE, ALICE_HOME);
        let log = assert_logged(&r, "ok", "app_password");
        assert_eq!(log.get("service").map(String::as_str), Some(service));
    }
    for service in ["imap", "pop3", "sieve"] {
        let r = env.login(ALICE, &app).service(service).run();
        assert_auth_failed(&r);
        assert_logged(&r, "fail", "app_password_out_of_scope");
    }
}

#[test]
fn expired_app_password_is_refused() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Short lived", &["--expires-in", "1s"]);
    thread::sleep(Duration::from_millis(2500));
    let r = env.login(ALICE, &app).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "app_password_expired");
    assert_no_secret(&r, &[&app]);
}

#[test]
fn revoked_app_password_is_refused() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Old phone", &[]);
    let keep = env.add_app_password(ALICE, "New phone", &[]);
    assert_success(&env.login(ALICE, &app).run(), ALICE, ALICE_HOME);

    env.ok(&["app-password", "revoke", ALICE, "Old phone"], "");
    let r = env.login(ALICE, &app).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "app_password_revoked");
    assert_no_secret(&r, &[&app]);

    // The other one is untouched.
    let r = env.login(ALICE, &keep).run();
    assert_success(&r, ALICE, ALICE_HOME);
}

#[test]
fn app_password_login_records_last_use() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Tablet", &[]);
    let before = app_passwords_json(&env, ALICE);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0]["last_used_at"].is_null(), "{before:?}");
    assert!(before[0]["last_ip"].is_null(), "{before:?}");
    assert!(before[0]["last_service"].is_null(), "{before:?}");

    let r = env
        .login(ALICE, &app)
        .ip("198.51.100.23")
        .service("pop3")
        .run();
    assert_success(&r, ALICE, ALICE_HOME);

    let after = app_passwords_json(&env, ALICE);
    assert_eq!(after.len(), 1, "{after:?}");
    let entry = &after[0];
    let last_used = entry["last_used_at"]
        .as_str()
        .unwrap_or_else(|| panic!("last_used_at: {entry}"));
    assert!(last_used.ends_with('Z'), "RFC 3339 UTC: {last_used}");
    assert_eq!(entry["last_ip"].as_str(), Some("198.51.100.23"), "{entry}");
    assert_eq!(entry["last_service"].as_str(), Some("pop3"), "{entry}");
    assert_eq!(entry["name"].as_str(), Some("Tablet"), "{entry}");
}

#[test]
fn a_use_from_another_address_or_service_is_recorded_at_once() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Tablet", &[]);
    let last = |env: &Env| {
        let entry = app_passwords_json(env, ALICE)[0].clone();
        (entry["last_ip"].clone(), entry["last_service"].clone())
    };
    // Reconnects from the same place within the minute need no write; anything new is recorded.
    for (ip, service) in [
        ("198.51.100.23", "imap"),
        ("198.51.100.23", "imap"),
        ("198.51.100.24", "imap"),
        ("198.51.100.24", "submission"),
    ] {
        let r = env.login(ALICE, &app).ip(ip).service(service).run();
        assert_success(&r, ALICE, ALICE_HOME);
        assert_eq!(last(&env), (ip.into(), service.into()));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Main password, no TOTP
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn main_password_logs_in_on_account_without_totp() {
    let env = Env::new();
    add_alice(&env);
    let r = env.login(ALICE, ALICE_PW).run();
    assert_success(&r, ALICE, ALICE_HOME);
    let log = assert_logged(&r, "ok", "main_password");
    assert_eq!(log.get("user").map(String::as_str), Some(ALICE));
    assert_eq!(log.get("ip").map(String::as_str), Some("192.0.2.10"));
    assert_eq!(log.get("service").map(String::as_str), Some("imap"));
    assert_no_secret(&r, &[ALICE_PW]);
}

#[test]
fn second_user_gets_their_own_home() {
    let env = Env::new();
    add_alice(&env);
    env.add_user(BOB, BOB_PW);
    let r = env.login(BOB, BOB_PW).service("pop3").run();
    assert_success(&r, BOB, BOB_HOME);
    // Alice's password does not open Bob's account.
    let r = env.login(BOB, ALICE_PW).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "wrong_password");
}

#[test]
fn wrong_password_is_authentication_failed() {
    let env = Env::new();
    add_alice(&env);
    let r = env.login(ALICE, "not the password").run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "wrong_password");
    assert_no_secret(&r, &["not the password", ALICE_PW]);
}

#[test]
fn unknown_user_is_authentication_failed() {
    let env = Env::new();
    add_alice(&env);
    let r = env.login("nobody@example.org", "whatever password").run();
    assert_auth_failed(&r);
    let log = assert_logged(&r, "fail", "unknown_user");
    assert_eq!(
        log.get("user").map(String::as_str),
        Some("nobody@example.org")
    );
    assert_no_secret(&r, &["whatever password"]);
}

#[test]
fn disabled_user_is_authentication_failed() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &[]);
    env.ok(&["user", "disable", ALICE], "");

    let r = env.login(ALICE, ALICE_PW).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "disabled_user");
    assert_no_secret(&r, &[ALICE_PW]);

    let r = env.login(ALICE, &app).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "disabled_user");

    env.ok(&["user", "enable", ALICE], "");
    assert_success(&env.login(ALICE, ALICE_PW).run(), ALICE, ALICE_HOME);
}

#[test]
fn pending_totp_enrollment_does_not_block_the_main_password() {
    let env = Env::new();
    add_alice(&env);
    env.ok(&["totp", "enroll", ALICE, "--json"], "");
    let r = env.login(ALICE, ALICE_PW).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "main_password");
}

// ---------------------------------------------------------------------------------------------------------------
// TOTP
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn main_password_followed_by_code_logs_in_once() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let code = fresh_code(&secret);
    let with_code = format!("{ALICE_PW}{code}");

    let r = env.login(ALICE, &with_code).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "main_password_totp");
    assert_no_secret(&r, &[&with_code, ALICE_PW, &secret]);

    // The same code again is a replay: refused with the same answer every non-app-password attempt gets.
    let again = env.login(ALICE, &with_code).run();
    assert_refused_with_hint(&again);
    assert_logged(&again, "fail", "totp_replayed");
    assert_no_secret(&again, &[&with_code, ALICE_PW]);
}

#[test]
fn code_used_to_confirm_enrollment_cannot_log_in() {
    let env = Env::new();
    add_alice(&env);
    let out = env.ok(&["totp", "enroll", ALICE, "--json"], "");
    let secret = json(&out)["secret"].as_str().expect("secret").to_string();
    // Confirm with the current code, then try to log in with it.
    let code = totp_code(&secret, now());
    env.ok(&["totp", "confirm", ALICE, &code], "");
    let r = env.login(ALICE, &format!("{ALICE_PW}{code}")).run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "totp_replayed");
}

#[test]
fn main_password_with_wrong_code_gets_the_app_password_hint() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    // A code far outside the skew window.
    let wrong = totp_code(&secret, now() + 3600);
    let valid_soon = [now() - 30, now(), now() + 30, now() + 60].map(|t| totp_code(&secret, t));
    if valid_soon.contains(&wrong) {
        return; // a one-in-a-million collision; nothing to test this time
    }
    let r = env.login(ALICE, &format!("{ALICE_PW}{wrong}")).run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "totp_wrong");
}

#[test]
fn main_password_alone_on_2fa_account_is_second_factor_required() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let r = env.login(ALICE, ALICE_PW).ip("192.0.2.7").run();
    assert_refused_with_hint(&r);
    let log = assert_logged(&r, "fail", "second_factor_required");
    assert_eq!(log.get("user").map(String::as_str), Some(ALICE));
    assert_eq!(log.get("ip").map(String::as_str), Some("192.0.2.7"));
    assert_eq!(log.get("service").map(String::as_str), Some("imap"));
    let hint = log
        .get("hint")
        .unwrap_or_else(|| panic!("the log line names the fix: {r:?}"));
    assert!(
        hint.contains(&format!("mailpass app-password add {ALICE}")),
        "hint should name the fix: {hint:?}"
    );
    assert_no_secret(&r, &[ALICE_PW]);
}

#[test]
fn wrong_password_on_2fa_account_gets_the_same_answer_as_the_right_one() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);

    let right = env.login(ALICE, ALICE_PW).run();
    let wrong = env.login(ALICE, "not the password").run();
    assert_refused_with_hint(&right);
    assert_eq!(
        wrong.code, right.code,
        "exit codes differ: {right:?} vs {wrong:?}"
    );
    assert_eq!(
        shown(&wrong),
        shown(&right),
        "replies differ: {right:?} vs {wrong:?}"
    );
    assert_logged(&right, "fail", "second_factor_required");
    assert_logged(&wrong, "fail", "wrong_password");
    assert_no_secret(&wrong, &["not the password", ALICE_PW]);

    // Wrong password followed by a valid code: same answer again.
    let code = fresh_code(&secret);
    let wrong_with_code = env.login(ALICE, &format!("wrong password{code}")).run();
    assert_eq!(wrong_with_code.code, right.code, "{wrong_with_code:?}");
    assert_eq!(
        shown(&wrong_with_code),
        shown(&right),
        "{wrong_with_code:?}"
    );
    assert_logged(&wrong_with_code, "fail", "wrong_password");
}

#[test]
fn recovery_code_logs_in_once() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let codes = recovery_codes(&env, ALICE);

    let first = format!("{ALICE_PW}{}", codes[0]);
    let r = env.login(ALICE, &first).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "recovery_code");
    assert_no_secret(&r, &[&first, &codes[0], ALICE_PW]);

    // Burnt.
    let r = env.login(ALICE, &first).run();
    assert_refused_with_hint(&r);
    let log = decision(&r);
    assert_eq!(log.get("result").map(String::as_str), Some("fail"), "{r:?}");

    // The next one still works.
    let second = format!("{ALICE_PW}{}", codes[1]);
    let r = env.login(ALICE, &second).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "recovery_code");

    // A recovery code with the wrong main password does not log in.
    let r = env
        .login(ALICE, &format!("wrong password{}", codes[2 % codes.len()]))
        .run();
    assert_refused_with_hint(&r);
}

#[test]
fn new_recovery_codes_replace_the_old_set() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let old = recovery_codes(&env, ALICE);
    let new = recovery_codes(&env, ALICE);
    let r = env.login(ALICE, &format!("{ALICE_PW}{}", old[0])).run();
    assert_refused_with_hint(&r);
    let r = env.login(ALICE, &format!("{ALICE_PW}{}", new[0])).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "recovery_code");
}

#[test]
fn same_code_sent_by_eight_clients_at_once_logs_in_exactly_one() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let secret_with_code = format!("{ALICE_PW}{}", fresh_code(&secret));
    let barrier = Barrier::new(8);
    let replies: Vec<Reply> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    env.login(ALICE, &secret_with_code).run()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let winners: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.code == Some(0) && !r.has_flag("nologin"))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one login may succeed: {replies:#?}"
    );
    assert_success(winners[0], ALICE, ALICE_HOME);
    assert_logged(winners[0], "ok", "main_password_totp");
    for r in &replies {
        if std::ptr::eq(r, winners[0]) {
            continue;
        }
        assert_refused_with_hint(r);
        assert_logged(r, "fail", "totp_replayed");
    }
}

#[test]
fn user_show_lists_clients_that_sent_the_main_password_without_a_code() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);

    // A wrong password is not "second factor required" and must not be listed.
    env.login(ALICE, "guessing attacker")
        .ip("203.0.113.99")
        .run();
    let r = env
        .login(ALICE, ALICE_PW)
        .ip("203.0.113.5")
        .service("pop3")
        .run();
    assert_logged(&r, "fail", "second_factor_required");

    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    let list = show["second_factor_required"]
        .as_array()
        .unwrap_or_else(|| panic!("second_factor_required array: {show}"));
    assert_eq!(
        list.len(),
        1,
        "only the correct-main-password client: {show}"
    );
    let entry = &list[0];
    assert_eq!(entry["ip"].as_str(), Some("203.0.113.5"), "{entry}");
    assert_eq!(entry["service"].as_str(), Some("pop3"), "{entry}");
    let time = entry["time"]
        .as_str()
        .unwrap_or_else(|| panic!("time: {entry}"));
    assert!(time.ends_with('Z'), "RFC 3339 UTC: {time}");
    let text = show.to_string();
    assert!(
        !text.contains(ALICE_PW),
        "user show leaks the password: {text}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// app_passwords_only
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn main_password_on_app_passwords_only_service_is_refused_with_hint() {
    let env = Env::with_config(&config_with("[auth]\napp_passwords_only = [\"imap\"]\n"));
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &[]);

    let r = env.login(ALICE, ALICE_PW).service("imap").run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "main_password_refused");
    assert_no_secret(&r, &[ALICE_PW]);

    // No oracle: a wrong password on that service gets the very same answer.
    let wrong = env.login(ALICE, "not the password").service("imap").run();
    assert_eq!(wrong.code, r.code, "{wrong:?}");
    assert_eq!(shown(&wrong), shown(&r), "{wrong:?}");
    assert_logged(&wrong, "fail", "wrong_password");

    // Other services still take the main password.
    let r = env.login(ALICE, ALICE_PW).service("pop3").run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "main_password");

    // App passwords are what the service is for.
    let r = env.login(ALICE, &app).service("imap").run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "app_password");
}

#[test]
fn other_services_take_app_passwords_only_when_the_config_says_other() {
    let env = Env::with_config(&config_with(
        "[auth]\napp_passwords_only = [\"imap\", \"other\"]\n",
    ));
    add_alice(&env);
    for service in ["doveadm", "lmtp", "-"] {
        // Not a Dovecot login process: the refusal is a failure that carries the hint.
        let r = env.login(ALICE, ALICE_PW).service(service).run();
        assert_refused_as_a_plain_failure(&r);
        assert_logged(&r, "fail", "main_password_refused");
    }
    assert_success(
        &env.login(ALICE, ALICE_PW).service("pop3").run(),
        ALICE,
        ALICE_HOME,
    );
}

#[test]
fn password_and_code_on_app_passwords_only_service_are_refused_without_using_up_the_code() {
    let env = Env::with_config(&config_with("[auth]\napp_passwords_only = [\"imap\"]\n"));
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let codes = recovery_codes(&env, ALICE);
    let code = fresh_code(&secret);

    let r = env
        .login(ALICE, &format!("{ALICE_PW}{code}"))
        .service("imap")
        .run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "main_password_refused");
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{}", codes[0]))
        .service("imap")
        .run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "main_password_refused");

    // The code and the recovery code still work where the main password is allowed.
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{code}"))
        .service("pop3")
        .run();
    assert_logged(&r, "ok", "main_password_totp");
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{}", codes[0]))
        .service("pop3")
        .run();
    assert_logged(&r, "ok", "recovery_code");
}

#[test]
fn a_burnt_recovery_code_is_logged_as_used() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let codes = recovery_codes(&env, ALICE);
    let with_code = format!("{ALICE_PW}{}", codes[1]);
    assert_success(&env.login(ALICE, &with_code).run(), ALICE, ALICE_HOME);
    let again = env.login(ALICE, &with_code).run();
    assert_refused_with_hint(&again);
    assert_logged(&again, "fail", "recovery_code_used");
}

/// The stored PHC string of the user's main password.
fn stored_hash(env: &Env, user: &str) -> String {
    let db = rusqlite::Connection::open(&env.db).expect("open db");
    db.query_row(
        "SELECT password_hash FROM users WHERE name = ?1",
        [user],
        |r| r.get(0),
    )
    .expect("user row")
}

#[test]
fn hashes_made_under_old_parameters_are_rehashed_at_the_next_login() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &[]);
    assert!(stored_hash(&env, ALICE).contains("$m=1024,t=1,p=1$"));

    // The admin raises the parameters; nobody has to change a password.
    fs::write(
        &env.config,
        TEST_CONFIG.replace("memory_kib = 1024", "memory_kib = 2048"),
    )
    .expect("write config");
    assert_success(&env.login(ALICE, ALICE_PW).run(), ALICE, ALICE_HOME);
    assert_success(&env.login(ALICE, &app).run(), ALICE, ALICE_HOME);
    let hash = stored_hash(&env, ALICE);
    assert!(hash.contains("$m=2048,t=1,p=1$"), "{hash}");

    // And the new hash still logs in; app passwords have no argon2 hash to move.
    assert_success(&env.login(ALICE, ALICE_PW).run(), ALICE, ALICE_HOME);
    assert_success(&env.login(ALICE, &app).run(), ALICE, ALICE_HOME);
}

#[test]
fn a_refused_right_password_is_not_rehashed_so_its_timing_tells_nothing() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    fs::write(
        &env.config,
        TEST_CONFIG.replace("memory_kib = 1024", "memory_kib = 2048"),
    )
    .expect("write config");

    // The right password alone is refused; rehashing it would make that answer slower than a wrong one's.
    assert_refused_with_hint(&env.login(ALICE, ALICE_PW).run());
    assert!(stored_hash(&env, ALICE).contains("$m=1024,"));

    // A login that succeeds moves the hash to the new parameters.
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{}", fresh_code(&secret)))
        .run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert!(stored_hash(&env, ALICE).contains("$m=2048,"));
}

// ---------------------------------------------------------------------------------------------------------------
// Lookups (AUTHORIZED=1)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn userdb_lookup_of_known_user_returns_its_fields() {
    let env = Env::new();
    add_alice(&env);
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(2), "lookup success is exit 2: {r:?}");
    assert_eq!(r.field("user"), Some(ALICE), "{r:?}");
    assert_eq!(r.field("userdb_home"), Some(ALICE_HOME), "{r:?}");
    assert_eq!(r.field("userdb_uid"), Some("5000"), "{r:?}");
    assert_eq!(r.field("userdb_gid"), Some("5000"), "{r:?}");
    assert!(!r.has_flag("nologin"), "{r:?}");
    assert_logged(&r, "ok", "userdb_lookup");
}

#[test]
fn userdb_lookup_of_2fa_user_returns_its_fields() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let r = env.lookup(ALICE).service("lmtp").run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(r.field("user"), Some(ALICE), "{r:?}");
    assert_eq!(r.field("userdb_home"), Some(ALICE_HOME), "{r:?}");
    decision(&r);
}

#[test]
fn userdb_lookup_of_unknown_user_is_user_unknown() {
    let env = Env::new();
    add_alice(&env);
    let r = env.lookup("nobody@example.org").run();
    assert_eq!(r.code, Some(3), "unknown user on lookup is exit 3: {r:?}");
    let log = decision(&r);
    assert_eq!(
        log.get("reason").map(String::as_str),
        Some("user_unknown"),
        "{r:?}"
    );
}

#[test]
fn credentials_lookup_is_unknown_for_unknown_user_and_tempfail_for_known() {
    let env = Env::new();
    add_alice(&env);
    let r = env
        .lookup("nobody@example.org")
        .var("CREDENTIALS_LOOKUP", "1")
        .var("SCHEME", "PLAIN")
        .run();
    assert_eq!(r.code, Some(3), "{r:?}");
    decision(&r);

    let r = env
        .lookup(ALICE)
        .var("CREDENTIALS_LOOKUP", "1")
        .var("SCHEME", "PLAIN")
        .run();
    assert_eq!(r.code, Some(111), "mailpass keeps only hashes: {r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert!(!r.stderr.contains("$argon2"), "no hash in the log: {r:?}");
    assert!(!r.fd4.contains("argon2"), "no hash in the reply: {r:?}");
}

#[test]
fn userdb_extra_fields_are_in_the_reply() {
    let env = Env::with_config(&format!(
        "{TEST_CONFIG}extra = {{ mail = \"maildir:~/Maildir\" }}\n"
    ));
    add_alice(&env);
    let r = env.login(ALICE, ALICE_PW).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_eq!(r.field("userdb_mail"), Some("maildir:~/Maildir"), "{r:?}");
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(r.field("userdb_mail"), Some("maildir:~/Maildir"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------------------------

/// No panic, exactly one decision line, and a log `result` that matches the exit code: exit 1 is `fail`, a
/// temporary failure (exit 2 on a password check, 111) is `tempfail`, never `fail` or `ok`.
fn assert_no_panic(r: &Reply) {
    let log = decision(r);
    let expected = match r.code {
        Some(1) => Some("fail"),
        Some(2) | Some(111) => Some("tempfail"),
        _ => None,
    };
    if let Some(expected) = expected {
        assert_eq!(
            log.get("result").map(String::as_str),
            Some(expected),
            "log result for exit {:?}: {r:?}",
            r.code
        );
    }
}

#[test]
fn missing_fd3_is_a_temporary_failure() {
    let env = Env::new();
    add_alice(&env);
    let r = env.login(ALICE, ALICE_PW).without_fd3().run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_no_panic(&r);
    // For a lookup, exit 2 means "found": a malformed one is an internal failure.
    let r = env.lookup(ALICE).without_fd3().run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
}

#[test]
fn request_without_nul_terminators_is_a_temporary_failure() {
    let env = Env::new();
    add_alice(&env);
    let raw = format!("{ALICE} {ALICE_PW}");
    let r = env.login(ALICE, ALICE_PW).raw_request(raw.as_bytes()).run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_no_panic(&r);
    assert_no_secret(&r, &[ALICE_PW]);

    let r = env.login(ALICE, ALICE_PW).raw_request(b"").run();
    assert_eq!(r.code, Some(2), "empty request: {r:?}");
    assert_no_panic(&r);
}

#[test]
fn oversized_request_is_a_temporary_failure() {
    let env = Env::new();
    add_alice(&env);
    let long = "x".repeat(600 - ALICE.len() - 3);
    let mut raw = Vec::new();
    raw.extend_from_slice(ALICE.as_bytes());
    raw.push(0);
    raw.extend_from_slice(long.as_bytes());
    raw.extend_from_slice(&[0, 0]);
    assert_eq!(raw.len(), 600);
    let r = env.login(ALICE, "").raw_request(&raw).run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_no_panic(&r);

    let r = env.lookup(ALICE).raw_request(&raw).run();
    assert_eq!(
        r.code,
        Some(111),
        "a malformed lookup never exits 2 (found): {r:?}"
    );
    assert_no_panic(&r);
}

#[test]
fn empty_user_name_is_authentication_failed() {
    let env = Env::new();
    add_alice(&env);
    let r = env.login("", ALICE_PW).run();
    assert_auth_failed(&r);
    assert_no_panic(&r);
    assert_no_secret(&r, &[ALICE_PW]);
}

#[test]
fn non_utf8_user_name_is_authentication_failed() {
    let env = Env::new();
    add_alice(&env);
    let r = env
        .login(ALICE, ALICE_PW)
        .raw_request(b"\xffal\xfeice@example.org\0some password\0\0")
        .run();
    assert_auth_failed(&r);
    assert_no_panic(&r);
    assert_no_secret(&r, &["some password"]);
}

#[test]
fn non_utf8_password_is_authentication_failed() {
    let env = Env::new();
    add_alice(&env);
    let mut raw = Vec::new();
    raw.extend_from_slice(ALICE.as_bytes());
    raw.push(0);
    raw.extend_from_slice(b"pass\xff\xfe\x7fword");
    raw.extend_from_slice(&[0, 0]);
    let r = env.login(ALICE, "").raw_request(&raw).run();
    assert_auth_failed(&r);
    assert_no_panic(&r);
}

// ---------------------------------------------------------------------------------------------------------------
// Database faults
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn missing_database_is_a_temporary_failure_and_is_not_created() {
    let env = Env::new();
    assert!(!env.db.exists());
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
    assert_no_secret(&r, &[ALICE_PW]);
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
    assert!(!env.db.exists(), "checkpassword must never create the DB");
    assert!(!env.path("mailpass.db-wal").exists());
    assert!(!env.path("mailpass.db-shm").exists());
}

#[test]
fn garbage_database_is_a_temporary_failure() {
    let env = Env::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    fs::write(&env.db, &garbage).expect("write garbage");
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
    assert_no_secret(&r, &[ALICE_PW]);
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
    assert_eq!(
        fs::read(&env.db).expect("read db"),
        garbage,
        "the DB file must be left alone"
    );
}

#[test]
fn empty_database_file_is_a_temporary_failure() {
    let env = Env::new();
    fs::write(&env.db, b"").expect("create empty file");
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(
        r.code,
        Some(111),
        "a DB without a schema is not 'unknown user': {r:?}"
    );
    assert_no_panic(&r);
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(111), "{r:?}");
}

#[test]
fn database_path_that_is_a_directory_is_a_temporary_failure() {
    // Tests run as root, so chmod 000 would not make a file unreadable; a directory is unreadable as a DB.
    let env = Env::new();
    fs::create_dir(&env.db).expect("mkdir");
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(111), "{r:?}");
}

#[test]
fn unreadable_database_is_a_temporary_failure() {
    let env = Env::new();
    add_alice(&env);
    if running_as_root() {
        // root reads a mode-000 file anyway; the directory case above covers "cannot open".
        return;
    }
    fs::set_permissions(&env.db, fs::Permissions::from_mode(0o000)).expect("chmod");
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
}

/// Whether the tests run as root (from /proc, no unsafe code needed).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn locked_database_is_a_temporary_failure_never_a_wrong_password() {
    let env = Env::with_config(&config_with("[auth]\ntimeout = 2\n"));
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &[]);

    // Another process-like connection holds the database exclusively: in WAL mode only exclusive locking mode
    // keeps readers out too.
    let holder = rusqlite::Connection::open(&env.db).expect("open db");
    holder
        .execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; \
             CREATE TABLE test_lock_probe (x INTEGER);",
        )
        .expect("take the lock");

    for (label, r) in [
        ("main password", env.login(ALICE, ALICE_PW).run()),
        ("app password", env.login(ALICE, &app).run()),
        ("wrong password", env.login(ALICE, "not the password").run()),
        ("lookup", env.lookup(ALICE).run()),
    ] {
        assert_eq!(r.code, Some(111), "{label} with the DB locked: {r:?}");
        assert_no_panic(&r);
        assert_no_secret(&r, &[ALICE_PW, &app]);
    }

    holder.execute_batch("ROLLBACK").expect("rollback");
    drop(holder);
    let r = env.login(ALICE, ALICE_PW).run();
    assert_success(&r, ALICE, ALICE_HOME);
}

#[test]
fn bad_config_is_a_temporary_failure() {
    let env = Env::new();
    add_alice(&env);
    fs::write(&env.config, "[auth\ntimeout = = 3\n").expect("write config");
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_no_panic(&r);
    let r = env.lookup(ALICE).run();
    assert_eq!(r.code, Some(111), "{r:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// How a refusal reaches each client: nologin only for Dovecot's login processes
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_2fa_refusal_for_postfix_is_a_plain_failure_never_nologin() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let app = env.add_app_password(ALICE, "IMAP only", &["--services", "imap"]);
    env.ok(&["app-password", "add", ALICE, "--name", "old"], "");
    let revoked = env.add_app_password(ALICE, "revoked", &[]);
    env.ok(&["app-password", "revoke", ALICE, "revoked"], "");
    let code = fresh_code(&secret);
    let with_code = format!("{ALICE_PW}{code}");
    // Postfix asks with service=smtp and no session id: every refusal is a failure there.
    let postfix = |secret: &str| {
        env.login(ALICE, secret)
            .service("smtp")
            .without_session()
            .run()
    };
    let wrong = postfix("not the password");
    assert_refused_as_a_plain_failure(&wrong);
    assert_logged(&wrong, "fail", "wrong_password");
    for (what, secret, reason) in [
        (
            "the main password alone",
            ALICE_PW,
            "second_factor_required",
        ),
        (
            "an out-of-scope app password",
            app.as_str(),
            "app_password_out_of_scope",
        ),
        (
            "a revoked app password",
            revoked.as_str(),
            "app_password_revoked",
        ),
    ] {
        let r = postfix(secret);
        assert_refused_as_a_plain_failure(&r);
        assert_logged(&r, "fail", reason);
        assert_eq!(shown(&r), shown(&wrong), "{what}: {r:?}");
    }
    // Password + code is accepted once; the replay is a failure too.
    let first = postfix(&with_code);
    assert_success(&first, ALICE, ALICE_HOME);
    let replay = postfix(&with_code);
    assert_refused_as_a_plain_failure(&replay);
    assert_logged(&replay, "fail", "totp_replayed");
}

#[test]
fn a_login_service_name_without_a_session_id_gets_a_plain_failure() {
    // `doveadm auth test -x service=imap` (or anything speaking the auth protocol) claims to be IMAP but is
    // no login process: it would read nologin as "auth succeeded".
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    for service in ["imap", "pop3", "submission", "sieve"] {
        let r = env
            .login(ALICE, ALICE_PW)
            .service(service)
            .without_session()
            .run();
        assert_refused_as_a_plain_failure(&r);
        assert_logged(&r, "fail", "second_factor_required");
    }
    let r = env.login(ALICE, ALICE_PW).service("doveadm").run();
    assert_refused_as_a_plain_failure(&r);
}

#[test]
fn app_passwords_only_on_smtp_refuses_postfix_with_a_failure() {
    let env = Env::with_config(&config_with("[auth]\napp_passwords_only = [\"smtp\"]\n"));
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &["--services", "smtp"]);
    for (secret, reason) in [
        (ALICE_PW, "main_password_refused"),
        ("not the password", "wrong_password"),
    ] {
        let r = env
            .login(ALICE, secret)
            .service("smtp")
            .without_session()
            .run();
        assert_refused_as_a_plain_failure(&r);
        assert_logged(&r, "fail", reason);
    }
    let r = env
        .login(ALICE, &app)
        .service("smtp")
        .without_session()
        .run();
    assert_success(&r, ALICE, ALICE_HOME);
    // Dovecot's submission login process is a login process: it gets the nologin form.
    let r = env.login(ALICE, ALICE_PW).service("submission").run();
    assert_refused_with_hint(&r);
}

// ---------------------------------------------------------------------------------------------------------------
// The brake on nologin refusals (Dovecot applies neither its failure delay nor its penalty to them)
// ---------------------------------------------------------------------------------------------------------------

/// Seconds from the run to the `delay_until` it asked for (0 without one).
fn asked_delay(r: &Reply, started: u64) -> i64 {
    r.field("delay_until").map_or(0, |t| {
        t.parse::<i64>().expect("delay_until is a number") - started as i64
    })
}

#[test]
fn a_nologin_refusal_waits_at_least_the_failure_delay() {
    let env = Env::with_config(&config_with("[auth]\nfailure_delay = 3\n"));
    add_alice(&env);
    enable_totp(&env, ALICE);
    let started = now();
    let r = env.login(ALICE, ALICE_PW).run();
    assert_refused_with_hint(&r);
    let delay = asked_delay(&r, started);
    // Dovecot compares whole seconds; one more second makes the wait never shorter than 3 s.
    assert!(
        (3..=5).contains(&delay),
        "delay_until - now = {delay}: {r:?}"
    );
}

#[test]
fn a_guessers_nologin_refusals_wait_as_dovecots_anvil_penalty_would() {
    let env = Env::with_config(&config_with("[auth]\nfailure_delay = 2\n"));
    add_alice(&env);
    enable_totp(&env, ALICE);
    let mut delays = Vec::new();
    for guess in 0..6 {
        let started = now();
        let r = env
            .login(ALICE, &format!("guess {guess}"))
            .ip("198.51.100.7")
            .run();
        assert_refused_with_hint(&r);
        // 2 s, then 2 s plus anvil's 4, 8, 15, 15, 15; one second more for Dovecot's whole seconds.
        delays.push(asked_delay(&r, started) - 1);
    }
    let expected = [2, 6, 10, 17, 17, 17];
    for (got, want) in delays.iter().zip(expected) {
        assert!(
            // The second may turn between the test's clock and mailpass's.
            (want..=want + 1).contains(got),
            "delays {delays:?}, expected about {expected:?}"
        );
    }
    // Another network starts from nothing; identical retries count once, as in anvil.
    for _ in 0..3 {
        let started = now();
        let r = env
            .login(ALICE, "the same stale password")
            .ip("203.0.113.9")
            .run();
        let delay = asked_delay(&r, started) - 1;
        assert!(
            (2..=3).contains(&delay),
            "a stale client's retries: {delay}: {r:?}"
        );
    }
}

#[test]
fn the_brake_is_the_same_for_a_right_and_a_wrong_main_password() {
    let env = Env::with_config(&config_with("[auth]\nfailure_delay = 2\n"));
    add_alice(&env);
    enable_totp(&env, ALICE);
    let delays = |first: &str, second: &str, ip: &str| {
        let a = env.login(ALICE, first).ip(ip).run();
        let started = now();
        let b = env.login(ALICE, second).ip(ip).run();
        (shown(&a), asked_delay(&b, started))
    };
    let (right_first, after_right) = delays(ALICE_PW, "wrong one", "198.51.100.20");
    let (wrong_first, after_wrong) = delays("wrong two", "wrong three", "198.51.100.21");
    assert_eq!(right_first, wrong_first);
    assert!(
        (after_right - after_wrong).abs() <= 1,
        "{after_right} vs {after_wrong}"
    );
}

#[test]
fn without_failure_delay_and_penalty_a_refusal_asks_no_delay() {
    let env = Env::with_config(&config_with("[auth]\nfailure_delay = 0\npenalty = false\n"));
    add_alice(&env);
    enable_totp(&env, ALICE);
    for guess in ["a", "b", "c"] {
        let r = env.login(ALICE, guess).run();
        assert_refused_with_hint(&r);
        assert!(r.field("delay_until").is_none(), "{r:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Log levels, the time limit, the reply
// ---------------------------------------------------------------------------------------------------------------

/// The levels of `--log dovecot` lines: `\x01`, Dovecot's log type + 1, a pid, a space.
fn dovecot_levels(r: &Reply) -> Vec<(char, &str)> {
    r.stderr
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix('\u{1}')
                .unwrap_or_else(|| panic!("not Dovecot's format: {l:?}"));
            let mut chars = rest.chars();
            let level = chars.next().expect("level");
            let text = chars.as_str();
            let (pid, text) = text.split_once(' ').expect("pid and text");
            assert!(pid.parse::<u32>().is_ok(), "pid {pid:?} in {l:?}");
            (level, text)
        })
        .collect()
}

const DOVECOT_INFO: char = '\u{2}';
const DOVECOT_ERROR: char = '\u{4}';

#[test]
fn with_log_dovecot_decisions_are_info_and_faults_are_errors() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "Phone", &[]);
    for (secret, result) in [(app.as_str(), "ok"), ("wrong", "fail")] {
        let r = env.login(ALICE, secret).args(&["--log", "dovecot"]).run();
        let lines = dovecot_levels(&r);
        assert_eq!(lines.len(), 1, "{r:?}");
        assert_eq!(lines[0].0, DOVECOT_INFO, "{r:?}");
        assert!(
            lines[0]
                .1
                .starts_with(&format!("mailpass: result={result} ")),
            "{r:?}"
        );
    }
    let r = env.lookup(ALICE).args(&["--log", "dovecot"]).run();
    assert_eq!(dovecot_levels(&r)[0].0, DOVECOT_INFO, "{r:?}");
    fs::remove_file(&env.db).expect("remove the database");
    let r = env.login(ALICE, &app).args(&["--log", "dovecot"]).run();
    assert_eq!(r.code, Some(111));
    let lines = dovecot_levels(&r);
    assert_eq!(lines[0].0, DOVECOT_ERROR, "{r:?}");
    assert!(
        lines[0].1.contains("result=tempfail reason=db_unavailable"),
        "{r:?}"
    );
}

#[test]
fn a_stalled_log_pipe_cannot_hold_the_time_limit() {
    let env = Env::with_config(&config_with("[auth]\ntimeout = 2\n"));
    add_alice(&env);
    // The decision line blocks on the full pipe; the time limit must still end the run with a temporary
    // failure (before, its own log line waited for the lock the blocked thread held, for ever).
    let r = env.login(ALICE, ALICE_PW).stalled_stderr().run();
    assert_eq!(r.code, Some(111), "{r:?}");
}

#[test]
fn an_unwritable_reply_descriptor_is_a_temporary_failure_before_any_code_is_spent() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let with_code = format!("{ALICE_PW}{}", fresh_code(&secret));
    let r = env.login(ALICE, &with_code).read_only_fd4().run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_logged(&r, "tempfail", "reply_unusable");
    // The code was not claimed: it still logs in.
    let r = env.login(ALICE, &with_code).run();
    assert_success(&r, ALICE, ALICE_HOME);
}

#[test]
fn a_reply_that_cannot_be_delivered_is_logged_as_the_temporary_failure_dovecot_got() {
    let env = Env::new();
    add_alice(&env);
    let r = env.login(ALICE, ALICE_PW).broken_fd4().run();
    assert_eq!(r.code, Some(111), "{r:?}");
    // One line, and it is the truth: not `result=ok` followed by a tempfail.
    let log = assert_logged(&r, "tempfail", "reply_write_failed");
    assert_eq!(
        log.get("lost").map(String::as_str),
        Some("ok:main_password"),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The REPLY program
// ---------------------------------------------------------------------------------------------------------------

fn write_reply_script(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let script = env.path("record-reply.sh");
    let record = env.path("reply-env.txt");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n/usr/bin/env > '{}'\nprintf 'written-by-reply-program' >&4\nexit 0\n",
            record.display()
        ),
    )
    .expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod script");
    (script, record)
}

fn env_vars(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn custom_reply_program_is_run_with_the_user_environment() {
    let env = Env::new();
    add_alice(&env);
    let (script, record) = write_reply_script(&env);
    let r = env
        .login(ALICE, ALICE_PW)
        .args(&[script.to_str().expect("utf-8 path")])
        .run();
    assert_eq!(
        r.code,
        Some(0),
        "mailpass exits with the reply program's code: {r:?}"
    );
    assert_no_panic(&r);
    assert_eq!(
        r.fd4, "written-by-reply-program",
        "fd 4 stays open for the reply program: {r:?}"
    );
    let recorded = fs::read_to_string(&record).expect("the reply program ran");
    let vars = env_vars(&recorded);
    assert_eq!(
        vars.get("USER").map(String::as_str),
        Some(ALICE),
        "{recorded}"
    );
    assert_eq!(
        vars.get("HOME").map(String::as_str),
        Some(ALICE_HOME),
        "{recorded}"
    );
    assert_eq!(
        vars.get("userdb_uid").map(String::as_str),
        Some("5000"),
        "{recorded}"
    );
    assert_eq!(
        vars.get("userdb_gid").map(String::as_str),
        Some("5000"),
        "{recorded}"
    );
    let extra = vars
        .get("EXTRA")
        .unwrap_or_else(|| panic!("EXTRA: {recorded}"));
    let extra: Vec<&str> = extra.split_whitespace().collect();
    assert!(extra.contains(&"userdb_uid"), "EXTRA: {extra:?}");
    assert!(extra.contains(&"userdb_gid"), "EXTRA: {extra:?}");
    assert!(
        !recorded.contains(ALICE_PW),
        "the password leaked to the reply program: {recorded}"
    );
    decision(&r);
}

#[test]
fn custom_reply_program_inherits_no_descriptor_above_4() {
    let env = Env::new();
    add_alice(&env);
    let script = env.path("fd-probe.sh");
    let record = env.path("fds.txt");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor n in 3 4 5 6 7 8 9; do [ -e /proc/$$/fd/$n ] && echo $n; done > '{}'\n\
             printf 'probe-done' >&4\nexit 0\n",
            record.display()
        ),
    )
    .expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");

    let r = env
        .login(ALICE, ALICE_PW)
        .args(&[script.to_str().expect("utf-8")])
        .leak_descriptors()
        .run();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.fd4, "probe-done", "{r:?}");
    assert_no_panic(&r);
    let open: Vec<String> = fs::read_to_string(&record)
        .expect("the probe ran")
        .lines()
        .map(String::from)
        .collect();
    assert!(
        open.contains(&"4".to_string()),
        "fd 4 stays for the reply: {open:?}"
    );
    let leaked: Vec<&String> = open.iter().filter(|n| n.as_str() >= "5").collect();
    assert!(
        leaked.is_empty(),
        "descriptors >= 5 reached the reply program: {leaked:?}"
    );
}

#[test]
fn leaked_descriptors_do_not_disturb_a_login() {
    let env = Env::new();
    add_alice(&env);
    let r = env
        .login(ALICE, ALICE_PW)
        .args(&["/usr/lib/dovecot/checkpassword-reply"])
        .leak_descriptors()
        .run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "main_password");
}

#[test]
fn custom_reply_program_is_not_run_for_a_wrong_password() {
    let env = Env::new();
    add_alice(&env);
    let (script, record) = write_reply_script(&env);
    let r = env
        .login(ALICE, "not the password")
        .args(&[script.to_str().expect("utf-8 path")])
        .run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "wrong_password");
    assert!(
        !record.exists(),
        "the reply program must not run on failure"
    );
}

#[test]
fn dovecot_checkpassword_reply_is_not_needed() {
    let env = Env::new();
    add_alice(&env);
    let reply = "/usr/lib/dovecot/checkpassword-reply";
    let r = env.login(ALICE, ALICE_PW).args(&[reply]).run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "main_password");

    let r = env.lookup(ALICE).args(&[reply]).run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(r.field("user"), Some(ALICE), "{r:?}");
    assert_eq!(r.field("userdb_home"), Some(ALICE_HOME), "{r:?}");

    // The 2FA hint still reaches the client when Dovecot names its reply program.
    enable_totp(&env, ALICE);
    let r = env.login(ALICE, ALICE_PW).args(&[reply]).run();
    assert_refused_with_hint(&r);
}

// ---------------------------------------------------------------------------------------------------------------
// Log lines
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_decision_logs_one_line_without_the_secret() {
    let env = Env::new();
    add_alice(&env);
    env.add_user(BOB, BOB_PW);
    let app = env.add_app_password(ALICE, "Laptop Mail", &[]);
    let bob_secret = enable_totp(&env, BOB);
    let bob_code = fresh_code(&bob_secret);
    let bob_with_code = format!("{BOB_PW}{bob_code}");

    let cases: Vec<(&str, &str, &str, &str, &str)> = vec![
        (ALICE, app.as_str(), "ok", "app_password", "pop3"),
        (ALICE, ALICE_PW, "ok", "main_password", "imap"),
        (
            ALICE,
            "hunter2-wrong",
            "fail",
            "wrong_password",
            "submission",
        ),
        (
            "ghost@example.org",
            "ghost-password",
            "fail",
            "unknown_user",
            "imap",
        ),
        (BOB, BOB_PW, "fail", "second_factor_required", "sieve"),
        (
            BOB,
            bob_with_code.as_str(),
            "ok",
            "main_password_totp",
            "imap",
        ),
    ];
    for (i, (user, secret, result, reason, service)) in cases.into_iter().enumerate() {
        let ip = format!("192.0.2.{}", 100 + i);
        let r = env.login(user, secret).ip(&ip).service(service).run();
        let log = assert_logged(&r, result, reason);
        assert_eq!(log.get("user").map(String::as_str), Some(user), "{r:?}");
        assert_eq!(
            log.get("ip").map(String::as_str),
            Some(ip.as_str()),
            "{r:?}"
        );
        assert_eq!(
            log.get("service").map(String::as_str),
            Some(service),
            "{r:?}"
        );
        assert_no_secret(&r, &[secret, ALICE_PW, BOB_PW, &bob_secret]);
        let compact: String = secret.chars().filter(|c| *c != '-').collect();
        assert_no_secret(&r, &[&compact]);
        if reason == "main_password_totp" {
            assert!(!r.stderr.contains(&bob_code), "the TOTP code leaked: {r:?}");
        }
    }
}

/// The README's closed list of `reason` values for `result=ok` and `result=fail` lines.
const DOCUMENTED_REASONS: &[&str] = &[
    "app_password",
    "main_password",
    "main_password_totp",
    "recovery_code",
    "unknown_user",
    "disabled_user",
    "wrong_password",
    "app_password_expired",
    "app_password_revoked",
    "app_password_out_of_scope",
    "totp_wrong",
    "totp_replayed",
    "recovery_code_used",
    "invalid_user_name",
    "banned",
    "second_factor_required",
    "main_password_refused",
    "userdb_lookup",
    "user_unknown",
];

#[test]
fn log_reasons_are_the_documented_ones() {
    let env = Env::new();
    add_alice(&env);
    enable_totp(&env, ALICE);
    let codes = recovery_codes(&env, ALICE);
    let with_recovery = format!("{ALICE_PW}{}", codes[0]);
    assert_success(&env.login(ALICE, &with_recovery).run(), ALICE, ALICE_HOME);

    let runs = [
        (
            "burnt recovery code",
            env.login(ALICE, &with_recovery).run(),
        ),
        ("empty user name", env.login("", "some password").run()),
        (
            "non-UTF-8 user name",
            env.login(ALICE, "")
                .raw_request(b"\xffal\xfeice@example.org\0some password\0\0")
                .run(),
        ),
        ("unknown user", env.login("nobody@example.org", "pw").run()),
        (
            "unknown user lookup",
            env.lookup("nobody@example.org").run(),
        ),
    ];
    let mut undocumented = Vec::new();
    for (label, r) in &runs {
        let log = decision(r);
        let result = log.get("result").map(String::as_str).unwrap_or("");
        let reason = log.get("reason").map(String::as_str).unwrap_or("");
        if (result == "ok" || result == "fail") && !DOCUMENTED_REASONS.contains(&reason) {
            undocumented.push(format!("{label}: result={result} reason={reason}"));
        }
    }
    assert!(
        undocumented.is_empty(),
        "reasons outside the README's list (fail2ban filters rely on it): {undocumented:?}"
    );
}

#[test]
fn log_quotes_values_with_spaces() {
    let env = Env::new();
    add_alice(&env);
    let app = env.add_app_password(ALICE, "My iPhone Mail", &[]);
    let r = env.login(ALICE, &app).run();
    assert_success(&r, ALICE, ALICE_HOME);
    let line = decision_lines(&r)[0];
    assert!(
        line.contains("credential=\"My iPhone Mail\""),
        "values with spaces are quoted: {line}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Secrets in memory (issue 8)
// ---------------------------------------------------------------------------------------------------------------

/// nobody's uid and gid: an unprivileged user, as Dovecot's auth user is.
const NOBODY: u32 = 65534;

/// Gives the environment's directory and everything in it to `uid`, as the database's directory belongs to
/// the Dovecot auth user.
fn give_to(env: &Env, uid: u32) {
    fn walk(path: &std::path::Path, uid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
        if path.is_dir() && !path.is_symlink() {
            for entry in fs::read_dir(path).expect("read dir") {
                walk(&entry.expect("entry").path(), uid);
            }
        }
    }
    walk(env.dir.path(), uid);
}

/// Whether the main thread of `pid` is blocked reading fd 3 (the request), from `/proc/PID/syscall`:
/// the syscall number, then its arguments in hex.
fn waits_on_fd3(pid: u32) -> bool {
    #[cfg(target_arch = "aarch64")]
    const READ: &str = "63";
    #[cfg(not(target_arch = "aarch64"))]
    const READ: &str = "0";
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| s.split_whitespace().take(2).eq([READ, "0x3"]))
}

#[test]
fn a_login_waiting_for_its_password_leaves_no_core_file_and_no_door_to_its_memory() {
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        println!("note: not root, so the run cannot be made another user's; not checked");
        return;
    }
    let env = Env::new();
    add_alice(&env);
    give_to(&env, NOBODY);
    let running = env.login(ALICE, ALICE_PW).run_as(NOBODY, NOBODY).start();
    let pid = running.pid();
    let start = std::time::Instant::now();
    while !waits_on_fd3(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "mailpass never got to reading fd 3"
        );
        thread::sleep(Duration::from_millis(10));
    }

    // The password will be read into a process that can leave no core file, not even by raising the limit.
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core: Vec<&str> = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .expect("a core limit")
        .split_whitespace()
        .collect();
    assert_eq!(core[..2], ["0", "0"], "soft and hard core limits: {limits}");

    // Not dumpable: the kernel gives its /proc files to root although it runs as nobody, and another process
    // of the same user can read neither its memory nor its environment.
    let mem = fs::metadata(format!("/proc/{pid}/mem")).expect("mem");
    assert_eq!(
        (mem.uid(), mem.gid()),
        (0, 0),
        "a dumpable process's /proc/PID/mem belongs to its user"
    );
    let neighbour = std::process::Command::new("cat")
        .arg(format!("/proc/{pid}/environ"))
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run cat as nobody");
    assert!(
        !neighbour.success(),
        "another process of the same user read /proc/{pid}/environ"
    );

    // And the login goes on as ever.
    let r = running.finish();
    assert_success(&r, ALICE, ALICE_HOME);
}

// ---------------------------------------------------------------------------------------------------------------
// Hashes imported from a Dovecot passdb (issue 9)
// ---------------------------------------------------------------------------------------------------------------

/// Puts `hash` in the user's row as the import does: as the passdb held it.
fn store_hash(env: &Env, user: &str, hash: &str) {
    let db = rusqlite::Connection::open(&env.db).expect("open db");
    let n = db
        .execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            [user, hash],
        )
        .expect("update");
    assert_eq!(n, 1, "{user}");
}

/// Every scheme mailpass takes from a Dovecot passdb, as `doveadm pw -s` names it.
const IMPORTED_SCHEMES: &[&str] = &[
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "MD5-CRYPT",
    "BLF-CRYPT",
    "CRYPT",
    "DES-CRYPT",
    "SSHA512",
    "SSHA256",
    "SSHA",
    "SHA512",
    "SHA256",
    "SHA",
    "SHA1",
    "SSHA256.HEX",
    "SHA512.HEX",
    "PBKDF2",
    "PLAIN",
    "CLEAR",
    "CLEARTEXT",
    "PLAIN.B64",
    "ARGON2ID",
    "ARGON2I",
];

#[test]
fn an_imported_hash_logs_in_and_becomes_argon2id_at_the_first_login() {
    let env = Env::new();
    let mut hashes: Vec<(String, String)> = IMPORTED_SCHEMES
        .iter()
        .map(|s| (s.to_lowercase(), doveadm_hash(s, ALICE_PW)))
        .collect();
    hashes.push(("yescrypt".into(), yescrypt_hash(ALICE_PW)));
    for (i, (name, imported)) in hashes.iter().enumerate() {
        // An address of its own for each user: the wrong passwords of all would add up to a ban.
        let ip = format!("2001:db8:{i:x}::1");
        let user = format!("{name}@example.org");
        let home = format!("/var/vmail/example.org/{name}");
        env.add_user(&user, "a password to be replaced");
        store_hash(&env, &user, imported);

        // A wrong password fails as for any user and leaves the imported hash as it was.
        let r = env.login(&user, "not the password").ip(&ip).run();
        assert_auth_failed(&r);
        assert_logged(&r, "fail", "wrong_password");
        assert_no_secret(&r, &["not the password", ALICE_PW]);
        assert_eq!(&stored_hash(&env, &user), imported, "{name}");

        // The right one logs in, and the hash is mailpass's own from then on.
        let r = env.login(&user, ALICE_PW).ip(&ip).run();
        assert_success(&r, &user, &home);
        assert_logged(&r, "ok", "main_password");
        let rehashed = stored_hash(&env, &user);
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{name}: {rehashed}"
        );
        assert_success(&env.login(&user, ALICE_PW).ip(&ip).run(), &user, &home);
        assert_auth_failed(&env.login(&user, "not the password").ip(&ip).run());
    }
}

#[test]
fn an_imported_hash_on_a_2fa_account_is_refused_without_the_code_and_moves_with_it() {
    let env = Env::new();
    add_alice(&env);
    let secret = enable_totp(&env, ALICE);
    let imported = doveadm_hash("SHA512-CRYPT", ALICE_PW);
    store_hash(&env, ALICE, &imported);

    // The right password alone gets the same hint as today, and is not rehashed (it was not accepted).
    let r = env.login(ALICE, ALICE_PW).run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "second_factor_required");
    let r = env.login(ALICE, "not the password").run();
    assert_refused_with_hint(&r);
    assert_logged(&r, "fail", "wrong_password");
    assert_eq!(stored_hash(&env, ALICE), imported);

    // An app password needs no hash at all.
    let app = env.add_app_password(ALICE, "Phone", &[]);
    assert_success(&env.login(ALICE, &app).run(), ALICE, ALICE_HOME);
    assert_eq!(stored_hash(&env, ALICE), imported);

    // Password and code log in, and move the hash to argon2id.
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{}", fresh_code(&secret)))
        .run();
    assert_success(&r, ALICE, ALICE_HOME);
    assert_logged(&r, "ok", "main_password_totp");
    assert!(stored_hash(&env, ALICE).starts_with("$argon2id$"));
}

#[test]
fn an_unknown_user_is_refused_while_every_hash_is_imported() {
    let env = Env::new();
    add_alice(&env);
    store_hash(&env, ALICE, &doveadm_hash("SSHA256", ALICE_PW));
    let r = env.login("nobody@example.org", ALICE_PW).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "unknown_user");
    assert_no_secret(&r, &[ALICE_PW]);
}

#[test]
fn a_malformed_imported_hash_is_a_temporary_failure_not_a_refusal() {
    let env = Env::new();
    add_alice(&env);
    store_hash(&env, ALICE, "{SSHA256}not base64!");
    let r = env.login(ALICE, ALICE_PW).run();
    assert!(matches!(r.code, Some(2) | Some(111)), "{r:?}");
    assert_logged(&r, "tempfail", "bad_hash");
    assert_no_secret(&r, &[ALICE_PW, "not base64!"]);
    store_hash(&env, ALICE, "{CRAM-MD5}e02d374fde0dc75a17a557039a3a5338");
    let r = env.login(ALICE, ALICE_PW).run();
    assert!(matches!(r.code, Some(2) | Some(111)), "{r:?}");
    assert_logged(&r, "tempfail", "bad_hash");
}

// ---------------------------------------------------------------------------------------------------------------
// Route 2: mailpass in front of another passdb (`[auth] next_passdb`, external users)
// ---------------------------------------------------------------------------------------------------------------

const CAROL: &str = "carol@example.org";
const CAROL_LDAP_PW: &str = "the password LDAP holds";

fn chained_env() -> Env {
    Env::with_config(&config_with("[auth]\nnext_passdb = true\n"))
}

fn add_carol_external(env: &Env) {
    env.ok(&["user", "add", CAROL, "--external"], "");
}

fn failures(env: &Env) -> Vec<serde_json::Value> {
    let out = env.ok(&["failures", "list", "--json"], "");
    json(&out).as_array().expect("array").clone()
}

/// A final refusal through Dovecot's checkpassword passdb to a login process: the nologin form, whatever the
/// text, so that the chained config's `result_success = return-ok` ends the chain and the login process refuses.
fn assert_final_nologin(r: &Reply, text: &str) {
    assert_eq!(r.code, Some(0), "expected exit 0 with nologin: {r:?}");
    assert!(r.has_flag("nologin"), "expected nologin: {r:?}");
    assert_eq!(r.field("reason"), Some(text), "{r:?}");
}

#[test]
fn chained_user_mailpass_does_not_know_goes_to_the_next_passdb_unrecorded() {
    let env = chained_env();
    add_alice(&env);
    let r = env.login("nobody@example.org", "whatever").run();
    assert_auth_failed(&r);
    assert_eq!(r.fd4, "", "{r:?}");
    assert_logged(&r, "next", "not_mine");
    assert!(failures(&env).is_empty(), "nothing is recorded");
}

#[test]
fn chained_user_mailpass_does_not_know_gets_exit_4_from_lua() {
    let env = chained_env();
    add_alice(&env);
    let r = env
        .login("nobody@example.org", "whatever")
        .args(&["--lua"])
        .run();
    assert_eq!(r.code, Some(4), "{r:?}");
    assert_logged(&r, "next", "not_mine");
}

#[test]
fn without_next_passdb_lua_never_gets_exit_4() {
    let env = Env::new();
    add_alice(&env);
    let r = env
        .login("nobody@example.org", "whatever")
        .args(&["--lua"])
        .run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "unknown_user");
}

#[test]
fn chained_local_users_wrong_password_is_a_final_nologin_refusal_to_a_login_process() {
    let env = chained_env();
    add_alice(&env);
    let r = env.login(ALICE, "not the password").run();
    assert_final_nologin(&r, "Authentication failed.");
    assert!(r.field("delay_until").is_some(), "held back: {r:?}");
    let log = assert_logged(&r, "fail", "wrong_password");
    assert_eq!(log.get("counted").map(String::as_str), Some("yes"));
}

#[test]
fn chained_local_users_wrong_password_to_postfix_is_an_internal_failure() {
    let env = chained_env();
    add_alice(&env);
    let r = env
        .login(ALICE, "not the password")
        .service("smtp")
        .without_session()
        .run();
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_eq!(r.fd4, "", "{r:?}");
    let log = assert_logged(&r, "fail", "wrong_password");
    assert_eq!(log.get("sent_as").map(String::as_str), Some("tempfail"));
}

#[test]
fn the_chained_config_makes_every_refusal_final_even_if_next_passdb_was_forgotten() {
    // The Dovecot config continues on a failure (`--chained`), mailpass.toml does not say next_passdb.
    let env = Env::new();
    add_alice(&env);
    let r = env
        .login(ALICE, "not the password")
        .service("smtp")
        .without_session()
        .args(&["--chained"])
        .run();
    assert_eq!(
        r.code,
        Some(111),
        "never a failure the chain goes on from: {r:?}"
    );
    let r = env
        .login(ALICE, "not the password")
        .args(&["--chained"])
        .run();
    assert!(
        r.has_flag("nologin"),
        "a final refusal to a login process: {r:?}"
    );
}

#[test]
fn an_environment_variable_cannot_switch_the_chained_answers_off() {
    // Dovecot's checkpassword passes environment variables on (import_environment, earlier passdbs' fields).
    let env = Env::new();
    add_alice(&env);
    let r = env
        .login(ALICE, "not the password")
        .service("smtp")
        .without_session()
        .var("MAILPASS_LUA", "1")
        .args(&["--chained"])
        .run();
    assert_eq!(r.code, Some(111), "still final: {r:?}");
}

#[test]
fn chained_local_users_wrong_password_through_lua_is_a_plain_failure() {
    let env = chained_env();
    add_alice(&env);
    let r = env.login(ALICE, "not the password").args(&["--lua"]).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "wrong_password");
}

#[test]
fn chained_local_user_still_logs_in_with_the_main_password() {
    let env = chained_env();
    add_alice(&env);
    assert_success(&env.login(ALICE, ALICE_PW).run(), ALICE, ALICE_HOME);
}

#[test]
fn external_users_app_password_logs_in() {
    let env = chained_env();
    add_carol_external(&env);
    let app = env.add_app_password(CAROL, "phone", &[]);
    let r = env.login(CAROL, &app).run();
    assert_success(&r, CAROL, "/var/vmail/example.org/carol");
    assert_logged(&r, "ok", "app_password");
}

#[test]
fn external_users_main_password_without_2fa_goes_to_the_next_passdb() {
    let env = chained_env();
    add_carol_external(&env);
    let r = env.login(CAROL, CAROL_LDAP_PW).run();
    assert_auth_failed(&r);
    assert_logged(&r, "next", "not_mine");
    let r = env.login(CAROL, CAROL_LDAP_PW).args(&["--lua"]).run();
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(failures(&env).is_empty(), "nothing is recorded");
    assert_no_secret(&r, &[CAROL_LDAP_PW]);
}

#[test]
fn external_users_main_password_with_2fa_gets_the_hint_and_counts() {
    let env = chained_env();
    add_carol_external(&env);
    enable_totp(&env, CAROL);
    let r = env.login(CAROL, CAROL_LDAP_PW).run();
    assert_refused_with_hint(&r);
    let log = assert_logged(&r, "fail", "external_refused");
    assert_eq!(log.get("counted").map(String::as_str), Some("yes"));
    // The same secret again counts once (its fingerprint is an argon2 output).
    let r = env.login(CAROL, CAROL_LDAP_PW).run();
    let log = assert_logged(&r, "fail", "external_refused");
    assert_eq!(log.get("counted").map(String::as_str), Some("no"));
    // Through Lua the same refusal is the same nologin form.
    let r = env.login(CAROL, "another guess").args(&["--lua"]).run();
    assert_refused_with_hint(&r);
    assert_no_secret(&r, &[CAROL_LDAP_PW]);
}

#[test]
fn external_users_main_password_with_2fa_to_postfix_is_final() {
    let env = chained_env();
    add_carol_external(&env);
    enable_totp(&env, CAROL);
    let postfix = || {
        env.login(CAROL, CAROL_LDAP_PW)
            .service("smtp")
            .without_session()
    };
    let r = postfix().run();
    assert_eq!(
        r.code,
        Some(111),
        "checkpassword: an internal failure: {r:?}"
    );
    assert_logged(&r, "fail", "external_refused");
    let r = postfix().args(&["--lua"]).run();
    assert_auth_failed(&r);
}

#[test]
fn external_user_without_next_passdb_logs_in_with_app_passwords_only() {
    let env = Env::new();
    add_carol_external(&env);
    let r = env.login(CAROL, CAROL_LDAP_PW).run();
    assert_auth_failed(&r);
    assert_logged(&r, "fail", "external_refused");
    let app = env.add_app_password(CAROL, "phone", &[]);
    assert_success(
        &env.login(CAROL, &app).run(),
        CAROL,
        "/var/vmail/example.org/carol",
    );
}

#[test]
fn disabled_external_user_is_refused_for_good() {
    let env = chained_env();
    add_carol_external(&env);
    env.ok(&["user", "disable", CAROL], "");
    let r = env.login(CAROL, CAROL_LDAP_PW).run();
    assert_final_nologin(&r, "Authentication failed.");
    assert_logged(&r, "fail", "disabled_user");
}

#[test]
fn chained_missing_database_is_a_temporary_failure_never_next() {
    let env = chained_env();
    let r = env.login("nobody@example.org", "whatever").run();
    assert_eq!(r.code, Some(111), "{r:?}");
    let r = env
        .login("nobody@example.org", "whatever")
        .args(&["--lua"])
        .run();
    assert_eq!(r.code, Some(111), "{r:?}");
}

#[test]
fn chained_banned_address_is_refused_for_good() {
    let env = chained_env();
    add_alice(&env);
    env.ok(&["ban", "add", "192.0.2.10"], "");
    let r = env.login("nobody@example.org", "whatever").run();
    assert_final_nologin(&r, "Authentication failed.");
    assert_logged(&r, "fail", "banned");
    let r = env
        .login("nobody@example.org", "whatever")
        .service("smtp")
        .without_session()
        .run();
    assert_eq!(r.code, Some(111), "{r:?}");
}

#[test]
fn a_database_the_auth_user_cannot_write_is_a_temporary_failure_that_names_the_owner_problem() {
    let env = Env::new();
    add_alice(&env);
    // As root owns it (an admin command run as root in a root-owned directory) while Dovecot runs mailpass as
    // its own user.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", env.db.display());
        if std::path::Path::new(&path).exists() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    let r = env.login(ALICE, ALICE_PW).run_as(65534, 65534).run();
    assert_eq!(r.code, Some(111), "{r:?}");
    let log = assert_logged(&r, "tempfail", "db_unavailable");
    let error = log.get("error").cloned().unwrap_or_default();
    assert!(error.contains("mailpass doctor"), "{error}");
}

#[test]
fn with_the_self_service_page_configured_the_hint_points_mail_users_to_it() {
    let env = Env::with_config(&format!(
        "{TEST_CONFIG}\n[web]\norigin = \"https://mail.example.org/account\"\n"
    ));
    env.add_user(ALICE, ALICE_PW);
    enable_totp(&env, ALICE);
    let r = env.login(ALICE, ALICE_PW).service("imap").run();
    assert_refused_with_hint(&r);
    assert!(
        r.field("reason")
            .is_some_and(|t| t.contains("at https://mail.example.org/account/app-passwords")),
        "{r:?}"
    );
    // Postfix never sees a hint, page or not.
    assert_auth_failed(
        &env.login(ALICE, ALICE_PW)
            .service("smtp")
            .without_session()
            .run(),
    );
}
