//! mailpass: app passwords and TOTP for Dovecot, through the checkpassword protocol (Dovecot 2.3) or a Lua
//! passdb (2.3 and 2.4), with SQLite as the store.
//!
//! The library exposes only `main`; each module has one job and is private to the crate.

mod account;
mod admin;
mod app_password;
mod auth;
mod banlist;
mod bans;
mod checkpassword;
mod cli;
mod clock;
mod config;
mod crockford;
mod doctor;
mod error;
mod import;
mod logline;
mod net;
mod password;
mod recovery;
mod refusal;
mod secret;
mod service;
mod store;
mod sys;
mod tag;
mod totp;
mod username;
mod web;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};
use crate::config::Config;

/// Help and version go out as clap writes them; a usage error becomes one line that says what to do.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    let text = e.to_string();
    let summary: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let summary = summary.join(" ");
    let summary = summary.strip_prefix("error: ").unwrap_or(&summary);
    eprintln!("mailpass: {summary} (see `mailpass --help`)");
    ExitCode::from(2)
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let (config_path, explicit) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (config::DEFAULT_PATH.into(), false),
    };
    match cli.command {
        Command::Checkpassword {
            log,
            lua,
            chained,
            reply,
        } => {
            if log == LogFormat::Dovecot {
                logline::use_dovecot_format();
            }
            // It reads the config itself, within its time limit.
            ExitCode::from(checkpassword::run(
                &cli.db,
                &config_path,
                explicit,
                if lua {
                    checkpassword::Caller::Lua
                } else if chained {
                    checkpassword::Caller::DovecotChained
                } else {
                    checkpassword::Caller::Dovecot
                },
                &reply,
            ))
        }
        // They diagnose a broken config (and database) instead of stopping at it.
        command @ (Command::Doctor { .. } | Command::Config(_)) => {
            finish(admin::diagnose(&cli.db, &config_path, explicit, command))
        }
        Command::Web { listen } => finish(
            Config::load(&config_path, explicit)
                .map_err(error::Error::from)
                .and_then(|c| Ok(web::serve(&cli.db, c, listen.as_deref())?)),
        ),
        command => finish(
            Config::load(&config_path, explicit)
                .map_err(error::Error::from)
                .and_then(|c| admin::run(&cli.db, &c, command)),
        ),
    }
}

/// The one place an admin command's outcome becomes an exit code.
fn finish(outcome: Result<(), error::Error>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error::Error::Status(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mailpass: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
