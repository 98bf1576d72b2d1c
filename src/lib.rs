//! mailpass: app passwords and TOTP for Dovecot, through the checkpassword protocol (Dovecot 2.3) or a Lua
//! passdb (2.3 and 2.4), with SQLite as the store.
//!
//! The library exposes only `main`; each module has one job and is private to the crate.

mod admin;
mod app_password;
mod auth;
mod checkpassword;
mod cli;
mod clock;
mod config;
mod crockford;
mod error;
mod logline;
mod memory;
mod password;
mod recovery;
mod secret;
mod service;
mod store;
mod sys;
mod tag;
mod totp;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config_path, explicit) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (config::DEFAULT_PATH.into(), false),
    };
    let config = Config::load(&config_path, explicit);
    match cli.command {
        Command::Checkpassword { reply } => {
            ExitCode::from(checkpassword::run(&cli.db, config, &reply))
        }
        command => match config
            .map_err(error::Error::from)
            .and_then(|c| admin::run(&cli.db, &c, command))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mailpass: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}
