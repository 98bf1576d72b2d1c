//! The command line: clap's definitions, turned once into calls of the library. The names and meanings here
//! are a contract that scripts and Dovecot configs rely on.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const DEFAULT_DB: &str = "/var/lib/mailpass/mailpass.db";

#[derive(Parser)]
#[command(
    name = "mailpass",
    version,
    about = "App passwords and TOTP for Dovecot"
)]
pub struct Cli {
    /// The SQLite database.
    #[arg(long, env = "MAILPASS_DB", default_value = DEFAULT_DB, global = true)]
    pub db: PathBuf,
    /// The config file [default: /etc/mailpass/mailpass.toml; missing = built-in defaults].
    #[arg(long, env = "MAILPASS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// What Dovecot runs for passdb and userdb (request on fd 3, reply on fd 4).
    Checkpassword {
        /// Where the decision lines go: `plain` lines on stderr, or `dovecot`: stderr in Dovecot's own log
        /// format, so that Dovecot logs decisions at Info level and only faults at Error (what the shipped
        /// Dovecot configs use).
        #[arg(long, value_enum, default_value = "plain")]
        log: LogFormat,
        /// The caller is mailpass.lua (which passes this flag), which takes exit 4 for "next passdb" and whose
        /// chained config makes a failure (exit 1) final. Without it, the answers are those Dovecot's
        /// checkpassword passdb understands (see the README's "Route 2"). Never taken from the environment:
        /// Dovecot's checkpassword passes environment variables on, and this must not switch chaining off.
        #[arg(long, conflicts_with = "chained")]
        lua: bool,
        /// The Dovecot passdb that runs this goes on to a next passdb after a failure (`result_failure =
        /// continue`, as the shipped chained config says): every refusal is then final, whatever `[auth]
        /// next_passdb` says, so that a mismatch of the two can never let a refused login fall through.
        #[arg(long)]
        chained: bool,
        /// The reply program Dovecot appends, and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        reply: Vec<OsString>,
    },
    /// Users and their main passwords.
    #[command(subcommand)]
    User(UserCommand),
    /// Per-client passwords that need no second factor.
    #[command(subcommand, name = "app-password")]
    AppPassword(AppPasswordCommand),
    /// Time-based one-time codes (authenticator apps) and recovery codes.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Banned networks: list, add, remove, check, record, export to the firewall, allowlist, prune.
    #[command(subcommand)]
    Ban(BanCommand),
    /// The log of failed logins.
    #[command(subcommand)]
    Failures(FailuresCommand),
    /// Bring existing users in with their password hashes (a passwd-file, an SQL export, /etc/shadow).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write a consistent copy of the database to FILE while logins go on.
    Backup {
        /// Where the copy goes; must not exist yet (it is created with mode 0600).
        file: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Put a copy made by `mailpass backup` back in place of the database, after checking it.
    Restore {
        /// The copy to restore.
        file: PathBuf,
        /// Replace the contents of the database: every user, app password, ban and failure made since the copy
        /// is lost.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Check the set-up (config file, Dovecot's config, the database and its owner, the clock) and say how
    /// to fix each problem: exit 0 when nothing failed (warnings allowed), 1 otherwise.
    Doctor {
        /// Dovecot's config file [default: whatever doveconf reads].
        #[arg(long, value_name = "FILE")]
        dovecot_config: Option<PathBuf>,
        /// The doveconf program.
        #[arg(long, value_name = "PATH", default_value = "doveconf")]
        doveconf: OsString,
        #[command(flatten)]
        json: Json,
    },
    /// The config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the self-service page, where users make their own app passwords, set up TOTP and change their
    /// password (meant to sit behind a reverse proxy that adds TLS; see the README). Stops on SIGTERM.
    Web {
        /// Where to listen, ADDRESS:PORT [default: `[web] listen`, 127.0.0.1:8425].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per decision on stderr.
    Plain,
    /// Stderr in Dovecot's log format: decisions at Info level, faults at Error.
    Dovecot,
}

#[derive(Args)]
pub struct UserArg {
    /// The user name, e.g. alice@example.org (stored lowercased).
    pub user: String,
}

#[derive(Args)]
pub struct PasswordInput {
    /// Read the password as one line from standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args)]
pub struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check that the config file parses, every key known and every value valid (doctor's config part): run
    /// it before Dovecot reloads, as a typo makes every login a temporary failure.
    Check(Json),
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with a main password.
    Add {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        input: PasswordInput,
        /// No main password in mailpass: the user's main password stays in the next passdb (LDAP, SQL), and
        /// mailpass adds app passwords and TOTP (`[auth] next_passdb`, the README's "Route 2").
        #[arg(long, conflicts_with = "password_stdin")]
        external: bool,
    },
    /// Change a user's main password.
    Passwd {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        input: PasswordInput,
    },
    /// Delete a user with all their app passwords and codes.
    Del(UserArg),
    /// Refuse every login of a user (mail is still delivered).
    Disable(UserArg),
    /// Allow a disabled user to log in again.
    Enable(UserArg),
    /// List users.
    List(Json),
    /// Show a user: 2FA state, app passwords and recent clients that need an app password.
    Show {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        json: Json,
    },
    /// Allow or forbid a user the self-service page (`mailpass web`); `off` also ends their sessions there.
    SelfService {
        #[command(flatten)]
        user: UserArg,
        /// `on` (the default for every user) or `off`.
        #[arg(value_enum)]
        state: OnOff,
    },
    /// List the self-service page's sessions: a user's, or everyone's.
    Sessions {
        /// Only this user's sessions.
        user: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// End every session of a user on the self-service page.
    SignOut(UserArg),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Allowed.
    On,
    /// Forbidden.
    Off,
}

#[derive(Subcommand)]
pub enum AppPasswordCommand {
    /// Create an app password; it is shown once.
    Add {
        #[command(flatten)]
        user: UserArg,
        /// What it is for, e.g. "iPhone Mail".
        #[arg(long)]
        name: String,
        /// Comma list of imap, pop3, smtp, sieve [default: all].
        #[arg(long)]
        services: Option<String>,
        /// Lifetime, e.g. 90d, 12h, 30m [default: never expires].
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List a user's app passwords (never the passwords themselves).
    List {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        json: Json,
    },
    /// Revoke app passwords by name or id, or all of them.
    Revoke {
        #[command(flatten)]
        user: UserArg,
        /// The name or id of the app password.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        which: Option<String>,
        /// Revoke every app password of the user.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Subcommand)]
pub enum TotpCommand {
    /// Start enrollment: a new secret, its otpauth:// URI and a QR code.
    Enroll {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        json: Json,
    },
    /// Finish enrollment with one valid code from the authenticator app.
    Confirm {
        #[command(flatten)]
        user: UserArg,
        /// The 6-digit code the app shows now.
        code: String,
        #[command(flatten)]
        json: Json,
    },
    /// Show whether 2FA is off, pending or active.
    Status {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        json: Json,
    },
    /// Turn 2FA off (and drop the recovery codes).
    Disable(UserArg),
    /// Print a fresh set of single-use recovery codes, replacing the old set.
    RecoveryCodes {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        json: Json,
    },
    /// Take over a user's existing authenticator entry: its base32 secret, one line on standard input.
    Import {
        #[command(flatten)]
        user: UserArg,
        /// Replace an active secret (the old authenticator entry stops working).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Dovecot passwd-file lines (user:{SCHEME}hash:...) or two columns (user<TAB>{SCHEME}hash).
    PasswdFile {
        /// The file, or `-` for standard input.
        file: PathBuf,
        /// The scheme of hashes without a {SCHEME} prefix (Dovecot's default_pass_scheme), e.g. SHA512-CRYPT.
        #[arg(long)]
        default_scheme: Option<String>,
        #[command(flatten)]
        how: ImportOptions,
    },
    /// Accounts of /etc/shadow with a usable hash, stored as {CRYPT}.
    Shadow {
        /// The shadow file.
        #[arg(default_value = "/etc/shadow")]
        file: PathBuf,
        /// Only accounts with at least this uid (from --passwd), e.g. 1000.
        #[arg(long)]
        min_uid: Option<u32>,
        /// Where --min-uid finds the uids.
        #[arg(long, default_value = "/etc/passwd")]
        passwd: PathBuf,
        /// Append @DOMAIN to every name, e.g. example.org.
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        how: ImportOptions,
    },
}

#[derive(Args)]
pub struct ImportOptions {
    /// Decide and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the hashes of existing users [default: skip them].
    #[arg(long)]
    pub update: bool,
    /// Import the good lines even if some are refused [default: a refused line means nothing is imported].
    #[arg(long)]
    pub keep_going: bool,
    /// Add the users as external (no main password in mailpass; the hashes are ignored): for a passdb that
    /// stays after mailpass (`[auth] next_passdb`). With --update, existing users become external.
    #[arg(long)]
    pub external: bool,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Subcommand)]
pub enum BanCommand {
    /// Active bans: network, since, until (none = permanent), reason, count.
    List(Json),
    /// Ban a network (an address is a single host) for a while, or for good.
    Add {
        /// e.g. 192.0.2.7, 198.51.100.0/24, 2001:db8:1:2::/64
        network: String,
        /// How long, e.g. 12h or 30d [default: permanent].
        #[arg(long = "for")]
        duration: Option<String>,
        /// Why, for the list.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban (its repeat count starts over).
    Remove {
        /// The banned network as `ban list` shows it, or `unparsed`.
        network: String,
    },
    /// Exit 0 if the address is not banned, 1 (and the ban on stdout) if it is.
    Check {
        /// The IP address, e.g. 192.0.2.7 or 2001:db8::7.
        ip: String,
        #[command(flatten)]
        json: Json,
    },
    /// Record a failed login seen elsewhere (a web login, a log watcher); it counts like any other.
    Record {
        /// The IP address the login came from.
        #[arg(long)]
        ip: String,
        /// The user name it tried [default: -].
        #[arg(long)]
        user: Option<String>,
        /// The service it tried, e.g. imap or webmail.
        #[arg(long)]
        service: Option<String>,
        /// A reason name (e.g. wrong_password) [default: external].
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print the active bans for a firewall.
    Export {
        /// The output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
    },
    /// Networks that are never banned.
    #[command(subcommand)]
    Allow(AllowCommand),
    /// Delete failures older than the retention time.
    Prune,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// An nftables script for `nft -f`.
    Nft,
    /// One network per line.
    Plain,
}

#[derive(Subcommand)]
pub enum AllowCommand {
    /// Never ban a network (an address is a single host).
    Add {
        /// e.g. 192.0.2.7, 198.51.100.0/24, 2001:db8:1:2::/64
        network: String,
    },
    /// Take a network off the allowlist (entries from the config file are changed there).
    Remove {
        /// The network as `ban allow list` shows it.
        network: String,
    },
    /// The allowlist: from the config file and from the database.
    List(Json),
}

#[derive(Subcommand)]
pub enum FailuresCommand {
    /// Failed logins, newest first.
    List {
        /// Only failures from this IP address.
        #[arg(long)]
        ip: Option<String>,
        /// Only failures of this user name (any case).
        #[arg(long)]
        user: Option<String>,
        /// Only the last DURATION, e.g. 1h.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        json: Json,
    },
}
