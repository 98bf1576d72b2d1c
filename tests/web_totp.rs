//! The self-service page's two-factor settings and the Apple Mail profile, driven over HTTP against the real
//! `mailpass web` as a browser would: one scenario per test, named for what the user sees. What the page
//! turns on is checked where it counts: `mailpass totp status`, a sign-in with a recovery code, and a mail
//! login through `mailpass checkpassword` with the profile's app password.

mod common;
#[path = "web/cookies.rs"]
mod cookies;
#[path = "web/harness.rs"]
mod harness;

use common::{Env, TEST_CONFIG, decision, json, now, totp_code};
use harness::{Page, Visitor, Web, age_sign_in};

const ALICE: &str = "alice@example.org";
const ALICE_PW: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

fn alice(config: &str) -> Env {
    let env = Env::with_config(config);
    env.add_user(ALICE, ALICE_PW);
    env
}

/// Alice, signed in (without a code: two-factor authentication is off).
fn signed_in<'a>(web: &'a Web) -> Visitor<'a> {
    let mut visitor = web.visitor();
    let page = visitor.sign_in(ALICE, ALICE_PW);
    assert_eq!(page.location(), Some("/"), "sign-in: {}", page.body);
    visitor
}

/// `mailpass totp status USER --json`.
fn totp_status(env: &Env) -> serde_json::Value {
    json(&env.ok(&["totp", "status", ALICE, "--json"], ""))
}

fn totp_state(env: &Env) -> String {
    totp_status(env)["state"]
        .as_str()
        .expect("state")
        .to_string()
}

/// Starts the set-up from the two-factor page and reads the key it shows (without its spaces).
fn start_set_up(visitor: &mut Visitor) -> String {
    let page = visitor.submit("/totp", "/totp/enroll", &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), Some("/totp"));
    let page = visitor.get("/totp");
    assert_eq!(page.status, 200, "{}", page.body);
    shown_key(&page)
}

/// The key on the set-up page, checked to be shown in groups of four beside a QR code.
fn shown_key(page: &Page) -> String {
    assert!(
        page.contains("<svg id=\"totp-qr\" class=\"qr\""),
        "{}",
        page.body
    );
    let shown = page.text_of("totp-secret").expect("the key");
    let groups: Vec<&str> = shown.split(' ').collect();
    assert!(
        groups.len() > 1 && groups.iter().all(|g| (1..=4).contains(&g.len())),
        "{shown}"
    );
    groups.concat()
}

/// The recovery codes a page shows.
fn recovery_codes(page: &Page) -> Vec<String> {
    let start = page
        .body
        .find("<ol id=\"recovery-codes\"")
        .unwrap_or_else(|| panic!("no recovery codes in:\n{}", page.body));
    let list = &page.body[start..];
    let list = &list[..list.find("</ol>").expect("</ol>")];
    list.split("<li>")
        .skip(1)
        .map(|item| {
            item[..item.find("</li>").expect("</li>")]
                .trim()
                .to_string()
        })
        .collect()
}

/// Sets two-factor authentication up from the page, as a user with an authenticator app does; returns the
/// key and the recovery codes shown.
fn set_up_two_factor(env: &Env, visitor: &mut Visitor) -> (String, Vec<String>) {
    let key = start_set_up(visitor);
    let code = totp_code(&key, now());
    let page = visitor.submit("/totp", "/totp/confirm", &[("code", &code)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.contains("Two-factor authentication is on"),
        "{}",
        page.body
    );
    assert_eq!(totp_state(env), "active");
    (key, recovery_codes(&page))
}

/// A code from the app that no sign-in has used yet: the set-up's confirmation claimed the current one.
fn next_code(key: &str) -> String {
    totp_code(key, now() + 30)
}

/// Types the password and the code again on the re-authentication page; returns where it leads.
fn reauthenticate(visitor: &mut Visitor, code: &str) -> Page {
    visitor.submit(
        "/reauth?next=/totp",
        "/reauth",
        &[("password", ALICE_PW), ("code", code), ("next", "/totp")],
    )
}

/// A sign-in from a new browser with the password and then `code`.
fn sign_in_with_code(web: &Web, code: &str) -> Page {
    let mut visitor = web.visitor();
    let page = visitor.sign_in(ALICE, ALICE_PW);
    assert_eq!(page.location(), Some("/sign-in/code"), "{}", page.body);
    visitor.enter_code(code)
}

// ---------------------------------------------------------------------------------------------------------------
// Setting two-factor authentication up
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_two_factor_page_offers_to_set_it_up_when_it_is_off() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);

    let page = visitor.get("/totp");
    assert_eq!(page.status, 200);
    assert!(
        page.contains("Two-factor authentication is off"),
        "{}",
        page.body
    );
    assert!(page.contains("id=\"totp-enroll-form\""));
    assert!(page.contains(">Set up</button>"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
}

#[test]
fn setting_it_up_with_the_key_the_page_shows_turns_it_on_and_shows_recovery_codes_once() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);

    let key = start_set_up(&mut visitor);
    assert_eq!(totp_state(&env), "pending", "on only after one code");
    let setup = visitor.get("/totp");
    assert_eq!(setup.header("cache-control"), Some("no-store"));
    assert!(setup.contains("id=\"totp-confirm-form\""));

    let code = totp_code(&key, now());
    let page = visitor.submit("/totp", "/totp/confirm", &[("code", &code)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let codes = recovery_codes(&page);
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert!(codes.iter().all(|c| c.len() == 14), "{codes:?}");
    // The download carries them all, without another request.
    let download = page
        .body
        .split("id=\"recovery-codes-download\"")
        .nth(1)
        .expect("a download link");
    assert!(download.contains("download=\"recovery-codes.txt\""));
    assert!(download.contains("href=\"data:text/plain;charset=utf-8,"));
    for code in &codes {
        assert!(
            download.contains(code.as_str()),
            "{code} not in the download"
        );
    }

    let status = totp_status(&env);
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["recovery_codes_left"], 10, "{status}");

    let later = visitor.get("/totp");
    assert!(
        later.contains("Two-factor authentication is on"),
        "{}",
        later.body
    );
    assert_eq!(later.text_of("recovery-codes-left").as_deref(), Some("10"));
    for code in &codes {
        assert!(!later.contains(code), "a recovery code is shown again");
    }
    assert!(!later.contains(&key[..8]), "the key is shown again");
}

