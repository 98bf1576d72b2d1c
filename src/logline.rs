//! One `key=value` line per decision on stderr, stable for fail2ban-style filters. Values are quoted when they
//! hold spaces, quotes or `=`, and control characters are escaped, so a hostile user name cannot forge a
//! second line or field.
//!
//! Dovecot logs every plain line a helper writes to stderr at `Error` level, successes included. Its log
//! process also reads its own internal format (`\x01`, the level + 1, the sender's pid, a space, the text),
//! which its own processes use to log at other levels; with `--log dovecot` mailpass writes that, so that
//! decisions land at `Info` and only real faults at `Error`, with the same text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether lines go out in Dovecot's internal log format (set once, at start, from `--log dovecot`).
static DOVECOT_FORMAT: AtomicBool = AtomicBool::new(false);

pub fn use_dovecot_format() {
    DOVECOT_FORMAT.store(true, Ordering::Relaxed);
}

/// How much a line matters, as Dovecot's log levels say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Decisions: successes and ordinary refusals.
    Info,
    /// Real faults: the login got a temporary failure.
    Error,
}

impl Level {
    /// Dovecot's `enum log_type` value, plus one, as its internal log protocol sends it.
    fn dovecot_code(self) -> char {
        match self {
            Level::Info => '\u{2}',
            Level::Error => '\u{4}',
        }
    }
}

pub struct LogLine(String);

impl LogLine {
    pub fn new() -> LogLine {
        LogLine("mailpass:".to_string())
    }

    pub fn field(mut self, key: &str, value: &str) -> LogLine {
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push('=');
        push_value(&mut self.0, value);
        self
    }

    pub fn optional(self, key: &str, value: Option<&str>) -> LogLine {
        self.field(key, value.unwrap_or("-"))
    }

    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The line as it goes out, with its newline.
    fn render(&self, level: Level, dovecot: bool) -> String {
        let mut out = String::with_capacity(self.0.len() + 16);
        if dovecot {
            // The pid names the sender; Dovecot's log process knows its auth processes (our parent) by pid
            // and uses their log prefix.
            let _ = write!(
                out,
                "\u{1}{}{} ",
                level.dovecot_code(),
                std::os::unix::process::parent_id()
            );
        }
        out.push_str(&self.0);
        out.push('\n');
        out
    }

    /// Writes the line to stderr. It goes out with one `write` on the raw descriptor, without Rust's
    /// stderr lock: the time limit must be able to log while another thread is stuck writing to a stalled
    /// pipe. A closed stderr must not fail the login.
    pub fn emit(self, level: Level) {
        let line = self.render(level, DOVECOT_FORMAT.load(Ordering::Relaxed));
        crate::sys::write_stderr(line.as_bytes());
    }
}

impl Default for LogLine {
    fn default() -> Self {
        LogLine::new()
    }
}

fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_control() && !matches!(c, ' ' | '"' | '=' | '\\'));
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_bare_and_others_are_quoted() {
        let line = LogLine::new()
            .field("result", "ok")
            .field("credential", "iPhone Mail")
            .field("user", "a\nmailpass: result=ok")
            .optional("ip", None);
        assert_eq!(
            line.text(),
            "mailpass: result=ok credential=\"iPhone Mail\" user=\"a\\x0amailpass: result=ok\" ip=-"
        );
    }

    #[test]
    fn dovecot_format_carries_the_level_and_the_parent_pid() {
        let line = LogLine::new().field("result", "ok");
        assert_eq!(line.render(Level::Info, false), "mailpass: result=ok\n");
        let pid = std::os::unix::process::parent_id();
        assert_eq!(
            line.render(Level::Info, true),
            format!("\u{1}\u{2}{pid} mailpass: result=ok\n")
        );
        assert!(line.render(Level::Error, true).starts_with("\u{1}\u{4}"));
    }
}
