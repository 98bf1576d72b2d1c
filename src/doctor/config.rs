//! The config file, read exactly as a login reads it: a key it does not know or a value out of range makes
//! every login a temporary failure (`[UNAVAILABLE]`), so it is a failure here, caught before a reload.

use std::path::Path;

use super::Check;
use crate::config::{Config, ConfigError};

pub(super) fn checks(path: &Path, explicit: bool) -> Vec<Check> {
    let file = match Config::load(path, explicit) {
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
    vec![file, version]
}
