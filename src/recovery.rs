//! Recovery codes: single-use codes for a lost phone, typed after the main password. 12 symbols of Crockford
//! base32 (60 bits) each; stored only as keyed tags.

use crate::crockford;
use crate::secret::Secret;

pub const SYMBOLS: usize = 12;
pub const COUNT: usize = 10;

/// A fresh set, as shown to the user (`xxxx-xxxx-xxxx`).
pub fn generate() -> Vec<Secret> {
    (0..COUNT)
        .map(|_| crockford::random_grouped(SYMBOLS))
        .collect()
}

/// Splits `password + recovery code` into its parts, trying the code with and without its dashes.
pub fn split(sent: &Secret) -> Vec<(Secret, Secret)> {
    [SYMBOLS + 2, SYMBOLS]
        .into_iter()
        .filter_map(|len| {
            let (head, tail) = sent.split_tail(len)?;
            let code = crockford::normalize(tail.expose(), SYMBOLS)?;
            (!head.is_empty()).then_some((head, code))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_found_after_the_password_with_or_without_dashes() {
        let with = split(&Secret::from_slice(b"hunter2abcd-efgh-jkmn"));
        assert_eq!(with[0].0.expose(), b"hunter2");
        assert_eq!(with[0].1.expose(), b"abcdefghjkmn");
        let without = split(&Secret::from_slice(b"hunter2abcdefghjkmn"));
        assert!(
            without
                .iter()
                .any(|(h, c)| h.expose() == b"hunter2" && c.expose() == b"abcdefghjkmn")
        );
        assert!(
            split(&Secret::from_slice(b"abcd-efgh-jkmn")).is_empty(),
            "no password before it"
        );
    }

    #[test]
    fn a_set_has_distinct_codes() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        assert_ne!(codes[0].expose(), codes[1].expose());
    }
}
