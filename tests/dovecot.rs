//! End-to-end tests against a real Dovecot: mail clients log in over TCP (IMAP LOGIN and AUTHENTICATE PLAIN,
//! POP3 USER/PASS, SMTP AUTH on the submission service, ManageSieve AUTHENTICATE), SMTP clients (swaks and
//! Python's smtplib) send mail through a real Postfix whose SMTP AUTH asks Dovecot (`smtpd_sasl_type =
//! dovecot`), and `doveadm auth test` / `doveadm user` look users up, through each route that mailpass ships a
//! config for. The Dovecot configs are generated around the shipped files in dovecot-conf/, so those files are
//! what is tested.
//!
//! Each route runs up to three Dovecots, each with its own database: `main` for the scenarios that run in
//! parallel (each with its own users), `faults` for the scenarios that break the database for a while (one at
//! a time), `apponly` for the scenarios of `[auth] app_passwords_only = ["smtp"]`. A route's Postfix (one per
//! Dovecot, tests/dovecot/postfix.rs) starts with the first scenario that sends mail through it. Every Dovecot
//! and Postfix started is stopped by pid at the end, also when trials fail.
//!
//! Routes: `checkpassword` and `lua23` (Dovecot 2.3 on the host: dovecot-core, -imapd, -pop3d, -submissiond,
//! -managesieved, -auth-lua), `lua24` (Dovecot 2.4 in a Debian 13 chroot that tests/support/dovecot24-chroot.sh
//! builds once with debootstrap and reuses; MAILPASS_CHROOT24 names another place for it). Postfix, swaks and
//! python3 run on the host for every route. Needs root; scripts/install-deps.sh installs the packages. When a
//! route cannot run here the whole run fails with the reason, unless MAILPASS_SKIP_DOVECOT=1 marks its trials
//! ignored. MAILPASS_E2E_KEEP=1 keeps the routes' temp dirs (configs, databases, logs, Postfix's maillog) for a
//! look afterwards.

#[path = "dovecot/client.rs"]
mod client;
mod common;
#[path = "dovecot/server.rs"]
mod server;

use std::net::Ipv4Addr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

use common::{doveadm_hash, json, now, parse_log_line, totp_code, yescrypt_hash};
use server::postfix::Postfix;
use server::{Flavor, LazyRoute, Route, Setup};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let skip = std::env::var("MAILPASS_SKIP_DOVECOT").is_ok_and(|v| v == "1");

    let mut routes: Vec<Arc<LazyRoute>> = Vec::new();
    let mut trials = Vec::new();
    for flavor in Flavor::ALL {
        let main = Arc::new(LazyRoute::with_setup(
            flavor,
            "main",
            Setup {
                dovecot: AUTH_CACHE,
                ..Setup::default()
            },
        ));
        let faults = Arc::new(LazyRoute::with_setup(
            flavor,
            "faults",
            Setup {
                dovecot: AUTH_CACHE_SHORT,
                ..Setup::default()
            },
        ));
        let brakes = Arc::new(LazyRoute::with_setup(
            flavor,
            "brakes",
            Setup {
                brakes: true,
                ..Setup::default()
            },
        ));
        let apponly = Arc::new(LazyRoute::with_setup(
            flavor,
            "apponly",
            Setup {
                mailpass: APP_PASSWORDS_ONLY,
                ..Setup::default()
            },
        ));
        let chained = Arc::new(LazyRoute::with_setup(
            flavor,
            "chained",
            Setup {
                mailpass: NEXT_PASSDB,
                chained: true,
                ..Setup::default()
            },
        ));
        let mut flavor_trials: Vec<Trial> = SCENARIOS
            .iter()
            .filter(|scenario| !scenario.lua_only || flavor.uses_lua())
            .map(|scenario| {
                let lazy = Arc::clone(match scenario.role {
                    Role::Main => &main,
                    Role::Faults => &faults,
                    Role::AppOnly => &apponly,
                    Role::Brakes => &brakes,
                    Role::Chained => &chained,
                });
                Trial::test(format!("{}::{}", flavor.name(), scenario.name), move || {
                    run_trial(&lazy, scenario)
                })
            })
            .collect();
        // Prerequisites (for 2.4: the chroot, built on first use) only for trials that will run.
        let wanted = !args.list && flavor_trials.iter().any(|t| !args.is_filtered_out(t));
        if let Some(why) = wanted.then(|| flavor.check_installed().err()).flatten() {
            if !skip {
                eprintln!(
                    "error: the Dovecot end-to-end tests ({}) cannot run: {why}\n\
                     (MAILPASS_SKIP_DOVECOT=1 marks them ignored instead)",
                    flavor.name()
                );
                return ExitCode::FAILURE;
            }
            eprintln!(
                "{}: ignored (MAILPASS_SKIP_DOVECOT=1): {why}",
                flavor.name()
            );
            flavor_trials = flavor_trials
                .into_iter()
                .map(|t| t.with_ignored_flag(true))
                .collect();
        }
        trials.extend(flavor_trials);
        routes.push(main);
        routes.push(faults);
        routes.push(apponly);
        routes.push(brakes);
        routes.push(chained);
    }

    let started = std::time::SystemTime::now() - Duration::from_secs(1);
    let conclusion = libtest_mimic::run(&args, trials);
    // The trials are gone; stop every Postfix and Dovecot now (dropping the routes would too, but say it
    // plainly).
    for route in &routes {
        route.stop();
    }
    // mailpass.lua must leave no temp file behind (its reply file is removed at once).
    let mut leftovers = Vec::new();
    for flavor in Flavor::ALL {
        if routes.iter().any(|r| r.flavor == flavor && r.started()) {
            leftovers.extend(server::leftover_lua_temp_files(flavor, started));
        }
    }
    drop(routes);
    if !leftovers.is_empty() {
        eprintln!("error: mailpass.lua left temp files behind: {leftovers:?}");
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}

/// Which of a flavor's Dovecots a scenario runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// In parallel with the others, each scenario with its own users.
    Main,
    /// Breaks the database for a while: one at a time.
    Faults,
    /// mailpass refuses the main password on smtp (`APP_PASSWORDS_ONLY`).
    AppOnly,
    /// Dovecot's and mailpass's brakes as shipped (the others have them off, to answer at once).
    Brakes,
    /// Route 2: the shipped chained config, mailpass in front of a passwd-file passdb standing in for LDAP or
    /// SQL (`[auth] next_passdb = true`). One at a time: one of them moves the database away.
    Chained,
}

/// What the `chained` Dovecots' mailpass.toml adds to its `[auth]` table.
const NEXT_PASSDB: &str = "next_passdb = true\n";

/// The main Dovecots run with Dovecot's auth cache on: every scenario shows that no cached answer ever
/// stands in for mailpass's (a replayed code, a revoked app password, a disabled user, a ban).
const AUTH_CACHE: &str = "# Dovecot's auth cache on: it must never answer for mailpass.\n\
                          auth_cache_size = 10M\n";

/// The faults Dovecots: the cache with entries that expire at once, so that "falling back to expired data
/// from cache" while mailpass cannot answer shows.
const AUTH_CACHE_SHORT: &str = "# Dovecot's auth cache on, entries expire after a second.\n\
                                auth_cache_size = 10M\n\
                                auth_cache_ttl = 1s\n\
                                auth_cache_negative_ttl = 1s\n";

/// What the `apponly` Dovecots' mailpass.toml adds to its `[auth]` table.
const APP_PASSWORDS_ONLY: &str = "app_passwords_only = [\"smtp\"]\n";

struct Scenario {
    name: &'static str,
    role: Role,
    run: fn(&Ctx),
    /// Only on the Lua routes (it tests mailpass.lua).
    lua_only: bool,
}

const fn scenario(name: &'static str, run: fn(&Ctx)) -> Scenario {
    Scenario {
        name,
        role: Role::Main,
        run,
        lua_only: false,
    }
}

const fn fault(name: &'static str, run: fn(&Ctx)) -> Scenario {
    Scenario {
        name,
        role: Role::Faults,
        run,
        lua_only: false,
    }
}

const fn brakes(name: &'static str, run: fn(&Ctx)) -> Scenario {
    Scenario {
        name,
        role: Role::Brakes,
        run,
        lua_only: false,
    }
}

/// A fault scenario for mailpass.lua, so only on the Lua routes.
const fn lua_fault(name: &'static str, run: fn(&Ctx)) -> Scenario {
    Scenario {
        name,
        role: Role::Faults,
        run,
        lua_only: true,
    }
}

const fn chained(name: &'static str, run: fn(&Ctx)) -> Scenario {
    Scenario {
        name,
        role: Role::Chained,
        run,
        lua_only: false,
    }
}

const fn app_only(name: &'static str, run: fn(&Ctx)) -> Scenario {
    Scenario {
        name,
        role: Role::AppOnly,
        run,
        lua_only: false,
    }
}

