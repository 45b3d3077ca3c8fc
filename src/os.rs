//! Every operating-system call shmq makes: segment files, mappings, locks, futexes.
//!
//! Nothing above this module calls `libc` directly.
//!
//! ## Liveness: open-file-description locks
//! A process attached to a segment holds a write lock (`fcntl(F_OFD_SETLK)`) on one byte of the
//! segment file: the first byte of its participant entry (and of each subscriber entry it
//! holds). The kernel releases such a lock when the last descriptor of the open file
//! description is closed, which happens when the process exits or dies, however it dies. A peer
//! asks whether the byte is locked with `F_OFD_GETLK` on a descriptor of its own: that needs no
//! `/proc`, no free descriptor, no permission to signal the holder, and works across pid
//! namespaces. An error of the query counts as "held" (`Holder::Unknown`): shmq never judges a
//! process dead when it cannot tell.
//!
//! Locks of one open file description do not conflict with each other, so every attachment
//! opens the file twice: one description holds its locks, the other asks about everybody's
//! (its own included).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::error::{Error, Result};

/// The segment directory: `$SHMQ_DIR` if set and not empty, else `/dev/shm`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("SHMQ_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/dev/shm"),
    }
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidConfig(format!("path {} contains a NUL byte", path.display())))
}

/// A shared, read-write mapping of a segment file. Unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access through it goes through atomics or
// through raw-pointer copies whose synchronisation the ring algorithms establish.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Start of the mapping (page aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a mapping shmq made).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Mapping {
    /// Writes the pages holding bytes `from..to` back to the file and waits for the device
    /// (`msync(MS_SYNC)`): what a crash of the machine must not lose.
    pub(crate) fn sync(&self, from: usize, to: usize) -> Result<()> {
        let page = 4096;
        let start = from / page * page;
        let end = to.min(self.len);
        if end <= start {
            return Ok(());
        }
        // SAFETY: start..end lies inside the mapping (end clamped to len, start page aligned and
        // below end), which stays mapped while `self` lives.
        let rc = unsafe { libc::msync(self.ptr.as_ptr().add(start).cast(), end - start, libc::MS_SYNC) };
        if rc != 0 {
            return Err(Error::io("msync", io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// What a lock query found on a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Another open file description holds a lock on it: its process lives.
    Held,
    /// Nobody holds a lock on it.
    Free,
    /// The query failed; treated as [`Holder::Held`] by every decision.
    Unknown,
}

/// Lock kinds for [`File::lock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Shared (`F_RDLCK`).
    Read,
    /// Exclusive (`F_WRLCK`).
    Write,
}

/// An open segment file (read-write, close-on-exec). Closing it (on drop) releases every lock
/// taken through it.
#[derive(Debug)]
pub(crate) struct File {
    fd: libc::c_int,
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by open and is closed exactly once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// The metadata of an open file that shmq checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits and type.
    pub mode: u32,
}

fn open_error(path: &Path, what: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { path: path.display().to_string() },
        Some(libc::ENOENT) if what == "create" => {
            Error::io(format!("create {} (does the segment directory exist?)", path.display()), e)
        }
        _ => Error::io(format!("{what} {}", path.display()), e),
    }
}

impl File {
    /// Opens an existing file. `Ok(None)` if there is none.
    pub(crate) fn open(path: &Path) -> Result<Option<File>> {
        let c = cpath(path)?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(None);
            }
            return Err(open_error(path, "open", e));
        }
        Ok(Some(File { fd }))
    }

    /// Creates a new file with exactly `mode` (the umask does not apply). `Ok(None)` if a file
    /// of that name exists.
    pub(crate) fn create_new(path: &Path, mode: u32) -> Result<Option<File>> {
        let c = cpath(path)?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                return Ok(None);
            }
            return Err(open_error(path, "create", e));
        }
        let f = File { fd };
        // The umask may have cleared bits of `mode`; set it exactly.
        // SAFETY: fd is open.
        if unsafe { libc::fchmod(f.fd, mode as libc::mode_t) } != 0 {
            let e = Error::io("fchmod", io::Error::last_os_error());
            let _ = unlink(path);
            return Err(e);
        }
        Ok(Some(f))
    }

    /// Type, size, owner and inode.
    pub(crate) fn stat(&self) -> Result<Stat> {
        // SAFETY: an all-zero stat is a valid value; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open, `st` is a valid out-pointer.
        if unsafe { libc::fstat(self.fd, &mut st) } != 0 {
            return Err(Error::io("fstat", io::Error::last_os_error()));
        }
        Ok(Stat {
            ino: st.st_ino,
            dev: st.st_dev,
            size: st.st_size.max(0) as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
        })
    }

    /// Whether `path` still names this file (same device and inode).
    pub(crate) fn is_at(&self, path: &Path) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let me = self.stat()?;
        Ok(match std::fs::symlink_metadata(path) {
            Ok(m) => m.ino() == me.ino && m.dev() == me.dev,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
        })
    }

    /// Reads exactly `buf.len()` bytes at `offset`; `Ok(false)` if the file is shorter.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<bool> {
        let mut done = 0;
        while done < buf.len() {
            // SAFETY: the destination is the unfilled part of `buf`, valid for writes.
            let n = unsafe {
                libc::pread(
                    self.fd,
                    buf[done..].as_mut_ptr().cast(),
                    buf.len() - done,
                    (offset + done as u64) as libc::off_t,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("read segment header", e));
            }
            if n == 0 {
                return Ok(false);
            }
            done += n as usize;
        }
        Ok(true)
    }

    /// Reserves `len` bytes (so that a full directory fails here, not with SIGBUS later).
    pub(crate) fn reserve(&self, len: u64, dir: &Path) -> Result<()> {
        // SAFETY: fd is open; posix_fallocate returns an error number instead of setting errno.
        let rc = unsafe { libc::posix_fallocate(self.fd, 0, len as libc::off_t) };
        match rc {
            0 => Ok(()),
            libc::ENOSPC | libc::EFBIG => Err(Error::NoSpace { dir: dir.display().to_string(), bytes: len }),
            _ => Err(Error::io("posix_fallocate", io::Error::from_raw_os_error(rc))),
        }
    }

    /// Maps the first `len` bytes shared and read-write, pre-faulted (`MAP_POPULATE`) so that
    /// the hot path takes no page faults.
    pub(crate) fn map(&self, len: usize) -> Result<Mapping> {
        self.map_with(len, libc::MAP_POPULATE)
    }

    /// Maps the first `len` bytes shared and read-write, faulted in as they are touched (a
    /// journal file: written front to back, most of it not yet).
    pub(crate) fn map_lazily(&self, len: usize) -> Result<Mapping> {
        self.map_with(len, 0)
    }

    fn map_with(&self, len: usize, flags: libc::c_int) -> Result<Mapping> {
        // SAFETY: mapping a file we hold open; the kernel validates fd and length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | flags,
                self.fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::io("mmap segment", io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| Error::io("mmap segment", io::Error::other("null")))?;
        Ok(Mapping { ptr, len })
    }

    fn flock(kind: libc::c_short, offset: u64) -> libc::flock {
        // SAFETY: an all-zero flock is a valid value (l_pid must be 0 for OFD locks).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = offset as libc::off_t;
        fl.l_len = 1;
        fl
    }

    fn fcntl_lock(&self, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
        loop {
            // SAFETY: fd is open and `fl` is a valid, initialised flock for the whole call.
            if unsafe { libc::fcntl(self.fd, cmd, fl as *mut libc::flock) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Takes a lock on byte `offset` without waiting. `Ok(false)` if another open file
    /// description holds a conflicting lock. Taking a lock this description already holds, in
    /// the other mode, converts it.
    pub(crate) fn lock(&self, offset: u64, kind: Lock) -> Result<bool> {
        let t = match kind {
            Lock::Read => libc::F_RDLCK,
            Lock::Write => libc::F_WRLCK,
        };
        let mut fl = Self::flock(t as libc::c_short, offset);
        match self.fcntl_lock(libc::F_OFD_SETLK, &mut fl) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(Error::io(
                "fcntl(F_OFD_SETLK): this kernel lacks open-file-description locks (Linux 3.15 or later is needed)",
                e,
            )),
            Err(e) => Err(Error::io("fcntl(F_OFD_SETLK)", e)),
        }
    }

    /// Releases this description's lock on byte `offset` (if any).
    pub(crate) fn unlock(&self, offset: u64) {
        let mut fl = Self::flock(libc::F_UNLCK as libc::c_short, offset);
        // Unlocking cannot fail for a valid fd and range; if it did, the lock would go with the
        // descriptor.
        let _ = self.fcntl_lock(libc::F_OFD_SETLK, &mut fl);
    }

    /// Whether another open file description holds a lock on byte `offset`.
    pub(crate) fn holder(&self, offset: u64) -> Holder {
        self.holder_of(Self::flock(libc::F_WRLCK as libc::c_short, offset))
    }

    /// Whether another open file description holds a lock on any byte from `offset` on.
    pub(crate) fn holder_from(&self, offset: u64) -> Holder {
        let mut fl = Self::flock(libc::F_WRLCK as libc::c_short, offset);
        fl.l_len = 0; // to the end of the file, and beyond
        self.holder_of(fl)
    }

    fn holder_of(&self, mut fl: libc::flock) -> Holder {
        match self.fcntl_lock(libc::F_OFD_GETLK, &mut fl) {
            Ok(()) if fl.l_type == libc::F_UNLCK as libc::c_short => Holder::Free,
            Ok(()) => Holder::Held,
            Err(_) => Holder::Unknown,
        }
    }
}

/// Makes `to` a second name of the file `from`. `Ok(false)` if `to` exists (nothing changed).
pub(crate) fn link(from: &Path, to: &Path) -> Result<bool> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: both are valid NUL-terminated paths.
    if unsafe { libc::link(f.as_ptr(), t.as_ptr()) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        return Ok(false);
    }
    Err(open_error(to, "link", e))
}

