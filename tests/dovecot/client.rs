//! Minimal mail clients over TCP on 127.0.0.1: IMAP (LOGIN, AUTHENTICATE PLAIN), POP3 (USER/PASS), SMTP
//! AUTH PLAIN on Dovecot's submission service and ManageSieve AUTHENTICATE "PLAIN". Every read is bounded by a
//! timeout, so a hung server fails the test instead of hanging it. Each function returns the server's answer
//! line to the login, as the mail client sees it, so that tests can compare it byte for byte.
//!
//! For SMTP through Postfix, two real clients run as child processes with a bounded run time: swaks and
//! Python's smtplib (`Mail`, `swaks`, `smtplib`); they send a message with a marker whatever AUTH answered.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub type Result<T> = std::result::Result<T, String>;

/// One text-protocol connection: CRLF-terminated lines both ways.
pub struct Conn {
    what: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn connect(what: &str, port: u16) -> Result<Conn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .map_err(|e| format!("{what}: connect to {addr}: {e}"))?;
        Conn::over(what, stream, TIMEOUT)
    }

    /// A connection from another loopback address (`127.0.0.x`), as a client elsewhere would come, with reads
    /// waiting up to `timeout` (the brakes hold answers back for seconds).
    pub fn connect_from(
        what: &str,
        source: Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<Conn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| format!("{what}: socket: {e}"))?;
        socket
            .bind(&SocketAddr::from((source, 0)).into())
            .map_err(|e| format!("{what}: bind {source}: {e}"))?;
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .map_err(|e| format!("{what}: connect to {addr} from {source}: {e}"))?;
        Conn::over(what, socket.into(), timeout)
    }

    fn over(what: &str, stream: TcpStream, timeout: Duration) -> Result<Conn> {
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| format!("{what}: set timeouts: {e}"))?;
        let writer = stream
            .try_clone()
            .map_err(|e| format!("{what}: clone stream: {e}"))?;
        Ok(Conn {
            what: what.to_string(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn send(&mut self, line: &str) -> Result<()> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("{}: write: {e}", self.what))
    }

    /// One line without its CRLF; end of stream and timeouts are errors.
    pub fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(format!("{}: connection closed by the server", self.what)),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => Err(format!("{}: read: {e}", self.what)),
        }
    }
}

/// SASL PLAIN initial response: base64 of `NUL user NUL password`.
pub fn sasl_plain(user: &str, password: &str) -> String {
    base64(format!("\0{user}\0{password}").as_bytes())
}

pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An IMAP connection. Login attempts use the tag `a1`, so that answers from two connections compare equal.
pub struct Imap {
    conn: Conn,
    next_tag: u32,
}

impl Imap {
    pub fn connect(port: u16) -> Result<Imap> {
        Imap::greeted(Conn::connect("imap", port)?)
    }

    /// From another loopback address, waiting up to `timeout` for each answer.
    pub fn connect_from(source: Ipv4Addr, port: u16, timeout: Duration) -> Result<Imap> {
        Imap::greeted(Conn::connect_from("imap", source, port, timeout)?)
    }

    fn greeted(mut conn: Conn) -> Result<Imap> {
        let greeting = conn.line()?;
        if !greeting.starts_with("* OK") {
            return Err(format!("imap: unexpected greeting {greeting:?}"));
        }
        Ok(Imap { conn, next_tag: 1 })
    }

