//! The man pages and shell completions that build.rs generates, held against the clap definitions in
//! `src/cli.rs` (compiled in here too), so that a new subcommand or flag cannot miss its documentation: every
//! command and flag is on its page, every option has a description, groff renders the pages without a warning,
//! and bash completes every subcommand.
//!
//! The files are the ones cargo's build of this package wrote: `OUT_DIR` is that build script's directory.

// The binary reads the parsed values; here only the definitions are used.
#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod cli;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use clap::{Arg, Command, CommandFactory};

fn out_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
}

/// The command tree as the pages show it: built (full names, global options on every subcommand), without
/// clap's own `help` subcommand, which has no page.
fn cli() -> Command {
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|c| !c.is_hide_set())
}

/// `cmd` and every command under it.
fn walk<'a>(cmd: &'a Command, all: &mut Vec<&'a Command>) {
    all.push(cmd);
    for sub in subcommands(cmd) {
        walk(sub, all);
    }
}

fn full_name(cmd: &Command) -> &str {
    cmd.get_bin_name().unwrap_or_else(|| cmd.get_name())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A page as its reader sees the words: roff's escaped hyphens, apostrophes and font changes undone.
fn page_text(name: &str) -> String {
    read(&out_dir().join("man").join(format!("{name}.1")))
        .replace("\\-", "-")
        .replace("\\*(Aq", "'")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
}

/// The part of a page about one command: from its `.SS "mailpass ban record"` to the next heading.
fn subsection<'a>(page: &'a str, command: &str) -> Option<&'a str> {
    let start = page.find(&format!(".SS \"{command}\"\n"))?;
    let rest = &page[start + 1..];
    let end = rest
        .find("\n.SS ")
        .or_else(|| rest.find("\n.SH "))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether `word` occurs in `text` on its own (`--user` is not found in `--user-name`).
fn mentions(text: &str, word: &str) -> bool {
    let part_of_word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].ends_with(part_of_word) && !text[i + word.len()..].starts_with(part_of_word)
    })
}

/// How an argument appears on a page: `--for`, `-h`, or a positional's value name (`NETWORK`).
fn spellings(arg: &Arg) -> Vec<String> {
    let mut words: Vec<String> = arg
        .get_long()
        .map(|l| format!("--{l}"))
        .into_iter()
        .collect();
    words.extend(arg.get_short().map(|s| format!("-{s}")));
    if arg.is_positional() {
        match arg.get_value_names() {
            Some(names) => words.extend(names.iter().map(|n| n.to_string())),
            None => words.push(arg.get_id().to_string()),
        }
    }
    words
}

fn visible_args(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| !a.is_hide_set())
}

#[test]
fn the_top_page_names_every_subcommand_page_and_every_global_option() {
    let cli = cli();
    let page = page_text("mailpass");
    for sub in subcommands(&cli) {
        let reference = format!("mailpass-{}(1)", sub.get_name());
        assert!(
            page.contains(&reference),
            "mailpass(1) does not refer to {reference}"
        );
    }
    for arg in visible_args(&cli) {
        for word in spellings(arg) {
            assert!(
                mentions(&page, &word),
                "mailpass(1) does not mention {word}"
            );
        }
    }
}

