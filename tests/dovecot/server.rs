//! Real Dovecot servers for the end-to-end tests: one per route, each with its own temp dir, config, ports,
//! mailpass database and log, started as root with `dovecot -c FILE` and stopped by pid.
//!
//! A `Flavor` says which Dovecot runs and how mailpass is plugged in (config generation, where Dovecot's
//! file system is, how its programs are run). A `Route` is one running instance of a flavor. Dovecot 2.4 runs
//! in a Debian 13 chroot: `check_installed` builds or reuses it (tests/support/dovecot24-chroot.sh),
//! `system_root` is the chroot, `program` prefixes `chroot DIR`, and `dovecot_conf` writes 2.4 syntax around the
//! shipped dovecot-2.4-lua.conf. Everything else (layout, users, start/stop, doveadm) is shared: a route's
//! directory is made under the chroot's /tmp, and `Layout` maps its host paths to the paths Dovecot sees.
//!
//! Each route also has a private Postfix (`postfix.rs`), started on first use: its SMTP AUTH asks the route's
//! Dovecot over an inet auth listener (`smtpd_sasl_type = dovecot`), as a mail server's Postfix does.
//!
//! The benchmark benches/dovecot.rs uses this module too: `Route::start_with` takes `Options` (argon2
//! parameters, the binary, the users of a passwd-file), and the `PasswdFile*` flavors run Dovecot's own
//! passwd-file passdb without mailpass, as the reference to compare with.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::common::Env;

#[path = "postfix.rs"]
pub mod postfix;

/// The shipped drop-in configs and Lua script: these files are what the tests exercise.
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dovecot-conf");
/// Default paths in the shipped files, replaced by the route's own.
const SHIPPED_BIN: &str = "/usr/local/bin/mailpass";
const SHIPPED_LUA: &str = "/etc/dovecot/mailpass.lua";

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const DOVEADM_TIMEOUT: Duration = Duration::from_secs(30);

/// The mail storage user that mailpass's `[userdb]` names (created if missing, as an admin would).
/// The owner of the test mailboxes: an existing unprivileged user (on the host and in the 2.4 chroot alike), so
/// that the tests create no system user.
pub const MAIL_OWNER: &str = "nobody";
/// The Dovecot auth user: it (and root) owns the mailpass database.
pub const AUTH_USER: &str = "dovecot";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Dovecot 2.3 on the host: checkpassword passdb, prefetch userdb, checkpassword userdb
    /// (dovecot-conf/dovecot-2.3-checkpassword.conf.ext).
    Checkpassword23,
    /// Dovecot 2.3 on the host: the Lua passdb and userdb (dovecot-conf/dovecot-2.3-lua.conf.ext, mailpass.lua).
    Lua23,
    /// Dovecot 2.4 in a Debian 13 chroot (tests/support/dovecot24-chroot.sh): the Lua passdb and userdb
    /// (dovecot-conf/dovecot-2.4-lua.conf, mailpass.lua). The chroot shares the host's loopback.
    Lua24,
    /// Dovecot 2.3 on the host with its own passwd-file passdb and userdb, no mailpass (`Options::passwd_file`):
    /// the benchmark's reference.
    #[allow(dead_code)] // Only benches/dovecot.rs starts one.
    PasswdFile23,
    /// Dovecot 2.4 in the chroot with its own passwd-file passdb and userdb, no mailpass.
    #[allow(dead_code)] // Only benches/dovecot.rs starts one.
    PasswdFile24,
}

/// How a route is set up beyond its flavor.
pub struct Options {
    /// mailpass's `[argon2]` parameters: memory in KiB, iterations, parallelism.
    pub argon2: (u32, u32, u32),
    /// The mailpass binary that Dovecot runs (copied into the route's directory).
    pub bin: PathBuf,
    /// The users of the passwd-file flavors: name and password hash with its scheme (`{ARGON2ID}$argon2id$...`).
    pub passwd_file: Vec<(String, String)>,
}

impl Options {
    /// What the end-to-end tests use: small argon2 parameters for speed, the binary cargo built for the test.
    pub fn test() -> Options {
        Options {
            argon2: (1024, 1, 1),
            bin: PathBuf::from(env!("CARGO_BIN_EXE_mailpass")),
            passwd_file: Vec::new(),
        }
    }
}

/// Seconds before mailpass.lua kills a helper that has not answered (shipped default 20): short, so that the
/// scenario with a stuck helper ends soon. mailpass's own limit (15 s) never comes into play in the tests.
pub const LUA_HELPER_TIMEOUT: u64 = 3;

