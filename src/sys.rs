//! Every `unsafe` block of mailpass lives here: Dovecot's inherited descriptors, raw writes and exits that
//! take no lock, the switch to the database owner's ids, keeping secrets out of core files and other
//! processes' reach, argon2's mapped memory, libsodium's argon2id (the implementation Dovecot itself
//! verifies with), and the system's crypt (libxcrypt), which Dovecot verifies its crypt schemes with.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use argon2::Block;

/// The protocol descriptors already taken (bit n = fd n).
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// Takes ownership of an inherited protocol descriptor (fd 3 or fd 4 of the checkpassword protocol), or `None`
/// when the caller did not open it, it is not one of those, or it was taken already.
pub fn take_inherited_fd(fd: RawFd) -> Option<File> {
    if !(3..=4).contains(&fd) {
        return None;
    }
    let bit = 1u32 << fd;
    if TAKEN.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return None;
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF when `fd` is not open.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
    if !open {
        return None;
    }
    // SAFETY: `fd` is open and nothing else in this process owns it: Dovecot hands fds 3 and 4 over at exec,
    // nothing in mailpass opens them otherwise (they are taken before any file is opened), and `TAKEN` makes
    // sure each is taken once.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// Closes every descriptor from `first` up. Dovecot leaks its auth process's descriptors (duplicates of the
/// fd 3 / fd 4 pipe ends among them) into the helper; a child holding the fd 4 write end would stall the
/// login until it exits.
pub fn close_descriptors_from(first: RawFd) {
    let first = first.max(0) as libc::c_uint;
    // SAFETY: close_range takes plain integers; it only closes descriptors, none of which Rust code owns at
    // this point (the protocol descriptors are below `first`).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9 lack close_range: walk the descriptor table instead.
    let max = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::c_int>().ok())
            .max()
            .unwrap_or(1024),
        Err(_) => 1024,
    };
    for fd in first as libc::c_int..=max {
        // SAFETY: as above; closing a descriptor that is not open fails harmlessly with EBADF.
        unsafe { libc::close(fd) };
    }
}

/// Whether a descriptor is open for writing (the reply pipe must be, before anything is decided).
pub fn is_writable(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL only reads the flags of a descriptor that `file` owns.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    flags != -1 && matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
}

/// Writes all of `bytes` to fd 2 with plain `write` calls: no lock that another thread could hold, no
/// buffering. Errors (a closed stderr) are ignored; a full pipe blocks only the calling thread.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length come from a live slice; write(2) only reads from it.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n == 0
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

/// Ends the process at once with `code`: no exit handlers, no flushing, no locks, whatever other threads hold.
pub fn exit_now(code: u8) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(libc::c_int::from(code)) }
}

