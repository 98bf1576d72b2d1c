//! The admin commands' errors and the one place that maps them to exit codes.

use crate::account::AccountError;
use crate::config::ConfigError;
use crate::password::PasswordError;
use crate::store::StoreError;
use crate::totp::TotpError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The thing asked for does not exist or is refused: exit 1.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Totp(#[from] TotpError),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Web(#[from] crate::web::ServeError),
    /// The command already said what it had to; exit with this code.
    #[error("")]
    Status(u8),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Refused(_)
            | Error::Store(_)
            | Error::Password(_)
            | Error::Totp(_)
            | Error::Io(_)
            | Error::Web(_) => 1,
            Error::Status(code) => *code,
        }
    }

    pub fn no_such_user(user: &str) -> Error {
        Error::Refused(format!(
            "no user {user:?}: `mailpass user list` shows the users, `mailpass user add {user}` creates one"
        ))
    }
}

/// The one place an account operation's refusal becomes the admin CLI's words: the layer says what went
/// wrong, this adds the command that fixes it and the exit code (2 for what was typed, 1 for the rest).
impl From<AccountError> for Error {
    fn from(e: AccountError) -> Error {
        match e {
            AccountError::NoSuchUser(name) => Error::no_such_user(&name),
            AccountError::InvalidUserName(name) => Error::Usage(format!(
                "invalid user name {name:?}: use 1 to 255 characters without spaces, e.g. alice@example.org"
            )),
            AccountError::UserExists {
                name,
                external: true,
            } => Error::Refused(format!("user {name:?} exists")),
            AccountError::UserExists {
                name,
                external: false,
            } => Error::Refused(format!(
                "user {name:?} exists: `mailpass user passwd {name}` changes the password"
            )),
            AccountError::Policy(e) => Error::Refused(format!("{e}; nothing was changed")),
            AccountError::ExternalPassword(name) => Error::Refused(format!(
                "{name} is external: the main password is in the next passdb (LDAP, SQL), change it there"
            )),
            AccountError::UnknownService(bad) => Error::Usage(format!(
                "unknown service {bad:?} in --services: use imap, pop3, smtp, sieve"
            )),
            AccountError::BadLifetime(reason) => Error::Usage(reason),
            AccountError::InvalidLabel => Error::Usage(
                "--name needs a label such as \"iPhone Mail\": 1 to 100 characters on one line".into(),
            ),
            AccountError::TooManyAppPasswords { user, limit } => Error::Refused(format!(
                "{user} has {limit} active app passwords, the most there can be: revoke those no longer used \
                 (`mailpass app-password list {user}`)"
            )),
            AccountError::AppPasswordNameTaken { user, name } => Error::Refused(format!(
                "{user} already has an app password named {name:?}: choose another name or revoke it first"
            )),
            AccountError::NoSuchAppPassword { user, which } => Error::Refused(format!(
                "{user} has no active app password {which:?}: `mailpass app-password list {user}` shows them"
            )),
            AccountError::TotpActive(user) => Error::Refused(format!(
                "two-factor authentication is active for {user}: `mailpass totp disable {user}` first to enroll a new device"
            )),
            AccountError::TotpAlreadyActive(user) => Error::Refused(format!(
                "two-factor authentication is already active for {user}"
            )),
            AccountError::NoPendingEnrollment(user) => Error::Refused(format!(
                "no enrollment is pending for {user}: run `mailpass totp enroll {user}` first"
            )),
            AccountError::NotACode(code) => {
                Error::Usage(format!("{code:?} is not a 6-digit code"))
            }
            AccountError::WrongCode => Error::Refused(
                "that code does not match: check the phone's clock and try the code the app shows now"
                    .into(),
            ),
            AccountError::EnrollmentChanged => {
                Error::Refused("the enrollment changed meanwhile; enroll again".into())
            }
            AccountError::TotpNotEnabled(user) => Error::Refused(format!(
                "two-factor authentication is not enabled for {user}"
            )),
            AccountError::TotpNotActive(user) => Error::Refused(format!(
                "two-factor authentication is not active for {user}: enroll and confirm first (`mailpass totp enroll {user}`)"
            )),
            AccountError::ImportedSecret(e) => Error::Refused(e.to_string()),
            AccountError::TotpImportActive(user) => Error::Refused(format!(
                "two-factor authentication is active for {user} already: `mailpass totp import {user} --replace` replaces its secret (the old authenticator entry stops working)"
            )),
            AccountError::Store(e) => Error::Store(e),
            AccountError::Password(e) => Error::Password(e),
            AccountError::Totp(e) => Error::Totp(e),
            AccountError::Internal(what) => Error::Io(what.into()),
        }
    }
}
