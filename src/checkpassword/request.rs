//! What Dovecot asks: the mode and the request facts in the environment, user and secret on fd 3.

use std::fs::File;
use std::io::Read;

use zeroize::Zeroizing;

use crate::logline::LogLine;
use crate::secret::Secret;

/// Dovecot never sends more; anything longer is not Dovecot.
const MAX_REQUEST: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    UserdbLookup,
    CredentialsLookup,
}

impl Mode {
    pub fn from_env() -> Mode {
        let set = |name| std::env::var_os(name).is_some_and(|v| v == "1");
        match (set("AUTHORIZED"), set("CREDENTIALS_LOOKUP")) {
            (false, _) => Mode::Check,
            (true, false) => Mode::UserdbLookup,
            (true, true) => Mode::CredentialsLookup,
        }
    }

    pub fn is_lookup(self) -> bool {
        self != Mode::Check
    }
}

/// Facts about the request that Dovecot puts in the environment.
pub struct RequestEnv {
    pub service: String,
    pub ip: Option<String>,
    /// The login session id: Dovecot's login processes send one, Postfix, Exim and doveadm do not.
    pub session: Option<String>,
}

impl RequestEnv {
    pub fn from_env() -> RequestEnv {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        RequestEnv {
            service: var("SERVICE").unwrap_or_else(|| "-".into()),
            ip: var("TCPREMOTEIP").or_else(|| var("REMOTE_IP")),
            session: var("AUTH_SESSION"),
        }
    }

    /// The start of a decision line: what happened, to whom, from where, on which service.
    pub fn log(&self, result: &str, reason: &str, user: &str) -> LogLine {
        LogLine::new()
            .field("result", result)
            .field("reason", reason)
            .field("user", user)
            .optional("ip", self.ip.as_deref())
            .field("service", &self.service)
    }
}

pub struct Request {
    pub user: Vec<u8>,
    pub secret: Secret,
}

pub fn read_request(fd3: Option<File>) -> Result<Request, &'static str> {
    let fd3 = fd3.ok_or(
        "fd 3 is not open: mailpass checkpassword is run by Dovecot's checkpassword passdb",
    )?;
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_REQUEST + 1));
    fd3.take(MAX_REQUEST as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|_| "cannot read the request on fd 3")?;
    parse_request(&buf)
}

/// `user NUL password NUL [timestamp NUL]`, at most 512 bytes.
fn parse_request(buf: &[u8]) -> Result<Request, &'static str> {
    if buf.len() > MAX_REQUEST {
        return Err("request on fd 3 is longer than 512 bytes");
    }
    let mut parts = buf.splitn(3, |&b| b == 0);
    let user = parts.next().unwrap_or_default();
    let (Some(secret), Some(_rest)) = (parts.next(), parts.next()) else {
        return Err("request on fd 3 is not NUL-terminated user and password");
    };
    Ok(Request {
        user: user.to_vec(),
        secret: Secret::from_slice(secret),
    })
}

/// A user name mailpass can hold: non-empty UTF-8 without control characters.
pub fn valid_user_name(raw: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(raw).ok()?;
    (!name.is_empty() && !name.chars().any(char::is_control)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dovecot_request_parses_into_user_and_secret() {
        let r = parse_request(b"alice@example.org\0s3cret\0\0").expect("valid");
        assert_eq!(r.user, b"alice@example.org");
        assert_eq!(r.secret.expose(), b"s3cret");
        let lookup = parse_request(b"alice\0\0\0").expect("valid");
        assert!(lookup.secret.is_empty());
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(parse_request(b"alice").is_err());
        assert!(parse_request(b"alice\0secret").is_err());
        assert!(parse_request(&[b'a'; 513]).is_err());
        assert!(parse_request(b"").is_err());
    }

    #[test]
    fn user_names_must_be_clean_utf8() {
        assert_eq!(
            valid_user_name(b"alice@example.org"),
            Some("alice@example.org")
        );
        assert_eq!(valid_user_name(b""), None);
        assert_eq!(valid_user_name(b"al\xffice"), None);
        assert_eq!(valid_user_name(b"al\tice"), None);
    }
}
