//! The admin commands' errors and the one place that maps them to exit codes.

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
            | Error::Io(_) => 1,
            Error::Status(code) => *code,
        }
    }

    pub fn no_such_user(user: &str) -> Error {
        Error::Refused(format!(
            "no user {user:?}: `mailpass user list` shows the users, `mailpass user add {user}` creates one"
        ))
    }
}
