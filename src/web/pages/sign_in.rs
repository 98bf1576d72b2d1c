//! Signing in (password, then code) and out.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    Chrome, audit, forbidden, redirect, render_status, signed_form, with_cookie,
    with_session_cookie,
};
use crate::auth::{Reason, SignIn, WEB_SERVICE};
use crate::logline::{Level, LogLine};
use crate::web::WebError;
use crate::web::app::{Answer, App, Ctx};
use crate::web::session::{Current, cookie, new_token, pre_cookie_name, session_cookie_name};
use crate::web::visit::{Fields, Visit};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    page: Chrome,
    user: String,
    error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage {
    page: Chrome,
    error: Option<&'static str>,
}

const WRONG_PASSWORD: &str = "The user name or password is wrong.";
pub(super) const BANNED: &str = "Too many failed sign-ins came from your network. Try again later.";
const PAGE_OFF: &str = "This page is turned off. Ask your mail administrator.";
pub(super) const WRONG_CODE: &str =
    "That code is wrong or was used already. Wait for the next one and try again.";
pub(super) const CODE_LOCKED: &str =
    "Too many wrong codes. Try again later, or use one of your recovery codes.";

/// The decision line of a sign-in step, in the same `key=value` form as a mail login's (the fail2ban
/// filter in contrib/ reads both).
pub(super) fn log_step(user: &str, ip: Option<&str>, step: &str, decided: &SignIn) {
    let line = LogLine::new();
    let line = match decided {
        SignIn::Refused { reason, counted } => line
            .field("result", "fail")
            .field("reason", reason.name())
            .field("user", user)
            .optional("ip", ip)
            .field("service", WEB_SERVICE)
            .field("step", step)
            .field("counted", if *counted { "yes" } else { "no" }),
        SignIn::CodeNeeded(_) | SignIn::SignedIn(_) => line
            .field("result", "ok")
            .field(
                "reason",
                if matches!(decided, SignIn::CodeNeeded(_)) {
                    "code_needed"
                } else {
                    "signed_in"
                },
            )
            .field("user", user)
            .optional("ip", ip)
            .field("service", WEB_SERVICE)
            .field("step", step),
    };
    line.emit(Level::Info);
}

pub async fn form(State(app): State<App>, visit: Visit) -> Response {
    app.run(move |ctx| {
        if let Current::Signed(_) = ctx.current(&visit)? {
            return Ok(redirect(&ctx.app, "/"));
        }
        // Turned off for everyone: said before anyone types a password.
        let error = (!ctx.config().web.self_service).then_some(PAGE_OFF);
        sign_in_page(ctx, &visit, String::new(), error, StatusCode::OK)
    })
    .await
}

/// The sign-in form, with the CSRF token of the visitor's pre-session (made now if they have none).
fn sign_in_page(
    ctx: &Ctx,
    visit: &Visit,
    user: String,
    error: Option<&'static str>,
    status: StatusCode,
) -> Answer {
    let (token, fresh) = match visit.session.as_ref().or(visit.pre.as_ref()) {
        Some(token) => (token.clone(), false),
        None => (new_token(), true),
    };
    let page = SignInPage {
        page: Chrome::anonymous(&ctx.app, ctx.csrf_token(&token)?),
        user,
        error,
    };
    let response = render_status(status, &page)?;
    Ok(if fresh {
        with_cookie(
            response,
            &cookie(&ctx.app, pre_cookie_name(&ctx.app), Some(&token)),
        )
    } else {
        response
    })
}

