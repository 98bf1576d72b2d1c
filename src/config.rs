//! The config file (`/etc/mailpass/mailpass.toml`): what each key means and its default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::service::Service;

pub const DEFAULT_PATH: &str = "/etc/mailpass/mailpass.toml";

/// In `app_passwords_only`: every SERVICE that is not a mail service (doveadm, a missing SERVICE, ...).
const OTHER_SERVICES: &str = "other";

/// Upper bounds of values that would otherwise overflow or exhaust descriptors (each slot is a file a waiting
/// login opens).
const MAX_TIMEOUT: u64 = 3600;
const MAX_CONCURRENT: u32 = 1024;

/// Dovecot refuses (fails) a `delay_until` more than 300 s ahead; the brake's penalty adds up to 15 s.
const MAX_FAILURE_DELAY: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub auth: AuthConfig,
    pub argon2: Argon2Config,
    pub userdb: UserdbConfig,
    pub totp: TotpConfig,
    pub bans: BansConfig,
    pub passwords: PasswordPolicy,
    pub web: WebConfig,
}

/// The self-service page (`mailpass web`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Where it listens: loopback by default, behind the admin's reverse proxy, which adds TLS.
    pub listen: String,
    /// The URL users open (`https://mail.example.org`, with a path if the proxy adds one); empty: the listen
    /// address over http. The Origin check of every form and the cookie's `Secure` flag follow from it.
    pub origin: String,
    /// Proxies whose `X-Forwarded-For` names the client: the address failures are recorded and banned by.
    pub trusted_proxies: Vec<String>,
    /// Seconds a session lives without a request, and at most in all.
    pub session_idle: i64,
    pub session_absolute: i64,
    /// Seconds a fresh password (and code) stays good for the sensitive actions.
    pub reauth_window: i64,
    /// The name the page gives the service ("Example Mail").
    pub display_name: String,
    /// Whether users may sign in at all (per user: `mailpass user self-service`).
    pub self_service: bool,
    /// What mail apps connect to, for the set-up text and the Apple profile; empty: the origin's host.
    pub mail_host: String,
    /// Where mail apps send mail, when that is another host; empty: `mail_host`.
    pub smtp_host: String,
    /// IMAP over TLS and SMTP submission over TLS (implicit TLS, as Apple's profile expects).
    pub imap_port: u16,
    pub smtp_port: u16,
    /// How many requests may do database or argon2 work at once (argon2 also waits for the machine-wide
    /// slots that logins use).
    pub max_blocking: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8425".into(),
            origin: String::new(),
            trusted_proxies: Vec::new(),
            session_idle: 30 * 60,
            session_absolute: 12 * 3600,
            reauth_window: 5 * 60,
            display_name: "Mail".into(),
            self_service: true,
            mail_host: String::new(),
            smtp_host: String::new(),
            imap_port: 993,
            smtp_port: 465,
            max_blocking: 16,
        }
    }
}

/// What a new main password must be (see `password/policy.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Characters at least.
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 10 }
    }
}

/// The ban policy (see `bans.rs`). Times are seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BansConfig {
    /// false: failures are still recorded, but nothing is banned automatically.
    pub enabled: bool,
    /// Counted failures from one network within `window` that start a ban.
    pub threshold: i64,
    pub window: i64,
    /// The first ban's length; each repeat doubles it, up to `max_ban_time`.
    pub ban_time: i64,
    pub max_ban_time: i64,
    /// Failures count per network of this size: one IPv4 host, one IPv6 /64 (what one customer gets).
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks that are never banned (more can be added with `mailpass ban allow add`).
    pub allow: Vec<String>,
    /// How long failures are kept; a repeat count older than this starts over.
    pub retention: i64,
    /// The TCP ports whose traffic from banned networks `ban export --format nft` drops.
    pub firewall_ports: Vec<u16>,
}

