//! The futex ping-pong: what a wake-up costs, with nothing else around it. Two processes
//! alternate through one 32-bit word per direction on a shared mapping: the requester stores
//! `i` in `ping` and `FUTEX_WAKE`s it, then `FUTEX_WAIT`s on `pong` until it holds `i`; the
//! responder does the mirror image. Each side really sleeps: the responder is asleep before
//! every ping (the requester checks, see [`crate::watch::wait_until_asleep`]), and the
//! requester sleeps while the responder wakes up.
//!
//! The futexes are shared (no `FUTEX_PRIVATE_FLAG`): the two processes map the same memfd.

use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::Release};
use std::time::Duration;

use crate::shm::{Padded, ZeroValid};
use crate::stats::RttRep;
use crate::watch::{asleep_round_trips, Patience, PeerStat};
use crate::Res;

/// Longest single `FUTEX_WAIT`: how often a waiter checks that its peer lives.
const SLICE: Duration = Duration::from_millis(100);

/// The two words, each on its own line.
#[repr(C)]
pub struct Words {
    ping: Padded<AtomicU32>,
    pong: Padded<AtomicU32>,
}

// SAFETY: two atomics, valid when zeroed; no drop glue.
unsafe impl ZeroValid for Words {}

/// `FUTEX_WAIT` on `word` while it holds `expected`, at most `timeout`. Returns at once if it
/// does not; wake-ups, timeouts and signals all just return (the caller re-checks).
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call; `ts` is a
    // valid relative timeout; the other arguments are unused by FUTEX_WAIT.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &ts as *const libc::timespec, 0, 0)
    };
}

/// `FUTEX_WAKE` of one waiter on `word`.
pub fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE only uses its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1, 0, 0, 0) };
}

/// Sleeps on `word` until it holds `i`; anything but `i - 1` or `i` is an error.
fn sleep_for(word: &AtomicU32, i: u32, p: &Patience, what: &str) -> Res<()> {
    let mut sleeps = 0;
    loop {
        let v = word.load(Acquire);
        if v == i {
            return Ok(());
        }
        if v != i.wrapping_sub(1) {
            return Err(format!("futex {what}: expected {i}, found {v}"));
        }
        wait(word, v, SLICE);
        p.slept(&mut sleeps)?;
    }
}

/// `warmup + rounds` round trips to a peer that is asleep before each ping (see
/// [`asleep_round_trips`]); the last `rounds` are recorded.
pub fn requester(w: &Words, peer: &PeerStat, gap: Duration, warmup: u64, rounds: u64, p: &Patience) -> Res<RttRep> {
    asleep_round_trips(peer, gap, warmup, rounds, p, |i| {
        let i = (i + 1) as u32; // the words start at 0
        w.ping.0.store(i, Release);
        wake(&w.ping.0);
        sleep_for(&w.pong.0, i, p, "pong")
    })
}

/// Answers `total` pings, sleeping on `ping` between them.
pub fn responder(w: &Words, total: u64, p: &Patience) -> Res<()> {
    for i in 1..=total {
        let i = i as u32;
        sleep_for(&w.ping.0, i, p, "ping")?;
        w.pong.0.store(i, Release);
        wake(&w.pong.0);
    }
    Ok(())
}