/// Removes a file. `Ok(false)` if it did not exist.
pub fn unlink(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(Error::PermissionDenied { path: path.display().to_string() })
        }
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process has `gid` as its effective or a supplementary group.
pub(crate) fn in_group(gid: u32) -> bool {
    // SAFETY: getegid has no arguments and cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let mut groups = [0 as libc::gid_t; 256];
    // SAFETY: `groups` has room for 256 entries, the size passed.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    n > 0 && groups[..n as usize].contains(&gid)
}

/// Sleeps while `*word == expected`, at most `timeout`. Returns on wake-up, mismatch, timeout or
/// signal alike: callers re-check their condition (spurious wake-ups are allowed).
///
/// The futex is shared (no `FUTEX_PRIVATE_FLAG`) so that it works across processes.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned 32-bit location for the duration of the call; the
    // kernel only reads it. A bad value in shared memory just makes the call return EAGAIN.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Most futex words one [`futex_waitv`] waits on (`FUTEX_WAITV_MAX`).
pub const FUTEX_WAITV_MAX: usize = 128;

/// `struct futex_waitv` (linux/futex.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit futex word. (Not `FUTEX2_PRIVATE`: the words are shared.)
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Whether the kernel has `futex_waitv` (Linux 5.16+), asked once.
pub fn futex_waitv_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: zero waiters and no timeout: the kernel reads nothing and answers EINVAL if
        // it has the call, ENOSYS if not.
        let r = unsafe { libc::syscall(libc::SYS_futex_waitv, std::ptr::null::<FutexWaitv>(), 0u32, 0u32, 0usize, 0u32) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
    })
}

