//! What every request and response goes through: the Origin check of state-changing requests, and the
//! security headers.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::app::App;

/// No script but the page's own file, no styles but its own, images only its own or inline (the QR code),
/// forms only to itself, never in a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A request that changes state must come from the page itself: its `Origin` (or, from a browser that
/// sends none, its `Referer`) must be the configured origin. With the CSRF token and `SameSite=Strict` this
/// is the third lock on the door.
pub async fn same_origin(State(app): State<App>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let origin = app.origin();
    let allowed = match headers.get(header::ORIGIN) {
        Some(sent) => sent.as_bytes() == origin.as_bytes(),
        None => headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .is_some_and(|r| {
                r.strip_prefix(origin)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }),
    };
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            "This request did not come from the account page. Open the page and try again.",
        )
            .into_response();
    }
    next.run(request).await
}

/// Every response: no caching (pages show secrets and account state), no framing, no sniffing, and the
/// referrer only to the page itself (a browser sends `Origin` on a form's POST only under such a policy, not
/// under `no-referrer`).
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A request that has not been answered within `REQUEST_TIMEOUT` (the database locked for long, a stalled
/// form) is answered "try again": a temporary failure, never a success. What it did meanwhile stands or was
/// rolled back by SQLite.
pub async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(super::listen::REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server took too long to answer. Try again in a moment.",
        )
            .into_response(),
    }
}
