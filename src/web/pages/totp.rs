//! Two-factor authentication: where it stands, setting it up (a QR code and the secret, active only after
//! one valid code), recovery codes (shown once), and turning it off.
//!
//! Every answer that shows a secret (the pending secret, recovery codes) needs a recent sign-in
//! (`reauth::require_fresh`), as do turning it off and replacing the recovery codes: a session left open
//! is not enough to read or change the second factor. What each action means is `Account`'s.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use qrcode::QrCode;
use qrcode::render::svg;
use zeroize::Zeroizing;

use super::reauth::require_fresh;
use super::{
    Chrome, audit, redirect, refusal, render, render_status, signed_form, signed_in, when,
    with_session_cookie,
};
use crate::account::AccountError;
use crate::store::TotpState;
use crate::web::WebError;
use crate::web::app::{Answer, App, Ctx};
use crate::web::session::Signed;
use crate::web::visit::{Fields, Visit};

/// Off or on (a pending enrollment has a page of its own, `SetupPage`).
#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    page: Chrome,
    /// "off", "being set up" or "on".
    state: &'static str,
    enrolled: String,
    recovery_codes_left: i64,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// A pending enrollment: the secret as a QR code and as text, and the form for the first code.
#[derive(Template)]
#[template(path = "totp_setup.html")]
struct SetupPage {
    page: Chrome,
    /// Inline `<svg>` markup (`qr_svg`): it carries the secret.
    qr: Zeroizing<String>,
    /// The base32 secret in groups of four.
    secret: Zeroizing<String>,
    issuer: String,
    user: String,
    error: Option<String>,
}

/// A fresh set of recovery codes, shown once.
#[derive(Template)]
#[template(path = "totp_recovery_codes.html")]
struct RecoveryCodesPage {
    page: Chrome,
    /// Two-factor authentication was turned on just now (rather than the codes replaced).
    turned_on: bool,
    codes: Vec<Zeroizing<String>>,
    /// The codes as a text file, in a `data:` URL (no request for it, nothing cached).
    download: Zeroizing<String>,
}

#[derive(serde::Deserialize)]
pub struct TotpQuery {
    #[serde(default)]
    notice: String,
}

pub async fn show(
    State(app): State<App>,
    visit: Visit,
    Query(query): Query<TotpQuery>,
) -> Response {
    app.run(move |ctx| {
        let signed = signed_in(ctx, &visit)?;
        if signed.user.totp == TotpState::Pending {
            require_fresh(ctx, &signed, "/totp")?;
            return setup_or_status(ctx, &signed, None, StatusCode::OK);
        }
        let notice = match query.notice.as_str() {
            "disabled" => Some(
                "Two-factor authentication is off, and your recovery codes no longer work. \
                 Signing in needs only your password now.",
            ),
            "cancelled" => Some("The set-up was cancelled. Two-factor authentication stays off."),
            _ => None,
        };
        status_page(ctx, &signed, notice, None, StatusCode::OK)
    })
    .await
}

/// The status page with an account operation's refusal on it (a fault stays a fault).
fn refused(ctx: &Ctx, signed: &Signed, e: AccountError) -> Answer {
    status_page(
        ctx,
        signed,
        None,
        Some(refusal(e)?),
        StatusCode::BAD_REQUEST,
    )
}

