//! The overview: where two-factor authentication stands, the app passwords, and the mail apps that still
//! send the main password, each with a way to give it an app password instead.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{Chrome, render, signed_in, when};
use crate::store::TotpState;
use crate::web::app::App;
use crate::web::visit::Visit;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    page: Chrome,
    two_factor: &'static str,
    recovery_codes_left: i64,
    active_app_passwords: usize,
    stale: Vec<StaleRow>,
}

/// A mail app that tried the main password of an account with 2FA.
struct StaleRow {
    last: String,
    ip: String,
    service: String,
    count: i64,
    /// The app-password form, filled in for it.
    create_query: String,
}

pub async fn show(State(app): State<App>, visit: Visit) -> Response {
    app.run(move |ctx| {
        let signed = signed_in(ctx, &visit)?;
        let details = ctx
            .account()
            .user_details(&signed.user.name)
            .map_err(|e| crate::web::WebError::Internal(e.to_string()))?;
        let active_app_passwords = details
            .app_passwords
            .iter()
            .filter(|r| crate::account::status(r, ctx.now) == "active")
            .count();
        let stale = details
            .stale_clients
            .iter()
            .map(|c| {
                let ip = c.ip.clone().unwrap_or_else(|| "unknown address".into());
                let service = c.service.clone().unwrap_or_else(|| "mail".into());
                let name = format!("{} from {ip}", service.to_uppercase());
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("name", &name)
                    .append_pair("service", &service)
                    .finish();
                StaleRow {
                    last: when(Some(c.last)),
                    ip,
                    service,
                    count: c.count,
                    create_query: query,
                }
            })
            .collect();
        let page = OverviewPage {
            page: Chrome::signed(ctx, &signed),
            two_factor: match details.totp.state {
                TotpState::Active => "on",
                TotpState::Pending => "being set up",
                TotpState::None => "off",
            },
            recovery_codes_left: details.totp.recovery_codes_left,
            active_app_passwords,
            stale,
        };
        render(&page)
    })
    .await
}
