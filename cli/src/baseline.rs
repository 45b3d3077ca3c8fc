//! Baselines measured beside shmq in the same run: what an honest comparison needs.
//!
//! - **floor**: two processes ping-pong through two atomics on a shared mapping, with the
//!   payload really written and read. No queue can beat it; shmq's round trip is quoted as a
//!   ratio to it.
//! - **uds**: a Unix domain socket pair (`SOCK_SEQPACKET`, so message boundaries are kept).
//! - **pipe**: a pair of pipes.
//! - **bare ring**: the simplest fast shared-memory SPSC ring (throughput only): what shmq's
//!   queues cost over the algorithm alone.
//!
//! Each function forks a child that echoes (or drains) and exits. Between `fork` and `_exit`
//! the child only makes async-signal-safe calls (`read`, `write`, `sched_setaffinity`,
//! atomics) on memory allocated before the fork, so this is sound even in a multi-threaded
//! process.
//!
//! Tail latency: the parent allocates and touches its sample buffer *after* the fork (so no
//! copy-on-write fault lands in the timed loop) and records into it by index; nothing in the
//! timed loop allocates.
//!
//! [`Baseline`] runs any of them with the two processes pinned to two CPUs ([`pin_thread`]);
//! [`process_cpu_time`] tells how much CPU a process has used (to show that a blocked peer
//! uses none).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Round-trip latencies in nanoseconds, one per round trip.
pub type Samples = Vec<u64>;

/// CPUs to pin the two processes of a measurement to: `[this thread, the peer]`.
pub type Pin = Option<[usize; 2]>;

/// One of the baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// Two atomics and two payload buffers on a shared mapping, both sides spinning.
    Floor,
    /// A Unix domain socket pair (`SOCK_SEQPACKET`), blocking reads.
    Uds,
    /// Two pipes, blocking reads.
    Pipe,
}

impl Baseline {
    /// Every baseline, in report order.
    pub const ALL: [Baseline; 3] = [Baseline::Floor, Baseline::Uds, Baseline::Pipe];

    /// Short name: `floor`, `uds`, `pipe`.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Floor => "floor",
            Baseline::Uds => "uds",
            Baseline::Pipe => "pipe",
        }
    }

    /// `rounds` round trips of `size`-byte messages between this thread and a forked echo
    /// child; with `pin`, this thread runs on `pin[0]` (restored afterwards) and the child on
    /// `pin[1]`.
    pub fn round_trips(self, rounds: usize, size: usize, pin: Pin) -> io::Result<Samples> {
        let peer = pin.map(|[_, peer]| cpu_set(peer)).transpose()?;
        let _guard = pin.map(|[me, _]| pin_thread(me)).transpose()?;
        match self {
            Baseline::Floor => floor(rounds, size, peer),
            Baseline::Uds => fd_round_trips(true, rounds, size, peer),
            Baseline::Pipe => fd_round_trips(false, rounds, size, peer),
        }
    }

    /// One-way messages per second from this thread to a forked reader child; `None` for the
    /// floor, which only ping-pongs.
    pub fn throughput(self, count: usize, size: usize, pin: Pin) -> io::Result<Option<f64>> {
        let peer = pin.map(|[_, peer]| cpu_set(peer)).transpose()?;
        let _guard = pin.map(|[me, _]| pin_thread(me)).transpose()?;
        match self {
            Baseline::Floor => Ok(None),
            Baseline::Uds => fd_throughput(true, count, size, peer).map(Some),
            Baseline::Pipe => fd_throughput(false, count, size, peer).map(Some),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU affinity and CPU time

fn cpu_set(cpu: usize) -> io::Result<libc::cpu_set_t> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::other(format!("CPU {cpu} is out of range")));
    }
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE, checked above, so the bit is inside the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    Ok(set)
}

/// Sets the calling thread's affinity mask (`sched_setaffinity(0, ..)`).
fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get_affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: all zeroes is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-pointer of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = get_affinity()?;
    // SAFETY: every index is < CPU_SETSIZE, inside the set.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Restores the calling thread's previous affinity mask when dropped (see [`pin_thread`]).
#[derive(Debug)]
pub struct PinGuard {
    saved: libc::cpu_set_t,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = set_affinity(&self.saved);
    }
}

/// Pins the calling thread to `cpu` until the guard drops. Processes started meanwhile inherit
/// the pin.
///
/// # Errors
/// If `cpu` does not exist or is not allowed for this process.
pub fn pin_thread(cpu: usize) -> io::Result<PinGuard> {
    let saved = get_affinity()?;
    set_affinity(&cpu_set(cpu)?).map_err(|e| io::Error::new(e.kind(), format!("cannot pin to CPU {cpu}: {e}")))?;
    Ok(PinGuard { saved })
}

