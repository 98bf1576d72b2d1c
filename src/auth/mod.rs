//! The auth decision: given a user, a secret, the service and the remote address, what the answer is and why.
//! See the README's "How a login is decided"; every step costs at most the argon2 verifications it names.

use crate::app_password;
use crate::bans::{NewFailure, Policy, Recorded};
use crate::config::Config;
use crate::net::Origin;
use crate::password::{Gate, GateError, Hasher, PasswordError, Verification};
use crate::recovery;
use crate::secret::{Secret, ct_eq};
use crate::service::Service;
use crate::store::{AppPasswordRecord, Store, StoreError, TotpState, UserRecord};
use crate::tag::{Purpose, TagKey};
use crate::totp::{self, TotpError};

mod sign_in;

pub use sign_in::{SignIn, Verified, WEB_SERVICE};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Totp(#[from] TotpError),
    #[error(transparent)]
    Gate(#[from] GateError),
    /// No argon2 slot was free before the deadline; the attempt was recorded (`counted`: toward a ban).
    #[error("every argon2 slot stayed busy until the deadline")]
    Overloaded { counted: bool },
}

/// The failure log's reason for an attempt that no argon2 slot was free for before its deadline. It counts
/// toward a ban: a storm that only times out must still end in bans, or it would erase its own traces.
pub const OVERLOADED_REASON: &str = "overloaded";

impl AuthError {
    /// A short name for the log's `reason=` field.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Store(_) => "db_unavailable",
            AuthError::Password(_) => "bad_hash",
            AuthError::Totp(_) => "bad_totp_secret",
            AuthError::Gate(GateError::Busy) | AuthError::Overloaded { .. } => OVERLOADED_REASON,
            AuthError::Gate(GateError::Io(_)) => "slots_unavailable",
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
    /// Too many wrong codes after a right main password: password + code is refused for a while.
    TotpLocked,
    RecoveryCodeUsed,
    SecondFactorRequired,
    MainPasswordRefused,
    Banned,
    /// An external user's secret that is not one of their app passwords, refused because mailpass cannot
    /// pass it on (2FA is on, the service takes app passwords only, or there is no next passdb). mailpass
    /// cannot tell their right main password from a wrong one, so it counts.
    ExternalRefused,
    /// The right password on the self-service page, of a user it is turned off for.
    SelfServiceOff,
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
            Reason::TotpLocked => "totp_locked",
            Reason::RecoveryCodeUsed => "recovery_code_used",
            Reason::SecondFactorRequired => "second_factor_required",
            Reason::MainPasswordRefused => "main_password_refused",
            Reason::Banned => "banned",
            Reason::ExternalRefused => "external_refused",
            Reason::SelfServiceOff => "self_service_off",
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
                | Reason::SelfServiceOff
        )
    }

    /// Parses a reason name, as `ban record --reason` takes it.
    pub fn from_name(name: &str) -> Option<Reason> {
        ALL_REASONS.into_iter().find(|r| r.name() == name)
    }
}

