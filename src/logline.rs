//! One `key=value` line per decision on stderr, stable for fail2ban-style filters. Values are quoted when they
//! hold spaces, quotes or `=`, and control characters are escaped, so a hostile user name cannot forge a
//! second line or field.

use std::fmt::Write as _;
use std::io::Write as _;

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

    /// Writes the line to stderr; a closed stderr must not fail the login.
    pub fn emit(self) {
        let mut line = self.0;
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
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
}