static SCENARIOS: &[Scenario] = &[
    scenario("app_password_logs_in_over_imap", app_password_imap),
    scenario(
        "app_password_logs_in_with_imap_authenticate_plain",
        app_password_authenticate_plain,
    ),
    scenario("app_password_logs_in_over_pop3", app_password_pop3),
    scenario(
        "app_password_logs_in_over_submission",
        app_password_submission,
    ),
    scenario(
        "app_password_passes_doveadm_auth_test",
        app_password_doveadm,
    ),
    scenario(
        "app_password_outside_its_services_fails",
        app_password_out_of_scope,
    ),
    scenario("expired_app_password_fails", app_password_expired),
    scenario("revoked_app_password_fails", app_password_revoked),
    scenario("main_password_works_without_2fa", main_password_without_2fa),
    scenario(
        "main_password_alone_on_2fa_user_gets_the_hint_like_a_wrong_password",
        second_factor_required,
    ),
    scenario(
        "unusable_app_password_on_2fa_user_gets_the_same_hint",
        unusable_app_password_on_2fa_user,
    ),
    scenario(
        "password_and_code_work_once_and_the_replay_fails",
        password_and_code,
    ),
    scenario("recovery_code_works_once", recovery_code),
    scenario("wrong_password_fails", wrong_password),
    scenario("unknown_user_fails", unknown_user),
    scenario("disabled_user_fails", disabled_user),
    scenario("userdb_lookup_returns_home_uid_gid", userdb_lookup),
    scenario(
        "userdb_lookup_of_unknown_user_is_not_found",
        userdb_lookup_unknown,
    ),
    scenario(
        "sieve_app_password_logs_in_over_managesieve",
        sieve_app_password,
    ),
    scenario(
        "sieve_main_password_alone_on_2fa_user_gets_the_hint_like_a_wrong_password",
        sieve_second_factor_required,
    ),
    scenario(
        "postfix_app_password_with_smtp_scope_relays",
        postfix_app_password,
    ),
    scenario(
        "postfix_password_and_fresh_code_relays",
        postfix_password_and_code,
    ),
    scenario(
        "postfix_main_password_without_2fa_relays",
        postfix_main_password_without_2fa,
    ),
    scenario(
        "postfix_wrong_password_is_refused_and_relays_nothing",
        postfix_wrong_password,
    ),
    scenario(
        "postfix_main_password_alone_on_2fa_user_is_refused_like_a_wrong_password",
        postfix_second_factor_required,
    ),
    scenario("postfix_replayed_code_is_refused", postfix_replayed_code),
    scenario(
        "postfix_revoked_app_password_is_refused",
        postfix_revoked_app_password,
    ),
    scenario(
        "postfix_expired_app_password_is_refused",
        postfix_expired_app_password,
    ),
    scenario(
        "postfix_out_of_scope_app_password_is_refused",
        postfix_out_of_scope_app_password,
    ),
    scenario("postfix_banned_address_is_refused", postfix_banned_address),
    scenario("postfix_unknown_user_is_refused", postfix_unknown_user),
    scenario("postfix_disabled_user_is_refused", postfix_disabled_user),
    app_only(
        "postfix_main_password_on_app_passwords_only_smtp_is_refused",
        postfix_app_passwords_only,
    ),
    scenario(
        "with_the_auth_cache_on_every_login_reaches_mailpass",
        auth_cache_never_answers,
    ),
    fault(
        "an_expired_cache_entry_never_stands_in_while_mailpass_cannot_answer",
        expired_cache_entry_with_db_down,
    ),
    brakes(
        "a_2fa_refusal_waits_like_a_plain_failure_and_interleaving_buys_a_guesser_nothing",
        brakes_side_by_side,
    ),
    scenario(
        "imported_hashes_of_every_scheme_log_in_and_become_argon2id",
        imported_hashes,
    ),
    scenario(
        "fail2ban_with_the_shipped_filter_counts_what_mailpass_counts",
        fail2ban_counts_what_mailpass_counts,
    ),
    scenario(
        "decisions_are_logged_at_info_and_faults_at_error",
        log_levels,
    ),
    lua_fault(
        "kills_a_stuck_helper_and_refuses_a_lookup_answer_without_user",
        lua_bounds_the_helper,
    ),
    chained(
        "chained_external_users_app_password_logs_in",
        chained_external_app_password,
    ),
    chained(
        "chained_external_users_main_password_without_2fa_logs_in_through_the_next_passdb",
        chained_external_main_password_without_2fa,
    ),
    chained(
        "chained_external_users_main_password_with_2fa_gets_the_hint_and_never_reaches_the_next_passdb",
        chained_external_main_password_with_2fa,
    ),
    chained(
        "chained_wrong_password_fails_or_gets_the_hint",
        chained_wrong_password,
    ),
    chained(
        "chained_user_only_in_the_next_passdb_logs_in_as_before",
        chained_user_only_in_the_next_passdb,
    ),
    chained(
        "chained_local_user_cannot_log_in_with_the_next_passdbs_password",
        chained_local_user_keeps_its_password,
    ),
    chained(
        "chained_postfix_relays_an_external_app_password_and_refuses_a_2fa_main_password",
        chained_postfix,
    ),
    chained(
        "chained_mailpass_unavailable_is_a_temporary_failure_never_the_next_passdb",
        chained_db_missing,
    ),
    fault("missing_db_is_a_temporary_failure", missing_db),
    fault("corrupt_db_is_a_temporary_failure", corrupt_db),
    fault("unreadable_db_is_a_temporary_failure", unreadable_db),
];

fn run_trial(lazy: &LazyRoute, scenario: &Scenario) -> Result<(), Failed> {
    let route = lazy.get()?;
    let _exclusive =
        matches!(scenario.role, Role::Faults | Role::Chained).then(|| route.exclusive());
    let ctx = Ctx {
        route,
        base: scenario.name.replace('_', "-"),
    };
    catch_unwind(AssertUnwindSafe(|| (scenario.run)(&ctx))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        let postfix = route
            .started_postfix()
            .map(|p| format!("\n{}", p.log_tail(40)))
            .unwrap_or_default();
        format!("{message}\n{}{postfix}", route.log_about(&ctx.base, 60)).into()
    })
}

/// What a scenario works with: its route and a user-name stem of its own (trials run in parallel).
struct Ctx<'a> {
    route: &'a Route,
    base: String,
}

const DOMAIN: &str = "example.org";
const PASSWORD: &str = "correct horse battery staple";

