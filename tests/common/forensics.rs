//! What a thief of the database can do with what it holds: the keyed tags and argon2 outputs, recomputed
//! the way mailpass makes them, to prove what each stored value costs to attack.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Env;

pub const FINGERPRINT_V2: &[u8] = b"mailpass failed-secret v2 (argon2 output)";
pub const DUMMY_SALT: &[u8] = b"mailpass dummy-salt v1";

pub fn db(env: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open(&env.db).expect("open db")
}

/// (reason, fingerprint, counted) of every failure row, oldest first.
pub fn failure_rows(env: &Env) -> Vec<(String, Option<Vec<u8>>, bool)> {
    let db = db(env);
    let mut stmt = db
        .prepare("SELECT reason, fingerprint, counted FROM failures ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

pub fn tag_key(env: &Env) -> Vec<u8> {
    db(env)
        .query_row("SELECT value FROM meta WHERE key = 'tag_key'", [], |r| {
            r.get(0)
        })
        .expect("tag key")
}

/// HMAC-SHA256 under `key` of a label and length-prefixed parts: how mailpass's keyed tags are made.
pub fn keyed_full(key: &[u8], label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(label);
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The same, cut to the 8 bytes that a fingerprint keeps.
pub fn keyed(key: &[u8], label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    keyed_full(key, label, parts)[..8].to_vec()
}

/// argon2 of `secret` at the parameters of `phc`, under `salt` (the PHC's own when `None`).
pub fn argon2_output(phc: &str, secret: &[u8], salt: Option<&[u8]>) -> Vec<u8> {
    let parsed = PasswordHash::new(phc).expect("phc");
    let params = Params::try_from(&parsed).expect("params");
    let own_salt = parsed.salt.expect("salt");
    let salt = salt.unwrap_or(own_salt.as_ref());
    let mut out = vec![0u8; parsed.hash.expect("hash").len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret, salt, &mut out)
        .expect("argon2");
    out
}
