//! The self-service page over HTTP, against the real server on loopback: signing in and out, sessions,
//! the CSRF and Origin checks, headers, failures and bans, app passwords, re-authentication and the
//! password change. (TOTP enrolment and the Apple profile: tests/web_totp.rs; a real browser:
//! tests/browser.rs.)

mod common;
#[path = "web/cookies.rs"]
mod cookies;
#[path = "web/harness.rs"]
mod harness;

use common::forensics::{
    DUMMY_SALT, FINGERPRINT_V2, argon2_output, db, keyed, keyed_full, tag_key,
};
use common::{Env, TEST_CONFIG, json, now, totp_code};
use harness::{Page, Web, age_sign_in};

const ALICE: &str = "alice@example.org";
const ALICE_PW: &str = "correct horse battery staple";

/// A proxy on loopback that the page believes, so that a test can come from any address (loopback itself is
/// never banned).
fn behind_proxy(extra: &str) -> Env {
    Env::with_config(&format!(
        "{TEST_CONFIG}\n[web]\ntrusted_proxies = [\"127.0.0.1\"]\n{extra}"
    ))
}

fn alice() -> Env {
    let env = behind_proxy("");
    env.add_user(ALICE, ALICE_PW);
    env
}

/// Turns TOTP on for the user through the CLI; returns the base32 secret.
fn enable_totp(env: &Env, user: &str) -> String {
    let enrolled = json(&env.ok(&["totp", "enroll", user, "--json"], ""));
    let secret = enrolled["secret"].as_str().expect("secret").to_string();
    // A code of the previous step, so that the current one is still unused for the test.
    let code = totp_code(&secret, now() - 30);
    env.ok(&["totp", "confirm", user, &code], "");
    secret
}

fn failures(env: &Env) -> Vec<serde_json::Value> {
    json(&env.ok(&["failures", "list", "--json"], ""))
        .as_array()
        .expect("list")
        .clone()
}

fn assert_signed_in(page: &Page) {
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), Some("/"));
}

fn assert_sent_to_sign_in(page: &Page) {
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), Some("/sign-in"));
}

// ---------------------------------------------------------------------------------------------------------------
// Signing in
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_user_without_2fa_signs_in_with_the_password_and_sees_the_overview() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    assert_sent_to_sign_in(&browser.get("/"));
    assert_signed_in(&browser.sign_in(ALICE, ALICE_PW));
    let overview = browser.get("/");
    assert_eq!(overview.status, 200);
    assert!(overview.contains("Two-factor authentication is off"));
    assert!(overview.contains(ALICE));
}

#[test]
fn the_session_cookie_is_http_only_and_strict_and_secure_with_an_https_origin() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    let page = browser.sign_in(ALICE, ALICE_PW);
    let cookie = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("mailpass="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );

    let env = behind_proxy("origin = \"https://mail.example.org/account\"\n");
    env.add_user(ALICE, ALICE_PW);
    let web = Web::start_with_origin(&env, Some("https://mail.example.org"));
    let mut browser = web.visitor();
    let form = browser.get("/account/sign-in");
    let pre = form
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-mailpass_pre="))
        .unwrap_or_else(|| panic!("{:?}", form.set_cookies));
    assert!(pre.contains("; Secure") && pre.contains("Path=/"), "{pre}");
    let csrf = form.csrf();
    let page = browser.post(
        "/account/sign-in",
        &[("csrf", &csrf), ("user", ALICE), ("password", ALICE_PW)],
    );
    assert_eq!(page.location(), Some("/account/"), "{}", page.body);
    let cookie = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-mailpass="))
        .unwrap_or_else(|| panic!("{:?}", page.set_cookies));
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
}

