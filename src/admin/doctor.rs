//! `mailpass doctor` and `mailpass config check`: the checks of `doctor/`, printed for people (one line each,
//! the fix below it) or as JSON (`[{"name", "status", "message", "fix"}]`). Exit 1 when any check failed;
//! warnings alone exit 0.

use std::path::Path;

use serde_json::{Value, json};

use super::print_json;
use crate::doctor::{self, Check, Options, Status};
use crate::error::Error;

pub(super) fn doctor(options: &Options, as_json: bool) -> Result<(), Error> {
    report(&doctor::diagnose(options), as_json)
}

pub(super) fn config_check(config: &Path, explicit: bool, as_json: bool) -> Result<(), Error> {
    let options = Options {
        db: Path::new(""),
        config,
        config_explicit: explicit,
        dovecot_config: None,
        doveconf: "doveconf".as_ref(),
    };
    report(&doctor::diagnose_config(&options), as_json)
}

fn report(checks: &[Check], as_json: bool) -> Result<(), Error> {
    if as_json {
        print_json(&Value::Array(checks.iter().map(check_json).collect()));
    } else {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in checks {
            println!(
                "{:<4}  {:<width$}  {}",
                check.status.name(),
                check.name,
                check.message
            );
            if let Some(fix) = &check.fix {
                println!("{:<4}  {:<width$}  fix: {fix}", "", "");
            }
        }
        println!("{}", summary(checks));
    }
    if checks.iter().any(|c| c.status == Status::Fail) {
        return Err(Error::Status(1));
    }
    Ok(())
}

fn count(checks: &[Check], status: Status) -> usize {
    checks.iter().filter(|c| c.status == status).count()
}

/// The last line: what the exit status says, in words.
fn summary(checks: &[Check]) -> String {
    let (failed, warned, skipped) = (
        count(checks, Status::Fail),
        count(checks, Status::Warn),
        count(checks, Status::Skip),
    );
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(plural(failed, "check failed", "checks failed"));
    }
    if warned > 0 {
        parts.push(plural(warned, "warning", "warnings"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    match (failed, parts.is_empty()) {
        (_, true) => "All checks passed.".into(),
        (0, false) => format!("Nothing failed ({}).", parts.join(", ")),
        _ => format!("{}.", parts.join(", ")),
    }
}

fn check_json(check: &Check) -> Value {
    json!({
        "name": check.name,
        "status": check.status.name(),
        "message": check.message,
        "fix": check.fix,
    })
}
