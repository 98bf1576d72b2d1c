//! The test harness: runs the built `mailpass` binary in a fresh temp dir with a cleared environment, the way
//! Dovecot runs it (request on a pipe at fd 3, reply read from a pipe at fd 4).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use command_fds::{CommandFdExt, FdMapping};
use tempfile::TempDir;

pub mod forensics;

/// Small argon2 parameters keep the suite fast (the auth path does not care which parameters are set), and any
/// password length is allowed: scenarios name short passwords (`pw`) where the length does not matter; the
/// password policy has tests of its own with the default config.
pub const TEST_CONFIG: &str = "[argon2]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\n\
[passwords]\nmin_length = 1\n\n\
[userdb]\nhome = \"/var/vmail/%d/%n\"\nuid = \"5000\"\ngid = \"5000\"\n";

pub struct Env {
    pub dir: TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
}

impl Env {
    pub fn new() -> Self {
        Self::with_config(TEST_CONFIG)
    }

    pub fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("mailpass.db");
        let config_path = dir.path().join("mailpass.toml");
        fs::write(&config_path, config).expect("write config");
        Env {
            dir,
            db,
            config: config_path,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `mailpass` command with nothing of the developer's environment in it.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailpass"));
        cmd.env_clear()
            .env("MAILPASS_DB", &self.db)
            .env("MAILPASS_CONFIG", &self.config)
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs an admin command with `stdin` on standard input.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailpass");
        // A command that refuses before reading its input closes the pipe early: that is not a failure.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes());
        child.wait_with_output().expect("wait mailpass")
    }

    /// Runs an admin command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.admin(args, stdin);
        assert!(
            out.status.success(),
            "mailpass {args:?} failed with {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    pub fn add_user(&self, user: &str, password: &str) {
        self.ok(
            &["user", "add", user, "--password-stdin"],
            &format!("{password}\n"),
        );
    }

    /// Creates an app password and returns it as the CLI printed it.
    pub fn add_app_password(&self, user: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["app-password", "add", user, "--name", name];
        args.extend_from_slice(extra);
        self.ok(&args, "").trim().to_string()
    }

    /// A login as Dovecot would send it: `user NUL secret NUL NUL` on fd 3.
    pub fn login(&self, user: &str, secret: &str) -> Login<'_> {
        let mut request = Vec::new();
        request.extend_from_slice(user.as_bytes());
        request.push(0);
        request.extend_from_slice(secret.as_bytes());
        request.extend_from_slice(&[0, 0]);
        Login {
            env: self,
            request: Some(request),
            leak: false,
            fd4: Fd4::Pipe,
            stalled_stderr: false,
            vars: vec![
                ("SERVICE".into(), "imap".into()),
                ("TCPREMOTEIP".into(), "192.0.2.10".into()),
                // What Dovecot's login processes send; Postfix and doveadm send none (see `without_session`).
                ("AUTH_SESSION".into(), "Lx3XH0kNpsB/AAAB".into()),
                ("PROTO".into(), "TCP".into()),
                ("ORIG_UID".into(), "0".into()),
            ],
            args: vec![],
            ids: None,
        }
    }

    /// A userdb lookup (`AUTHORIZED=1`, empty password), as Dovecot sends it.
    pub fn lookup(&self, user: &str) -> Login<'_> {
        self.login(user, "").var("AUTHORIZED", "1")
    }
}

/// What fd 4 is in a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fd4 {
    /// A pipe that the test reads, as Dovecot's.
    Pipe,
    /// /dev/null opened read-only: open, but nothing can be written to it.
    ReadOnly,
    /// A pipe whose read end is closed: a write fails (EPIPE), as when Dovecot went away.
    Broken,
}

pub struct Login<'a> {
    env: &'a Env,
    request: Option<Vec<u8>>,
    fd4: Fd4,
    /// stderr is a full pipe that nobody reads (see `stalled_stderr`).
    stalled_stderr: bool,
    /// Leak descriptors in as Dovecot's auth process does (see `leak_descriptors`).
    leak: bool,
    vars: Vec<(String, String)>,
    args: Vec<String>,
    /// Run as this uid and gid instead of the test's (root).
    ids: Option<(u32, u32)>,
}

/// A checkpassword run that has started but not been sent its request yet (see `Login::start`).
pub struct Running {
    child: std::process::Child,
    request: Option<Vec<u8>>,
    fd3: std::io::PipeWriter,
    fd4: std::io::PipeReader,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the request and lets the run go on by itself (see `Login::spawn`).
    pub fn detach(mut self) -> KillOnDrop {
        if let Some(request) = &self.request {
            let _ = self.fd3.write_all(request);
        }
        KillOnDrop(self.child)
    }

