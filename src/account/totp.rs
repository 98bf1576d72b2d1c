//! TOTP as an account operation: enroll (pending until one valid code), confirm, status, disable, recovery
//! codes and importing a secret from elsewhere. The algorithm itself is `crate::totp`'s.

use zeroize::Zeroizing;

use super::{Account, AccountError};
use crate::recovery;
use crate::secret::Secret;
use crate::store::{TotpState, UserRecord};
use crate::tag::Purpose;
use crate::totp;

/// A new pending enrollment, for the user to put into an authenticator app.
pub struct Enrollment {
    pub user: String,
    pub secret: Secret,
    /// The `otpauth://` URI (what a QR code carries); it holds the secret, so it is wiped too.
    pub uri: Zeroizing<String>,
}

/// Where a user's two-factor authentication stands.
pub struct TotpStatus {
    pub state: TotpState,
    pub enrolled_at: Option<i64>,
    pub recovery_codes_left: i64,
}

impl TotpStatus {
    pub fn of(user: &UserRecord, recovery_codes_left: i64) -> Self {
        TotpStatus {
            state: user.totp,
            enrolled_at: user.totp_enrolled_at,
            recovery_codes_left,
        }
    }
}

/// A fresh set of recovery codes, as shown to the user once; the old set no longer works.
pub struct RecoveryCodes {
    pub user: String,
    pub codes: Vec<Secret>,
}

impl Account<'_> {
    /// Starts (or restarts) an enrollment. Nothing changes at login until `confirm_totp`: a user who never
    /// finishes scanning is not locked out.
    pub fn enroll_totp(&self, user: &str) -> Result<Enrollment, AccountError> {
        let record = self.user(user)?;
        if record.totp == TotpState::Active {
            return Err(AccountError::TotpActive(record.name));
        }
        let secret = totp::new_secret();
        let uri = Zeroizing::new(totp::uri(&secret, &record.name, &self.config.totp.issuer)?);
        self.store.set_totp_pending(record.id, &secret, self.now)?;
        Ok(Enrollment {
            user: record.name,
            secret,
            uri,
        })
    }

    /// The enrollment in progress, as `enroll_totp` gave it (the same secret, from the user record), so that
    /// a front end can show it again; `None` unless one is pending.
    pub fn pending_enrollment(&self, user: &str) -> Result<Option<Enrollment>, AccountError> {
        let record = self.user(user)?;
        let secret = match (record.totp, record.totp_secret) {
            (TotpState::Pending, Some(secret)) => secret,
            _ => return Ok(None),
        };
        let uri = Zeroizing::new(totp::uri(&secret, &record.name, &self.config.totp.issuer)?);
        Ok(Some(Enrollment {
            user: record.name,
            secret,
            uri,
        }))
    }

    /// Activates a pending enrollment with one valid code: proof that the app holds the secret. The code's
    /// step is claimed, so the same code cannot log in afterwards. Returns the user's stored name.
    pub fn confirm_totp(&self, user: &str, code: &str) -> Result<String, AccountError> {
        let record = self.user(user)?;
        let secret = match (&record.totp, &record.totp_secret) {
            (TotpState::Pending, Some(secret)) => secret,
            (TotpState::Active, _) => return Err(AccountError::TotpAlreadyActive(record.name)),
            _ => return Err(AccountError::NoPendingEnrollment(record.name)),
        };
        if !totp::is_code_shaped(code.as_bytes()) {
            return Err(AccountError::NotACode(code.to_string()));
        }
        let Some(step) = totp::matching_step(secret, code.as_bytes(), self.now.max(0) as u64)?
        else {
            return Err(AccountError::WrongCode);
        };
        // Only from pending: a second enrollment started meanwhile holds another secret this code says nothing about.
        if !self.store.activate_totp(record.id, step, self.now)? {
            return Err(AccountError::EnrollmentChanged);
        }
        Ok(record.name)
    }

    pub fn totp_status(&self, user: &str) -> Result<TotpStatus, AccountError> {
        let record = self.user(user)?;
        let left = self.store.recovery_codes_left(record.id)?;
        Ok(TotpStatus::of(&record, left))
    }

    /// Turns two-factor authentication off (an enrollment in progress too) and drops the recovery codes.
    /// Returns the user's stored name.
    pub fn disable_totp(&self, user: &str) -> Result<String, AccountError> {
        let record = self.user(user)?;
        if record.totp == TotpState::None {
            return Err(AccountError::TotpNotEnabled(record.name));
        }
        self.store.disable_totp(record.id)?;
        Ok(record.name)
    }

    /// Replaces the user's recovery codes with a fresh set. Only for an active TOTP: the codes stand in for
    /// a phone, which a pending enrollment has not proven yet.
    pub fn new_recovery_codes(&self, user: &str) -> Result<RecoveryCodes, AccountError> {
        let record = self.user(user)?;
        if record.totp != TotpState::Active {
            return Err(AccountError::TotpNotActive(record.name));
        }
        let key = self.store.tag_key()?;
        // The user id is in the tag, so that one user's code can never stand for another's.
        let id_bytes = record.id.to_be_bytes();
        let codes = recovery::generate();
        let mut tags = Vec::with_capacity(codes.len());
        for code in &codes {
            let normal = crate::crockford::normalize(code.expose(), recovery::SYMBOLS).ok_or(
                AccountError::Internal("generated recovery code does not normalize"),
            )?;
            tags.push(key.tag(Purpose::RecoveryCode, &[&id_bytes, normal.expose()]));
        }
        self.store
            .replace_recovery_codes(record.id, &tags, self.now)?;
        Ok(RecoveryCodes {
            user: record.name,
            codes,
        })
    }

    /// Takes over a user's existing authenticator entry from its base32 text: active at once, since the user
    /// has been typing its codes elsewhere already (there is nothing a code would prove better). An active
    /// secret is replaced only with `replace`. Returns the user's stored name.
    pub fn import_totp(
        &self,
        user: &str,
        text: &[u8],
        replace: bool,
    ) -> Result<String, AccountError> {
        let record = self.user(user)?;
        let secret = totp::parse_base32(text)?;
        // Checked again inside the transaction, so that a concurrent enrollment is never overwritten unasked.
        let taken = self.store.immediate(|s| {
            let active = s
                .user(&record.name)?
                .is_some_and(|u| u.totp == TotpState::Active);
            if active && !replace {
                return Ok(false);
            }
            s.set_totp_pending(record.id, &secret, self.now)?;
            // Step 0 as the last one used: the user's next code (any step) logs in, none has been used here yet.
            s.activate_totp(record.id, 0, self.now)
        })?;
        if !taken {
            return Err(AccountError::TotpImportActive(record.name));
        }
        Ok(record.name)
    }
}
