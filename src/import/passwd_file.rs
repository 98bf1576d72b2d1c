//! Dovecot passwd-file lines (`user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`, only the first two fields
//! needed) and the two-column `user<TAB>{SCHEME}hash` that an SQL client prints for
//! `SELECT username, password ...`.

use super::{Hash, Line, Read, Refusal};
use crate::password::legacy;

const SHAPE: &str =
    "expected user:{SCHEME}hash (passwd-file) or user<TAB>{SCHEME}hash (two columns)";

/// Checks a `--default-scheme` once, at the edge: the upper-case name, or why it is not one mailpass takes.
pub fn default_scheme(name: &str) -> Result<String, String> {
    let upper = name.to_ascii_uppercase();
    let base = upper
        .strip_suffix(".HEX")
        .or_else(|| upper.strip_suffix(".B64"))
        .unwrap_or(&upper);
    if legacy::SCHEMES.contains(&base) {
        Ok(upper)
    } else {
        Err(format!(
            "unknown --default-scheme {name:?}: mailpass takes {}",
            legacy::SCHEMES.join(", ")
        ))
    }
}

/// Every line that is neither blank nor a `#` comment, in order.
pub fn parse(text: &str, default_scheme: Option<&str>) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter(|(_, raw)| {
            let t = raw.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|(i, raw)| parse_line(i + 1, raw, default_scheme))
        .collect()
}

fn parse_line(number: usize, raw: &str, default_scheme: Option<&str>) -> Line {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let refuse = |user: Option<String>, refusal| Line {
        number,
        user,
        read: Read::Refuse(refusal),
    };
    // A tab before any colon is the two-column form: a cleartext password there may hold colons.
    let (name, password) = match (raw.find('\t'), raw.find(':')) {
        (Some(tab), colon) if colon.is_none_or(|c| tab < c) => {
            let (name, rest) = (&raw[..tab], &raw[tab + 1..]);
            let rest = rest.trim_end_matches([' ', '\t']);
            if rest.contains('\t') {
                return refuse(
                    crate::username::normalize(name),
                    Refusal::Shape(
                        "more than two tab-separated columns: print only user and password",
                    ),
                );
            }
            (name, rest)
        }
        (_, Some(colon)) => {
            let rest = &raw[colon + 1..];
            (&raw[..colon], rest.split(':').next().unwrap_or(""))
        }
        // The whole line might be a password: nothing of it is echoed.
        _ => return refuse(None, Refusal::Shape(SHAPE)),
    };
    let Some(user) = crate::username::normalize(name) else {
        return refuse(None, Refusal::InvalidName);
    };
    if password.is_empty() {
        return refuse(Some(user), Refusal::Shape("the password field is empty"));
    }
    match legacy::normalize(password, default_scheme) {
        Ok(stored) => Line {
            number,
            user: Some(user),
            read: Read::User(Hash::new(stored)),
        },
        Err(e) => refuse(Some(user), Refusal::Hash(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA512: &str = "{SHA512-CRYPT}$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/";

    fn one(line: &str, default: Option<&str>) -> Line {
        let mut lines = parse(line, default);
        assert_eq!(lines.len(), 1);
        lines.remove(0)
    }

    #[test]
    fn passwd_file_and_two_column_lines_give_user_and_hash() {
        for text in [
            format!(
                "Alice@Example.org:{SHA512}:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G"
            ),
            format!("alice@example.org:{SHA512}"),
            format!("alice@example.org\t{SHA512}\r"),
        ] {
            let line = one(&text, None);
            assert_eq!(line.user.as_deref(), Some("alice@example.org"));
            match line.read {
                Read::User(h) => assert_eq!(h.expose(), SHA512),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn blank_lines_and_comments_are_not_lines_but_keep_the_numbering() {
        let lines = parse(&format!("# users\n\n  \nbob:{SHA512}\n"), None);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].number, 4);
    }

    #[test]
    fn a_hash_without_scheme_needs_a_default() {
        assert!(matches!(
            one("bob:$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/", None).read,
            Read::Refuse(Refusal::Hash(legacy::LegacyError::NoScheme))
        ));
        match one("bob:$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/", Some("SHA512-CRYPT")).read {
            Read::User(h) => assert_eq!(h.expose(), "{SHA512-CRYPT}$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_line_without_separator_names_nobody() {
        let line = one("hunter2", None);
        assert!(line.user.is_none());
        assert!(matches!(line.read, Read::Refuse(Refusal::Shape(_))));
    }

    #[test]
    fn unknown_default_schemes_are_refused_at_the_edge() {
        assert_eq!(default_scheme("sha256.hex").expect("ok"), "SHA256.HEX");
        assert!(default_scheme("CRAM-MD5").is_err());
    }
}