    /// Sends the request as Dovecot does (all of it, then EOF) and waits for the answer.
    pub fn finish(self) -> Reply {
        let Running {
            child,
            request,
            mut fd3,
            mut fd4,
        } = self;
        if let Some(request) = &request {
            let _ = fd3.write_all(request);
        }
        drop(fd3);
        let mut reply = String::new();
        fd4.read_to_string(&mut reply).expect("read fd 4");
        let out = child.wait_with_output().expect("wait");
        Reply {
            code: out.status.code(),
            fd4: reply,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub code: Option<i32>,
    /// What the program wrote to fd 4.
    pub fd4: String,
    pub stderr: String,
}

impl Reply {
    pub fn fields(&self) -> Vec<&str> {
        self.fd4.split('\t').filter(|f| !f.is_empty()).collect()
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields()
            .into_iter()
            .find_map(|f| f.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.fields().contains(&flag)
    }

    /// A real success: exit 0 without the `nologin` of a refusal.
    pub fn accepted(&self) -> bool {
        self.code == Some(0) && !self.has_flag("nologin")
    }
}

impl Login<'_> {
    pub fn service(self, service: &str) -> Self {
        self.var("SERVICE", service)
    }

    pub fn ip(self, ip: &str) -> Self {
        self.var("TCPREMOTEIP", ip)
    }

    /// As Postfix, Exim and doveadm ask: no login session id.
    pub fn without_session(mut self) -> Self {
        self.vars.retain(|(k, _)| k != "AUTH_SESSION");
        self
    }

    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.into()));
        self
    }

    /// Raw bytes on fd 3 instead of a well-formed request.
    pub fn raw_request(mut self, bytes: &[u8]) -> Self {
        self.request = Some(bytes.to_vec());
        self
    }

    /// Run with fd 3 closed, as a misconfigured caller would.
    pub fn without_fd3(mut self) -> Self {
        self.request = None;
        self
    }

    /// Descriptors leak in as they do from Dovecot's auth process: fd 5 is /dev/null and fd 7 a duplicate of
    /// the fd 4 write end (a child that kept it would hold the login until it exits).
    pub fn leak_descriptors(mut self) -> Self {
        self.leak = true;
        self
    }

    /// fd 4 is open but read-only.
    pub fn read_only_fd4(mut self) -> Self {
        self.fd4 = Fd4::ReadOnly;
        self
    }

    /// fd 4 is a pipe nobody will read: the reply cannot be delivered.
    pub fn broken_fd4(mut self) -> Self {
        self.fd4 = Fd4::Broken;
        self
    }

    /// stderr is a pipe that is full and never read, so every write to it blocks (a stalled log process).
    /// The run is then bounded by the test (killed after a minute); `Reply::stderr` stays empty.
    pub fn stalled_stderr(mut self) -> Self {
        self.stalled_stderr = true;
        self
    }

    /// Extra arguments after `checkpassword` (the REPLY program and its args).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts the run and returns at once with the request written; nobody reads the reply. The caller waits
    /// for or kills the child (it is killed by pid when dropped, also when the test fails).
    pub fn spawn(self) -> KillOnDrop {
        self.start().detach()
    }

    /// Runs as another user (the test runs as root), as Dovecot runs mailpass as its auth user.
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.ids = Some((uid, gid));
        self
    }

    /// Starts the run with fd 3 still empty, so that it waits for its request; `Running::finish` sends it.
    pub fn start(self) -> Running {
        assert!(!self.stalled_stderr && self.fd4 == Fd4::Pipe && !self.leak);
        let (fd3_read, fd3_write) = std::io::pipe().expect("pipe fd 3");
        let (fd4_read, fd4_write) = std::io::pipe().expect("pipe fd 4");
        let mut mappings = vec![FdMapping {
            parent_fd: OwnedFd::from(fd4_write),
            child_fd: 4,
        }];
        if self.request.is_some() {
            mappings.push(FdMapping {
                parent_fd: OwnedFd::from(fd3_read),
                child_fd: 3,
            });
        }
        let mut cmd = self.env.command();
        cmd.arg("checkpassword")
            .args(&self.args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .fd_mappings(mappings)
            .expect("fd mappings");
        if let Some((uid, gid)) = self.ids {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("spawn mailpass checkpassword");
        // Our copies of the mapped descriptors went to the child; command-fds closes them here.
        drop(cmd);
        Running {
            child,
            request: self.request,
            fd3: fd3_write,
            fd4: fd4_read,
        }
    }

    pub fn run(self) -> Reply {
        if !self.stalled_stderr && self.fd4 == Fd4::Pipe && !self.leak {
            return self.start().finish();
        }
        let (fd3_read, mut fd3_write) = std::io::pipe().expect("pipe fd 3");
        let (mut fd4_read, fd4_write) = std::io::pipe().expect("pipe fd 4");
        let mut mappings = Vec::new();
        if self.leak {
            let devnull = fs::File::open("/dev/null").expect("/dev/null");
            mappings.push(FdMapping {
                parent_fd: OwnedFd::from(devnull),
                child_fd: 5,
            });
            mappings.push(FdMapping {
                parent_fd: OwnedFd::from(fd4_write.try_clone().expect("dup fd 4")),
                child_fd: 7,
            });
        }
        let fd4: OwnedFd = match self.fd4 {
            Fd4::Pipe | Fd4::Broken => OwnedFd::from(fd4_write),
            Fd4::ReadOnly => {
                drop(fd4_write);
                OwnedFd::from(fs::File::open("/dev/null").expect("/dev/null"))
            }
        };
        mappings.push(FdMapping {
            parent_fd: fd4,
            child_fd: 4,
        });
        if self.request.is_some() {
            mappings.push(FdMapping {
                parent_fd: OwnedFd::from(fd3_read),
                child_fd: 3,
            });
        } else {
            drop(fd3_read);
        }
        let stalled = self.stalled_stderr.then(full_pipe);
        let mut cmd = self.env.command();
        cmd.arg("checkpassword")
            .args(&self.args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .fd_mappings(mappings)
            .expect("fd mappings");
        match &stalled {
            Some((_, write)) => cmd.stderr(OwnedFd::from(write.try_clone().expect("dup stderr"))),
            None => cmd.stderr(Stdio::piped()),
        };
        if self.fd4 == Fd4::Broken {
            drop(fd4_read);
            fd4_read = std::io::pipe().expect("pipe").0;
        }
        let mut child = cmd.spawn().expect("spawn mailpass checkpassword");
        // Dovecot writes the whole request and closes its end before it reads the reply.
        if let Some(request) = &self.request {
            let _ = fd3_write.write_all(request);
        }
        drop(fd3_write);
        // Our copy of the fd 4 write end went to the child with the mapping; command-fds closed it here.
        drop(cmd);
        if stalled.is_some() {
            // Nobody reads the full pipe; the run must end by itself.
            let code = wait_bounded(&mut child, std::time::Duration::from_secs(60));
            drop(stalled);
            return Reply {
                code,
                fd4: String::new(),
                stderr: String::new(),
            };
        }
        let mut fd4 = String::new();
        fd4_read.read_to_string(&mut fd4).expect("read fd 4");
        let out = child.wait_with_output().expect("wait");
        Reply {
            code: out.status.code(),
            fd4,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A child process that is killed (SIGKILL) and reaped when this is dropped, so that a failing test leaves
/// none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A connected socket pair whose buffer is full: a write to one end blocks until someone reads the other, and
/// nobody does.
fn full_pipe() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (read, mut write) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    write.set_nonblocking(true).expect("non-blocking");
    let chunk = [b'x'; 4096];
    loop {
        match write.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill the socket: {e}"),
        }
    }
    // Blocking again: the child's writes must wait, not fail.
    write.set_nonblocking(false).expect("blocking");
    (read, write)
}

/// Waits for the child at most `limit`, then kills it; `None` when it had to be killed (or died by a signal).
fn wait_bounded(child: &mut std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The current 6-digit TOTP code for a base32 secret, as an authenticator app would show it.
pub fn totp_code(secret_base32: &str, unix_time: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).expect("base32 secret");
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .expect("totp");
    totp.generate(unix_time).to_string()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The decision lines (`mailpass: result=...`) on stderr.
pub fn decision_lines(r: &Reply) -> Vec<&str> {
    r.stderr
        .lines()
        .filter_map(|l| l.find("mailpass: result=").map(|i| &l[i..]))
        .collect()
}

/// Parses `key=value key="quoted value"` after the `mailpass: ` prefix.
pub fn parse_log_line(line: &str) -> HashMap<String, String> {
    let body = line.strip_prefix("mailpass: ").unwrap_or(line);
    let mut out = HashMap::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.insert(key, value);
    }
    out
}

/// Asserts that the run did not panic and logged exactly one decision line; returns that line parsed.
pub fn decision(r: &Reply) -> HashMap<String, String> {
    assert!(!r.stderr.contains("panicked"), "mailpass panicked: {r:?}");
    let lines = decision_lines(r);
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one `mailpass: result=` line, got {}: {r:?}",
        lines.len()
    );
    parse_log_line(lines[0])
}

/// What Dovecot 2.3's `doveadm pw` makes of `password` under `scheme`: the hash a passdb would hold.
pub fn doveadm_hash(scheme: &str, password: &str) -> String {
    let hash = output_of(
        std::process::Command::new("doveadm").args(["pw", "-s", scheme, "-p", password]),
        "doveadm (Dovecot 2.3; scripts/install-deps.sh installs it)",
    );
    assert!(hash.starts_with('{'), "{hash}");
    hash
}

/// A yescrypt hash as Debian's /etc/shadow holds it (`mkpasswd` is in the `whois` package).
pub fn yescrypt_hash(password: &str) -> String {
    let hash = output_of(
        std::process::Command::new("mkpasswd").args(["-m", "yescrypt", password]),
        "mkpasswd (scripts/install-deps.sh installs the whois package)",
    );
    assert!(hash.starts_with("$y$"), "{hash}");
    format!("{{CRYPT}}{hash}")
}

/// The trimmed standard output of a command that must succeed.
fn output_of(command: &mut std::process::Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}
