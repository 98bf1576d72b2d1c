//! The self-service page's sign-in: the main password, then the code (or a recovery code) when TOTP is
//! active. The same rules as a mail login, in two steps: a banned address is refused before any hashing,
//! every failure goes into the failure log (service `web`) and counts under the same ban policy, and a user
//! who does not exist (or cannot sign in at all) costs what a real one costs and gets the same answer.
//!
//! App passwords never open the page: they are made to be stored in mail apps, and the page is where new
//! ones are made.

use super::{AuthError, Authenticator, Print, Reason};
use crate::bans::Policy;
use crate::crockford;
use crate::net::Origin;
use crate::password::GateError;
use crate::recovery;
use crate::secret::Secret;
use crate::store::{TotpState, UserRecord};
use crate::tag::{Purpose, TagKey};
use crate::totp;

use super::Attempt;

/// The `service` of the page's failures in the failure log.
pub const WEB_SERVICE: &str = "web";

/// What a sign-in step decided.
#[derive(Debug)]
pub enum SignIn {
    /// The page says only that the name, password or code was wrong, whatever the reason was.
    Refused {
        reason: Reason,
        /// Whether it counted toward a ban.
        counted: bool,
    },
    /// The password is right and TOTP is active: the code is next.
    CodeNeeded(Verified),
    SignedIn(Verified),
}

/// Whom a sign-in step verified, and against which credential: a session is started only while the user
/// still has it (see `Store::add_web_session`), so that a sign-in checked just before a password change
/// cannot outlive the change.
pub struct Verified {
    pub user_id: i64,
    /// The hash the password was verified against (or its rehash, which this sign-in stored).
    pub password_hash: String,
    pub totp: TotpState,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("user_id", &self.user_id)
            .field("totp", &self.totp)
            .finish_non_exhaustive()
    }
}

impl Verified {
    fn of(user: &UserRecord) -> Verified {
        Verified {
            user_id: user.id,
            password_hash: user.password_hash.clone(),
            totp: user.totp,
        }
    }
}

