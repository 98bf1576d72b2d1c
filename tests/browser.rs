//! End-to-end tests of the self-service web page (`mailpass web`) in a real headless chromium driven over
//! WebDriver: a user signs in (with a TOTP code), makes an app password, revokes it, enrols TOTP, downloads an
//! Apple profile, as they would with a mouse and keyboard; and what the page handed out is tried where it
//! counts, with a real IMAP login through a real Dovecot 2.3 (the checkpassword route of tests/dovecot.rs).
//!
//! Each scenario has its own temp dir, its own `mailpass web` and its own chromedriver and chromium
//! (tests/browser/chrome.rs); those that log in over IMAP share one Dovecot, started with the first of them
//! on that Dovecot's database, and stopped at the end. Every process is stopped by pid, also when a scenario
//! fails. Everything listens on 127.0.0.1. A screenshot of every page a scenario visits is saved as
//! target/browser-screenshots/SCENARIO-NN-STEP.png (and one more, `at-failure`, when it fails).
//!
//! Needs root (Dovecot), and Debian's chromium, chromium-driver and Dovecot packages (scripts/install-deps.sh);
//! when one is missing the run fails and says what to install.

#[path = "browser/chrome.rs"]
mod chrome;
#[allow(dead_code)]
#[path = "dovecot/client.rs"]
mod client;
// The harness's common module (the admin CLI runner); it allows its own dead code.
mod common;
#[path = "browser/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "dovecot/server.rs"]
mod server;
#[path = "browser/site.rs"]
mod site;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use tempfile::TempDir;

use chrome::Browser;
use common::{Env, json, now, totp_code};
use server::{Flavor, LazyRoute, Route, Setup};
use site::{StaticSite, WebServer, WebSettings};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // The Dovecot that the IMAP scenarios share: started by the first of them, stopped below.
    let dovecot = Arc::new(LazyRoute::with_setup(
        Flavor::Checkpassword23,
        "browser",
        Setup::default(),
    ));
    let trials: Vec<Trial> = SCENARIOS
        .iter()
        .map(|scenario| {
            let dovecot = Arc::clone(&dovecot);
            Trial::test(scenario.name, move || run_trial(&dovecot, scenario))
        })
        .collect();

    // What the trials that will run need, checked before any starts: a clear error, never a silent skip.
    let running = |imap_only: bool| {
        !args.list
            && SCENARIOS
                .iter()
                .zip(&trials)
                .any(|(s, t)| (!imap_only || s.imap) && !args.is_filtered_out(t))
    };
    if running(false)
        && let Err(why) = chrome::check_installed()
    {
        eprintln!("error: the browser tests cannot run: {why}");
        return ExitCode::FAILURE;
    }
    if running(true)
        && let Err(why) = Flavor::Checkpassword23.check_installed()
    {
        eprintln!("error: the browser tests that log in over IMAP need Dovecot 2.3: {why}");
        return ExitCode::FAILURE;
    }

    let conclusion = libtest_mimic::run(&args, trials);
    dovecot.stop();
    conclusion.exit_code()
}

struct Scenario {
    name: &'static str,
    run: fn(&Ctx),
    /// Logs in over IMAP, through the shared Dovecot.
    imap: bool,
}

static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "the_harness_drives_chromium_through_a_static_page",
        run: harness_self_check,
        imap: false,
    },
    Scenario {
        name: "sign_in_with_password_and_code_lands_on_the_overview_and_a_wrong_code_stays_on_the_code_page",
        run: sign_in_with_password_and_code,
        imap: false,
    },
    Scenario {
        name: "an_app_password_made_in_the_page_logs_in_over_imap_until_it_is_revoked_in_the_page",
        run: app_password_made_and_revoked_in_the_page,
        imap: true,
    },
    Scenario {
        name: "totp_enrolled_in_the_page_is_active_and_asked_for_at_the_next_sign_in",
        run: totp_enrolled_in_the_page,
        imap: false,
    },
    Scenario {
        name: "the_apple_profile_holds_an_app_password_that_logs_in_over_imap",
        run: apple_profile,
        imap: true,
    },
];

