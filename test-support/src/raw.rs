//! Raw access to a segment's memory, as another process has it: the one writer through which
//! tests corrupt segments (see [`crate::corrupt`] for what they write where).

use std::path::Path;

/// A second, raw read-write mapping of a segment file, as a peer (buggy, hostile, or one that
/// judged us dead) has: it reads and writes words anywhere, through atomics.
pub struct RawMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, accessed only through atomics (`u64_at` and friends).
unsafe impl Send for RawMap {}
// SAFETY: as above.
unsafe impl Sync for RawMap {}

impl RawMap {
    /// Maps all of `file` (open read-write).
    pub fn new(file: &std::fs::File) -> RawMap {
        use std::os::fd::AsRawFd;
        let len = file.metadata().expect("segment size").len() as usize;
        // SAFETY: mapping an open file shared and read-write; the kernel checks fd and length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
        RawMap { ptr: ptr.cast(), len }
    }

    /// Maps the segment file at `path`.
    pub fn open(path: &Path) -> RawMap {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open the segment file");
        RawMap::new(&file)
    }

    /// Bytes mapped (the file's size when it was mapped).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self, offset: u64, width: usize) -> usize {
        let at = offset as usize;
        assert!(at % width == 0 && at + width <= self.len, "{width} bytes at {at} outside the mapping");
        at
    }

    /// The 64-bit word at `offset`.
    pub fn u64_at(&self, offset: u64) -> &std::sync::atomic::AtomicU64 {
        let at = self.check(offset, 8);
        // SAFETY: in bounds and 8-aligned (checked; the mapping is page aligned); an AtomicU64
        // is valid for any bits; the reference does not outlive `self`, which keeps the mapping.
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU64>() }
    }

    /// The 32-bit word at `offset`.
    pub fn u32_at(&self, offset: u64) -> &std::sync::atomic::AtomicU32 {
        let at = self.check(offset, 4);
        // SAFETY: as in `u64_at`, 4-aligned.
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU32>() }
    }

    /// The byte at `offset`.
    pub fn u8_at(&self, offset: u64) -> &std::sync::atomic::AtomicU8 {
        let at = self.check(offset, 1);
        // SAFETY: as in `u64_at`; any byte is aligned for AtomicU8.
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU8>() }
    }

    /// The current value of a field of `width` bytes (8, 4 or 1).
    pub fn load(&self, offset: u64, width: usize) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        match width {
            8 => self.u64_at(offset).load(Relaxed),
            4 => self.u32_at(offset).load(Relaxed) as u64,
            _ => self.u8_at(offset).load(Relaxed) as u64,
        }
    }

    /// Stores the low `width` bytes of `value` (one atomic store, as a peer's write would be).
    pub fn store(&self, offset: u64, width: usize, value: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match width {
            8 => self.u64_at(offset).store(value, Relaxed),
            4 => self.u32_at(offset).store(value as u32, Relaxed),
            _ => self.u8_at(offset).store(value as u8, Relaxed),
        }
    }
}

impl RawMap {
    /// Copies `out.len()` bytes from `offset` into `out` (byte by byte: any offset).
    pub fn read_bytes(&self, offset: u64, out: &mut [u8]) {
        use std::sync::atomic::Ordering::Relaxed;
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.u8_at(offset + i as u64).load(Relaxed);
        }
    }

    /// Writes `bytes` at `offset` (byte by byte: any offset).
    pub fn write_bytes(&self, offset: u64, bytes: &[u8]) {
        use std::sync::atomic::Ordering::Relaxed;
        for (i, &b) in bytes.iter().enumerate() {
            self.u8_at(offset + i as u64).store(b, Relaxed);
        }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