pub async fn submit(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        if !ctx.csrf_ok(&visit, fields.get("csrf"))? {
            return Ok(forbidden());
        }
        if !ctx.config().web.self_service {
            let error = Some(PAGE_OFF);
            return sign_in_page(ctx, &visit, String::new(), error, StatusCode::FORBIDDEN);
        }
        let name = fields.get("user").trim().to_string();
        let password = fields.secret("password");
        let ip = visit.ip.as_deref();
        let decided = ctx.authenticate(|a| a.sign_in(&name, &password, ip))?;
        log_step(&name, ip, "password", &decided);
        let (verified, signed_in) = match decided {
            SignIn::Refused { reason, .. } => {
                // A user the admin turned the page off for gets the common answer: a message of its own
                // would confirm the password, which for a 2FA account nothing else does.
                let error = match reason {
                    Reason::Banned => BANNED,
                    _ => WRONG_PASSWORD,
                };
                return sign_in_page(ctx, &visit, name, Some(error), StatusCode::UNAUTHORIZED);
            }
            SignIn::CodeNeeded(verified) => (verified, false),
            SignIn::SignedIn(verified) => (verified, true),
        };
        let Some(token) = ctx.start_session(&verified, signed_in, ip)? else {
            // The password changed while it was being checked: what was right a moment ago is not now.
            return sign_in_page(
                ctx,
                &visit,
                name,
                Some(WRONG_PASSWORD),
                StatusCode::UNAUTHORIZED,
            );
        };
        let next = if signed_in { "/" } else { "/sign-in/code" };
        Ok(with_session_cookie(ctx, redirect(&ctx.app, next), &token))
    })
    .await
}

pub async fn code_form(State(app): State<App>, visit: Visit) -> Response {
    app.run(move |ctx| match ctx.current(&visit)? {
        Current::AwaitingCode(..) => code_page(ctx, &visit, None, StatusCode::OK),
        Current::Signed(_) => Ok(redirect(&ctx.app, "/")),
        Current::None => Ok(redirect(&ctx.app, "/sign-in")),
    })
    .await
}

fn code_page(ctx: &Ctx, visit: &Visit, error: Option<&'static str>, status: StatusCode) -> Answer {
    let token = visit
        .session
        .as_ref()
        .ok_or_else(|| WebError::Internal("a code page without a session".into()))?;
    let page = CodePage {
        page: Chrome::anonymous(&ctx.app, ctx.csrf_token(token)?),
        error,
    };
    render_status(status, &page)
}

pub async fn code_submit(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        if !ctx.csrf_ok(&visit, fields.get("csrf"))? {
            return Ok(forbidden());
        }
        let (session, user) = match ctx.current(&visit)? {
            Current::AwaitingCode(session, user) => (session, user),
            Current::Signed(_) => return Ok(redirect(&ctx.app, "/")),
            Current::None => return Ok(redirect(&ctx.app, "/sign-in")),
        };
        let code = fields.secret("code");
        let ip = visit.ip.as_deref();
        let decided = ctx.authenticate(|a| a.sign_in_code(&user, &code, ip))?;
        log_step(&user.name, ip, "code", &decided);
        match decided {
            SignIn::SignedIn(verified) => {
                // A new token for the signed-in session: whoever saw the half-open one's has nothing.
                ctx.store.delete_web_session(session.id)?;
                match ctx.start_session(&verified, true, ip)? {
                    Some(token) => Ok(with_session_cookie(ctx, redirect(&ctx.app, "/"), &token)),
                    // A credential changed meanwhile: sign in again.
                    None => Ok(redirect(&ctx.app, "/sign-in")),
                }
            }
            SignIn::Refused { reason, .. } => {
                let error = match reason {
                    Reason::Banned => BANNED,
                    Reason::TotpLocked => CODE_LOCKED,
                    _ => WRONG_CODE,
                };
                code_page(ctx, &visit, Some(error), StatusCode::UNAUTHORIZED)
            }
            SignIn::CodeNeeded(_) => {
                Err(WebError::Internal("a code step asked for a code".into()).into())
            }
        }
    })
    .await
}

pub async fn sign_out(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        ctx.store.delete_web_session(signed.session.id)?;
        audit(&signed, &visit, "signed_out", &[]);
        Ok(signed_out(ctx))
    })
    .await
}

pub async fn sign_out_everywhere(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        let count = ctx.store.delete_web_sessions(signed.user.id)?.to_string();
        audit(
            &signed,
            &visit,
            "signed_out_everywhere",
            &[("sessions", &count)],
        );
        Ok(signed_out(ctx))
    })
    .await
}

fn signed_out(ctx: &Ctx) -> Response {
    let name = session_cookie_name(&ctx.app);
    with_cookie(
        redirect(&ctx.app, "/sign-in"),
        &cookie(&ctx.app, name, None),
    )
}