impl Ctx<'_> {
    /// This scenario's user.
    fn user(&self) -> String {
        format!("{}@{DOMAIN}", self.base)
    }

    fn admin(&self, args: &[&str]) -> String {
        self.route.env.ok(args, "")
    }

    /// A user with the main password `PASSWORD`.
    fn add_user(&self) -> String {
        let user = self.user();
        self.route.env.add_user(&user, PASSWORD);
        user
    }

    /// Another user of this scenario, `BASE-SUFFIX@DOMAIN`.
    fn user_named(&self, suffix: &str) -> String {
        format!("{}-{suffix}@{DOMAIN}", self.base)
    }

    /// `user_named`, added with the main password `PASSWORD`.
    fn add_user_named(&self, suffix: &str) -> String {
        let user = self.user_named(suffix);
        self.route.env.add_user(&user, PASSWORD);
        user
    }

    /// A new app password (as the CLI printed it in JSON).
    fn app_password(&self, user: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["app-password", "add", user, "--name", name, "--json"];
        args.extend_from_slice(extra);
        let out = json(&self.admin(&args));
        out["password"]
            .as_str()
            .unwrap_or_else(|| panic!("no password in {out}"))
            .to_string()
    }

    /// Enrolls and confirms TOTP; returns the base32 secret. The code used to confirm is spent.
    fn enable_totp(&self, user: &str) -> String {
        let enrolled = json(&self.admin(&["totp", "enroll", user, "--json"]));
        let secret = enrolled["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("no secret in {enrolled}"))
            .to_string();
        self.admin(&["totp", "confirm", user, &totp_code(&secret, now())]);
        secret
    }

    fn imap(&self, user: &str, password: &str) -> String {
        client::imap_login(self.route.ports.imap, user, password)
            .unwrap_or_else(|e| panic!("IMAP LOGIN {user}: {e}"))
    }

    fn imap_plain(&self, user: &str, password: &str) -> String {
        client::imap_authenticate(self.route.ports.imap, user, password)
            .unwrap_or_else(|e| panic!("IMAP AUTHENTICATE PLAIN {user}: {e}"))
    }

    fn pop3(&self, user: &str, password: &str) -> String {
        client::pop3_login(self.route.ports.pop3, user, password)
            .unwrap_or_else(|e| panic!("POP3 {user}: {e}"))
    }

    fn smtp(&self, user: &str, password: &str) -> String {
        client::smtp_login(self.route.ports.submission, user, password)
            .unwrap_or_else(|e| panic!("SMTP AUTH {user}: {e}"))
    }

    fn sieve(&self, user: &str, password: &str) -> String {
        client::managesieve_login(self.route.ports.sieve, user, password)
            .unwrap_or_else(|e| panic!("ManageSieve AUTHENTICATE {user}: {e}"))
    }

    /// The route's Postfix (started on first use).
    fn postfix(&self) -> &Postfix {
        self.route.postfix().unwrap_or_else(|e| panic!("{e}"))
    }

    /// One message through the route's Postfix with SMTP AUTH PLAIN, from 127.0.0.1 or `source`.
    fn send(
        &self,
        with: Smtp,
        user: &str,
        password: &str,
        source: Option<&str>,
        marker: &str,
    ) -> client::Sent {
        let mail = client::Mail {
            port: self.postfix().port,
            user,
            password,
            source,
            marker,
        };
        match with {
            Smtp::Swaks => client::swaks(&mail),
            Smtp::Smtplib => client::smtplib(&mail),
        }
        .unwrap_or_else(|e| panic!("{with:?} through Postfix as {user}: {e}"))
    }

    /// A message that must be relayed: AUTH answers 235 and the sink receives it (within `RELAY_TIMEOUT`).
    #[track_caller]
    fn expect_relayed(&self, with: Smtp, user: &str, password: &str, what: &str) {
        let marker = marker();
        let sent = self.send(with, user, password, None, &marker);
        assert!(
            sent.auth.starts_with(SMTP_OK),
            "{what} ({with:?} through Postfix): expected AUTH to answer {SMTP_OK}, got {:?}\n{}",
            sent.auth,
            sent.transcript
        );
        assert!(
            self.postfix().wait_for(&marker, RELAY_TIMEOUT),
            "{what} ({with:?} through Postfix): AUTH answered {:?} but the message {marker} did not reach \
             the relay within {RELAY_TIMEOUT:?}\n{}",
            sent.auth,
            sent.transcript
        );
    }

    /// `doveadm auth test` as an IMAP login from 127.0.0.1; returns the exit code.
    fn doveadm_auth(&self, user: &str, password: &str) -> (Option<i32>, String) {
        self.doveadm_auth_as("imap", "127.0.0.1", user, password)
    }

    /// `doveadm auth test` as a login on `service` from `rip`; returns the exit code.
    fn doveadm_auth_as(
        &self,
        service: &str,
        rip: &str,
        user: &str,
        password: &str,
    ) -> (Option<i32>, String) {
        let out = self
            .route
            .doveadm(&[
                "auth",
                "test",
                "-x",
                &format!("service={service}"),
                "-x",
                &format!("rip={rip}"),
                user,
                password,
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `doveadm user USER`: exit code and output.
    fn doveadm_user(&self, user: &str) -> (Option<i32>, String) {
        let out = self
            .route
            .doveadm(&["user", user])
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Waits (briefly: Dovecot's log process writes asynchronously) for mailpass's decision line about `user`
    /// with this result and reason in the route's Dovecot log, at the level it belongs at: `Info` for
    /// decisions, `Error` for temporary failures.
    #[track_caller]
    fn expect_logged(&self, user: &str, result: &str, reason: &str) {
        self.expect_logged_times(user, result, reason, 1);
    }

    /// `expect_logged`, at least `times` such lines.
    #[track_caller]
    fn expect_logged_times(&self, user: &str, result: &str, reason: &str, times: usize) {
        let level = if result == "tempfail" {
            "Error: "
        } else {
            "Info: "
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .decisions()
                .iter()
                .filter(|(prefix, f)| {
                    prefix.ends_with(level)
                        && f.get("user").map(String::as_str) == Some(user)
                        && f.get("result").map(String::as_str) == Some(result)
                        && f.get("reason").map(String::as_str) == Some(reason)
                })
                .count();
            if found >= times {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{found} of {times} `{level}mailpass: result={result} reason={reason} user={user}` lines in {}",
                self.route.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// mailpass's lines in the route's Dovecot log: what Dovecot put before `mailpass:` (ending in its level,
    /// `Info: `) and the fields.
    fn decisions(&self) -> Vec<(String, std::collections::HashMap<String, String>)> {
        let log = std::fs::read(self.route.log_path()).unwrap_or_default();
        String::from_utf8_lossy(&log)
            .lines()
            .filter_map(|l| {
                let i = l.find("mailpass: result=")?;
                Some((l[..i].to_string(), parse_log_line(&l[i..])))
            })
            .collect()
    }

    /// The home mailpass's `[userdb]` gives `user`, as Dovecot sees it and on the host.
    fn home(&self, user: &str) -> (String, std::path::PathBuf) {
        let (local, domain) = user.split_once('@').expect("user@domain");
        let rel = format!("vmail/{domain}/{local}");
        (self.route.layout.seen(&rel), self.route.layout.host(&rel))
    }
}

/// Users moved in from an existing passdb: a passwd-file of hashes that Dovecot's own `doveadm pw` made (and a
/// yescrypt one as Debian's /etc/shadow holds it), imported with `mailpass import passwd-file`. Each logs in
/// over IMAP through this route's Dovecot with its old password, is refused with a wrong one, and after the
/// first login holds an argon2id hash that logs in again.
fn imported_hashes(t: &Ctx) {
    let schemes = [
        "SHA512-CRYPT",
        "SHA256-CRYPT",
        "MD5-CRYPT",
        "BLF-CRYPT",
        "CRYPT",
        "SSHA512",
        "SSHA256",
        "SSHA",
        "SHA512",
        "SHA256",
        "PBKDF2",
        "ARGON2ID",
        "ARGON2I",
        "PLAIN",
    ];
    let mut users: Vec<(String, &str)> = schemes
        .iter()
        .map(|scheme| (t.user_named(&scheme.to_lowercase()), *scheme))
        .collect();
    let mut file: String = users
        .iter()
        .map(|(user, scheme)| format!("{user}:{}\n", doveadm_hash(scheme, PASSWORD)))
        .collect();
    let yescrypt = t.user_named("yescrypt");
    file.push_str(&format!("{yescrypt}:{}\n", yescrypt_hash(PASSWORD)));
    users.push((yescrypt, "CRYPT"));
    t.route.env.ok(&["import", "passwd-file", "-"], &file);

    let scheme_of = |user: &str| {
        json(&t.admin(&["user", "show", user, "--json"]))["password_scheme"]
            .as_str()
            .expect("password_scheme")
            .to_string()
    };
    for (user, scheme) in &users {
        assert_eq!(scheme_of(user), *scheme, "{user} as imported");
        expect(
            &t.imap(user, "not the password"),
            IMAP_FAILED,
            &format!("{scheme}: a wrong password"),
        );
        assert_eq!(scheme_of(user), *scheme, "{user}: no upgrade on a failure");
        expect(
            &t.imap(user, PASSWORD),
            IMAP_OK,
            &format!("{scheme}: the old password"),
        );
        assert_eq!(scheme_of(user), "ARGON2ID", "{user} after its first login");
        expect(
            &t.imap(user, PASSWORD),
            IMAP_OK,
            &format!("{scheme}: the old password, now under argon2id"),
        );
    }
}

/// Real logins, the route's real Dovecot log, and fail2ban's own `fail2ban-regex` with the filter shipped in
/// contrib/fail2ban: it matches exactly the failures that mailpass counted in its failure log, none of a 2FA
/// user's stale main password or of an identical retry. What the stock `dovecot` filter makes of the same
/// logins is printed beside (README "fail2ban" quotes it).
fn fail2ban_counts_what_mailpass_counts(t: &Ctx) {
    let plain = t.add_user();
    let twofa = t.user_named("2fa");
    t.route.env.add_user(&twofa, PASSWORD);
    t.enable_totp(&twofa);
    let app = t.app_password(&twofa, "Phone", &[]);
    let unknown = t.user_named("nobody");
    for guess in ["guess one", "guess two", "guess one"] {
        expect(&t.imap(&plain, guess), IMAP_FAILED, "a wrong password");
    }
    for _ in 0..2 {
        expect(
            &t.imap(&twofa, PASSWORD),
            IMAP_HINT,
            "a stale main password",
        );
    }
    expect(&t.imap(&unknown, PASSWORD), IMAP_FAILED, "an unknown user");
    expect(&t.imap(&twofa, &app), IMAP_OK, "the app password");
    t.expect_logged(&unknown, "fail", "unknown_user");
    t.expect_logged(&twofa, "ok", "app_password");

    let users = [plain.as_str(), twofa.as_str(), unknown.as_str()];
    let counted_rows = users
        .iter()
        .map(|user| {
            json(&t.admin(&["failures", "list", "--user", user, "--json"]))
                .as_array()
                .expect("failures")
                .iter()
                .filter(|f| f["counted"] == true)
                .count()
        })
        .sum::<usize>();
    assert_eq!(
        counted_rows, 3,
        "two different wrong passwords and an unknown user"
    );

    // Only this scenario's lines: other scenarios log into the same file at the same time.
    let log = std::fs::read(t.route.log_path()).expect("Dovecot's log");
    let mine: String = String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| users.iter().any(|u| l.contains(u)))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines = t.route.layout.host(&format!("fail2ban-{}.log", t.base));
    std::fs::write(&lines, &mine).expect("write the lines");
    let filter = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/fail2ban/filter.d/mailpass.conf"
    );
    let (ours, matched) = fail2ban_regex(&lines, filter);
    assert_eq!(
        ours, counted_rows,
        "the shipped filter matched other lines than mailpass counted: {matched:#?}"
    );
    assert!(
        matched
            .iter()
            .all(|l| !l.contains(&twofa) && l.contains("counted=yes")),
        "{matched:#?}"
    );
    let (stock, stock_matched) = fail2ban_regex(&lines, "/etc/fail2ban/filter.d/dovecot.conf");
    eprintln!(
        "{}: the stock dovecot filter matched {stock} of these logins' lines (mailpass counted {counted_rows}): \
         {stock_matched:#?}",
        t.route.flavor.name()
    );
}

/// Runs `fail2ban-regex` on a log file with a filter: how many lines matched, and which.
fn fail2ban_regex(log: &std::path::Path, filter: &str) -> (usize, Vec<String>) {
    let out = std::process::Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--print-no-missed"])
        .arg(log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex (Debian package fail2ban; scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "fail2ban-regex failed: {text}");
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Failregex: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no Failregex total in: {text}"));
    // The matched lines are printed as `|  <the log line>`, which starts with Dovecot's date (`Dec 08 ...`).
    let matched = text
        .lines()
        .filter_map(|l| l.strip_prefix("|  "))
        .filter(|l| {
            let month = l.get(..4).unwrap_or_default();
            month.ends_with(' ') && month[..3].chars().all(|c| c.is_ascii_alphabetic())
        })
        .map(str::to_string)
        .collect();
    (total, matched)
}

#[track_caller]
fn expect(answer: &str, prefix: &str, what: &str) {
    assert!(
        answer.starts_with(prefix),
        "{what}: expected an answer starting with {prefix:?}, got {answer:?}"
    );
}

/// `doveadm auth test` says "auth failed" (exit 77), and not because of a temporary failure.
#[track_caller]
fn expect_doveadm_failed(code: Option<i32>, out: &str, what: &str) {
    assert!(
        code == DOVEADM_AUTH_FAILED && !out.contains(DOVEADM_TEMP_FAIL),
        "{what}: expected exit 77 without {DOVEADM_TEMP_FAIL}, got {code:?}: {out}"
    );
}

const IMAP_OK: &str = "a1 OK";
const IMAP_FAILED: &str = "a1 NO [AUTHENTICATIONFAILED]";
const IMAP_HINT: &str = "a1 NO [CONTACTADMIN]";
const IMAP_UNAVAILABLE: &str = "a1 NO [UNAVAILABLE]";
const POP3_OK: &str = "+OK";
const POP3_FAILED: &str = "-ERR [AUTH]";
const POP3_TEMP: &str = "-ERR [SYS/TEMP]";
const SMTP_OK: &str = "235";
const SMTP_FAILED: &str = "535";
const SMTP_TEMP: &str = "454";
/// What Dovecot's submission service makes of "success + nologin + reason".
const SMTP_HINT: &str = "525 5.7.13";
const DOVEADM_AUTH_OK: Option<i32> = Some(0);
const DOVEADM_AUTH_FAILED: Option<i32> = Some(77);
const DOVEADM_TEMP_FAIL: &str = "code=temp_fail";
const DOVEADM_NOT_FOUND: Option<i32> = Some(67);
const DOVEADM_TEMPFAIL: Option<i32> = Some(75);

// --- app passwords

fn app_password_imap(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "Thunderbird", &[]);
    expect(
        &t.imap(&user, &app),
        IMAP_OK,
        "IMAP LOGIN with an app password",
    );
    t.expect_logged(&user, "ok", "app_password");
    // The login reached the mailbox: the home came from mailpass, owned by the uid mailpass returned.
    let (_, home) = t.home(&user);
    let maildir = home.join("Maildir");
    let meta = std::fs::metadata(&maildir)
        .unwrap_or_else(|e| panic!("no maildir {} after login: {e}", maildir.display()));
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        t.route.vmail_ids.0,
        "{} is not owned by {}",
        maildir.display(),
        server::MAIL_OWNER
    );
    // mailpass recorded the use with what Dovecot told it.
    let list = json(&t.admin(&["app-password", "list", &user, "--json"]));
    assert_eq!(list[0]["last_service"], "imap", "{list}");
    assert_eq!(list[0]["last_ip"], "127.0.0.1", "{list}");
    assert!(list[0]["last_used_at"].is_string(), "{list}");
}

fn app_password_authenticate_plain(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "Mail.app", &["--services", "imap"]);
    expect(
        &t.imap_plain(&user, &app),
        IMAP_OK,
        "IMAP AUTHENTICATE PLAIN with an app password",
    );
}

fn app_password_pop3(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "old phone", &["--services", "pop3"]);
    expect(&t.pop3(&user, &app), POP3_OK, "POP3 with an app password");
}

fn app_password_submission(t: &Ctx) {
    let user = t.add_user();
    // Dovecot's service is `submission`; mailpass's `smtp` covers it.
    let app = t.app_password(&user, "sender", &["--services", "smtp"]);
    expect(
        &t.smtp(&user, &app),
        SMTP_OK,
        "SMTP AUTH on submission with an app password",
    );
}

fn app_password_doveadm(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "probe", &["--services", "imap"]);
    let (code, out) = t.doveadm_auth(&user, &app);
    assert_eq!(code, DOVEADM_AUTH_OK, "doveadm auth test: {out}");
    let (code, out) = t.doveadm_auth(&user, "not-the-app-password");
    expect_doveadm_failed(code, &out, "doveadm auth test, wrong password");
}

fn app_password_out_of_scope(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "pop only", &["--services", "pop3"]);
    expect(
        &t.imap(&user, &app),
        IMAP_FAILED,
        "a pop3-only app password on IMAP",
    );
    expect(
        &t.imap_plain(&user, &app),
        IMAP_FAILED,
        "a pop3-only app password on IMAP AUTHENTICATE",
    );
    expect(
        &t.smtp(&user, &app),
        SMTP_FAILED,
        "a pop3-only app password on submission",
    );
    t.expect_logged(&user, "fail", "app_password_out_of_scope");
    expect(&t.pop3(&user, &app), POP3_OK, "the same password on POP3");
}

fn app_password_expired(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "short-lived", &["--expires-in", "1s"]);
    std::thread::sleep(Duration::from_secs(2));
    expect(&t.imap(&user, &app), IMAP_FAILED, "an expired app password");
    expect(
        &t.pop3(&user, &app),
        POP3_FAILED,
        "an expired app password on POP3",
    );
    t.expect_logged(&user, "fail", "app_password_expired");
}