impl Default for BansConfig {
    fn default() -> Self {
        BansConfig {
            enabled: true,
            threshold: 10,
            window: 600,
            ban_time: 1800,
            max_ban_time: 86400,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            retention: 7 * 86400,
            firewall_ports: crate::bans::MAIL_PORTS.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Seconds a checkpassword run may take; Dovecot never kills a hung helper.
    pub timeout: u64,
    /// Services on which the main password is refused: app passwords only.
    pub app_passwords_only: Vec<String>,
    /// Seconds a refusal that travels to a Dovecot login process as "success + nologin" is held back: Dovecot
    /// skips its own `auth_failure_delay` for it, so this stands in (set it to the same value; see
    /// `refusal.rs`).
    pub failure_delay: u64,
    /// Whether such refusals also wait what Dovecot's anvil penalty would add for the network's recent
    /// failures (Dovecot resets its penalty on every success, nologin included).
    pub penalty: bool,
    /// Whether mailpass is the first of several passdbs ("Route 2" in the README): a user it does not know,
    /// and an external user's secret that is not theirs to judge, are answered "next" (the next passdb
    /// decides), and every refusal of a user it knows is delivered so that no later passdb runs.
    pub next_passdb: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// How many argon2 computations may run at once across every mailpass process on the machine (see
    /// `password/slots.rs`); 0 means one per CPU.
    pub max_concurrent: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserdbConfig {
    pub home: String,
    pub uid: String,
    pub gid: String,
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    pub issuer: String,
    /// Wrong codes after a right main password that an account may collect within `wrong_codes_window`
    /// seconds; past that, password + code is refused for the account until the window has passed (app
    /// passwords and recovery codes still work). 0: no limit.
    pub max_wrong_codes: i64,
    pub wrong_codes_window: i64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            timeout: 15,
            app_passwords_only: Vec::new(),
            failure_delay: 2,
            penalty: true,
            next_passdb: false,
        }
    }
}

impl Default for Argon2Config {
    fn default() -> Self {
        Argon2Config {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
        }
    }
}

impl Default for UserdbConfig {
    fn default() -> Self {
        UserdbConfig {
            home: "/var/vmail/%d/%n".into(),
            uid: "vmail".into(),
            gid: "vmail".into(),
            extra: BTreeMap::new(),
        }
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            issuer: "mailpass".into(),
            max_wrong_codes: 5,
            wrong_codes_window: 3600,
        }
    }
}

impl Config {
    /// Loads the config. A missing file is an error only when the admin named it (`explicit`).
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.message().to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for name in &self.auth.app_passwords_only {
            if Service::from_name(name).is_none() && name != OTHER_SERVICES {
                return Err(format!(
                    "auth.app_passwords_only: unknown service {name:?} (use imap, pop3, smtp, sieve, other)"
                ));
            }
        }
        let b = &self.bans;
        for network in &b.allow {
            crate::net::Network::parse(network).map_err(|e| format!("bans.allow: {e}"))?;
        }
        if b.threshold < 1 || b.window < 1 || b.ban_time < 1 || b.retention < 1 {
            return Err("bans.threshold, window, ban_time and retention must be at least 1".into());
        }
        if b.firewall_ports.is_empty() || b.firewall_ports.contains(&0) {
            return Err("bans.firewall_ports needs at least one port, each 1 to 65535".into());
        }
        if b.max_ban_time < b.ban_time {
            return Err("bans.max_ban_time must be at least bans.ban_time".into());
        }
        if b.ipv4_prefix > 32 || b.ipv6_prefix > 128 {
            return Err("bans.ipv4_prefix is 0 to 32, bans.ipv6_prefix 0 to 128".into());
        }
        if self.totp.max_wrong_codes < 0 || self.totp.wrong_codes_window < 1 {
            return Err(
                "totp.max_wrong_codes must be 0 (no limit) or more, totp.wrong_codes_window at least 1"
                    .into(),
            );
        }
        if self.passwords.min_length == 0 || self.passwords.min_length > 100 {
            return Err("passwords.min_length is 1 to 100 characters".into());
        }
        self.web.validate()?;
        if self.auth.timeout == 0 || self.auth.timeout > MAX_TIMEOUT {
            return Err(format!(
                "auth.timeout is 1 to {MAX_TIMEOUT} seconds (a login that waits longer helps no one)"
            ));
        }
        if self.argon2.max_concurrent > MAX_CONCURRENT {
            return Err(format!(
                "argon2.max_concurrent is 0 (one per CPU) to {MAX_CONCURRENT}"
            ));
        }
        if self.auth.failure_delay > MAX_FAILURE_DELAY {
            return Err(format!(
                "auth.failure_delay is at most {MAX_FAILURE_DELAY} seconds (Dovecot's default is 2)"
            ));
        }
        let fields = [
            ("uid", &self.userdb.uid),
            ("gid", &self.userdb.gid),
            ("home", &self.userdb.home),
        ];
        let extra = self.userdb.extra.iter().map(|(k, v)| (k.as_str(), v));
        for (key, value) in fields.into_iter().chain(extra) {
            if key.contains(['\t', '\n', '=', ' ']) || value.contains(['\t', '\n']) {
                return Err(format!(
                    "userdb.{key}: keys and values cannot hold tabs or newlines"
                ));
            }
        }
        Ok(())
    }

    /// Whether the main password is refused on this Dovecot SERVICE.
    pub fn main_password_refused(&self, service: Option<Service>) -> bool {
        let name = service.map_or(OTHER_SERVICES, Service::name);
        self.auth.app_passwords_only.iter().any(|n| n == name)
    }
}

