//! argon2id password hashes: making them, checking them at the cost of exactly one verification, and
//! burning the same cost for users that do not exist. `slots.rs` bounds how many verifications run at once,
//! machine-wide; `memory.rs` is argon2's working memory; `legacy.rs` verifies hashes imported from a Dovecot
//! passdb (`{SCHEME}data`) until a login replaces them.

pub mod legacy;
mod memory;
pub mod policy;
mod slots;

pub use slots::{Gate, GateError, Pass};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use zeroize::Zeroizing;

use crate::config::Argon2Config;
use crate::secret::{Secret, ct_eq};
use crate::sys;
use memory::BlockMemory;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("stored password hash is malformed")]
    MalformedHash,
    #[error("argon2 failed: {0}")]
    Argon2(String),
    #[error("stored password hash: {0}")]
    Legacy(#[from] legacy::LegacyError),
}

/// Hashes and verifies with the configured parameters.
pub struct Hasher {
    params: Params,
}

/// What one verification computed: whether the password matched, and the argon2 output itself. The output
/// is what the failure log's fingerprint of a failed secret is derived from, so that testing a guess against
/// that fingerprint costs a thief of the database an argon2 computation, as the stored hash does.
pub struct Verification {
    pub matched: bool,
    pub output: Zeroizing<Vec<u8>>,
}

/// The length of a dummy verification's output (what mailpass's own hashes have).
const DUMMY_OUTPUT_LEN: usize = 32;

impl Hasher {
    pub fn new(config: &Argon2Config) -> Result<Hasher, PasswordError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Hasher { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A new PHC string (`$argon2id$v=19$m=...`) with a random salt.
    pub fn hash(&self, password: &Secret) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let hash = self
            .argon2()
            .hash_password_with_salt(password.expose(), &salt)
            .map_err(|e| PasswordError::Argon2(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Verifies `password` against a stored hash: mailpass's own PHC string, the same behind `{ARGON2ID}` or
    /// `{ARGON2I}`, or any other `{SCHEME}` imported from Dovecot (see `legacy.rs`). A malformed hash is an
    /// error, never a mismatch.
    pub fn verify(&self, password: &Secret, stored: &str) -> Result<Verification, PasswordError> {
        if legacy::is_legacy(stored) {
            return legacy::verify(password, stored);
        }
        verify_phc(password, legacy::argon2_phc(stored).unwrap_or(stored))
    }

    /// Spends what verifying `password` against `like` (a stored hash of some user) costs, under `salt`
    /// instead of that hash's, and never matches: for a user that does not exist, so that refusing one is no
    /// faster than refusing a real user whose hash has those parameters. Without a usable `like` (no users
    /// yet), the configured parameters. The output is as secret-dependent as a real verification's, so the
    /// fingerprint of a failed secret costs the same to test for unknown users as for known ones.
    pub fn verify_dummy(
        &self,
        password: &Secret,
        like: Option<&str>,
        salt: &[u8; 16],
    ) -> Verification {
        // An imported hash is verified as it is: its salt is in its data, and its cost is the scheme's. A
        // malformed one (the real user's login fails too) falls back to the configured parameters.
        if let Some(like) = like.filter(|like| legacy::is_legacy(like))
            && let Ok(verified) = legacy::verify(password, like)
        {
            return Verification {
                matched: false,
                output: verified.output,
            };
        }
        let like = like.map(|like| legacy::argon2_phc(like).unwrap_or(like));
        let (algorithm, version, params, len) = match like.map(Stored::parse) {
            Some(Ok(stored)) => (
                stored.algorithm,
                stored.version,
                stored.params,
                stored.expected.len(),
            ),
            _ => (
                Algorithm::Argon2id,
                Version::V0x13,
                self.params.clone(),
                DUMMY_OUTPUT_LEN,
            ),
        };
        let mut output = Zeroizing::new(vec![0u8; len]);
        // The result is never a match; an argon2 error (impossible with parameters that parsed) leaves zeros.
        let _ = run(
            algorithm,
            version,
            params,
            password.expose(),
            salt,
            &mut output,
        );
        Verification {
            matched: false,
            output,
        }
    }

    /// Whether a stored hash was made with other parameters than the configured ones, or is not argon2id at
    /// all (every imported `{SCHEME}` hash but `{ARGON2ID}` at these parameters).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        if legacy::is_legacy(stored) {
            return true;
        }
        let phc = legacy::argon2_phc(stored).unwrap_or(stored);
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let current = Params::try_from(&parsed);
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(Version::V0x13.into())
            || !current.is_ok_and(|p| {
                p.m_cost() == self.params.m_cost()
                    && p.t_cost() == self.params.t_cost()
                    && p.p_cost() == self.params.p_cost()
            })
    }
}

/// Verifies `password` against an argon2 PHC string, at the cost of exactly one argon2 run.
fn verify_phc(password: &Secret, phc: &str) -> Result<Verification, PasswordError> {
    let stored = Stored::parse(phc)?;
    let mut output = Zeroizing::new(vec![0u8; stored.expected.len()]);
    run(
        stored.algorithm,
        stored.version,
        stored.params,
        password.expose(),
        stored.salt.as_ref(),
        &mut output,
    )?;
    Ok(Verification {
        matched: ct_eq(&output, &stored.expected),
        output,
    })
}

/// A stored argon2 PHC string, taken apart.
struct Stored {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl Stored {
    fn parse(phc: &str) -> Result<Stored, PasswordError> {
        let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str())
            .map_err(|_| PasswordError::MalformedHash)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|_| PasswordError::MalformedHash)?,
            None => Version::V0x13,
        };
        let params = Params::try_from(&parsed).map_err(|_| PasswordError::MalformedHash)?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(PasswordError::MalformedHash);
        };
        let salt: &[u8] = salt.as_ref();
        Ok(Stored {
            algorithm,
            version,
            params,
            salt: salt.to_vec(),
            expected: expected.as_bytes().to_vec(),
        })
    }
}

