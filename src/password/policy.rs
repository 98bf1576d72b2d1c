//! What a main password must be before it is stored: the one place that decides it, for the admin CLI now and
//! the self-service page later. App passwords are generated and imported hashes are taken as they are; neither
//! passes through here.

use crate::config::PasswordPolicy;
use crate::secret::Secret;

/// The longest main password accepted: Dovecot's checkpassword request holds user and password in 512 bytes.
pub const MAX_BYTES: usize = 500;

/// Why a new main password is refused. The texts never hold the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is only spaces")]
    Blank,
    #[error("the password is shorter than {0} characters ([passwords] min_length)")]
    TooShort(usize),
    #[error("the password is longer than {MAX_BYTES} bytes, more than Dovecot passes on")]
    TooLong,
    #[error("the password holds control characters, which Dovecot never passes on")]
    ControlCharacters,
}

/// Checks a new main password against the policy.
pub fn check(password: &Secret, policy: &PasswordPolicy) -> Result<(), PolicyError> {
    let bytes = password.expose();
    if bytes.is_empty() {
        return Err(PolicyError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(PolicyError::TooLong);
    }
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PolicyError::ControlCharacters);
    }
    // Characters as people count them: a password that is not UTF-8 counts its bytes.
    let text = std::str::from_utf8(bytes).ok();
    if text.is_some_and(|t| t.trim().is_empty()) {
        return Err(PolicyError::Blank);
    }
    let length = text.map_or(bytes.len(), |t| t.chars().count());
    if length < policy.min_length {
        return Err(PolicyError::TooShort(policy.min_length));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_str(password: &str, min_length: usize) -> Result<(), PolicyError> {
        check(
            &Secret::from_slice(password.as_bytes()),
            &PasswordPolicy { min_length },
        )
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(check_str("ärgerlich", 9), Ok(()));
        assert_eq!(check_str("ärgerlic", 9), Err(PolicyError::TooShort(9)));
    }

    #[test]
    fn blank_empty_long_and_control_characters_are_refused() {
        assert_eq!(check_str("", 1), Err(PolicyError::Empty));
        assert_eq!(check_str("          ", 1), Err(PolicyError::Blank));
        assert_eq!(check_str(&"x".repeat(501), 1), Err(PolicyError::TooLong));
        assert_eq!(
            check_str("tab\there!", 1),
            Err(PolicyError::ControlCharacters)
        );
        assert_eq!(
            check_str("del\x7fhere", 1),
            Err(PolicyError::ControlCharacters)
        );
        assert_eq!(check_str(" spaced out ", 1), Ok(()));
    }
}
