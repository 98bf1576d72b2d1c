//! App passwords: generated, never chosen; 16 symbols of Crockford base32 (80 bits) in four groups of four.

use crate::crockford;
use crate::secret::Secret;

pub const SYMBOLS: usize = 16;

/// A fresh app password as shown to the user once (`xxxx-xxxx-xxxx-xxxx`).
pub fn generate() -> Secret {
    crockford::random_grouped(SYMBOLS)
}

/// The canonical form of what a client sent, if it has the shape of an app password.
pub fn normalize(sent: &Secret) -> Option<Secret> {
    crockford::normalize(sent.expose(), SYMBOLS)
}
