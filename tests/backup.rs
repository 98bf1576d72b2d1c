//! `mailpass backup` and `mailpass restore`, driven as an admin would, while logins go on.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{Env, decision, json};

const ALICE: &str = "alice@example.org";
const ALICE_PW: &str = "correct horse battery staple";

fn logged_reason(r: &common::Reply) -> String {
    decision(r).get("reason").cloned().unwrap_or_default()
}

/// The users and active app passwords in a database file, read with SQLite itself.
fn users_and_app_passwords(path: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the copy");
    let check: String = db
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .expect("quick_check");
    assert_eq!(check, "ok");
    let list = |sql: &str| -> Vec<String> {
        let mut stmt = db.prepare(sql).expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    (
        list("SELECT name FROM users ORDER BY name"),
        list("SELECT name FROM app_passwords WHERE revoked_at IS NULL ORDER BY name"),
    )
}

#[test]
fn a_backup_taken_while_logins_go_on_holds_every_user_and_app_password() {
    let env = Env::new();
    let users: Vec<String> = (0..5).map(|n| format!("user{n}@example.org")).collect();
    let mut apps = Vec::new();
    for user in &users {
        env.add_user(user, ALICE_PW);
        apps.push(env.add_app_password(user, "Phone", &[]));
    }
    let copy = env.path("copy.db");
    let out = std::thread::scope(|scope| {
        // Logins that write (failures, last use) the whole time the backup runs; bounded in count.
        let busy: Vec<_> = (0..3)
            .map(|t| {
                let (env, users, apps) = (&env, &users, &apps);
                scope.spawn(move || {
                    for n in 0..15 {
                        let i = (t + n) % users.len();
                        let r = env.login(&users[i], &apps[i]).run();
                        assert_eq!(r.code, Some(0), "{r:?}");
                        let r = env
                            .login(&users[i], "wrong")
                            .ip(&format!("192.0.2.{}", 10 + n))
                            .run();
                        assert_eq!(r.code, Some(1), "{r:?}");
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = env.admin(&["backup", copy.to_str().expect("path"), "--json"], "");
        for handle in busy {
            handle.join().expect("logins");
        }
        out
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["users"], 5, "{report}");
    assert_eq!(report["quick_check"], "ok");
    assert_eq!(
        fs::metadata(&copy).expect("copy").permissions().mode() & 0o777,
        0o600
    );
    let (names, app_names) = users_and_app_passwords(&copy);
    assert_eq!(names, users);
    assert_eq!(app_names.len(), 5);
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    let copy = env.path("copy.db");
    fs::write(&copy, b"precious").expect("write");
    let out = env.admin(&["backup", copy.to_str().expect("path")], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(fs::read(&copy).expect("read"), b"precious");
}

#[test]
fn restore_puts_the_copy_back_and_logins_follow_it() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    let app = env.add_app_password(ALICE, "Phone", &[]);
    env.ok(&["ban", "add", "198.51.100.7"], "");
    let copy = env.path("copy.db");
    env.ok(&["backup", copy.to_str().expect("path")], "");

    // After the copy: a new user, the app password revoked, the ban lifted.
    env.add_user("bob@example.org", ALICE_PW);
    env.ok(&["app-password", "revoke", ALICE, "Phone"], "");
    env.ok(&["ban", "remove", "198.51.100.7/32"], "");
    assert_eq!(
        logged_reason(&env.login(ALICE, &app).run()),
        "app_password_revoked"
    );

    let out = env.admin(
        &["restore", copy.to_str().expect("path"), "--yes", "--json"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (report["users"].clone(), report["bans"].clone()),
        (1.into(), 1.into())
    );

    assert_eq!(logged_reason(&env.login(ALICE, &app).run()), "app_password");
    assert_eq!(
        logged_reason(&env.login("bob@example.org", ALICE_PW).run()),
        "unknown_user"
    );
    let mode: String = rusqlite::Connection::open(&env.db)
        .and_then(|db| db.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .expect("journal mode");
    assert_eq!(
        mode, "wal",
        "the restored database is in WAL mode, as logins need"
    );
    // The ban is back, in the database and in the ban list beside it that logins read first.
    let r = env.login(ALICE, ALICE_PW).ip("198.51.100.7").run();
    assert_eq!(logged_reason(&r), "banned", "{r:?}");
}

#[test]
fn restore_wants_yes_and_refuses_what_is_not_a_mailpass_database() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    let copy = env.path("copy.db");
    env.ok(&["backup", copy.to_str().expect("path")], "");
    let out = env.admin(&["restore", copy.to_str().expect("path")], "");
    assert_eq!(out.status.code(), Some(2), "a usage error without --yes");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    let garbage = env.path("garbage.db");
    fs::write(&garbage, b"not a database at all, not even close").expect("write");
    let other = env.path("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|db| db.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 1;"))
        .expect("another SQLite file");
    for bad in [&garbage, &other] {
        let out = env.admin(&["restore", bad.to_str().expect("path"), "--yes"], "");
        assert_eq!(out.status.code(), Some(1), "{}", bad.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be restored"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing changed.
    assert_eq!(
        logged_reason(&env.login(ALICE, ALICE_PW).run()),
        "main_password"
    );
}

#[test]
fn root_backs_up_a_database_that_belongs_to_the_auth_user_into_a_root_only_directory() {
    if effective_uid() != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    // The database directory belongs to an unprivileged user (as /var/lib/mailpass belongs to dovecot).
    let dir = env.path("lib");
    fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    let db = dir.join("mailpass.db");
    let db = db.to_str().expect("path");
    env.ok(
        &["--db", db, "user", "add", ALICE, "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    );
    assert_eq!(
        fs::metadata(dir.join("mailpass.db")).expect("db").uid(),
        65534
    );
    // The copy goes where only root may write.
    let vault = env.path("vault");
    fs::create_dir(&vault).expect("vault");
    fs::set_permissions(&vault, fs::Permissions::from_mode(0o700)).expect("chmod");
    let copy = vault.join("copy.db");
    env.ok(&["--db", db, "backup", copy.to_str().expect("path")], "");
    assert_eq!(fs::metadata(&copy).expect("copy").uid(), 0);
    assert_eq!(users_and_app_passwords(&copy).0, [ALICE]);
}

#[test]
fn a_backup_is_owner_only_even_in_a_setgid_directory_the_group_may_read() {
    let env = Env::new();
    env.ok(
        &["user", "add", ALICE, "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    );
    // A directory where mailpass makes the database 0660 for the group (as in /var/lib/mailpass): a copy put
    // there is still the owner's alone.
    let shared = env.path("shared");
    fs::create_dir(&shared).expect("dir");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o2770)).expect("chmod");
    let copy = shared.join("copy.db");
    env.ok(&["backup", copy.to_str().expect("path")], "");
    assert_eq!(
        fs::metadata(&copy).expect("copy").permissions().mode() & 0o7777,
        0o600
    );
}

/// The effective uid, read from /proc (the tests have no libc of their own).
fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}
