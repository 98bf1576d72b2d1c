//! A machine-wide cap on concurrent argon2 computations, shared by every mailpass process.
//!
//! Dovecot starts one checkpassword process per login, without a limit, and each verification takes 19 MiB and
//! a core: a spray of a few hundred logins at once used to take gigabytes, time most of them out, and lose the
//! failure log that would have banned it. So a process that is about to hash first takes one of `count` slots:
//! an exclusive `flock` on one of the files `DB.argon2.0` .. `DB.argon2.<count-1>` beside the database. The
//! kernel drops a process's locks when it ends, however it ends, so a process killed while hashing (OOM,
//! `kill -9`) frees its slot at once; there is no counter that a crash could leave wrong.
//!
//! When every slot is taken, the waiters queue on `DB.argon2.queue`: a blocking `flock` puts them to sleep in
//! the kernel, and only the one holding the queue polls the slots. That keeps a storm of hundreds of waiters
//! from spending the CPU that the hashing needs. A waiter that gets no slot before its deadline gives up: the
//! caller answers a temporary failure.
//!
//! The queue lock cannot be waited for with a timeout, so a waiter blocks on a thread of its own; one whose
//! caller gave up stays there until it has its slot, and gives it back at once. A login process ends right after
//! its answer, and that thread with it. The long-running page does not end: there, waiters of the same
//! database take turns at the queue, one at a time, and wait for their turn with their deadline; so at most one
//! abandoned thread per database is ever left, and the page holds one place in the machine's queue, not many.
//!
//! Only the paths that hash take a slot: a banned address is refused before, and an accepted app password
//! needs no argon2 at all (see `auth.rs`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::banlist;

/// How often the waiter at the head of the queue looks at the slots again. A verification takes 15 to 40 ms,
/// so a slot stays unused for at most a few percent of that.
const POLL: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("every argon2 slot stayed busy until the deadline")]
    Busy,
    #[error("cannot use the argon2 slot files beside the database: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a process waits for a slot, and until when.
pub struct Gate {
    db: PathBuf,
    /// `[argon2] max_concurrent`: 0 means one per CPU, worked out only when a login hashes.
    max_concurrent: u32,
    deadline: Instant,
}

/// A taken slot; dropping it (or ending the process) gives it back.
pub struct Pass {
    _slot: File,
}

impl Gate {
    /// At most `max_concurrent` computations at once (0: one per CPU) among all processes that use the
    /// database at `db`; a wait for a slot ends at `deadline`.
    pub fn beside(db: &Path, max_concurrent: u32, deadline: Instant) -> Gate {
        Gate {
            db: db.to_path_buf(),
            max_concurrent,
            deadline,
        }
    }

