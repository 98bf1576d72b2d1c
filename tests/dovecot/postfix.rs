//! A private Postfix for a route, as a mail server's Postfix uses Dovecot: its smtpd offers SMTP AUTH through
//! Dovecot's SASL (`smtpd_sasl_type = dovecot`, on the route's inet auth listener) and relays only for clients
//! that authenticated (`smtpd_relay_restrictions = permit_sasl_authenticated, reject`). Every relayed message
//! goes to a sink: a small SMTP server on a thread of the test process that records what it receives, so that
//! a trial can tell whether a message was relayed.
//!
//! The instance has its own config, queue and data directories and its log file under the route's directory
//! (for the 2.4 route too: Postfix runs on the host, only Dovecot is in the chroot, and they share loopback).
//! It is started as root with `postfix -c DIR start`: root may use any config directory
//! (`alternate_config_directories` matters only to the set-gid programs, postdrop and postqueue, run by other
//! users), and `postqueue -c DIR` works for root too. Every service runs unchrooted, nothing listens but
//! 127.0.0.1 on one high port, and there is no TLS. It is stopped with `postfix -c DIR stop`, then by the
//! master's pid (`queue/pid/master.pid`) and its children's pids; `Drop` stops it too.
//!
//! Needs Debian's `postfix` package (scripts/install-deps.sh installs it without a system configuration and
//! without starting it); the system's Postfix, if any, is never touched.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{STOP_TIMEOUT, alive, io, mkdir, run_bounded, signal, wait_dead};

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTQUEUE: &str = "/usr/sbin/postqueue";
/// Where Debian's Postfix keeps its daemons: processes running one of them are Postfix's.
const DAEMON_DIR: &str = "/usr/lib/postfix/";
/// `postfix start` runs its integrity checks before the master starts; `stop`, `postqueue` are quick.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One running Postfix and its sink.
pub struct Postfix {
    dir: PathBuf,
    /// The SMTP port (smtpd on 127.0.0.1).
    pub port: u16,
    sink: Arc<Sink>,
    pid: Mutex<Option<u32>>,
}

impl Postfix {
    /// Sets up `dir` (created) and starts a Postfix whose SMTP AUTH asks Dovecot on 127.0.0.1:`auth_port`.
    pub fn start(dir: &Path, auth_port: u16) -> Result<Postfix, String> {
        if !Path::new(POSTFIX).exists() {
            return Err(format!(
                "{POSTFIX} is missing: install postfix (scripts/install-deps.sh does, without configuring \
                 or starting it)"
            ));
        }
        mkdir(dir, 0o755, None)?;
        mkdir(&dir.join("conf"), 0o755, None)?;
        // Owned by root, as Postfix wants it; `postfix start` creates its subdirectories.
        mkdir(&dir.join("queue"), 0o755, Some((0, 0)))?;
        let (sink_port, sink) = Sink::start()?;
        let mut postfix = Postfix {
            dir: dir.to_path_buf(),
            port: 0,
            sink,
            pid: Mutex::new(None),
        };
        crate::server::retry_port_clashes(
            &mut postfix,
            |p| {
                p.port = free_port()?;
                p.launch(auth_port, sink_port)
            },
            Postfix::stop,
        )?;
        Ok(postfix)
    }

    fn conf_dir(&self) -> String {
        self.dir.join("conf").display().to_string()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("maillog")
    }