fn status_page(
    ctx: &Ctx,
    signed: &Signed,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Answer {
    let totp = ctx
        .account()
        .totp_status(&signed.user.name)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let page = TotpPage {
        page: Chrome::signed(ctx, signed),
        state: match totp.state {
            TotpState::Active => "on",
            TotpState::Pending => "being set up",
            TotpState::None => "off",
        },
        enrolled: when(totp.enrolled_at),
        recovery_codes_left: totp.recovery_codes_left,
        notice,
        error,
    };
    render_status(status, &page)
}

/// The set-up page of the enrollment in progress (read again from the user record, so that a reload or a
/// wrong code shows the same secret), or the status page when there is none (any more).
fn setup_or_status(
    ctx: &Ctx,
    signed: &Signed,
    error: Option<String>,
    status: StatusCode,
) -> Answer {
    let pending = ctx
        .account()
        .pending_enrollment(&signed.user.name)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(enrollment) = pending else {
        return status_page(ctx, signed, None, error, status);
    };
    let page = SetupPage {
        page: Chrome::signed(ctx, signed),
        qr: qr_svg(&enrollment.uri)?,
        secret: grouped(&crate::totp::base32(&enrollment.secret)),
        issuer: ctx.config().totp.issuer.clone(),
        user: enrollment.user,
        error,
    };
    render_status(status, &page)
}

/// Starts (or starts over) an enrollment, then shows it (through `GET /totp`, so that a reload does not
/// make another secret).
pub async fn enroll(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        require_fresh(ctx, &signed, "/totp")?;
        match ctx.account().enroll_totp(&signed.user.name) {
            Ok(_) => Ok(redirect(&ctx.app, "/totp")),
            Err(e) => refused(ctx, &signed, e),
        }
    })
    .await
}

/// The first code: turns two-factor authentication on and shows the first recovery codes.
pub async fn confirm(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        require_fresh(ctx, &signed, "/totp")?;
        // Apps show the code as "123 456"; people type it so.
        let code: Zeroizing<String> = Zeroizing::new(
            fields
                .get("code")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        );
        let account = ctx.account();
        if let Err(e) = account.confirm_totp(&signed.user.name, &code) {
            let message = refusal(e)?;
            return setup_or_status(ctx, &signed, Some(message), StatusCode::BAD_REQUEST);
        }
        audit(&signed, &visit, "totp_enabled", &[]);
        // Turning it on ended every session that was signed in without a code; this one goes on.
        let (signed, token) = ctx.continue_session(signed, visit.ip.as_deref())?;
        let codes = account
            .new_recovery_codes(&signed.user.name)
            .map_err(|e| WebError::Internal(e.to_string()))?;
        let page = codes_page(ctx, &signed, true, &codes.codes)?;
        Ok(with_session_cookie(ctx, page, &token))
    })
    .await
}

/// A new set of recovery codes; the old set stops working.
pub async fn recovery_codes(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        require_fresh(ctx, &signed, "/totp")?;
        match ctx.account().new_recovery_codes(&signed.user.name) {
            Ok(codes) => {
                audit(&signed, &visit, "recovery_codes_replaced", &[]);
                codes_page(ctx, &signed, false, &codes.codes)
            }
            Err(e) => refused(ctx, &signed, e),
        }
    })
    .await
}

/// Turns two-factor authentication off (after re-authentication), or cancels a set-up in progress (which
/// needs none: nothing that works now changes).
pub async fn disable(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        let was_active = signed.user.totp == TotpState::Active;
        if was_active {
            require_fresh(ctx, &signed, "/totp")?;
        }
        match ctx.account().disable_totp(&signed.user.name) {
            Ok(_) if was_active => {
                audit(&signed, &visit, "totp_disabled", &[]);
                // That ended every session of the user; this one goes on.
                let (_, token) = ctx.continue_session(signed, visit.ip.as_deref())?;
                let done = redirect(&ctx.app, "/totp?notice=disabled");
                Ok(with_session_cookie(ctx, done, &token))
            }
            Ok(_) => {
                audit(&signed, &visit, "totp_setup_cancelled", &[]);
                Ok(redirect(&ctx.app, "/totp?notice=cancelled"))
            }
            Err(AccountError::TotpNotEnabled(_)) => Ok(redirect(&ctx.app, "/totp")),
            Err(e) => refused(ctx, &signed, e),
        }
    })
    .await
}