fn run_trial(dovecot: &LazyRoute, scenario: &Scenario) -> Result<(), Failed> {
    let route = if scenario.imap {
        Some(dovecot.get()?)
    } else {
        None
    };
    let ctx = Ctx {
        name: scenario.name,
        route,
        notes: Mutex::new(Vec::new()),
        stop_failures: Mutex::new(Vec::new()),
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| (scenario.run)(&ctx))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        let notes = ctx
            .notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        let dovecot = route
            .map(|r| format!("\n{}", r.log_about(&ctx.base(), 40)))
            .unwrap_or_default();
        format!(
            "{message}\n{notes}{dovecot}\n(screenshots: {}/{}-*.png)",
            chrome::screenshot_dir().display(),
            ctx.name
        )
        .into()
    });
    // A web server that did not stop cleanly on SIGTERM fails the scenario too.
    let stop_failures = ctx
        .stop_failures
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    match outcome {
        Ok(()) if !stop_failures.is_empty() => Err(stop_failures.join("\n").into()),
        outcome => outcome,
    }
}

/// What a scenario works with: its name, the shared Dovecot if it logs in over IMAP, notes for the failure
/// message (the web server's log), and what went wrong when its web servers were stopped.
struct Ctx<'a> {
    name: &'static str,
    route: Option<&'a Route>,
    notes: Mutex<Vec<String>>,
    stop_failures: Mutex<Vec<String>>,
}

const DOMAIN: &str = "example.org";
const PASSWORD: &str = "correct horse battery staple";

const IMAP_OK: &str = "a1 OK";
const IMAP_FAILED: &str = "a1 NO [AUTHENTICATIONFAILED]";

impl Ctx<'_> {
    /// A stem of names of this scenario's own (the IMAP scenarios share a database).
    fn base(&self) -> String {
        self.name.replace('_', "-")
    }

    /// This scenario's user: short, for the screenshots, and still its own (the first two words of the
    /// scenario's name differ between scenarios).
    fn user(&self) -> String {
        let short: Vec<&str> = self.name.split('_').take(2).collect();
        format!("{}@{DOMAIN}", short.join("-"))
    }

    /// `mailpass web` on a fresh database in a temp dir of the scenario's own.
    fn own_site(&self) -> Site<'_> {
        let env = Env::new();
        // The page never creates a database: any admin command does.
        env.ok(&["user", "list"], "");
        let settings = WebSettings {
            mail_host: "mail.example.org".into(),
            imap_port: 143,
            smtp_port: 587,
        };
        let web = WebServer::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_mailpass")),
            &env.db,
            common::TEST_CONFIG,
            &settings,
            env.dir.path(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Site {
            ctx: self,
            db: Db::Own(env),
            web,
        }
    }

    /// `mailpass web` on the shared Dovecot's database, run as Dovecot's auth user (who owns that database,
    /// as the README sets it up), telling users the Dovecot's IMAP and submission ports.
    fn site_with_dovecot(&self) -> Site<'_> {
        use std::os::unix::fs::PermissionsExt;
        let route = self.route.expect("an IMAP scenario has the shared Dovecot");
        let dir = tempfile::Builder::new()
            .prefix("mailpass-web-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        // The auth user reads its config there.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
        let config = std::fs::read_to_string(&route.env.config)
            .unwrap_or_else(|e| panic!("{}: {e}", route.env.config.display()));
        let settings = WebSettings {
            mail_host: "127.0.0.1".into(),
            imap_port: route.ports.imap,
            smtp_port: route.ports.submission,
        };
        let web = WebServer::start(
            &route.layout.host("mailpass"),
            &route.env.db,
            &config,
            &settings,
            dir.path(),
            Some(route.auth_ids),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Site {
            ctx: self,
            db: Db::Dovecot { route, _dir: dir },
            web,
        }
    }

    /// A browser on `site`, its screenshots named after this scenario.
    fn browser(&self, site: &Site) -> Browser {
        Browser::start(self.name, &site.web.origin)
    }
}

/// The database a site works on.
enum Db<'a> {
    /// The scenario's own (its temp dir holds the web server's config and log too).
    Own(Env),
    /// The shared Dovecot's; the temp dir holds the web server's config and log.
    Dovecot { route: &'a Route, _dir: TempDir },
}

/// A running `mailpass web`, its database and the admin CLI on it.
struct Site<'a> {
    ctx: &'a Ctx<'a>,
    db: Db<'a>,
    web: WebServer,
}