/// Makes the effective user and group (and the only supplementary group) `uid`/`gid`, so that what follows
/// can do no more than that user could. Called by root only; the real ids stay root.
pub fn act_as(uid: u32, gid: u32) -> std::io::Result<()> {
    let groups = [gid as libc::gid_t];
    // SAFETY: setgroups reads exactly one gid from a live array; setegid/seteuid take plain integers.
    // The order matters: once the effective uid is not root, the groups can no longer be changed.
    let ok = unsafe {
        libc::setgroups(1, groups.as_ptr()) == 0
            && libc::setegid(gid as libc::gid_t) == 0
            && libc::seteuid(uid as libc::uid_t) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Keeps the secrets in this process's memory inside it, as sshd and sudo do: no core file (`RLIMIT_CORE`
/// 0/0, a hard limit too, so nothing this process runs can raise it again), and not dumpable
/// (`PR_SET_DUMPABLE` 0), which also closes `/proc/PID/mem`, `environ` and ptrace to the other processes of
/// the same user (the Dovecot auth user runs many; its `/proc/PID` files become root's). Both are tried
/// whatever the other does; the first failure is returned. Neither call can fail for these arguments on
/// Linux (they only take away), so an error means a kernel that does not know them. An exec'ed REPLY program
/// is dumpable again (execve resets it) but keeps the core limit of 0.
pub fn protect_memory() -> std::io::Result<()> {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads one rlimit struct from a live local; lowering a limit has no other effect.
    let core = if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers (the unused ones 0) and changes only this process's
    // dumpable flag.
    let dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    let dumpable = if dumpable == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    core.and(dumpable)
}

/// Lowers this thread's CPU priority to at least `nice` (threads started afterwards inherit it); never raises
/// it. For the self-service page, whose requests can wait where a mail login should not.
pub fn lower_priority(nice: i32) -> std::io::Result<()> {
    // SAFETY: getpriority and setpriority take plain integers; PRIO_PROCESS with 0 is the calling thread on
    // Linux. getpriority can return -1 legitimately, so errno is cleared first and checked after.
    unsafe {
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, 0);
        if current == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if current >= nice {
            return Ok(());
        }
        if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Undoes `act_as` for a process whose real user is root: back to root's effective ids, for a file that root
/// chose to write (a backup's destination). Does nothing for anyone else.
pub fn act_as_root_again() -> std::io::Result<()> {
    // SAFETY: getuid and geteuid have no preconditions and cannot fail.
    let (real, effective) = unsafe { (libc::getuid(), libc::geteuid()) };
    if real != 0 || effective == 0 {
        return Ok(());
    }
    let groups = [0 as libc::gid_t];
    // SAFETY: plain integers and one live array, as in `act_as`; the uid comes back first, without which the
    // groups cannot change.
    let ok = unsafe {
        libc::seteuid(0) == 0 && libc::setegid(0) == 0 && libc::setgroups(1, groups.as_ptr()) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A local user's uid and gid by name (`getpwnam_r`), or `None` when the system knows no such user.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).ok()?;
    lookup_user(|pwd, buf, result| {
        // SAFETY: `name` is NUL-terminated and outlives the call; `pwd`, `buf` (with its true length) and
        // `result` are live and writable, and getpwnam_r writes only within them.
        unsafe { libc::getpwnam_r(name.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
    .map(|(uid, gid, _)| (uid, gid))
}

/// A local user's name by uid (`getpwuid_r`), or `None` when the system knows no such user.
pub fn user_name(uid: u32) -> Option<String> {
    lookup_user(|pwd, buf, result| {
        // SAFETY: as in `user_ids`: every pointer is to a live, writable local of the right size.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
    .map(|(_, _, name)| name)
}

/// Runs one of the reentrant passwd lookups with its buffers, and copies out uid, gid and name.
fn lookup_user(
    call: impl FnOnce(&mut libc::passwd, &mut [libc::c_char], &mut *mut libc::passwd) -> libc::c_int,
) -> Option<(u32, u32, String)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `passwd` is a plain C struct of integers and pointers, for which all zeroes is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    if call(&mut pwd, &mut buf, &mut result) != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, which is still alive.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some((pwd.pw_uid, pwd.pw_gid, name.to_string_lossy().into_owned()))
}

/// The effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// argon2 blocks in an anonymous mapping advised to use transparent huge pages (see `password/memory.rs` for why).
pub struct MappedBlocks {
    base: *mut libc::c_void,
    map_len: usize,
    blocks: *mut Block,
    count: usize,
}

const HUGE_PAGE: usize = 2 * 1024 * 1024;

impl MappedBlocks {
    pub fn new(count: usize) -> Option<MappedBlocks> {
        let bytes = count.checked_mul(std::mem::size_of::<Block>())?;
        if bytes == 0 {
            return None;
        }
        // One huge page more than needed, so that the blocks can start on a huge-page boundary.
        let map_len = bytes.checked_add(HUGE_PAGE)?;
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let offset = (HUGE_PAGE - (base as usize % HUGE_PAGE)) % HUGE_PAGE;
        // SAFETY: offset < HUGE_PAGE and offset + bytes <= map_len, so the pointer stays in the mapping.
        let start = unsafe { base.cast::<u8>().add(offset) };
        // SAFETY: [start, start + bytes) lies inside our mapping; madvise only changes how it is backed, and
        // failure (THP disabled) leaves ordinary pages, which is still correct.
        unsafe { libc::madvise(start.cast(), bytes, libc::MADV_HUGEPAGE) };
        Some(MappedBlocks {
            base,
            map_len,
            blocks: start.cast(),
            count,
        })
    }

    pub fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: `blocks` is aligned to a huge page (so to Block's 64 bytes) and points to `count` blocks of
        // zero-filled anonymous memory, a valid bit pattern for Block ([u64; 128]); `&mut self` makes the
        // borrow unique, and the mapping lives until drop.
        unsafe { std::slice::from_raw_parts_mut(self.blocks, self.count) }
    }
}

impl Drop for MappedBlocks {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly what mmap returned, and no slice into it outlives `self`.
        // The kernel zeroes pages before reusing them, so the password-derived blocks do not linger.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

#[link(name = "sodium")]
unsafe extern "C" {
    fn sodium_init() -> libc::c_int;
    fn crypto_pwhash_argon2id(
        out: *mut u8,
        outlen: libc::c_ulonglong,
        passwd: *const libc::c_char,
        passwdlen: libc::c_ulonglong,
        salt: *const u8,
        opslimit: libc::c_ulonglong,
        memlimit: libc::size_t,
        alg: libc::c_int,
    ) -> libc::c_int;
}

/// `crypto_pwhash_argon2id_ALG_ARGON2ID13`: argon2id, version 0x13.
const SODIUM_ARGON2ID13: libc::c_int = 2;

/// Raw argon2id v1.3 with one lane (libsodium's only kind) into `out`. `Err` means libsodium could not run
/// it (initialisation, memory, parameters out of its range): never a verdict on the password.
pub fn sodium_argon2id(
    password: &[u8],
    salt: &[u8; 16],
    iterations: u32,
    memory_kib: u32,
    out: &mut [u8],
) -> Result<(), ()> {
    // SAFETY: sodium_init takes no arguments; it is thread-safe and returns 1 when already initialised.
    if unsafe { sodium_init() } < 0 {
        return Err(());
    }
    let memlimit = (memory_kib as libc::size_t).checked_mul(1024).ok_or(())?;
    // SAFETY: every pointer comes from a live slice with the length passed beside it (an empty password
    // is a dangling but non-null pointer with length 0, which libsodium never reads); the salt is exactly
    // the 16 bytes libsodium reads; `out` is written only within `out.len()` bytes.
    let rc = unsafe {
        crypto_pwhash_argon2id(
            out.as_mut_ptr(),
            out.len() as libc::c_ulonglong,
            password.as_ptr().cast(),
            password.len() as libc::c_ulonglong,
            salt.as_ptr(),
            libc::c_ulonglong::from(iterations),
            memlimit,
            SODIUM_ARGON2ID13,
        )
    };
    if rc == 0 { Ok(()) } else { Err(()) }
}

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_rn(
        phrase: *const libc::c_char,
        setting: *const libc::c_char,
        data: *mut libc::c_void,
        size: libc::c_int,
    ) -> *mut libc::c_char;
}

/// `sizeof(struct crypt_data)` in libxcrypt 4 (output, setting, input, reserved, initialized, internal).
const CRYPT_DATA_SIZE: usize = 384 + 384 + 512 + 767 + 1 + 30720;

/// The system's `crypt(phrase, setting)`, reentrant and without a static buffer: the crypt string, or `None`
/// when crypt refuses (a setting it does not know or cannot parse, a phrase over its 512-byte limit, an
/// interior NUL in either). The working area, which holds password-derived state, is wiped before it is freed.
pub fn crypt(phrase: &[u8], setting: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    use zeroize::Zeroizing;
    if phrase.contains(&0) || setting.contains(&0) {
        return None;
    }
    let mut phrase_c = Zeroizing::new(Vec::with_capacity(phrase.len() + 1));
    phrase_c.extend_from_slice(phrase);
    phrase_c.push(0);
    let mut setting_c = Vec::with_capacity(setting.len() + 1);
    setting_c.extend_from_slice(setting);
    setting_c.push(0);
    // Zero-filled, so `initialized` is 0 as crypt_rn requires on first use.
    let mut data = Zeroizing::new(vec![0u8; CRYPT_DATA_SIZE]);
    // SAFETY: both strings are live, NUL-terminated and free of interior NULs; `data` is a live, writable
    // buffer of exactly the size passed, as large as libxcrypt's struct crypt_data (crypt_rn checks the size
    // and fails with ERANGE if it were smaller). crypt_rn writes only within it and returns either NULL or a
    // pointer into it.
    let out = unsafe {
        crypt_rn(
            phrase_c.as_ptr().cast(),
            setting_c.as_ptr().cast(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as libc::c_int,
        )
    };
    if out.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result points to the NUL-terminated output field inside `data`, which is still alive
    // here and not written to while the bytes are copied out.
    let hashed = unsafe { std::ffi::CStr::from_ptr(out) }.to_bytes();
    // libxcrypt's failure tokens ("*0", "*1") only come from the non-`rn` variants, but never treat one as a hash.
    if hashed.first() == Some(&b'*') {
        return None;
    }
    Some(Zeroizing::new(hashed.to_vec()))
}