fn codes_page(
    ctx: &Ctx,
    signed: &Signed,
    turned_on: bool,
    codes: &[crate::secret::Secret],
) -> Answer {
    let codes: Vec<Zeroizing<String>> = codes
        .iter()
        .map(|c| Zeroizing::new(String::from_utf8_lossy(c.expose()).into_owned()))
        .collect();
    let mut text = Zeroizing::new(format!(
        "Recovery codes for {} at {}, made {}.\n\
         Each one works once, in place of a code from your authenticator app.\n\n",
        signed.user.name,
        ctx.config().web.display_name,
        when(Some(ctx.now)),
    ));
    for (i, code) in codes.iter().enumerate() {
        text.push_str(&format!("{:2}. {}\n", i + 1, code.as_str()));
    }
    let page = RecoveryCodesPage {
        page: Chrome::signed(ctx, signed),
        turned_on,
        download: data_url(&text),
        codes,
    };
    render(&page)
}

/// The `otpauth://` URI as a QR code in inline SVG markup, ready for the page: no XML declaration, the id
/// and class the page and its stylesheet know, and no `style` attribute (the CSP's `style-src 'self'` would
/// drop it; the renderer uses presentation attributes only, which a test checks).
fn qr_svg(uri: &str) -> Result<Zeroizing<String>, WebError> {
    // The error names the cause (too long), never the data.
    let code = QrCode::new(uri.as_bytes())
        .map_err(|e| WebError::Internal(format!("cannot draw the QR code: {e}")))?;
    let drawn = Zeroizing::new(code.render::<svg::Color>().quiet_zone(true).build());
    let start = drawn
        .find("<svg ")
        .ok_or_else(|| WebError::Internal("the QR code renderer made no <svg>".into()))?;
    let mut markup = Zeroizing::new(String::with_capacity(drawn.len() + 100));
    markup.push_str(
        "<svg id=\"totp-qr\" class=\"qr\" role=\"img\" \
         aria-label=\"QR code for your authenticator app\" ",
    );
    markup.push_str(&drawn[start + "<svg ".len()..]);
    Ok(markup)
}

/// `JBSW Y3DP EHPK ...`: easier to copy by eye.
fn grouped(base32: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(base32.len() * 5 / 4 + 1));
    for (i, c) in base32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `data:text/plain;charset=utf-8,` and the text percent-encoded (RFC 2397): every byte but the unreserved
/// ones of RFC 3986.
fn data_url(text: &str) -> Zeroizing<String> {
    const PREFIX: &str = "data:text/plain;charset=utf-8,";
    let mut out = Zeroizing::new(String::with_capacity(PREFIX.len() + text.len() * 3));
    out.push_str(PREFIX);
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_inline_svg_the_csp_allows() {
        let svg =
            qr_svg("otpauth://totp/Mail:alice%40example.org?secret=JBSWY3DPEHPK3PXP&issuer=Mail")
                .expect("svg");
        assert!(
            svg.starts_with("<svg id=\"totp-qr\" class=\"qr\" "),
            "{}",
            *svg
        );
        assert!(svg.ends_with("</svg>"), "{}", *svg);
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("viewBox="));
        for refused in ["<?xml", "style", "<script", "href", "<svg"] {
            let count = svg.matches(refused).count();
            let allowed = usize::from(refused == "<svg");
            assert_eq!(count, allowed, "{refused} in {}", *svg);
        }
    }

    #[test]
    fn the_secret_is_shown_in_groups_of_four() {
        assert_eq!(grouped("JBSWY3DPEHPK3PXP").as_str(), "JBSW Y3DP EHPK 3PXP");
        assert_eq!(grouped("ABCDEF").as_str(), "ABCD EF");
        assert_eq!(grouped("").as_str(), "");
    }

    #[test]
    fn the_download_link_carries_the_text_percent_encoded() {
        assert_eq!(
            data_url(" 1. abcd-efgh\n\"<&>é").as_str(),
            "data:text/plain;charset=utf-8,%201.%20abcd-efgh%0A%22%3C%26%3E%C3%A9"
        );
    }
}