/// Sleeps until one of the futex words in `waits` no longer holds its expected value (or is
/// woken), or `timeout` passes: `futex_waitv(2)`, at most [`FUTEX_WAITV_MAX`] words, shared
/// (not private) futexes. Returns false if the kernel refused (an unsupported kernel, or too
/// many words): the caller falls back to sleeping on one word at a time.
pub fn futex_waitv<'a>(waits: impl IntoIterator<Item = (&'a AtomicU32, u32)>, timeout: Duration) -> bool {
    let mut v = [FutexWaitv { val: 0, uaddr: 0, flags: 0, reserved: 0 }; FUTEX_WAITV_MAX];
    let mut n = 0;
    for (word, expected) in waits {
        let Some(slot) = v.get_mut(n) else { return false };
        *slot = FutexWaitv { val: u64::from(expected), uaddr: word.as_ptr() as u64, flags: FUTEX2_SIZE_U32, reserved: 0 };
        n += 1;
    }
    if n == 0 {
        return false;
    }
    // futex_waitv takes an absolute timeout on the given clock.
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let end = Duration::new(now.tv_sec as u64, now.tv_nsec as u32).saturating_add(timeout);
    let ts = libc::timespec {
        tv_sec: end.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: end.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the first `n` entries of `v` hold the addresses of valid, aligned 32-bit words,
    // borrowed (`'a`) for the duration of the call; the kernel only reads them. `ts` is a valid timespec. A bad value in shared memory only makes the call return
    // EAGAIN at once.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            n as u32,
            0u32,
            &ts as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    r >= 0 || !matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOSYS | libc::EINVAL))
}

