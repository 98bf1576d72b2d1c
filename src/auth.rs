//! The auth decision: given a user, a secret, the service and the remote address, what the answer is and why.
//! See the README's "How a login is decided"; every step costs at most the argon2 verifications it names.

use crate::app_password;
use crate::bans::{NewFailure, Policy};
use crate::config::Config;
use crate::net::Origin;
use crate::password::{Hasher, PasswordError};
use crate::recovery;
use crate::secret::Secret;
use crate::service::Service;
use crate::store::{AppPasswordRecord, Store, StoreError, TotpState, UserRecord};
use crate::tag::{Purpose, TagKey};
use crate::totp::{self, TotpError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Totp(#[from] TotpError),
}

impl AuthError {
    /// A short name for the log's `reason=` field.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Store(_) => "db_unavailable",
            AuthError::Password(_) => "bad_hash",
            AuthError::Totp(_) => "bad_totp_secret",
        }
    }
}

/// What a login attempt carries.
pub struct Attempt<'a> {
    pub user: &'a str,
    pub secret: &'a Secret,
    /// Dovecot's SERVICE value, as sent.
    pub service: &'a str,
    pub ip: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    AppPassword { id: i64, name: String },
    MainPassword,
    MainPasswordWithCode,
    RecoveryCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownUser,
    DisabledUser,
    WrongPassword,
    AppPasswordExpired,
    AppPasswordRevoked,
    AppPasswordOutOfScope,
    TotpWrong,
    TotpReplayed,
    RecoveryCodeUsed,
    SecondFactorRequired,
    MainPasswordRefused,
    Banned,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnknownUser => "unknown_user",
            Reason::DisabledUser => "disabled_user",
            Reason::WrongPassword => "wrong_password",
            Reason::AppPasswordExpired => "app_password_expired",
            Reason::AppPasswordRevoked => "app_password_revoked",
            Reason::AppPasswordOutOfScope => "app_password_out_of_scope",
            Reason::TotpWrong => "totp_wrong",
            Reason::TotpReplayed => "totp_replayed",
            Reason::RecoveryCodeUsed => "recovery_code_used",
            Reason::SecondFactorRequired => "second_factor_required",
            Reason::MainPasswordRefused => "main_password_refused",
            Reason::Banned => "banned",
        }
    }

    /// Whether this failure can count toward a ban. Not when the sender proved to hold a real credential
    /// (the right main password, a real if stale app password, a code already used), and not a refusal
    /// of an address that is banned already.
    pub fn counts(self) -> bool {
        !matches!(
            self,
            Reason::SecondFactorRequired
                | Reason::MainPasswordRefused
                | Reason::AppPasswordExpired
                | Reason::AppPasswordRevoked
                | Reason::AppPasswordOutOfScope
                | Reason::TotpReplayed
                | Reason::RecoveryCodeUsed
                | Reason::Banned
        )
    }

    /// Parses a reason name, as `ban record --reason` takes it.
    pub fn from_name(name: &str) -> Option<Reason> {
        ALL_REASONS.into_iter().find(|r| r.name() == name)
    }
}

const ALL_REASONS: [Reason; 12] = [
    Reason::UnknownUser,
    Reason::DisabledUser,
    Reason::WrongPassword,
    Reason::AppPasswordExpired,
    Reason::AppPasswordRevoked,
    Reason::AppPasswordOutOfScope,
    Reason::TotpWrong,
    Reason::TotpReplayed,
    Reason::RecoveryCodeUsed,
    Reason::SecondFactorRequired,
    Reason::MainPasswordRefused,
    Reason::Banned,
];

impl Credential {
    pub fn reason(&self) -> &'static str {
        match self {
            Credential::AppPassword { .. } => "app_password",
            Credential::MainPassword => "main_password",
            Credential::MainPasswordWithCode => "main_password_totp",
            Credential::RecoveryCode => "recovery_code",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Credential),
    Rejected(Reason),
}

/// What follows the password in a 2FA login.
enum SecondFactor {
    /// The tag of a recovery code the user has (or had).
    RecoveryCode(Vec<u8>),
    /// Six digits.
    Code(Secret),
}

/// What the mail client is told instead of "authentication failed" (see `Decision::hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The account has two-factor authentication: mail apps need an app password.
    TwoFactorAccount,
    /// The service takes app passwords only.
    AppPasswordsOnly,
}

impl Hint {
    pub fn client_text(self) -> &'static str {
        match self {
            Hint::TwoFactorAccount => {
                "This account uses two-factor authentication. Create an app password for this mail app and sign in with it instead of your password."
            }
            Hint::AppPasswordsOnly => {
                "This service accepts app passwords only. Create an app password for this mail app and sign in with it."
            }
        }
    }
}

