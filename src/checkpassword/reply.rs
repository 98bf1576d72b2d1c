//! What Dovecot gets back: the exit code (decided in one place, `Answer::exit_code`; the table is in the
//! README) and the reply fields, written to fd 4 or handed to a qmail-style REPLY program.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::request::Mode;
use crate::sys;

/// The reply program Dovecot appends; mailpass writes what it would write itself (see the README).
const DOVECOT_REPLY: &str = "checkpassword-reply";

/// The exit code of "next passdb" to mailpass.lua. Dovecot's checkpassword passdb never gets it (it would
/// read it as a temporary failure): there, "next" is exit 1, which its chained config continues on.
pub const NEXT_EXIT: u8 = 4;

/// Every way a run can end.
pub enum Answer {
    /// Success: the user's fields go out.
    Accept(Vec<String>),
    /// A refusal that carries a text for a login process (`refusal.rs`): its fields go out with exit 0,
    /// and `nologin` makes it a refusal.
    Refuse(Vec<String>),
    Failed,
    /// "Let the next passdb decide", to mailpass.lua (`Caller::Lua`), which maps it to PASSDB_RESULT_NEXT.
    Next,
    /// A final refusal to a consumer that does not enforce `nologin`, through Dovecot's checkpassword passdb in
    /// a chain: "failure" would continue to the next passdb and "success" would let Postfix relay, so it goes
    /// out as an internal failure, which the chained config makes `return-fail`. A decision, logged at Info.
    Stop,
    UnknownUser,
    Misuse,
    TempFail,
}

impl Answer {
    pub fn exit_code(&self, mode: Mode) -> u8 {
        match (self, mode.is_lookup()) {
            (Answer::Accept(_) | Answer::Refuse(_), false) => 0,
            (Answer::Accept(_), true) => 2,
            (Answer::Refuse(_) | Answer::Failed | Answer::UnknownUser | Answer::Next, true) => 3,
            (Answer::Failed | Answer::UnknownUser, false) => 1,
            (Answer::Next, false) => NEXT_EXIT,
            (Answer::Misuse, _) => 2,
            (Answer::TempFail | Answer::Stop, _) => 111,
        }
    }
}

/// Whether the reply goes to fd 4 from here (Dovecot's own reply program, or none given), rather than through
/// a qmail-style REPLY program.
pub fn writes_fd4(reply: &[OsString]) -> bool {
    reply.first().is_none_or(|program| {
        Path::new(program)
            .file_name()
            .is_some_and(|n| n == DOVECOT_REPLY)
    })
}

/// Sends the answer: its fields to fd 4 or to the REPLY program, and returns the exit code. `Err` says why
/// the answer could not be delivered: Dovecot then gets a temporary failure, not this answer.
/// `before_exec` runs just before a REPLY program replaces this process (the last chance to log).
pub fn deliver(
    answer: Answer,
    reply: &[OsString],
    fd4: Option<File>,
    mode: Mode,
    before_exec: impl FnOnce(),
) -> Result<u8, String> {
    let code = answer.exit_code(mode);
    let fields = match answer {
        Answer::Accept(fields) => fields,
        // A qmail-style caller knows no nologin: a refusal is a plain failure there.
        Answer::Refuse(_) if !writes_fd4(reply) => return Ok(Answer::Failed.exit_code(mode)),
        Answer::Refuse(fields) => fields,
        _ => return Ok(code),
    };
    match reply.split_first() {
        Some((program, args)) if !writes_fd4(reply) => {
            before_exec();
            let error = exec_reply(program, args, &fields, mode);
            Err(format!(
                "cannot run {}: {error}",
                Path::new(program).display()
            ))
        }
        _ => {
            let mut fd4 = fd4.ok_or("fd 4 is not open: nowhere to send the reply")?;
            fd4.write_all(fields.join("\t").as_bytes())
                .map_err(|e| format!("writing fd 4: {e}"))?;
            Ok(code)
        }
    }
}

/// Execs a qmail-style REPLY program with the variables `checkpassword-reply` reads. Returns only on error.
fn exec_reply(
    program: &OsString,
    args: &[OsString],
    fields: &[String],
    mode: Mode,
) -> std::io::Error {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let mut extra = Vec::new();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "user" => {
                cmd.env("USER", value);
            }
            "userdb_home" => {
                cmd.env("HOME", value);
            }
            _ => {
                cmd.env(key, value);
                extra.push(key);
            }
        }
    }
    cmd.env("EXTRA", extra.join(" "));
    if mode.is_lookup() {
        // checkpassword-reply answers a lookup only when told it was authorized by its caller.
        cmd.env("AUTHORIZED", "2");
    }
    // Descriptors SQLite opened since start are gone with the store; close anything left but the reply pipe.
    sys::close_descriptors_from(5);
    cmd.exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_dovecots_table() {
        let accept = || Answer::Accept(vec![]);
        assert_eq!(accept().exit_code(Mode::Check), 0);
        assert_eq!(accept().exit_code(Mode::UserdbLookup), 2);
        assert_eq!(Answer::Refuse(vec![]).exit_code(Mode::Check), 0);
        assert_eq!(Answer::Failed.exit_code(Mode::Check), 1);
        assert_eq!(Answer::UnknownUser.exit_code(Mode::UserdbLookup), 3);
        assert_eq!(Answer::UnknownUser.exit_code(Mode::Check), 1);
        assert_eq!(Answer::Misuse.exit_code(Mode::Check), 2);
        assert_eq!(Answer::TempFail.exit_code(Mode::Check), 111);
        assert_eq!(Answer::Next.exit_code(Mode::Check), 4);
        assert_eq!(Answer::Stop.exit_code(Mode::Check), 111);
    }

    #[test]
    fn only_dovecots_reply_program_is_replaced_by_writing_fd4() {
        assert!(writes_fd4(&["/usr/lib/dovecot/checkpassword-reply".into()]));
        assert!(writes_fd4(&[]));
        assert!(!writes_fd4(&["/usr/sbin/qmail-pop3d".into()]));
    }
}
