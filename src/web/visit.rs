//! What a request carries that the pages need: its cookies, the client's address, its form fields.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{COOKIE, HeaderMap};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use zeroize::{Zeroize, Zeroizing};

use super::app::App;
use super::session::{pre_cookie_name, session_cookie_name};
use crate::secret::Secret;

/// The request's cookies and the address failures are recorded and banned by.
#[derive(Clone)]
pub struct Visit {
    pub session: Option<Zeroizing<String>>,
    /// The token the sign-in form's CSRF token derives from, before there is a session.
    pub pre: Option<Zeroizing<String>>,
    pub ip: Option<String>,
}

impl FromRequestParts<App> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = peer.map(|peer| client_address(app, peer, &parts.headers));
        let name = session_cookie_name(app);
        Ok(Visit {
            session: cookie(&parts.headers, name),
            pre: cookie(&parts.headers, pre_cookie_name(app)),
            ip,
        })
    }
}

/// The client: the peer, or, when the peer is a trusted proxy, the last address in `X-Forwarded-For` that
/// is not one (each proxy appends the address it was reached from; anything before that the client wrote).
/// An entry that is no address is kept as sent: the ban policy counts all such in one `unparsed` bucket, as
/// it does for mail logins, so that a mangled header neither hides a client behind the proxy nor escapes bans.
fn client_address(app: &App, peer: IpAddr, headers: &HeaderMap) -> String {
    if !app.is_trusted_proxy(peer) {
        return peer.to_string();
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    for hop in hops.split(',').map(str::trim).rev() {
        match crate::net::parse_ip(hop) {
            Some(ip) if app.is_trusted_proxy(ip) => continue,
            Some(ip) => return ip.to_string(),
            None if hop.is_empty() && hops.trim().is_empty() => break,
            None => {
                let kept: String = hop.chars().filter(|c| !c.is_control()).take(64).collect();
                return if kept.is_empty() {
                    "(empty)".into()
                } else {
                    kept
                };
            }
        }
    }
    peer.to_string()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<Zeroizing<String>> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| Zeroizing::new(v.to_string()))
}

/// The fields of a submitted form (`application/x-www-form-urlencoded`). Values are wiped when dropped:
/// some are passwords.
pub struct Fields(Vec<(String, Zeroizing<String>)>);

/// The largest form any page sends; anything bigger is refused before it is read whole.
const MAX_FORM: usize = 16 * 1024;

/// How long a form may take to arrive once its headers have.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
                .collect(),
        )
    }

    /// The first value of the field, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a field sent more than once (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn secret(&self, name: &str) -> Secret {
        Secret::from_slice(self.get(name).as_bytes())
    }
}

impl FromRequest<App> for Fields {
    type Rejection = Response;

    async fn from_request(request: Request, _: &App) -> Result<Self, Self::Rejection> {
        // A client that sends its form a byte at a time must not hold a connection for long.
        let body = tokio::time::timeout(
            FORM_TIMEOUT,
            axum::body::to_bytes(request.into_body(), MAX_FORM),
        )
        .await
        .map_err(|_| {
            (
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "the form took too long to arrive",
            )
                .into_response()
        })?
        .map_err(|_| {
            (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response()
        })?;
        let mut bytes = Vec::from(body);
        let fields = Fields::parse(&bytes);
        bytes.zeroize();
        Ok(fields)
    }
}