#[test]
fn there_is_one_page_per_top_level_subcommand_and_no_other() {
    let cli = cli();
    let mut expected: BTreeSet<String> = subcommands(&cli)
        .map(|s| format!("mailpass-{}.1", s.get_name()))
        .collect();
    expected.insert("mailpass.1".into());
    let found: BTreeSet<String> = fs::read_dir(out_dir().join("man"))
        .expect("build.rs's man directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn every_command_and_every_flag_is_on_its_subcommands_page() {
    let cli = cli();
    for top in subcommands(&cli) {
        let name = format!("mailpass-{}", top.get_name());
        let page = page_text(&name);
        // The options of the subcommand itself (the global ones included) are in the page's OPTIONS.
        for arg in visible_args(top) {
            for word in spellings(arg) {
                assert!(mentions(&page, &word), "{name}(1) does not mention {word}");
            }
        }
        let mut all = Vec::new();
        walk(top, &mut all);
        for cmd in all {
            if cmd.has_subcommands() {
                // A group (`ban`, `ban allow`): its commands have the subsections.
                assert!(
                    page.contains(full_name(cmd)),
                    "{name}(1) does not mention `{}`",
                    full_name(cmd)
                );
                continue;
            }
            // A top-level command without subcommands (`checkpassword`) is the whole page.
            let text = if std::ptr::eq(cmd, top) {
                page.as_str()
            } else {
                subsection(&page, full_name(cmd))
                    .unwrap_or_else(|| panic!("{name}(1) has no section for `{}`", full_name(cmd)))
            };
            for arg in visible_args(cmd).filter(|a| !a.is_global_set() && a.get_id() != "help") {
                for word in spellings(arg) {
                    assert!(
                        mentions(text, &word),
                        "{name}(1): `{}` does not mention {word}",
                        full_name(cmd)
                    );
                }
                if let Some(help) = arg.get_help() {
                    let first = help.to_string();
                    let first = first
                        .split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ");
                    assert!(
                        text.split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .contains(&first),
                        "{name}(1): `{}` does not describe {}",
                        full_name(cmd),
                        arg.get_id()
                    );
                }
            }
        }
    }
}

#[test]
fn every_command_option_and_argument_has_a_description() {
    let cli = cli();
    let mut all = Vec::new();
    walk(&cli, &mut all);
    let mut missing = Vec::new();
    for cmd in all {
        if cmd.get_about().is_none() {
            missing.push(format!("`{}`", full_name(cmd)));
        }
        for arg in visible_args(cmd) {
            if arg.get_help().is_none() {
                missing.push(format!("`{}` {}", full_name(cmd), arg.get_id()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "without a doc comment in src/cli.rs: {}",
        missing.join(", ")
    );
}

#[test]
fn groff_renders_every_page_without_a_warning() {
    if Process::new("groff")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: no groff (Debian package groff-base, in scripts/install-deps.sh)");
        return;
    }
    let mut pages: Vec<PathBuf> = fs::read_dir(out_dir().join("man"))
        .expect("build.rs's man directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    pages.sort();
    assert!(!pages.is_empty());
    for page in pages {
        // -ww: every warning; -z: format, print nothing.
        let out = Process::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("groff runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {}: {}\n{}",
            page.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What bash offers after `mailpass WORDS... <TAB>`, from the generated completion file.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = out_dir().join("completions").join("mailpass.bash");
    let line = words.join(" ");
    // The words of the line so far, then the empty word being completed.
    let program = format!(
        r#"source "$1"; COMP_WORDS=(mailpass {line} ""); COMP_CWORD=${{#COMP_WORDS[@]}}; ((COMP_CWORD--))
        _mailpass mailpass "" "${{COMP_WORDS[COMP_CWORD-1]}}"; printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let out = Process::new("bash")
        .args(["--norc", "--noprofile", "-c", &program, "bash"])
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash completion of `mailpass {line}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_every_top_level_subcommand() {
    let cli = cli();
    let offered = bash_completes(&[]);
    for sub in subcommands(&cli) {
        assert!(
            offered.iter().any(|w| w == sub.get_name()),
            "bash does not offer `{}`: {offered:?}",
            sub.get_name()
        );
    }
    let text = read(&out_dir().join("completions").join("mailpass.bash"));
    for sub in subcommands(&cli) {
        assert!(
            text.contains(&format!("mailpass,{})", sub.get_name())),
            "mailpass.bash lacks {}",
            sub.get_name()
        );
    }
}

#[test]
fn bash_completes_the_commands_of_every_group() {
    let cli = cli();
    let mut all = Vec::new();
    walk(&cli, &mut all);
    for group in all
        .into_iter()
        .filter(|c| c.has_subcommands() && c.get_name() != cli.get_name())
    {
        let path: Vec<&str> = full_name(group).split(' ').skip(1).collect();
        let offered = bash_completes(&path);
        for sub in subcommands(group) {
            assert!(
                offered.iter().any(|w| w == sub.get_name()),
                "bash does not offer `{} {}`: {offered:?}",
                full_name(group),
                sub.get_name()
            );
        }
    }
}

#[test]
fn zsh_and_fish_completions_name_every_top_level_subcommand() {
    let cli = cli();
    let zsh = read(&out_dir().join("completions").join("_mailpass"));
    let fish = read(&out_dir().join("completions").join("mailpass.fish"));
    assert!(
        zsh.starts_with("#compdef mailpass"),
        "_mailpass is not a zsh completion"
    );
    for sub in subcommands(&cli) {
        assert!(
            mentions(&zsh, sub.get_name()),
            "_mailpass lacks {}",
            sub.get_name()
        );
        assert!(
            fish.contains(&format!("-a \"{}\"", sub.get_name())),
            "mailpass.fish lacks {}",
            sub.get_name()
        );
    }
}