#[derive(Debug)]
pub struct Decision {
    /// The canonical user name (as stored), or the name as sent when there is no such user.
    pub user: String,
    pub outcome: Outcome,
    /// Set when the answer to the client must not tell a wrong main password from a right one: every
    /// refused attempt on an account with 2FA, or on a service that takes app passwords only, gets this
    /// same hint, whatever was wrong with it. The true outcome stays in `outcome`, for the log and the failure table.
    pub hint: Option<Hint>,
    /// The banned network that refused this attempt, or the ban this failure started.
    pub ban: Option<String>,
}

pub struct Authenticator<'a> {
    pub store: &'a Store,
    pub hasher: &'a Hasher,
    pub config: &'a Config,
    pub now: i64,
}

impl Authenticator<'_> {
    /// Decides a password check and records its consequences (last use, burnt codes, failures, bans).
    pub fn authenticate(&self, attempt: &Attempt) -> Result<Decision, AuthError> {
        let policy = Policy::new(&self.config.bans);
        // A banned address is refused before any hashing: a flood costs a query each, not an argon2 run.
        let ban = match attempt.ip.and_then(Origin::of) {
            Some(origin) => policy.refusal(self.store, origin, self.now)?,
            None => None,
        };
        let (decision, fingerprint) = match ban {
            Some(ban) => {
                let decision = Decision {
                    user: attempt.user.to_string(),
                    outcome: Outcome::Rejected(Reason::Banned),
                    hint: None,
                    ban: Some(ban.network),
                };
                (decision, None)
            }
            None => {
                let key = self.store.tag_key()?;
                let decision = self.decide(attempt, &key)?;
                let parts: [&[u8]; 2] = [attempt.user.as_bytes(), attempt.secret.expose()];
                (decision, Some(key.tag(Purpose::FailedSecret, &parts)))
            }
        };
        if let Outcome::Rejected(reason) = decision.outcome {
            let recorded = policy.record(
                self.store,
                &NewFailure {
                    time: self.now,
                    ip: attempt.ip,
                    user: attempt.user,
                    service: Some(attempt.service),
                    reason: reason.name(),
                    counts: reason.counts(),
                    fingerprint: fingerprint.as_ref().map(|f| &f[..8]),
                },
            )?;
            if let Some(network) = recorded.ban {
                return Ok(Decision {
                    ban: Some(network),
                    ..decision
                });
            }
        }
        Ok(decision)
    }

    fn decide(&self, attempt: &Attempt, key: &TagKey) -> Result<Decision, AuthError> {
        let user = match self.store.user(&attempt.user.to_lowercase())? {
            Some(user) if user.enabled => user,
            found => {
                self.hasher.verify_dummy(attempt.secret);
                let reason = if found.is_some() {
                    Reason::DisabledUser
                } else {
                    Reason::UnknownUser
                };
                return Ok(Decision {
                    user: attempt.user.to_string(),
                    outcome: Outcome::Rejected(reason),
                    hint: None,
                    ban: None,
                });
            }
        };
        let service = Service::from_dovecot(attempt.service);
        let two_factor = user.totp == TotpState::Active;
        let refused = self.config.main_password_refused(service);
        let outcome = match self.try_app_password(&user, attempt, service, key)? {
            Some(outcome) => outcome,
            None if two_factor => {
                self.main_password_and_second_factor(&user, attempt.secret, key, refused)?
            }
            None if self.hasher.verify(attempt.secret, &user.password_hash)? => {
                self.accept_main(&user, attempt.secret, Credential::MainPassword, refused)
            }
            None => Outcome::Rejected(Reason::WrongPassword),
        };
        let hint = if two_factor {
            Some(Hint::TwoFactorAccount)
        } else if refused {
            Some(Hint::AppPasswordsOnly)
        } else {
            None
        };
        let hint = hint.filter(|_| matches!(outcome, Outcome::Rejected(_)));
        Ok(Decision {
            user: user.name,
            outcome,
            hint,
            ban: None,
        })
    }

    /// Step 2: one tag lookup finds the only app password this secret can be; one verification confirms it.
    fn try_app_password(
        &self,
        user: &UserRecord,
        attempt: &Attempt,
        service: Option<Service>,
        key: &TagKey,
    ) -> Result<Option<Outcome>, AuthError> {
        let Some(normal) = app_password::normalize(attempt.secret) else {
            return Ok(None);
        };
        let tag = key.tag(Purpose::AppPassword, &[normal.expose()]);
        let Some(record) = self.store.app_password_by_tag(user.id, &tag)? else {
            return Ok(None);
        };
        if !self.hasher.verify(&normal, &record.hash)? {
            return Ok(None);
        }
        let outcome = match self.app_password_state(&record, service) {
            Some(reason) => Outcome::Rejected(reason),
            None => {
                self.store.record_app_password_use(
                    record.id,
                    self.now,
                    attempt.ip,
                    attempt.service,
                )?;
                self.rehash_if_old(&normal, &record.hash, |old, new| {
                    self.store.upgrade_app_password_hash(record.id, old, new)
                });
                Outcome::Accepted(Credential::AppPassword {
                    id: record.id,
                    name: record.name,
                })
            }
        };
        Ok(Some(outcome))
    }

    fn app_password_state(
        &self,
        record: &AppPasswordRecord,
        service: Option<Service>,
    ) -> Option<Reason> {
        if record.revoked_at.is_some() {
            Some(Reason::AppPasswordRevoked)
        } else if record.expires_at.is_some_and(|t| t <= self.now) {
            Some(Reason::AppPasswordExpired)
        } else if !service.is_some_and(|s| record.services.contains(s)) {
            Some(Reason::AppPasswordOutOfScope)
        } else {
            None
        }
    }

    /// Step 4 and 5: password + recovery code, password + TOTP code, or the password alone.
    ///
    /// Every such attempt costs exactly two verifications, the password part and the whole secret, whatever
    /// it turns out to be: otherwise the time taken would tell a right main password from a wrong one, which
    /// the answer itself is careful not to. A recovery code is recognised by its tag before any hashing.
    fn main_password_and_second_factor(
        &self,
        user: &UserRecord,
        secret: &Secret,
        key: &TagKey,
        refused: bool,
    ) -> Result<Outcome, AuthError> {
        let id_bytes = user.id.to_be_bytes();
        let mut second = None;
        for (password, code) in recovery::split(secret) {
            let tag = key.tag(Purpose::RecoveryCode, &[&id_bytes, code.expose()]);
            if self.store.has_recovery_code(user.id, &tag)? {
                second = Some((password, SecondFactor::RecoveryCode(tag)));
                break;
            }
        }
        if second.is_none()
            && let Some((password, code)) = secret.split_tail(totp::DIGITS)
            && totp::is_code_shaped(code.expose())
        {
            second = Some((password, SecondFactor::Code(code)));
        }
        let password_part_ok = match &second {
            Some((password, _)) => self.hasher.verify(password, &user.password_hash)?,
            None => {
                self.hasher.verify_dummy(secret);
                false
            }
        };
        let whole_ok = self.hasher.verify(secret, &user.password_hash)?;
        let Some((password, factor)) = second.filter(|_| password_part_ok) else {
            return Ok(match (whole_ok, refused) {
                (true, true) => Outcome::Rejected(Reason::MainPasswordRefused),
                (true, false) => Outcome::Rejected(Reason::SecondFactorRequired),
                (false, _) => Outcome::Rejected(Reason::WrongPassword),
            });
        };
        if refused {
            // Refused without using up the code, which still works where the main password is allowed.
            return Ok(Outcome::Rejected(Reason::MainPasswordRefused));
        }
        let accepted = match factor {
            SecondFactor::RecoveryCode(tag) => {
                if !self.store.burn_recovery_code(user.id, &tag, self.now)? {
                    return Ok(Outcome::Rejected(Reason::RecoveryCodeUsed));
                }
                Credential::RecoveryCode
            }
            SecondFactor::Code(code) => {
                let Some(totp_secret) = &user.totp_secret else {
                    return Ok(Outcome::Rejected(Reason::TotpWrong));
                };
                match totp::matching_step(totp_secret, code.expose(), self.now.max(0) as u64)? {
                    Some(step) if self.store.claim_totp_step(user.id, step)? => {
                        Credential::MainPasswordWithCode
                    }
                    Some(_) => return Ok(Outcome::Rejected(Reason::TotpReplayed)),
                    None => return Ok(Outcome::Rejected(Reason::TotpWrong)),
                }
            }
        };
        Ok(self.accept_main(user, &password, accepted, false))
    }

    /// A right main password: refused on an app-passwords-only service, otherwise accepted, and only then
    /// rehashed if its hash is old (rehashing costs time, which must not tell a refused right password from
    /// a wrong one).
    fn accept_main(
        &self,
        user: &UserRecord,
        password: &Secret,
        credential: Credential,
        refused: bool,
    ) -> Outcome {
        if refused {
            return Outcome::Rejected(Reason::MainPasswordRefused);
        }
        self.rehash_if_old(password, &user.password_hash, |old, new| {
            self.store.upgrade_password_hash(user.id, old, new)
        });
        Outcome::Accepted(credential)
    }

    /// Moves a hash made under older parameters to the configured ones. Best effort: a failure here costs
    /// nothing but another try at the next login.
    fn rehash_if_old(
        &self,
        password: &Secret,
        old: &str,
        save: impl FnOnce(&str, &str) -> Result<(), StoreError>,
    ) {
        if self.hasher.needs_rehash(old)
            && let Ok(new) = self.hasher.hash(password)
        {
            let _ = save(old, &new);
        }
    }
}

/// A userdb lookup: the canonical name of an existing user (disabled users still receive mail).
pub fn lookup(store: &Store, user: &str) -> Result<Option<String>, AuthError> {
    Ok(store.user(&user.to_lowercase())?.map(|u| u.name))
}