fn app_password_revoked(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "lost laptop", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "before revoking");
    t.admin(&["app-password", "revoke", &user, "lost laptop"]);
    expect(&t.imap(&user, &app), IMAP_FAILED, "a revoked app password");
    expect(
        &t.smtp(&user, &app),
        SMTP_FAILED,
        "a revoked app password on submission",
    );
    t.expect_logged(&user, "fail", "app_password_revoked");
}

// --- main password and second factor

fn main_password_without_2fa(t: &Ctx) {
    let user = t.add_user();
    expect(
        &t.imap(&user, PASSWORD),
        IMAP_OK,
        "IMAP LOGIN, main password",
    );
    t.expect_logged(&user, "ok", "main_password");
    expect(
        &t.imap_plain(&user, PASSWORD),
        IMAP_OK,
        "IMAP AUTHENTICATE PLAIN, main password",
    );
    expect(&t.pop3(&user, PASSWORD), POP3_OK, "POP3, main password");
    expect(
        &t.smtp(&user, PASSWORD),
        SMTP_OK,
        "SMTP AUTH, main password",
    );
    let (code, out) = t.doveadm_auth(&user, PASSWORD);
    assert_eq!(code, DOVEADM_AUTH_OK, "doveadm auth test: {out}");
}

fn second_factor_required(t: &Ctx) {
    let user = t.add_user();
    t.enable_totp(&user);
    let hint = t.imap(&user, PASSWORD);
    expect(&hint, IMAP_HINT, "the main password alone on a 2FA account");
    assert!(
        hint.contains("app password"),
        "the client is not told to use an app password: {hint:?}"
    );
    // No oracle: a wrong password gets the very same line.
    let wrong = t.imap(&user, "wrong password");
    assert_eq!(
        wrong, hint,
        "a wrong password must get the same answer as the right one without a code"
    );
    assert_eq!(
        t.imap_plain(&user, PASSWORD),
        hint,
        "AUTHENTICATE PLAIN, main password alone"
    );
    assert_eq!(
        t.imap_plain(&user, "wrong password"),
        hint,
        "AUTHENTICATE PLAIN, wrong password"
    );
    let pop3 = t.pop3(&user, PASSWORD);
    expect(&pop3, POP3_FAILED, "POP3, main password alone");
    assert!(pop3.contains("app password"), "POP3 hint: {pop3:?}");
    assert_eq!(
        t.pop3(&user, "wrong password"),
        pop3,
        "POP3: wrong password vs main password alone"
    );
    let smtp = t.smtp(&user, PASSWORD);
    expect(&smtp, SMTP_HINT, "SMTP, main password alone");
    assert!(smtp.contains("app password"), "SMTP hint: {smtp:?}");
    assert_eq!(
        t.smtp(&user, "wrong password"),
        smtp,
        "SMTP: wrong password vs main password alone"
    );
    // mailpass knows the truth: it logs it (through Dovecot's log) and shows the admin which client needs
    // an app password.
    t.expect_logged(&user, "fail", "second_factor_required");
    t.expect_logged(&user, "fail", "wrong_password");
    let shown = json(&t.admin(&["user", "show", &user, "--json"]));
    let clients = shown["second_factor_required"]
        .as_array()
        .unwrap_or_else(|| panic!("no second_factor_required in {shown}"));
    assert!(
        clients
            .iter()
            .any(|c| c["service"] == "imap" && c["ip"] == "127.0.0.1"),
        "the IMAP client is not listed: {shown}"
    );
}

/// On a 2FA account every attempt that is not a usable app password or password + code gets the one hint, so
/// the answer tells no one that a guessed string is an app password for another service, or a revoked one.
fn unusable_app_password_on_2fa_user(t: &Ctx) {
    let user = t.add_user();
    t.enable_totp(&user);
    let pop3_only = t.app_password(&user, "pop only", &["--services", "pop3"]);
    let revoked = t.app_password(&user, "old", &[]);
    t.admin(&["app-password", "revoke", &user, "old"]);
    let hint = t.imap(&user, PASSWORD);
    expect(&hint, IMAP_HINT, "the main password alone");
    assert_eq!(
        t.imap(&user, &pop3_only),
        hint,
        "a pop3-only app password on IMAP"
    );
    assert_eq!(t.imap(&user, &revoked), hint, "a revoked app password");
    t.expect_logged(&user, "fail", "app_password_out_of_scope");
    t.expect_logged(&user, "fail", "app_password_revoked");
    expect(
        &t.pop3(&user, &pop3_only),
        POP3_OK,
        "the pop3-only password on POP3",
    );
}

fn password_and_code(t: &Ctx) {
    let user = t.add_user();
    let secret = t.enable_totp(&user);
    let hint = t.imap(&user, PASSWORD);
    expect(&hint, IMAP_HINT, "the main password alone");
    // The confirming code is spent: use the next step's, within the one step of skew allowed.
    let code = totp_code(&secret, now() + 30);
    let with_code = format!("{PASSWORD}{code}");
    expect(&t.imap(&user, &with_code), IMAP_OK, "password + code");
    t.expect_logged(&user, "ok", "main_password_totp");
    assert_eq!(
        t.imap(&user, &with_code),
        hint,
        "the same code a second time must be refused like any non-app-password attempt"
    );
    t.expect_logged(&user, "fail", "totp_replayed");
}

