//! Users as an account operation: add one (with a main password or external), change the main password,
//! enable, disable, delete, and what there is to know about one. What a main password must be is
//! `password::policy`'s; this layer makes every new one pass through it.

use super::totp::TotpStatus;
use super::{Account, AccountError};
use crate::password::{legacy, policy};
use crate::secret::Secret;
use crate::store::{AppPasswordRecord, StaleClient, UserRecord, WebSessionRecord};

/// How many "second factor required" clients `user_details` returns.
const RECENT_CLIENTS: i64 = 20;

/// Everything there is to know about one user, as an admin or the user themselves sees it.
pub struct UserDetails {
    pub user: UserRecord,
    pub totp: TotpStatus,
    pub app_passwords: Vec<AppPasswordRecord>,
    /// Mail apps that sent the main password of a 2FA account without a code: they need an app password.
    pub stale_clients: Vec<StaleClient>,
}

/// A user name Dovecot can send, in its stored form (see `username.rs`). Front ends call it before asking
/// for a password, so that a typo is not found only after the password was typed twice.
pub fn valid_name(name: &str) -> Result<String, AccountError> {
    crate::username::normalize(name)
        .ok_or_else(|| AccountError::InvalidUserName(name.trim().to_lowercase()))
}

/// The scheme of the user's main password as lists show it: "external" when it is another passdb's.
pub fn password_scheme(user: &UserRecord) -> &str {
    if user.external {
        "external"
    } else {
        legacy::scheme_of(&user.password_hash)
    }
}

/// Whether a main password's scheme is an imported (non-argon2id) one: no login has replaced it yet.
pub fn is_imported(scheme: &str) -> bool {
    scheme != "ARGON2ID"
}

impl Account<'_> {
    /// Adds a user with a main password, which must pass the policy. Returns the stored name.
    pub fn add_user(&self, name: &str, password: &Secret) -> Result<String, AccountError> {
        let name = valid_name(name)?;
        policy::check(password, &self.config.passwords)?;
        let hash = self.hasher()?.hash(password)?;
        if !self.store.add_user(&name, &hash, self.now)? {
            return Err(AccountError::UserExists {
                name,
                external: false,
            });
        }
        Ok(name)
    }

    /// Adds a user whose main password stays in the next passdb: mailpass holds their app passwords and
    /// TOTP only. Returns the stored name.
    pub fn add_external_user(&self, name: &str) -> Result<String, AccountError> {
        let name = valid_name(name)?;
        if !self.store.add_external_user(&name, self.now)? {
            return Err(AccountError::UserExists {
                name,
                external: true,
            });
        }
        Ok(name)
    }

    /// The user, if mailpass holds their main password: an external user's is changed where it lives.
    /// Front ends call it before asking for the new password.
    pub fn user_with_own_password(&self, name: &str) -> Result<UserRecord, AccountError> {
        let record = self.user(name)?;
        if record.external {
            return Err(AccountError::ExternalPassword(record.name));
        }
        Ok(record)
    }

    /// Replaces the main password, which must pass the policy. Returns the stored name.
    pub fn change_password(&self, name: &str, password: &Secret) -> Result<String, AccountError> {
        let record = self.user_with_own_password(name)?;
        policy::check(password, &self.config.passwords)?;
        let hash = self.hasher()?.hash(password)?;
        // This also signs out every session on the self-service page (see `Store::set_password_hash`): a
        // changed password is how a user locks out someone who learnt it.
        self.store.set_password_hash(record.id, &hash)?;
        Ok(record.name)
    }

    /// Allows or forbids the user the self-service page; forbidding ends their sessions there.
    pub fn set_self_service(&self, name: &str, allowed: bool) -> Result<String, AccountError> {
        let record = self.user(name)?;
        self.store.set_self_service(record.id, allowed)?;
        if !allowed {
            self.store.delete_web_sessions(record.id)?;
        }
        Ok(record.name)
    }

    /// The self-service page's sessions: the user's, or everyone's. Each with its user's name.
    pub fn web_sessions(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<(String, WebSessionRecord)>, AccountError> {
        let id = name.map(|n| self.user(n)).transpose()?.map(|u| u.id);
        Ok(self.store.web_sessions(id)?)
    }

    /// Ends every session of the user on the self-service page; how many there were.
    pub fn end_web_sessions(&self, name: &str) -> Result<(String, usize), AccountError> {
        let record = self.user(name)?;
        let count = self.store.delete_web_sessions(record.id)?;
        Ok((record.name, count))
    }

    /// Enables or disables logins of every kind. Returns the stored name.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<String, AccountError> {
        let record = self.user(name)?;
        self.store.set_enabled(record.id, enabled)?;
        if !enabled {
            self.store.delete_web_sessions(record.id)?;
        }
        Ok(record.name)
    }

    /// Deletes the user with their app passwords and codes. Returns the stored name.
    pub fn delete_user(&self, name: &str) -> Result<String, AccountError> {
        let record = self.user(name)?;
        self.store.delete_user(record.id)?;
        Ok(record.name)
    }

    /// Every user with how many active app passwords each has.
    pub fn users(&self) -> Result<Vec<(UserRecord, i64)>, AccountError> {
        Ok(self.store.users()?)
    }

    pub fn user_details(&self, name: &str) -> Result<UserDetails, AccountError> {
        let user = self.user(name)?;
        let app_passwords = self.store.app_passwords(user.id)?;
        let codes_left = self.store.recovery_codes_left(user.id)?;
        let stale_clients = self
            .store
            .second_factor_clients(&user.name, RECENT_CLIENTS)?;
        Ok(UserDetails {
            totp: TotpStatus::of(&user, codes_left),
            user,
            app_passwords,
            stale_clients,
        })
    }
}