#[test]
fn with_2fa_the_password_leads_to_the_code_and_only_a_right_unused_code_signs_in() {
    let env = alice();
    let secret = enable_totp(&env, ALICE);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    let page = browser.sign_in(ALICE, ALICE_PW);
    assert_eq!(page.location(), Some("/sign-in/code"));
    // Half signed in is not signed in.
    assert_sent_to_sign_in(&browser.get("/"));

    let wrong = browser.enter_code("000000");
    assert_eq!(wrong.status, 401);
    assert!(wrong.contains("That code is wrong"));
    // The code the CLI's confirm used is spent: a replay is refused like a wrong one.
    let replay = browser.enter_code(&totp_code(&secret, now() - 30));
    assert_eq!(replay.status, 401);

    assert_signed_in(&browser.enter_code(&totp_code(&secret, now())));
    assert_eq!(browser.get("/").status, 200);
    let reasons: Vec<String> = failures(&env)
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f["service"].as_str().unwrap_or("-"),
                f["reason"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert!(
        reasons.contains(&"web/totp_wrong".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"web/totp_replayed".to_string()),
        "{reasons:?}"
    );
}

#[test]
fn a_recovery_code_signs_in_once() {
    let env = alice();
    enable_totp(&env, ALICE);
    let codes = json(&env.ok(&["totp", "recovery-codes", ALICE, "--json"], ""));
    let code = codes["codes"][0].as_str().expect("code").to_string();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    assert_signed_in(&browser.enter_code(&code));

    let mut other = web.visitor();
    other.sign_in(ALICE, ALICE_PW);
    assert_eq!(other.enter_code(&code).status, 401);
}

#[test]
fn an_app_password_never_opens_the_page() {
    let env = alice();
    let app = env.add_app_password(ALICE, "Phone", &[]);
    let web = Web::start(&env);
    let page = web.visitor().sign_in(ALICE, &app);
    assert_eq!(page.status, 401);
    assert!(page.contains("The user name or password is wrong."));
}

#[test]
fn an_unknown_user_gets_the_same_answer_as_a_wrong_password_at_the_cost_of_a_real_one() {
    let env = alice();
    let web = Web::start(&env);
    let wrong = web.visitor().sign_in(ALICE, "a guess");
    let nobody = "nobody@example.org";
    let unknown = web.visitor().sign_in(nobody, "a guess");
    assert_eq!(wrong.status, unknown.status);
    // The same page but for the name typed, which the form shows again.
    assert_eq!(
        wrong
            .body
            .replace(ALICE, "NAME")
            .replace(&wrong.csrf(), "CSRF"),
        unknown
            .body
            .replace(nobody, "NAME")
            .replace(&unknown.csrf(), "CSRF"),
    );

    // The unknown user's failure was fingerprinted by an argon2 run at Alice's parameters, under a salt of
    // its own: the refusal cost what refusing Alice costs.
    let key = tag_key(&env);
    let salt = &keyed_full(&key, DUMMY_SALT, &[nobody.as_bytes()])[..16];
    let alice_phc: String = db(&env)
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .expect("hash");
    let stored: Vec<u8> = db(&env)
        .query_row(
            "SELECT fingerprint FROM failures WHERE user = ?1 AND service = 'web'",
            [nobody],
            |r| r.get(0),
        )
        .expect("fingerprint");
    let at_alices = argon2_output(&alice_phc, b"a guess", Some(salt));
    assert_eq!(
        keyed(&key, FINGERPRINT_V2, &[nobody.as_bytes(), &at_alices]),
        stored
    );
}

#[test]
fn disabled_and_external_users_cannot_sign_in_and_get_the_common_answer() {
    let env = alice();
    env.ok(&["user", "disable", ALICE], "");
    env.ok(&["user", "add", "bob@example.org", "--external"], "");
    let web = Web::start(&env);
    for (user, password) in [
        (ALICE, ALICE_PW),
        ("bob@example.org", "his directory password"),
    ] {
        let page = web.visitor().sign_in(user, password);
        assert_eq!(page.status, 401, "{user}");
        assert!(
            page.contains("The user name or password is wrong."),
            "{user}"
        );
    }
    let reasons: Vec<String> = failures(&env)
        .iter()
        .map(|f| f["reason"].as_str().unwrap_or("-").to_string())
        .collect();
    assert!(
        reasons.contains(&"disabled_user".into()) && reasons.contains(&"external_refused".into())
    );
}

#[test]
fn self_service_turned_off_for_a_user_or_for_all_refuses_the_right_password_and_ends_sessions() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    env.ok(&["user", "self-service", ALICE, "off"], "");
    assert_sent_to_sign_in(&browser.get("/"));
    // The common answer: a message of its own would confirm the password.
    let page = web.visitor().sign_in(ALICE, ALICE_PW);
    assert_eq!(page.status, 401);
    assert!(page.contains("The user name or password is wrong."));
    assert_eq!(failures(&env)[0]["reason"], "self_service_off");
    assert_eq!(failures(&env)[0]["counted"], false);
    env.ok(&["user", "self-service", ALICE, "on"], "");
    assert_signed_in(&web.visitor().sign_in(ALICE, ALICE_PW));
    drop(web);

    let env = behind_proxy("self_service = false\n");
    env.add_user(ALICE, ALICE_PW);
    let web = Web::start(&env);
    assert!(
        web.visitor()
            .get("/sign-in")
            .contains("This page is turned off.")
    );
    let page = web.visitor().sign_in(ALICE, ALICE_PW);
    assert_eq!(page.status, 403);
    assert!(failures(&env).is_empty(), "no password was even checked");
}

