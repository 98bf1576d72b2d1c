//! App passwords as an account operation: create one (shown once), list them, revoke them. How one is shaped
//! and checked at login is `crate::app_password`'s and the auth path's.

use super::{Account, AccountError};
use crate::app_password;
use crate::clock;
use crate::secret::Secret;
use crate::service::Services;
use crate::store::{AppPasswordRecord, NewAppPassword, Selector};
use crate::tag::Purpose;

/// The longest label, in characters.
pub const MAX_LABEL: usize = 100;

/// How many active (not revoked, not expired) app passwords one user may have.
pub const MAX_ACTIVE: usize = 100;

/// Unicode's format characters that can make a label read other than it is stored: bidirectional controls,
/// zero-width characters, the byte order mark.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{00ad}')
}

/// What a caller asks for, as typed: checked here so that every front end refuses the same things.
pub struct NewAppPasswordRequest<'a> {
    /// The label the user knows it by ("iPhone Mail").
    pub name: &'a str,
    /// A comma-separated list of services; `None` for all of them.
    pub services: Option<&'a str>,
    /// How long it lives (`90d`); `None` for ever.
    pub expires_in: Option<&'a str>,
}

/// A new app password: the only time its text exists outside the user's mail app.
pub struct CreatedAppPassword {
    /// The user's stored name.
    pub user: String,
    pub record: AppPasswordRecord,
    pub password: Secret,
}

/// What `revoke` did.
pub struct Revoked {
    pub user: String,
    pub count: usize,
}

impl Account<'_> {
    pub fn create_app_password(
        &self,
        user: &str,
        request: &NewAppPasswordRequest,
    ) -> Result<CreatedAppPassword, AccountError> {
        let services = match request.services {
            Some(list) => Services::parse_list(list).map_err(AccountError::UnknownService)?,
            None => Services::all(),
        };
        let lifetime = request
            .expires_in
            .map(|d| clock::parse_duration(d).map_err(AccountError::BadLifetime))
            .transpose()?;
        // The label is shown in lists and log lines: it must say something, stay on one line, read the way it
        // is stored (no bidirectional overrides or invisible characters) and stay short.
        let label = request.name.trim();
        if label.is_empty()
            || label.chars().count() > MAX_LABEL
            || label.chars().any(|c| c.is_control() || is_format(c))
        {
            return Err(AccountError::InvalidLabel);
        }
        let record = self.user(user)?;
        // Each one is checked at every login of the user: their number is bounded.
        let active = self
            .store
            .app_passwords(record.id)?
            .iter()
            .filter(|r| status(r, self.now) == "active")
            .count();
        if active >= MAX_ACTIVE {
            return Err(AccountError::TooManyAppPasswords {
                user: record.name,
                limit: MAX_ACTIVE,
            });
        }
        let password = app_password::generate();
        // Tagged in the form a login normalizes what it is sent to, so that both agree byte for byte.
        let normal = app_password::normalize(&password).ok_or(AccountError::Internal(
            "generated app password does not normalize",
        ))?;
        let tag = self
            .store
            .tag_key()?
            .tag(Purpose::AppPassword, &[normal.expose()]);
        let expires_at = lifetime.map(|s| self.now + s);
        let new = NewAppPassword {
            name: label,
            tag: &tag,
            services,
            created_at: self.now,
            expires_at,
        };
        // The store decides "an active one of that name exists" in the same statement that inserts, so two
        // creations racing cannot both win.
        let Some(id) = self.store.add_app_password(record.id, &new)? else {
            return Err(AccountError::AppPasswordNameTaken {
                user: record.name,
                name: label.to_string(),
            });
        };
        Ok(CreatedAppPassword {
            user: record.name,
            record: AppPasswordRecord {
                id,
                name: label.to_string(),
                tag,
                services,
                created_at: self.now,
                expires_at,
                revoked_at: None,
                last_used_at: None,
                last_ip: None,
                last_service: None,
            },
            password,
        })
    }

    /// The user's stored name with all their app passwords, revoked and expired ones included.
    pub fn app_passwords(
        &self,
        user: &str,
    ) -> Result<(String, Vec<AppPasswordRecord>), AccountError> {
        let record = self.user(user)?;
        let list = self.store.app_passwords(record.id)?;
        Ok((record.name, list))
    }

    /// Revokes the app password named (or numbered) `which`, or all active ones with `None`. Naming one that
    /// is not active is refused; revoking all of none is not.
    pub fn revoke_app_passwords(
        &self,
        user: &str,
        which: Option<&str>,
    ) -> Result<Revoked, AccountError> {
        let record = self.user(user)?;
        let selector = match which {
            None => Selector::All,
            Some(w) => match w.parse::<i64>() {
                Ok(id) if !self.has_active_name(record.id, w)? => Selector::Id(id),
                _ => Selector::Name(w),
            },
        };
        let count = self
            .store
            .revoke_app_passwords(record.id, &selector, self.now)?;
        if count == 0
            && let Some(w) = which
        {
            return Err(AccountError::NoSuchAppPassword {
                user: record.name,
                which: w.to_string(),
            });
        }
        Ok(Revoked {
            user: record.name,
            count,
        })
    }

    /// A name that looks like an id (`2024`) still means the name when an active app password has it.
    fn has_active_name(&self, user_id: i64, name: &str) -> Result<bool, AccountError> {
        Ok(self
            .store
            .app_passwords(user_id)?
            .iter()
            .any(|r| r.name == name && r.revoked_at.is_none()))
    }
}

/// What a list shows for an app password: revoked, expired (at `now`) or active.
pub fn status(r: &AppPasswordRecord, now: i64) -> &'static str {
    if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}
