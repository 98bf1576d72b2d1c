//! Password hashes in Dovecot's `{SCHEME}data` form, as passwd-files, SQL tables and /etc/shadow hold them:
//! which schemes mailpass takes, what to store for each, and a format check that catches a column mix-up
//! before it locks a user out. This stand-in covers what `mailpass import` needs; verifying these hashes at
//! login belongs to the full module that replaces it.

/// Upper-case Dovecot scheme names mailpass takes (each may carry a `.HEX` or `.B64` suffix).
pub const SCHEMES: &[&str] = &[
    "ARGON2ID",
    "ARGON2I",
    "BLF-CRYPT",
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "MD5-CRYPT",
    "CRYPT",
    "SSHA512",
    "SSHA256",
    "SSHA",
    "SHA512",
    "SHA256",
    "SHA",
    "SHA1",
    "PBKDF2",
    "PLAIN",
    "CLEAR",
    "CLEARTEXT",
];

/// What is wrong with a stored hash. Messages name the scheme, never the data: it is a password hash, or
/// for the cleartext schemes the password itself.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error(
        "the hash has no {{SCHEME}} prefix: name the scheme with --default-scheme (Dovecot's default_pass_scheme)"
    )]
    NoScheme,
    #[error("unknown password scheme {0}: mailpass takes {list}", list = SCHEMES.join(", "))]
    UnknownScheme(String),
    #[error("the {scheme} hash is malformed: {why}")]
    Malformed { scheme: String, why: &'static str },
}

/// What to store for `stored`: `{SCHEME}data` with the scheme name in upper case, or an argon2 PHC string
/// as mailpass's own hashes are (no braces), which mailpass verifies natively. `default_scheme` applies to
/// data without a `{SCHEME}` prefix, as Dovecot's `default_pass_scheme` does.
pub fn normalize(stored: &str, default_scheme: Option<&str>) -> Result<String, LegacyError> {
    let (scheme, data) = match split(stored) {
        Some((scheme, data)) => (scheme.to_ascii_uppercase(), data),
        None if is_phc(stored) => return Ok(stored.to_string()),
        None => match default_scheme {
            Some(scheme) => (scheme.to_ascii_uppercase(), stored),
            None => return Err(LegacyError::NoScheme),
        },
    };
    let (base, encoding) = split_encoding(&scheme);
    if !SCHEMES.contains(&base) || !is_name(&scheme) {
        return Err(LegacyError::UnknownScheme(printable_name(&scheme)));
    }
    let malformed = |why| LegacyError::Malformed {
        scheme: scheme.clone(),
        why,
    };
    if data.is_empty() {
        return Err(malformed("no data after the scheme"));
    }
    if data.chars().any(char::is_control) {
        return Err(malformed("it holds control characters"));
    }
    check_format(base, encoding, data).map_err(malformed)?;
    // Dovecot's argon2 hashes are PHC strings under a prefix: stored bare, like mailpass's own.
    if matches!(base, "ARGON2ID" | "ARGON2I") && encoding.is_none() {
        return Ok(data.to_string());
    }
    Ok(format!("{{{scheme}}}{data}"))
}

/// The scheme of a stored hash: "ARGON2ID" or "ARGON2I" for PHC strings, else the name in `{...}`.
pub fn scheme_of(stored: &str) -> &str {
    if stored.starts_with("$argon2id$") {
        return "ARGON2ID";
    }
    if stored.starts_with("$argon2i$") {
        return "ARGON2I";
    }
    match split(stored) {
        Some((scheme, _)) => scheme,
        None => "UNKNOWN",
    }
}

/// Whether the scheme keeps the password itself: the import warns about these.
pub fn is_cleartext(scheme: &str) -> bool {
    let upper = scheme.to_ascii_uppercase();
    matches!(split_encoding(&upper).0, "PLAIN" | "CLEAR" | "CLEARTEXT")
}

/// `{SCHEME}data` taken apart.
fn split(stored: &str) -> Option<(&str, &str)> {
    let rest = stored.strip_prefix('{')?;
    let end = rest.find('}')?;
    Some((&rest[..end], &rest[end + 1..]))
}

fn is_phc(stored: &str) -> bool {
    stored.starts_with("$argon2id$") || stored.starts_with("$argon2i$")
}

/// `SHA256.HEX` is `SHA256` in hex.
fn split_encoding(scheme: &str) -> (&str, Option<Encoding>) {
    if let Some(base) = scheme.strip_suffix(".HEX") {
        (base, Some(Encoding::Hex))
    } else if let Some(base) = scheme.strip_suffix(".B64") {
        (base, Some(Encoding::Base64))
    } else {
        (scheme, None)
    }
}