    fn launch(&self, auth_port: u16, sink_port: u16) -> Result<(), String> {
        let conf = self.dir.join("conf");
        io(
            "write main.cf",
            fs::write(conf.join("main.cf"), self.main_cf(auth_port, sink_port)),
        )?;
        io(
            "write master.cf",
            fs::write(conf.join("master.cf"), master_cf(self.port)),
        )?;
        let pid_file = self.dir.join("queue/pid/master.pid");
        let _ = fs::remove_file(&pid_file);
        let mut cmd = Command::new(POSTFIX);
        cmd.args(["-c", &self.conf_dir(), "start"]);
        // `start` waits for the master to initialise (`master -w`): bound ports or a failure.
        let out = run_bounded(cmd, COMMAND_TIMEOUT);
        // Known even when `start` failed or timed out, so that `stop` can end what did start.
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        *self.pid.lock().unwrap_or_else(|e| e.into_inner()) = pid;
        let out = out?;
        if !out.status.success() {
            return Err(format!(
                "postfix -c {} start failed ({}): {}{}\n{}",
                self.conf_dir(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(20)
            ));
        }
        let Some(pid) = pid else {
            return Err(format!(
                "postfix -c {} start left no {}\n{}",
                self.conf_dir(),
                pid_file.display(),
                self.log_tail(20)
            ));
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if !alive(pid) || Instant::now() > deadline {
                return Err(format!(
                    "Postfix (master pid {pid}) does not accept connections on {addr}\n{}",
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn main_cf(&self, auth_port: u16, sink_port: u16) -> String {
        let dir = self.dir.display();
        format!(
            "# A private Postfix for the mailpass end-to-end tests (generated by tests/dovecot/postfix.rs).
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = postfix-e2e.example.org
mydomain = example.org
myorigin = $mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# Nothing is delivered here: every message goes to the test's sink.
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{sink_port}
smtp_connection_cache_on_demand = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
biff = no
# SMTP AUTH as a mail server does it: Dovecot's SASL, plain mechanisms allowed without TLS (loopback).
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth_port}
smtpd_sasl_security_options = noanonymous
# Only an authenticated client may relay; nothing else stands in the way.
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions =
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
"
        )
    }

    /// Stops the Postfix (`postfix -c DIR stop`, then signals to the master and to its children); does
    /// nothing when it is not running. Safe to call more than once.
    pub fn stop(&self) {
        let Some(pid) = self.pid.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let children = children_of(pid);
        let mut cmd = Command::new(POSTFIX);
        cmd.args(["-c", &self.conf_dir(), "stop"]);
        let _ = run_bounded(cmd, COMMAND_TIMEOUT);
        if !wait_dead(pid, STOP_TIMEOUT) {
            signal(pid, "TERM");
            if !wait_dead(pid, STOP_TIMEOUT) {
                signal(pid, "KILL");
                if !wait_dead(pid, STOP_TIMEOUT) {
                    eprintln!(
                        "postfix master {pid} ({}) survived SIGKILL",
                        self.conf_dir()
                    );
                }
            }
        }
        // The master's children end when it does; one that does not is killed (if it still is Postfix's).
        for child in children {
            if !wait_dead(child, STOP_TIMEOUT) && is_postfix(child) {
                signal(child, "KILL");
                if !wait_dead(child, STOP_TIMEOUT) {
                    eprintln!(
                        "postfix process {child} ({}) survived SIGKILL",
                        self.conf_dir()
                    );
                }
            }
        }
    }

    /// Waits up to `timeout` for a message containing `marker` at the sink.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> bool {
        self.sink.wait_for(marker, timeout)
    }

    /// Whether the sink has received a message containing `marker`.
    pub fn received(&self, marker: &str) -> bool {
        self.sink.has(marker)
    }

    /// The queue as `postqueue -j` lists it: one JSON object per queued message (empty: nothing queued).
    pub fn queue(&self) -> Result<String, String> {
        let mut cmd = Command::new(POSTQUEUE);
        cmd.args(["-c", &self.conf_dir(), "-j"]);
        let out = run_bounded(cmd, COMMAND_TIMEOUT)?;
        if !out.status.success() {
            return Err(format!(
                "postqueue -c {} -j failed ({}): {}",
                self.conf_dir(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn log_tail(&self, n: usize) -> String {
        crate::server::log_tail(&self.log_path(), n)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

fn master_cf(port: u16) -> String {
    // Debian's master.cf, less what is not used (local delivery, TLS, pipes), every service chroot=n.
    format!(
        "# service type  private unpriv  chroot  wakeup  maxproc command (generated by tests/dovecot/postfix.rs)
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
"
    )
}

fn free_port() -> Result<u16, String> {
    let listener = io(
        "bind 127.0.0.1:0",
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)),
    )?;
    Ok(io("local address", listener.local_addr())?.port())
}

/// The pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid ...`: the command name may contain spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// Whether `pid` runs one of Postfix's daemons (so that a reused pid is never killed).
fn is_postfix(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(DAEMON_DIR))
}

/// The relay host of a Postfix: accepts every message and keeps it (envelope and data) in memory.
struct Sink {
    messages: Mutex<Vec<String>>,
    arrived: Condvar,
}

impl Sink {
    /// A sink listening on a free loopback port, served by threads that end with the test process.
    fn start() -> Result<(u16, Arc<Sink>), String> {
        let listener = io("sink", TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let port = io("sink", listener.local_addr())?.port();
        let sink = Arc::new(Sink {
            messages: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let serving = Arc::clone(&sink);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = Arc::clone(&serving);
                std::thread::spawn(move || sink.serve(stream));
            }
        });
        Ok((port, sink))
    }

    fn has(&self, marker: &str) -> bool {
        let messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        messages.iter().any(|m| m.contains(marker))
    }

    fn wait_for(&self, marker: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if messages.iter().any(|m| m.contains(marker)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            messages = self
                .arrived
                .wait_timeout(messages, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn keep(&self, message: String) {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
        self.arrived.notify_all();
    }

    /// One SMTP session from Postfix's smtp client: EHLO, MAIL, RCPT, DATA (kept), QUIT.
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut say = |text: &str| writer.write_all(text.as_bytes()).is_ok();
        if !say("220 sink.example.org ESMTP sink\r\n") {
            return;
        }
        let mut envelope = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                return;
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let answer = match verb.as_str() {
                "EHLO" | "HELO" => "250-sink.example.org\r\n250 8BITMIME\r\n",
                "MAIL" | "RCPT" => {
                    envelope.push_str(&line);
                    "250 2.1.0 ok\r\n"
                }
                "RSET" => {
                    envelope.clear();
                    "250 2.0.0 ok\r\n"
                }
                "DATA" => {
                    if !say("354 go ahead\r\n") {
                        return;
                    }
                    let mut message = std::mem::take(&mut envelope);
                    message.push_str("\r\n");
                    loop {
                        line.clear();
                        if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                            return;
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                        message.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    self.keep(message);
                    "250 2.0.0 kept\r\n"
                }
                "QUIT" => {
                    say("221 2.0.0 bye\r\n");
                    return;
                }
                _ => "250 2.0.0 ok\r\n",
            };
            if !say(answer) {
                return;
            }
        }
    }
}
