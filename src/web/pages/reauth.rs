//! Re-authentication: the password (and code) again before a sensitive action (turning two-factor
//! authentication off, new recovery codes, a new password), good for `[web] reauth_window` seconds. A
//! session left open on a shared computer is then not enough to take the account over.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Chrome, forbidden, redirect, render_status, signed_in};
use crate::auth::{Reason, SignIn};
use crate::store::TotpState;
use crate::web::WebError;
use crate::web::app::{Answer, App, Ctx, Halt};
use crate::web::session::Signed;
use crate::web::visit::{Fields, Visit};

#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthPage {
    page: Chrome,
    next: &'static str,
    needs_code: bool,
    error: Option<&'static str>,
}

/// The pages a re-authentication may lead back to; anything else leads to the overview (never elsewhere).
const NEXT_PAGES: [&str; 4] = ["/totp", "/password", "/app-passwords", "/"];

fn next_page(sent: &str) -> &'static str {
    NEXT_PAGES.into_iter().find(|p| *p == sent).unwrap_or("/")
}

/// Goes on when the session's sign-in is recent enough for a sensitive action; otherwise stops with the
/// answer that asks for the password again and then comes back to `next`.
pub fn require_fresh(ctx: &Ctx, signed: &Signed, next: &str) -> Result<(), Halt> {
    if ctx.is_fresh(signed) {
        return Ok(());
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next_page(next))
        .finish();
    Err(Halt::Answer(redirect(
        &ctx.app,
        &format!("/reauth?{query}"),
    )))
}

#[derive(serde::Deserialize)]
pub struct ReauthQuery {
    #[serde(default)]
    next: String,
}

pub async fn form(
    State(app): State<App>,
    visit: Visit,
    Query(query): Query<ReauthQuery>,
) -> Response {
    app.run(move |ctx| {
        let signed = signed_in(ctx, &visit)?;
        page(ctx, &signed, next_page(&query.next), None, StatusCode::OK)
    })
    .await
}

fn page(
    ctx: &Ctx,
    signed: &Signed,
    next: &'static str,
    error: Option<&'static str>,
    status: StatusCode,
) -> Answer {
    let page = ReauthPage {
        page: Chrome::signed(ctx, signed),
        next,
        needs_code: signed.user.totp == TotpState::Active,
        error,
    };
    render_status(status, &page)
}

pub async fn submit(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        if !ctx.csrf_ok(&visit, fields.get("csrf"))? {
            return Ok(forbidden());
        }
        let signed = signed_in(ctx, &visit)?;
        let next = next_page(fields.get("next"));
        let password = fields.secret("password");
        let code = fields.secret("code");
        let ip = visit.ip.as_deref();
        let name = signed.user.name.clone();
        // The same two steps as signing in, recorded and banned the same way.
        let decided = ctx.authenticate(|a| match a.sign_in(&name, &password, ip)? {
            SignIn::CodeNeeded(_) => a.sign_in_code(&signed.user, &code, ip),
            other => Ok(other),
        })?;
        super::sign_in::log_step(&name, ip, "reauth", &decided);
        match decided {
            SignIn::SignedIn(verified) if verified.user_id == signed.user.id => {
                ctx.store.refresh_web_session(signed.session.id, ctx.now)?;
                Ok(redirect(&ctx.app, next))
            }
            SignIn::Refused { reason, .. } => {
                let error = match reason {
                    Reason::Banned => super::sign_in::BANNED,
                    Reason::TotpLocked => super::sign_in::CODE_LOCKED,
                    Reason::TotpWrong | Reason::TotpReplayed | Reason::RecoveryCodeUsed => {
                        super::sign_in::WRONG_CODE
                    }
                    _ => "The password is wrong.",
                };
                page(ctx, &signed, next, Some(error), StatusCode::UNAUTHORIZED)
            }
            _ => Err(WebError::Internal("re-authentication ended in another user".into()).into()),
        }
    })
    .await
}