fn recovery_code(t: &Ctx) {
    let user = t.add_user();
    t.enable_totp(&user);
    let hint = t.imap(&user, PASSWORD);
    expect(&hint, IMAP_HINT, "the main password alone");
    let codes: Vec<String> = t
        .admin(&["totp", "recovery-codes", &user])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(codes.len() >= 2, "recovery codes: {codes:?}");
    let first = format!("{PASSWORD}{}", codes[0]);
    expect(&t.imap(&user, &first), IMAP_OK, "password + recovery code");
    t.expect_logged(&user, "ok", "recovery_code");
    assert_eq!(
        t.imap(&user, &first),
        hint,
        "a burnt recovery code must be refused"
    );
    let second = format!("{PASSWORD}{}", codes[1]);
    expect(
        &t.pop3(&user, &second),
        POP3_OK,
        "password + another recovery code on POP3",
    );
}

// --- plain failures

fn wrong_password(t: &Ctx) {
    let user = t.add_user();
    t.app_password(&user, "unused", &[]);
    expect(&t.imap(&user, "wrong password"), IMAP_FAILED, "IMAP LOGIN");
    expect(
        &t.imap_plain(&user, "wrong password"),
        IMAP_FAILED,
        "IMAP AUTHENTICATE PLAIN",
    );
    expect(&t.pop3(&user, "wrong password"), POP3_FAILED, "POP3");
    expect(&t.smtp(&user, "wrong password"), SMTP_FAILED, "SMTP AUTH");
    t.expect_logged(&user, "fail", "wrong_password");
    let (code, out) = t.doveadm_auth(&user, "wrong password");
    expect_doveadm_failed(code, &out, "doveadm auth test");
}

fn unknown_user(t: &Ctx) {
    let user = t.user();
    expect(&t.imap(&user, PASSWORD), IMAP_FAILED, "IMAP LOGIN");
    expect(&t.pop3(&user, PASSWORD), POP3_FAILED, "POP3");
    expect(&t.smtp(&user, PASSWORD), SMTP_FAILED, "SMTP AUTH");
    let (code, out) = t.doveadm_auth(&user, PASSWORD);
    expect_doveadm_failed(code, &out, "doveadm auth test");
    t.expect_logged(&user, "fail", "unknown_user");
}

fn disabled_user(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    expect(&t.imap(&user, PASSWORD), IMAP_OK, "before disabling");
    t.admin(&["user", "disable", &user]);
    expect(&t.imap(&user, PASSWORD), IMAP_FAILED, "main password");
    expect(&t.imap(&user, &app), IMAP_FAILED, "app password");
    t.expect_logged(&user, "fail", "disabled_user");
    expect(&t.pop3(&user, &app), POP3_FAILED, "POP3");
    // Mail is still delivered to a disabled user: the userdb still knows it.
    let (code, out) = t.doveadm_user(&user);
    assert_eq!(code, Some(0), "doveadm user of a disabled user: {out}");
}

// --- userdb lookups

fn userdb_lookup(t: &Ctx) {
    let user = t.add_user();
    let (code, out) = t.doveadm_user(&user);
    assert_eq!(code, Some(0), "doveadm user: {out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| {
                let (key, value) = l.split_once('\t')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in doveadm user output:\n{out}"))
    };
    let (home, _) = t.home(&user);
    assert_eq!(field("home"), home, "{out}");
    let (uid, gid) = t.route.vmail_ids;
    let uid_ok = [uid.to_string(), server::MAIL_OWNER.to_string()];
    let gid_ok = [gid.to_string(), server::MAIL_OWNER.to_string()];
    assert!(uid_ok.contains(&field("uid")), "uid: {out}");
    assert!(gid_ok.contains(&field("gid")), "gid: {out}");
}

fn userdb_lookup_unknown(t: &Ctx) {
    let (code, out) = t.doveadm_user(&t.user());
    assert_eq!(
        code, DOVEADM_NOT_FOUND,
        "doveadm user of an unknown user: {out}"
    );
}

// --- ManageSieve

const SIEVE_OK: &str = "OK";
const SIEVE_NO: &str = "NO";

fn sieve_app_password(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "sieve editor", &["--services", "sieve"]);
    expect(
        &t.sieve(&user, &app),
        SIEVE_OK,
        "ManageSieve with a sieve app password",
    );
    t.expect_logged(&user, "ok", "app_password");
    let list = json(&t.admin(&["app-password", "list", &user, "--json"]));
    assert_eq!(list[0]["last_service"], "sieve", "{list}");
    let imap_only = t.app_password(&user, "imap only", &["--services", "imap"]);
    expect(
        &t.sieve(&user, &imap_only),
        SIEVE_NO,
        "ManageSieve with an imap-only app password",
    );
    t.expect_logged(&user, "fail", "app_password_out_of_scope");
    expect(
        &t.sieve(&user, PASSWORD),
        SIEVE_OK,
        "ManageSieve with the main password (no 2FA)",
    );
}

fn sieve_second_factor_required(t: &Ctx) {
    let user = t.add_user();
    t.enable_totp(&user);
    let hint = t.sieve(&user, PASSWORD);
    expect(
        &hint,
        SIEVE_NO,
        "ManageSieve, main password alone on a 2FA account",
    );
    assert!(
        hint.contains("app password"),
        "the ManageSieve client is not told to use an app password: {hint:?}"
    );
    assert_eq!(
        t.sieve(&user, "wrong password"),
        hint,
        "ManageSieve: a wrong password must get the same answer as the right one without a code"
    );
    t.expect_logged(&user, "fail", "second_factor_required");
    t.expect_logged(&user, "fail", "wrong_password");
    let app = t.app_password(&user, "sieve editor", &["--services", "sieve"]);
    expect(
        &t.sieve(&user, &app),
        SIEVE_OK,
        "ManageSieve with a sieve app password on a 2FA account",
    );
}

// --- SMTP AUTH through Postfix (smtpd_sasl_type = dovecot)

/// The SMTP client a scenario drives.
#[derive(Clone, Copy, Debug)]
enum Smtp {
    Swaks,
    Smtplib,
}

/// How long a relayed message may take to reach the sink.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

/// A unique marker for one message: its recipient's local part, subject and body.
fn marker() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("mark{n:05}p{}z", std::process::id())
}

/// One login attempt through Postfix that mailpass must refuse.
struct Refusal<'a> {
    what: &'a str,
    with: Smtp,
    user: &'a str,
    password: &'a str,
    /// The client's source address (default 127.0.0.1).
    source: Option<&'a str>,
    /// The services that `doveadm auth test` tries the same login as; each must fail (exit 77, no
    /// temp_fail). Not the services where the login is right (an imap-only app password on imap).
    doveadm: &'a [&'a str],
}

const DOVEADM_BOTH: &[&str] = &["imap", "smtp"];
const DOVEADM_SMTP: &[&str] = &["smtp"];

/// Sends one message per refusal through Postfix and proves that each was refused and nothing relayed:
/// AUTH answers 535 (with the hint where asked); then a message of an accepted login is relayed to the
/// sink, and after that no refusal's message is in Postfix's queue (checked first: a queued message is
/// written to the sink before it leaves the queue) nor at the sink. Then `doveadm auth test` refuses each
/// login too. Returns the AUTH answers, in order. Every problem is reported at once. Once per scenario (it adds
/// the user `BASE-sender`).
#[track_caller]
/// The first refusal's AUTH answer, which every other refusal must equal.
fn sent_first<'a>(lines: &[&'a str]) -> &'a str {
    lines.first().copied().unwrap_or("")
}

