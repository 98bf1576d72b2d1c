//! What every bench reads from its environment: `BENCH_ITERS` (the measured rounds) and `MAILPASS_BIN` (the
//! binary measured, by default the release build that `make bench` makes first).

use std::path::{Path, PathBuf};

/// `BENCH_ITERS`, a positive integer, or `default` when it is not set.
pub fn iterations(default: usize) -> Result<usize, String> {
    match std::env::var("BENCH_ITERS") {
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("BENCH_ITERS={s:?}: expected a positive integer")),
        },
        Err(_) => Ok(default),
    }
}

/// `MAILPASS_BIN`, or `target/release/mailpass`; it must exist.
pub fn binary() -> Result<PathBuf, String> {
    let bin = std::env::var_os("MAILPASS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mailpass"));
    if !bin.is_file() {
        return Err(format!(
            "{} not found: run `cargo build --release` (or `make bench`), or set MAILPASS_BIN",
            bin.display()
        ));
    }
    Ok(bin)
}