/// Wakes every process sleeping in [`futex_wait`] on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 32-bit location; FUTEX_WAKE does not touch memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32);
    }
}

/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (linux/membarrier.h).
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`.
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

/// Registers this process (once) to take part in expedited global memory barriers: from then
/// on, a [`membarrier_global`] by any process runs a full memory barrier on every CPU that runs
/// one of our threads. Returns whether registration succeeded (kernel >= 4.16, not blocked
/// by seccomp).
pub fn membarrier_register() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: membarrier takes no pointers; an unsupported command returns an error.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0 }
    })
}

/// Runs a full memory barrier on every CPU running a thread of a registered process (and
/// ours). Returns false if the kernel refused.
pub fn membarrier_global() -> bool {
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0 }
}

/// This process's id (as this pid namespace sees it; information only, never used to decide
/// liveness).
pub fn pid() -> u32 {
    std::process::id()
}

/// Start time of process `pid` in clock ticks after boot (field 22 of `/proc/PID/stat`), if it
/// can be read. Recorded beside the pid for `shmq stat`; never used to decide liveness.
pub fn process_start_time(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces and ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ')' come field 3 (state) onwards; the start time is field 22.
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

/// This process's start time; see [`process_start_time`] (0 if `/proc` cannot be read).
pub fn own_start_time() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(|| process_start_time(pid()).unwrap_or(0))
}

/// Nanoseconds since the Unix epoch (for "last activity" stamps).
pub use crate::ring::now_unix_ns;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofd_locks_conflict_between_descriptions_of_one_process_and_end_with_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let a = File::create_new(&path, 0o600).unwrap().unwrap();
        let b = File::open(&path).unwrap().unwrap();
        assert_eq!(b.holder(5), Holder::Free);
        assert!(a.lock(5, Lock::Write).unwrap());
        assert_eq!(b.holder(5), Holder::Held, "a lock of another description is seen");
        assert_eq!(a.holder(5), Holder::Free, "a description does not see its own locks");
        assert!(!b.lock(5, Lock::Read).unwrap(), "the write lock excludes others");
        assert!(b.lock(6, Lock::Write).unwrap(), "other bytes are independent");
        drop(a);
        assert_eq!(File::open(&path).unwrap().unwrap().holder(5), Holder::Free, "closing released it");
        assert!(b.is_at(&path).unwrap());
        unlink(&path).unwrap();
        assert!(!b.is_at(&path).unwrap());
    }
}