/// A DNS name as browsers and mail apps write it (lowercase ASCII, punycode for other scripts), or an IP
/// address (IPv6 in brackets).
fn is_host_name(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl WebConfig {
    fn validate(&self) -> Result<(), String> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("web.listen {:?} is not ADDRESS:PORT", self.listen))?;
        if !self.origin.is_empty() {
            let rest = self
                .origin
                .strip_prefix("https://")
                .or_else(|| self.origin.strip_prefix("http://"))
                .ok_or("web.origin starts with https:// (or http:// for a test)")?;
            if rest.is_empty()
                || rest.contains(['?', '#', ' ', '@'])
                || rest.chars().any(char::is_control)
            {
                return Err(format!("web.origin {:?} is not a plain URL", self.origin));
            }
            // Browsers send the origin lowercased, in ASCII (punycode), with a port only when it is not the
            // scheme's own: written otherwise, it would never match, and every form would be refused.
            let authority = rest.split('/').next().unwrap_or_default();
            let default_port = if self.https() { "443" } else { "80" };
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) if !authority.starts_with('[') || host.ends_with(']') => {
                    (host, Some(port))
                }
                _ => (authority, None),
            };
            let port_ok = port.is_none_or(|p| {
                p != default_port && !p.starts_with('0') && p.parse::<u16>().is_ok_and(|n| n > 0)
            });
            if !is_host_name(host) || !port_ok {
                return Err(format!(
                    "web.origin {:?}: write the host in lowercase ASCII (punycode for other scripts), and a \
                     port only when it is not {default_port}",
                    self.origin
                ));
            }
        }
        for proxy in &self.trusted_proxies {
            proxy
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("web.trusted_proxies: {proxy:?} is not an IP address"))?;
        }
        if self.session_idle < 60 || self.session_absolute < self.session_idle {
            return Err(
                "web.session_idle is at least 60 seconds, web.session_absolute at least that"
                    .into(),
            );
        }
        if self.reauth_window < 30 {
            return Err("web.reauth_window is at least 30 seconds".into());
        }
        if self.imap_port == 0 || self.smtp_port == 0 {
            return Err("web.imap_port and web.smtp_port are 1 to 65535".into());
        }
        if !(1..=256).contains(&self.max_blocking) {
            return Err("web.max_blocking is 1 to 256".into());
        }
        for (key, host) in [
            ("mail_host", &self.mail_host),
            ("smtp_host", &self.smtp_host),
        ] {
            if !host.is_empty() && !is_host_name(host) {
                return Err(format!(
                    "web.{key} {host:?} is not a host name (lowercase ASCII letters, digits, dots and dashes)"
                ));
            }
        }
        if self.display_name.trim().is_empty() || self.display_name.chars().any(char::is_control) {
            return Err("web.display_name needs a name on one line".into());
        }
        Ok(())
    }

    /// The origin browsers send (scheme, host, port: no path), and the path the page lives under.
    pub fn origin_parts(&self) -> (String, String) {
        let url = if self.origin.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.origin.trim_end_matches('/').to_string()
        };
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        match url[scheme_end..].find('/') {
            Some(i) => (
                url[..scheme_end + i].to_string(),
                url[scheme_end + i..].to_string(),
            ),
            None => (url, String::new()),
        }
    }

    /// The page's public URL, when the admin set one (`origin`): mail apps' refusals point there.
    pub fn page_url(&self) -> Option<String> {
        (!self.origin.is_empty()).then(|| self.origin.trim_end_matches('/').to_string())
    }

    /// Whether the page is served over https: its cookies then are `Secure`.
    pub fn https(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// The host mail apps send mail through.
    pub fn smtp_host(&self) -> String {
        if self.smtp_host.is_empty() {
            self.mail_host()
        } else {
            self.smtp_host.clone()
        }
    }

    /// The mail server's host name for mail apps.
    pub fn mail_host(&self) -> String {
        if !self.mail_host.is_empty() {
            return self.mail_host.clone();
        }
        let (origin, _) = self.origin_parts();
        let host = origin.split("://").nth(1).unwrap_or_default();
        match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
            _ => host.to_string(),
        }
    }
}

impl UserdbConfig {
    /// The userdb fields for a user, with `%u`, `%n` and `%d` expanded.
    pub fn fields(&self, user: &str) -> Vec<(String, String)> {
        let mut fields = vec![
            ("userdb_home".to_string(), expand(&self.home, user)),
            ("userdb_uid".to_string(), expand(&self.uid, user)),
            ("userdb_gid".to_string(), expand(&self.gid, user)),
        ];
        for (key, value) in &self.extra {
            let key = if key.starts_with("userdb_") {
                key.clone()
            } else {
                format!("userdb_{key}")
            };
            fields.push((key, expand(value, user)));
        }
        fields
    }
}

