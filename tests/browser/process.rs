//! The processes a browser test starts, and how they are stopped: each by its pid (never by name), first with
//! SIGTERM, then SIGKILL, when its guard is dropped, so also when a scenario fails. Chromium is not our child
//! but chromedriver's: `Tree` finds its processes through the process tree and a marker in their command line.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// A loopback port that was free a moment ago (the server that takes it may lose a race: callers retry on
/// "Address already in use").
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local address: {e}"))
}

/// A child process with a log file, stopped by pid when dropped.
pub struct Guard {
    /// What it is, for messages ("mailpass web", "chromedriver").
    pub what: String,
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Guard {
    /// Starts `cmd` with stdin from /dev/null and stdout and stderr appended to `log` (a file, not a pipe:
    /// nobody has to read it for the process to go on).
    pub fn spawn(what: &str, mut cmd: Command, log: &Path) -> Result<Guard, String> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {what} ({cmd:?}): {e}"))?;
        Ok(Guard {
            what: what.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Its pid while it has not been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// What it wrote so far.
    pub fn output(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of its output, headed by the log's path (for a failing scenario's message).
    pub fn tail(&self, n: usize) -> String {
        let output = self.output();
        let lines: Vec<&str> = output.lines().collect();
        format!(
            "--- last lines of {} ({}):\n{}",
            self.log.display(),
            self.what,
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    /// SIGTERM, then SIGKILL if it has not exited after `TERM_GRACE`; reaps it. Returns how it ended, `None`
    /// when it had to be killed. Does nothing the second time.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(child.id(), "TERM");
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} (pid {}) did not exit {TERM_GRACE:?} after SIGTERM: killed",
            self.what,
            child.id()
        );
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a signal to one pid (with kill(1): the crate denies unsafe code, so no libc::kill here).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether a process is alive (a zombie is not).
pub fn alive(pid: u32) -> bool {
    match stat(pid) {
        Some((state, _)) => !matches!(state, 'Z' | 'X'),
        None => false,
    }
}

/// State and parent pid from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may contain spaces: the fields follow the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes below `root` in the process tree (children, their children...), not `root` itself.
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|pid| stat(pid).map(|(_, ppid)| (pid, ppid)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The live processes whose command line contains `marker` (a temp dir only they were given).
pub fn mentioning(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && alive(pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// SIGTERM to each pid, then SIGKILL to those still alive after `TERM_GRACE`; returns those that survived
/// even that (to report).
pub fn terminate(pids: &[u32]) -> Vec<u32> {
    for &pid in pids {
        signal(pid, "TERM");
    }
    let deadline = Instant::now() + TERM_GRACE;
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        signal(pid, "KILL");
    }
    let deadline = Instant::now() + TERM_GRACE;
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids.iter().copied().filter(|&p| alive(p)).collect()
}