impl Site<'_> {
    fn env(&self) -> &Env {
        match &self.db {
            Db::Own(env) => env,
            Db::Dovecot { route, .. } => &route.env,
        }
    }

    /// Runs an admin command that must succeed; returns its stdout.
    fn admin(&self, args: &[&str]) -> String {
        self.env().ok(args, "")
    }

    /// The scenario's user, with the main password `PASSWORD`.
    fn add_user(&self) -> String {
        let user = self.ctx.user();
        self.env().add_user(&user, PASSWORD);
        user
    }

    /// Enrols and confirms TOTP with the admin CLI; returns the base32 secret. The code that confirmed it is
    /// spent.
    fn enable_totp(&self, user: &str) -> String {
        let enrolled = json(&self.admin(&["totp", "enroll", user, "--json"]));
        let secret = enrolled["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("no secret in {enrolled}"))
            .to_string();
        self.admin(&["totp", "confirm", user, &totp_code(&secret, now())]);
        secret
    }

    /// `totp status USER --json`'s state (`none`, `pending`, `active`).
    fn totp_state(&self, user: &str) -> String {
        let status = json(&self.admin(&["totp", "status", user, "--json"]));
        status["state"]
            .as_str()
            .unwrap_or_else(|| panic!("no state in {status}"))
            .to_string()
    }

    /// One IMAP LOGIN through the shared Dovecot (a real client, tests/dovecot/client.rs); the tagged answer.
    fn imap(&self, user: &str, password: &str) -> String {
        let Db::Dovecot { route, .. } = &self.db else {
            panic!("IMAP needs the site on the shared Dovecot");
        };
        client::imap_login(route.ports.imap, user, password)
            .unwrap_or_else(|e| panic!("IMAP LOGIN {user}: {e}"))
    }
}

impl Drop for Site<'_> {
    fn drop(&mut self) {
        if let Err(failure) = self.web.stop() {
            self.ctx
                .stop_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(failure);
        }
        if std::thread::panicking() {
            let mut notes = self.ctx.notes.lock().unwrap_or_else(|e| e.into_inner());
            notes.push(self.web.log_tail(40));
        }
    }
}

#[track_caller]
fn expect(answer: &str, prefix: &str, what: &str) {
    assert!(
        answer.starts_with(prefix),
        "{what}: expected an answer starting with {prefix:?}, got {answer:?}"
    );
}

/// Signs in with the user's main password from the sign-in page; returns on the page that brings.
fn sign_in(b: &mut Browser, user: &str) {
    b.open("/sign-in", "sign-in");
    b.form_with_field("password")
        .fill("user", user)
        .fill("password", PASSWORD)
        .submit("password-sent");
}

/// Enters a TOTP code on the code page.
fn enter_code(b: &mut Browser, code: &str, step: &str) {
    b.form_with_field("code").fill("code", code).submit(step);
}

/// A 6-digit code that is none of the codes around now (so certainly wrong).
fn wrong_code(secret: &str) -> String {
    let around: Vec<String> = (0..6)
        .map(|i| totp_code(secret, now() + i * 30 - 60))
        .collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !around.contains(c))
        .expect("six codes cannot cover ten candidates")
}

#[track_caller]
fn expect_page(b: &Browser, path: &str, what: &str) {
    let shown = b.path();
    assert_eq!(
        shown,
        path,
        "{what}: expected the page {path}, the browser shows {shown}:\n{}",
        b.page_text()
    );
}

/// An app password as the page shows it: four groups of four characters (separated by dashes or spaces).
#[track_caller]
fn expect_app_password_shape(shown: &str) {
    let groups: Vec<&str> = shown.split([' ', '-']).collect();
    assert!(
        groups.len() == 4
            && groups
                .iter()
                .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_alphanumeric())),
        "the new app password should show as four groups of four characters, got {shown:?}"
    );
}

// --- the scenarios

/// The harness by itself, on a page that is not mailpass's: chromedriver starts chromium, the browser opens
/// a page, fills in a form and submits it, screenshots land in target/, the plain HTTP client reads the same
/// server; and when the browser is gone, none of its processes is left.
fn harness_self_check(t: &Ctx) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("www")).expect("www");
    std::fs::write(
        dir.path().join("www/index.html"),
        "<!doctype html><title>form</title><h1>Static</h1>\
         <form id=\"f\" action=\"/answer.html\"><input name=\"q\"><button type=\"submit\">Go</button></form>\
         <a id=\"file\" href=\"/file.txt\" download>a file</a>",
    )
    .expect("index.html");
    std::fs::write(dir.path().join("www/file.txt"), "downloaded\n").expect("file.txt");
    std::fs::write(
        dir.path().join("www/answer.html"),
        "<!doctype html><title>answer</title><p id=\"answer\">Answered</p>",
    )
    .expect("answer.html");
    let site = StaticSite::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let page = site::http()
        .get(format!("{}/", site.origin))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("GET {}/: {e}", site.origin));
    assert!(page.contains("Static"), "{page}");

    let mut b = Browser::start(t.name, &site.origin);
    b.open("/", "static-page");
    assert_eq!(b.text("h1"), "Static");
    let (name, bytes) = b.download("#file", "downloaded");
    assert_eq!(
        (name.as_str(), bytes.as_slice()),
        ("file.txt", &b"downloaded\n"[..])
    );
    b.form("#f").fill("q", "hello world").submit("answer");
    assert_eq!(b.path(), "/answer.html");
    assert_eq!(b.text("#answer"), "Answered");
    let shots: Vec<_> = std::fs::read_dir(chrome::screenshot_dir())
        .expect("screenshot dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(t.name))
        .collect();
    assert_eq!(shots.len(), 3, "one screenshot per step: {shots:?}");
    for shot in &shots {
        let png = std::fs::read(shot.path()).expect("read screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{:?} is no PNG",
            shot.path()
        );
    }

    let marker = b.profile_marker();
    assert!(
        !process::mentioning(&marker).is_empty(),
        "chromium runs with its profile in {marker}"
    );
    drop(b);
    let left = process::mentioning(&marker);
    assert!(left.is_empty(), "browser processes left behind: {left:?}");
    let pid = site.pid().expect("running");
    drop(site);
    assert!(
        !process::alive(pid),
        "python3 -m http.server (pid {pid}) left behind"
    );
}

