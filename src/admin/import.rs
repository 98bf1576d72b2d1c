//! `mailpass import ...`: reads the source, lets `import` decide and write, prints the report (per line and a
//! summary, or the same as JSON). Lines are named by number, users by name; no hash is ever printed.

use std::io::Read as _;
use std::path::Path;

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Admin, print_json};
use crate::cli::{ImportCommand, ImportOptions};
use crate::error::Error;
use crate::import::{self, Line, LineReport, Options, Outcome, Report, passwd_file, shadow};

/// A source read and parsed, before the command acts as the database's owner (see `admin::run`): the files
/// it reads (/etc/shadow, a passwd-file of mode 0640) are often root's alone.
pub(super) struct Source {
    lines: Vec<Line>,
}

pub(super) fn read(command: &ImportCommand, now: i64) -> Result<Source, Error> {
    let lines = match command {
        ImportCommand::PasswdFile {
            file,
            default_scheme,
            ..
        } => {
            let default_scheme = default_scheme
                .as_deref()
                .map(passwd_file::default_scheme)
                .transpose()
                .map_err(Error::Usage)?;
            let text = read_text(file)?;
            passwd_file::parse(&text, default_scheme.as_deref())
        }
        ImportCommand::Shadow {
            file,
            min_uid,
            passwd,
            domain,
            ..
        } => {
            if let Some(domain) = domain
                && (domain.is_empty()
                    || domain.contains('@')
                    || domain.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(Error::Usage(format!(
                    "invalid --domain {domain:?}: give the domain alone, e.g. --domain example.org"
                )));
            }
            let text = read_text(file)?;
            let passwd = match min_uid {
                Some(_) => Some(read_text(passwd)?),
                None => None,
            };
            shadow::parse(
                &text,
                &shadow::ShadowOptions {
                    min_uid: *min_uid,
                    passwd: passwd.as_ref().map(|p| p.as_str()),
                    domain: domain.as_deref(),
                    today: now.div_euclid(86_400),
                },
            )
        }
    };
    Ok(Source { lines })
}

/// The whole file (or standard input for `-`), kept in memory that is wiped: it may hold cleartext passwords.
fn read_text(path: &Path) -> Result<Zeroizing<String>, Error> {
    let mut bytes = Zeroizing::new(Vec::new());
    let result = if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    let name = if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    result.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (run the import as root)"
        } else {
            ""
        };
        Error::Io(format!("cannot read {name}: {e}{hint}"))
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_string())),
        Err(e) => Err(Error::Refused(format!(
            "{name} is not UTF-8 text (line {}): convert it first, e.g. with iconv",
            bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        ))),
    }
}

pub(super) fn run(admin: &Admin, command: ImportCommand, source: Source) -> Result<(), Error> {
    let how = match command {
        ImportCommand::PasswdFile { how, .. } | ImportCommand::Shadow { how, .. } => how,
    };
    let options = Options {
        update: how.update,
        keep_going: how.keep_going,
        dry_run: how.dry_run,
        external: how.external,
    };
    let report = import::import(&admin.store, source.lines, &options, admin.now)?;
    if how.json.json {
        print_json(&report_json(&report, &how));
    } else {
        print_text(&report, &how);
    }
    let summary = report.summary();
    let cleartext = report
        .lines
        .iter()
        .filter(|l| l.cleartext && matches!(l.outcome, Outcome::Imported | Outcome::Updated))
        .count();
    if cleartext > 0 && report.written {
        eprintln!(
            "mailpass: warning: {cleartext} line(s) hold passwords in clear text; they are stored so until each \
             user's first login replaces them with argon2id, and the source file should go"
        );
    }
    if summary.refused > 0 && !how.keep_going {
        return Err(Error::Refused(format!(
            "{} line(s) refused, so nothing {}: fix them (the report names each line) or pass --keep-going to import the rest",
            summary.refused,
            if how.dry_run {
                "would be imported"
            } else {
                "was imported"
            }
        )));
    }
    Ok(())
}

fn print_text(report: &Report, how: &ImportOptions) {
    for line in &report.lines {
        let mut text = format!(
            "line {}: {}: {}",
            line.number,
            line.user.as_deref().unwrap_or("-"),
            line.outcome.name()
        );
        if let Some(scheme) = &line.scheme {
            text.push_str(&format!(" ({scheme})"));
        }
        if let Some(message) = message(line) {
            text.push_str(&format!(": {message}"));
        }
        if line.cleartext {
            text.push_str(" [clear text in the source]");
        }
        println!("{text}");
    }
    let s = report.summary();
    let what = if report.written {
        "written"
    } else if how.dry_run {
        "nothing written (dry run)"
    } else {
        "nothing written"
    };
    println!(
        "{} imported, {} updated, {} skipped, {} refused; {what}",
        s.imported, s.updated, s.skipped, s.refused
    );
}

fn message(line: &LineReport) -> Option<String> {
    match &line.outcome {
        Outcome::Skipped(skip) => Some(skip.to_string()),
        Outcome::Refused(refusal) => Some(refusal.to_string()),
        Outcome::Imported | Outcome::Updated => None,
    }
}

fn report_json(report: &Report, how: &ImportOptions) -> Value {
    let s = report.summary();
    let lines: Vec<Value> = report
        .lines
        .iter()
        .map(|line| {
            let reason = match &line.outcome {
                Outcome::Skipped(skip) => Some(skip.name()),
                Outcome::Refused(refusal) => Some(refusal.name()),
                _ => None,
            };
            json!({
                "line": line.number,
                "user": line.user,
                "outcome": line.outcome.name(),
                "scheme": line.scheme,
                "reason": reason,
                "message": message(line),
                "cleartext": line.cleartext,
            })
        })
        .collect();
    json!({
        "lines": lines,
        "summary": {
            "imported": s.imported,
            "updated": s.updated,
            "skipped": s.skipped,
            "refused": s.refused,
            "written": report.written,
            "dry_run": how.dry_run,
        },
    })
}
