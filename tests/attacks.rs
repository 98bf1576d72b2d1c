//! What an attacker can lean on, each tried as an attacker would: a copy of the database, a storm of logins,
//! a stolen main password and a code guesser. The built binary runs as Dovecot runs it.

mod common;

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::forensics::{
    FINGERPRINT_V2, argon2_output, db, failure_rows, keyed, keyed_full, tag_key,
};
use common::{Env, Reply, TEST_CONFIG, decision, json, now, totp_code};

const ALICE: &str = "alice@example.org";
const ALICE_PW: &str = "correct horse battery staple";

/// The test config with one argon2 slot for the whole machine and a 2 s time limit (a slot is waited for
/// two thirds of it), plus `extra` sections.
fn one_slot_config(extra: &str) -> String {
    let config = TEST_CONFIG.replace("parallelism = 1\n", "parallelism = 1\nmax_concurrent = 1\n");
    format!("{config}\n[auth]\ntimeout = 2\n{extra}")
}

fn logged(r: &Reply) -> (String, String) {
    let log = decision(r);
    (
        log.get("result").cloned().unwrap_or_default(),
        log.get("reason").cloned().unwrap_or_default(),
    )
}

fn assert_overloaded(r: &Reply) {
    assert_eq!(r.code, Some(111), "a temporary failure: {r:?}");
    assert_eq!(logged(r), ("tempfail".into(), "overloaded".into()), "{r:?}");
}

fn enable_totp(env: &Env, user: &str) -> String {
    let v = json(&env.ok(&["totp", "enroll", user, "--json"], ""));
    let secret = v["secret"].as_str().expect("secret").to_string();
    env.ok(&["totp", "confirm", user, &totp_code(&secret, now())], "");
    secret
}

/// Holds argon2 slot `n` of the database, as a process in the middle of a verification would.
fn hold_slot(env: &Env, n: usize) -> File {
    let db = fs::canonicalize(&env.db).expect("db path");
    let path = PathBuf::from(format!("{}.argon2.{n}", db.display()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("slot file");
    file.lock().expect("lock the slot");
    file
}

const FINGERPRINT_V1: &[u8] = b"mailpass failed-secret v1";

// ---------------------------------------------------------------------------------------------------------------
// A copy of the database
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_stale_main_password_in_the_failure_log_costs_a_thief_an_argon2_run_per_guess() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    enable_totp(&env, ALICE);
    // Alice's phone still sends her main password alone, three times.
    for _ in 0..3 {
        let r = env.login(ALICE, ALICE_PW).ip("192.0.2.80").run();
        assert_eq!(logged(&r).1, "second_factor_required", "{r:?}");
    }
    let rows = failure_rows(&env);
    assert_eq!(rows.len(), 3);
    let stored = rows[0].1.clone().expect("a fingerprint");

    // The thief has the whole database: the key, the row and the hash. A keyed hash of the password, as
    // fingerprints used to be made, does not reproduce the stored value, under either label.
    let key = tag_key(&env);
    let secret = ALICE_PW.as_bytes();
    let user = ALICE.as_bytes();
    for label in [FINGERPRINT_V1, FINGERPRINT_V2] {
        assert_ne!(keyed(&key, label, &[user, secret]), stored);
    }
    // It takes the argon2 computation under the user's salt and parameters, as the stored hash does.
    let phc: String = db(&env)
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .expect("hash");
    let out = argon2_output(&phc, secret, None);
    assert_eq!(keyed(&key, FINGERPRINT_V2, &[user, &out]), stored);

    // Identical retries still collapse: one fingerprint, counted once (this reason never counts at all).
    assert!(rows.iter().all(|r| r.1.as_deref() == Some(&stored[..])));
    assert!(rows.iter().all(|r| !r.2));
}

#[test]
fn identical_wrong_passwords_still_count_once() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    for _ in 0..3 {
        env.login(ALICE, "an old password").ip("192.0.2.81").run();
    }
    let counted: Vec<bool> = failure_rows(&env).iter().map(|r| r.2).collect();
    assert_eq!(counted, [true, false, false]);
}