/// Pins the calling thread to `cpu` for good (for a process that does one job and exits).
pub fn pin_thread_forever(cpu: usize) -> io::Result<()> {
    std::mem::forget(pin_thread(cpu)?);
    Ok(())
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/PID/stat`, with the
/// resolution of the kernel's clock tick (usually 10 ms).
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
    let bad = || io::Error::other(format!("unexpected /proc/{pid}/stat"));
    // The command name (field 2) is in parentheses and may contain spaces and ')'.
    let close = stat.iter().rposition(|&b| b == b')').ok_or_else(bad)?;
    let rest = std::str::from_utf8(&stat[close + 1..]).map_err(|_| bad())?;
    let mut fields = rest.split_ascii_whitespace();
    // After ')' comes field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(14 - 3).and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    let stime: u64 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(Duration::from_nanos((utime + stime).saturating_mul(1_000_000_000) / hz))
}

// ---------------------------------------------------------------------------------------------
// Processes and file descriptors

/// A buffer of `n` samples whose pages are all touched, so that recording into it by index in
/// a timed loop takes no page fault.
fn sample_buffer(n: usize) -> Samples {
    // A non-zero fill really writes every page (a zero fill may become a lazily mapped calloc).
    std::hint::black_box(vec![u64::MAX; n])
}

/// Pins a forked child to `set` (built before the fork: no allocation here); false if that
/// fails.
fn pin_child(set: Option<libc::cpu_set_t>) -> bool {
    set.is_none_or(|s| set_affinity(&s).is_ok())
}

fn fork_child(child: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    // SAFETY: fork has no memory-safety preconditions; the child runs only `child`, which
    // (per module docs) makes async-signal-safe calls, then `_exit`s without unwinding.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = child();
        // SAFETY: leaving the child without running the parent's destructors or atexit hooks.
        unsafe { libc::_exit(code) };
    }
    Ok(pid)
}

fn reap(pid: libc::pid_t) -> io::Result<()> {
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is a valid out-pointer.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let why = if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3 {
            " (could not pin it to its CPU)".to_string()
        } else {
            format!(" (status {status:#x})")
        };
        return Err(io::Error::other(format!("baseline child failed{why}")));
    }
    Ok(())
}

fn write_all(fd: i32, buf: &[u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: buf[done..] is valid for reads of its length.
        let n = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

/// Reads exactly `buf.len()` bytes (a pipe may split a message; a seqpacket socket will not).
fn read_exact(fd: i32, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: buf[done..] is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

fn close(fd: i32) {
    // SAFETY: closing an fd we own, once.
    unsafe { libc::close(fd) };
}

/// Two fd pairs: (parent reads, parent writes, child reads, child writes).
fn channel_pair(uds: bool) -> io::Result<[i32; 4]> {
    if uds {
        let mut sv = [0; 2];
        // SAFETY: `sv` is a valid out-array of two fds.
        if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) }
            != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok([sv[0], sv[0], sv[1], sv[1]])
    } else {
        let (mut a, mut b) = ([0; 2], [0; 2]);
        // SAFETY: `a` is a valid out-array of two fds.
        let ra = unsafe { libc::pipe2(a.as_mut_ptr(), libc::O_CLOEXEC) };
        // SAFETY: `b` is a valid out-array of two fds.
        let rb = unsafe { libc::pipe2(b.as_mut_ptr(), libc::O_CLOEXEC) };
        if ra != 0 || rb != 0 {
            return Err(io::Error::last_os_error());
        }
        // parent -> child on a, child -> parent on b.
        Ok([b[0], a[1], a[0], b[1]])
    }
}

fn close_all(uds: bool, [p_rd, p_wr, c_rd, c_wr]: [i32; 4]) {
    let fds = if uds { vec![p_rd, c_rd] } else { vec![p_rd, p_wr, c_rd, c_wr] };
    for fd in fds {
        close(fd);
    }
}

fn fd_round_trips(uds: bool, rounds: usize, size: usize, peer_cpu: Option<libc::cpu_set_t>) -> io::Result<Samples> {
    let fds = channel_pair(uds)?;
    let [p_rd, p_wr, c_rd, c_wr] = fds;
    let mut child_buf = vec![0u8; size.max(1)];
    let pid = fork_child(move || {
        if !pin_child(peer_cpu) {
            return 3;
        }
        let buf = &mut child_buf[..size];
        for _ in 0..rounds {
            if !read_exact(c_rd, buf) || !write_all(c_wr, buf) {
                return 1;
            }
        }
        0
    });
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            close_all(uds, fds);
            return Err(e);
        }
    };
    // Allocated after the fork: no copy-on-write fault in the timed loop.
    let mut samples = sample_buffer(rounds);
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut ok = true;
    for (i, sample) in samples.iter_mut().enumerate() {
        if let Some(b) = out.first_mut() {
            *b = i as u8;
        }
        let t = Instant::now();
        if !write_all(p_wr, &out) || !read_exact(p_rd, &mut back) {
            ok = false;
            break;
        }
        *sample = t.elapsed().as_nanos() as u64;
        if back != out {
            ok = false;
            break;
        }
    }
    close_all(uds, fds);
    reap(pid)?;
    if !ok {
        return Err(io::Error::other("baseline echo failed or returned wrong bytes"));
    }
    Ok(samples)
}

fn fd_throughput(uds: bool, count: usize, size: usize, peer_cpu: Option<libc::cpu_set_t>) -> io::Result<f64> {
    let fds = channel_pair(uds)?;
    let [p_rd, p_wr, c_rd, c_wr] = fds;
    let mut child_buf = vec![0u8; size.max(1)];
    let pid = fork_child(move || {
        if !pin_child(peer_cpu) {
            return 3;
        }
        let buf = &mut child_buf[..size];
        let mut sum: u64 = 0;
        for _ in 0..count {
            if !read_exact(c_rd, buf) {
                return 1;
            }
            sum = sum.wrapping_add(buf.first().copied().unwrap_or(0) as u64);
        }
        // Report completion (and the checksum) so the parent's clock includes the last read.
        if !write_all(c_wr, &sum.to_le_bytes()) {
            return 1;
        }
        0
    });
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            close_all(uds, fds);
            return Err(e);
        }
    };
    let mut out = vec![0u8; size];
    let mut expect: u64 = 0;
    let t = Instant::now();
    let mut ok = true;
    for i in 0..count {
        if let Some(b) = out.first_mut() {
            *b = i as u8;
            expect = expect.wrapping_add(i as u8 as u64);
        }
        if !write_all(p_wr, &out) {
            ok = false;
            break;
        }
    }
    let mut sum = [0u8; 8];
    ok = ok && read_exact(p_rd, &mut sum);
    let secs = t.elapsed().as_secs_f64();
    close_all(uds, fds);
    reap(pid)?;
    if !ok || (size > 0 && u64::from_le_bytes(sum) != expect) {
        return Err(io::Error::other("baseline stream failed or lost bytes"));
    }
    Ok(count as f64 / secs)
}

/// Round trips of `size`-byte messages over a Unix socket pair.
pub fn uds_round_trips(rounds: usize, size: usize) -> io::Result<Samples> {
    Baseline::Uds.round_trips(rounds, size, None)
}

/// Round trips over a pair of pipes.
pub fn pipe_round_trips(rounds: usize, size: usize) -> io::Result<Samples> {
    Baseline::Pipe.round_trips(rounds, size, None)
}

/// One-way messages per second over a Unix socket pair.
pub fn uds_throughput(count: usize, size: usize) -> io::Result<f64> {
    fd_throughput(true, count, size, None)
}

/// One-way messages per second over a pipe.
pub fn pipe_throughput(count: usize, size: usize) -> io::Result<f64> {
    fd_throughput(false, count, size, None)
}

// ---------------------------------------------------------------------------------------------
// The floor

/// An anonymous shared mapping (inherited by a forked child), populated so that no page fault
/// lands in a timed loop; unmapped when dropped, after the child has been reaped.
struct SharedMap(*mut u8, usize);

impl SharedMap {
    fn new(len: usize) -> io::Result<SharedMap> {
        // SAFETY: an anonymous shared mapping of `len` bytes; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap(base.cast(), len))
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping of that length; the child that shared it has exited (or was
        // never started), and nothing else uses it.
        unsafe { libc::munmap(self.0.cast(), self.1) };
    }
}

/// A sequence counter on its own cache lines (no false sharing with the other counter).
#[repr(C, align(128))]
struct FloorLine {
    seq: AtomicU64,
}

/// Round trips through two atomics on shared memory: the floor no queue can beat. The payload
/// (any size) is copied in and out on both sides.
pub fn floor_round_trips(rounds: usize, size: usize) -> io::Result<Samples> {
    floor(rounds, size, None)
}

fn floor(rounds: usize, size: usize, peer_cpu: Option<libc::cpu_set_t>) -> io::Result<Samples> {
    const LINE: usize = std::mem::size_of::<FloorLine>();
    // Each payload buffer starts on its own 128-byte line, after the two counter lines.
    let buf_len = size.div_ceil(LINE).max(1) * LINE;
    let len = 2 * LINE + 2 * buf_len;
    let map = SharedMap::new(len)?;
    let base = map.0;
    // SAFETY: the mapping is page aligned, zeroed and `len` bytes long: two FloorLines
    // (atomics are valid when zeroed) followed by two `buf_len`-byte buffers.
    let (ping, pong) = unsafe { (&*base.cast::<FloorLine>(), &*base.cast::<FloorLine>().add(1)) };
    // SAFETY: inside the mapping, after the two lines.
    let (ping_buf, pong_buf) = unsafe {
        let b = base.add(2 * LINE);
        (b, b.add(buf_len))
    };
    let mut scratch = vec![0u8; size.max(1)];
    let pid = fork_child(move || {
        if !pin_child(peer_cpu) {
            return 3;
        }
        let buf = &mut scratch[..size];
        for i in 1..=rounds as u64 {
            // Acquire pairs with the parent's Release store: its payload write is visible.
            while ping.seq.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            // SAFETY: the parent wrote `size` bytes before publishing `i` and will not write
            // again until we answer.
            unsafe {
                std::ptr::copy_nonoverlapping(ping_buf, buf.as_mut_ptr(), size);
                std::ptr::copy_nonoverlapping(buf.as_ptr(), pong_buf, size);
            }
            // Release pairs with the parent's Acquire load: our payload write is visible.
            pong.seq.store(i, Ordering::Release);
        }
        0
    });
    let pid = pid?;
    // Allocated after the fork: no copy-on-write fault in the timed loop.
    let mut samples = sample_buffer(rounds);
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut ok = true;
    for (i, sample) in (1..=rounds as u64).zip(samples.iter_mut()) {
        if let Some(b) = out.first_mut() {
            *b = i as u8;
        }
        let t = Instant::now();
        // SAFETY: the child reads ping_buf only after our Release store of `i`.
        unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), ping_buf, size) };
        ping.seq.store(i, Ordering::Release);
        while pong.seq.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        // SAFETY: the child wrote pong_buf before its Release store of `i`.
        unsafe { std::ptr::copy_nonoverlapping(pong_buf, back.as_mut_ptr(), size) };
        *sample = t.elapsed().as_nanos() as u64;
        ok &= back == out;
    }
    reap(pid)?;
    if !ok {
        return Err(io::Error::other("floor echo returned wrong bytes"));
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------------------------
// The bare ring

/// Slots of the bare ring.
const BARE_SLOTS: usize = 1024;

/// One-way messages per second through a bare shared-memory SPSC ring (Lamport's, with cached
/// indices, the `rtrb` design) from a forked producer child to this thread: `head` and `tail`
/// on their own 128-byte lines, 1024 slots of `size` bytes rounded up to 64, each side reloading
/// the other's index only when its copy says full or empty. No validation, no peers, no
/// wake-ups: the algorithm alone, to tell what shmq's queues cost over it. Every message
/// carries its sequence number in its first (up to) 8 bytes, checked on receipt. Timed from
/// the first message received to the last; the rate counts the messages after the first.
pub fn bare_ring_throughput(count: usize, size: usize, pin: Pin) -> io::Result<f64> {
    let peer = pin.map(|[_, peer]| cpu_set(peer)).transpose()?;
    let _guard = pin.map(|[me, _]| pin_thread(me)).transpose()?;
    const LINE: usize = std::mem::size_of::<FloorLine>();
    let size = size.max(1);
    let stride = size.div_ceil(64) * 64;
    let len = 2 * LINE + BARE_SLOTS * stride;
    let map = SharedMap::new(len)?;
    let base = map.0;
    // SAFETY: the mapping is page aligned, zeroed and `len` bytes long: two FloorLines (head:
    // next write, tail: next read; atomics are valid when zeroed), then the slots.
    let (head, tail) = unsafe { (&*base.cast::<FloorLine>(), &*base.cast::<FloorLine>().add(1)) };
    // SAFETY: inside the mapping, after the two lines.
    let slots = unsafe { base.add(2 * LINE) };
    let slot = move |i: u64| {
        // SAFETY: (i % BARE_SLOTS) * stride + stride <= BARE_SLOTS * stride, inside the mapping.
        unsafe { slots.add((i as usize % BARE_SLOTS) * stride) }
    };
    let stamp = size.min(8);
    let mut msg = vec![0u8; size];
    let pid = fork_child(move || {
        if !pin_child(peer) {
            return 3;
        }
        let (mut h, mut t) = (0u64, 0u64);
        for i in 0..count as u64 {
            while h - t == BARE_SLOTS as u64 {
                // Acquire pairs with the consumer's Release store: it is done with the slot.
                t = tail.seq.load(Ordering::Acquire);
                std::hint::spin_loop();
            }
            msg[..stamp].copy_from_slice(&i.to_le_bytes()[..stamp]);
            // SAFETY: slot h is below t + BARE_SLOTS: the consumer released it and will not
            // read it before our Release store of head past it.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), slot(h), size) };
            h += 1;
            head.seq.store(h, Ordering::Release);
        }
        0
    });
    let pid = pid?;
    let mut buf = vec![0u8; size];
    let (mut t, mut h) = (0u64, 0u64);
    let mut ok = true;
    let mut started = None;
    while t < count as u64 {
        if t == h {
            // Acquire pairs with the producer's Release store: the slots below it are written.
            h = head.seq.load(Ordering::Acquire);
            if t == h {
                std::hint::spin_loop();
                continue;
            }
        }
        // SAFETY: slot t is below the producer's head: written, and not rewritten before our
        // Release store of tail past it.
        unsafe { std::ptr::copy_nonoverlapping(slot(t), buf.as_mut_ptr(), size) };
        ok &= buf[..stamp] == t.to_le_bytes()[..stamp];
        started.get_or_insert_with(Instant::now);
        t += 1;
        tail.seq.store(t, Ordering::Release);
    }
    let elapsed = started.map(|s| s.elapsed());
    reap(pid)?;
    if !ok {
        return Err(io::Error::other("the bare ring delivered wrong bytes"));
    }
    let secs = elapsed.map_or(0.0, |e| e.as_secs_f64());
    Ok(if count > 1 && secs > 0.0 { (count - 1) as f64 / secs } else { 0.0 })
}

/// Percentile `p` (0..=100) of `samples` (sorted in place). 0 if empty.
pub fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_baseline_echoes_real_bytes() {
        for size in [0usize, 8, 1024, 5000] {
            assert_eq!(uds_round_trips(100, size).unwrap().len(), 100);
            assert_eq!(pipe_round_trips(100, size).unwrap().len(), 100);
            assert_eq!(floor_round_trips(100, size).unwrap().len(), 100);
            assert!(uds_throughput(1000, size).unwrap() > 0.0);
            assert!(pipe_throughput(1000, size).unwrap() > 0.0);
        }
    }

    #[test]
    fn every_recorded_round_trip_is_a_real_time() {
        for b in Baseline::ALL {
            let s = b.round_trips(200, 64, None).unwrap();
            assert!(s.iter().all(|&ns| ns > 0 && ns != u64::MAX), "{}: {:?}", b.name(), &s[..5]);
        }
    }

    #[test]
    fn pinned_baselines_run_on_an_allowed_cpu_and_restore_the_mask() {
        let before = allowed_cpus().unwrap();
        let cpu = before[0];
        let peer = *before.last().unwrap();
        for b in Baseline::ALL {
            assert_eq!(b.round_trips(50, 16, Some([cpu, peer])).unwrap().len(), 50);
            assert_eq!(b.throughput(500, 16, Some([cpu, peer])).unwrap().is_some(), b != Baseline::Floor);
        }
        assert_eq!(allowed_cpus().unwrap(), before);
        {
            let _g = pin_thread(cpu).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![cpu]);
        }
        assert_eq!(allowed_cpus().unwrap(), before);
    }

    #[test]
    fn pinning_to_a_cpu_that_does_not_exist_fails() {
        assert!(pin_thread(100_000).is_err());
        assert!(Baseline::Uds.round_trips(10, 8, Some([100_000, 0])).is_err());
    }

    #[test]
    fn cpu_time_of_this_process_is_readable_and_grows() {
        let before = process_cpu_time(std::process::id()).unwrap();
        // Burn CPU until the count moves (a tick is usually 10 ms); a generous wall-clock limit
        // fails the test instead of hanging it.
        let t = Instant::now();
        let mut x = 0u64;
        while process_cpu_time(std::process::id()).unwrap() == before {
            assert!(t.elapsed() < Duration::from_secs(20), "CPU time stayed at {before:?} for 20 s of spinning");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
    }

    #[test]
    fn percentile_picks_ranks() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), 51);
        assert_eq!(percentile(&mut v, 100.0), 100);
        assert_eq!(percentile(&mut v, 0.0), 1);
    }
}
