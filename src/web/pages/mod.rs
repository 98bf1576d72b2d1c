//! The pages: one module each, and what they share (the frame every page is drawn in, redirects, the
//! error page, the two static files).

mod app_passwords;
mod apple_profile;
mod overview;
mod password;
mod reauth;
mod sign_in;
mod totp;

use askama::Template;
use axum::Router;
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::WebError;
use super::app::{Answer, App, Ctx, Halt};
use super::guard;
use super::session::{Current, Signed, cookie, pre_cookie_name, session_cookie_name};
use super::visit::{Fields, Visit};
use crate::logline::{Level, LogLine};

pub fn router(app: App) -> Router {
    let pages = Router::new()
        .route("/", get(overview::show))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route(
            "/sign-in/code",
            get(sign_in::code_form).post(sign_in::code_submit),
        )
        .route("/sign-out", post(sign_in::sign_out))
        .route("/sign-out-everywhere", post(sign_in::sign_out_everywhere))
        .route(
            "/app-passwords",
            get(app_passwords::list).post(app_passwords::create),
        )
        .route("/app-passwords/revoke", post(app_passwords::revoke))
        .route("/app-passwords/revoke-all", post(app_passwords::revoke_all))
        .route("/apple-profile", post(apple_profile::download))
        .route("/totp", get(totp::show))
        .route("/totp/enroll", post(totp::enroll))
        .route("/totp/confirm", post(totp::confirm))
        .route("/totp/disable", post(totp::disable))
        .route("/totp/recovery-codes", post(totp::recovery_codes))
        .route("/reauth", get(reauth::form).post(reauth::submit))
        .route("/password", get(password::form).post(password::submit))
        .route("/style.css", get(style))
        .route("/copy.js", get(script));
    let base = app.base().to_string();
    let pages = if base.is_empty() {
        pages
    } else {
        Router::new().nest(&base, pages)
    };
    pages
        .layer(middleware::from_fn_with_state(
            app.clone(),
            guard::same_origin,
        ))
        .layer(middleware::from_fn(guard::time_limit))
        .layer(middleware::from_fn(guard::headers))
        .with_state(app)
}

/// What the frame around every page needs.
pub struct Chrome {
    pub base: String,
    pub title: String,
    /// The signed-in user's name, for the header and the sign-out button.
    pub user: Option<String>,
    pub csrf: String,
}

impl Chrome {
    fn signed(ctx: &Ctx, signed: &Signed) -> Chrome {
        Chrome {
            base: ctx.app.base().to_string(),
            title: ctx.config().web.display_name.clone(),
            user: Some(signed.user.name.clone()),
            csrf: signed.csrf.clone(),
        }
    }

    fn anonymous(app: &App, csrf: String) -> Chrome {
        Chrome {
            base: app.base().to_string(),
            title: app.config().web.display_name.clone(),
            user: None,
            csrf,
        }
    }
}

fn render(template: &impl Template) -> Answer {
    Ok(Html(template.render()?).into_response())
}

fn render_status(status: StatusCode, template: &impl Template) -> Answer {
    Ok((status, Html(template.render()?)).into_response())
}