const ALL_REASONS: [Reason; 15] = [
    Reason::UnknownUser,
    Reason::DisabledUser,
    Reason::WrongPassword,
    Reason::AppPasswordExpired,
    Reason::AppPasswordRevoked,
    Reason::AppPasswordOutOfScope,
    Reason::TotpWrong,
    Reason::TotpReplayed,
    Reason::TotpLocked,
    Reason::RecoveryCodeUsed,
    Reason::SecondFactorRequired,
    Reason::MainPasswordRefused,
    Reason::Banned,
    Reason::ExternalRefused,
    Reason::SelfServiceOff,
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
    /// Not mailpass's to decide (`[auth] next_passdb`): the next passdb decides. Nothing is recorded.
    Next,
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
    /// The text for the mail app's user. With the self-service page configured (`page`: its URL), it says
    /// where to make the app password.
    pub fn client_text(self, page: Option<&str>) -> String {
        let place = page.map_or(String::new(), |url| format!(" at {url}/app-passwords"));
        match self {
            Hint::TwoFactorAccount => format!(
                "This account uses two-factor authentication. Create an app password for this mail app{place} and sign in with it instead of your password."
            ),
            Hint::AppPasswordsOnly => format!(
                "This service accepts app passwords only. Create an app password for this mail app{place} and sign in with it."
            ),
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
    /// Whether the failure counted toward a ban (see `bans.rs`): what a log watcher should count.
    pub counted: bool,
}

pub struct Authenticator<'a> {
    pub store: &'a Store,
    pub hasher: &'a Hasher,
    pub config: &'a Config,
    pub now: i64,
    /// Where an attempt waits for one of the machine's argon2 slots before it hashes.
    pub gate: &'a Gate,
}

/// Seconds within which a repeated use of an app password from the same address and service is not
/// recorded again.
const LAST_USE_PRECISION: i64 = 60;

/// The argon2 output computed for the secret as sent, when it failed: the failure log's fingerprint derives
/// from it.
type Print = zeroize::Zeroizing<Vec<u8>>;

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
                    counted: false,
                };
                (decision, None)
            }
            None => {
                let key = self.store.tag_key()?;
                match self.decide(attempt, &key) {
                    Ok((decision, print)) => {
                        // A thief of the database can test a guess against this only by computing argon2
                        // under the user's salt: the fingerprint is as costly to attack as the stored hash.
                        let fingerprint = print.map(|out| {
                            key.tag(Purpose::FailedSecret, &[attempt.user.as_bytes(), &out])
                        });
                        (decision, fingerprint)
                    }
                    Err(AuthError::Gate(error)) => {
                        let counted = self.record_overloaded(&policy, attempt, &key)?;
                        return Err(match error {
                            GateError::Busy => AuthError::Overloaded { counted },
                            other => AuthError::Gate(other),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if let Outcome::Rejected(reason) = decision.outcome {
            let fingerprint = fingerprint.as_ref().map(|f| &f[..8]);
            let recorded = self.record(
                &policy,
                attempt,
                reason.name(),
                reason.counts(),
                fingerprint,
            )?;
            return Ok(Decision {
                ban: recorded.ban.or(decision.ban),
                counted: recorded.counted,
                ..decision
            });
        }
        Ok(decision)
    }

    /// An attempt cut off by load (or by a fault of the slots) is recorded as a counted failure. Its
    /// fingerprint cannot come from the secret (that would take the argon2 run it did not get), so it is one of
    /// the user name alone: a mail app that retries through a storm counts once per window, like an identical
    /// retry, while a spray over many users counts user by user.
    fn record_overloaded(
        &self,
        policy: &Policy,
        attempt: &Attempt,
        key: &TagKey,
    ) -> Result<bool, AuthError> {
        let fingerprint = key.tag(Purpose::Overloaded, &[attempt.user.as_bytes()]);
        let recorded = self.record(
            policy,
            attempt,
            OVERLOADED_REASON,
            true,
            Some(&fingerprint[..8]),
        )?;
        Ok(recorded.counted)
    }

    /// Appends the attempt to the failure log and applies the ban policy.
    fn record(
        &self,
        policy: &Policy,
        attempt: &Attempt,
        reason: &str,
        counts: bool,
        fingerprint: Option<&[u8]>,
    ) -> Result<Recorded, AuthError> {
        Ok(policy.record(
            self.store,
            &NewFailure {
                time: self.now,
                ip: attempt.ip,
                user: attempt.user,
                service: Some(attempt.service),
                reason,
                counts,
                fingerprint,
            },
        )?)
    }

    fn decide(
        &self,
        attempt: &Attempt,
        key: &TagKey,
    ) -> Result<(Decision, Option<Print>), AuthError> {
        let name = attempt.user.to_lowercase();
        let found = self.store.user(&name)?;
        let service = Service::from_dovecot(attempt.service);
        if found.is_none() && self.config.auth.next_passdb {
            // Not mailpass's user: the next passdb decides, and hashes.
            return Ok((next(attempt), None));
        }
        // Step 2 comes before any hashing: an accepted app password costs a keyed tag, not an argon2 run.
        let mut unusable_app_password = None;
        if let Some(user) = found.as_ref().filter(|u| u.enabled) {
            match self.app_password(user, attempt, service, key)? {
                Some(Ok(credential)) => {
                    let decision = Decision {
                        user: user.name.clone(),
                        outcome: Outcome::Accepted(credential),
                        hint: None,
                        ban: None,
                        counted: false,
                    };
                    return Ok((decision, None));
                }
                Some(Err(reason)) => unusable_app_password = Some(reason),
                None => {}
            }
        }
        if let Some(user) = found.as_ref().filter(|u| u.external) {
            return self.external(user, attempt, service, unusable_app_password, key);
        }
        // Everything else hashes, so it waits for an argon2 slot (held until the decision is made).
        let _slot = self.gate.enter()?;
        let user = match found {
            Some(user) if user.enabled => user,
            Some(disabled) => {
                // Verified against the user's own hash, for the cost of a real check; never accepted. A hash
                // that cannot be read (a placeholder) costs what an unknown user costs instead: the answer is
                // a refusal either way, never a fault that tells the account exists.
                let print = match self.hasher.verify(attempt.secret, &disabled.password_hash) {
                    Ok(verified) => verified,
                    Err(_) => self.verify_unknown(&name, attempt.secret, key)?,
                };
                return Ok(rejected(attempt, Reason::DisabledUser, print.output));
            }
            None => {
                let print = self.verify_unknown(&name, attempt.secret, key)?;
                return Ok(rejected(attempt, Reason::UnknownUser, print.output));
            }
        };
        let two_factor = user.totp == TotpState::Active;
        let refused = self.config.main_password_refused(service);
        let (outcome, print) = if two_factor {
            self.main_password_and_second_factor(&user, attempt.secret, key, refused)?
        } else {
            let verified = self.hasher.verify(attempt.secret, &user.password_hash)?;
            if verified.matched {
                let outcome =
                    self.accept_main(&user, attempt.secret, Credential::MainPassword, refused);
                (outcome, Some(verified.output))
            } else {
                (
                    Outcome::Rejected(Reason::WrongPassword),
                    Some(verified.output),
                )
            }
        };
        // A real but unusable app password was checked like any other refusal, for the same cost; it is
        // answered and logged for what it is.
        let outcome = match (unusable_app_password, outcome) {
            (Some(reason), Outcome::Rejected(_)) => Outcome::Rejected(reason),
            (_, outcome) => outcome,
        };
        let hint = if two_factor {
            Some(Hint::TwoFactorAccount)
        } else if refused {
            Some(Hint::AppPasswordsOnly)
        } else {
            None
        };
        let accepted = matches!(outcome, Outcome::Accepted(_));
        let hint = hint.filter(|_| !accepted);
        let decision = Decision {
            user: user.name,
            outcome,
            hint,
            ban: None,
            counted: false,
        };
        Ok((decision, print.filter(|_| !accepted)))
    }

    /// An external user's secret that is not a usable app password (step 2 has run): mailpass holds no main
    /// password to check it against. It goes to the next passdb when nothing mailpass knows stands in the way;
    /// otherwise it is refused for good: with 2FA on, or on an app-passwords-only service, the main password
    /// must never reach the next passdb. Such a refusal costs an argon2 run of the secret under a salt derived
    /// from the name, as an unknown user's does: it is the failure's fingerprint (identical retries count
    /// once), and a thief of the database can test a guess against it only at argon2's cost.
    fn external(
        &self,
        user: &UserRecord,
        attempt: &Attempt,
        service: Option<Service>,
        unusable_app_password: Option<Reason>,
        key: &TagKey,
    ) -> Result<(Decision, Option<Print>), AuthError> {
        let hint = if user.totp == TotpState::Active {
            Some(Hint::TwoFactorAccount)
        } else if self.config.main_password_refused(service) {
            Some(Hint::AppPasswordsOnly)
        } else {
            None
        };
        let reason = match unusable_app_password {
            _ if !user.enabled => Reason::DisabledUser,
            Some(reason) => reason,
            None if hint.is_none() && self.config.auth.next_passdb => {
                return Ok((next(attempt), None));
            }
            None => Reason::ExternalRefused,
        };
        let _slot = self.gate.enter()?;
        let print = self.verify_unknown(&user.name, attempt.secret, key)?;
        let decision = Decision {
            user: user.name.clone(),
            outcome: Outcome::Rejected(reason),
            hint: hint.filter(|_| user.enabled),
            ban: None,
            counted: false,
        };
        Ok((decision, Some(print.output)))
    }

    /// The dummy verification for a user that does not exist: at the parameters of some real user's hash
    /// (picked by the name, so a name always costs the same), under a salt of its own for each name.
    fn verify_unknown(
        &self,
        name: &str,
        secret: &Secret,
        key: &TagKey,
    ) -> Result<Verification, AuthError> {
        self.imitate_user(name, secret, key, true)
    }

    /// `second_factor`: whether a 2FA account's second verification is imitated too (a mail login checks
    /// password + code as two; the page checks the password alone first).
    fn imitate_user(
        &self,
        name: &str,
        secret: &Secret,
        key: &TagKey,
        second_factor: bool,
    ) -> Result<Verification, AuthError> {
        let derived = key.tag(Purpose::DummySalt, &[name.as_bytes()]);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&derived[..16]);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&derived[..8]);
        let like = self.store.some_user_hash(u64::from_be_bytes(seed))?;
        let (hash, two_factor) = match &like {
            Some((hash, two_factor)) => (Some(hash.as_str()), *two_factor),
            None => (None, false),
        };
        let verified = self.hasher.verify_dummy(secret, hash, &salt);
        if two_factor && second_factor {
            // A 2FA account costs two verifications (see `main_password_and_second_factor`).
            self.hasher.verify_dummy(secret, hash, &salt);
        }
        Ok(verified)
    }

    /// Step 2: the secret against every app password of the user, by keyed tag and in constant time (an
    /// app password is 80 random bits: argon2 would slow down no one). `Some(Ok)`: accepted, its use
    /// recorded; `Some(Err)`: it is one of the user's, but revoked, expired or out of scope; `None`: none.
    fn app_password(
        &self,
        user: &UserRecord,
        attempt: &Attempt,
        service: Option<Service>,
        key: &TagKey,
    ) -> Result<Option<Result<Credential, Reason>>, AuthError> {
        let Some(normal) = app_password::normalize(attempt.secret) else {
            return Ok(None);
        };
        let tag = key.tag(Purpose::AppPassword, &[normal.expose()]);
        let mut found = None;
        // Every tag is compared, so the time taken does not tell which one matched.
        for record in self.store.app_passwords(user.id)? {
            if ct_eq(&record.tag, &tag) && found.is_none() {
                found = Some(record);
            }
        }
        let Some(record) = found else {
            return Ok(None);
        };
        if let Some(reason) = self.app_password_state(&record, service) {
            return Ok(Some(Err(reason)));
        }
        // A mail app reconnects many times a minute from the same address for the same service: recording
        // each would cost every such login a write for no news, so the last use is kept to the minute.
        let news = !record
            .last_used_at
            .is_some_and(|t| (0..LAST_USE_PRECISION).contains(&(self.now - t)))
            || record.last_ip.as_deref() != attempt.ip
            || record.last_service.as_deref() != Some(attempt.service);
        if news {
            // Best effort: a busy database must not turn an accepted app password into a failure.
            let _ = self.store.record_app_password_use(
                record.id,
                self.now,
                attempt.ip,
                attempt.service,
            );
        }
        Ok(Some(Ok(Credential::AppPassword {
            id: record.id,
            name: record.name,
        })))
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
    /// Every such attempt costs exactly two verifications against the user's hash, the password part and the
    /// whole secret, whatever it turns out to be: otherwise the time taken would tell a right main password
    /// from a wrong one, which the answer itself is careful not to. A recovery code is recognised by its tag
    /// before any hashing. The whole secret's verification is the one a failure's fingerprint comes from.
    fn main_password_and_second_factor(
        &self,
        user: &UserRecord,
        secret: &Secret,
        key: &TagKey,
        refused: bool,
    ) -> Result<(Outcome, Option<Print>), AuthError> {
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
        let part = second.as_ref().map_or(secret, |(password, _)| password);
        let password_part_ok = self.hasher.verify(part, &user.password_hash)?.matched;
        let password_part_ok = password_part_ok && second.is_some();
        let whole = self.hasher.verify(secret, &user.password_hash)?;
        let print = Some(whole.output);
        let Some((password, factor)) = second.filter(|_| password_part_ok) else {
            let outcome = match (whole.matched, refused) {
                (true, true) => Outcome::Rejected(Reason::MainPasswordRefused),
                (true, false) => Outcome::Rejected(Reason::SecondFactorRequired),
                (false, _) => Outcome::Rejected(Reason::WrongPassword),
            };
            return Ok((outcome, print));
        };
        if refused {
            // Refused without using up the code, which still works where the main password is allowed.
            return Ok((Outcome::Rejected(Reason::MainPasswordRefused), print));
        }
        let refuse = |reason| Ok((Outcome::Rejected(reason), print.clone()));
        let accepted = match factor {
            SecondFactor::RecoveryCode(tag) => {
                if !self.store.burn_recovery_code(user.id, &tag, self.now)? {
                    return refuse(Reason::RecoveryCodeUsed);
                }
                Credential::RecoveryCode
            }
            SecondFactor::Code(code) => {
                let Some(totp_secret) = &user.totp_secret else {
                    return refuse(Reason::TotpWrong);
                };
                // Someone who holds the main password must not be able to try codes until one fits (RFC
                // 6238 section 5.2): each check is taken from the account's allowance before the code is
                // looked at (so neither concurrent guesses nor a crash get one for free), and given back
                // when the code was right; past the limit the code is not even looked at.
                if !self.take_code_check(user)? {
                    return refuse(Reason::TotpLocked);
                }
                let step = totp::matching_step(totp_secret, code.expose(), self.now.max(0) as u64)?;
                if step.is_some() {
                    self.store.refund_code_check(user.id)?;
                }
                match step {
                    Some(step) if self.store.claim_totp_step(user.id, step)? => {
                        Credential::MainPasswordWithCode
                    }
                    Some(_) => return refuse(Reason::TotpReplayed),
                    None => return refuse(Reason::TotpWrong),
                }
            }
        };
        Ok((self.accept_main(user, &password, accepted, false), None))
    }

    /// Takes a code check from the account's allowance; `false` when none is left.
    fn take_code_check(&self, user: &UserRecord) -> Result<bool, AuthError> {
        let limit = &self.config.totp;
        if limit.max_wrong_codes == 0 {
            return Ok(true);
        }
        Ok(self.store.take_code_check(
            user.id,
            limit.max_wrong_codes,
            limit.wrong_codes_window,
            self.now,
        )?)
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
    /// `Some(new hash)` when one was made and handed to `save` without an error (whether it replaced the old
    /// one is `save`'s to decide).
    fn rehash_if_old(
        &self,
        password: &Secret,
        old: &str,
        save: impl FnOnce(&str, &str) -> Result<(), StoreError>,
    ) -> Option<String> {
        if self.hasher.needs_rehash(old)
            && let Ok(new) = self.hasher.hash(password)
        {
            return save(old, &new).is_ok().then_some(new);
        }
        None
    }
}

/// A refusal of a user that does not exist or is disabled: no hint, whatever the service.
fn rejected(attempt: &Attempt, reason: Reason, print: Print) -> (Decision, Option<Print>) {
    let decision = Decision {
        user: attempt.user.to_string(),
        outcome: Outcome::Rejected(reason),
        hint: None,
        ban: None,
        counted: false,
    };
    (decision, Some(print))
}

/// "Let the next passdb decide": for a user mailpass does not know, or an external user's main password.
fn next(attempt: &Attempt) -> Decision {
    Decision {
        user: attempt.user.to_string(),
        outcome: Outcome::Next,
        hint: None,
        ban: None,
        counted: false,
    }
}

/// A userdb lookup: the canonical name of an existing user (disabled users still receive mail).
pub fn lookup(store: &Store, user: &str) -> Result<Option<String>, AuthError> {
    Ok(store.user(&user.to_lowercase())?.map(|u| u.name))
}