/// Expands Dovecot-style `%u` (user), `%n` (local part), `%d` (domain) and `%%`.
fn expand(template: &str, user: &str) -> String {
    let (local, domain) = user.split_once('@').unwrap_or((user, ""));
    let mut out = String::with_capacity(template.len() + user.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(user),
            Some('n') => out.push_str(local),
            Some('d') => out.push_str(domain),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_web_origin_is_written_as_browsers_send_it() {
        for bad in [
            "mail.example.org",
            "https://Mail.example.org",
            "https://mail.example.org:443",
            "http://mail.example.org:80/account",
            "https://user@mail.example.org",
            "https://mail.example.org/\taccount",
            "https://bücher.example",
            "https://mail.example.org:0443",
            "https://mail.example.org:abc",
            "https://mail.example.org:",
        ] {
            let text = format!("[web]\norigin = {bad:?}\n");
            assert!(Config::parse(&text).is_err(), "{bad}");
        }
        for good in [
            "https://mail.example.org",
            "https://mail.example.org:8443/account/",
            "https://xn--bcher-kva.example",
            "http://127.0.0.1:8425",
            "http://[::1]:8425",
        ] {
            let text = format!("[web]\norigin = {good:?}\n");
            assert!(Config::parse(&text).is_ok(), "{good}");
        }
    }

    /// The README's Configuration block is what the Debian package ships as its commented-out example: its
    /// values must be the defaults, and it must list every section.
    #[test]
    fn the_readme_documents_the_defaults() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("`/etc/mailpass/mailpass.toml` (every key optional")
            .expect("Configuration section");
        let block = &readme[start..];
        let block = &block[block.find("```toml").expect("toml block") + 7..];
        let block = &block[..block.find("```").expect("block end")];
        let documented = Config::parse(block).expect("the README's block parses");
        assert_eq!(
            format!("{documented:?}"),
            format!("{:?}", Config::default())
        );
    }
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::parse("").expect("valid");
        assert_eq!(
            c.argon2,
            Argon2Config {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1,
                max_concurrent: 0,
            }
        );
        assert_eq!(c.auth.timeout, 15);
        assert!(c.auth.app_passwords_only.is_empty());
        assert_eq!((c.auth.failure_delay, c.auth.penalty), (2, true));
        assert_eq!(
            (c.bans.threshold, c.bans.window, c.bans.ban_time),
            (10, 600, 1800)
        );
        assert_eq!((c.bans.ipv4_prefix, c.bans.ipv6_prefix), (32, 64));
    }

    #[test]
    fn unknown_keys_and_services_are_errors() {
        assert!(Config::parse("[auth]\ntimeot = 3").is_err());
        assert!(Config::parse("[auth]\napp_passwords_only = [\"ftp\"]").is_err());
        assert!(Config::parse("[userdb]\nhome = \"a\tb\"").is_err());
        assert!(Config::parse("[bans]\nallow = [\"10.0.0.0/99\"]").is_err());
        assert!(Config::parse("[bans]\nban_time = 100\nmax_ban_time = 50").is_err());
        assert!(Config::parse("[auth]\nfailure_delay = 61").is_err());
        assert!(Config::parse("[auth]\ntimeout = 3601").is_err());
        assert!(Config::parse("[argon2]\nmax_concurrent = 1025").is_err());
    }

    #[test]
    fn missing_default_file_is_fine_but_named_file_is_not() {
        let p = Path::new("/nonexistent/mailpass.toml");
        assert!(Config::load(p, false).is_ok());
        assert!(Config::load(p, true).is_err());
    }

    #[test]
    fn userdb_templates_expand_user_parts() {
        let c = Config::parse("[userdb]\nhome = \"/m/%d/%n\"\nuid = \"5000\"\ngid = \"%u\"\nextra = { mail = \"maildir:~/M\" }").expect("valid");
        let f = c.userdb.fields("alice@example.org");
        assert_eq!(f[0], ("userdb_home".into(), "/m/example.org/alice".into()));
        assert_eq!(f[2], ("userdb_gid".into(), "alice@example.org".into()));
        assert_eq!(f[3], ("userdb_mail".into(), "maildir:~/M".into()));
    }

    #[test]
    fn main_password_refusal_is_per_service() {
        let c = Config::parse("[auth]\napp_passwords_only = [\"imap\"]").expect("valid");
        assert!(c.main_password_refused(Some(Service::Imap)));
        assert!(!c.main_password_refused(Some(Service::Pop3)));
        assert!(!c.main_password_refused(None));
        let all =
            Config::parse("[auth]\napp_passwords_only = [\"imap\", \"other\"]").expect("valid");
        assert!(all.main_password_refused(None));
    }
}