/// How a route's Dovecot and mailpass are set up beyond the flavor and the `Options`.
#[derive(Clone, Copy, Default)]
pub struct Setup {
    /// More `[auth]` keys, then any other tables, for the route's mailpass.toml.
    pub mailpass: &'static str,
    /// Dovecot's brakes as shipped (`auth_failure_delay` 2 s, the anvil penalty) and mailpass's as it ships
    /// (`failure_delay` 2, `penalty`), instead of all off so that failing trials answer at once.
    pub brakes: bool,
    /// More dovecot.conf settings (the auth cache).
    pub dovecot: &'static str,
    /// Route 2: the shipped chained config (mailpass first, `[auth] next_passdb = true`), then a real second
    /// passdb and userdb, a passwd-file (`users2`, filled by `Route::add_second_passdb_user`) standing in for
    /// LDAP or SQL.
    pub chained: bool,
}

/// Where the Dovecot 2.4 chroot lives (built once by the script, then reused).
pub fn chroot24() -> PathBuf {
    std::env::var_os("MAILPASS_CHROOT24")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/mailpass-test/trixie"))
}

const CHROOT24_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/dovecot24-chroot.sh"
);

/// How long building the chroot may take (debootstrap, or waiting for another run's build).
const CHROOT24_TIMEOUT: Duration = Duration::from_secs(600);

impl Flavor {
    pub const ALL: [Flavor; 3] = [Flavor::Checkpassword23, Flavor::Lua23, Flavor::Lua24];