/// 303 to a page of this site (`path` starts with `/`).
fn redirect(app: &App, path: &str) -> Response {
    let location = format!("{}{path}", app.base());
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// The new session's cookie, and the pre-session's gone.
fn with_session_cookie(ctx: &Ctx, response: Response, token: &str) -> Response {
    let name = session_cookie_name(&ctx.app);
    let response = with_cookie(response, &cookie(&ctx.app, name, Some(token)));
    with_cookie(response, &cookie(&ctx.app, pre_cookie_name(&ctx.app), None))
}

/// One line on stderr for each change a user makes on the page, in the login path's `key=value` form: what
/// an admin needs to tell later who made an app password, or turned two-factor authentication off, from where.
fn audit(signed: &Signed, visit: &Visit, action: &str, details: &[(&str, &str)]) {
    let mut line = LogLine::new()
        .field("action", action)
        .field("user", &signed.user.name)
        .optional("ip", visit.ip.as_deref())
        .field("service", crate::auth::WEB_SERVICE);
    for (key, value) in details {
        line = line.field(key, value);
    }
    line.emit(Level::Info);
}

/// The signed-in visitor, or the answer that sends them to sign in.
fn signed_in(ctx: &Ctx, visit: &Visit) -> Result<Signed, Halt> {
    match ctx.current(visit)? {
        Current::Signed(signed) => Ok(signed),
        Current::None | Current::AwaitingCode(..) => {
            Err(Halt::Answer(redirect(&ctx.app, "/sign-in")))
        }
    }
}

/// The signed-in visitor of a form that changes something, with its CSRF token checked.
fn signed_form(ctx: &Ctx, visit: &Visit, fields: &Fields) -> Result<Signed, Halt> {
    check_csrf(ctx, visit, fields)?;
    signed_in(ctx, visit)
}

/// A form's CSRF token must be the visitor's (see `session.rs`).
fn check_csrf(ctx: &Ctx, visit: &Visit, fields: &Fields) -> Result<(), Halt> {
    if ctx.csrf_ok(visit, fields.get("csrf"))? {
        Ok(())
    } else {
        Err(Halt::Answer(forbidden()))
    }
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "This form has expired. Go back, reload the page and try again.",
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Chrome,
    message: &'static str,
}

/// The page for a fault: the request did nothing that can be relied on, and the user may retry.
pub fn error_page(app: &App, e: &WebError) -> Response {
    let overloaded = matches!(e, WebError::Auth(crate::auth::AuthError::Overloaded { .. }));
    let message = if overloaded {
        "The server is busy. Wait a moment and try again."
    } else {
        "Something went wrong on the server. Try again in a moment; if it keeps happening, tell your mail administrator."
    };
    let page = ErrorPage {
        page: Chrome::anonymous(app, String::new()),
        message,
    };
    let body = page.render().unwrap_or_else(|_| message.to_string());
    (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response()
}

async fn style() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/style.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/copy.js"),
    )
        .into_response()
}

/// `2026-12-08 09:30 UTC`, or "never".
pub fn when(time: Option<i64>) -> String {
    match time {
        Some(t) => {
            let text = crate::clock::rfc3339(t);
            format!(
                "{} UTC",
                text.replace('T', " ")
                    .trim_end_matches('Z')
                    .get(..16)
                    .unwrap_or(&text)
            )
        }
        None => "never".into(),
    }
}

/// An account operation's refusal in the page's words (`Ok`), or a fault (`Err`), which the page does not
/// explain.
fn refusal(e: crate::account::AccountError) -> Result<String, WebError> {
    use crate::account::AccountError as A;
    Ok(match e {
        A::Policy(e) => e.to_string(),
        A::UnknownService(_) => "Choose at least one service.".into(),
        A::BadLifetime(_) => "Choose when it expires from the list.".into(),
        A::InvalidLabel => {
            "Give it a name of up to 100 characters, such as the device or the app it is for."
                .into()
        }
        A::TooManyAppPasswords { limit, .. } => format!(
            "You have {limit} app passwords, the most there can be. Revoke those you no longer use first."
        ),
        A::AppPasswordNameTaken { name, .. } => {
            format!(
                "You already have an app password named \u{201c}{name}\u{201d}. Choose another name."
            )
        }
        A::NoSuchAppPassword { .. } => "That app password was revoked already.".into(),
        A::TotpActive(_) | A::TotpAlreadyActive(_) => {
            "Two-factor authentication is on already.".into()
        }
        A::NoPendingEnrollment(_) | A::EnrollmentChanged => {
            "The set-up was started again meanwhile. Start over.".into()
        }
        A::NotACode(_) => "Type the 6-digit code your app shows.".into(),
        A::WrongCode => {
            "That code does not match. Check the app and the phone's clock, and try the next code."
                .into()
        }
        A::TotpNotEnabled(_) | A::TotpNotActive(_) => "Two-factor authentication is off.".into(),
        A::ExternalPassword(_) => {
            "Your password is managed elsewhere; ask your mail administrator.".into()
        }
        other => return Err(WebError::Internal(other.to_string())),
    })
}