    fn tag(&mut self) -> String {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Reads untagged and continuation lines up to the tagged answer, which it returns.
    fn tagged(&mut self, tag: &str) -> Result<String> {
        let prefix = format!("{tag} ");
        loop {
            let line = self.conn.line()?;
            if line.starts_with(&prefix) {
                return Ok(line);
            }
        }
    }

    /// Sends a command and returns its tagged answer.
    pub fn command(&mut self, command: &str) -> Result<String> {
        let tag = self.tag();
        self.conn.send(&format!("{tag} {command}"))?;
        self.tagged(&tag)
    }

    /// `LOGIN "user" "password"`; returns the tagged answer, e.g. `a1 OK [...] Logged in`.
    pub fn login(&mut self, user: &str, password: &str) -> Result<String> {
        self.command(&format!("LOGIN {} {}", quoted(user), quoted(password)))
    }

    /// `AUTHENTICATE PLAIN`, the response sent after the server's continuation (no SASL-IR).
    pub fn authenticate_plain(&mut self, user: &str, password: &str) -> Result<String> {
        let tag = self.tag();
        self.conn.send(&format!("{tag} AUTHENTICATE PLAIN"))?;
        let line = self.conn.line()?;
        if !line.starts_with('+') {
            return Err(format!("imap: expected a continuation, got {line:?}"));
        }
        self.conn.send(&sasl_plain(user, password))?;
        self.tagged(&tag)
    }

    pub fn logout(mut self) -> Result<String> {
        self.command("LOGOUT")
    }
}

/// An IMAP string literal in quoted form.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One IMAP LOGIN on a fresh connection; returns the tagged answer. After a successful login it also selects
/// the INBOX (which needs the userdb's home, uid and gid to be right) and logs out.
pub fn imap_login(port: u16, user: &str, password: &str) -> Result<String> {
    let mut imap = Imap::connect(port)?;
    let answer = imap.login(user, password)?;
    if answer.starts_with("a1 OK") {
        check_mailbox(imap)?;
    }
    Ok(answer)
}

/// One IMAP AUTHENTICATE PLAIN on a fresh connection; returns the tagged answer.
pub fn imap_authenticate(port: u16, user: &str, password: &str) -> Result<String> {
    let mut imap = Imap::connect(port)?;
    let answer = imap.authenticate_plain(user, password)?;
    if answer.starts_with("a1 OK") {
        check_mailbox(imap)?;
    }
    Ok(answer)
}

fn check_mailbox(mut imap: Imap) -> Result<()> {
    let select = imap.command("SELECT INBOX")?;
    if !select.starts_with("a2 OK") {
        return Err(format!("imap: SELECT INBOX after login failed: {select:?}"));
    }
    let logout = imap.logout()?;
    if !logout.starts_with("a3 OK") {
        return Err(format!("imap: LOGOUT failed: {logout:?}"));
    }
    Ok(())
}

/// POP3 USER/PASS on a fresh connection; returns the answer to PASS (`+OK ...` or `-ERR ...`). After a
/// successful login it runs STAT (opens the maildrop) and QUIT.
pub fn pop3_login(port: u16, user: &str, password: &str) -> Result<String> {
    let mut conn = Conn::connect("pop3", port)?;
    let greeting = conn.line()?;
    if !greeting.starts_with("+OK") {
        return Err(format!("pop3: unexpected greeting {greeting:?}"));
    }
    conn.send(&format!("USER {user}"))?;
    let answer = conn.line()?;
    if !answer.starts_with("+OK") {
        return Err(format!("pop3: USER refused: {answer:?}"));
    }
    conn.send(&format!("PASS {password}"))?;
    let answer = conn.line()?;
    if answer.starts_with("+OK") {
        conn.send("STAT")?;
        let stat = conn.line()?;
        if !stat.starts_with("+OK") {
            return Err(format!("pop3: STAT after login failed: {stat:?}"));
        }
        conn.send("QUIT")?;
        let quit = conn.line()?;
        if !quit.starts_with("+OK") {
            return Err(format!("pop3: QUIT failed: {quit:?}"));
        }
    }
    Ok(answer)
}

/// Reads one SMTP reply, possibly multi-line (`250-...` then `250 ...`); returns its last line.
fn smtp_reply(conn: &mut Conn) -> Result<String> {
    loop {
        let line = conn.line()?;
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return Ok(line);
        }
    }
}

/// EHLO and `AUTH PLAIN <initial response>` on the submission service; returns the answer to AUTH (`235 ...`
/// on success). After a success it sends QUIT and expects `221`.
pub fn smtp_login(port: u16, user: &str, password: &str) -> Result<String> {
    let mut conn = Conn::connect("submission", port)?;
    let greeting = smtp_reply(&mut conn)?;
    if !greeting.starts_with("220") {
        return Err(format!("submission: unexpected greeting {greeting:?}"));
    }
    conn.send("EHLO client.example.org")?;
    let ehlo = smtp_reply(&mut conn)?;
    if !ehlo.starts_with("250") {
        return Err(format!("submission: EHLO refused: {ehlo:?}"));
    }
    conn.send(&format!("AUTH PLAIN {}", sasl_plain(user, password)))?;
    let answer = smtp_reply(&mut conn)?;
    if answer.starts_with("235") {
        conn.send("QUIT")?;
        let quit = smtp_reply(&mut conn)?;
        if !quit.starts_with("221") {
            return Err(format!("submission: QUIT after login failed: {quit:?}"));
        }
    }
    Ok(answer)
}

/// ManageSieve `AUTHENTICATE "PLAIN" "<initial response>"` on a fresh connection; returns the answer line
/// (`OK ...` or `NO ...`, a literal string in it read and put inline). After a success it runs LISTSCRIPTS
/// (opens the user's script storage) and LOGOUT.
pub fn managesieve_login(port: u16, user: &str, password: &str) -> Result<String> {
    let mut conn = Conn::connect("managesieve", port)?;
    // The greeting is the capability list, one `"NAME" "value"` line each, closed by `OK "..."`.
    loop {
        let line = sieve_line(&mut conn)?;
        if line.starts_with("OK") {
            break;
        }
        if line.starts_with("NO") || line.starts_with("BYE") {
            return Err(format!("managesieve: greeting refused: {line:?}"));
        }
    }
    conn.send(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"",
        sasl_plain(user, password)
    ))?;
    let answer = sieve_line(&mut conn)?;
    if answer.starts_with("OK") {
        conn.send("LISTSCRIPTS")?;
        loop {
            let line = sieve_line(&mut conn)?;
            if line.starts_with("OK") {
                break;
            }
            if line.starts_with("NO") || line.starts_with("BYE") {
                return Err(format!(
                    "managesieve: LISTSCRIPTS after login failed: {line:?}"
                ));
            }
        }
        conn.send("LOGOUT")?;
        let logout = sieve_line(&mut conn)?;
        if !logout.starts_with("OK") {
            return Err(format!("managesieve: LOGOUT failed: {logout:?}"));
        }
    }
    Ok(answer)
}