fn expect_refused_by_postfix(t: &Ctx, refusals: &[Refusal]) -> Vec<String> {
    let sent: Vec<(String, client::Sent)> = refusals
        .iter()
        .map(|r| {
            let marker = marker();
            let sent = t.send(r.with, r.user, r.password, r.source, &marker);
            (marker, sent)
        })
        .collect();
    // An accepted login's message: once it is at the sink, Postfix has handled the ones before it.
    let sender = t.add_user_named("sender");
    let app = t.app_password(&sender, "relay check", &["--services", "smtp"]);
    t.expect_relayed(
        Smtp::Swaks,
        &sender,
        &app,
        "the accepted message after the refusals",
    );
    let queue = t
        .postfix()
        .queue()
        .unwrap_or_else(|e| panic!("Postfix's queue: {e}"));
    let sent_lines: Vec<&str> = sent.iter().map(|(_, s)| s.auth.as_str()).collect();
    let mut problems = Vec::new();
    for (r, (marker, sent)) in refusals.iter().zip(&sent) {
        let what = format!("{} ({:?})", r.what, r.with);
        let mut wrong = Vec::new();
        if !sent.auth.starts_with(SMTP_FAILED) {
            wrong.push(format!("AUTH answered {:?}, not {SMTP_FAILED}", sent.auth));
        } else if sent.auth != sent_first(&sent_lines) {
            // No oracle: Postfix gets a plain failure for every refusal (Dovecot drops a failing passdb's
            // reason), so a 2FA account's right main password reads like any wrong one.
            wrong.push(format!(
                "the {SMTP_FAILED} line differs from the other refusals': {:?}",
                sent.auth
            ));
        }
        if queue.contains(marker.as_str()) {
            wrong.push(format!("its message {marker} is in Postfix's queue"));
        }
        if t.postfix().received(marker) {
            wrong.push(format!("its message {marker} WAS RELAYED"));
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "{what}: {}\n  client transcript:\n    {}",
                wrong.join("; "),
                sent.transcript.trim_end().replace('\n', "\n    ")
            ));
        }
        for service in r.doveadm {
            let rip = r.source.unwrap_or("127.0.0.1");
            let (code, out) = t.doveadm_auth_as(service, rip, r.user, r.password);
            if code != DOVEADM_AUTH_FAILED || out.contains(DOVEADM_TEMP_FAIL) {
                problems.push(format!(
                    "{}: doveadm auth test -x service={service} -x rip={rip}: expected exit 77 without \
                     {DOVEADM_TEMP_FAIL}, got {code:?}: {}",
                    r.what,
                    out.trim_end()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of the refusals through Postfix went wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
    sent.into_iter().map(|(_, s)| s.auth).collect()
}

fn postfix_app_password(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "laptop", &["--services", "smtp"]);
    t.expect_relayed(Smtp::Swaks, &user, &app, "an smtp app password");
    t.expect_relayed(Smtp::Smtplib, &user, &app, "an smtp app password");
    t.expect_logged(&user, "ok", "app_password");
    // Postfix's SASL requests name the service smtp.
    let list = json(&t.admin(&["app-password", "list", &user, "--json"]));
    assert_eq!(list[0]["last_service"], "smtp", "{list}");
    assert_eq!(list[0]["last_ip"], "127.0.0.1", "{list}");
}

fn postfix_password_and_code(t: &Ctx) {
    let user = t.add_user();
    let secret = t.enable_totp(&user);
    // The confirming code is spent: use the next step's, within the one step of skew allowed.
    let code = totp_code(&secret, now() + 30);
    let with_code = format!("{PASSWORD}{code}");
    t.expect_relayed(Smtp::Smtplib, &user, &with_code, "password + a fresh code");
    t.expect_logged(&user, "ok", "main_password_totp");
}

fn postfix_main_password_without_2fa(t: &Ctx) {
    let user = t.add_user();
    t.expect_relayed(Smtp::Swaks, &user, PASSWORD, "the main password (no 2FA)");
    t.expect_logged(&user, "ok", "main_password");
}

fn postfix_wrong_password(t: &Ctx) {
    let user = t.add_user();
    t.app_password(&user, "unused", &[]);
    let refusal = |with| Refusal {
        what: "a wrong password (no 2FA)",
        with,
        user: &user,
        password: "wrong password",
        source: None,
        doveadm: DOVEADM_BOTH,
    };
    expect_refused_by_postfix(t, &[refusal(Smtp::Swaks), refusal(Smtp::Smtplib)]);
    t.expect_logged(&user, "fail", "wrong_password");
}

fn postfix_second_factor_required(t: &Ctx) {
    let user = t.add_user();
    t.enable_totp(&user);
    let refusal = |what, with, password| Refusal {
        what,
        with,
        user: &user,
        password,
        source: None,
        doveadm: DOVEADM_BOTH,
    };
    let answers = expect_refused_by_postfix(
        t,
        &[
            refusal(
                "the main password alone on a 2FA account",
                Smtp::Swaks,
                PASSWORD,
            ),
            refusal(
                "the main password alone on a 2FA account",
                Smtp::Smtplib,
                PASSWORD,
            ),
            refusal(
                "a wrong password on a 2FA account",
                Smtp::Swaks,
                "wrong password",
            ),
        ],
    );
    // No oracle: the right password without a code and a wrong one get the same line.
    assert_eq!(
        answers[0], answers[2],
        "through Postfix, a wrong password must get the same answer as the right one without a code"
    );
    t.expect_logged(&user, "fail", "second_factor_required");
    t.expect_logged(&user, "fail", "wrong_password");
}

fn postfix_replayed_code(t: &Ctx) {
    let user = t.add_user();
    let secret = t.enable_totp(&user);
    let code = totp_code(&secret, now() + 30);
    let with_code = format!("{PASSWORD}{code}");
    expect(
        &t.imap(&user, &with_code),
        IMAP_OK,
        "password + code on IMAP",
    );
    let refusal = |with| Refusal {
        what: "password + a code already used",
        with,
        user: &user,
        password: &with_code,
        source: None,
        doveadm: DOVEADM_BOTH,
    };
    expect_refused_by_postfix(t, &[refusal(Smtp::Swaks), refusal(Smtp::Smtplib)]);
    t.expect_logged(&user, "fail", "totp_replayed");
}

fn postfix_revoked_app_password(t: &Ctx) {
    let user = t.add_user();
    let revoked = t.app_password(&user, "lost laptop", &[]);
    t.expect_relayed(Smtp::Swaks, &user, &revoked, "before revoking");
    t.admin(&["app-password", "revoke", &user, "lost laptop"]);
    let user_2fa = t.add_user_named("2fa");
    t.enable_totp(&user_2fa);
    let revoked_2fa = t.app_password(&user_2fa, "lost phone", &[]);
    t.admin(&["app-password", "revoke", &user_2fa, "lost phone"]);
    expect_refused_by_postfix(
        t,
        &[
            Refusal {
                what: "a revoked app password",
                with: Smtp::Swaks,
                user: &user,
                password: &revoked,
                source: None,
                doveadm: DOVEADM_BOTH,
            },
            Refusal {
                what: "a revoked app password on a 2FA account",
                with: Smtp::Smtplib,
                user: &user_2fa,
                password: &revoked_2fa,
                source: None,
                doveadm: DOVEADM_BOTH,
            },
        ],
    );
    t.expect_logged(&user, "fail", "app_password_revoked");
    t.expect_logged(&user_2fa, "fail", "app_password_revoked");
}

fn postfix_expired_app_password(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "short-lived", &["--expires-in", "1s"]);
    std::thread::sleep(Duration::from_secs(2));
    let refusal = |with| Refusal {
        what: "an expired app password",
        with,
        user: &user,
        password: &app,
        source: None,
        doveadm: DOVEADM_BOTH,
    };
    expect_refused_by_postfix(t, &[refusal(Smtp::Smtplib), refusal(Smtp::Swaks)]);
    t.expect_logged(&user, "fail", "app_password_expired");
}

fn postfix_out_of_scope_app_password(t: &Ctx) {
    let user = t.add_user();
    let imap_only = t.app_password(&user, "imap only", &["--services", "imap"]);
    let user_2fa = t.add_user_named("2fa");
    t.enable_totp(&user_2fa);
    let imap_only_2fa = t.app_password(&user_2fa, "imap only", &["--services", "imap"]);
    expect_refused_by_postfix(
        t,
        &[
            Refusal {
                what: "an imap-only app password on smtp",
                with: Smtp::Swaks,
                user: &user,
                password: &imap_only,
                source: None,
                doveadm: DOVEADM_SMTP,
            },
            Refusal {
                what: "an imap-only app password on smtp",
                with: Smtp::Smtplib,
                user: &user,
                password: &imap_only,
                source: None,
                doveadm: DOVEADM_SMTP,
            },
            Refusal {
                what: "an imap-only app password on smtp, 2FA account",
                with: Smtp::Swaks,
                user: &user_2fa,
                password: &imap_only_2fa,
                source: None,
                doveadm: DOVEADM_SMTP,
            },
        ],
    );
    t.expect_logged(&user, "fail", "app_password_out_of_scope");
    expect(
        &t.imap(&user, &imap_only),
        IMAP_OK,
        "the same password on IMAP",
    );
}

/// A client address that only this scenario uses (127.0.0.1 is never banned: see server.rs).
const BANNED_IP: &str = "127.0.0.2";

fn postfix_banned_address(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &["--services", "smtp"]);
    t.admin(&[
        "ban",
        "add",
        &format!("{BANNED_IP}/32"),
        "--reason",
        "e2e test",
    ]);
    let check = t.route.env.admin(&["ban", "check", BANNED_IP], "");
    assert_eq!(
        check.status.code(),
        Some(1),
        "{BANNED_IP} is not banned: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    expect_refused_by_postfix(
        t,
        &[
            Refusal {
                what: "a valid app password from a banned address",
                with: Smtp::Smtplib,
                user: &user,
                password: &app,
                source: Some(BANNED_IP),
                doveadm: DOVEADM_BOTH,
            },
            Refusal {
                what: "the main password from a banned address",
                with: Smtp::Swaks,
                user: &user,
                password: PASSWORD,
                source: Some(BANNED_IP),
                doveadm: DOVEADM_BOTH,
            },
        ],
    );
    // The same logins from an address that is not banned go through.
    t.expect_relayed(
        Smtp::Smtplib,
        &user,
        &app,
        "the app password from 127.0.0.1",
    );
}

fn postfix_unknown_user(t: &Ctx) {
    let user = t.user();
    let refusal = |with| Refusal {
        what: "an unknown user",
        with,
        user: &user,
        password: PASSWORD,
        source: None,
        doveadm: DOVEADM_BOTH,
    };
    expect_refused_by_postfix(t, &[refusal(Smtp::Swaks), refusal(Smtp::Smtplib)]);
    t.expect_logged(&user, "fail", "unknown_user");
}

fn postfix_disabled_user(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    t.expect_relayed(Smtp::Swaks, &user, &app, "before disabling");
    t.admin(&["user", "disable", &user]);
    expect_refused_by_postfix(
        t,
        &[
            Refusal {
                what: "a disabled user's main password",
                with: Smtp::Swaks,
                user: &user,
                password: PASSWORD,
                source: None,
                doveadm: DOVEADM_BOTH,
            },
            Refusal {
                what: "a disabled user's app password",
                with: Smtp::Smtplib,
                user: &user,
                password: &app,
                source: None,
                doveadm: DOVEADM_BOTH,
            },
        ],
    );
    t.expect_logged(&user, "fail", "disabled_user");
}

/// On the `apponly` Dovecots (`app_passwords_only = ["smtp"]`): the main password is refused on smtp with the
/// hint, and still works elsewhere.
fn postfix_app_passwords_only(t: &Ctx) {
    let user = t.add_user();
    let refusal = |with| Refusal {
        what: "the main password on an app-passwords-only smtp",
        with,
        user: &user,
        password: PASSWORD,
        source: None,
        doveadm: DOVEADM_SMTP,
    };
    expect_refused_by_postfix(t, &[refusal(Smtp::Swaks), refusal(Smtp::Smtplib)]);
    let app = t.app_password(&user, "laptop", &["--services", "smtp"]);
    t.expect_relayed(Smtp::Smtplib, &user, &app, "an smtp app password");
    expect(
        &t.imap(&user, PASSWORD),
        IMAP_OK,
        "the main password on IMAP (not app-passwords-only)",
    );
    let (code, out) = t.doveadm_auth(&user, PASSWORD);
    assert_eq!(
        code, DOVEADM_AUTH_OK,
        "doveadm auth test, service=imap: {out}"
    );
}

