//! The floor of the benchmarks: one warm argon2id verification at mailpass's default parameters (m=19456 KiB,
//! t=2, p=1) in a long-lived helper process, which is the bench program itself started again with
//! `MAILPASS_BENCH_ROLE=floor-sodium` (or `floor-argon2`). A bench's `main` calls `serve_role` first.
//!
//! The helper never forks: every fork write-protects the forking process's memory, and the next verification then
//! takes one page fault per page of argon2's 19 MiB working memory. Measured in a bench process between spawns,
//! the "warm" verification was about 2.5 ms (11 %) slower than in a process that does not fork, which would
//! flatter every ratio.
//!
//! "Warm" needs care too: `verify_password` allocates argon2's blocks (64-byte aligned) on every call, and with
//! glibc's malloc the heap was seen to grow by 19 MiB of fresh, faulting pages per verification for the first
//! eight or so (about 28 ms each instead of 23) before it settled at about 150 MiB and reused its memory. The
//! helper verifies until its resident size stops growing before it answers.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

const ROLE_VAR: &str = "MAILPASS_BENCH_ROLE";

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("bench: error: {msg}");
    std::process::exit(1);
}

/// Runs the floor helper if this process was started as one (and returns true when it has finished).
pub fn serve_role() -> bool {
    match std::env::var(ROLE_VAR).as_deref() {
        Ok("floor-sodium") => floor_helper(sodium::verifier()),
        Ok("floor-argon2") => floor_helper(argon2_crate_verifier()),
        _ => return false,
    }
    true
}

/// This process's resident and transparent-huge-page memory, in KiB.
fn memory_kib() -> (u64, u64) {
    let (mut rss, mut huge) = (0, 0);
    if let Ok(text) = fs::read_to_string("/proc/self/smaps_rollup") {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let value = value.parse().unwrap_or(0);
            match key {
                "Rss:" => rss = value,
                "AnonHugePages:" => huge = value,
                _ => {}
            }
        }
    }
    (rss, huge)
}

const FLOOR_PASSWORD: &[u8] = b"floor password";

/// One verification of `FLOOR_PASSWORD` against a hash made once, at the default parameters.
type Verifier = Box<dyn Fn() -> Result<(), String>>;

fn argon2_crate_verifier() -> Verifier {
    let argon2 = Argon2::default();
    let phc = argon2
        .hash_password(FLOOR_PASSWORD)
        .unwrap_or_else(|e| die(format_args!("floor: hashing: {e}")))
        .to_string();
    Box::new(move || {
        argon2
            .verify_password(FLOOR_PASSWORD, phc.as_str())
            .map_err(|e| e.to_string())
    })
}

/// libsodium's argon2id, linked as mailpass links it. The bench's only unsafe code: three C calls.
#[allow(unsafe_code)]
mod sodium {
    use super::{FLOOR_PASSWORD, Verifier, die};

    #[link(name = "sodium")]
    unsafe extern "C" {
        fn sodium_init() -> i32;
        fn crypto_pwhash_argon2id_str(
            out: *mut u8,
            passwd: *const u8,
            passwdlen: u64,
            opslimit: u64,
            memlimit: usize,
        ) -> i32;
        fn crypto_pwhash_argon2id_str_verify(
            str: *const u8,
            passwd: *const u8,
            passwdlen: u64,
        ) -> i32;
    }

    /// crypto_pwhash_argon2id_STRBYTES.
    const STR_BYTES: usize = 128;

    pub fn verifier() -> Verifier {
        let (m, t) = (
            argon2::Params::DEFAULT_M_COST,
            argon2::Params::DEFAULT_T_COST,
        );
        let mut phc = [0u8; STR_BYTES];
        // SAFETY: `phc` has the STRBYTES libsodium writes (a NUL-terminated string); the password pointer and
        // length come from one slice.
        let made = unsafe {
            sodium_init() >= 0
                && crypto_pwhash_argon2id_str(
                    phc.as_mut_ptr(),
                    FLOOR_PASSWORD.as_ptr(),
                    FLOOR_PASSWORD.len() as u64,
                    u64::from(t),
                    m as usize * 1024,
                ) == 0
        };
        if !made {
            die("floor: libsodium could not hash");
        }
        Box::new(move || {
            // SAFETY: `phc` is the NUL-terminated string libsodium wrote above; the password as above.
            let rc = unsafe {
                crypto_pwhash_argon2id_str_verify(
                    phc.as_ptr(),
                    FLOOR_PASSWORD.as_ptr(),
                    FLOOR_PASSWORD.len() as u64,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err("libsodium: verification failed".into())
            }
        })
    }
}

/// The floor helper's end of the pipe protocol: first a line `ready WARMUPS RSS_KIB HUGE_KIB`, then for each
/// line in, one verification and its nanoseconds out.
fn floor_helper(verifier: Verifier) {
    let verify = || {
        let start = Instant::now();
        let verified = verifier();
        let nanos = start.elapsed().as_nanos();
        if let Err(e) = verified {
            die(format_args!("floor: verification failed: {e}"));
        }
        nanos
    };
    // Verify until the heap stops growing (three verifications in a row without new resident memory).
    let (mut warmups, mut steady, mut last) = (0, 0, memory_kib().0);
    while steady < 3 && warmups < 40 {
        verify();
        warmups += 1;
        let rss = memory_kib().0;
        steady = if rss > last + 1024 { 0 } else { steady + 1 };
        last = last.max(rss);
    }
    let (rss, huge) = memory_kib();
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "ready {warmups} {rss} {huge}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return;
    }
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let nanos = verify();
        if writeln!(stdout, "{nanos}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

pub struct Floor {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    /// What the helper said when it was ready: its warm-up verifications, resident and huge-page KiB.
    pub ready: String,
}

impl Floor {
    /// Starts a floor helper in `role` (`floor-sodium`, `floor-argon2`) and waits until it is warm.
    pub fn start(role: &str) -> Floor {
        let exe = std::env::current_exe().unwrap_or_else(|e| die(format_args!("current_exe: {e}")));
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_VAR, role)
            .env_remove("GLIBC_TUNABLES")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| die(format_args!("cannot start the floor helper: {e}")));
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            die("floor helper without pipes");
        };
        let mut floor = Floor {
            child,
            to,
            from: BufReader::new(from),
            ready: String::new(),
        };
        let line = floor.read_line();
        let words: Vec<u64> = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| die(format_args!("floor helper said {line:?}")))
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [warmups, rss, huge] = words[..] {
            floor.ready = format!(
                "warm after {warmups} verifications, resident {} MiB, on huge pages {} MiB",
                rss / 1024,
                huge / 1024
            );
        }
        floor
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(n) if n > 0 => line.trim().to_string(),
            _ => die("the floor helper died"),
        }
    }

    /// One warm verification in the helper, in milliseconds.
    pub fn measure(&mut self) -> f64 {
        if writeln!(self.to, "v")
            .and_then(|()| self.to.flush())
            .is_err()
        {
            die("the floor helper died");
        }
        let line = self.read_line();
        let nanos: u64 = line
            .parse()
            .unwrap_or_else(|_| die(format_args!("floor helper said {line:?}")));
        nanos as f64 / 1e6
    }

    pub fn stop(self) {
        let Floor {
            mut child,
            to,
            from,
            ..
        } = self;
        drop(to);
        drop(from);
        let _ = child.wait();
    }
}