// ---------------------------------------------------------------------------------------------------------------
// Failures and bans
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn failed_sign_ins_are_recorded_as_web_and_counted_and_a_banned_address_is_refused_before_hashing()
{
    let env = Env::with_config(&format!(
        "{TEST_CONFIG}\n[bans]\nthreshold = 3\n\n[web]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ));
    env.add_user(ALICE, ALICE_PW);
    let web = Web::start(&env);
    for guess in ["guess one", "guess two", "guess three"] {
        let mut attacker = web.visitor();
        attacker.ip = Some("203.0.113.7".into());
        assert_eq!(attacker.sign_in(ALICE, guess).status, 401);
    }
    let rows = failures(&env);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(row["service"], "web");
        assert_eq!(row["ip"], "203.0.113.7");
        assert_eq!(row["reason"], "wrong_password");
        assert_eq!(row["counted"], true);
    }
    let bans = json(&env.ok(&["ban", "list", "--json"], ""));
    assert!(bans.to_string().contains("203.0.113.7"), "{bans}");

    // Now even the right password is refused, with no argon2 run: the refusal has no fingerprint.
    let mut attacker = web.visitor();
    attacker.ip = Some("203.0.113.7".into());
    let page = attacker.sign_in(ALICE, ALICE_PW);
    assert_eq!(page.status, 401);
    assert!(page.contains("Too many failed sign-ins"));
    let banned: Option<Vec<u8>> = db(&env)
        .query_row(
            "SELECT fingerprint FROM failures WHERE reason = 'banned'",
            [],
            |r| r.get(0),
        )
        .expect("a banned refusal is recorded");
    assert_eq!(banned, None);
    // A mail login from there is refused too: one ban policy for both doors.
    let mail = env
        .login(ALICE, ALICE_PW)
        .ip("203.0.113.7")
        .service("imap")
        .run();
    assert!(!mail.accepted(), "{mail:?}");

    // The page logs each decision the way mail logins are logged.
    let log = web.log().join("\n");
    assert!(
        log.contains("result=fail reason=wrong_password user=alice@example.org ip=203.0.113.7 service=web step=password counted=yes"),
        "{log}"
    );
    assert!(!log.contains("guess"), "no secret in the log: {log}");
}

#[test]
fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let env = Env::new();
    env.add_user(ALICE, ALICE_PW);
    let web = Web::start(&env);
    let mut spoofer = web.visitor();
    spoofer.ip = Some("198.51.100.1".into());
    spoofer.sign_in(ALICE, "a guess");
    assert_eq!(failures(&env)[0]["ip"], "127.0.0.1");
}

// ---------------------------------------------------------------------------------------------------------------
// Forms from elsewhere, headers
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_form_without_its_csrf_token_or_from_another_origin_is_refused() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    let csrf = browser.get("/app-passwords").csrf();
    let create = [("name", "Phone"), ("services", "imap"), ("expires", "")];

    let mut no_token = create.to_vec();
    no_token.push(("csrf", "not-the-token"));
    assert_eq!(browser.post("/app-passwords", &no_token).status, 403);
    assert_eq!(browser.post("/app-passwords", &create).status, 403);

    let mut with_token = create.to_vec();
    with_token.push(("csrf", &csrf));
    let foreign = browser.post_from(Some("https://evil.example"), "/app-passwords", &with_token);
    assert_eq!(foreign.status, 403);
    let no_origin = browser.post_from(None, "/app-passwords", &with_token);
    assert_eq!(no_origin.status, 403);
    // Another visitor's token is no good either.
    let mut other = web.visitor();
    other.sign_in(ALICE, ALICE_PW);
    assert_eq!(other.post("/app-passwords", &with_token).status, 403);
    // Nothing was created by any of them.
    assert!(
        !env.ok(&["app-password", "list", ALICE], "")
            .contains("Phone")
    );

    assert_eq!(browser.post("/app-passwords", &with_token).status, 200);
    // A sign-in form without its pre-session token cannot sign anyone in (login CSRF).
    let mut fresh = web.visitor();
    let page = fresh.post(
        "/sign-in",
        &[("user", ALICE), ("password", ALICE_PW), ("csrf", "x")],
    );
    assert_eq!(page.status, 403);
}

