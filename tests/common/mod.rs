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

/// Small argon2 parameters keep the suite fast; the auth path does not care which parameters are set.
pub const TEST_CONFIG: &str = "[argon2]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\n\
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
            vars: vec![
                ("SERVICE".into(), "imap".into()),
                ("TCPREMOTEIP".into(), "192.0.2.10".into()),
                // What Dovecot's login processes send; Postfix and doveadm send none (see `without_session`).
                ("AUTH_SESSION".into(), "Lx3XH0kNpsB/AAAB".into()),
                ("PROTO".into(), "TCP".into()),
                ("ORIG_UID".into(), "0".into()),
            ],
            args: vec![],
        }
    }

    /// A userdb lookup (`AUTHORIZED=1`, empty password), as Dovecot sends it.
    pub fn lookup(&self, user: &str) -> Login<'_> {
        self.login(user, "").var("AUTHORIZED", "1")
    }
}

pub struct Login<'a> {
    env: &'a Env,
    request: Option<Vec<u8>>,
    /// Leak descriptors in as Dovecot's auth process does (see `leak_descriptors`).
    leak: bool,
    vars: Vec<(String, String)>,
    args: Vec<String>,
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

    /// Extra arguments after `checkpassword` (the REPLY program and its args).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn run(self) -> Reply {
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
        mappings.push(FdMapping {
            parent_fd: OwnedFd::from(fd4_write),
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
        let mut cmd = self.env.command();
        cmd.arg("checkpassword")
            .args(&self.args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .fd_mappings(mappings)
            .expect("fd mappings");
        let child = cmd.spawn().expect("spawn mailpass checkpassword");
        // Dovecot writes the whole request and closes its end before it reads the reply.
        if let Some(request) = &self.request {
            let _ = fd3_write.write_all(request);
        }
        drop(fd3_write);
        // Our copy of the fd 4 write end went to the child with the mapping; command-fds closed it here.
        drop(cmd);
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
