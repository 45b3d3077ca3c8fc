//! The shared memory of the hand-written baselines (floor, bare ring, futex ping-pong): a
//! `memfd` mapped `MAP_SHARED` in both processes.
//!
//! The parent creates the memfd without `CLOEXEC`, so the peer it re-executes inherits it and
//! maps it by number (`--fd`); there is no file name, so nothing can be left behind. Both sides
//! map with `MAP_POPULATE`, so no page fault lands in a timed loop.

use std::io;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// A value on its own 128-byte line (two 64-byte lines: the adjacent-line prefetcher pairs
/// them), so that the two sides' indices never share a line.
#[repr(C, align(128))]
pub struct Padded<T>(pub T);

/// Types that may live in a [`Shared`] region.
///
/// # Safety
/// All-zero bytes must be a valid value, the type must not need dropping, and every field the
/// two processes both touch must be an atomic or be guarded by one (the region is a plain
/// shared mapping; Rust's aliasing rules see only this process).
pub unsafe trait ZeroValid {}

// SAFETY: a zeroed atomic is a valid atomic holding 0; no drop glue.
unsafe impl ZeroValid for AtomicU64 {}
// SAFETY: as for AtomicU64.
unsafe impl ZeroValid for AtomicU32 {}
// SAFETY: padding only adds alignment; the inner value is zero-valid.
unsafe impl<T: ZeroValid> ZeroValid for Padded<T> {}

/// A `T` in a shared mapping, seen by this process and its peer.
pub struct Shared<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
    fd: Option<i32>,
}

impl<T: ZeroValid> Shared<T> {
    /// A fresh zeroed region, held by a memfd the next re-executed peer inherits.
    pub fn create() -> io::Result<Shared<T>> {
        let len = Self::len();
        // SAFETY: the name is a NUL-terminated literal; flags 0 (no CLOEXEC: the peer inherits it).
        let fd = unsafe { libc::memfd_create(c"shmq-perf".as_ptr(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is the memfd we just created.
        if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: closing our own fd once.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let mut s = Self::map(fd)?;
        s.fd = Some(fd);
        Ok(s)
    }

    /// Maps the region the parent passed down as `fd`, and closes `fd`.
    pub fn inherit(fd: i32) -> io::Result<Shared<T>> {
        let s = Self::map(fd);
        // SAFETY: `fd` was inherited for us alone; the mapping (if any) keeps the memory.
        unsafe { libc::close(fd) };
        s
    }

    /// The fd to pass to the peer (`None` once closed).
    pub fn fd(&self) -> Option<i32> {
        self.fd
    }

    /// Closes the parent's fd once the peer has it (the mapping stays).
    pub fn close_fd(&mut self) {
        if let Some(fd) = self.fd.take() {
            // SAFETY: our own fd, closed once (taken out of `self.fd`).
            unsafe { libc::close(fd) };
        }
    }

    fn len() -> usize {
        std::mem::size_of::<T>().next_multiple_of(4096)
    }

    fn map(fd: i32) -> io::Result<Shared<T>> {
        let len = Self::len();
        // SAFETY: a fresh shared mapping of `fd` (at least `len` bytes: the parent truncated it
        // to that); the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<T>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Shared { ptr, len, fd: None })
    }
}

impl<T: ZeroValid> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page aligned (enough for T's alignment, at most 128), at least
        // size_of::<T>() long, zero-filled at creation (a valid T, per ZeroValid), and lives
        // until `self` drops.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ZeroValid> Drop for Shared<T> {
    fn drop(&mut self) {
        self.close_fd();
        // SAFETY: unmapping our own mapping once; no reference from `deref` outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
