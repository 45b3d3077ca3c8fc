//! The floor: two processes ping-pong through two atomics, each on its own 128-byte line of a
//! shared mapping, both sides spinning. No queue can beat it.
//!
//! Written here rather than taken from `shmq_cli::baseline::floor_round_trips` so that it runs
//! exactly like the other rows: a re-executed peer, the same pinning, the same clock reads, the
//! same histogram. The sequence number is the payload: each side checks that the other's word
//! moved from `i - 1` to exactly `i`.

use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::shm::{Padded, ZeroValid};
use crate::watch::Patience;
use crate::Res;

/// The two lines: the requester writes `ping`, the responder `pong`.
#[repr(C)]
pub struct Lines {
    ping: Padded<AtomicU64>,
    pong: Padded<AtomicU64>,
}

// SAFETY: two atomics, valid when zeroed; no drop glue.
unsafe impl ZeroValid for Lines {}

/// Waits until `word` holds `i`; anything but `i - 1` or `i` is an error.
#[inline(always)]
fn wait_for(word: &AtomicU64, i: u64, p: &Patience, what: &str) -> Res<()> {
    let mut spins = 0;
    loop {
        let v = word.load(Acquire);
        if v == i {
            return Ok(());
        }
        if v != i - 1 {
            return Err(format!("floor {what}: expected {i}, found {v}"));
        }
        p.spin(&mut spins)?;
    }
}

/// `warmup + rounds` round trips; the last `rounds` are recorded in `hist` (nanoseconds).
pub fn requester(l: &Lines, warmup: u64, rounds: u64, hist: &mut Histogram<u64>, p: &Patience) -> Res<()> {
    for i in 1..=warmup + rounds {
        let t = Instant::now();
        l.ping.0.store(i, Release);
        wait_for(&l.pong.0, i, p, "pong")?;
        let ns = t.elapsed().as_nanos() as u64;
        if i > warmup {
            hist.saturating_record(ns);
        }
    }
    Ok(())
}

/// Answers `total` pings.
pub fn responder(l: &Lines, total: u64, p: &Patience) -> Res<()> {
    for i in 1..=total {
        wait_for(&l.ping.0, i, p, "ping")?;
        l.pong.0.store(i, Release);
    }
    Ok(())
}
