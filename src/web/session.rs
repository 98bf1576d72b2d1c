//! Sessions of the self-service page, their cookies, and CSRF tokens.
//!
//! A session is a random 256-bit token in a cookie; the database keeps only its keyed tag, so a thief of the
//! database cannot use one and signing out (here or by the admin) ends it for every web process. A session
//! starts half-open (password right, code to come) when TOTP is active, and becomes signed in after the
//! code, under a new token. It ends after `[web] session_idle` seconds without a request or
//! `session_absolute` seconds in all.
//!
//! Every form carries a CSRF token derived from the cookie's token (the session's, or before sign-in a
//! pre-session cookie's), checked in constant time, on top of `guard.rs`'s Origin check and the cookies'
//! `SameSite=Strict`.

use base64ct::{Base64UrlUnpadded, Encoding as _};
use zeroize::Zeroizing;

use super::WebError;
use super::app::{App, Ctx};
use super::visit::Visit;
use crate::auth::Verified;
use crate::secret::ct_eq;
use crate::store::{NewWebSession, TotpState, UserRecord, WebSessionRecord};
use crate::tag::Purpose;

/// The cookie of the sign-in form's CSRF token, before a session exists; over https with the `__Host-`
/// prefix too, so that no other host under the same domain can plant one.
pub fn pre_cookie_name(app: &App) -> &'static str {
    if app.config().web.https() {
        "__Host-mailpass_pre"
    } else {
        "mailpass_pre"
    }
}

/// How often a session's last request is written down (seconds).
const TOUCH_EVERY: i64 = 60;

/// How long the code may take to arrive after a right password.
const CODE_WINDOW: i64 = 5 * 60;

/// `__Host-`: over https the browser accepts it only `Secure`, for the whole host, set by the host itself.
pub fn session_cookie_name(app: &App) -> &'static str {
    if app.config().web.https() {
        "__Host-mailpass"
    } else {
        "mailpass"
    }
}

/// A new random token, as it goes into a cookie.
pub fn new_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::fill(&mut bytes[..]);
    Zeroizing::new(Base64UrlUnpadded::encode_string(&bytes[..]))
}

/// The `Set-Cookie` value that gives the browser this token (`None`: deletes the cookie).
pub fn cookie(app: &App, name: &str, token: Option<&str>) -> String {
    let secure = if app.config().web.https() {
        "; Secure"
    } else {
        ""
    };
    match token {
        Some(token) => format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// A signed-in visitor.
pub struct Signed {
    pub session: WebSessionRecord,
    pub user: UserRecord,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

/// What the visitor's session cookie stands for.
pub enum Current {
    None,
    /// A right password; the code is still to come.
    AwaitingCode(WebSessionRecord, UserRecord),
    Signed(Signed),
}

impl Ctx {
    pub fn csrf_token(&self, token: &str) -> Result<String, WebError> {
        Ok(Base64UrlUnpadded::encode_string(
            &self.key()?.tag(Purpose::Csrf, &[token.as_bytes()]),
        ))
    }

    /// Whether `sent` is the CSRF token of the visitor's session (or, with none, of the pre-session).
    pub fn csrf_ok(&self, visit: &Visit, sent: &str) -> Result<bool, WebError> {
        let Some(token) = visit.session.as_ref().or(visit.pre.as_ref()) else {
            return Ok(false);
        };
        let expected = self.csrf_token(token)?;
        Ok(ct_eq(expected.as_bytes(), sent.as_bytes()))
    }

    fn session_tag(&self, token: &str) -> Result<Vec<u8>, WebError> {
        Ok(self.key()?.tag(Purpose::WebSession, &[token.as_bytes()]))
    }

    /// Starts a session for the user a sign-in step verified, if they still have the credential it was
    /// verified against (`None`: it changed meanwhile). The token goes into the cookie.
    pub fn start_session(
        &self,
        verified: &Verified,
        signed_in: bool,
        ip: Option<&str>,
    ) -> Result<Option<Zeroizing<String>>, WebError> {
        let credential = Some((verified.password_hash.as_str(), verified.totp));
        self.add_session(verified.user_id, signed_in, ip, credential)
    }

    fn add_session(
        &self,
        user_id: i64,
        signed_in: bool,
        ip: Option<&str>,
        credential: Option<(&str, TotpState)>,
    ) -> Result<Option<Zeroizing<String>>, WebError> {
        let web = &self.config().web;
        // Sign-ins are rare next to page loads: the expired sessions go then.
        self.store
            .prune_web_sessions(self.now - web.session_idle, self.now - web.session_absolute)?;
        let token = new_token();
        let added = self.store.add_web_session(&NewWebSession {
            tag: &self.session_tag(&token)?,
            user_id,
            signed_in,
            now: self.now,
            ip,
            credential,
        })?;
        Ok(added.map(|_| token))
    }

    /// The visitor's session, if it is still good; one that is not is deleted.
    pub fn current(&self, visit: &Visit) -> Result<Current, WebError> {
        let Some(token) = &visit.session else {
            return Ok(Current::None);
        };
        let Some(session) = self.store.web_session(&self.session_tag(token)?)? else {
            return Ok(Current::None);
        };
        let web = &self.config().web;
        let user = self.store.user_by_id(session.user_id)?;
        let lifetime_ok = if session.signed_in {
            self.now - session.seen_at <= web.session_idle
                && self.now - session.created_at <= web.session_absolute
        } else {
            self.now - session.created_at <= CODE_WINDOW
        };
        let user = user.filter(|u| {
            lifetime_ok && u.enabled && !u.external && u.self_service && web.self_service
        });
        let Some(user) = user else {
            self.store.delete_web_session(session.id)?;
            return Ok(Current::None);
        };
        if !session.signed_in {
            return Ok(Current::AwaitingCode(session, user));
        }
        // Written at most once a minute: a write takes the database's lock, which mail logins need too.
        if self.now - session.seen_at >= TOUCH_EVERY {
            self.store.touch_web_session(session.id, self.now)?;
        }
        Ok(Current::Signed(Signed {
            csrf: self.csrf_token(token)?,
            session,
            user,
        }))
    }

    /// After a change that ended every session of the user (a new password, two-factor authentication on or
    /// off: see `Store::set_password_hash`), the visitor who made it goes on in a new session, as freshly
    /// authenticated as before. The new token goes into the cookie.
    pub fn continue_session(
        &self,
        signed: Signed,
        ip: Option<&str>,
    ) -> Result<(Signed, Zeroizing<String>), WebError> {
        let token = self
            .add_session(signed.user.id, true, ip, None)?
            .ok_or_else(|| {
                WebError::Internal("a session without a credential check was refused".into())
            })?;
        let session = self
            .store
            .web_session(&self.session_tag(&token)?)?
            .ok_or_else(|| WebError::Internal("a session just made is gone".into()))?;
        let session = WebSessionRecord {
            fresh_at: signed.session.fresh_at,
            ..session
        };
        self.store
            .set_web_session_fresh(session.id, session.fresh_at)?;
        let signed = Signed {
            csrf: self.csrf_token(&token)?,
            session,
            user: signed.user,
        };
        Ok((signed, token))
    }

    /// Whether the user typed their password (and code) recently enough for a sensitive action.
    pub fn is_fresh(&self, signed: &Signed) -> bool {
        signed
            .session
            .fresh_at
            .is_some_and(|t| self.now - t <= self.config().web.reauth_window)
    }
}
