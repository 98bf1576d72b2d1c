//! Secret bytes (passwords, codes, keys) that are wiped on drop and never printed.

use std::fmt;

use zeroize::Zeroizing;

/// A secret byte string. `Debug` shows only that it is redacted; the bytes are zeroized when dropped.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret::new(bytes.to_vec())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Splits off the last `n` bytes: `("prefix", "suffix")`, both still secret.
    pub fn split_tail(&self, n: usize) -> Option<(Secret, Secret)> {
        let at = self.0.len().checked_sub(n)?;
        Some((
            Secret::from_slice(&self.0[..at]),
            Secret::from_slice(&self.0[at..]),
        ))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Constant-time equality, so that comparing secrets leaks nothing through timing.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_bytes() {
        let s = Secret::from_slice(b"hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }

    #[test]
    fn split_tail_keeps_both_parts() {
        let s = Secret::from_slice(b"password123456");
        let (head, tail) = s.split_tail(6).expect("long enough");
        assert_eq!(head.expose(), b"password");
        assert_eq!(tail.expose(), b"123456");
        assert!(Secret::from_slice(b"abc").split_tail(6).is_none());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
