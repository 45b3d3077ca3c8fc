//! Every operating-system call shmq makes: segment files, mappings, futexes, process liveness.
//!
//! Nothing above this module calls `libc` directly.

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

/// A shared, read-write mapping of a whole segment file. Unmapped on drop.
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

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by open and is closed exactly once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn map_fd(fd: &Fd, len: usize, path: &Path) -> Result<Mapping> {
    // SAFETY: mapping a file we hold open; the kernel validates fd and length. MAP_POPULATE
    // pre-faults every page so the hot path takes no page faults.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.0,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(Error::io(format!("mmap {}", path.display()), io::Error::last_os_error()));
    }
    Ok(Mapping { ptr: NonNull::new(ptr.cast()).expect("mmap returned null"), len })
}

fn open_error(path: &Path, what: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { path: path.display().to_string() },
        _ => Error::io(format!("{what} {}", path.display()), e),
    }
}

/// Outcome of [`create_segment`].
pub enum Created {
    /// A new file was created, sized, reserved and mapped.
    New(Mapping),
    /// A file of that name already exists.
    Exists,
}

/// Creates `path` exclusively with `mode`, reserves `len` bytes (so a full directory fails here,
/// not with SIGBUS later) and maps it pre-faulted. On failure the file is removed again.
pub fn create_segment(path: &Path, len: usize, mode: u32) -> Result<Created> {
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
            return Ok(Created::Exists);
        }
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Err(Error::io(format!("create {} (does the segment directory exist?)", path.display()), e));
        }
        return Err(open_error(path, "create", e));
    }
    let fd = Fd(fd);
    let cleanup = |err: Error| {
        let _ = unlink(path);
        Err(err)
    };
    // The umask may have cleared bits of `mode`; set it exactly.
    // SAFETY: fd is open.
    if unsafe { libc::fchmod(fd.0, mode as libc::mode_t) } != 0 {
        return cleanup(Error::io("fchmod", io::Error::last_os_error()));
    }
    // SAFETY: fd is open; posix_fallocate returns an error number instead of setting errno.
    let rc = unsafe { libc::posix_fallocate(fd.0, 0, len as libc::off_t) };
    if rc != 0 {
        let dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default();
        if rc == libc::ENOSPC || rc == libc::EFBIG {
            return cleanup(Error::NoSpace { dir, bytes: len as u64 });
        }
        return cleanup(Error::io("posix_fallocate", io::Error::from_raw_os_error(rc)));
    }
    match map_fd(&fd, len, path) {
        Ok(m) => Ok(Created::New(m)),
        Err(e) => cleanup(e),
    }
}

/// Opens and maps an existing segment file. Returns `Ok(None)` if it does not exist.
/// `min_len` is the smallest size a valid segment can have; a smaller file (still being
/// created, or not ours) returns `Ok(Some(None))`-like signalling through [`Opened::TooSmall`].
pub fn open_segment(path: &Path, min_len: usize, max_len: usize) -> Result<Opened> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(Opened::Missing);
        }
        return Err(open_error(path, "open", e));
    }
    let fd = Fd(fd);
    // SAFETY: an all-zero stat is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd.0, &mut st) } != 0 {
        return Err(Error::io("fstat", io::Error::last_os_error()));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::Incompatible {
            what: "file type",
            expected: "regular file".into(),
            found: "something else".into(),
        });
    }
    let size = st.st_size as u64;
    if size < min_len as u64 {
        return Ok(Opened::TooSmall { size, ino: st.st_ino });
    }
    if size > max_len as u64 {
        return Err(Error::Incompatible {
            what: "segment size",
            expected: format!("at most {max_len} bytes"),
            found: format!("{size} bytes"),
        });
    }
    Ok(Opened::Mapped { map: map_fd(&fd, size as usize, path)?, ino: st.st_ino })
}

/// Outcome of [`open_segment`].
pub enum Opened {
    /// No such file.
    Missing,
    /// The file exists but is smaller than any valid segment (being created, or not ours).
    TooSmall {
        /// Its current size.
        size: u64,
        /// Its inode, to tell a recreated file apart.
        ino: u64,
    },
    /// Mapped whole.
    Mapped {
        /// The mapping.
        map: Mapping,
        /// The file's inode.
        ino: u64,
    },
}

/// Inode of `path`, if it exists.
pub fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Removes a segment file. `Ok(false)` if it did not exist.
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

/// This process's id.
pub fn pid() -> u32 {
    std::process::id()
}

/// Start time of process `pid` in clock ticks after boot (field 22 of `/proc/PID/stat`).
/// Together with the pid it names one process for the life of the machine: a reused pid has
/// another start time.
pub fn process_start_time(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces and ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ')' come field 3 (state) onwards; the start time is field 22.
    let f = rest.split_ascii_whitespace().nth(22 - 3)?;
    let state = rest.split_ascii_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None; // a zombie has died; only its exit status is left
    }
    f.parse().ok()
}

/// This process's start time; see [`process_start_time`].
pub fn own_start_time() -> u64 {
    process_start_time(pid()).unwrap_or(0)
}

/// Whether the process `pid` that started at `start_time` is still running.
pub fn process_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match process_start_time(pid) {
        Some(t) => t == start_time,
        // /proc not readable (other pid namespace, hidepid): trust kill(2).
        None => rc == 0 && std::fs::metadata(format!("/proc/{pid}")).is_err(),
    }
}

/// Nanoseconds since the Unix epoch (for "last activity" stamps).
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
