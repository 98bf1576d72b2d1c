//! Crockford's base32 for secrets people type: lowercase, no i, l, o or u (no two symbols look alike), and
//! forgiving on input: case, spaces, dashes and the look-alikes o → 0, i/l → 1 do not matter.

use zeroize::Zeroize;

use crate::secret::Secret;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `symbols` random symbols (5 bits each), shown in dash-separated groups of four.
pub fn random_grouped(symbols: usize) -> Secret {
    let mut raw = zeroize::Zeroizing::new([0u8; 16]);
    rand::fill(&mut raw[..]);
    let mut bits = u128::from_be_bytes(*raw);
    let mut shown = Vec::with_capacity(symbols + symbols / 4);
    for i in 0..symbols.min(25) {
        if i > 0 && i % 4 == 0 {
            shown.push(b'-');
        }
        shown.push(ALPHABET[(bits & 31) as usize]);
        bits >>= 5;
    }
    bits.zeroize();
    Secret::new(shown)
}

/// The canonical form of `sent` if it is exactly `symbols` symbols once separators are dropped.
pub fn normalize(sent: &[u8], symbols: usize) -> Option<Secret> {
    let mut canonical = Vec::with_capacity(symbols);
    for &b in sent {
        let c = match b.to_ascii_lowercase() {
            b' ' | b'-' => continue,
            b'o' => b'0',
            b'i' | b'l' => b'1',
            c if ALPHABET.contains(&c) => c,
            _ => {
                canonical.zeroize();
                return None;
            }
        };
        if canonical.len() == symbols {
            // Too long; stopping here also keeps the buffer from reallocating and leaving a copy behind.
            canonical.zeroize();
            return None;
        }
        canonical.push(c);
    }
    if canonical.len() != symbols {
        canonical.zeroize();
        return None;
    }
    Some(Secret::new(canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_secrets_are_groups_of_four_from_the_alphabet() {
        let p = random_grouped(16);
        let s = std::str::from_utf8(p.expose()).expect("ascii");
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|c| ALPHABET.contains(&c)))
        );
        assert_ne!(random_grouped(16).expose(), p.expose());
        assert_eq!(random_grouped(12).len(), 14);
    }

    #[test]
    fn typing_variations_normalize_to_the_same_secret() {
        let canonical = normalize(b"ab01-cd23-ef45-gh67", 16).expect("shape");
        assert_eq!(canonical.expose(), b"ab01cd23ef45gh67");
        for typed in [
            "AB01CD23EF45GH67",
            "ab01 cd23 ef45 gh67",
            "abOI-cd23-ef45-gh67",
            "abol cd23ef45gh67",
        ] {
            let n = normalize(typed.as_bytes(), 16).expect("shape");
            assert_eq!(n.expose(), canonical.expose(), "{typed}");
        }
    }

    #[test]
    fn other_secrets_do_not_normalize() {
        for s in [
            "short",
            "correct horse battery staple",
            "abcd-efgh-jkmn-pqrsu",
            "ab01-cd23-ef45-gh6!",
        ] {
            assert!(normalize(s.as_bytes(), 16).is_none(), "{s}");
        }
    }
}