/// A user with TOTP signs in: after the right password the page asks for the code; a wrong code keeps them on
/// that page; the right one brings the overview.
fn sign_in_with_password_and_code(t: &Ctx) {
    let site = t.own_site();
    let user = site.add_user();
    let secret = site.enable_totp(&user);
    let mut b = t.browser(&site);

    sign_in(&mut b, &user);
    expect_page(
        &b,
        "/sign-in/code",
        "the right password of a user with TOTP",
    );

    enter_code(&mut b, &wrong_code(&secret), "wrong-code");
    expect_page(&b, "/sign-in/code", "a wrong code");
    assert!(
        b.has(".error[role=alert]"),
        "a wrong code is said to be wrong:\n{}",
        b.page_text()
    );

    // The code that confirmed the enrolment is spent: the next step's, within the skew allowed.
    enter_code(&mut b, &totp_code(&secret, now() + 30), "overview");
    expect_page(&b, "/", "the right code");
    assert!(
        b.page_text().contains(&user),
        "the overview names the user signed in:\n{}",
        b.page_text()
    );
}

/// A user makes an app password for IMAP in the page, reads it off the page once, and a mail client logs in
/// with it through Dovecot; once it is revoked in the page, Dovecot refuses it.
fn app_password_made_and_revoked_in_the_page(t: &Ctx) {
    let site = t.site_with_dovecot();
    let user = site.add_user();
    let mut b = t.browser(&site);
    sign_in(&mut b, &user);
    expect_page(&b, "/", "the main password of a user without TOTP");

    b.open("/app-passwords", "app-passwords");
    b.form("#new-app-password-form")
        .fill("name", "Phone")
        .check_only("services", "imap")
        .select("expires", "30d")
        .submit("app-password-created");
    let shown = b.text("code#new-app-password");
    expect_app_password_shape(&shown);
    // What the admin sees: the name, the one service ticked, an expiry.
    let list = json(&site.admin(&["app-password", "list", &user, "--json"]));
    assert_eq!(list[0]["name"], "Phone", "{list}");
    assert_eq!(list[0]["services"], serde_json::json!(["imap"]), "{list}");
    assert!(list[0]["expires_at"].is_string(), "{list}");

    // Typed into the mail client as the page shows it.
    expect(
        &site.imap(&user, &shown),
        IMAP_OK,
        "IMAP LOGIN with the app password the page showed",
    );

    // Listed, and never shown again.
    b.open("/app-passwords", "app-passwords-listed");
    let row = "#app-passwords tr[data-name=\"Phone\"]";
    assert!(
        b.has(row),
        "the new app password is listed:\n{}",
        b.page_text()
    );
    assert!(
        !b.page_text().contains(&shown),
        "the app password must not be shown a second time:\n{}",
        b.page_text()
    );

    b.form(&format!("{row} form"))
        .submit("app-password-revoked");
    expect_page(&b, "/app-passwords", "after revoking");
    let list = json(&site.admin(&["app-password", "list", &user, "--json"]));
    assert_eq!(list[0]["status"], "revoked", "{list}");
    expect(
        &site.imap(&user, &shown),
        IMAP_FAILED,
        "IMAP LOGIN with the app password revoked in the page",
    );
}