    /// How many slots there are. The CPU count (affinity and cgroup reads) is looked up only here, so that
    /// a login that never hashes (an accepted app password) does not pay for it.
    fn count(&self) -> usize {
        match self.max_concurrent {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// Takes a slot, waiting for one if all are busy.
    pub fn enter(&self) -> Result<Pass, GateError> {
        let mut slots = (0..self.count())
            .map(|n| open(&self.db, &format!(".argon2.{n}")))
            .collect::<std::io::Result<Vec<File>>>()?;
        // Start at a random slot, so that concurrent takers do not all try slot 0 first.
        let start = rand::random_range(0..slots.len());
        slots.rotate_left(start);
        if let Some(slot) = take_free(&mut slots)? {
            return Ok(Pass { _slot: slot });
        }
        let turn = Turn::take(&self.db, self.deadline).ok_or(GateError::Busy)?;
        let queue = open(&self.db, ".argon2.queue")?;
        let (sender, receiver) = mpsc::channel();
        // The queue lock blocks in the kernel and cannot be given a timeout, so it is taken on a thread of its
        // own, which holds this process's turn until it ends (see the module's comment).
        std::thread::Builder::new()
            .name("argon2-queue".into())
            .spawn(move || {
                let _turn = turn;
                let taken = queue.lock().and_then(|()| {
                    loop {
                        if let Some(slot) = take_free(&mut slots)? {
                            break Ok(slot);
                        }
                        std::thread::sleep(POLL);
                    }
                });
                // The queue is released here, as soon as a slot is had, for the next waiter.
                drop(queue);
                let _ = sender.send(taken);
            })?;
        let wait = self.deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(wait) {
            Ok(Ok(slot)) => Ok(Pass { _slot: slot }),
            Ok(Err(e)) => Err(GateError::Io(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(GateError::Busy),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(GateError::Io(std::io::Error::other(
                "the argon2 queue thread ended without an answer",
            ))),
        }
    }
}

/// The databases whose queue one of this process's threads is at.
static AT_THE_QUEUE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static TURN_ENDED: Condvar = Condvar::new();

/// This process's turn at the queue of one database; the next waiter's turn comes when it is dropped.
struct Turn {
    db: PathBuf,
}

impl Turn {
    /// Waits for the turn until `deadline`; `None` if it did not come by then.
    fn take(db: &Path, deadline: Instant) -> Option<Turn> {
        let mut at = lock(&AT_THE_QUEUE);
        while at.iter().any(|d| d == db) {
            let left = deadline.checked_duration_since(Instant::now())?;
            at = TURN_ENDED
                .wait_timeout(at, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        at.push(db.to_path_buf());
        Some(Turn {
            db: db.to_path_buf(),
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        lock(&AT_THE_QUEUE).retain(|d| *d != self.db);
        TURN_ENDED.notify_all();
    }
}

/// A poisoned list is still right: it is changed in single statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks the first free slot of `slots` and takes it out of the list.
fn take_free(slots: &mut Vec<File>) -> std::io::Result<Option<File>> {
    for i in 0..slots.len() {
        match slots[i].try_lock() {
            Ok(()) => return Ok(Some(slots.swap_remove(i))),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(None)
}

/// Opens (creating) one of the lock files beside the database, the way every file there is opened: no
/// symlink followed, owned like the database.
fn open(db: &Path, suffix: &str) -> std::io::Result<File> {
    banlist::open_beside(
        db,
        suffix,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_in(dir: &tempfile::TempDir) -> PathBuf {
        let db = dir.path().join("m.db");
        std::fs::write(&db, b"").expect("db");
        db
    }

    #[test]
    fn a_slot_is_given_back_when_its_pass_is_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = db_in(&dir);
        let soon = || Instant::now() + Duration::from_millis(200);
        let gate = Gate::beside(&db, 1, soon());
        let first = gate.enter().expect("a free slot");
        assert!(matches!(
            Gate::beside(&db, 1, soon()).enter(),
            Err(GateError::Busy)
        ));
        drop(first);
        assert!(Gate::beside(&db, 1, soon()).enter().is_ok());
    }

    #[test]
    fn a_waiter_gets_the_slot_that_frees_up() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = db_in(&dir);
        let held = Gate::beside(&db, 1, Instant::now()).enter().expect("free");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        let waiting = Gate::beside(&db, 1, Instant::now() + Duration::from_secs(30)).enter();
        assert!(waiting.is_ok(), "the waiter got the freed slot");
        releaser.join().expect("join");
    }

    #[test]
    fn waiters_that_give_up_leave_at_most_one_thread_at_the_queue_and_the_slot_still_frees() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = db_in(&dir);
        let held = Gate::beside(&db, 1, Instant::now()).enter().expect("free");
        for _ in 0..5 {
            let soon = Instant::now() + Duration::from_millis(50);
            assert!(matches!(
                Gate::beside(&db, 1, soon).enter(),
                Err(GateError::Busy)
            ));
        }
        // Each queue thread holds its turn until it ends: one turn taken means one thread left.
        let turns = lock(&AT_THE_QUEUE).iter().filter(|d| **d == db).count();
        assert_eq!(turns, 1, "5 waiters gave up");
        drop(held);
        let later = Gate::beside(&db, 1, Instant::now() + Duration::from_secs(30)).enter();
        assert!(
            later.is_ok(),
            "the abandoned waiter gave the slot back and the next one got it"
        );
    }

    #[test]
    fn count_slots_can_be_held_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = db_in(&dir);
        let now = Instant::now;
        let passes: Vec<Pass> = (0..3)
            .map(|_| Gate::beside(&db, 3, now()).enter().expect("free"))
            .collect();
        assert!(matches!(
            Gate::beside(&db, 3, now()).enter(),
            Err(GateError::Busy)
        ));
        drop(passes);
    }
}