#[test]
fn a_recovery_code_from_the_page_signs_in_once_and_not_twice() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let (_, codes) = set_up_two_factor(&env, &mut signed_in(&web));

    let page = sign_in_with_code(&web, &codes[0]);
    assert_eq!(page.location(), Some("/"), "{}", page.body);

    let again = sign_in_with_code(&web, &codes[0]);
    assert_eq!(again.status, 401, "{}", again.body);
    assert!(
        again.contains("wrong or was used already"),
        "{}",
        again.body
    );
    assert_eq!(totp_status(&env)["recovery_codes_left"], 9);
}

#[test]
fn a_wrong_code_keeps_it_being_set_up_and_shows_the_same_key_again() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);
    let key = start_set_up(&mut visitor);

    let right = totp_code(&key, now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let page = visitor.submit("/totp", "/totp/confirm", &[("code", wrong)]);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.contains("That code does not match"), "{}", page.body);
    assert_eq!(shown_key(&page), key, "the same key, to try again");
    assert!(page.contains("id=\"totp-confirm-form\""));
    assert!(!page.contains("recovery-codes"), "{}", page.body);
    assert_eq!(totp_state(&env), "pending");

    let page = visitor.submit("/totp", "/totp/confirm", &[("code", "not a code")]);
    assert_eq!(page.status, 400);
    assert!(page.contains("Type the 6-digit code"), "{}", page.body);
    assert_eq!(totp_state(&env), "pending");

    // As an app shows it, with a space in the middle.
    let spaced = format!("{} {}", &right[..3], &right[3..]);
    let page = visitor.submit("/totp", "/totp/confirm", &[("code", &spaced)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(totp_state(&env), "active");
}

#[test]
fn the_key_of_a_set_up_in_progress_is_shown_again_only_after_a_fresh_sign_in() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);
    let key = start_set_up(&mut visitor);

    age_sign_in(&env);
    let page = visitor.get("/totp");
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/reauth?next=%2Ftotp"));
    assert!(!page.contains(&key[..8]));

    // Pending: the password alone confirms it is you.
    let page = visitor.submit(
        "/reauth?next=/totp",
        "/reauth",
        &[("password", ALICE_PW), ("next", "/totp")],
    );
    assert_eq!(page.location(), Some("/totp"), "{}", page.body);
    assert_eq!(shown_key(&visitor.get("/totp")), key);
}

#[test]
fn cancelling_the_set_up_leaves_it_off() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);
    start_set_up(&mut visitor);

    let page = visitor.submit("/totp", "/totp/disable", &[]);
    assert_eq!(
        page.location(),
        Some("/totp?notice=cancelled"),
        "{}",
        page.body
    );
    assert_eq!(totp_state(&env), "none");
    let page = visitor.get("/totp?notice=cancelled");
    assert!(page.contains("The set-up was cancelled"), "{}", page.body);
    assert!(page.contains("id=\"totp-enroll-form\""));
}