/// One ManageSieve response line; a literal string at its end (`{N}` or `{N+}`, then N bytes) is read and
/// appended, so that the line carries the text whatever form the server chose.
fn sieve_line(conn: &mut Conn) -> Result<String> {
    let mut line = conn.line()?;
    while let Some(len) = literal_len(&line) {
        let mut bytes = vec![0; len];
        std::io::Read::read_exact(&mut conn.reader, &mut bytes)
            .map_err(|e| format!("{}: read literal: {e}", conn.what))?;
        line.push_str(&String::from_utf8_lossy(&bytes));
        // The line goes on after the literal (often it just ends: an empty rest).
        line.push_str(&conn.line()?);
    }
    Ok(line)
}

/// N of a `{N}` or `{N+}` literal announcement at the end of a line.
fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let (_, len) = inner.rsplit_once('{')?;
    len.trim_end_matches('+').parse().ok()
}

/// One message through an SMTP server with AUTH PLAIN: to `MARKER@elsewhere.example`, with the marker as its
/// subject and body, so that the relay's sink can tell whether it arrived.
pub struct Mail<'a> {
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    /// The client's source address (default 127.0.0.1).
    pub source: Option<&'a str>,
    pub marker: &'a str,
}

pub const MAIL_FROM: &str = "a@example.org";

impl Mail<'_> {
    pub fn to(&self) -> String {
        format!("{}@elsewhere.example", self.marker)
    }
}

/// What an SMTP client saw: the answer line to AUTH (`235 ...`, `535 ...`) and its whole transcript.
#[derive(Debug)]
pub struct Sent {
    pub auth: String,
    pub transcript: String,
}

/// How long one command-line SMTP client may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `mail` with swaks (`--auth-optional`: after a refused AUTH it goes on without, as a careless client
/// would, so that a relay that lets it through shows).
pub fn swaks(mail: &Mail) -> Result<Sent> {
    let mut cmd = std::process::Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{}", mail.port)])
        .args(["--helo", "client.example.org"])
        .args(["--auth-optional", "PLAIN"])
        .args(["--auth-user", mail.user, "--auth-password", mail.password])
        .args(["--from", MAIL_FROM, "--to", &mail.to()])
        .args(["--header", &format!("Subject: {}", mail.marker)])
        .args(["--body", mail.marker])
        .args(["--timeout", "20s"]);
    if let Some(source) = mail.source {
        cmd.args(["--local-interface", source]);
    }
    let out = crate::server::run_bounded(cmd, CLIENT_TIMEOUT)?;
    let transcript = transcript(&out);
    // ` -> AUTH PLAIN ...`, then the server's answer: `<-  235 ...` or `<** 535 ...`.
    let auth = transcript
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("-> AUTH"))
        .skip(1)
        .find_map(|l| {
            l.strip_prefix("<**")
                .or_else(|| l.strip_prefix("<-"))
                .map(|rest| rest.trim().to_string())
        })
        .ok_or_else(|| format!("swaks: no answer to AUTH in:\n{transcript}"))?;
    Ok(Sent { auth, transcript })
}

/// Python's smtplib: EHLO, AUTH PLAIN (the password on standard input, not in argv), then the message
/// whatever AUTH answered. Prints `AUTH <code> <text>` and `SENT` or `NOT SENT <why>`.
const SMTPLIB: &str = r#"
import smtplib, sys
port, user, source, sender, rcpt, marker = sys.argv[1:7]
password = sys.stdin.readline().rstrip("\n")
s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.example.org", timeout=20,
                 source_address=(source, 0) if source else None)
s.ehlo()
s.user, s.password = user, password
try:
    code, text = s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
except smtplib.SMTPAuthenticationError as e:
    code, text = e.smtp_code, e.smtp_error
print("AUTH %d %s" % (code, text.decode("utf-8", "replace").replace("\n", " ")), flush=True)
message = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (sender, rcpt, marker, marker)
try:
    s.sendmail(sender, [rcpt], message)
    print("SENT")
except smtplib.SMTPException as e:
    print("NOT SENT %s" % e)
try:
    s.quit()
except smtplib.SMTPException:
    pass
"#;

/// What a client printed, stdout then stderr.
fn transcript(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sends `mail` with Python's smtplib.
pub fn smtplib(mail: &Mail) -> Result<Sent> {
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", SMTPLIB])
        .arg(mail.port.to_string())
        .args([mail.user, mail.source.unwrap_or("")])
        .args([MAIL_FROM, &mail.to(), mail.marker]);
    let input = format!("{}\n", mail.password);
    let out = crate::server::run_bounded_input(cmd, Some(input.as_bytes()), CLIENT_TIMEOUT)?;
    let transcript = transcript(&out);
    let auth = transcript
        .lines()
        .find_map(|l| l.strip_prefix("AUTH "))
        .map(str::to_string)
        .ok_or_else(|| format!("smtplib: no answer to AUTH in:\n{transcript}"))?;
    Ok(Sent { auth, transcript })
}