impl Authenticator<'_> {
    /// Step one: the user name and the main password.
    pub fn sign_in(
        &self,
        name: &str,
        password: &Secret,
        ip: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        let attempt = Attempt {
            user: name,
            secret: password,
            service: WEB_SERVICE,
            ip,
        };
        let policy = Policy::new(&self.config.bans);
        if let Some(refused) = self.refuse_banned(&policy, &attempt)? {
            return Ok(refused);
        }
        let key = self.store.tag_key()?;
        let (decided, print) = match self.check_password(&attempt, &key) {
            Ok(decided) => decided,
            Err(AuthError::Gate(error)) => {
                let counted = self.record_overloaded(&policy, &attempt, &key)?;
                return Err(match error {
                    GateError::Busy => AuthError::Overloaded { counted },
                    other => AuthError::Gate(other),
                });
            }
            Err(e) => return Err(e),
        };
        match decided {
            Err(reason) => {
                let fingerprint = print
                    .map(|out| key.tag(Purpose::FailedSecret, &[attempt.user.as_bytes(), &out]));
                self.refuse(&policy, &attempt, reason, fingerprint.as_deref())
            }
            Ok(verified) if verified.totp == TotpState::Active => Ok(SignIn::CodeNeeded(verified)),
            Ok(verified) => Ok(SignIn::SignedIn(verified)),
        }
    }

    /// Step two: the 6-digit code, or one of the user's recovery codes (which it uses up).
    pub fn sign_in_code(
        &self,
        user: &UserRecord,
        code: &Secret,
        ip: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        let attempt = Attempt {
            user: &user.name,
            secret: code,
            service: WEB_SERVICE,
            ip,
        };
        let policy = Policy::new(&self.config.bans);
        if let Some(refused) = self.refuse_banned(&policy, &attempt)? {
            return Ok(refused);
        }
        let key = self.store.tag_key()?;
        let typed = Typed::of(code);
        let outcome = self.check_code(user, &typed, &key)?;
        match outcome {
            Ok(()) => Ok(SignIn::SignedIn(Verified::of(user))),
            Err(reason) => {
                // A code is worth nothing a minute later, so a fast tag of it is no oracle worth having; it
                // makes an identical retry count once, as with passwords. Anything else typed into the code
                // field (a password, by mistake) must not leave a fast tag behind: it is fingerprinted by the
                // user name alone.
                let sent = match &typed {
                    Typed::RecoveryCode(code) | Typed::Code(code) => code.expose(),
                    Typed::Other => b"not a code".as_slice(),
                };
                let parts: [&[u8]; 2] = [user.name.as_bytes(), sent];
                let fingerprint = key.tag(Purpose::FailedCode, &parts);
                self.refuse(&policy, &attempt, reason, Some(&fingerprint))
            }
        }
    }

    fn refuse_banned(
        &self,
        policy: &Policy,
        attempt: &Attempt,
    ) -> Result<Option<SignIn>, AuthError> {
        let Some(origin) = attempt.ip.and_then(Origin::of) else {
            return Ok(None);
        };
        if policy.refusal(self.store, origin, self.now)?.is_none() {
            return Ok(None);
        }
        self.refuse(policy, attempt, Reason::Banned, None).map(Some)
    }

    fn refuse(
        &self,
        policy: &Policy,
        attempt: &Attempt,
        reason: Reason,
        fingerprint: Option<&[u8]>,
    ) -> Result<SignIn, AuthError> {
        let fingerprint = fingerprint.map(|f| &f[..8]);
        let recorded = self.record(policy, attempt, reason.name(), reason.counts(), fingerprint)?;
        Ok(SignIn::Refused {
            reason,
            counted: recorded.counted,
        })
    }

    /// One verification against the user's hash, or its imitation for a user who cannot sign in here: the
    /// time taken tells nothing about who exists.
    #[allow(clippy::type_complexity)]
    fn check_password(
        &self,
        attempt: &Attempt,
        key: &TagKey,
    ) -> Result<(Result<Verified, Reason>, Option<Print>), AuthError> {
        let name = attempt.user.to_lowercase();
        let found = self.store.user(&name)?;
        let _slot = self.gate.enter()?;
        let imitate = |reason| -> Result<_, AuthError> {
            let print = self.imitate_user(&name, attempt.secret, key, false)?;
            Ok((Err(reason), Some(print.output)))
        };
        let user = match found {
            None => return imitate(Reason::UnknownUser),
            // Their main password lives in another passdb, which the page cannot ask.
            Some(user) if user.external => return imitate(Reason::ExternalRefused),
            Some(user) => user,
        };
        let verified = match self.hasher.verify(attempt.secret, &user.password_hash) {
            Ok(verified) => verified,
            // An unreadable hash (a placeholder) is a refusal that costs what an unknown user costs.
            Err(_) if !user.enabled => return imitate(Reason::DisabledUser),
            Err(e) => return Err(e.into()),
        };
        let print = Some(verified.output);
        if !user.enabled {
            return Ok((Err(Reason::DisabledUser), print));
        }
        if !verified.matched {
            return Ok((Err(Reason::WrongPassword), print));
        }
        if !(self.config.web.self_service && user.self_service) {
            return Ok((Err(Reason::SelfServiceOff), None));
        }
        let mut verified = Verified::of(&user);
        if let Some(new) = self.rehash_if_old(attempt.secret, &user.password_hash, |old, new| {
            self.store.upgrade_password_hash(user.id, old, new)
        }) {
            // If a change of the password beat the rehash, the new hash is stored nowhere and no session
            // will start on it: the right outcome.
            verified.password_hash = new;
        }
        Ok((Ok(verified), None))
    }

    fn check_code(
        &self,
        user: &UserRecord,
        typed: &Typed,
        key: &TagKey,
    ) -> Result<Result<(), Reason>, AuthError> {
        let digits = match typed {
            Typed::RecoveryCode(normal) => {
                let id_bytes = user.id.to_be_bytes();
                let tag = key.tag(Purpose::RecoveryCode, &[&id_bytes, normal.expose()]);
                if !self.store.has_recovery_code(user.id, &tag)? {
                    return Ok(Err(Reason::TotpWrong));
                }
                return Ok(if self.store.burn_recovery_code(user.id, &tag, self.now)? {
                    Ok(())
                } else {
                    Err(Reason::RecoveryCodeUsed)
                });
            }
            Typed::Code(digits) => digits,
            Typed::Other => return Ok(Err(Reason::TotpWrong)),
        };
        let Some(secret) = user
            .totp_secret
            .as_ref()
            .filter(|_| user.totp == TotpState::Active)
        else {
            return Ok(Err(Reason::TotpWrong));
        };
        // The same allowance as password + code at a mail login: the page is no second door for guessing.
        if !self.take_code_check(user)? {
            return Ok(Err(Reason::TotpLocked));
        }
        let step = totp::matching_step(secret, digits.expose(), self.now.max(0) as u64)?;
        if step.is_some() {
            self.store.refund_code_check(user.id)?;
        }
        Ok(match step {
            Some(step) if self.store.claim_totp_step(user.id, step)? => Ok(()),
            Some(_) => Err(Reason::TotpReplayed),
            None => Err(Reason::TotpWrong),
        })
    }
}

/// What was typed into the code field, in canonical form: read once, for the check and the fingerprint.
enum Typed {
    /// Twelve symbols of a recovery code (dashes and look-alikes forgiven).
    RecoveryCode(Secret),
    /// Six digits (spaces dropped: apps show "123 456").
    Code(Secret),
    /// Anything else, a password typed by mistake among them.
    Other,
}

impl Typed {
    fn of(sent: &Secret) -> Typed {
        if let Some(recovery) = crockford::normalize(sent.expose(), recovery::SYMBOLS) {
            return Typed::RecoveryCode(recovery);
        }
        let digits = without_spaces(sent);
        if totp::is_code_shaped(digits.expose()) {
            Typed::Code(digits)
        } else {
            Typed::Other
        }
    }
}

fn without_spaces(sent: &Secret) -> Secret {
    Secret::new(
        sent.expose()
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    )
}