// ---------------------------------------------------------------------------------------------------------------
// Turning it off and new recovery codes: only after re-authentication
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn turning_it_off_asks_for_the_password_and_code_again_first() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);
    let (key, _) = set_up_two_factor(&env, &mut visitor);

    age_sign_in(&env);
    let page = visitor.submit("/totp", "/totp/disable", &[]);
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/reauth?next=%2Ftotp"));
    assert_eq!(
        totp_state(&env),
        "active",
        "not off without re-authentication"
    );

    let page = reauthenticate(&mut visitor, &next_code(&key));
    assert_eq!(page.location(), Some("/totp"), "{}", page.body);
    let page = visitor.submit("/totp", "/totp/disable", &[]);
    assert_eq!(
        page.location(),
        Some("/totp?notice=disabled"),
        "{}",
        page.body
    );
    let status = totp_status(&env);
    assert_eq!(status["state"], "none", "{status}");
    assert_eq!(status["recovery_codes_left"], 0, "{status}");
    let page = visitor.get("/totp?notice=disabled");
    assert!(
        page.contains("Two-factor authentication is off"),
        "{}",
        page.body
    );

    // The password alone signs in again.
    let page = web.visitor().sign_in(ALICE, ALICE_PW);
    assert_eq!(page.location(), Some("/"));
}

#[test]
fn new_recovery_codes_ask_for_the_password_and_code_again_and_replace_the_old_ones() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);
    let (_, old) = set_up_two_factor(&env, &mut visitor);

    age_sign_in(&env);
    let page = visitor.submit("/totp", "/totp/recovery-codes", &[]);
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/reauth?next=%2Ftotp"));
    assert!(!page.contains("recovery-codes\""));

    // A recovery code confirms it is you as well (and is used up).
    let page = reauthenticate(&mut visitor, &old[0]);
    assert_eq!(page.location(), Some("/totp"), "{}", page.body);
    let page = visitor.submit("/totp", "/totp/recovery-codes", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.contains("Your old recovery codes no longer work"));
    let new = recovery_codes(&page);
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)), "{new:?} {old:?}");
    assert_eq!(totp_status(&env)["recovery_codes_left"], 10);

    let refused = sign_in_with_code(&web, &old[1]);
    assert_eq!(refused.status, 401, "an old code: {}", refused.body);
    let page = sign_in_with_code(&web, &new[0]);
    assert_eq!(page.location(), Some("/"), "a new code: {}", page.body);
}

// ---------------------------------------------------------------------------------------------------------------
// The Apple Mail profile
// ---------------------------------------------------------------------------------------------------------------

/// Where the profile test's mail apps connect: not the page's own host and ports.
fn mail_server_config() -> String {
    format!(
        "{TEST_CONFIG}\n[web]\nmail_host = \"mail.example.org\"\nsmtp_host = \"smtp.example.org\"\nsmtp_port = 587\n"
    )
}

fn dict(value: &plist::Value) -> &plist::Dictionary {
    value
        .as_dictionary()
        .unwrap_or_else(|| panic!("not a dictionary: {value:?}"))
}

fn string<'a>(d: &'a plist::Dictionary, key: &str) -> &'a str {
    d.get(key)
        .and_then(plist::Value::as_string)
        .unwrap_or_else(|| panic!("no string {key}"))
}

fn integer(d: &plist::Dictionary, key: &str) -> i64 {
    d.get(key)
        .and_then(plist::Value::as_signed_integer)
        .unwrap_or_else(|| panic!("no integer {key}"))
}

fn boolean(d: &plist::Dictionary, key: &str) -> bool {
    d.get(key)
        .and_then(plist::Value::as_boolean)
        .unwrap_or_else(|| panic!("no boolean {key}"))
}

/// Downloads a profile from the app-password page's form, checks the answer is one, and parses it.
fn download_profile(visitor: &mut Visitor, fields: &[(&str, &str)]) -> plist::Value {
    let page = visitor.submit("/app-passwords", "/apple-profile", fields);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("application/x-apple-aspen-config")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(
        page.header("content-disposition"),
        Some("attachment; filename=\"mail.example.org.mobileconfig\"")
    );
    plist::Value::from_reader_xml(page.body.as_bytes()).expect("an XML property list")
}

