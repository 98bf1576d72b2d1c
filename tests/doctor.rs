//! `mailpass doctor` and `mailpass config check`, driving the built binary against set-ups that are right and
//! wrong in each way the checks look for. Dovecot is never started: a private config file that `doveconf -c
//! FILE` reads is enough. As root, the stand-in for the Dovecot auth user is `nobody`, as in the end-to-end
//! tests; otherwise it is the user running the tests (and the cases that need root to set up say so and pass).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Env, TEST_CONFIG, json};
use serde_json::Value;

fn is_root() -> bool {
    id(&["-u"]) == "0"
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The Dovecot auth user of these set-ups: name, uid, gid.
fn auth_user() -> (String, u32, u32) {
    let name = if is_root() {
        "nobody".to_string()
    } else {
        id(&["-un"])
    };
    let uid = id(&["-u", &name]).parse().expect("uid");
    let gid = id(&["-g", &name]).parse().expect("gid");
    (name, uid, gid)
}

/// A set-up: mailpass's temp dir, the database in `db/` (the auth user's, 0700), a Dovecot config.
struct Setup {
    env: Env,
    dovecot: PathBuf,
}

/// How mailpass is plugged into the generated Dovecot config.
enum Passdb {
    Checkpassword,
    /// The 2.3 Lua passdb; `cache_key` in its args when given; `worker_user`: the auth-worker service's user line.
    Lua {
        cache_key: Option<&'static str>,
        worker_user: bool,
    },
    None,
}

impl Setup {
    /// A healthy database and a checkpassword passdb that runs the built mailpass on it.
    fn new() -> Setup {
        Setup::with(Passdb::Checkpassword, "")
    }

    fn with(passdb: Passdb, dovecot_extra: &str) -> Setup {
        let mut env = Env::new();
        // The auth user must reach the database through the temp dir.
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let (_, uid, gid) = auth_user();
        let dir = env.path("db");
        fs::create_dir(&dir).expect("mkdir db");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod db");
        if is_root() {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown db");
        }
        env.db = dir.join("mailpass.db");
        // Creates the database as the directory's owner, as an admin would.
        env.ok(&["user", "list"], "");
        let dovecot = env.path("dovecot.conf");
        let setup = Setup { env, dovecot };
        setup.write_dovecot(passdb, dovecot_extra);
        setup
    }

    /// A minimal Dovecot 2.3 config that `doveconf -n -c FILE` accepts, with mailpass's passdb.
    fn write_dovecot(&self, passdb: Passdb, extra: &str) {
        let dir = self.env.dir.path().display().to_string();
        let db = self.env.db.display();
        let bin = env!("CARGO_BIN_EXE_mailpass");
        let passdb = match passdb {
            Passdb::Checkpassword => format!(
                "passdb {{\n  driver = checkpassword\n  args = {bin} --db {db} --config {dir}/mailpass.toml checkpassword --log dovecot\n}}\n"
            ),
            Passdb::Lua {
                cache_key,
                worker_user,
            } => {
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("dovecot-conf/mailpass.lua");
                fs::copy(script, self.env.path("mailpass.lua")).expect("copy mailpass.lua");
                let key = cache_key.map_or(String::new(), |k| format!(" cache_key={k}"));
                let worker = if worker_user {
                    "service auth-worker {\n  user = $default_internal_user\n}\n"
                } else {
                    ""
                };
                format!(
                    "passdb {{\n  driver = lua\n  args = file={dir}/mailpass.lua blocking=yes{key}\n}}\n\
                     {worker}import_environment = MAILPASS_DB={db}\n"
                )
            }
            Passdb::None => "passdb {\n  driver = static\n  args = password=x\n}\n".to_string(),
        };
        let conf = format!(
            "base_dir = {dir}/run\nstate_dir = {dir}/state\nlog_path = {dir}/dovecot.log\n\
             default_internal_user = {user}\n{extra}\n{passdb}userdb {{\n  driver = prefetch\n}}\n",
            user = auth_user().0
        );
        fs::write(&self.dovecot, conf).expect("write dovecot.conf");
    }

    fn run(&self, args: &[&str]) -> Output {
        let dovecot = self.dovecot.display().to_string();
        let mut all = vec!["doctor", "--dovecot-config", &dovecot];
        all.extend_from_slice(args);
        self.env.admin(&all, "")
    }

    /// doctor --json: the checks and the exit code.
    fn doctor(&self) -> (Checks, i32) {
        let out = self.run(&["--json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        (Checks(json(&text)), out.status.code().unwrap_or(-1))
    }

    /// Gives the database and everything beside it to `uid`.
    fn chown_db(&self, uid: u32, gid: u32) {
        for entry in fs::read_dir(self.env.path("db"))
            .expect("read db dir")
            .flatten()
        {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).expect("chown");
        }
    }

    /// Makes the database's directory setgid and the group's (`gid`, else the auth user's own group), mode
    /// 2770 as the Debian package makes /var/lib/mailpass, and creates the database anew in it.
    fn share_with_group(&self, gid: Option<u32>) {
        let dir = self.env.path("db");
        for entry in fs::read_dir(&dir).expect("read db dir").flatten() {
            fs::remove_file(entry.path()).expect("remove");
        }
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&dir, None, Some(gid)).expect("chgrp");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o2770)).expect("chmod 2770");
        self.env.ok(&["user", "list"], "");
        let mode = fs::metadata(&self.env.db).expect("db").permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "the database in a setgid directory");
    }

    fn set_schema_version(&self, version: i64) {
        let conn = rusqlite::Connection::open(&self.env.db).expect("open");
        conn.pragma_update(None, "user_version", version)
            .expect("set user_version");
        drop(conn);
        // Opened as root, SQLite may have made files of root's beside it: back to the auth user.
        let (_, uid, gid) = auth_user();
        self.chown_db(uid, gid);
    }
}

