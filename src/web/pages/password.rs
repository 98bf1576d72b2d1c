//! Changing the main password: after re-authentication, under the same policy as `mailpass user passwd`,
//! hashed at the current parameters. Every session ends with the old password but the one that changed it.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::reauth::require_fresh;
use super::{Chrome, audit, refusal, render_status, signed_form, signed_in, with_session_cookie};
use crate::secret::ct_eq;
use crate::web::app::{Answer, App, Ctx};
use crate::web::session::Signed;
use crate::web::visit::{Fields, Visit};

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    page: Chrome,
    min_length: usize,
    notice: Option<&'static str>,
    error: Option<String>,
}

pub async fn form(State(app): State<App>, visit: Visit) -> Response {
    app.run(move |ctx| {
        let signed = signed_in(ctx, &visit)?;
        require_fresh(ctx, &signed, "/password")?;
        page(ctx, &signed, None, None, StatusCode::OK)
    })
    .await
}

fn page(
    ctx: &Ctx,
    signed: &Signed,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Answer {
    let page = PasswordPage {
        page: Chrome::signed(ctx, signed),
        min_length: ctx.config().passwords.min_length,
        notice,
        error,
    };
    render_status(status, &page)
}

pub async fn submit(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        require_fresh(ctx, &signed, "/password")?;
        let new = fields.secret("new_password");
        let again = fields.secret("confirm");
        if !ct_eq(new.expose(), again.expose()) {
            let error = Some("The two passwords differ. Type the same new password twice.".into());
            return page(ctx, &signed, None, error, StatusCode::BAD_REQUEST);
        }
        // The new hash costs an argon2 run: it waits for a slot like a sign-in, so that password changes
        // cannot run more of them at once than the machine allows.
        let slot = ctx.argon2_slot()?;
        let changed = ctx.account().change_password(&signed.user.name, &new);
        drop(slot);
        if let Err(e) = changed {
            return page(ctx, &signed, None, Some(refusal(e)?), StatusCode::BAD_REQUEST);
        }
        audit(&signed, &visit, "password_changed", &[]);
        // The change ended every session; this one goes on under a new token.
        let (signed, token) = ctx.continue_session(signed, visit.ip.as_deref())?;
        let notice = "Your password was changed, and every other session here was signed out. \
                      Mail apps that still use your old password need the new one, or better, an app password.";
        let response = page(ctx, &signed, Some(notice), None, StatusCode::OK)?;
        Ok(with_session_cookie(ctx, response, &token))
    })
    .await
}
