//! App passwords: the list, creating one (shown once), revoking one or all.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::reauth::require_fresh;
use super::{
    Chrome, audit, redirect, refusal, render, render_status, signed_form, signed_in, when,
};
use crate::account::NewAppPasswordRequest;
use crate::service::{Service, Services};
use crate::web::WebError;
use crate::web::app::{Answer, App, Ctx};
use crate::web::session::Signed;
use crate::web::visit::{Fields, Visit};

/// The lifetimes the form offers, as `clock::parse_duration` reads them ("" is never).
pub const EXPIRY_CHOICES: [(&str, &str); 4] = [
    ("", "Never"),
    ("30d", "In 30 days"),
    ("90d", "In 90 days"),
    ("365d", "In a year"),
];

#[derive(Template)]
#[template(path = "app_passwords.html")]
struct ListPage {
    page: Chrome,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    error: Option<String>,
    /// The create form as it is to be shown (prefilled, or as sent back after a refusal).
    name: String,
    services: Vec<(&'static str, bool)>,
    expiries: Vec<(&'static str, &'static str, bool)>,
}

struct Row {
    name: String,
    services: String,
    created: String,
    expires: String,
    status: &'static str,
    last_used: String,
    last_from: String,
}

#[derive(Template)]
#[template(path = "app_password_created.html")]
pub struct CreatedPage {
    pub page: Chrome,
    pub name: String,
    pub password: zeroize::Zeroizing<String>,
    pub user: String,
    pub services: String,
    pub host: String,
    pub smtp_host: String,
    pub imap_port: u16,
    pub smtp_port: u16,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    notice: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    service: String,
}

pub async fn list(
    State(app): State<App>,
    visit: Visit,
    Query(query): Query<ListQuery>,
) -> Response {
    app.run(move |ctx| {
        let signed = signed_in(ctx, &visit)?;
        let notice = match query.notice.as_str() {
            "revoked" => {
                Some("The app password was revoked: mail apps that use it can no longer sign in.")
            }
            "revoked-all" => Some("Every app password was revoked."),
            _ => None,
        };
        let services: Vec<&str> = Service::from_name(&query.service)
            .map(|s| vec![s.name()])
            .unwrap_or_default();
        let form = Form {
            name: query.name.chars().take(100).collect(),
            services: if services.is_empty() {
                Service::ALL.iter().map(|s| s.name()).collect()
            } else {
                services
            },
            expires: "",
        };
        list_page(ctx, &signed, notice, None, &form, StatusCode::OK)
    })
    .await
}

/// The create form's values.
struct Form<'a> {
    name: String,
    services: Vec<&'a str>,
    expires: &'a str,
}

fn list_page(
    ctx: &Ctx,
    signed: &Signed,
    notice: Option<&'static str>,
    error: Option<String>,
    form: &Form,
    status: StatusCode,
) -> Answer {
    let (_, records) = ctx
        .account()
        .app_passwords(&signed.user.name)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let rows = records
        .iter()
        .filter(|r| r.revoked_at.is_none())
        .map(|r| Row {
            name: r.name.clone(),
            services: r.services.names().join(", "),
            created: when(Some(r.created_at)),
            expires: when(r.expires_at),
            status: crate::account::status(r, ctx.now),
            last_used: r
                .last_used_at
                .map_or_else(|| "not yet".into(), |t| when(Some(t))),
            last_from: match (&r.last_ip, &r.last_service) {
                (Some(ip), Some(service)) => format!("{service} from {ip}"),
                (Some(ip), None) => ip.clone(),
                (None, Some(service)) => service.clone(),
                (None, None) => String::new(),
            },
        })
        .collect();
    let page = ListPage {
        page: Chrome::signed(ctx, signed),
        rows,
        notice,
        error,
        name: form.name.clone(),
        services: Service::ALL
            .iter()
            .map(|s| (s.name(), form.services.contains(&s.name())))
            .collect(),
        expiries: EXPIRY_CHOICES
            .iter()
            .map(|(value, label)| (*value, *label, *value == form.expires))
            .collect(),
    };
    render_status(status, &page)
}