struct Checks(Value);

impl Checks {
    fn get(&self, name: &str) -> &Value {
        self.0
            .as_array()
            .expect("a list of checks")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {:#}", self.0))
    }

    fn status(&self, name: &str) -> &str {
        self.get(name)["status"].as_str().expect("status")
    }

    fn message(&self, name: &str) -> &str {
        self.get(name)["message"].as_str().expect("message")
    }

    fn fix(&self, name: &str) -> &str {
        self.get(name)["fix"].as_str().unwrap_or_default()
    }
}

#[test]
fn a_healthy_checkpassword_setup_passes_every_check() {
    let setup = Setup::new();
    let (checks, code) = setup.doctor();
    assert_eq!(code, 0, "{:#}", checks.0);
    for check in checks.0.as_array().expect("list") {
        let name = check["name"].as_str().expect("name");
        let status = check["status"].as_str().expect("status");
        assert!(["ok", "warn", "fail", "skip"].contains(&status));
        if name != "clock.sync" {
            // Not needed here: the Lua module (checkpassword route), the page (not configured), the group (a
            // directory of one user's).
            let not_needed = ["dovecot.lua_module", "config.web", "database.group"].contains(&name);
            assert!(
                status == "ok" || not_needed && status == "skip",
                "{name}: {check:#}"
            );
        }
        assert!(!check["message"].as_str().expect("message").is_empty());
    }
    assert!(checks.message("dovecot.route").contains("checkpassword"));
    assert!(checks.message("dovecot.auth_user").contains(&auth_user().0));
}

#[test]
fn the_text_report_gives_each_fix_and_a_summary() {
    let setup = Setup::new();
    fs::remove_file(&setup.env.db).expect("remove db");
    let out = setup.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fail  database.file"), "{text}");
    assert!(
        text.contains("fix: create it with any admin command"),
        "{text}"
    );
    assert!(
        text.lines().last().is_some_and(|l| l.contains("failed")),
        "{text}"
    );
}

#[test]
fn a_database_owned_by_root_fails_as_unable_to_open() {
    if !is_root() {
        eprintln!("skipped: needs root to give the database to another user");
        return;
    }
    let setup = Setup::new();
    setup.chown_db(0, 0);
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.file"), "fail");
    assert!(
        checks
            .message("database.file")
            .contains("unable to open database file")
    );
    assert!(checks.fix("database.file").starts_with("chown nobody: "));
    assert_eq!(checks.status("database.neighbours"), "fail");
    // Opened as the auth user, as a login would: it cannot.
    assert_eq!(checks.status("database.integrity"), "fail");
    assert!(
        checks
            .message("database.integrity")
            .contains("unable to open")
    );
}

#[test]
fn a_root_owned_wal_beside_a_good_database_is_named() {
    if !is_root() {
        eprintln!("skipped: needs root to give a file to another user");
        return;
    }
    let setup = Setup::new();
    let wal = format!("{}-wal", setup.env.db.display());
    std::os::unix::fs::chown(&wal, Some(0), Some(0)).expect("chown wal");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.file"), "ok");
    assert_eq!(checks.status("database.neighbours"), "fail");
    assert!(
        checks
            .message("database.neighbours")
            .contains("mailpass.db-wal (root)")
    );
}

#[test]
fn a_directory_owned_by_root_fails() {
    if !is_root() {
        eprintln!("skipped: needs root to give the directory to another user");
        return;
    }
    let setup = Setup::new();
    std::os::unix::fs::chown(setup.env.path("db"), Some(0), Some(0)).expect("chown dir");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.directory"), "fail");
    assert!(
        checks
            .message("database.directory")
            .contains("-wal and -shm")
    );
}

#[test]
fn a_database_others_can_read_fails_and_an_open_directory_warns() {
    let setup = Setup::new();
    fs::set_permissions(&setup.env.db, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(setup.env.path("db"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.file"), "fail");
    assert!(checks.message("database.file").contains("0644"));
    assert!(checks.fix("database.file").starts_with("chmod 0600"));
    assert_eq!(checks.status("database.directory"), "warn");
}

#[test]
fn a_0660_database_in_a_setgid_directory_is_shared_with_the_group() {
    let setup = Setup::new();
    setup.share_with_group(None);
    let (checks, code) = setup.doctor();
    assert_eq!(checks.status("database.file"), "ok", "{:#}", checks.0);
    assert!(
        checks
            .message("database.file")
            .contains("shared with the group"),
        "{:#}",
        checks.0
    );
    assert_eq!(checks.status("database.neighbours"), "ok", "{:#}", checks.0);
    // The auth user's own group: Dovecot runs mailpass with it.
    assert_eq!(checks.status("database.group"), "ok", "{:#}", checks.0);
    // Only the group the Debian package makes, `mailpass`, is meant to see in; here it is another.
    assert_eq!(checks.status("database.directory"), "warn");
    assert!(
        checks
            .message("database.directory")
            .contains("setgid, so mailpass makes the database 0660 there"),
        "{:#}",
        checks.0
    );
    assert_eq!(checks.status("database.integrity"), "ok");
    if checks.status("clock.sync") != "fail" {
        assert_eq!(code, 0, "warnings alone exit 0: {:#}", checks.0);
    }
}

#[test]
fn files_the_group_cannot_write_in_a_shared_directory_warn_for_the_web_page() {
    let setup = Setup::new();
    setup.share_with_group(None);
    fs::set_permissions(&setup.env.db, fs::Permissions::from_mode(0o600)).expect("chmod");
    let wal = format!("{}-wal", setup.env.db.display());
    fs::set_permissions(&wal, fs::Permissions::from_mode(0o600)).expect("chmod");
    let (checks, _) = setup.doctor();
    assert_eq!(checks.status("database.file"), "warn", "{:#}", checks.0);
    assert!(
        checks
            .message("database.file")
            .contains("the web page (`mailpass web`, run by a user of that group) cannot use it"),
        "{:#}",
        checks.0
    );
    assert!(checks.fix("database.file").contains("chmod 0660"));
    assert_eq!(
        checks.status("database.neighbours"),
        "warn",
        "{:#}",
        checks.0
    );
    assert!(
        checks
            .message("database.neighbours")
            .contains("mailpass.db-wal (mode 0600"),
        "{:#}",
        checks.0
    );
    // Logins are not affected: the files are still the auth user's.
    assert_eq!(checks.status("database.integrity"), "ok");
}

#[test]
fn dovecot_without_the_shared_group_warns_until_its_extra_groups_name_it() {
    if !is_root() {
        eprintln!("skipped: needs root to give the directory to another group");
        return;
    }
    // A group the auth user (nobody) is not in.
    let Some(users) = fs::read_to_string("/etc/group").ok().and_then(|g| {
        g.lines()
            .find_map(|l| l.strip_prefix("users:x:")?.split(':').next()?.parse().ok())
    }) else {
        eprintln!("skipped: no group `users`");
        return;
    };
    let setup = Setup::new();
    setup.share_with_group(Some(users));
    // A file the web page's user made beside the database: the group's, open to it, not the auth user's.
    let wal = format!("{}-wal", setup.env.db.display());
    std::os::unix::fs::chown(&wal, Some(0), Some(users)).expect("chown wal");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1, "{:#}", checks.0);
    assert_eq!(checks.status("database.group"), "warn", "{:#}", checks.0);
    assert!(
        checks
            .message("database.group")
            .contains("not the groups /etc/group lists the user in"),
        "{:#}",
        checks.0
    );
    assert_eq!(
        checks.fix("database.group"),
        "add `extra_groups = users` to `service auth { }` in Dovecot's config, then restart Dovecot"
    );
    assert_eq!(
        checks.status("database.neighbours"),
        "fail",
        "{:#}",
        checks.0
    );
    assert!(
        checks
            .message("database.neighbours")
            .contains("mailpass.db-wal (root)")
    );

    setup.write_dovecot(
        Passdb::Checkpassword,
        "service auth {\n  extra_groups = users\n}",
    );
    let (checks, _) = setup.doctor();
    assert_eq!(checks.status("database.group"), "ok", "{:#}", checks.0);
    assert_eq!(checks.status("database.neighbours"), "ok", "{:#}", checks.0);
}

#[test]
fn a_missing_database_fails_and_is_not_created() {
    let setup = Setup::new();
    for entry in fs::read_dir(setup.env.path("db"))
        .expect("read dir")
        .flatten()
    {
        fs::remove_file(entry.path()).expect("remove");
    }
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.file"), "fail");
    assert_eq!(checks.status("database.integrity"), "skip");
    assert_eq!(checks.status("database.schema"), "skip");
    assert!(!setup.env.db.exists(), "doctor created the database");
}

#[test]
fn a_corrupt_database_fails_the_integrity_check() {
    let setup = Setup::new();
    for entry in fs::read_dir(setup.env.path("db"))
        .expect("read dir")
        .flatten()
    {
        fs::remove_file(entry.path()).expect("remove");
    }
    fs::write(&setup.env.db, vec![0x5a; 8192]).expect("write garbage");
    let (_, uid, gid) = auth_user();
    setup.chown_db(uid, gid);
    fs::set_permissions(&setup.env.db, fs::Permissions::from_mode(0o600)).expect("chmod");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.file"), "ok");
    assert_eq!(checks.status("database.integrity"), "fail");
    assert!(
        checks
            .fix("database.integrity")
            .contains("mailpass restore")
    );
}

#[test]
fn an_older_schema_says_to_run_an_admin_command_and_a_newer_one_to_upgrade() {
    let setup = Setup::new();
    setup.set_schema_version(1);
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("database.schema"), "fail");
    assert!(checks.message("database.schema").contains("older"));
    assert!(
        checks
            .fix("database.schema")
            .contains("run any admin command")
    );

    setup.set_schema_version(99);
    let (checks, _) = setup.doctor();
    assert_eq!(checks.status("database.schema"), "fail");
    assert!(checks.fix("database.schema").contains("upgrade mailpass"));
}

#[test]
fn the_lua_route_with_its_module_passes() {
    let setup = Setup::with(
        Passdb::Lua {
            cache_key: Some("%u%{passdb:mailpass_cache_guard}"),
            worker_user: true,
        },
        "",
    );
    let (checks, code) = setup.doctor();
    assert!(checks.message("dovecot.route").contains("Lua"));
    assert!(checks.message("dovecot.auth_user").contains("auth-worker"));
    assert_eq!(checks.status("dovecot.database"), "ok");
    if Path::new("/usr/lib/dovecot/modules/auth/libauthdb_lua.so").exists() {
        assert_eq!(checks.status("dovecot.lua_module"), "ok");
        assert_eq!(code, 0, "{:#}", checks.0);
    }
}

#[test]
fn the_lua_route_without_its_module_fails() {
    let setup = Setup::with(
        Passdb::Lua {
            cache_key: None,
            worker_user: true,
        },
        "mail_plugin_dir = /nonexistent/modules",
    );
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("dovecot.lua_module"), "fail");
    assert!(
        checks
            .fix("dovecot.lua_module")
            .contains("dovecot-auth-lua")
    );
}

#[test]
fn auth_workers_running_as_root_warn() {
    let setup = Setup::with(
        Passdb::Lua {
            cache_key: None,
            worker_user: false,
        },
        "",
    );
    let (checks, _) = setup.doctor();
    assert_eq!(checks.status("dovecot.auth_user"), "warn");
    assert!(checks.message("dovecot.auth_user").contains("root"));
}

#[test]
fn the_auth_cache_without_the_guard_warns_and_exits_0() {
    let setup = Setup::with(
        Passdb::Lua {
            cache_key: None,
            worker_user: true,
        },
        "auth_cache_size = 10M",
    );
    let (checks, code) = setup.doctor();
    assert_eq!(checks.status("dovecot.auth_cache"), "warn");
    assert!(
        checks
            .message("dovecot.auth_cache")
            .contains("replayed password + code")
    );
    assert!(
        checks
            .message("dovecot.auth_cache")
            .contains("revoked app password")
    );
    assert!(
        checks
            .fix("dovecot.auth_cache")
            .contains("mailpass_cache_guard")
    );
    if checks.status("dovecot.lua_module") == "ok" && checks.status("clock.sync") != "fail" {
        assert_eq!(code, 0, "warnings alone exit 0: {:#}", checks.0);
    }
}

#[test]
fn the_auth_cache_with_the_guard_or_checkpassword_is_fine() {
    let guarded = Setup::with(
        Passdb::Lua {
            cache_key: Some("%u%{passdb:mailpass_cache_guard}"),
            worker_user: true,
        },
        "auth_cache_size = 10M",
    );
    let (checks, _) = guarded.doctor();
    assert_eq!(checks.status("dovecot.auth_cache"), "ok");
    let checkpassword = Setup::with(Passdb::Checkpassword, "auth_cache_size = 10M");
    let (checks, _) = checkpassword.doctor();
    assert_eq!(checks.status("dovecot.auth_cache"), "ok");
}

#[test]
fn a_dovecot_without_a_mailpass_passdb_fails() {
    let setup = Setup::with(Passdb::None, "");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("dovecot.route"), "fail");
    assert!(
        checks
            .message("dovecot.route")
            .contains("no passdb runs mailpass")
    );
}