fn is_name(scheme: &str) -> bool {
    !scheme.is_empty()
        && scheme.len() <= 32
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// A scheme name fit for an error message; anything else (it might be a misplaced password) is not echoed.
fn printable_name(scheme: &str) -> String {
    if is_name(scheme) {
        scheme.to_string()
    } else {
        "(an unreadable name)".to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Hex,
    Base64,
}

/// A basic check of the data for its scheme: enough to catch a wrong column or a truncated value.
fn check_format(base: &str, encoding: Option<Encoding>, data: &str) -> Result<(), &'static str> {
    let digest = |len: usize, salted: bool| -> Result<(), &'static str> {
        let bytes = match encoding.unwrap_or(Encoding::Base64) {
            Encoding::Hex => hex_len(data).ok_or("it is not hex")?,
            Encoding::Base64 => base64_len(data).ok_or("it is not base64")?,
        };
        match (salted, bytes.cmp(&len)) {
            (false, std::cmp::Ordering::Equal) | (true, std::cmp::Ordering::Greater) => Ok(()),
            _ => Err("the digest has the wrong length"),
        }
    };
    match base {
        "ARGON2ID" => starts(data, &["$argon2id$"]),
        "ARGON2I" => starts(data, &["$argon2i$"]),
        "BLF-CRYPT" => starts(data, &["$2a$", "$2b$", "$2y$", "$2x$"]),
        "SHA512-CRYPT" => starts(data, &["$6$"]),
        "SHA256-CRYPT" => starts(data, &["$5$"]),
        "MD5-CRYPT" => starts(data, &["$1$"]),
        // Whatever crypt(3) makes: traditional DES (13 characters) or a `$id$...` hash (yescrypt's `$y$` is
        // Debian's default in /etc/shadow).
        "CRYPT" => {
            let des = data.len() == 13
                && data
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
            let modular = data.starts_with('$') && data[1..].contains('$');
            if des || modular {
                Ok(())
            } else {
                Err("it is neither a DES crypt nor a $id$ crypt hash")
            }
        }
        "SSHA512" => digest(64, true),
        "SSHA256" => digest(32, true),
        "SSHA" => digest(20, true),
        "SHA512" => digest(64, false),
        "SHA256" => digest(32, false),
        "SHA" | "SHA1" => digest(20, false),
        // Dovecot's own format: $1$salt$rounds$hex-of-20-bytes.
        "PBKDF2" => {
            let parts: Vec<&str> = data.split('$').collect();
            match parts.as_slice() {
                ["", "1", salt, rounds, hash]
                    if !salt.is_empty()
                        && rounds.parse::<u32>().is_ok_and(|r| r > 0)
                        && hex_len(hash).is_some_and(|n| n > 0) =>
                {
                    Ok(())
                }
                _ => Err("it is not $1$salt$rounds$hash"),
            }
        }
        _ => Ok(()),
    }
}

fn starts(data: &str, prefixes: &[&'static str]) -> Result<(), &'static str> {
    if prefixes
        .iter()
        .any(|p| data.starts_with(p) && data.len() > p.len())
    {
        Ok(())
    } else {
        Err("it does not start as this scheme's hashes do")
    }
}

fn hex_len(data: &str) -> Option<usize> {
    (data.len().is_multiple_of(2) && data.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(data.len() / 2)
}

/// The decoded length of standard base64 (padding optional), or `None` if it is not base64.
fn base64_len(data: &str) -> Option<usize> {
    let body = data.trim_end_matches('=');
    if data.len() - body.len() > 2
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        || body.len() % 4 == 1
    {
        return None;
    }
    Some(body.len() * 3 / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_schemes_are_stored_in_upper_case_with_their_data() {
        assert_eq!(
            normalize("{sha512-crypt}$6$salt$hash", None).expect("ok"),
            "{SHA512-CRYPT}$6$salt$hash"
        );
        assert_eq!(
            normalize("$6$salt$hash", Some("crypt")).expect("ok"),
            "{CRYPT}$6$salt$hash"
        );
        assert_eq!(
            normalize(
                "{SHA256.HEX}2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                None
            )
            .expect("ok"),
            "{SHA256.HEX}2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        assert_eq!(
            normalize("{SSHA}bmsXD1YHcV5mV10Rn5Uv6q9iR6ILB/2q", None).expect("ok"),
            "{SSHA}bmsXD1YHcV5mV10Rn5Uv6q9iR6ILB/2q"
        );
    }

    #[test]
    fn argon2_hashes_are_stored_bare() {
        let phc = "$argon2id$v=19$m=65536,t=3,p=1$UHgqrVz9zNWc1u/A0Ed6SA$PsCmDmXvZtGxw5xKD5YmPdlZK/XsD50D36yIN45Qhdg";
        assert_eq!(
            normalize(&format!("{{ARGON2ID}}{phc}"), None).expect("ok"),
            phc
        );
        assert_eq!(normalize(phc, None).expect("ok"), phc);
        assert_eq!(scheme_of(phc), "ARGON2ID");
    }

    #[test]
    fn errors_name_the_scheme_but_never_the_data() {
        let e = normalize("{CRAM-MD5}secretdata", None).expect_err("unknown");
        assert!(e.to_string().contains("CRAM-MD5") && !e.to_string().contains("secretdata"));
        let e = normalize("{SHA512-CRYPT}$1$secretdata", None).expect_err("malformed");
        assert!(!e.to_string().contains("secretdata"), "{e}");
        assert!(matches!(
            normalize("nohash", None),
            Err(LegacyError::NoScheme)
        ));
        let e = normalize("{a b c}x", None).expect_err("unreadable");
        assert!(!e.to_string().contains("a b c"), "{e}");
    }

    #[test]
    fn digests_must_have_their_length() {
        assert!(normalize("{SHA256}AAAA", None).is_err());
        assert!(normalize("{SHA}C+7Hteo/D9vJXQ3UfzxbwnXaijM=", None).is_ok());
        assert!(
            normalize(
                "{PBKDF2}$1$0XZJDbOvA8Crbec2$5000$7b069c9fda9966256961430de7d9d8527eafe788",
                None
            )
            .is_ok()
        );
        assert!(normalize("{PBKDF2}$1$x$y$z", None).is_err());
    }

    #[test]
    fn cleartext_schemes_are_recognised_with_suffixes() {
        assert!(is_cleartext("PLAIN") && is_cleartext("clear") && is_cleartext("CLEARTEXT.B64"));
        assert!(!is_cleartext("SHA512-CRYPT"));
        assert_eq!(scheme_of("{PLAIN}x"), "PLAIN");
    }
}
