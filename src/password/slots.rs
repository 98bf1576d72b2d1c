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
//! The queue lock cannot be waited for with a timeout, so it is waited for on a thread; a waiter whose deadline
//! passes answers and leaves that thread behind. A login process ends right after its answer, and the thread
//! with it. The long-running page does not end, so within a process the waiters of a database share one such
//! thread, which hands out slots in the order the waiters came and skips those whose deadline passed: however
//! many requests time out, one thread is left, and a slot whose waiter gave up goes to the next. At the head of
//! the machine's queue it takes at most one slot per slot file for the waiters in line before it lets go, so
//! that the page does not keep mail logins waiting in the kernel behind a crowd of its own.
//!
//! Only the paths that hash take a slot: a banned address is refused before, and an accepted app password
//! needs no argon2 at all (see `auth.rs`).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
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
        let count = self.count();
        if let Some(slot) = take_free(&mut open_slots(&self.db, count)?)? {
            return Ok(Pass { _slot: slot });
        }
        if Instant::now() >= self.deadline {
            return Err(GateError::Busy);
        }
        let (sender, receiver) = mpsc::channel();
        Waiters::join(
            &self.db,
            count,
            Waiter {
                delivery: sender,
                deadline: self.deadline,
            },
        )?;
        let wait = self.deadline.saturating_duration_since(Instant::now());
        let answer = match receiver.recv_timeout(wait) {
            Ok(answer) => Some(answer),
            // One that came right at the deadline is used rather than thrown away.
            Err(mpsc::RecvTimeoutError::Timeout) => receiver.try_recv().ok(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(GateError::Io(std::io::Error::other(
                    "the argon2 queue thread ended without an answer",
                )));
            }
        };
        match answer {
            Some(Ok(slot)) => Ok(Pass { _slot: slot }),
            Some(Err(e)) => Err(GateError::Io(e)),
            None => Err(GateError::Busy),
        }
    }
}

/// A waiter of this process: where its slot goes, and until when it waits.
struct Waiter {
    delivery: mpsc::Sender<std::io::Result<File>>,
    deadline: Instant,
}

/// This process's waiters, per database, in the order they came; a database is listed while its queue thread
/// runs.
static WAITERS: Mutex<Vec<(PathBuf, VecDeque<Waiter>)>> = Mutex::new(Vec::new());

/// The waiters of this process at the queue of one database, served by one thread.
struct Waiters;

impl Waiters {
    /// Puts a waiter in line; starts the database's queue thread, for `count` slots, if none runs.
    fn join(db: &Path, count: usize, waiter: Waiter) -> Result<(), GateError> {
        let mut all = lock(&WAITERS);
        if let Some((_, line)) = all.iter_mut().find(|(d, _)| d == db) {
            line.push_back(waiter);
            return Ok(());
        }
        let queue = open(db, ".argon2.queue")?;
        let owned = db.to_path_buf();
        // The queue lock blocks in the kernel and cannot be given a timeout, so it is taken on a thread of its
        // own (see the module's comment).
        std::thread::Builder::new()
            .name("argon2-queue".into())
            .spawn(move || Waiters::serve(&owned, queue, count))?;
        all.push((db.to_path_buf(), VecDeque::from([waiter])));
        Ok(())
    }

    /// The queue thread: a slot for each waiter in turn; ends when no waiter is left. A slot whose waiter gave
    /// up goes to the next one.
    fn serve(db: &Path, queue: File, count: usize) {
        let _line = StrandGuard(db);
        let mut turn = Turn {
            queue,
            held_for: 0,
            spare: None,
        };
        while let Some(waiter) = Waiters::next(db) {
            let slot = turn.slot(db, count);
            if let Err(mpsc::SendError(Ok(slot))) = waiter.delivery.send(slot) {
                turn.spare = Some(slot);
            }
        }
        // Dropping `turn.queue` closes it, which releases the queue lock if it is still held.
    }

    /// How many waiters of `db` are in line (not counting the one being served).
    fn in_line(db: &Path) -> usize {
        lock(&WAITERS)
            .iter()
            .find(|(d, _)| d == db)
            .map_or(0, |(_, line)| line.len())
    }