#[test]
fn a_dovecot_config_doveconf_refuses_fails() {
    let setup = Setup::new();
    fs::write(&setup.dovecot, "no_such_setting = 1\n").expect("write");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("dovecot.config"), "fail");
    assert!(checks.message("dovecot.config").contains("no_such_setting"));
}

#[test]
fn a_passdb_on_another_database_warns() {
    let setup = Setup::new();
    let other = setup.env.path("other.db").display().to_string();
    let out = setup.env.admin(
        &[
            "--db",
            &other,
            "doctor",
            "--json",
            "--dovecot-config",
            &setup.dovecot.display().to_string(),
        ],
        "",
    );
    let checks = Checks(json(&String::from_utf8_lossy(&out.stdout)));
    assert_eq!(checks.status("dovecot.database"), "warn");
    assert!(checks.fix("dovecot.database").contains("mailpass --db"));
}

#[test]
fn a_missing_doveconf_is_said_not_crashed_on() {
    let setup = Setup::new();
    let (out, code) = {
        let out = setup.run(&["--json", "--doveconf", "/nonexistent/doveconf"]);
        (
            json(&String::from_utf8_lossy(&out.stdout)),
            out.status.code(),
        )
    };
    let checks = Checks(out);
    assert_eq!(checks.status("dovecot.config"), "warn");
    // Without Dovecot's user, the owner checks cannot be made; the rest can.
    assert_eq!(checks.status("database.neighbours"), "skip");
    assert_eq!(checks.status("database.schema"), "ok");
    assert!(code == Some(0) || checks.status("clock.sync") == "fail");
}

