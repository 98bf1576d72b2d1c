//! /etc/shadow lines (`name:hash:lastchg:min:max:warn:inactive:expire:`), as Debian's default PAM setup keeps
//! its users: which accounts have a usable hash, and their names as mail users. Hashes are crypt(3) strings
//! and are stored as Dovecot's `{CRYPT}` scheme.

use std::collections::HashMap;

use super::{Hash, Line, Read, Refusal, Skip};
use crate::password::legacy;

const SHAPE: &str = "expected name:hash:... (an /etc/shadow line)";

pub struct ShadowOptions<'a> {
    /// Only accounts with at least this uid (system accounts have low ones); uids come from `passwd`.
    pub min_uid: Option<u32>,
    /// The contents of the passwd file, read only when `min_uid` is given.
    pub passwd: Option<&'a str>,
    /// Appended as `@domain` to every name.
    pub domain: Option<&'a str>,
    /// Days since 1970-01-01, to compare with the expiry field.
    pub today: i64,
}

/// Every line that is neither blank nor a `#` comment, in order.
pub fn parse(text: &str, options: &ShadowOptions) -> Vec<Line> {
    let uids = options.passwd.map(uids).unwrap_or_default();
    text.lines()
        .enumerate()
        .filter(|(_, raw)| {
            let t = raw.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|(i, raw)| parse_line(i + 1, raw, options, &uids))
        .collect()
}

/// name -> uid from passwd lines; lines that do not parse name nobody.
fn uids(passwd: &str) -> HashMap<&str, u32> {
    passwd
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((name, uid))
        })
        .collect()
}

fn parse_line(
    number: usize,
    raw: &str,
    options: &ShadowOptions,
    uids: &HashMap<&str, u32>,
) -> Line {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let fields: Vec<&str> = raw.split(':').collect();
    if fields.len() < 2 {
        return line(number, None, Read::Refuse(Refusal::Shape(SHAPE)));
    }
    let (name, hash) = (fields[0], fields[1]);
    let user = crate::username::normalize(&match options.domain {
        Some(domain) => format!("{name}@{domain}"),
        None => name.to_string(),
    });
    let Some(user) = user else {
        return line(number, None, Read::Refuse(Refusal::InvalidName));
    };
    let expire = fields.get(7).copied().unwrap_or("");
    let expire = match expire {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(days) => Some(days),
            Err(_) => {
                return line(
                    number,
                    Some(user),
                    Read::Refuse(Refusal::Shape(
                        "the expiry field (8th) is not a number of days",
                    )),
                );
            }
        },
    };
    let skip = if hash.is_empty() {
        Some(Skip::NoPassword)
    } else if hash.starts_with('!') || hash.starts_with('*') {
        Some(Skip::Locked)
    } else if expire.is_some_and(|day| options.today >= day) {
        // shadow(5): the account is expired from that day on (0 too, which some tools read as "never";
        // skipping is the side that cannot let in an account the old system refused).
        Some(Skip::Expired)
    } else {
        match (options.min_uid, uids.get(name)) {
            (None, _) => None,
            (Some(_), None) => Some(Skip::NoUid),
            (Some(min), Some(&uid)) if uid < min => Some(Skip::BelowMinUid { uid }),
            _ => None,
        }
    };
    if let Some(skip) = skip {
        return line(number, Some(user), Read::Skip(skip));
    }
    let read = match legacy::normalize(&format!("{{CRYPT}}{hash}"), None) {
        Ok(stored) => Read::User(Hash::new(stored)),
        Err(e) => Read::Refuse(Refusal::Hash(e)),
    };
    line(number, Some(user), read)
}

fn line(number: usize, user: Option<String>, read: Read) -> Line {
    Line { number, user, read }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n";

    fn options(min_uid: Option<u32>, domain: Option<&'static str>) -> ShadowOptions<'static> {
        ShadowOptions {
            min_uid,
            passwd: Some(PASSWD),
            domain,
            today: 20000,
        }
    }

    fn skip_of(line: &Line) -> Option<Skip> {
        match &line.read {
            Read::Skip(s) => Some(s.clone()),
            _ => None,
        }
    }

    #[test]
    fn usable_hashes_become_crypt_users() {
        let lines = parse(
            "alice:$y$j9T$TmRMhHEuYnN4NJowhO4vq.$g/uPM6EXXK0GqC2srDb/.IATw29hXKP2DWm1HMINwY0:19000:0:99999:7:::\n",
            &options(Some(1000), Some("Example.org")),
        );
        assert_eq!(lines[0].user.as_deref(), Some("alice@example.org"));
        match &lines[0].read {
            Read::User(h) => assert_eq!(
                h.expose(),
                "{CRYPT}$y$j9T$TmRMhHEuYnN4NJowhO4vq.$g/uPM6EXXK0GqC2srDb/.IATw29hXKP2DWm1HMINwY0"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn locked_empty_expired_and_system_accounts_are_skipped() {
        let text = "daemon:*:19000:0:99999:7:::\n\
                    root:!$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/:19000:0:99999:7:::\n\
                    bob::19000:0:99999:7:::\n\
                    alice:$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/:19000:0:99999:7::19999:\n\
                    carol:$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/:19000:0:99999:7:::\n";
        let lines = parse(text, &options(Some(1000), None));
        let skips: Vec<Option<Skip>> = lines.iter().map(skip_of).collect();
        assert_eq!(
            skips,
            [
                Some(Skip::Locked),
                Some(Skip::Locked),
                Some(Skip::NoPassword),
                Some(Skip::Expired),
                Some(Skip::NoUid),
            ]
        );
        let root = parse(
            "root:$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/:1::::::\n",
            &options(Some(1000), None),
        );
        assert_eq!(skip_of(&root[0]), Some(Skip::BelowMinUid { uid: 0 }));
        let later = parse(
            "alice:$6$HjfuD9wg1fokgS/Y$NK6LFFnySMdHSWy6mRAtdonfkXWZ8CP45XfJ3wEjftCHIUa.JsY0YYO6vJLgOCw44c47Aaeox31mzIVCQnJdy/:19000:0:99999:7::20001:\n",
            &options(None, None),
        );
        assert_eq!(skip_of(&later[0]), None, "expires in the future");
    }
}