// --- Dovecot's auth cache (on for the main and faults Dovecots)

fn auth_cache_never_answers(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    for _ in 0..3 {
        expect(&t.imap(&user, &app), IMAP_OK, "the app password, cache on");
    }
    // Each of the three logins reached mailpass: none was answered from the cache.
    t.expect_logged_times(&user, "ok", "app_password", 3);
    // A cached success must not let a banned address in.
    let source = Ipv4Addr::new(127, 0, 0, 4);
    let from = |password: &str| {
        client::Imap::connect_from(source, t.route.ports.imap, Duration::from_secs(10))
            .and_then(|mut imap| imap.login(&user, password))
            .unwrap_or_else(|e| panic!("IMAP LOGIN from {source}: {e}"))
    };
    expect(&from(&app), IMAP_OK, "from 127.0.0.4 before the ban");
    t.admin(&["ban", "add", "127.0.0.4/32", "--for", "10m"]);
    expect(&from(&app), IMAP_FAILED, "from 127.0.0.4, banned");
    t.admin(&["ban", "remove", "127.0.0.4/32"]);
    // Nor a revoked app password in.
    t.admin(&["app-password", "revoke", &user, "phone"]);
    expect(
        &t.imap(&user, &app),
        IMAP_FAILED,
        "the revoked app password",
    );
    t.expect_logged(&user, "fail", "app_password_revoked");
}

fn expired_cache_entry_with_db_down(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "lost laptop", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "before revoking");
    t.admin(&["app-password", "revoke", &user, "lost laptop"]);
    // Past the cache's TTL (1 s): had Dovecot cached the success, it would now be expired data, which
    // Dovecot falls back to when the passdb fails.
    std::thread::sleep(Duration::from_millis(2500));
    let _aside = DbAside::new(t.route);
    expect(
        &t.imap(&user, &app),
        IMAP_UNAVAILABLE,
        "a revoked app password while mailpass cannot answer",
    );
}

// --- the brakes, side by side with Dovecot's (Dovecot's and mailpass's defaults)

/// Dovecot's default `auth_failure_delay`, and mailpass's `failure_delay` set to the same.
const FAILURE_DELAY: Duration = Duration::from_secs(2);

/// How much sooner than asked a measured wait may end: timers and the clock's reading.
const MARGIN: Duration = Duration::from_millis(300);

/// Dovecot's own failure delay counts whole seconds of its clock (checked every half second), so a plain
/// failure may be answered up to a second sooner than `auth_failure_delay` (measured: 1.5 to 2.0 s).
const DOVECOT_GRAIN: Duration = Duration::from_secs(1);

/// One IMAP LOGIN from `127.0.0.{host}`: the answer and how long the LOGIN took (not the connection).
fn timed_login(t: &Ctx, host: u8, user: &str, password: &str) -> (String, Duration) {
    let source = Ipv4Addr::new(127, 0, 0, host);
    let mut imap = client::Imap::connect_from(source, t.route.ports.imap, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("IMAP from {source}: {e}"));
    let start = std::time::Instant::now();
    let answer = imap
        .login(user, password)
        .unwrap_or_else(|e| panic!("IMAP LOGIN from {source}: {e}"));
    (answer, start.elapsed())
}

fn brakes_side_by_side(t: &Ctx) {
    let plain = t.add_user_named("plain");
    let two_factor = t.add_user_named("2fa");
    t.enable_totp(&two_factor);

    // One refusal each, from fresh addresses: the 2FA refusal travels as success + nologin, which Dovecot
    // does not delay; mailpass's brake must make it wait as long as Dovecot makes a plain failure wait.
    let (answer, plain_wait) = timed_login(t, 10, &plain, "wrong password");
    expect(&answer, IMAP_FAILED, "a wrong password, no 2FA");
    let (answer, two_factor_wait) = timed_login(t, 11, &two_factor, "wrong password");
    expect(&answer, IMAP_HINT, "a wrong password on a 2FA account");
    eprintln!(
        "{}: plain failure answered after {plain_wait:?}, 2FA refusal after {two_factor_wait:?}",
        t.route.flavor.name()
    );
    assert!(
        plain_wait + DOVECOT_GRAIN >= FAILURE_DELAY,
        "Dovecot's own delay is off? {plain_wait:?}"
    );
    assert!(
        two_factor_wait + MARGIN >= FAILURE_DELAY && two_factor_wait + MARGIN >= plain_wait,
        "a 2FA refusal was answered after {two_factor_wait:?}, sooner than the configured delay \
         {FAILURE_DELAY:?} or the plain failure's {plain_wait:?}"
    );

    // A guesser: three guesses at the plain account in a row (Dovecot's anvil penalty grows), against the
    // same three interleaved with attempts on the 2FA account, whose success + nologin resets anvil's
    // penalty. mailpass's penalty must make up for it: interleaving must not make three guesses cheaper.
    let alone: Duration = (0..3)
        .map(|i| {
            let (answer, wait) = timed_login(t, 12, &plain, &format!("guess {i}"));
            expect(&answer, IMAP_FAILED, "a guess");
            wait
        })
        .sum();
    let mut interleaved = Duration::ZERO;
    for i in 0..3 {
        let (answer, wait) = timed_login(t, 13, &plain, &format!("guess {i}"));
        expect(&answer, IMAP_FAILED, "an interleaved guess");
        interleaved += wait;
        if i < 2 {
            let (answer, wait) = timed_login(t, 13, &two_factor, &format!("reset {i}"));
            expect(&answer, IMAP_HINT, "an attempt on the 2FA account");
            interleaved += wait;
        }
    }
    eprintln!(
        "{}: three guesses took {alone:?} in a row, {interleaved:?} interleaved with 2FA attempts",
        t.route.flavor.name()
    );
    assert!(
        interleaved + MARGIN >= alone,
        "interleaving 2FA attempts made three guesses cheaper: {interleaved:?} against {alone:?}"
    );
}

// --- log levels

fn log_levels(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "the app password");
    expect(
        &t.imap(&user, "wrong password"),
        IMAP_FAILED,
        "a wrong password",
    );
    t.expect_logged(&user, "ok", "app_password");
    t.expect_logged(&user, "fail", "wrong_password");
    // Nothing about this user at Error level: a success or a refusal is no fault.
    let errors: Vec<String> = t
        .decisions()
        .into_iter()
        .filter(|(prefix, f)| {
            f.get("user").map(String::as_str) == Some(&user) && !prefix.ends_with("Info: ")
        })
        .map(|(prefix, _)| prefix)
        .collect();
    assert!(errors.is_empty(), "decision lines not at Info: {errors:?}");
}

// --- the Lua script's guard rails (a helper that misbehaves)

/// Puts a shell script in place of the route's mailpass binary for the length of a scenario, and the binary
/// back when dropped, also when the scenario panics.
struct FakeHelper<'a> {
    route: &'a Route,
    saved: std::path::PathBuf,
}

impl<'a> FakeHelper<'a> {
    fn new(route: &'a Route, script: &str) -> FakeHelper<'a> {
        use std::os::unix::fs::PermissionsExt;
        let bin = route.layout.host("mailpass");
        let saved = route.layout.host("mailpass.real");
        std::fs::rename(&bin, &saved).expect("move mailpass aside");
        std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).expect("write the fake helper");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        FakeHelper { route, saved }
    }
}

impl Drop for FakeHelper<'_> {
    fn drop(&mut self) {
        let bin = self.route.layout.host("mailpass");
        std::fs::rename(&self.saved, &bin).expect("put mailpass back");
    }
}

fn lua_bounds_the_helper(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "before");
    {
        // A helper stuck before it could answer (and before any time limit of its own): the script kills it
        // after mailpass_timeout seconds, well within the client's 10 s, and answers a temporary failure.
        let _stuck = FakeHelper::new(t.route, "exec sleep 60");
        expect(
            &t.imap(&user, &app),
            IMAP_UNAVAILABLE,
            "IMAP LOGIN while the helper hangs",
        );
    }
    {
        // Exit 2 is a lookup's "found", but without user= it is no answer: an internal failure, never a user
        // without fields.
        let _mute = FakeHelper::new(t.route, "exit 2");
        let (code, out) = t.doveadm_user(&user);
        assert_eq!(
            code, DOVEADM_TEMPFAIL,
            "doveadm user with a helper that exits 2 and says nothing: {out}"
        );
    }
    expect(&t.imap(&user, &app), IMAP_OK, "after");
}

// --- database faults (run one at a time on the `faults` Dovecot)

/// Puts the database files aside for the length of a scenario and puts them back when dropped, also when the
/// scenario panics.
struct DbAside {
    db: std::path::PathBuf,
    aside: std::path::PathBuf,
}

const DB_FILES: [&str; 3] = ["", "-wal", "-shm"];

impl DbAside {
    fn new(route: &Route) -> DbAside {
        let db = route.env.db.clone();
        let aside = route.layout.host("db-aside");
        std::fs::create_dir_all(&aside).expect("db-aside");
        for suffix in DB_FILES {
            let from = with_suffix(&db, suffix);
            if from.exists() {
                std::fs::rename(&from, aside.join(from.file_name().expect("name")))
                    .expect("move the database aside");
            }
        }
        DbAside { db, aside }
    }
}