#[test]
fn a_config_with_an_unknown_key_fails_doctor_and_config_check() {
    let setup = Setup::new();
    fs::write(&setup.env.config, "[auth]\ntimeot = 3\n").expect("write config");
    let (checks, code) = setup.doctor();
    assert_eq!(code, 1);
    assert_eq!(checks.status("config.file"), "fail");
    assert!(checks.message("config.file").contains("timeot"));
    assert!(checks.message("config.file").contains("UNAVAILABLE"));

    let out = setup.env.admin(&["config", "check"], "");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fail  config.file"), "{text}");
}

#[test]
fn a_valid_config_passes_config_check() {
    let setup = Setup::new();
    let out = setup.env.admin(&["config", "check", "--json"], "");
    assert_eq!(out.status.code(), Some(0));
    let checks = Checks(json(&String::from_utf8_lossy(&out.stdout)));
    assert_eq!(checks.status("config.file"), "ok");
    assert_eq!(checks.status("mailpass.version"), "ok");
    assert!(
        checks
            .message("mailpass.version")
            .contains(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(checks.status("config.web"), "skip");
    assert_eq!(checks.0.as_array().map(Vec::len), Some(3));
}

#[test]
fn config_check_warns_about_a_self_service_page_that_would_not_work_as_meant() {
    let cases = [
        ("origin = \"http://mail.example.org\"", "warn", "not https"),
        (
            "origin = \"https://mail.example.org\"",
            "warn",
            "trusted_proxies is empty",
        ),
        (
            "origin = \"https://mail.example.org\"\ntrusted_proxies = [\"127.0.0.1\"]",
            "ok",
            "is at https://mail.example.org, behind 127.0.0.1",
        ),
    ];
    for (web, status, says) in cases {
        let env = Env::with_config(&format!("{TEST_CONFIG}\n[web]\n{web}\n"));
        let out = env.admin(&["config", "check", "--json"], "");
        assert_eq!(out.status.code(), Some(0), "a warning is no failure: {web}");
        let checks = Checks(json(&String::from_utf8_lossy(&out.stdout)));
        assert_eq!(checks.status("config.web"), status, "{web}");
        assert!(
            checks.message("config.web").contains(says),
            "{web}: {}",
            checks.message("config.web")
        );
    }
}

#[test]
fn the_clock_check_reports_honestly_here() {
    let setup = Setup::new();
    let (checks, _) = setup.doctor();
    let status = checks.status("clock.sync");
    assert!(["ok", "warn", "fail", "skip"].contains(&status));
    let tools = ["chronyc", "ntpq"].iter().any(|t| {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(t).exists())
    });
    if !Path::new("/run/systemd/system").exists() && !tools {
        assert_eq!(status, "warn");
        assert!(checks.message("clock.sync").contains("cannot tell"));
    }
}

/// Dovecot 2.4, from the end-to-end tests' Debian 13 chroot (built once and reused): `doveconf` runs inside it
/// through a wrapper, the config sits in the chroot's /tmp and, for the files doctor looks at itself, at the same
/// path on the host.
struct Dovecot24 {
    inside: PathBuf,
    in_chroot: PathBuf,
    doveconf: PathBuf,
    _host: tempfile::TempDir,
}

impl Dovecot24 {
    fn new() -> Dovecot24 {
        let root = PathBuf::from("/var/cache/mailpass-test/trixie");
        let built = std::process::Command::new("sh")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/dovecot24-chroot.sh"
            ))
            .arg(&root)
            .status()
            .expect("the chroot script");
        assert!(built.success(), "no Debian 13 chroot with Dovecot 2.4");
        let host = tempfile::Builder::new()
            .prefix("doctor24-")
            .tempdir_in("/tmp")
            .expect("host dir");
        let inside = host.path().to_path_buf();
        let in_chroot = root.join(inside.strip_prefix("/").expect("absolute"));
        fs::create_dir_all(in_chroot.join("run")).expect("chroot dir");
        let doveconf = host.path().join("doveconf");
        fs::write(
            &doveconf,
            format!(
                "#!/bin/sh\nexec chroot {} /usr/bin/doveconf \"$@\"\n",
                root.display()
            ),
        )
        .expect("wrapper");
        fs::set_permissions(&doveconf, fs::Permissions::from_mode(0o755)).expect("chmod");
        Dovecot24 {
            inside,
            in_chroot,
            doveconf,
            _host: host,
        }
    }

    /// Writes `dovecot.conf` (2.4 syntax around `passdb`) and returns doctor's checks and exit code.
    fn doctor(&self, setup: &Setup, passdb: &str) -> (Checks, i32) {
        let dir = self.inside.display();
        let conf = format!(
            "dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1\n\
             base_dir = {dir}/run\nstate_dir = {dir}/run\nlog_path = {dir}/dovecot.log\n{passdb}"
        );
        fs::write(self.in_chroot.join("dovecot.conf"), conf).expect("write config");
        let doveconf = self.doveconf.display().to_string();
        let config = format!("{dir}/dovecot.conf");
        let out = setup.env.admin(
            &[
                "doctor",
                "--doveconf",
                &doveconf,
                "--dovecot-config",
                &config,
                "--json",
            ],
            "",
        );
        let checks = Checks(json(&String::from_utf8_lossy(&out.stdout)));
        (checks, out.status.code().unwrap_or(-1))
    }
}