    /// The next waiter of `db`'s line that still waits; none (and the database taken off the list, in the same
    /// step) when the line is empty, so that a waiter who comes later starts a new thread.
    fn next(db: &Path) -> Option<Waiter> {
        let mut all = lock(&WAITERS);
        let i = all.iter().position(|(d, _)| d == db)?;
        let now = Instant::now();
        while let Some(waiter) = all[i].1.pop_front() {
            if waiter.deadline > now {
                return Some(waiter);
            }
        }
        all.swap_remove(i);
        None
    }
}

/// The queue thread's place in the machine's queue.
struct Turn {
    queue: File,
    /// How many more slots it takes before it lets go of the queue.
    held_for: usize,
    /// A slot whose waiter gave up, for the next one.
    spare: Option<File>,
}

impl Turn {
    /// A slot for the next waiter: the spare one, or one waited for at the head of the machine's queue. At the
    /// head, the thread takes a slot for each waiter in line then (up to one per slot, so that mail logins
    /// waiting in the kernel get their turn) before it lets go: each would have had a place of its own by then.
    fn slot(&mut self, db: &Path, count: usize) -> std::io::Result<File> {
        if let Some(slot) = self.spare.take() {
            self.took_one();
            return Ok(slot);
        }
        if self.held_for == 0 {
            self.queue.lock()?;
            self.held_for = (1 + Waiters::in_line(db)).min(count);
        }
        let taken = (|| {
            // Opened anew for each slot: a slot handed out leaves with its file.
            let mut slots = open_slots(db, count)?;
            loop {
                if let Some(slot) = take_free(&mut slots)? {
                    return Ok(slot);
                }
                std::thread::sleep(POLL);
            }
        })();
        match taken {
            Ok(slot) => {
                self.took_one();
                Ok(slot)
            }
            Err(e) => {
                self.held_for = 0;
                let _ = self.queue.unlock();
                Err(e)
            }
        }
    }

    fn took_one(&mut self) {
        if self.held_for > 0 {
            self.held_for -= 1;
            if self.held_for == 0 {
                // Failing to unlock only keeps the queue until the thread ends and closes it.
                let _ = self.queue.unlock();
            }
        }
    }
}

/// Takes the database off the list if its queue thread panics, so that the waiters in line get an answer (the
/// line's senders are dropped) and the next waiter starts a new thread.
struct StrandGuard<'a>(&'a Path);

impl Drop for StrandGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&WAITERS).retain(|(d, _)| d != self.0);
        }
    }
}

/// A poisoned list is still right: it is changed in single statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `count` slot files of `db`, starting at a random one, so that concurrent takers do not all try slot 0
/// first.
fn open_slots(db: &Path, count: usize) -> std::io::Result<Vec<File>> {
    let mut slots = (0..count)
        .map(|n| open(db, &format!(".argon2.{n}")))
        .collect::<std::io::Result<Vec<File>>>()?;
    let start = rand::random_range(0..slots.len());
    slots.rotate_left(start);
    Ok(slots)
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
    fn waiters_that_give_up_leave_one_thread_at_the_queue_and_the_next_waiter_gets_the_slot() {
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
        // A database is listed while its queue thread runs: one entry is one thread, and the waiters that came
        // while it served the first are in its line.
        let lines: Vec<usize> = lock(&WAITERS)
            .iter()
            .filter(|(d, _)| *d == db)
            .map(|(_, line)| line.len())
            .collect();
        assert!(
            lines.len() == 1 && lines[0] >= 4,
            "5 waiters gave up: {lines:?}"
        );
        drop(held);
        let later = Gate::beside(&db, 1, Instant::now() + Duration::from_secs(30)).enter();
        assert!(
            later.is_ok(),
            "the abandoned waiter gave the slot back and the next one got it"
        );
    }

    #[test]
    fn waiters_of_one_process_each_get_the_slot_in_turn() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = db_in(&dir);
        let held = Gate::beside(&db, 1, Instant::now()).enter().expect("free");
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let pass =
                        Gate::beside(&db, 1, Instant::now() + Duration::from_secs(30)).enter();
                    std::thread::sleep(Duration::from_millis(20));
                    pass.is_ok()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        let served = waiters
            .into_iter()
            .map(|w| w.join().expect("join"))
            .filter(|ok| *ok)
            .count();
        assert_eq!(served, 4, "every waiter got the one slot in turn");
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
