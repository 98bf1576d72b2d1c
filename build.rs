//! Generates the man pages and the shell completions from the clap definitions in `src/cli.rs` (the very ones the
//! binary parses with, so the two cannot drift apart), into `OUT_DIR`:
//!
//! - `man/mailpass.1`, and one page per top-level subcommand (`man/mailpass-user.1`, ...) that documents every
//!   command under it (`mailpass user add`, ..., `mailpass ban allow list`): a reader looks up `mailpass-ban`,
//!   not one page per leaf;
//! - `completions/mailpass.bash`, `completions/_mailpass` (zsh), `completions/mailpass.fish`.
//!
//! Why a build script writing into `OUT_DIR`: the CLI is a contract (no hidden subcommand to print them), the
//! README promises one binary (no generator under `src/bin/`, which `cargo install` would install too), and a
//! build script may write only into `OUT_DIR` (a path computed from it to somewhere else in `target/` breaks
//! with `CARGO_TARGET_DIR`, `--target` or a cargo layout change). `OUT_DIR` holds a hash that cargo alone knows,
//! so nothing guesses it: `make` reads it from cargo's own report of this script's run
//! (`--message-format=json`, "build-script-executed") and copies the files to `target/release/man/` and
//! `target/release/completions/`, whence `make install` installs them; `tests/man.rs` reads them through
//! `env!("OUT_DIR")`.

// The binary reads the parsed values; here only the definitions are used.
#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

const BIN: &str = "mailpass";

fn main() -> io::Result<()> {
    println!("cargo::rerun-if-changed=src/cli.rs");
    println!("cargo::rerun-if-changed=build.rs");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));

    let mut cmd = cli::Cli::command();
    // clap's own `help` subcommand gets no page. build() fills in what the pages show: each subcommand's full
    // name ("mailpass ban allow add"), its page name ("mailpass-ban"), the global options on every subcommand.
    let mut pages = cmd.clone().disable_help_subcommand(true);
    pages.build();

    let man = fresh_dir(&out.join("man"))?;
    page(&pages, &pages).generate_to(&man)?;
    for group in visible_subcommands(&pages) {
        write_group_page(&pages, group, &man)?;
    }

    let completions = fresh_dir(&out.join("completions"))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, BIN, &completions)?;
    }
    Ok(())
}

/// An empty directory: a page of a subcommand that no longer exists must not linger from an earlier build.
fn fresh_dir(dir: &Path) -> io::Result<PathBuf> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

fn page(root: &Command, cmd: &Command) -> Man {
    Man::new(cmd.clone())
        .source(format!("{BIN} {}", root.get_version().unwrap_or_default()))
        .manual("mailpass manual")
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|c| !c.is_hide_set())
}

/// `mailpass-GROUP(1)`: the group's own synopsis and options, then a COMMANDS section with every command under it,
/// each with its synopsis and its own arguments (the global options are listed once, at the top).
fn write_group_page(root: &Command, group: &Command, dir: &Path) -> io::Result<()> {
    let man = page(root, group);
    let mut text = Vec::new();
    man.render_title(&mut text)?;
    man.render_name_section(&mut text)?;
    man.render_synopsis_section(&mut text)?;
    man.render_description_section(&mut text)?;
    if group.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut text)?;
    }

    let mut leaves = Vec::new();
    collect_leaves(group, &mut leaves);
    if group.has_subcommands() {
        let mut roff = Roff::default();
        roff.control("SH", ["COMMANDS"]);
        roff.to_writer(&mut text)?;
        for leaf in leaves {
            write_command_subsection(root, leaf, &mut text)?;
        }
    }

    let mut roff = Roff::default();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([bold(BIN), roman("(1)")]);
    roff.to_writer(&mut text)?;

    fs::write(dir.join(man.get_filename()), once_preamble(&text))
}

/// Every rendered piece starts with roff's two-line preamble (it defines the apostrophe string `Aq`); a page
/// needs it once, at the top.
fn once_preamble(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.lines();
    let mut page = String::new();
    for line in lines.by_ref().take(2) {
        page.push_str(line);
        page.push('\n');
    }
    for line in lines {
        if !line.starts_with(".ie \\n(.g .ds Aq") && !line.starts_with(".el .ds Aq") {
            page.push_str(line);
            page.push('\n');
        }
    }
    page
}

fn collect_leaves<'a>(cmd: &'a Command, leaves: &mut Vec<&'a Command>) {
    for sub in visible_subcommands(cmd) {
        if sub.has_subcommands() {
            collect_leaves(sub, leaves);
        } else {
            leaves.push(sub);
        }
    }
}

/// One command of a group page: `.SS mailpass ban allow add`, what it does, its synopsis, its arguments.
fn write_command_subsection(root: &Command, leaf: &Command, text: &mut Vec<u8>) -> io::Result<()> {
    let name = leaf.get_bin_name().unwrap_or_else(|| leaf.get_name());
    let mut roff = Roff::default();
    roff.control("SS", [name]);
    if let Some(about) = leaf.get_long_about().or_else(|| leaf.get_about()) {
        roff.text([roman(about.to_string())]);
    }
    roff.control("PP", []);
    roff.to_writer(&mut *text)?;

    // The global options and --help are on the page once; here they would repeat on every command.
    let own = leaf.clone().mut_args(|a| {
        if a.is_global_set() || a.get_id() == "help" {
            a.hide(true)
        } else {
            a
        }
    });
    let man = page(root, &own);
    let mut section = Vec::new();
    man.render_synopsis_section(&mut section)?;
    if own.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut section)?;
    }
    // Each part comes as a section of its own (".SH SYNOPSIS", ".SH OPTIONS"): here it is part of this command.
    for line in String::from_utf8_lossy(&section).lines() {
        if !line.starts_with(".SH ") {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
    }
    Ok(())
}
