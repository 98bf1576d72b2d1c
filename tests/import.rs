//! Bringing existing users in: `mailpass import passwd-file`, `import shadow`, `totp import`, and how
//! `user list` / `user show` report the imported hashes. Hashes are made at test time by Dovecot's own
//! `doveadm pw`; what was stored is read from the database itself (an imported user cannot log in until the
//! legacy verifier is merged), what was said from the command's output.

mod common;

use std::process::Output;

use common::{Env, doveadm_hash, json};
use serde_json::Value;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// Every user's stored hash, by name, straight from the database.
fn stored(env: &Env) -> Vec<(String, String)> {
    if !env.db.exists() {
        return vec![];
    }
    let db = rusqlite::Connection::open(&env.db).expect("open db");
    let mut stmt = db
        .prepare("SELECT name, password_hash FROM users ORDER BY name")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn hash_of(env: &Env, user: &str) -> Option<String> {
    stored(env)
        .into_iter()
        .find(|(n, _)| n == user)
        .map(|(_, h)| h)
}

fn write(env: &Env, name: &str, text: &str) -> String {
    let path = env.path(name);
    std::fs::write(&path, text).expect("write source");
    path.to_str().expect("utf-8 path").to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails if any of the hashes or passwords (or the data part of a `{SCHEME}data` hash) is in `text`.
fn assert_no_secrets(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        let data = s.rsplit('}').next().unwrap_or(s);
        assert!(
            !text.contains(s) && !text.contains(data),
            "{what}: a secret appears in the output: {text}"
        );
    }
}

/// The `lines` of an import's JSON report as (line, user, outcome, reason).
fn outcomes(report: &Value) -> Vec<(u64, Option<String>, String, Option<String>)> {
    report["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("lines must be an array: {report}"))
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().expect("line number"),
                l["user"].as_str().map(str::to_string),
                l["outcome"].as_str().expect("outcome").to_string(),
                l["reason"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn entry(
    line: u64,
    user: &str,
    outcome: &str,
    reason: Option<&str>,
) -> (u64, Option<String>, String, Option<String>) {
    (
        line,
        Some(user.to_string()),
        outcome.to_string(),
        reason.map(str::to_string),
    )
}

// ---------------------------------------------------------------------------------------------------------
// passwd-file
// ---------------------------------------------------------------------------------------------------------

#[test]
fn a_passwd_file_of_several_schemes_is_stored_as_dovecot_wrote_it() {
    let env = Env::new();
    let schemes = [
        "SHA512-CRYPT",
        "SHA256-CRYPT",
        "MD5-CRYPT",
        "BLF-CRYPT",
        "SSHA256",
        "SSHA512",
        "SHA256.HEX",
        "PBKDF2",
        "CRYPT",
    ];
    let mut text = String::from("# exported from /etc/dovecot/users\n\n");
    let mut expected = Vec::new();
    for (i, scheme) in schemes.iter().enumerate() {
        let user = format!("user{i}@example.org");
        let hash = doveadm_hash(scheme, &format!("pw-{i}"));
        text.push_str(&format!(
            "{user}:{hash}:5000:5000::/var/vmail/example.org/user{i}::userdb_quota_rule=*:storage=1G\n"
        ));
        expected.push((user, hash));
    }
    let argon = doveadm_hash("ARGON2ID", "pw-argon");
    text.push_str(&format!("argon@example.org:{argon}\n"));
    let file = write(&env, "users", &text);

    let out = env.admin(&["import", "passwd-file", &file], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Dovecot's argon2 hash is a PHC string under a prefix: stored bare, as mailpass's own are.
    expected.push((
        "argon@example.org".into(),
        argon
            .strip_prefix("{ARGON2ID}")
            .expect("prefix")
            .to_string(),
    ));
    expected.sort();
    assert_eq!(stored(&env), expected);
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    let hashes: Vec<&str> = expected.iter().map(|(_, h)| h.as_str()).collect();
    assert_no_secrets(&printed, &hashes, "import report");
    assert!(
        stdout(&out).contains("10 imported, 0 updated, 0 skipped, 0 refused"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("line 3: user0@example.org: imported (SHA512-CRYPT)"));
}

/// A file with one good user and every kind of bad line, as (text, good hash, refused secrets).
fn mixed_file() -> (String, String, Vec<String>) {
    let good = doveadm_hash("SHA512-CRYPT", "alice-pw");
    let cram = doveadm_hash("CRAM-MD5", "carol-pw");
    let bare = doveadm_hash("SHA256-CRYPT", "dave-pw");
    let bare = bare
        .strip_prefix("{SHA256-CRYPT}")
        .expect("prefix")
        .to_string();
    let text = format!(
        "{ALICE}:{good}\n\
         carol@example.org:{cram}\n\
         dave@example.org:{bare}\n\
         erin@example.org:{{SHA512-CRYPT}}not-a-crypt-hash\n\
         Frank@example.org:{{PLAIN}}frank-1\n\
         frank@example.org:{{PLAIN}}frank-2\n\
         only-a-password-here\n"
    );
    (
        text,
        good,
        vec![
            cram,
            bare,
            "not-a-crypt-hash".into(),
            "frank-1".into(),
            "frank-2".into(),
        ],
    )
}

#[test]
fn one_refused_line_means_nothing_is_imported_and_exit_1() {
    let env = Env::new();
    let (text, good, secrets) = mixed_file();
    let file = write(&env, "users", &text);
    let out = env.admin(&["import", "passwd-file", &file, "--json"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stored(&env), vec![], "the import is one transaction");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(err.contains("--keep-going"), "{err}");

    let report = json(&stdout(&out));
    assert_eq!(
        outcomes(&report),
        vec![
            entry(1, ALICE, "imported", None),
            entry(2, "carol@example.org", "refused", Some("unknown_scheme")),
            entry(3, "dave@example.org", "refused", Some("no_scheme")),
            entry(4, "erin@example.org", "refused", Some("malformed_hash")),
            entry(5, "frank@example.org", "refused", Some("duplicate")),
            entry(6, "frank@example.org", "refused", Some("duplicate")),
            (7, None, "refused".into(), Some("malformed_line".into())),
        ]
    );
    assert!(
        report["lines"][1]["message"]
            .as_str()
            .expect("message")
            .contains("CRAM-MD5")
    );
    assert_eq!(report["summary"]["written"], false);
    let mut all: Vec<&str> = secrets.iter().map(String::as_str).collect();
    all.push(&good);
    all.push("only-a-password-here");
    assert_no_secrets(&format!("{}{}", stdout(&out), err), &all, "refused import");
}

#[test]
fn keep_going_imports_the_good_lines_and_reports_the_rest() {
    let env = Env::new();
    let (text, good, _) = mixed_file();
    let file = write(&env, "users", &text);
    let out = env.admin(&["import", "passwd-file", &file, "--keep-going"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stored(&env), vec![(ALICE.to_string(), good)]);
    let report = stdout(&out);
    assert!(
        report.contains("line 2: carol@example.org: refused"),
        "{report}"
    );
    assert!(report.contains("line 7: -: refused"), "{report}");
    assert!(
        report.contains("1 imported, 0 updated, 0 skipped, 6 refused; written"),
        "{report}"
    );
}

#[test]
fn existing_users_are_skipped_unless_update_replaces_their_hash() {
    let env = Env::new();
    env.add_user(ALICE, "argon-pw");
    let argon = hash_of(&env, ALICE).expect("alice");
    let new = doveadm_hash("SHA512-CRYPT", "old-system-pw");
    let file = write(&env, "users", &format!("{ALICE}:{new}\n{BOB}:{new}\n"));

    let out = env.admin(&["import", "passwd-file", &file, "--json"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "skipped is no error: {}",
        stderr(&out)
    );
    assert_eq!(
        outcomes(&json(&stdout(&out))),
        vec![
            entry(1, ALICE, "skipped", Some("exists")),
            entry(2, BOB, "imported", None)
        ]
    );
    assert_eq!(
        hash_of(&env, ALICE),
        Some(argon),
        "untouched without --update"
    );

    let out = env.admin(&["import", "passwd-file", &file, "--update", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        outcomes(&json(&stdout(&out))),
        vec![
            entry(1, ALICE, "updated", None),
            entry(2, BOB, "skipped", Some("unchanged"))
        ]
    );
    assert_eq!(hash_of(&env, ALICE), Some(new));
}

#[test]
fn dry_run_reports_what_would_happen_and_writes_nothing() {
    let env = Env::new();
    env.add_user(BOB, "pw");
    let before = stored(&env);
    let hash = doveadm_hash("SSHA512", "pw");
    let file = write(&env, "users", &format!("{ALICE}:{hash}\n{BOB}:{hash}\n"));
    let out = env.admin(
        &[
            "import",
            "passwd-file",
            &file,
            "--dry-run",
            "--update",
            "--json",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&stdout(&out));
    assert_eq!(
        outcomes(&report),
        vec![
            entry(1, ALICE, "imported", None),
            entry(2, BOB, "updated", None)
        ]
    );
    assert_eq!(report["summary"]["written"], false);
    assert_eq!(report["summary"]["dry_run"], true);
    assert_eq!(stored(&env), before);

    let text = env.ok(&["import", "passwd-file", &file, "--dry-run"], "");
    assert!(text.contains("nothing written (dry run)"), "{text}");
}

#[test]
fn a_dry_run_with_a_refused_line_fails_as_the_import_would() {
    let env = Env::new();
    let file = write(&env, "users", &format!("{ALICE}:{{CRAM-MD5}}abc\n"));
    let out = env.admin(&["import", "passwd-file", &file, "--dry-run"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("would be imported"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn default_scheme_names_the_scheme_of_hashes_without_prefix() {
    let env = Env::new();
    let hash = doveadm_hash("SHA512-CRYPT", "pw");
    let bare = hash.strip_prefix("{SHA512-CRYPT}").expect("prefix");
    let file = write(&env, "users", &format!("{ALICE}:{bare}\n"));
    let out = env.admin(&["import", "passwd-file", &file], "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused without --default-scheme"
    );
    assert!(
        stdout(&out).contains("--default-scheme"),
        "{}",
        stdout(&out)
    );

    env.ok(
        &[
            "import",
            "passwd-file",
            &file,
            "--default-scheme",
            "sha512-crypt",
        ],
        "",
    );
    assert_eq!(hash_of(&env, ALICE), Some(hash));

    let out = env.admin(
        &[
            "import",
            "passwd-file",
            &file,
            "--default-scheme",
            "CRAM-MD5",
        ],
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown scheme is a usage error"
    );
}

#[test]
fn two_columns_on_stdin_as_an_sql_client_prints_them() {
    let env = Env::new();
    let a = doveadm_hash("SHA512-CRYPT", "a");
    let b = doveadm_hash("BLF-CRYPT", "b");
    // `mysql -N -B -e 'SELECT username, password FROM mailbox'`
    let rows = format!("Alice@Example.org\t{a}\n{BOB}\t{b}\n");
    let out = env.admin(&["import", "passwd-file", "-", "--json"], &rows);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stored(&env),
        vec![(ALICE.to_string(), a), (BOB.to_string(), b)],
        "names lowercased as `user add` does"
    );
    let three = env.admin(&["import", "passwd-file", "-"], "carol\t{PLAIN}x\textra\n");
    assert_eq!(three.status.code(), Some(1));
    assert!(
        stdout(&three).contains("more than two"),
        "{}",
        stdout(&three)
    );
}

#[test]
fn a_cleartext_source_is_imported_with_a_warning_that_never_shows_the_password() {
    let env = Env::new();
    let file = write(&env, "users", &format!("{ALICE}:{{PLAIN}}s3cret-plain\n"));
    let out = env.admin(&["import", "passwd-file", &file], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("clear text"), "{}", stderr(&out));
    assert_no_secrets(
        &format!("{}{}", stdout(&out), stderr(&out)),
        &["s3cret-plain"],
        "cleartext import",
    );
    assert_eq!(hash_of(&env, ALICE).as_deref(), Some("{PLAIN}s3cret-plain"));
}

#[test]
fn a_missing_source_file_is_one_error_line_and_exit_1() {
    let env = Env::new();
    let out = env.admin(&["import", "passwd-file", "/nonexistent/users"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------------------
// /etc/shadow
// ---------------------------------------------------------------------------------------------------------

fn days_today() -> u64 {
    common::now() / 86_400
}

#[test]
fn shadow_takes_usable_hashes_of_real_users_as_crypt() {
    let env = Env::new();
    let alice = doveadm_hash("SHA512-CRYPT", "a");
    let alice = alice
        .strip_prefix("{SHA512-CRYPT}")
        .expect("prefix")
        .to_string();
    let carol = doveadm_hash("SHA256-CRYPT", "c");
    let carol = carol
        .strip_prefix("{SHA256-CRYPT}")
        .expect("prefix")
        .to_string();
    let today = days_today();
    let shadow = format!(
        "root:{alice}:19000:0:99999:7:::\n\
         daemon:*:19000:0:99999:7:::\n\
         alice:{alice}:19000:0:99999:7:::\n\
         bob:!{alice}:19000:0:99999:7:::\n\
         carol:{carol}:19000:0:99999:7::{future}:\n\
         dave:{carol}:19000:0:99999:7::{past}:\n\
         erin::19000:0:99999:7:::\n\
         ghost:{carol}:19000:0:99999:7:::\n",
        future = today + 30,
        past = today - 1
    );
    let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                  daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                  alice:x:1000:1000::/home/alice:/bin/bash\n\
                  bob:x:1001:1001::/home/bob:/bin/bash\n\
                  carol:x:1002:1002::/home/carol:/bin/bash\n\
                  dave:x:1003:1003::/home/dave:/bin/bash\n\
                  erin:x:1004:1004::/home/erin:/bin/bash\n";
    let shadow_file = write(&env, "shadow", &shadow);
    let passwd_file = write(&env, "passwd", passwd);
    let out = env.admin(
        &[
            "import",
            "shadow",
            &shadow_file,
            "--passwd",
            &passwd_file,
            "--min-uid",
            "1000",
            "--domain",
            "Example.org",
            "--json",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&stdout(&out));
    assert_eq!(
        outcomes(&report),
        vec![
            entry(1, "root@example.org", "skipped", Some("below_min_uid")),
            entry(2, "daemon@example.org", "skipped", Some("locked")),
            entry(3, ALICE, "imported", None),
            entry(4, BOB, "skipped", Some("locked")),
            entry(5, "carol@example.org", "imported", None),
            entry(6, "dave@example.org", "skipped", Some("expired")),
            entry(7, "erin@example.org", "skipped", Some("no_password")),
            entry(8, "ghost@example.org", "skipped", Some("no_uid")),
        ]
    );
    assert_eq!(report["lines"][2]["scheme"], "CRYPT");
    assert_eq!(
        stored(&env),
        vec![
            (ALICE.to_string(), format!("{{CRYPT}}{alice}")),
            ("carol@example.org".to_string(), format!("{{CRYPT}}{carol}")),
        ]
    );
    assert_no_secrets(&stdout(&out), &[&alice, &carol], "shadow report");
}

#[test]
fn shadow_without_min_uid_needs_no_passwd_file_and_keeps_plain_names() {
    let env = Env::new();
    let hash = doveadm_hash("SHA512-CRYPT", "a");
    let hash = hash
        .strip_prefix("{SHA512-CRYPT}")
        .expect("prefix")
        .to_string();
    let shadow_file = write(
        &env,
        "shadow",
        &format!("alice:{hash}:19000:0:99999:7:::\n"),
    );
    env.ok(
        &[
            "import",
            "shadow",
            &shadow_file,
            "--passwd",
            "/nonexistent/passwd",
        ],
        "",
    );
    assert_eq!(hash_of(&env, "alice"), Some(format!("{{CRYPT}}{hash}")));
    // Again: the user exists now, so the line is skipped, and --dry-run --update would update nothing.
    let out = env.ok(
        &["import", "shadow", &shadow_file, "--update", "--dry-run"],
        "",
    );
    assert!(out.contains("line 1: alice: skipped"), "{out}");
}

#[test]
fn a_malformed_shadow_line_stops_the_import_unless_keep_going() {
    let env = Env::new();
    let hash = doveadm_hash("SHA512-CRYPT", "a");
    let hash = hash
        .strip_prefix("{SHA512-CRYPT}")
        .expect("prefix")
        .to_string();
    let shadow_file = write(
        &env,
        "shadow",
        &format!("alice:{hash}:19000:0:99999:7:::\nbob:garbage:19000:0:99999:7:::\n"),
    );
    let out = env.admin(&["import", "shadow", &shadow_file], "");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stored(&env), vec![]);
    env.ok(&["import", "shadow", &shadow_file, "--keep-going"], "");
    assert_eq!(stored(&env).len(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// totp import
// ---------------------------------------------------------------------------------------------------------

fn base32(bytes: &[u8]) -> String {
    totp_rs::Secret::from(bytes).to_base32()
}

#[test]
fn an_imported_totp_secret_is_active_at_once_and_its_codes_log_in() {
    let env = Env::new();
    env.add_user(ALICE, "main-pw");
    let secret = base32(&[0x42; 20]);
    // As a person pastes it: grouped, lower case, padded.
    let pasted: String = secret
        .to_lowercase()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = env.admin(&["totp", "import", ALICE], &format!("{pasted}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secrets(
        &format!("{}{}", stdout(&out), stderr(&out)),
        &[&secret, &pasted],
        "totp import",
    );
    let status = json(&env.ok(&["totp", "status", ALICE, "--json"], ""));
    assert_eq!(status["state"], "active", "{status}");

    let code = common::totp_code(&secret, common::now());
    let r = env.login(ALICE, &format!("main-pw{code}")).run();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!r.has_flag("nologin"), "the code logs in: {r:?}");
}

#[test]
fn an_80_bit_secret_is_refused_with_its_size() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    let out = env.admin(&["totp", "import", ALICE], &base32(&[7; 10]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("80 bits") && err.contains("128"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let status = json(&env.ok(&["totp", "status", ALICE, "--json"], ""));
    assert_eq!(status["state"], "none");
}

#[test]
fn totp_import_refuses_non_base32_and_empty_input() {
    let env = Env::new();
    env.add_user(ALICE, "pw");
    for input in ["not base32 at all!\n", "\n", ""] {
        let out = env.admin(&["totp", "import", ALICE], input);
        assert_eq!(out.status.code(), Some(1), "{input:?}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    let out = env.admin(&["totp", "import", "nobody@example.org"], &base32(&[1; 20]));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_active_totp_is_replaced_only_with_replace() {
    let env = Env::new();
    env.add_user(ALICE, "main-pw");
    let first = base32(&[1; 20]);
    let second = base32(&[2; 20]);
    env.ok(&["totp", "import", ALICE], &first);
    let out = env.admin(&["totp", "import", ALICE], &second);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--replace"), "{}", stderr(&out));
    env.ok(&["totp", "import", ALICE, "--replace"], &second);
    let code = common::totp_code(&second, common::now());
    let r = env.login(ALICE, &format!("main-pw{code}")).run();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        !r.has_flag("nologin"),
        "the new secret's code logs in: {r:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// user list / user show
// ---------------------------------------------------------------------------------------------------------

#[test]
fn user_list_and_show_name_each_password_scheme_and_the_migration_progress() {
    let env = Env::new();
    env.add_user("zed@example.org", "pw");
    let list = env.admin(&["user", "list"], "");
    assert!(
        !stderr(&list).contains("imported"),
        "no summary while every hash is argon2id: {}",
        stderr(&list)
    );
    let file = write(
        &env,
        "users",
        &format!(
            "{ALICE}:{}\n{BOB}:{}\ncarol@example.org:{}\n",
            doveadm_hash("SHA512-CRYPT", "a"),
            doveadm_hash("SHA512-CRYPT", "b"),
            doveadm_hash("BLF-CRYPT", "c")
        ),
    );
    env.ok(&["import", "passwd-file", &file], "");

    let users = json(&env.ok(&["user", "list", "--json"], ""));
    let schemes: Vec<(&str, &str)> = users
        .as_array()
        .expect("array")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().expect("name"),
                u["password_scheme"].as_str().expect("password_scheme"),
            )
        })
        .collect();
    assert_eq!(
        schemes,
        vec![
            (ALICE, "SHA512-CRYPT"),
            (BOB, "SHA512-CRYPT"),
            ("carol@example.org", "BLF-CRYPT"),
            ("zed@example.org", "ARGON2ID"),
        ]
    );
    let list = env.admin(&["user", "list"], "");
    assert!(
        stdout(&list).contains("scheme=SHA512-CRYPT"),
        "{}",
        stdout(&list)
    );
    assert!(
        stderr(&list)
            .contains("3 users still have imported hashes (SHA512-CRYPT: 2, BLF-CRYPT: 1)"),
        "{}",
        stderr(&list)
    );

    let show = json(&env.ok(&["user", "show", ALICE, "--json"], ""));
    assert_eq!(show["password_scheme"], "SHA512-CRYPT", "{show}");
    let show = env.ok(&["user", "show", "zed@example.org"], "");
    assert!(show.contains("ARGON2ID"), "{show}");
    let show = env.ok(&["user", "show", ALICE], "");
    assert!(show.contains("SHA512-CRYPT (imported"), "{show}");
}