/// A user turns TOTP on in the page: the QR code and the secret are shown, a code from the secret confirms
/// it; the admin CLI sees it active; after signing out, signing in asks for a code.
fn totp_enrolled_in_the_page(t: &Ctx) {
    let site = t.own_site();
    let user = site.add_user();
    let mut b = t.browser(&site);
    sign_in(&mut b, &user);
    expect_page(&b, "/", "the main password of a user without TOTP");

    b.open("/totp", "totp");
    b.form("#totp-enroll-form").submit("totp-set-up");
    assert!(b.has("svg#totp-qr"), "a QR code:\n{}", b.page_text());
    let shown = b.text("code#totp-secret");
    assert!(
        shown.split(' ').all(|g| !g.is_empty() && g.len() <= 4),
        "the secret shows in groups of four separated by spaces: {shown:?}"
    );
    let secret = shown.replace(' ', "");
    b.form("#totp-confirm-form")
        .fill("code", &totp_code(&secret, now()))
        .submit("totp-confirmed");
    assert_eq!(
        site.totp_state(&user),
        "active",
        "after confirming in the page"
    );
    assert!(
        b.has("#recovery-codes li"),
        "turning TOTP on shows the recovery codes:\n{}",
        b.page_text()
    );

    b.form("#sign-out-form").submit("signed-out");
    expect_page(&b, "/sign-in", "after signing out");
    sign_in(&mut b, &user);
    expect_page(&b, "/sign-in/code", "signing in again, now with TOTP");
    // The confirming code is spent: the next step's.
    enter_code(&mut b, &totp_code(&secret, now() + 30), "overview");
    expect_page(&b, "/", "the right code");
}

/// A user downloads the Apple profile for their iPhone from the app-password page: the browser saves a
/// `.mobileconfig` that holds a fresh app password in its IMAP and SMTP payloads, with the server's address
/// and ports, and the app password logs in over IMAP. (Its Content-Type and headers: tests/web_totp.rs.)
fn apple_profile(t: &Ctx) {
    let site = t.site_with_dovecot();
    let user = site.add_user();
    let mut b = t.browser(&site);
    sign_in(&mut b, &user);
    expect_page(&b, "/", "the main password of a user without TOTP");

    b.open("/app-passwords", "app-passwords");
    let (file, body) = b.download("#apple-profile-form button", "profile-downloaded");
    assert_eq!(file, "127.0.0.1.mobileconfig", "the file the browser saved");

    let profile = plist::Value::from_reader(std::io::Cursor::new(&body)).unwrap_or_else(|e| {
        panic!(
            "the profile is no plist ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    let payloads = profile
        .as_dictionary()
        .and_then(|d| d.get("PayloadContent"))
        .and_then(plist::Value::as_array)
        .unwrap_or_else(|| panic!("no PayloadContent array in {profile:?}"));
    let mail = payloads
        .iter()
        .filter_map(plist::Value::as_dictionary)
        .find(|p| p.contains_key("IncomingPassword"))
        .unwrap_or_else(|| panic!("no payload with IncomingPassword in {profile:?}"));
    let string = |key: &str| {
        mail.get(key)
            .and_then(plist::Value::as_string)
            .unwrap_or_else(|| panic!("no string {key} in the mail payload {mail:?}"))
            .to_string()
    };
    let port = |key: &str| {
        mail.get(key)
            .and_then(plist::Value::as_unsigned_integer)
            .unwrap_or_else(|| panic!("no integer {key} in the mail payload {mail:?}"))
    };
    let Db::Dovecot { route, .. } = &site.db else {
        unreachable!("site_with_dovecot")
    };
    assert_eq!(string("IncomingMailServerUsername"), user);
    assert_eq!(string("IncomingMailServerHostName"), "127.0.0.1");
    assert_eq!(
        port("IncomingMailServerPortNumber"),
        u64::from(route.ports.imap)
    );
    assert_eq!(string("OutgoingMailServerUsername"), user);
    assert_eq!(
        port("OutgoingMailServerPortNumber"),
        u64::from(route.ports.submission)
    );
    let incoming = string("IncomingPassword");
    assert_eq!(
        string("OutgoingPassword"),
        incoming,
        "IMAP and SMTP get the same app password"
    );

    expect(
        &site.imap(&user, &incoming),
        IMAP_OK,
        "IMAP LOGIN with the app password from the Apple profile",
    );
    // One app password for mail and sending, which the page lists like any other.
    let list = json(&site.admin(&["app-password", "list", &user, "--json"]));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        list[0]["services"],
        serde_json::json!(["imap", "smtp"]),
        "{list}"
    );
    let name = list[0]["name"].as_str().expect("name").to_string();
    b.open("/app-passwords", "app-passwords-with-profile");
    assert!(
        b.has(&format!("#app-passwords tr[data-name=\"{name}\"]")),
        "the profile's app password {name:?} is listed:\n{}",
        b.page_text()
    );
}
