//! Baselines measured beside shmq in the same run: what an honest comparison needs.
//!
//! - **floor**: two processes ping-pong through two atomics on a shared mapping, with the
//!   payload really written and read. No queue can beat it; shmq's round trip is quoted as a
//!   ratio to it.
//! - **uds**: a Unix domain socket pair (`SOCK_SEQPACKET`, so message boundaries are kept).
//! - **pipe**: a pair of pipes.
//!
//! Each function forks a child that echoes (or drains) and exits. Between `fork` and `_exit`
//! the child only makes async-signal-safe calls (`read`, `write`, atomics) on memory allocated
//! before the fork, so this is sound even in a multi-threaded process.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Round-trip latencies in nanoseconds, one per round trip.
pub type Samples = Vec<u64>;

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
        return Err(io::Error::other(format!("baseline child failed (status {status:#x})")));
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

fn fd_round_trips(uds: bool, rounds: usize, size: usize) -> io::Result<Samples> {
    let [p_rd, p_wr, c_rd, c_wr] = channel_pair(uds)?;
    let mut child_buf = vec![0u8; size.max(1)];
    let pid = fork_child(move || {
        let buf = &mut child_buf[..size];
        for _ in 0..rounds {
            if !read_exact(c_rd, buf) || !write_all(c_wr, buf) {
                return 1;
            }
        }
        0
    })?;
    let mut samples = Vec::with_capacity(rounds);
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut ok = true;
    for i in 0..rounds {
        if let Some(b) = out.first_mut() {
            *b = i as u8;
        }
        let t = Instant::now();
        if !write_all(p_wr, &out) || !read_exact(p_rd, &mut back) {
            ok = false;
            break;
        }
        samples.push(t.elapsed().as_nanos() as u64);
        if back != out {
            ok = false;
            break;
        }
    }
    for fd in if uds { vec![p_rd, c_rd] } else { vec![p_rd, p_wr, c_rd, c_wr] } {
        close(fd);
    }
    reap(pid)?;
    if !ok {
        return Err(io::Error::other("baseline echo failed or returned wrong bytes"));
    }
    Ok(samples)
}

fn fd_throughput(uds: bool, count: usize, size: usize) -> io::Result<f64> {
    let [p_rd, p_wr, c_rd, c_wr] = channel_pair(uds)?;
    let mut child_buf = vec![0u8; size.max(1)];
    let pid = fork_child(move || {
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
    })?;
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
    for fd in if uds { vec![p_rd, c_rd] } else { vec![p_rd, p_wr, c_rd, c_wr] } {
        close(fd);
    }
    reap(pid)?;
    if !ok || (size > 0 && u64::from_le_bytes(sum) != expect) {
        return Err(io::Error::other("baseline stream failed or lost bytes"));
    }
    Ok(count as f64 / secs)
}

/// Round trips of `size`-byte messages over a Unix socket pair.
pub fn uds_round_trips(rounds: usize, size: usize) -> io::Result<Samples> {
    fd_round_trips(true, rounds, size)
}

/// Round trips over a pair of pipes.
pub fn pipe_round_trips(rounds: usize, size: usize) -> io::Result<Samples> {
    fd_round_trips(false, rounds, size)
}

/// One-way messages per second over a Unix socket pair.
pub fn uds_throughput(count: usize, size: usize) -> io::Result<f64> {
    fd_throughput(true, count, size)
}

/// One-way messages per second over a pipe.
pub fn pipe_throughput(count: usize, size: usize) -> io::Result<f64> {
    fd_throughput(false, count, size)
}

/// Shared memory for the floor: two counters on their own lines and two payload buffers.
#[repr(C, align(128))]
struct FloorLine {
    seq: AtomicU64,
    data: [u8; 120],
}

const FLOOR_MAX: usize = 4096;

/// Round trips through two atomics on shared memory: the floor no queue can beat. The payload
/// (up to 4096 bytes) is copied in and out on both sides.
pub fn floor_round_trips(rounds: usize, size: usize) -> io::Result<Samples> {
    if size > FLOOR_MAX {
        return Err(io::Error::other("floor payload is limited to 4096 bytes"));
    }
    let len = 2 * std::mem::size_of::<FloorLine>() + 2 * FLOOR_MAX;
    // SAFETY: an anonymous shared mapping; checked for failure below.
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
    let base = base.cast::<u8>();
    // SAFETY: the mapping is page aligned, zeroed and `len` bytes long: two FloorLines
    // (atomics are valid when zeroed) followed by two FLOOR_MAX-byte buffers.
    let (ping, pong) = unsafe { (&*base.cast::<FloorLine>(), &*base.cast::<FloorLine>().add(1)) };
    // SAFETY: inside the mapping, after the two lines.
    let (ping_buf, pong_buf) = unsafe {
        let b = base.add(2 * std::mem::size_of::<FloorLine>());
        (b, b.add(FLOOR_MAX))
    };
    let mut scratch = vec![0u8; size.max(1)];
    let pid = fork_child(move || {
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
            pong.seq.store(i, Ordering::Release);
        }
        0
    });
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(base.cast(), len) };
            return Err(e);
        }
    };
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut samples = Vec::with_capacity(rounds);
    let mut ok = true;
    for i in 1..=rounds as u64 {
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
        samples.push(t.elapsed().as_nanos() as u64);
        ok &= back == out;
    }
    let r = reap(pid);
    // SAFETY: the child has exited; nobody uses the mapping any more.
    unsafe { libc::munmap(base.cast(), len) };
    r?;
    if !ok {
        return Err(io::Error::other("floor echo returned wrong bytes"));
    }
    Ok(samples)
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
        for size in [0usize, 8, 1024] {
            assert_eq!(uds_round_trips(100, size).unwrap().len(), 100);
            assert_eq!(pipe_round_trips(100, size).unwrap().len(), 100);
            assert_eq!(floor_round_trips(100, size).unwrap().len(), 100);
            assert!(uds_throughput(1000, size).unwrap() > 0.0);
            assert!(pipe_throughput(1000, size).unwrap() > 0.0);
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
