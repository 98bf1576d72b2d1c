//! `mailpass checkpassword` started the way Dovecot starts it: the request on a pipe at fd 3, the reply read to
//! end of file from a pipe at fd 4, the log line on a stderr pipe, nothing of the caller's environment. A login
//! can be started blocked (its fd 3 still empty) and released later, which is how the storm bench gets hundreds
//! of them concurrent.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use command_fds::{CommandFdExt, FdMapping};

/// A mailpass binary with its database, config and working directory (a temp dir of the bench).
pub struct Setup {
    pub bin: PathBuf,
    pub db: PathBuf,
    pub config: PathBuf,
    pub dir: PathBuf,
}

impl Setup {
    /// The binary `bin` with a database and config in `dir`, the config at argon2's default parameters (m, t,
    /// p: what the floors verify at), so that the rows compare like with like.
    pub fn in_dir(bin: &Path, dir: &Path, (m, t, p): (u32, u32, u32)) -> Result<Setup, String> {
        let setup = Setup {
            bin: bin.to_path_buf(),
            db: dir.join("mailpass.db"),
            config: dir.join("mailpass.toml"),
            dir: dir.to_path_buf(),
        };
        let config = format!(
            "[argon2]\nmemory_kib = {m}\niterations = {t}\nparallelism = {p}\n\n\
             [userdb]\nhome = \"/var/vmail/%d/%n\"\nuid = \"5000\"\ngid = \"5000\"\n"
        );
        std::fs::write(&setup.config, config).map_err(|e| format!("writing the config: {e}"))?;
        Ok(setup)
    }

    /// A `mailpass` command with nothing of the caller's environment in it.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("MAILPASS_DB", &self.db)
            .env("MAILPASS_CONFIG", &self.config)
            .current_dir(&self.dir);
        cmd
    }

    /// Runs an admin command that must succeed and returns its stdout.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Result<String, String> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(|e| format!("mailpass {args:?}: writing stdin: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("mailpass {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "setup command `mailpass {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8(out.stdout).map_err(|_| format!("mailpass {args:?}: stdout is not UTF-8"))
    }

    /// `app-password add USER --name NAME --json` and the password it printed.
    pub fn add_app_password(&self, user: &str, name: &str) -> Result<String, String> {
        let out = self.admin(&["app-password", "add", user, "--name", name, "--json"], "")?;
        let json: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| format!("app-password add --json printed no JSON ({e}): {out}"))?;
        match json.get("password").and_then(|v| v.as_str()) {
            Some(pw) if !pw.is_empty() => Ok(pw.to_string()),
            _ => Err(format!(
                "app-password add --json printed no \"password\": {out}"
            )),
        }
    }
}

/// What one login is expected to do.
#[derive(Clone, Copy, PartialEq)]
pub enum Expect {
    /// Exit 0 with `user=...` on fd 4 and no `nologin` flag.
    Success,
    /// Exit 1 (authentication failed).
    Failure,
}

impl Expect {
    pub fn code(self) -> i32 {
        match self {
            Expect::Success => 0,
            Expect::Failure => 1,
        }
    }
}

/// The outcome of one `mailpass checkpassword` process.
pub struct Outcome {
    /// From just before the pipes were made to the exit, reply read to end of file.
    pub millis: f64,
    /// None: killed by a signal.
    pub code: Option<i32>,
    pub fd4: String,
    pub stderr: String,
}

impl Outcome {
    /// Why this is not what `expect` asks of a login as `user`, if it is not.
    pub fn mismatch(&self, expect: Expect, user: &str) -> Option<String> {
        if self.code != Some(expect.code()) {
            return Some(format!(
                "expected exit {}, got {}",
                expect.code(),
                self.code
                    .map_or_else(|| "a signal".to_string(), |c| format!("exit {c}"))
            ));
        }
        if expect == Expect::Success {
            let fields: Vec<&str> = self.fd4.split('\t').collect();
            if !fields.contains(&format!("user={user}").as_str()) {
                return Some(format!(
                    "exit 0 but the reply on fd 4 has no user={user} (Dovecot: temporary failure)"
                ));
            }
            if fields.contains(&"nologin") {
                return Some(
                    "exit 0 but the reply says nologin: the login was refused".to_string(),
                );
            }
        }
        None
    }
}

/// A started `mailpass checkpassword` process, blocked reading fd 3 until `release`.
pub struct Pending {
    pub child: Child,
    fd3: Option<PipeWriter>,
    fd4: PipeReader,
    request: Vec<u8>,
    start: Instant,
}

/// Starts one password check as Dovecot does (SERVICE=imap from `ip`), without writing the request yet. With
/// `group`, the process is put into that process group (0: a new one, led by the process).
pub fn spawn(
    setup: &Setup,
    user: &str,
    secret: &str,
    ip: &str,
    group: Option<i32>,
) -> Result<Pending, String> {
    let mut request = Vec::with_capacity(user.len() + secret.len() + 3);
    request.extend_from_slice(user.as_bytes());
    request.push(0);
    request.extend_from_slice(secret.as_bytes());
    request.extend_from_slice(&[0, 0]);

    let mut cmd = setup.command();
    cmd.arg("checkpassword")
        .env("SERVICE", "imap")
        .env("TCPREMOTEIP", ip)
        .env("PROTO", "TCP")
        .env("ORIG_UID", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(pgid) = group {
        cmd.process_group(pgid);
    }

    let start = Instant::now();
    let pipe = |what| std::io::pipe().map_err(|e| format!("pipe for {what}: {e}"));
    let (fd3_read, fd3_write) = pipe("fd 3")?;
    let (fd4_read, fd4_write) = pipe("fd 4")?;
    cmd.fd_mappings(vec![
        FdMapping {
            parent_fd: OwnedFd::from(fd3_read),
            child_fd: 3,
        },
        FdMapping {
            parent_fd: OwnedFd::from(fd4_write),
            child_fd: 4,
        },
    ])
    .map_err(|e| format!("fd mappings: {e}"))?;
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", setup.bin.display()))?;
    // The parent's copies of the mapped ends live in `cmd`; without this, fd 4 never reaches end of file.
    drop(cmd);
    Ok(Pending {
        child,
        fd3: Some(fd3_write),
        fd4: fd4_read,
        request,
        start,
    })
}

impl Pending {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes the whole request and closes fd 3, as Dovecot does.
    pub fn release(&mut self) {
        if let Some(mut fd3) = self.fd3.take() {
            // A process that already died cannot read it; its exit status tells.
            let _ = fd3.write_all(&self.request);
        }
    }

    /// Reads the reply to end of file and waits for the exit.
    pub fn finish(mut self) -> Result<Outcome, String> {
        self.release();
        let mut fd4 = Vec::new();
        self.fd4
            .read_to_end(&mut fd4)
            .map_err(|e| format!("reading fd 4: {e}"))?;
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| format!("waiting for mailpass: {e}"))?;
        Ok(Outcome {
            millis: self.start.elapsed().as_secs_f64() * 1e3,
            code: out.status.code(),
            fd4: String::from_utf8_lossy(&fd4).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Runs one login as Dovecot does and times it from spawn to exit (reply read to end of file).
pub fn login(setup: &Setup, user: &str, secret: &str, ip: &str) -> Result<Outcome, String> {
    spawn(setup, user, secret, ip, None)?.finish()
}
