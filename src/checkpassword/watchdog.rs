//! The time limit of one checkpassword run. Dovecot never times a helper out, so a hung database (or a
//! stalled log pipe) would hang the login for minutes: mailpass ends itself with a temporary failure.
//!
//! The limit starts before the config is read (with the default), and the config can only move it. When it
//! runs out, the timeout line is written from a thread of its own with a raw `write`, so that neither Rust's
//! stderr lock nor a full pipe that the main thread is stuck on can hold the exit back; after a short grace
//! the process ends with `_exit` whatever that write is doing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::logline::{Level, LogLine};
use crate::sys;

/// The exit code of a temporary failure, for a password check and a lookup alike.
const TEMPFAIL: u8 = 111;

/// How long the timeout line may take to write before the process ends without it.
const LOG_GRACE: Duration = Duration::from_millis(500);

/// How often the watchdog looks at the (movable) deadline.
const TICK: Duration = Duration::from_millis(50);

/// The limit in milliseconds, counted from `start`.
static LIMIT_MS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Starts the limit: `limit` from now.
pub fn start(limit: Duration) -> std::io::Result<()> {
    set_limit(limit);
    let started = Instant::now();
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                let limit = Duration::from_millis(LIMIT_MS.load(Ordering::Relaxed));
                let elapsed = started.elapsed();
                if elapsed >= limit {
                    break;
                }
                std::thread::sleep((limit - elapsed).min(TICK));
            }
            give_up();
        })
        .map(drop)
}

/// Moves the limit (from the config): counted from the start of the run, like the first one.
pub fn set_limit(limit: Duration) {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    LIMIT_MS.store(ms, Ordering::Relaxed);
}

fn give_up() -> ! {
    let (done, logged) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("watchdog-log".into())
        .spawn(move || {
            LogLine::new()
                .field("result", "tempfail")
                .field("reason", "timeout")
                .emit(Level::Error);
            let _ = done.send(());
        });
    let _ = logged.recv_timeout(LOG_GRACE);
    sys::exit_now(TEMPFAIL)
}