impl Drop for DbAside {
    fn drop(&mut self) {
        for suffix in DB_FILES {
            let to = with_suffix(&self.db, suffix);
            let _ = std::fs::remove_file(&to);
            let from = self.aside.join(to.file_name().expect("name"));
            if from.exists() {
                std::fs::rename(&from, &to).expect("put the database back");
            }
        }
    }
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// A user who logs in fine before and after the fault, and gets a temporary failure during it.
fn temporary_failure_while(
    t: &Ctx,
    what: &str,
    break_db: impl FnOnce(&Route) -> Box<dyn std::any::Any>,
) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "before the fault");
    {
        let _fault = break_db(t.route);
        let context = |proto: &str| format!("{proto} with a {what} database");
        expect(
            &t.imap(&user, &app),
            IMAP_UNAVAILABLE,
            &context("IMAP LOGIN"),
        );
        expect(
            &t.imap(&user, "wrong password"),
            IMAP_UNAVAILABLE,
            &context("IMAP LOGIN, wrong password"),
        );
        expect(
            &t.imap_plain(&user, &app),
            IMAP_UNAVAILABLE,
            &context("IMAP AUTHENTICATE PLAIN"),
        );
        expect(&t.pop3(&user, &app), POP3_TEMP, &context("POP3"));
        expect(&t.smtp(&user, &app), SMTP_TEMP, &context("SMTP AUTH"));
        // Postfix: Dovecot answers it `FAIL ... code=temp_fail`, but Postfix 3.7 reads no temporary failure
        // from Dovecot and says 535; what matters is that the login is refused.
        let marker = marker();
        let sent = t.send(Smtp::Swaks, &user, &app, None, &marker);
        expect(&sent.auth, SMTP_FAILED, &context("Postfix SMTP AUTH"));
        // doveadm auth test exits 77 for any failure; a temporary one carries `code=temp_fail`.
        let (code, out) = t.doveadm_auth(&user, &app);
        assert!(
            code != DOVEADM_AUTH_OK && out.contains(DOVEADM_TEMP_FAIL),
            "doveadm auth test with a {what} database must be a temporary failure, got {code:?}: {out}"
        );
        let (code, out) = t.doveadm_user(&user);
        assert_eq!(
            code, DOVEADM_TEMPFAIL,
            "doveadm user with a {what} database: {out}"
        );
        t.expect_logged(&user, "tempfail", "db_unavailable");
    }
    expect(&t.imap(&user, &app), IMAP_OK, "after the fault");
}

fn missing_db(t: &Ctx) {
    temporary_failure_while(t, "missing", |route| Box::new(DbAside::new(route)));
}

fn corrupt_db(t: &Ctx) {
    temporary_failure_while(t, "corrupt", |route| {
        let aside = DbAside::new(route);
        let garbage = b"this is not an SQLite database\n".repeat(256);
        std::fs::write(&route.env.db, garbage).expect("write garbage");
        route.chown_db(route.auth_ids).expect("chown garbage");
        Box::new(aside)
    });
}

/// Root-owned files, as when an admin forgets the README's chown.
struct OwnedByRoot<'a>(&'a Route);

impl Drop for OwnedByRoot<'_> {
    fn drop(&mut self) {
        self.0
            .chown_db(self.0.auth_ids)
            .expect("chown the database back");
    }
}

fn unreadable_db(t: &Ctx) {
    let user = t.add_user();
    let app = t.app_password(&user, "phone", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "before the fault");
    {
        t.route.chown_db((0, 0)).expect("chown to root");
        let _back = OwnedByRoot(t.route);
        expect(
            &t.imap(&user, &app),
            IMAP_UNAVAILABLE,
            "IMAP LOGIN with a database the auth user cannot open",
        );
        expect(
            &t.pop3(&user, &app),
            POP3_TEMP,
            "POP3 with a database the auth user cannot open",
        );
    }
    expect(&t.imap(&user, &app), IMAP_OK, "after the fault");
}

// ---------------------------------------------------------------------------------------------------------------
// Route 2: mailpass in front of another passdb (the `chained` Dovecots)
// ---------------------------------------------------------------------------------------------------------------

/// The main password the second passdb (standing in for LDAP or SQL) holds.
const DIRECTORY_PASSWORD: &str = "the directory's password";

impl Ctx<'_> {
    /// A user of the second passdb only.
    fn add_directory_user(&self, suffix: &str) -> String {
        let user = self.user_named(suffix);
        self.route
            .add_second_passdb_user(&user, DIRECTORY_PASSWORD)
            .unwrap_or_else(|e| panic!("{e}"));
        user
    }

    /// A user of the second passdb that mailpass knows as external.
    fn add_external_user(&self, suffix: &str) -> String {
        let user = self.add_directory_user(suffix);
        self.admin(&["user", "add", &user, "--external"]);
        user
    }

    /// How many times Dovecot's log shows the second passdb (passwd-file) looking `user` up.
    fn second_passdb_lookups(&self, user: &str) -> usize {
        let log = std::fs::read(self.route.log_path()).unwrap_or_default();
        String::from_utf8_lossy(&log)
            .lines()
            .filter(|l| l.contains("passwd-file(") && l.contains(user))
            .count()
    }
}

fn chained_external_app_password(t: &Ctx) {
    let user = t.add_external_user("ext");
    let app = t.app_password(&user, "phone", &[]);
    expect(
        &t.imap(&user, &app),
        IMAP_OK,
        "an external user's app password",
    );
    t.expect_logged(&user, "ok", "app_password");
}

fn chained_external_main_password_without_2fa(t: &Ctx) {
    let user = t.add_external_user("ext");
    expect(
        &t.imap(&user, DIRECTORY_PASSWORD),
        IMAP_OK,
        "an external user's main password, through the second passdb",
    );
    t.expect_logged(&user, "next", "not_mine");
    let failures = json(&t.admin(&["failures", "list", "--user", &user, "--json"]));
    assert_eq!(failures, serde_json::json!([]), "mailpass records nothing");
}

fn chained_external_main_password_with_2fa(t: &Ctx) {
    let user = t.add_external_user("ext2fa");
    t.enable_totp(&user);
    let before = t.second_passdb_lookups(&user);
    expect(
        &t.imap(&user, DIRECTORY_PASSWORD),
        IMAP_HINT,
        "a 2FA external user's main password alone",
    );
    t.expect_logged(&user, "fail", "external_refused");
    assert_eq!(
        t.second_passdb_lookups(&user),
        before,
        "the second passdb holds this password and must never see it"
    );
    let app = t.app_password(&user, "phone", &[]);
    expect(&t.imap(&user, &app), IMAP_OK, "its app password");
}

fn chained_wrong_password(t: &Ctx) {
    let directory = t.add_directory_user("dir");
    expect(
        &t.imap(&directory, "wrong password"),
        IMAP_FAILED,
        "a wrong password of a user only the second passdb knows",
    );
    t.expect_logged(&directory, "next", "not_mine");
    let external = t.add_external_user("ext2fa");
    t.enable_totp(&external);
    expect(
        &t.imap(&external, "wrong password"),
        IMAP_HINT,
        "a wrong password of a 2FA external user",
    );
    let external = t.add_external_user("ext");
    expect(
        &t.imap(&external, "wrong password"),
        IMAP_FAILED,
        "a wrong password of an external user without 2FA (the second passdb refuses it)",
    );
}

fn chained_user_only_in_the_next_passdb(t: &Ctx) {
    let user = t.add_directory_user("dir");
    expect(
        &t.imap(&user, DIRECTORY_PASSWORD),
        IMAP_OK,
        "a user mailpass does not know, with the second passdb's password",
    );
    expect(
        &t.pop3(&user, DIRECTORY_PASSWORD),
        POP3_OK,
        "the same over POP3",
    );
    t.expect_logged_times(&user, "next", "not_mine", 2);
}

fn chained_local_user_keeps_its_password(t: &Ctx) {
    let user = t.add_user();
    t.route
        .add_second_passdb_user(&user, DIRECTORY_PASSWORD)
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = t.imap(&user, DIRECTORY_PASSWORD);
    assert!(
        answer.starts_with(IMAP_FAILED) || answer.starts_with(IMAP_HINT),
        "a local user's name with the second passdb's password must be refused: {answer:?}"
    );
    t.expect_logged(&user, "fail", "wrong_password");
    expect(&t.imap(&user, PASSWORD), IMAP_OK, "its mailpass password");
}

fn chained_postfix(t: &Ctx) {
    let external = t.add_external_user("ext");
    let app = t.app_password(&external, "laptop", &["--services", "smtp"]);
    t.expect_relayed(
        Smtp::Swaks,
        &external,
        &app,
        "an external user's app password",
    );
    let twofa = t.add_external_user("ext2fa");
    t.enable_totp(&twofa);
    let marker = marker();
    let sent = t.send(Smtp::Swaks, &twofa, DIRECTORY_PASSWORD, None, &marker);
    // An accepted message after it: once it is at the sink, Postfix has handled the refused one.
    t.expect_relayed(
        Smtp::Swaks,
        &external,
        &app,
        "the accepted message after it",
    );
    eprintln!(
        "{}: Postfix answered a final refusal with {:?}",
        t.route.flavor.name(),
        sent.auth
    );
    assert!(
        sent.auth.starts_with(SMTP_FAILED),
        "a 2FA external user's main password through Postfix: expected {SMTP_FAILED}, got {:?}\n{}",
        sent.auth,
        sent.transcript
    );
    assert!(
        !t.postfix().received(&marker),
        "the refused message {marker} WAS RELAYED"
    );
    t.expect_logged(&twofa, "fail", "external_refused");
}

fn chained_db_missing(t: &Ctx) {
    let directory = t.add_directory_user("dir");
    let external = t.add_external_user("ext");
    {
        let _aside = DbAside::new(t.route);
        for user in [&directory, &external] {
            expect(
                &t.imap(user, DIRECTORY_PASSWORD),
                IMAP_UNAVAILABLE,
                "a login while mailpass cannot open its database",
            );
        }
    }
    expect(
        &t.imap(&directory, DIRECTORY_PASSWORD),
        IMAP_OK,
        "the database back",
    );
}