    /// The prefix of the trial names.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Checkpassword23 => "checkpassword",
            Flavor::Lua23 => "lua23",
            Flavor::Lua24 => "lua24",
            Flavor::PasswdFile23 => "passwdfile23",
            Flavor::PasswdFile24 => "passwdfile24",
        }
    }

    /// Dovecot 2.4 (in the chroot, 2.4 config syntax) rather than 2.3 on the host.
    pub fn is_24(self) -> bool {
        matches!(self, Flavor::Lua24 | Flavor::PasswdFile24)
    }

    /// Dovecot's own passwd-file passdb, no mailpass.
    pub fn is_passwd_file(self) -> bool {
        matches!(self, Flavor::PasswdFile23 | Flavor::PasswdFile24)
    }

    /// Whether mailpass.lua answers the logins.
    pub fn uses_lua(self) -> bool {
        matches!(self, Flavor::Lua23 | Flavor::Lua24)
    }

    /// The root of the file system Dovecot runs in, as a host path.
    pub fn system_root(self) -> PathBuf {
        if self.is_24() {
            chroot24()
        } else {
            PathBuf::from("/")
        }
    }

    /// A Dovecot program (`/usr/sbin/dovecot`, `/usr/bin/doveadm`) as this flavor runs it.
    pub fn program(self, path: &str) -> Command {
        if self.is_24() {
            let mut cmd = Command::new("chroot");
            cmd.arg(chroot24()).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// The installed Dovecot version, e.g. `2.3.19.1`.
    fn version(self) -> Result<String, String> {
        let out = self
            .program("/usr/sbin/dovecot")
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run dovecot --version: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "2.4.1-4 (7d8c0e5759)": the version is what precedes the Debian revision and the commit.
        let version = text
            .split([' ', '-'])
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if out.status.success() && !version.is_empty() {
            Ok(version)
        } else {
            Err(format!(
                "dovecot --version failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Whatever this flavor needs (for 2.4: builds or reuses the chroot), or why it cannot run here.
    pub fn check_installed(self) -> Result<(), String> {
        let root = fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        if !root {
            return Err("the Dovecot tests start Dovecot and must run as root".into());
        }
        let (want, needed): (&str, &[&str]) = match self {
            Flavor::Checkpassword23 | Flavor::PasswdFile23 => ("2.3", &[]),
            Flavor::Lua23 => ("2.3", &["/usr/lib/dovecot/modules/auth/libauthdb_lua.so"]),
            Flavor::Lua24 | Flavor::PasswdFile24 => {
                let mut cmd = Command::new("sh");
                cmd.arg(CHROOT24_SCRIPT).arg(chroot24());
                let out = run_bounded(cmd, CHROOT24_TIMEOUT)?;
                if !out.status.success() {
                    return Err(format!(
                        "no Dovecot 2.4 chroot at {} ({CHROOT24_SCRIPT} failed): {}",
                        chroot24().display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                let lua: &[&str] = &["/usr/lib/dovecot/modules/auth/libauthdb_lua.so"];
                ("2.4", if self.uses_lua() { lua } else { &[] })
            }
        };
        let root = self.system_root();
        if !root.join("usr/sbin/dovecot").exists() {
            return Err(format!(
                "Dovecot is not installed ({} is missing): install dovecot-core, dovecot-imapd, \
                 dovecot-pop3d, dovecot-submissiond, dovecot-managesieved and dovecot-auth-lua",
                root.join("usr/sbin/dovecot").display()
            ));
        }
        let version = self.version()?;
        if !version.starts_with(&format!("{want}.")) {
            return Err(format!(
                "{} needs Dovecot {want}, {} is {version}",
                self.name(),
                root.join("usr/sbin/dovecot").display()
            ));
        }
        let common = [
            "/usr/lib/dovecot/imap",
            "/usr/lib/dovecot/pop3",
            "/usr/lib/dovecot/submission",
            "/usr/lib/dovecot/managesieve",
            "/usr/lib/dovecot/managesieve-login",
        ];
        for path in needed.iter().chain(&common) {
            let host = root.join(path.trim_start_matches('/'));
            if !host.exists() {
                return Err(format!(
                    "{} is missing: install dovecot-imapd, dovecot-pop3d, dovecot-submissiond, \
                     dovecot-managesieved and dovecot-auth-lua (scripts/install-deps.sh)",
                    host.display()
                ));
            }
        }
        Ok(())
    }

    /// The auth part: the shipped drop-in file with the route's paths in place of the defaults (for the
    /// passwd-file flavors: a passwd-file passdb and userdb on the route's `users` file).
    fn auth_conf(self, layout: &Layout, chained: bool) -> Result<String, String> {
        let (file, from, to) = match self {
            Flavor::PasswdFile23 => {
                let users = layout.seen("users");
                return Ok(format!(
                    "# Dovecot's own passwd-file passdb and userdb (generated by tests/dovecot/server.rs)\n\
                     passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                     userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n"
                ));
            }
            Flavor::PasswdFile24 => {
                let users = layout.seen("users");
                return Ok(format!(
                    "# Dovecot's own passwd-file passdb and userdb (generated by tests/dovecot/server.rs)\n\
                     passdb passwd-file {{\n  passwd_file_path = {users}\n}}\n\
                     userdb passwd-file {{\n  passwd_file_path = {users}\n}}\n"
                ));
            }
            Flavor::Checkpassword23 => (
                "dovecot-2.3-checkpassword.conf.ext",
                format!("{SHIPPED_BIN} "),
                format!(
                    "{} --db {} --config {} ",
                    layout.seen("mailpass"),
                    layout.seen("db/mailpass.db"),
                    layout.seen("mailpass.toml")
                ),
            ),
            Flavor::Lua23 => (
                "dovecot-2.3-lua.conf.ext",
                SHIPPED_LUA.to_string(),
                layout.seen("mailpass.lua"),
            ),
            Flavor::Lua24 => (
                "dovecot-2.4-lua.conf",
                SHIPPED_LUA.to_string(),
                layout.seen("mailpass.lua"),
            ),
        };
        let file = match (chained, file) {
            (false, file) => file.to_string(),
            (true, "dovecot-2.4-lua.conf") => "dovecot-2.4-lua-chained.conf".to_string(),
            (true, file) => file.replace(".conf.ext", "-chained.conf.ext"),
        };
        let path = Path::new(SHIPPED).join(file);
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut replaced = 0;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                if !line.trim_start().starts_with('#') && line.contains(&from) {
                    replaced += 1;
                    line.replace(&from, &to)
                } else {
                    line.to_string()
                }
            })
            .collect();
        if replaced == 0 {
            return Err(format!(
                "{}: no setting names {from:?}; the test harness adapts that path",
                path.display()
            ));
        }
        let mut conf = format!(
            "# {} with this route's paths (generated by tests/dovecot.rs)\n",
            path.display()
        );
        if self.is_24() {
            // The paths, as the shipped file's comment says: at the top level, where both blocks see them.
            conf.push_str(&format!(
                "lua_settings {{\n  mailpass_bin = {}\n  mailpass_db = {}\n  mailpass_config = {}\n  \
                 mailpass_timeout = {LUA_HELPER_TIMEOUT}\n}}\n",
                layout.seen("mailpass"),
                layout.seen("db/mailpass.db"),
                layout.seen("mailpass.toml"),
            ));
        }
        conf.push_str(&lines.join("\n"));
        conf.push('\n');
        if chained {
            // The directory that stays the source of truth, after mailpass (passdbs run in config order).
            let users = layout.seen("users2");
            conf.push_str(&if self.is_24() {
                format!(
                    "# The second passdb (generated by tests/dovecot/server.rs), standing in for LDAP or SQL.\n\
                     passdb passwd-file {{\n  passwd_file_path = {users}\n}}\n\
                     userdb passwd-file {{\n  passwd_file_path = {users}\n}}\n"
                )
            } else {
                format!(
                    "# The second passdb (generated by tests/dovecot/server.rs), standing in for LDAP or SQL.\n\
                     passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                     userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n"
                )
            });
        }
        Ok(conf)
    }

    /// The whole dovecot.conf of a route.
    fn dovecot_conf(
        self,
        layout: &Layout,
        ports: Ports,
        vmail_uid: u32,
        relay_port: u16,
        setup: Setup,
    ) -> Result<String, String> {
        let mut conf = format!(
            "# Generated by tests/dovecot.rs: mailpass end-to-end tests, route {}.\n",
            layout.name
        );
        if self.is_24() {
            // 2.4 wants these first, naming the installed version.
            let version = self.version()?;
            conf.push_str(&format!(
                "dovecot_config_version = {version}\ndovecot_storage_version = {version}\n"
            ));
        }
        conf.push_str(&format!(
            "instance_name = mailpass-e2e-{route}
protocols = imap pop3 submission sieve
listen = 127.0.0.1
base_dir = {base}
state_dir = {state}
log_path = {log}
ssl = no
{brakes}auth_verbose = yes
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {vmail_uid}
hostname = mailpass-e2e.example.org
# The submission service connects to its relay at login: a stub relay in the test process answers.
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}

service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = {submission}
  }}
  inet_listener submissions {{
    port = 0
  }}
}}
service managesieve-login {{
  inet_listener sieve {{
    port = {sieve}
  }}
}}
{anvil}{extra}",
            brakes = if setup.brakes {
                "# Dovecot's brakes as shipped: auth_failure_delay 2 s and the anvil penalty.\n"
            } else {
                "# Failing logins would otherwise wait 2 s (the delay) to 15 s (anvil's penalty) each.\n\
                 auth_failure_delay = 0\n"
            },
            anvil = if setup.brakes {
                ""
            } else {
                "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
            },
            extra = setup.dovecot,
            route = layout.name,
            base = layout.seen("run"),
            state = layout.seen("state"),
            log = layout.seen("dovecot.log"),
            imap = ports.imap,
            pop3 = ports.pop3,
            submission = ports.submission,
            sieve = ports.sieve,
        ));
        // The route's Postfix asks this listener (`smtpd_sasl_path = inet:127.0.0.1:PORT`); it speaks the
        // auth-client protocol, like the auth-client socket that a Postfix on the same host would use.
        if self.is_24() {
            conf.push_str(&format!(
                "service auth {{\n  inet_listener auth-postfix {{\n    port = {}\n    type = auth\n  }}\n}}\n",
                ports.auth
            ));
        } else {
            conf.push_str(&format!(
                "service auth {{\n  inet_listener auth-postfix {{\n    port = {}\n  }}\n}}\n",
                ports.auth
            ));
        }
        if self.is_24() {
            conf.push_str(
                "auth_allow_cleartext = yes\n\
                 auth_mechanisms = plain login\n\
                 # Defaults to 2 s plus jitter in 2.4.\n\
                 auth_internal_failure_delay = 0\n\
                 mail_driver = maildir\n\
                 mail_path = ~/Maildir\n\
                 # ManageSieve's script storage.\n\
                 sieve_script personal {\n  driver = file\n  path = ~/sieve\n  active_path = ~/.dovecot.sieve\n}\n",
            );
        } else {
            conf.push_str(
                "disable_plaintext_auth = no\n\
                 auth_mechanisms = plain login\n\
                 mail_location = maildir:~/Maildir\n\
                 # ManageSieve's script storage.\n\
                 plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n",
            );
        }
        if self == Flavor::Lua23 {
            conf.push_str(&format!(
                "# mailpass.lua reads its paths from the environment (see its header).\n\
                 import_environment = $import_environment MAILPASS_BIN={} MAILPASS_DB={} MAILPASS_CONFIG={} \
                 MAILPASS_TIMEOUT={LUA_HELPER_TIMEOUT}\n",
                layout.seen("mailpass"),
                layout.seen("db/mailpass.db"),
                layout.seen("mailpass.toml"),
            ));
        }
        conf.push_str(&format!(
            "\n!include {}\n",
            layout.seen("auth-mailpass.conf.ext")
        ));
        Ok(conf)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub imap: u16,
    pub pop3: u16,
    pub submission: u16,
    /// ManageSieve (managesieve-login).
    pub sieve: u16,
    /// The auth service's inet listener (auth-client protocol) that the route's Postfix asks.
    pub auth: u16,
}

impl Ports {
    /// Free loopback ports, as the kernel hands them out (bound together so that they differ).
    fn pick() -> Result<Ports, String> {
        let listeners = (0..5)
            .map(|_| {
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .map_err(|e| format!("bind 127.0.0.1:0: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ports {
            imap: ports[0],
            pop3: ports[1],
            submission: ports[2],
            sieve: ports[3],
            auth: ports[4],
        })
    }

    fn all(self) -> [u16; 5] {
        [self.imap, self.pop3, self.submission, self.sieve, self.auth]
    }
}

/// A route's directory, on the host and as Dovecot sees it (the same for 2.3; inside a chroot for 2.4).
pub struct Layout {
    pub name: String,
    pub host: PathBuf,
    seen: PathBuf,
}

impl Layout {
    pub fn host(&self, rel: &str) -> PathBuf {
        self.host.join(rel)
    }

    pub fn seen(&self, rel: &str) -> String {
        self.seen.join(rel).display().to_string()
    }
}

/// A stub SMTP relay for Dovecot's submission service, which connects to its relay as soon as a user has
/// logged in: it greets, accepts EHLO and says goodbye. One per test process, on a thread that ends with it.
fn relay_port() -> Result<u16, String> {
    static RELAY: OnceLock<Result<u16, String>> = OnceLock::new();
    RELAY
        .get_or_init(|| {
            let listener = io("stub relay", TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
            let port = io("stub relay", listener.local_addr())?.port();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    std::thread::spawn(move || serve_relay(stream));
                }
            });
            Ok(port)
        })
        .clone()
}

fn serve_relay(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(stream);
    let mut say = |text: &str| writer.write_all(text.as_bytes()).is_ok();
    if !say("220 relay.example.org ESMTP stub\r\n") {
        return;
    }
    let mut line = String::new();
    while matches!(std::io::BufRead::read_line(&mut reader, &mut line), Ok(n) if n > 0) {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        line.clear();
        let answer = match verb.as_str() {
            "EHLO" => "250-relay.example.org\r\n250 8BITMIME\r\n",
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

/// Uid and gid of a user in the passwd file under `root`.
fn passwd_ids(root: &Path, name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string(root.join("etc/passwd")).ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == name)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// The last `n` lines of a log file, headed by its path (for a failing trial's message).
pub fn log_tail(path: &Path, n: usize) -> String {
    let log = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "--- last lines of {}:\n{}",
        path.display(),
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}

/// Runs `launch` on `target` up to three times while it fails because a port picked free was taken before the
/// server bound it; `stop` cleans up after each failure.
pub fn retry_port_clashes<T>(
    target: &mut T,
    mut launch: impl FnMut(&mut T) -> Result<(), String>,
    stop: impl Fn(&T),
) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        match launch(target) {
            Ok(()) => return Ok(()),
            Err(e) => {
                stop(target);
                let retry = e.contains("Address already in use");
                last = e;
                if !retry {
                    break;
                }
            }
        }
    }
    Err(last)
}

fn io<T>(what: impl std::fmt::Display, r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<(), String> {
    io(path.display(), fs::create_dir_all(path))?;
    set_mode(path, mode)?;
    if let Some((uid, gid)) = owner {
        io(
            format!("chown {}", path.display()),
            std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        )?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    io(
        format!("chmod {}", path.display()),
        fs::set_permissions(path, fs::Permissions::from_mode(mode)),
    )
}

/// Runs a command with a time limit; a command still running then is killed.
pub fn run_bounded(cmd: Command, timeout: Duration) -> Result<Output, String> {
    run_bounded_input(cmd, None, timeout)
}

/// `run_bounded` with `input` written to the command's standard input (then closed); `None`: /dev/null.
pub fn run_bounded_input(
    mut cmd: Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = io(
        &what,
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn(),
    )?;
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        // A child that exits before reading it all closes the pipe: not an error here.
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    // Read both pipes on threads so that a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = io(&what, child.try_wait())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    })
}

/// Whether a process is alive (a zombie is not).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name in parentheses, which may contain spaces.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

fn wait_dead(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// One running Dovecot with its own mailpass database.
pub struct Route {
    pub flavor: Flavor,
    pub layout: Layout,
    /// The mailpass admin CLI on this route's database and config (host paths); its temp dir is the route's.
    pub env: Env,
    pub ports: Ports,
    /// Uid and gid of the auth user that owns the database.
    pub auth_ids: (u32, u32),
    pub vmail_ids: (u32, u32),
    conf: String,
    pid: Mutex<Option<u32>>,
    /// Held by trials that break the database for a while (they must not overlap).
    exclusive: Mutex<()>,
    /// The route's Postfix, started on first use (`Route::postfix`) and stopped with the route.
    postfix: OnceLock<Result<postfix::Postfix, String>>,
    setup: Setup,
}

impl Route {
    /// Sets up the route's directory and starts Dovecot with `options` (the tests' or the benchmark's argon2
    /// parameters and binary); the Dovecot is stopped when the route is dropped.
    #[allow(dead_code)] // Only benches/dovecot.rs calls it; the tests go through LazyRoute.
    pub fn start_with(flavor: Flavor, role: &str, options: &Options) -> Result<Route, String> {
        Route::start_configured(flavor, role, options, Setup::default())
    }

    /// `start_with`, set up as `setup` says.
    pub fn start_configured(
        flavor: Flavor,
        role: &str,
        options: &Options,
        setup: Setup,
    ) -> Result<Route, String> {
        let name = format!("{}-{role}", flavor.name());
        let root = flavor.system_root();
        let auth_ids = passwd_ids(&root, AUTH_USER)
            .ok_or_else(|| format!("no user {AUTH_USER}: is dovecot-core installed?"))?;
        let vmail_ids = passwd_ids(&root, MAIL_OWNER)
            .ok_or_else(|| format!("no user {MAIL_OWNER} under {}", root.display()))?;
        let dir = io(
            "temp dir",
            tempfile::Builder::new()
                .prefix(&format!("mailpass-e2e-{name}-"))
                .tempdir_in(root.join("tmp")),
        )?;
        let host = dir.path().to_path_buf();
        let seen = Path::new("/").join(host.strip_prefix(&root).unwrap_or(&host));
        let layout = Layout { name, host, seen };
        // Dovecot's unprivileged processes (dovecot, dovenull, vmail) must traverse the tree.
        set_mode(&layout.host, 0o755)?;
        mkdir(&layout.host("run"), 0o755, None)?;
        mkdir(&layout.host("state"), 0o755, None)?;
        mkdir(&layout.host("db"), 0o700, Some(auth_ids))?;
        mkdir(&layout.host("vmail"), 0o755, Some(vmail_ids))?;

        // The binary under target/ may not be reachable by the dovecot user: a copy in the route's dir is.
        let bin = layout.host("mailpass");
        io("copy mailpass", fs::copy(&options.bin, &bin))?;
        set_mode(&bin, 0o755)?;
        let config = layout.host("mailpass.toml");
        io(
            config.display(),
            fs::write(
                &config,
                format!(
                    "# mailpass config of this route (generated by tests/dovecot/server.rs).\n\
                     [argon2]\nmemory_kib = {m}\niterations = {t}\nparallelism = {p}\n\n\
                     [userdb]\nhome = \"{}/%d/%n\"\nuid = \"{}\"\ngid = \"{}\"\n\n\
                     # The trials' clients connect from 127.0.0.1 and fail often: never ban it. The\n\
                     # rest of 127.0.0.0/8 (allowed by default) can be banned, for the trials that ban\n\
                     # a client address.\n\
                     [bans]\nallow = [\"127.0.0.1/32\", \"::1/128\"]\n\n\
                     # As dovecot.conf's brakes: mailpass's own for the refusals it sends a login\n\
                     # process as success + nologin.\n\
                     [auth]\nfailure_delay = {delay}\npenalty = {brakes}\n{extra}",
                    layout.seen("vmail"),
                    vmail_ids.0,
                    vmail_ids.1,
                    delay = if setup.brakes { 2 } else { 0 },
                    brakes = setup.brakes,
                    extra = setup.mailpass,
                    m = options.argon2.0,
                    t = options.argon2.1,
                    p = options.argon2.2,
                ),
            ),
        )?;
        set_mode(&config, 0o644)?;
        let lua = layout.host("mailpass.lua");
        io(
            "copy mailpass.lua",
            fs::copy(Path::new(SHIPPED).join("mailpass.lua"), &lua),
        )?;
        set_mode(&lua, 0o644)?;
        if flavor.is_passwd_file() {
            // The users, with the home, uid and gid that mailpass's [userdb] would give them.
            let users: String = options
                .passwd_file
                .iter()
                .map(|(user, hash)| {
                    let home = match user.split_once('@') {
                        Some((local, domain)) => layout.seen(&format!("vmail/{domain}/{local}")),
                        None => layout.seen(&format!("vmail/{user}")),
                    };
                    format!("{user}:{hash}:{}:{}::{home}::\n", vmail_ids.0, vmail_ids.1)
                })
                .collect();
            let users_path = layout.host("users");
            io(users_path.display(), fs::write(&users_path, users))?;
            // Readable by root and the auth user only, like a real passwd-file.
            set_mode(&users_path, 0o640)?;
            io(
                format!("chown {}", users_path.display()),
                std::os::unix::fs::chown(&users_path, Some(0), Some(auth_ids.1)),
            )?;
        }
        if setup.chained {
            let users_path = layout.host("users2");
            io(users_path.display(), fs::write(&users_path, ""))?;
            set_mode(&users_path, 0o640)?;
            io(
                format!("chown {}", users_path.display()),
                std::os::unix::fs::chown(&users_path, Some(0), Some(auth_ids.1)),
            )?;
        }
        io(
            "write auth-mailpass.conf.ext",
            fs::write(
                layout.host("auth-mailpass.conf.ext"),
                flavor.auth_conf(&layout, setup.chained)?,
            ),
        )?;

        let env = Env {
            db: layout.host("db/mailpass.db"),
            config,
            dir,
        };
        let mut route = Route {
            flavor,
            env,
            ports: Ports {
                imap: 0,
                pop3: 0,
                submission: 0,
                sieve: 0,
                auth: 0,
            },
            auth_ids,
            vmail_ids,
            conf: layout.seen("dovecot.conf"),
            layout,
            pid: Mutex::new(None),
            exclusive: Mutex::new(()),
            postfix: OnceLock::new(),
            setup,
        };
        if std::env::var_os("MAILPASS_E2E_KEEP").is_some() {
            route.env.dir.disable_cleanup(true);
        }
        // The database, created by root the way the README tells an admin, then handed to the auth user.
        let created = route.env.admin(&["user", "list"], "");
        if !created.status.success() {
            return Err(format!(
                "mailpass user list (creating the database) failed: {}",
                String::from_utf8_lossy(&created.stderr)
            ));
        }
        route.chown_db(auth_ids)?;

        retry_port_clashes(&mut route, Route::launch, Route::stop)?;
        Ok(route)
    }

    fn launch(&mut self) -> Result<(), String> {
        self.ports = Ports::pick()?;
        let conf = self.flavor.dovecot_conf(
            &self.layout,
            self.ports,
            self.vmail_ids.0,
            relay_port()?,
            self.setup,
        )?;
        io(
            "write dovecot.conf",
            fs::write(self.layout.host("dovecot.conf"), conf),
        )?;
        let pid_file = self.layout.host("run/master.pid");
        let _ = fs::remove_file(&pid_file);
        // The daemon keeps the descriptors it was started with: a file, not a pipe that would never close.
        let output_path = self.layout.host("dovecot.out");
        let output = io("dovecot.out", fs::File::create(&output_path))?;
        let mut cmd = self.flavor.program("/usr/sbin/dovecot");
        cmd.args(["-c", &self.conf])
            .stdin(Stdio::null())
            .stdout(io("dovecot.out", output.try_clone())?)
            .stderr(output);
        let mut child = io("start dovecot", cmd.spawn())?;
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = io("wait for dovecot", child.try_wait())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("dovecot -c {} did not return", self.conf));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !status.success() {
            return Err(format!(
                "dovecot -c {} failed ({status}): {}\n{}",
                self.conf,
                fs::read_to_string(&output_path).unwrap_or_default(),
                self.log_tail(30)
            ));
        }
        let pid = loop {
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                break pid;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no {} after {START_TIMEOUT:?}\n{}",
                    pid_file.display(),
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        *self.pid.lock().unwrap_or_else(|e| e.into_inner()) = Some(pid);
        for port in self.ports.all() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if !alive(pid) || Instant::now() > deadline {
                    return Err(format!(
                        "Dovecot (pid {pid}) does not accept connections on {addr}\n{}",
                        self.log_tail(30)
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The route's Postfix, started on the first call (`postfix.rs`); later calls get the same one (or the
    /// same error).
    pub fn postfix(&self) -> Result<&postfix::Postfix, String> {
        self.postfix
            .get_or_init(|| {
                postfix::Postfix::start(&self.layout.host("postfix"), self.ports.auth)
                    .map_err(|e| format!("route {}: Postfix did not start: {e}", self.layout.name))
            })
            .as_ref()
            .map_err(String::clone)
    }

    /// The route's Postfix if it was started.
    pub fn started_postfix(&self) -> Option<&postfix::Postfix> {
        self.postfix.get().and_then(|p| p.as_ref().ok())
    }

    /// Stops this route's Postfix (if it was started) and Dovecot (`doveadm stop`, then signals to its
    /// pid); does nothing for what is not running. Safe to call more than once.
    pub fn stop(&self) {
        if let Some(postfix) = self.started_postfix() {
            postfix.stop();
        }
        let Some(pid) = self.pid.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let _ = self.doveadm(&["stop"]);
        if wait_dead(pid, STOP_TIMEOUT) {
            return;
        }
        signal(pid, "TERM");
        if wait_dead(pid, STOP_TIMEOUT) {
            return;
        }
        signal(pid, "KILL");
        if !wait_dead(pid, STOP_TIMEOUT) {
            eprintln!(
                "dovecot master {pid} of route {} survived SIGKILL",
                self.layout.name
            );
        }
    }

    /// `doveadm -c FILE ARGS...`, bounded.
    /// Adds `user` to the chained route's second passdb (`Setup::chained`) with `password` as a
    /// `{SHA512-CRYPT}` hash from Dovecot's own `doveadm pw`, and the home, uid and gid mailpass's [userdb]
    /// would give. Dovecot rereads a passwd-file that changed.
    pub fn add_second_passdb_user(&self, user: &str, password: &str) -> Result<(), String> {
        use std::io::Write as _;
        let out = run_bounded(
            {
                let mut cmd = Command::new("/usr/bin/doveadm");
                cmd.args(["pw", "-s", "SHA512-CRYPT", "-p", password]);
                cmd
            },
            DOVEADM_TIMEOUT,
        )?;
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !hash.starts_with("{SHA512-CRYPT}") {
            return Err(format!("doveadm pw -s SHA512-CRYPT: {out:?}"));
        }
        let (local, domain) = user.split_once('@').unwrap_or((user, "-"));
        let home = self.layout.seen(&format!("vmail/{domain}/{local}"));
        let line = format!(
            "{user}:{hash}:{}:{}::{home}::\n",
            self.vmail_ids.0, self.vmail_ids.1
        );
        // One write of a whole line in append mode: scenarios add their users side by side.
        let mut file = io(
            "open users2",
            fs::OpenOptions::new()
                .append(true)
                .open(self.layout.host("users2")),
        )?;
        io("append to users2", file.write_all(line.as_bytes()))?;
        // Dovecot 2.4 rereads the file only when its mtime moved, in whole seconds: a file changed twice within
        // a second would keep the first version. Each change gets a later mtime of its own.
        static CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = CHANGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        io(
            "set the mtime of users2",
            file.set_modified(std::time::SystemTime::now() + Duration::from_secs(n)),
        )?;
        // And it looks at the file at most once a second: a lookup within the second of the last one would
        // still see the old file.
        std::thread::sleep(Duration::from_millis(1100));
        Ok(())
    }

    pub fn doveadm(&self, args: &[&str]) -> Result<Output, String> {
        let mut cmd = self.flavor.program("/usr/bin/doveadm");
        cmd.args(["-c", &self.conf]).args(args);
        run_bounded(cmd, DOVEADM_TIMEOUT)
    }

    /// Gives the database files to `ids` (the auth user, or root to make them unreadable for Dovecot).
    pub fn chown_db(&self, (uid, gid): (u32, u32)) -> Result<(), String> {
        for entry in io("read db dir", fs::read_dir(self.layout.host("db")))? {
            let path = io("read db dir", entry)?.path();
            io(
                format!("chown {}", path.display()),
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)),
            )?;
        }
        Ok(())
    }

    /// Serialises the trials that break this route's database.
    pub fn exclusive(&self) -> MutexGuard<'_, ()> {
        self.exclusive.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn log_path(&self) -> PathBuf {
        self.layout.host("dovecot.log")
    }

    fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log_path(), n)
    }

    /// The log lines that mention `needle`, and every fatal error or panic (the last `n`).
    pub fn log_about(&self, needle: &str, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(needle) || l.contains("Fatal:") || l.contains("Panic:"))
            .collect();
        format!(
            "--- lines of {} about {needle}:\n{}",
            self.log_path().display(),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Files that mailpass.lua's `os.tmpname()` made (`/tmp/lua_XXXXXX`, owned by the auth user) since `since`
/// and left behind; empty for flavors without Lua.
pub fn leftover_lua_temp_files(flavor: Flavor, since: std::time::SystemTime) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if !flavor.uses_lua() {
        return Vec::new();
    }
    let root = flavor.system_root();
    let Some((auth_uid, _)) = passwd_ids(&root, AUTH_USER) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(root.join("tmp")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("lua_"))
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.uid() == auth_uid && m.modified().is_ok_and(|t| t >= since))
        })
        .map(|e| e.path())
        .collect()
}

/// A route started on first use, so that filtered-out or listed trials start nothing.
pub struct LazyRoute {
    pub flavor: Flavor,
    role: &'static str,
    setup: Setup,
    cell: OnceLock<Result<Route, String>>,
}

impl LazyRoute {
    /// A route set up as `setup` says (see `Route::start_configured`).
    pub fn with_setup(flavor: Flavor, role: &'static str, setup: Setup) -> LazyRoute {
        LazyRoute {
            flavor,
            role,
            setup,
            cell: OnceLock::new(),
        }
    }

    pub fn get(&self) -> Result<&Route, String> {
        self.cell
            .get_or_init(|| {
                Route::start_configured(self.flavor, self.role, &Options::test(), self.setup)
            })
            .as_ref()
            .map_err(|e| {
                format!(
                    "route {}-{} did not start: {e}",
                    self.flavor.name(),
                    self.role
                )
            })
    }

    /// Stops the Dovecot if it was started.
    pub fn stop(&self) {
        if let Some(Ok(route)) = self.cell.get() {
            route.stop();
        }
    }

    /// Whether the route was started (successfully).
    pub fn started(&self) -> bool {
        matches!(self.cell.get(), Some(Ok(_)))
    }
}
