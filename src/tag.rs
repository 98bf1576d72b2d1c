//! Keyed tags (HMAC-SHA256 under a random key kept in the database): the verifiers of app passwords and
//! recovery codes, the fingerprints of failed secrets in the failure log, and the per-user salt of an unknown
//! user's dummy verification.
//!
//! The key sits beside what it protects, so a thief of the database has it: a tag costs such a thief one HMAC
//! per guess. That is enough only for secrets too random to guess (app passwords: 80 bits; recovery codes: 60
//! bits, and worth nothing once the TOTP secret beside them is taken). Whatever derives from a secret a person
//! chose goes through argon2 first: a failed secret's fingerprint is a tag of the argon2 output that its
//! verification computed (see `auth.rs`), never of the secret itself.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

pub const KEY_LEN: usize = 32;

/// What a tag is for; each purpose gets its own domain so one tag cannot stand in for another.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    AppPassword,
    RecoveryCode,
    /// Of the argon2 output computed for a failed secret, never of the secret.
    FailedSecret,
    /// The salt of an unknown user's dummy verification.
    DummySalt,
    /// Of the user name of an attempt cut off by load (no secret went into it).
    Overloaded,
    /// Of a wrong code typed on the self-service page (worth nothing half a minute later).
    FailedCode,
    /// Of a session token of the self-service page: what the database keeps of it.
    WebSession,
    /// Of a session (or pre-session) token: the CSRF token of its forms.
    Csrf,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::AppPassword => b"mailpass app-password v1",
            Purpose::RecoveryCode => b"mailpass recovery-code v1",
            Purpose::FailedSecret => b"mailpass failed-secret v2 (argon2 output)",
            Purpose::DummySalt => b"mailpass dummy-salt v1",
            Purpose::Overloaded => b"mailpass overloaded v1",
            Purpose::FailedCode => b"mailpass failed-code v1",
            Purpose::WebSession => b"mailpass web-session v1",
            Purpose::Csrf => b"mailpass csrf v1",
        }
    }
}

pub struct TagKey(Secret);

impl TagKey {
    pub fn generate() -> TagKey {
        let mut key = vec![0u8; KEY_LEN];
        rand::fill(&mut key[..]);
        TagKey(Secret::new(key))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Option<TagKey> {
        (bytes.len() == KEY_LEN).then(|| TagKey(Secret::new(bytes)))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// A 16-byte tag of `parts` (length-prefixed, so `("ab","c")` and `("a","bc")` differ).
    pub fn tag(&self, purpose: Purpose, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.expose()) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm cannot run.
            Err(_) => return Vec::new(),
        };
        mac.update(purpose.label());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_key_purpose_and_every_part() {
        let k = TagKey::generate();
        let t = k.tag(Purpose::AppPassword, &[b"user", b"secret"]);
        assert_eq!(t.len(), 16);
        assert_eq!(t, k.tag(Purpose::AppPassword, &[b"user", b"secret"]));
        assert_ne!(t, k.tag(Purpose::RecoveryCode, &[b"user", b"secret"]));
        assert_ne!(t, k.tag(Purpose::AppPassword, &[b"use", b"rsecret"]));
        assert_ne!(
            t,
            TagKey::generate().tag(Purpose::AppPassword, &[b"user", b"secret"])
        );
    }
}
