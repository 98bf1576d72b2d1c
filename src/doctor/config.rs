//! The config file, read exactly as a login reads it: a key it does not know or a value out of range makes
//! every login a temporary failure (`[UNAVAILABLE]`), so it is a failure here, caught before a reload.

use std::path::Path;

use super::Check;
use crate::config::{Config, ConfigError};

pub(super) fn checks(path: &Path, explicit: bool) -> Vec<Check> {
    let loaded = Config::load(path, explicit);
    let web = loaded.as_ref().ok().map(web);
    let file = match loaded {
        Ok(_) if !path.exists() => Check::ok(
            "config.file",
            format!(
                "{} does not exist: the built-in defaults apply",
                path.display()
            ),
        ),
        Ok(_) => Check::ok(
            "config.file",
            format!("{}: every key known, every value valid", path.display()),
        ),
        Err(e @ ConfigError::Read { .. }) => Check::fail(
            "config.file",
            format!("{e}: every login answers a temporary failure ([UNAVAILABLE])"),
            format!(
                "make {} readable by the Dovecot auth user (or create it; see \"Configuration\" in the README)",
                path.display()
            ),
        ),
        Err(e @ ConfigError::Invalid { .. }) => Check::fail(
            "config.file",
            format!(
                "{e}: every login answers a temporary failure ([UNAVAILABLE]) until it is fixed"
            ),
            "correct the key or value named above (the keys and their ranges are in \"Configuration\" in \
             the README), then run `mailpass config check` again",
        ),
    };
    let version = Check::ok(
        "mailpass.version",
        format!(
            "mailpass {}, database schema {}",
            env!("CARGO_PKG_VERSION"),
            crate::store::SCHEMA_VERSION
        ),
    );
    let mut checks = vec![file, version];
    checks.extend(web);
    checks
}

/// The self-service page's settings that parse but would not work as meant behind a proxy.
fn web(config: &Config) -> Check {
    let web = &config.web;
    const NAME: &str = "config.web";
    if !web.self_service {
        return Check::ok(
            NAME,
            "[web] self_service = false: nobody can sign in to the page",
        );
    }
    if web.origin.is_empty() {
        return Check::skip(
            NAME,
            "[web] origin is not set: `mailpass web` works only where it listens (a trial on loopback), \
             and mail apps' hints do not name it",
        );
    }
    if !web.https() {
        return Check::warn(
            NAME,
            format!(
                "[web] origin {} is not https: passwords and session cookies would cross the network in clear",
                web.origin
            ),
            "serve the page through a reverse proxy with TLS and set origin to its https:// URL",
        );
    }
    if web.trusted_proxies.is_empty() {
        return Check::warn(
            NAME,
            "[web] trusted_proxies is empty: behind a reverse proxy every sign-in comes from the proxy's \
             address, so failed sign-ins are counted for the proxy, not the client (and a proxy on loopback is \
             never banned)",
            "set [web] trusted_proxies to the proxy's address, e.g. [\"127.0.0.1\"], and have it send \
             X-Forwarded-For (contrib/nginx/mailpass-web.conf does)",
        );
    }
    Check::ok(
        NAME,
        format!(
            "the self-service page is at {}, behind {}",
            web.origin,
            web.trusted_proxies.join(", ")
        ),
    )
}