#[test]
fn the_apple_profile_sets_up_mail_with_a_new_app_password_for_imap_and_smtp() {
    let env = alice(&mail_server_config());
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);

    let profile = download_profile(&mut visitor, &[]);
    let top = dict(&profile);
    assert_eq!(string(top, "PayloadType"), "Configuration");
    assert_eq!(integer(top, "PayloadVersion"), 1);
    assert!(!boolean(top, "PayloadRemovalDisallowed"));
    assert_eq!(string(top, "PayloadDisplayName"), "Mail");
    assert!(
        string(top, "PayloadIdentifier").starts_with("org.example.mail."),
        "{top:?}"
    );
    assert_eq!(string(top, "PayloadUUID").len(), 36);
    let content = top
        .get("PayloadContent")
        .and_then(plist::Value::as_array)
        .expect("PayloadContent");
    assert_eq!(content.len(), 1);
    let mail = dict(&content[0]);
    assert_eq!(string(mail, "PayloadType"), "com.apple.mail.managed");
    assert_eq!(integer(mail, "PayloadVersion"), 1);
    assert_ne!(string(mail, "PayloadUUID"), string(top, "PayloadUUID"));
    assert_ne!(
        string(mail, "PayloadIdentifier"),
        string(top, "PayloadIdentifier")
    );
    assert_eq!(string(mail, "EmailAccountType"), "EmailTypeIMAP");
    assert_eq!(string(mail, "EmailAccountDescription"), "Mail");
    assert_eq!(string(mail, "EmailAddress"), ALICE);
    let ways = [
        ("Incoming", "mail.example.org", 993),
        ("Outgoing", "smtp.example.org", 587),
    ];
    for (way, host, port) in ways {
        let key = |k: &str| format!("{way}MailServer{k}");
        assert_eq!(string(mail, &key("HostName")), host);
        assert_eq!(integer(mail, &key("PortNumber")), port);
        assert!(boolean(mail, &key("UseSSL")));
        assert_eq!(string(mail, &key("Username")), ALICE);
        assert_eq!(string(mail, &key("Authentication")), "EmailAuthPassword");
    }
    assert!(boolean(mail, "OutgoingPasswordSameAsIncomingPassword"));
    let password = string(mail, "IncomingPassword");
    assert_eq!(string(mail, "OutgoingPassword"), password);

    // It is an app password for reading and sending mail, and nothing else.
    for service in ["imap", "smtp"] {
        let r = env.login(ALICE, password).service(service).run();
        assert!(r.accepted(), "{service}: {r:?}");
        assert_eq!(decision(&r)["reason"], "app_password", "{service}: {r:?}");
    }
    let r = env.login(ALICE, password).service("pop3").run();
    assert!(!r.accepted(), "pop3: {r:?}");
    assert_eq!(decision(&r)["reason"], "app_password_out_of_scope", "{r:?}");

    // It is listed, and can be revoked, like any other.
    let list = visitor.get("/app-passwords");
    assert!(
        list.contains("data-name=\"Apple Mail (profile, "),
        "{}",
        list.body
    );
    let listed = json(&env.ok(&["app-password", "list", ALICE, "--json"], ""));
    assert!(
        listed.to_string().contains("Apple Mail (profile, "),
        "{listed}"
    );
}

#[test]
fn an_apple_profile_takes_the_name_given_and_a_taken_name_is_refused_on_the_app_password_page() {
    let env = alice(&mail_server_config());
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);

    download_profile(&mut visitor, &[("name", "Alice's iPad <Mail> & more")]);
    let list = visitor.get("/app-passwords");
    assert!(
        list.contains("data-name=\"Alice&#39;s iPad &#60;Mail&#62; &#38; more\""),
        "{}",
        list.body
    );

    let page = visitor.submit(
        "/app-passwords",
        "/apple-profile",
        &[("name", "Alice's iPad <Mail> & more")],
    );
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.contains("You already have an app password named"),
        "{}",
        page.body
    );
    assert!(page.contains("id=\"apple-profile-form\""));
}

// ---------------------------------------------------------------------------------------------------------------
// Forged requests
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_new_form_is_refused_without_its_csrf_token_or_from_another_site() {
    let env = alice(TEST_CONFIG);
    let web = Web::start(&env);
    let mut visitor = signed_in(&web);
    set_up_two_factor(&env, &mut visitor);
    let csrf = visitor.get("/totp").csrf();
    let before = totp_status(&env);

    for action in [
        "/totp/enroll",
        "/totp/confirm",
        "/totp/disable",
        "/totp/recovery-codes",
        "/apple-profile",
    ] {
        let fields = [("code", "123456"), ("name", "forged")];
        let page = visitor.post(action, &fields);
        assert_eq!(page.status, 403, "{action} without a token: {}", page.body);

        let page = visitor.post(action, &[("csrf", "forged"), ("code", "123456")]);
        assert_eq!(page.status, 403, "{action} with a wrong token");

        let with_token = [("csrf", csrf.as_str()), ("name", "forged")];
        let page = visitor.post_from(Some("https://evil.example"), action, &with_token);
        assert_eq!(page.status, 403, "{action} from another origin");
        let page = visitor.post_from(None, action, &with_token);
        assert_eq!(page.status, 403, "{action} with neither Origin nor Referer");
    }

    assert_eq!(totp_status(&env), before, "nothing changed");
    let listed = json(&env.ok(&["app-password", "list", ALICE, "--json"], ""));
    assert!(!listed.to_string().contains("forged"), "{listed}");
}