#[test]
fn every_page_forbids_framing_inline_script_and_caching() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    let sign_in = browser.get("/sign-in");
    browser.sign_in(ALICE, ALICE_PW);
    let pages = [
        sign_in,
        browser.get("/"),
        browser.get("/app-passwords"),
        browser.get("/totp"),
        browser.get("/password"),
        browser.get("/style.css"),
    ];
    for page in pages {
        assert_eq!(page.status, 200, "{}", page.body);
        let csp = page.header("content-security-policy").expect("CSP");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("referrer-policy"), Some("same-origin"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert!(!page.body.contains("<script>"), "no inline script");
        assert!(
            !page.body.contains("http://") || page.body.contains("127.0.0.1"),
            "nothing from elsewhere"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_session_ends_when_idle_too_long_or_too_old_and_is_deleted() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    assert_eq!(browser.get("/").status, 200);
    // The default idle limit is 30 minutes.
    db(&env)
        .execute("UPDATE web_sessions SET seen_at = seen_at - 31 * 60", [])
        .expect("age");
    assert_sent_to_sign_in(&browser.get("/"));
    let left: i64 = db(&env)
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 0);

    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    // Used all along, but signed in 13 hours ago: past the 12-hour absolute limit.
    db(&env)
        .execute(
            "UPDATE web_sessions SET created_at = created_at - 13 * 3600",
            [],
        )
        .expect("age");
    assert_sent_to_sign_in(&browser.get("/"));
}

#[test]
fn signing_out_ends_the_session_for_good_and_everywhere_ends_them_all() {
    let env = alice();
    let web = Web::start(&env);
    let mut laptop = web.visitor();
    let mut phone = web.visitor();
    laptop.sign_in(ALICE, ALICE_PW);
    phone.sign_in(ALICE, ALICE_PW);
    let stolen = laptop.cookies.clone();

    let csrf = laptop.get("/").csrf();
    assert_sent_to_sign_in(&laptop.post("/sign-out", &[("csrf", &csrf)]));
    assert!(!laptop.cookies.contains_key("mailpass"));
    // The old cookie, kept by someone, opens nothing.
    let mut thief = web.visitor();
    thief.cookies = stolen;
    assert_sent_to_sign_in(&thief.get("/"));
    assert_eq!(phone.get("/").status, 200);

    laptop.sign_in(ALICE, ALICE_PW);
    let csrf = laptop.get("/").csrf();
    laptop.post("/sign-out-everywhere", &[("csrf", &csrf)]);
    assert_sent_to_sign_in(&phone.get("/"));
}

#[test]
fn the_admin_lists_and_ends_a_users_sessions() {
    let env = alice();
    env.add_user("bob@example.org", "bobs password");
    let web = Web::start(&env);
    let mut alices = web.visitor();
    alices.sign_in(ALICE, ALICE_PW);
    let mut bobs = web.visitor();
    bobs.sign_in("bob@example.org", "bobs password");

    let sessions = json(&env.ok(&["user", "sessions", ALICE, "--json"], ""));
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert_eq!(sessions[0]["user"], ALICE);
    assert_eq!(sessions[0]["signed_in"], true);
    let all = json(&env.ok(&["user", "sessions", "--json"], ""));
    assert_eq!(all.as_array().map(Vec::len), Some(2));

    env.ok(&["user", "sign-out", ALICE], "");
    assert_sent_to_sign_in(&alices.get("/"));
    assert_eq!(bobs.get("/").status, 200);
    // The database never holds a token a thief could send.
    let stored: Vec<u8> = db(&env)
        .query_row("SELECT tag FROM web_sessions", [], |r| r.get(0))
        .expect("tag");
    let cookie = bobs.cookies.get("mailpass").expect("cookie");
    assert!(!String::from_utf8_lossy(&stored).contains(cookie.as_str()));
    assert_eq!(stored.len(), 16);
}

// ---------------------------------------------------------------------------------------------------------------
// App passwords
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn an_app_password_made_on_the_page_is_shown_once_logs_in_where_scoped_and_stops_when_revoked() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    let created = browser.submit(
        "/app-passwords",
        "/app-passwords",
        &[
            ("name", "iPhone Mail"),
            ("services", "imap"),
            ("services", "smtp"),
            ("expires", "90d"),
        ],
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let password = created.text_of("new-app-password").expect("shown");
    let groups: Vec<&str> = password.split('-').collect();
    assert_eq!(groups.len(), 4, "{password}");
    assert!(groups.iter().all(|g| g.len() == 4), "{password}");
    assert!(
        created.contains(ALICE) && created.contains("993"),
        "the set-up text"
    );

    let list = browser.get("/app-passwords");
    assert!(list.contains("data-name=\"iPhone Mail\""));
    assert!(!list.contains(&password), "shown once only");
    assert!(env.login(ALICE, &password).service("imap").run().accepted());
    assert!(env.login(ALICE, &password).service("smtp").run().accepted());
    assert!(!env.login(ALICE, &password).service("pop3").run().accepted());
    let listed = json(&env.ok(&["app-password", "list", ALICE, "--json"], ""));
    assert!(listed[0]["expires_at"].is_string(), "{listed}");

    let revoked = browser.submit(
        "/app-passwords",
        "/app-passwords/revoke",
        &[("name", "iPhone Mail")],
    );
    assert_eq!(revoked.location(), Some("/app-passwords?notice=revoked"));
    assert!(!env.login(ALICE, &password).service("imap").run().accepted());
    assert!(
        !browser
            .get("/app-passwords")
            .contains("data-name=\"iPhone Mail\"")
    );
    // Each change is on the record: who, from where, what (never the password).
    let log = web.log().join("\n");
    assert!(log.contains(
        "action=app_password_created user=alice@example.org ip=127.0.0.1 service=web name=\"iPhone Mail\" services=imap,smtp"
    ), "{log}");
    assert!(
        log.contains("action=app_password_revoked user=alice@example.org"),
        "{log}"
    );
    assert!(!log.contains(&password), "{log}");
}

#[test]
fn the_create_form_refuses_what_the_cli_refuses_in_plain_words() {
    let env = alice();
    env.add_app_password(ALICE, "Phone", &[]);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    let taken = browser.submit(
        "/app-passwords",
        "/app-passwords",
        &[("name", "Phone"), ("services", "imap")],
    );
    assert_eq!(taken.status, 400);
    assert!(
        taken.contains("already have an app password named"),
        "{}",
        taken.body
    );
    let none = browser.submit("/app-passwords", "/app-passwords", &[("name", "Laptop")]);
    assert!(none.contains("Choose at least one service."));
    let odd = browser.submit(
        "/app-passwords",
        "/app-passwords",
        &[("name", "Laptop"), ("services", "imap"), ("expires", "5y")],
    );
    assert!(odd.contains("Choose when it expires"));
    let blank = browser.submit(
        "/app-passwords",
        "/app-passwords",
        &[("name", "  "), ("services", "imap")],
    );
    assert!(blank.contains("Give it a name"));
}

#[test]
fn revoke_all_stops_every_app_password() {
    let env = alice();
    let phone = env.add_app_password(ALICE, "Phone", &[]);
    let laptop = env.add_app_password(ALICE, "Laptop", &[]);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    browser.submit("/app-passwords", "/app-passwords/revoke-all", &[]);
    for app in [phone, laptop] {
        assert!(!env.login(ALICE, &app).service("imap").run().accepted());
    }
}

#[test]
fn a_mail_app_that_tried_the_main_password_is_listed_with_a_way_to_replace_it() {
    let env = alice();
    enable_totp(&env, ALICE);
    env.login(ALICE, ALICE_PW)
        .service("imap")
        .ip("192.0.2.44")
        .run();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    let secret_from_db: Vec<u8> = db(&env)
        .query_row("SELECT totp_secret FROM users", [], |r| r.get(0))
        .expect("secret");
    let code = totp_code(&base32(&secret_from_db), now());
    browser.enter_code(&code);
    let overview = browser.get("/");
    assert!(overview.contains("192.0.2.44"), "{}", overview.body);
    assert!(
        overview.contains("/app-passwords?name=IMAP+from+192.0.2.44&#38;service=imap"),
        "{}",
        overview.body
    );
    let form = browser.get("/app-passwords?name=IMAP+from+192.0.2.44&service=imap");
    assert!(form.contains("value=\"IMAP from 192.0.2.44\""));
}

/// RFC 4648 base32 without padding, as authenticator apps read a secret.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Re-authentication and the password
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn changing_the_password_needs_a_fresh_sign_in_and_signs_out_every_other_session() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    let mut other = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    other.sign_in(ALICE, ALICE_PW);
    // Fresh from signing in: the form opens at once.
    assert_eq!(browser.get("/password").status, 200);
    age_sign_in(&env);
    let page = browser.get("/password");
    assert_eq!(page.location(), Some("/reauth?next=%2Fpassword"));
    let wrong = browser.submit(
        "/reauth?next=/password",
        "/reauth",
        &[("password", "a guess"), ("next", "/password")],
    );
    assert_eq!(wrong.status, 401);
    let right = browser.submit(
        "/reauth?next=/password",
        "/reauth",
        &[("password", ALICE_PW), ("next", "/password")],
    );
    assert_eq!(right.location(), Some("/password"));

    let differ = browser.submit(
        "/password",
        "/password",
        &[("new_password", "a new one"), ("confirm", "another one")],
    );
    assert!(differ.contains("The two passwords differ."));
    let changed = browser.submit(
        "/password",
        "/password",
        &[
            ("new_password", "a brand new password"),
            ("confirm", "a brand new password"),
        ],
    );
    assert_eq!(changed.status, 200);
    assert!(changed.contains("Your password was changed"));
    // This browser goes on; the other session is over; only the new password works.
    assert_eq!(browser.get("/").status, 200);
    assert_sent_to_sign_in(&other.get("/"));
    assert!(!env.login(ALICE, ALICE_PW).service("imap").run().accepted());
    assert!(
        env.login(ALICE, "a brand new password")
            .service("imap")
            .run()
            .accepted()
    );
    let hash: String = db(&env)
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[test]
fn the_new_password_follows_the_policy() {
    let env = Env::with_config(&TEST_CONFIG.replace("min_length = 1", "min_length = 12"));
    env.add_user(ALICE, ALICE_PW);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    let short = browser.submit(
        "/password",
        "/password",
        &[("new_password", "short"), ("confirm", "short")],
    );
    assert_eq!(short.status, 400);
    assert!(short.contains("12"), "{}", short.body);
    assert!(env.login(ALICE, ALICE_PW).service("imap").run().accepted());
}

#[test]
fn re_authentication_with_2fa_needs_the_code_too_and_goes_back_only_to_the_page() {
    let env = alice();
    let secret = enable_totp(&env, ALICE);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    browser.enter_code(&totp_code(&secret, now()));
    age_sign_in(&env);
    let form = browser.get("/reauth?next=/password");
    assert!(form.contains("name=\"code\""));
    let no_code = browser.submit(
        "/reauth?next=/password",
        "/reauth",
        &[("password", ALICE_PW), ("next", "/password")],
    );
    assert_eq!(no_code.status, 401);
    // An address elsewhere is never where a re-authentication leads.
    let elsewhere = browser.submit(
        "/reauth",
        "/reauth",
        &[
            ("password", ALICE_PW),
            ("code", &totp_code(&secret, now() + 30)),
            ("next", "https://evil.example/"),
        ],
    );
    assert_eq!(elsewhere.location(), Some("/"), "{}", elsewhere.body);
}

// ---------------------------------------------------------------------------------------------------------------
// Two programs, one database
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_files_beside_a_group_shared_database_are_shared_with_the_group_too() {
    use std::os::unix::fs::PermissionsExt;
    let env = alice();
    std::fs::set_permissions(&env.db, std::fs::Permissions::from_mode(0o660)).expect("chmod");
    // A sign-in on the page takes an argon2 slot; a ban rewrites the ban list.
    let web = Web::start(&env);
    web.visitor().sign_in(ALICE, ALICE_PW);
    env.ok(&["ban", "add", "192.0.2.1"], "");
    for suffix in [".argon2.0", ".argon2.queue", ".bans", ".bans.lock"] {
        let path = env.path(&format!("mailpass.db{suffix}"));
        let Ok(meta) = std::fs::metadata(&path) else {
            // The queue exists only once someone had to wait.
            assert_eq!(suffix, ".argon2.queue", "{} is missing", path.display());
            continue;
        };
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o660,
            "{}",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What a review as an attacker found
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn a_session_left_open_cannot_make_an_app_password_without_the_password_again() {
    let env = alice();
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    age_sign_in(&env);
    let form = [("name", "Backdoor"), ("services", "imap"), ("expires", "")];
    let page = browser.submit("/app-passwords", "/app-passwords", &form);
    assert_eq!(page.location(), Some("/reauth?next=%2Fapp-passwords"));
    let profile = browser.submit("/app-passwords", "/apple-profile", &[]);
    assert_eq!(profile.location(), Some("/reauth?next=%2Fapp-passwords"));
    assert!(
        !env.ok(&["app-password", "list", ALICE], "")
            .contains("Backdoor")
    );
    assert!(
        !env.ok(&["app-password", "list", ALICE], "")
            .contains("profile")
    );

    browser.submit(
        "/reauth",
        "/reauth",
        &[("password", ALICE_PW), ("next", "/app-passwords")],
    );
    assert_eq!(
        browser
            .submit("/app-passwords", "/app-passwords", &form)
            .status,
        200
    );
}

#[test]
fn a_password_typed_into_the_code_field_leaves_no_fast_fingerprint() {
    let env = alice();
    enable_totp(&env, ALICE);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    browser.enter_code(ALICE_PW);
    browser.enter_code("another mistake");
    browser.enter_code("123456");
    let prints: Vec<Vec<u8>> = {
        let db = db(&env);
        let mut stmt = db
            .prepare("SELECT fingerprint FROM failures WHERE service = 'web' ORDER BY id")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    assert_eq!(prints.len(), 3);
    // Both mistakes are fingerprinted by the user name alone (one retry), never by what was typed.
    assert_eq!(prints[0], prints[1]);
    let key = tag_key(&env);
    let label = b"mailpass failed-code v1";
    assert_ne!(
        prints[0],
        keyed(&key, label, &[ALICE.as_bytes(), ALICE_PW.as_bytes()])
    );
    // A wrong code is its own fingerprint (a code is worth nothing a minute later).
    assert_eq!(
        prints[2],
        keyed(&key, label, &[ALICE.as_bytes(), b"123456"])
    );
}

#[test]
fn a_mangled_forwarded_address_counts_as_unparsed_not_as_the_proxy() {
    let env = alice();
    let web = Web::start(&env);
    for mangled in ["garbage", "203.0.113.12:5555", "198.51.100.3, "] {
        let mut attacker = web.visitor();
        attacker.ip = Some(mangled.into());
        attacker.sign_in(ALICE, "a guess");
    }
    let networks: Vec<String> = failures(&env)
        .iter()
        .map(|f| f["network"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(
        networks,
        ["unparsed", "unparsed", "unparsed"],
        "{:?}",
        failures(&env)
    );
}

#[test]
fn a_credential_changed_anywhere_ends_the_users_sessions() {
    let env = alice();
    let web = Web::start(&env);
    let check = |change: &dyn Fn()| {
        let mut browser = web.visitor();
        browser.sign_in(ALICE, ALICE_PW);
        assert_eq!(browser.get("/").status, 200);
        change();
        assert_sent_to_sign_in(&browser.get("/"));
    };
    // The admin sets the same password again: still a change of the credential.
    check(&|| {
        env.ok(
            &["user", "passwd", ALICE, "--password-stdin"],
            &format!("{ALICE_PW}\n"),
        );
    });
    // An import replaces the hash.
    check(&|| {
        let hash = common::doveadm_hash("SHA512-CRYPT", ALICE_PW);
        let file = env.path("users");
        std::fs::write(&file, format!("{ALICE}:{hash}\n")).expect("write");
        env.ok(
            &[
                "import",
                "passwd-file",
                "--update",
                file.to_str().expect("path"),
            ],
            "",
        );
    });
    // Two-factor authentication turned on (by an import of the secret) and off by the admin.
    check(&|| {
        env.ok(
            &["totp", "import", ALICE],
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n",
        );
    });
    env.ok(&["totp", "disable", ALICE], "");
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    env.ok(
        &["totp", "import", ALICE],
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n",
    );
    assert_sent_to_sign_in(&browser.get("/"));
}

#[test]
fn a_password_change_waits_for_an_argon2_slot_like_a_sign_in() {
    let env = Env::with_config(
        &TEST_CONFIG.replace("parallelism = 1\n", "parallelism = 1\nmax_concurrent = 1\n"),
    );
    env.add_user(ALICE, ALICE_PW);
    let web = Web::start(&env);
    let mut browser = web.visitor();
    browser.sign_in(ALICE, ALICE_PW);
    let csrf = browser.get("/password").csrf();
    // Someone else holds the only slot for longer than the page waits.
    let slot = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(env.path("mailpass.db.argon2.0"))
        .expect("slot");
    slot.lock().expect("lock");
    let new = "a brand new password";
    let page = browser.post(
        "/password",
        &[("csrf", &csrf), ("new_password", new), ("confirm", new)],
    );
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.contains("The server is busy."));
    drop(slot);
    assert!(
        env.login(ALICE, ALICE_PW).service("imap").run().accepted(),
        "unchanged"
    );
}

#[test]
fn a_client_that_never_finishes_its_request_is_cut_off_and_cannot_hold_up_a_stop() {
    use std::io::{Read, Write};
    let env = alice();
    let mut web = Web::start(&env);
    let address = web.url.trim_start_matches("http://").to_string();
    let stall = || {
        let mut socket = std::net::TcpStream::connect(&address).expect("connect");
        socket
            .write_all(b"GET /sign-in HTTP/1.1\r\nHost: x\r\n")
            .expect("half a request");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .expect("timeout");
        socket
    };
    // The headers never end: the server closes the connection after its header timeout.
    let mut slow = stall();
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server must close the connection, not the test give up: {read:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Nor may a form arrive a byte at a time: the request is answered 408 and the connection freed.
    let mut trickle = std::net::TcpStream::connect(&address).expect("connect");
    trickle
        .write_all(
            format!(
                "POST /sign-in HTTP/1.1\r\nHost: x\r\nOrigin: {}\r\nContent-Type: \
                 application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nuser=",
                web.origin
            )
            .as_bytes(),
        )
        .expect("headers and the start of a form");
    trickle
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .expect("timeout");
    let mut answer = [0u8; 12];
    trickle
        .read_exact(&mut answer)
        .expect("an answer before the form is complete");
    assert_eq!(&answer, b"HTTP/1.1 408");
    // The page still serves everyone else.
    assert_eq!(web.visitor().get("/sign-in").status, 200);
    // A stalled client does not keep SIGTERM from stopping the page.
    let _held = stall();
    let stopped = web.terminate(std::time::Duration::from_secs(120));
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");
    assert!(
        web.log().iter().any(|l| l == "mailpass web: stopped"),
        "{:?}",
        web.log()
    );
}

#[test]
fn cancelling_a_two_factor_set_up_ends_no_session_but_turning_it_off_ends_the_others() {
    let env = alice();
    let web = Web::start(&env);
    let mut laptop = web.visitor();
    let mut phone = web.visitor();
    laptop.sign_in(ALICE, ALICE_PW);
    phone.sign_in(ALICE, ALICE_PW);
    laptop.submit("/totp", "/totp/enroll", &[]);
    let cancelled = laptop.submit("/totp", "/totp/disable", &[]);
    assert_eq!(cancelled.location(), Some("/totp?notice=cancelled"));
    assert_eq!(
        phone.get("/").status,
        200,
        "a set-up that never worked changes no credential"
    );

    let secret = enable_totp(&env, ALICE);
    // Turning it on (here by the admin) ended both sessions.
    assert_sent_to_sign_in(&phone.get("/"));
    assert_sent_to_sign_in(&laptop.get("/"));
    for browser in [&mut laptop, &mut phone] {
        browser.sign_in(ALICE, ALICE_PW);
    }
    laptop.enter_code(&totp_code(&secret, now()));
    phone.enter_code(&totp_code(&secret, now() + 30));
    let off = laptop.submit("/totp", "/totp/disable", &[]);
    assert_eq!(off.location(), Some("/totp?notice=disabled"));
    assert_eq!(
        laptop.get("/").status,
        200,
        "the page that turned it off goes on"
    );
    assert_sent_to_sign_in(&phone.get("/"));
}