#[test]
fn an_unknown_users_failure_costs_an_argon2_run_at_a_real_users_parameters() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    // The admin raises the parameters; Alice's hash keeps the old ones until she logs in.
    fs::write(
        &env.config,
        TEST_CONFIG.replace("memory_kib = 1024", "memory_kib = 2048"),
    )
    .expect("write config");
    let nobody = "nobody@example.org";
    let r = env.login(nobody, "a guess").ip("192.0.2.82").run();
    assert_eq!(logged(&r).1, "unknown_user", "{r:?}");

    // The dummy verification ran at Alice's stored parameters (what refusing a real user costs), not the
    // configured ones, under a salt of its own for the name.
    let key = tag_key(&env);
    let salt = &keyed_full(&key, b"mailpass dummy-salt v1", &[nobody.as_bytes()])[..16];
    let alice_phc: String = db(&env)
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .expect("hash");
    assert!(alice_phc.contains("m=1024,"));
    let stored = failure_rows(&env)[0].1.clone().expect("fingerprint");
    let at_alices = argon2_output(&alice_phc, b"a guess", Some(salt));
    assert_eq!(
        keyed(&key, FINGERPRINT_V2, &[nobody.as_bytes(), &at_alices]),
        stored
    );
    let configured = alice_phc.replace("m=1024,", "m=2048,");
    let at_configured = argon2_output(&configured, b"a guess", Some(salt));
    assert_ne!(
        keyed(&key, FINGERPRINT_V2, &[nobody.as_bytes(), &at_configured]),
        stored
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Storms: the argon2 slots
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn an_accepted_app_password_and_a_banned_address_never_wait_for_argon2() {
    let env = Env::with_config(&one_slot_config(""));
    env.add_user(ALICE, ALICE_PW);
    let app = env.add_app_password(ALICE, "Phone", &[]);
    let revoked = env.add_app_password(ALICE, "Old phone", &[]);
    env.ok(&["app-password", "revoke", ALICE, "Old phone"], "");
    env.ok(&["ban", "add", "198.51.100.9"], "");
    let _busy = hold_slot(&env, 0);

    // No argon2 slot is free, and these need none.
    let r = env.login(ALICE, &app).run();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(logged(&r), ("ok".into(), "app_password".into()));
    let r = env.login(ALICE, ALICE_PW).ip("198.51.100.9").run();
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(logged(&r).1, "banned");

    // Everything that hashes waits, and then answers "try again later": the main password, and a revoked
    // app password, which costs a verification like any refusal so that its speed tells nothing.
    assert_overloaded(&env.login(ALICE, ALICE_PW).run());
    assert_overloaded(&env.login(ALICE, &revoked).run());
    assert_overloaded(&env.login("nobody@example.org", "x").run());
}

#[test]
fn logins_cut_off_by_load_are_recorded_and_a_spray_ends_in_a_ban() {
    let env = Env::with_config(&one_slot_config("[bans]\nthreshold = 3\n"));
    env.add_user(ALICE, ALICE_PW);
    let _busy = hold_slot(&env, 0);
    let ip = "203.0.113.40";
    // A mail app retrying through the storm counts once, as an identical retry does...
    for _ in 0..3 {
        assert_overloaded(&env.login(ALICE, ALICE_PW).ip(ip).run());
    }
    // ...while a spray over users counts user by user.
    for user in ["bob@example.org", "carol@example.org"] {
        assert_overloaded(&env.login(user, "spray").ip(ip).run());
    }
    let rows = failure_rows(&env);
    assert_eq!(rows.len(), 5, "every attempt is recorded: {rows:?}");
    assert!(rows.iter().all(|r| r.0 == "overloaded"), "{rows:?}");
    let counted: Vec<bool> = rows.iter().map(|r| r.2).collect();
    assert_eq!(counted, [true, false, false, true, true]);
    // The third counted one started a ban: the next attempt is refused before it could even wait.
    let r = env.login(ALICE, ALICE_PW).ip(ip).run();
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(logged(&r).1, "banned", "{r:?}");
}

#[test]
fn a_slot_held_by_a_login_killed_with_sigkill_is_free_at_once() {
    // An expensive configuration: with no users yet, an unknown user's dummy verification runs at it and
    // takes seconds.
    let slow = one_slot_config("")
        .replace("memory_kib = 1024", "memory_kib = 65536")
        .replace("iterations = 1", "iterations = 200")
        .replace("timeout = 2", "timeout = 60");
    let env = Env::with_config(&slow);
    env.ok(&["user", "list"], "");
    let mut holder = env.login("nobody@example.org", "guess").spawn();

    // Wait until it holds the only slot (or has ended, which would make the test meaningless).
    let db = fs::canonicalize(&env.db).expect("db path");
    let slot = PathBuf::from(format!("{}.argon2.0", db.display()));
    let start = Instant::now();
    loop {
        if let Ok(file) = File::open(&slot)
            && file.try_lock().is_err()
        {
            break;
        }
        assert!(
            holder.0.try_wait().expect("wait").is_none(),
            "the slow login ended before it was seen holding the slot"
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never took the slot"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.0.kill().expect("kill -9");
    holder.0.wait().expect("reap");

    // The kernel dropped its lock: the next login gets the slot at once, not after a wait.
    fs::write(&env.config, one_slot_config("")).expect("fast config");
    let r = env.login("nobody@example.org", "guess").run();
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(logged(&r), ("fail".into(), "unknown_user".into()));
}

// ---------------------------------------------------------------------------------------------------------------
// Guessing codes with a stolen main password
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn wrong_codes_are_limited_per_account_whatever_the_address() {
    let env = Env::with_config(&format!(
        "{TEST_CONFIG}\n[totp]\nmax_wrong_codes = 3\nwrong_codes_window = 2\n"
    ));
    env.add_user(ALICE, ALICE_PW);
    let secret = enable_totp(&env, ALICE);
    let recovery = env.ok(&["totp", "recovery-codes", ALICE], "");
    let recovery = recovery.lines().next().expect("a code").trim().to_string();
    let app = env.add_app_password(ALICE, "Phone", &[]);
    let wrong = || {
        let current = totp_code(&secret, now());
        if current == "000000" {
            "000001"
        } else {
            "000000"
        }
    };

    // The guesser has the main password and spreads codes over addresses, so no address gets banned.
    for n in 0..3 {
        let guess = wrong();
        let r = env
            .login(ALICE, &format!("{ALICE_PW}{guess}"))
            .ip(&format!("192.0.2.{}", 100 + n))
            .run();
        assert_eq!(logged(&r).1, "totp_wrong", "{r:?}");
    }
    // Now even the right code is not looked at, from any address.
    // (The code of the next step: enrolment used up the current one.)
    let right = totp_code(&secret, now() + 30);
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{right}"))
        .ip("192.0.2.120")
        .run();
    assert_eq!(logged(&r).1, "totp_locked", "{r:?}");
    assert!(
        r.code == Some(1) || r.fd4.contains("nologin"),
        "a refusal: {r:?}"
    );

    // Alice is not locked out of what needs no code.
    let r = env.login(ALICE, &app).ip("192.0.2.121").run();
    assert_eq!(logged(&r), ("ok".into(), "app_password".into()), "{r:?}");
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{recovery}"))
        .ip("192.0.2.122")
        .run();
    assert_eq!(logged(&r), ("ok".into(), "recovery_code".into()), "{r:?}");

    // Once the window has passed, a right code works again (the refused one was never used up).
    std::thread::sleep(Duration::from_millis(3100));
    let fresh = totp_code(&secret, now() + 30);
    let r = env
        .login(ALICE, &format!("{ALICE_PW}{fresh}"))
        .ip("192.0.2.123")
        .run();
    assert_eq!(
        logged(&r),
        ("ok".into(), "main_password_totp".into()),
        "{r:?}"
    );
}

#[test]
fn concurrent_guesses_get_no_more_code_checks_than_the_limit() {
    let env = Env::with_config(&format!(
        "{TEST_CONFIG}\n[totp]\nmax_wrong_codes = 3\nwrong_codes_window = 3600\n"
    ));
    env.add_user(ALICE, ALICE_PW);
    let secret = enable_totp(&env, ALICE);
    let valid: Vec<String> = (0..=3)
        .map(|k| totp_code(&secret, now() - 30 + 30 * k))
        .collect();
    let guesses: Vec<String> = (0..8)
        .map(|n| format!("{:06}", 111_111 * (n + 1) % 1_000_000))
        .filter(|g| !valid.contains(g))
        .collect();
    let reasons: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = guesses
            .iter()
            .enumerate()
            .map(|(n, guess)| {
                let env = &env;
                scope.spawn(move || {
                    let r = env
                        .login(ALICE, &format!("{ALICE_PW}{guess}"))
                        .ip(&format!("192.0.2.{}", 130 + n))
                        .run();
                    logged(&r).1
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    let checked = reasons.iter().filter(|r| *r == "totp_wrong").count();
    let locked = reasons.iter().filter(|r| *r == "totp_locked").count();
    assert_eq!((checked, locked), (3, guesses.len() - 3), "{reasons:?}");
}

#[test]
fn a_right_code_sent_again_by_a_mail_app_uses_up_no_checks() {
    let env = Env::with_config(&format!(
        "{TEST_CONFIG}\n[totp]\nmax_wrong_codes = 2\nwrong_codes_window = 3600\n"
    ));
    env.add_user(ALICE, ALICE_PW);
    let secret = enable_totp(&env, ALICE);
    // A mail app that opens several connections with the same saved password + code replays it: refused,
    // but it proves the code was right, so it costs nothing of the allowance for wrong codes.
    let with_code = format!("{ALICE_PW}{}", totp_code(&secret, now() + 30));
    let first = env.login(ALICE, &with_code).run();
    assert_eq!(logged(&first), ("ok".into(), "main_password_totp".into()));
    for _ in 0..4 {
        assert_eq!(
            logged(&env.login(ALICE, &with_code).run()).1,
            "totp_replayed"
        );
    }
    let guess = format!(
        "{ALICE_PW}{}",
        if totp_code(&secret, now()) == "000000" {
            "000001"
        } else {
            "000000"
        }
    );
    assert_eq!(logged(&env.login(ALICE, &guess).run()).1, "totp_wrong");
}

// ---------------------------------------------------------------------------------------------------------------
// Another process of the Dovecot auth user
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_login_that_is_being_traced_never_reads_the_password() {
    use command_fds::{CommandFdExt, FdMapping};
    use std::os::fd::OwnedFd;

    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    let request = env.path("request");
    fs::write(&request, format!("{ALICE}\0{ALICE_PW}\0\0")).expect("request");
    // strace attaches from the first instruction, as a tracer that got in before the protection would.
    let cmd = env.command();
    let program = cmd.get_program().to_owned();
    let mut traced = std::process::Command::new("strace");
    traced
        .args(["-o", "/dev/null"])
        .arg(program)
        .arg("checkpassword")
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("SERVICE", "imap")
        .env("TCPREMOTEIP", "192.0.2.90")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .fd_mappings(vec![
            FdMapping {
                parent_fd: OwnedFd::from(File::open(&request).expect("open request")),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: OwnedFd::from(
                    OpenOptions::new()
                        .write(true)
                        .open("/dev/null")
                        .expect("/dev/null"),
                ),
                child_fd: 4,
            },
        ])
        .expect("fd mappings");
    let out = traced
        .output()
        .expect("strace (scripts/install-deps.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{stderr}");
    assert!(stderr.contains("reason=traced"), "{stderr}");
    // Untraced, the same request logs in.
    let r = env.login(ALICE, ALICE_PW).run();
    assert_eq!(logged(&r), ("ok".into(), "main_password".into()), "{r:?}");
}

#[test]
fn an_unknown_user_never_imitates_an_imported_hash_so_its_fingerprint_still_costs_argon2() {
    let env = Env::new();
    // A hash at the configured parameters to compare with, then a database whose only user has an imported
    // fast hash (as in the middle of a migration).
    env.add_user("template@example.org", "x");
    let template: String = db(&env)
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .expect("hash");
    env.ok(&["user", "del", "template@example.org"], "");
    env.ok(
        &["import", "passwd-file", "-"],
        &format!("{ALICE}:{}\n", common::doveadm_hash("SSHA256", ALICE_PW)),
    );
    let nobody = "nobody@example.org";
    let r = env.login(nobody, ALICE_PW).ip("192.0.2.83").run();
    assert_eq!(logged(&r).1, "unknown_user", "{r:?}");

    let key = tag_key(&env);
    let salt = &keyed_full(&key, b"mailpass dummy-salt v1", &[nobody.as_bytes()])[..16];
    let out = argon2_output(&template, ALICE_PW.as_bytes(), Some(salt));
    let stored = failure_rows(&env)[0].1.clone().expect("fingerprint");
    assert_eq!(
        keyed(&key, FINGERPRINT_V2, &[nobody.as_bytes(), &out]),
        stored
    );
}