/// One argon2 computation into `out`. The common case (argon2id v1.3, one lane, a 16-byte salt, no secret or
/// associated data: every hash mailpass makes) runs in libsodium, the implementation Dovecot's own argon2
/// passdb uses: it measured 10 to 25% faster than the `argon2` crate, and a login is mostly this one call.
/// Anything else runs in the `argon2` crate, with working memory from [`BlockMemory`].
fn run(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), PasswordError> {
    if let (Algorithm::Argon2id, Version::V0x13, 1, Ok(salt16), true, true) = (
        algorithm,
        version,
        params.p_cost(),
        <&[u8; 16]>::try_from(salt),
        params.keyid().is_empty() && params.data().is_empty(),
        out.len() >= 16,
    ) {
        return sys::sodium_argon2id(password, salt16, params.t_cost(), params.m_cost(), out)
            .map_err(|()| PasswordError::Argon2("libsodium could not compute argon2id".into()));
    }
    let mut memory = BlockMemory::new(params.block_count());
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, memory.blocks())
        .map_err(|e| PasswordError::Argon2(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Hasher {
        Hasher::new(&Argon2Config {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 0,
        })
        .expect("params")
    }

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let h = small();
        let phc = h.hash(&Secret::from_slice(b"correct horse")).expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(
            h.verify(&Secret::from_slice(b"correct horse"), &phc)
                .expect("verify")
                .matched
        );
        assert!(
            !h.verify(&Secret::from_slice(b"correct horsf"), &phc)
                .expect("verify")
                .matched
        );
    }

    #[test]
    fn hashes_from_the_reference_implementation_verify() {
        // Made by the argon2 crate's own PasswordHasher with default parameters.
        let reference = Argon2::default()
            .hash_password_with_salt(b"pw", b"saltsaltsaltsalt")
            .expect("hash")
            .to_string();
        let h = small();
        assert!(
            h.verify(&Secret::from_slice(b"pw"), &reference)
                .expect("verify")
                .matched
        );
        assert!(
            h.needs_rehash(&reference),
            "other parameters than configured"
        );
        assert!(
            !Hasher::new(&Argon2Config::default())
                .expect("p")
                .needs_rehash(&reference)
        );
    }

    #[test]
    fn libsodium_and_the_argon2_crate_compute_the_same_argon2id() {
        let salt = *b"0123456789abcdef";
        for (m, t, len) in [(1024, 1, 32), (8192, 3, 32), (19456, 2, 32), (4096, 2, 64)] {
            let mut sodium = [0u8; 64];
            sys::sodium_argon2id(b"pass word", &salt, t, m, &mut sodium[..len]).expect("libsodium");
            let mut rust = [0u8; 64];
            let params = Params::new(m, t, 1, Some(len)).expect("params");
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password_into(b"pass word", &salt, &mut rust[..len])
                .expect("argon2 crate");
            assert_eq!(sodium[..len], rust[..len], "m={m} t={t} len={len}");
        }
    }

    #[test]
    fn hashes_libsodium_cannot_take_still_verify() {
        // Two lanes and an 8-byte salt: the argon2 crate's path.
        for (p, salt) in [(2, &b"saltsaltsaltsalt"[..]), (1, &b"shortslt"[..])] {
            let params = Params::new(1024, 1, p, None).expect("params");
            let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password_with_salt(b"pw", salt)
                .expect("hash")
                .to_string();
            assert!(
                small()
                    .verify(&Secret::from_slice(b"pw"), &phc)
                    .expect("verify")
                    .matched,
                "{phc}"
            );
            assert!(
                !small()
                    .verify(&Secret::from_slice(b"px"), &phc)
                    .expect("verify")
                    .matched,
                "{phc}"
            );
        }
    }

    #[test]
    fn a_malformed_hash_is_an_error_not_a_mismatch() {
        let h = small();
        assert!(
            h.verify(&Secret::from_slice(b"pw"), "$argon2id$garbage")
                .is_err()
        );
        assert!(h.verify(&Secret::from_slice(b"pw"), "").is_err());
    }

    #[test]
    fn imported_hashes_verify_through_the_hasher_and_always_need_a_rehash() {
        let h = small();
        for stored in [
            "{SHA512-CRYPT}$6$RNuGH.xg06KfA23O$A17P2jLFVQF9bVW9rcxUwnaJW6jmDtU4nY61ckr/3Q02DNjh0NCG9SymcMNi2fg5Ay6J4.T67CKhZjYlz8jJB1",
            "{SSHA256}lQwCxIClySI06vOq+4beMHuy3Wst6n/BO7Xmkl6FsHU49QXj",
            "{PLAIN}correct horse",
        ] {
            assert!(
                h.verify(&Secret::from_slice(b"correct horse"), stored)
                    .expect(stored)
                    .matched
            );
            assert!(
                !h.verify(&Secret::from_slice(b"wrong"), stored)
                    .expect(stored)
                    .matched
            );
            assert!(h.needs_rehash(stored), "{stored}");
        }
        assert!(h.verify(&Secret::from_slice(b"pw"), "{SSHA256}!!").is_err());
    }

    #[test]
    fn argon2_behind_a_dovecot_prefix_is_argon2() {
        let h = small();
        let phc = h.hash(&Secret::from_slice(b"pw")).expect("hash");
        for stored in [format!("{{ARGON2ID}}{phc}"), format!("{{argon2id}}{phc}")] {
            assert!(
                h.verify(&Secret::from_slice(b"pw"), &stored)
                    .expect("verify")
                    .matched
            );
            assert!(
                !h.verify(&Secret::from_slice(b"px"), &stored)
                    .expect("verify")
                    .matched
            );
            assert!(!h.needs_rehash(&stored), "same parameters");
        }
        // Made by Dovecot 2.3.19's `doveadm pw -s ARGON2ID -p 'correct horse'` (libsodium).
        let dovecot = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$kE1k9ZkD0npPSPck5w6jHQ$KUMtFjHD9W4stde521wS8LPCxNexhngYKaLRIt7TjqA";
        assert!(
            h.verify(&Secret::from_slice(b"correct horse"), dovecot)
                .expect("v")
                .matched
        );
        assert!(h.needs_rehash(dovecot), "other parameters");
    }

    #[test]
    fn an_unknown_user_imitating_an_imported_hash_never_matches_and_fingerprints_the_attempt() {
        let h = small();
        let like = "{SSHA256}lQwCxIClySI06vOq+4beMHuy3Wst6n/BO7Xmkl6FsHU49QXj";
        let salt = [7u8; 16];
        let right = h.verify_dummy(&Secret::from_slice(b"correct horse"), Some(like), &salt);
        assert!(!right.matched);
        assert_eq!(
            right.output.len(),
            32,
            "a SHA-256 digest, as for the real user"
        );
        let other = h.verify_dummy(&Secret::from_slice(b"other"), Some(like), &salt);
        assert_ne!(*right.output, *other.output);
        // A malformed one falls back to the configured argon2id.
        let broken = h.verify_dummy(&Secret::from_slice(b"x"), Some("{SSHA256}!!"), &salt);
        assert!(!broken.matched);
        assert_eq!(broken.output.len(), DUMMY_OUTPUT_LEN);
    }

    #[test]
    fn zero_parameters_are_rejected() {
        assert!(
            Hasher::new(&Argon2Config {
                memory_kib: 0,
                iterations: 1,
                parallelism: 1,
                max_concurrent: 0,
            })
            .is_err()
        );
    }
}
