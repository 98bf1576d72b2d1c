//! User names as mailpass stores them: what `user add` and `import` both accept.

/// The stored form of a user name Dovecot can send (lowercased, as Dovecot's default `auth_username_format=%Lu`
/// does; 1 to 255 characters, no spaces or control characters), or `None`.
pub fn normalize(name: &str) -> Option<String> {
    let name = name.trim().to_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    valid.then_some(name)
}
