//! What the benchmarks check in the database before they measure.

use std::fs;
use std::path::Path;

/// Counts the PHC strings in the database files made with the expected parameters and with any others, as a
/// check that mailpass honoured its config (rows compare against their reference only at equal parameters).
pub fn phc_params_in_db(db: &Path, expected: &str) -> (usize, usize) {
    let (mut same, mut other) = (0, 0);
    for suffix in ["", "-wal"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let Ok(bytes) = fs::read(&path) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        for (i, _) in text.match_indices("$argon2id$") {
            if text[i..].starts_with(expected) {
                same += 1;
            } else {
                other += 1;
            }
        }
    }
    (same, other)
}