impl Drop for Dovecot24 {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.in_chroot);
    }
}

#[test]
fn on_dovecot_2_4_the_lua_route_passes_and_a_2_3_checkpassword_config_fails() {
    if !is_root() {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let setup = Setup::new();
    let dovecot = Dovecot24::new();
    let script = dovecot.inside.join("mailpass.lua");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("dovecot-conf/mailpass.lua");
    fs::copy(&shipped, &script).expect("lua on the host");
    fs::copy(&shipped, dovecot.in_chroot.join("mailpass.lua")).expect("lua in the chroot");
    let (checks, _) = dovecot.doctor(
        &setup,
        &format!(
            "passdb lua {{\n  lua_file = {}\n  use_worker = yes\n}}\n",
            script.display()
        ),
    );
    assert_eq!(checks.status("dovecot.config"), "ok", "{:#}", checks.0);
    assert!(
        checks.message("dovecot.config").contains("2.4"),
        "{:#}",
        checks.0
    );
    assert_eq!(checks.status("dovecot.route"), "ok", "{:#}", checks.0);

    // The 2.3 checkpassword file copied onto a 2.4 server: Dovecot 2.4 does not even read it.
    let (checks, code) = dovecot.doctor(
        &setup,
        "passdb {\n  driver = checkpassword\n  args = /usr/bin/mailpass checkpassword --log dovecot\n}\n",
    );
    assert_eq!(code, 1, "{:#}", checks.0);
    assert_eq!(checks.status("dovecot.config"), "fail", "{:#}", checks.0);
}
