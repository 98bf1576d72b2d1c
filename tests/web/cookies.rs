//! The cookie jar of a plain HTTP client of the page (the tests' and the web bench's): what a browser keeps
//! from `Set-Cookie` and sends back in `Cookie`.

use std::collections::BTreeMap;

/// Keeps what one `Set-Cookie` header says: a new value, or the cookie's removal (empty, or `Max-Age=0`).
pub fn keep(jar: &mut BTreeMap<String, String>, set_cookie: &str) {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    if let Some((name, value)) = pair.split_once('=') {
        if value.is_empty() || set_cookie.contains("Max-Age=0") {
            jar.remove(name);
        } else {
            jar.insert(name.to_string(), value.to_string());
        }
    }
}

/// The `Cookie` header for the jar; none when it is empty.
pub fn header(jar: &BTreeMap<String, String>) -> Option<String> {
    (!jar.is_empty()).then(|| {
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    })
}