pub async fn create(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        // A new app password is lasting access to the mail, which no sign-out or password change ends: a
        // session left open somewhere must not be enough to make one.
        require_fresh(ctx, &signed, "/app-passwords")?;
        let form = Form {
            name: fields.get("name").to_string(),
            services: fields.all("services"),
            expires: fields.get("expires"),
        };
        match create_app_password(
            ctx,
            &signed,
            &visit,
            &form.name,
            &form.services,
            form.expires,
        )? {
            Ok(page) => render(&page),
            Err(message) => list_page(
                ctx,
                &signed,
                None,
                Some(message),
                &form,
                StatusCode::BAD_REQUEST,
            ),
        }
    })
    .await
}

/// The list with another form's refusal on it (a revocation's, the Apple profile's), and the create form as
/// it starts.
pub fn refused(ctx: &Ctx, signed: &Signed, message: String) -> Answer {
    let form = Form {
        name: String::new(),
        services: Service::ALL.iter().map(|s| s.name()).collect(),
        expires: "",
    };
    list_page(
        ctx,
        signed,
        None,
        Some(message),
        &form,
        StatusCode::BAD_REQUEST,
    )
}

/// Creates an app password as the form asks; `Err` is the refusal in the page's words. Shared with the
/// Apple profile, which makes one the same way.
pub fn create_app_password(
    ctx: &Ctx,
    signed: &Signed,
    visit: &Visit,
    name: &str,
    services: &[&str],
    expires: &str,
) -> Result<Result<CreatedPage, String>, WebError> {
    if !EXPIRY_CHOICES.iter().any(|(value, _)| *value == expires) {
        return Ok(Err("Choose when it expires from the list.".into()));
    }
    if services.is_empty() {
        return Ok(Err("Choose at least one service.".into()));
    }
    let services = services.join(",");
    let request = NewAppPasswordRequest {
        name,
        services: Some(&services),
        expires_in: Some(expires).filter(|e| !e.is_empty()),
    };
    let created = match ctx
        .account()
        .create_app_password(&signed.user.name, &request)
    {
        Ok(created) => created,
        Err(e) => return refusal(e).map(Err),
    };
    audit(
        signed,
        visit,
        "app_password_created",
        &[("name", &created.record.name), ("services", &services)],
    );
    let web = &ctx.config().web;
    Ok(Ok(CreatedPage {
        page: Chrome::signed(ctx, signed),
        name: created.record.name.clone(),
        password: zeroize::Zeroizing::new(
            String::from_utf8_lossy(created.password.expose()).into_owned(),
        ),
        user: created.user,
        services: Services::names(created.record.services).join(", "),
        host: web.mail_host(),
        smtp_host: web.smtp_host(),
        imap_port: web.imap_port,
        smtp_port: web.smtp_port,
    }))
}

pub async fn revoke(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        match ctx
            .account()
            .revoke_app_passwords(&signed.user.name, Some(fields.get("name")))
        {
            Ok(_) => {
                audit(
                    &signed,
                    &visit,
                    "app_password_revoked",
                    &[("name", fields.get("name"))],
                );
                Ok(redirect(&ctx.app, "/app-passwords?notice=revoked"))
            }
            Err(e) => refused(ctx, &signed, refusal(e)?),
        }
    })
    .await
}

pub async fn revoke_all(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        let revoked = ctx
            .account()
            .revoke_app_passwords(&signed.user.name, None)
            .map_err(|e| WebError::Internal(e.to_string()))?;
        let count = revoked.count.to_string();
        audit(
            &signed,
            &visit,
            "app_passwords_revoked",
            &[("count", &count)],
        );
        Ok(redirect(&ctx.app, "/app-passwords?notice=revoked-all"))
    })
    .await
}
