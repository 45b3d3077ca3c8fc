//! Waiting: spin, then yield, then sleep on a futex word in the segment.
//!
//! The sleeper/notifier handshake (see [`crate::layout::Event`]):
//!
//! ```text
//!  sleeper                                   notifier
//!  sleepers.fetch_add(1)  (SeqCst)           publish (Release store of state / index)
//!  fence(SeqCst)                             fence(SeqCst)
//!  s = seq.load()                            if sleepers.load() != 0 {
//!  re-check the condition; if it holds,          seq.fetch_add(1); FUTEX_WAKE(seq)
//!      stop waiting                          }
//!  FUTEX_WAIT(seq, s, slice)
//!  sleepers.fetch_sub(1)
//! ```
//!
//! The two SeqCst fences make the pair a Dekker handshake: either the notifier sees the
//! sleeper's count, or the sleeper's re-check sees the notifier's publish; a wake-up between
//! the read of `seq` and the sleep makes FUTEX_WAIT return at once. So no wake-up is lost, and a
//! notifier makes no syscall while nobody sleeps. Sleeps are also bounded by a slice, so a
//! corrupted counter or a peer that died mid-protocol costs latency, never a hang.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::Event;
use crate::os;
use crate::sync::{fence, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

/// How a blocking call waits for space or messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// Busy-poll: lowest latency, one core at 100% while waiting.
    Spin,
    /// Poll, giving up the CPU (`sched_yield`) between polls.
    Yield,
    /// Adaptive: spin briefly, yield a little, then sleep on a futex. No CPU used while idle;
    /// the peer makes a `FUTEX_WAKE` only when someone actually sleeps.
    #[default]
    Block,
}

/// Spins before the first yield (Yield, Block).
const SPINS: u32 = 256;
/// Yields before the first sleep (Block).
const YIELDS: u32 = 16;
/// Longest single sleep: a safety net, never needed for correctness.
const MAX_SLICE: Duration = Duration::from_millis(500);
/// While a slot is held by a peer, how often we check whether that peer died.
pub(crate) const PEER_CHECK: Duration = Duration::from_millis(10);

/// What one attempt of a blocking operation found.
pub(crate) enum Step<T> {
    /// Done.
    Ready(T),
    /// Nothing yet.
    Wait,
    /// Nothing yet, and a peer holds the slot we need: re-check its liveness every
    /// [`PEER_CHECK`].
    Held,
}

/// Wakes everybody sleeping on `ev`, if anybody is. Call after publishing a change. Returns
/// whether anybody was counted as sleeping (the slow path).
#[inline]
pub(crate) fn notify(ev: &Event) -> bool {
    // SeqCst fence: orders our publish before the load of `sleepers`; pairs with the fence in
    // `sleep` (Dekker handshake, see module docs).
    fence(SeqCst);
    if ev.sleepers.load(Relaxed) == 0 {
        return false;
    }
    ev.seq.fetch_add(1, Relaxed);
    os::futex_wake_all(&ev.seq);
    true
}

/// Where a sleeper records that it is counted in an event's `sleepers`: its participant's
/// `sleeping` word and the event's bit.
pub(crate) type SleepMark<'a> = (&'a AtomicU64, u64);

/// Runs `attempt` until it is ready or `deadline` passes, waiting between attempts per
/// `strategy` and sleeping on `ev` in Block mode. `attempt(check_peers)` is told to check
/// peers' liveness at most every [`PEER_CHECK`] once something is held.
pub(crate) fn wait_until<T>(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    ev: &Event,
    mark: SleepMark<'_>,
    mut attempt: impl FnMut(bool) -> Result<Step<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut next_check = start + PEER_CHECK;
    let mut round: u32 = 0;
    loop {
        let now_needed = round % 64 == 0 || round >= SPINS;
        let now = if now_needed { Some(Instant::now()) } else { None };
        let check = now.is_some_and(|n| n >= next_check);
        if check {
            next_check = now.unwrap() + PEER_CHECK;
        }
        let held = match attempt(check)? {
            Step::Ready(v) => return Ok(v),
            Step::Wait => false,
            Step::Held => true,
        };
        if let (Some(d), Some(n)) = (deadline, now) {
            if n >= d {
                return Err(Error::Timeout);
            }
        }
        round = round.saturating_add(1);
        match strategy {
            WaitStrategy::Spin => crate::sync::spin_hint(),
            WaitStrategy::Yield if round < SPINS => crate::sync::spin_hint(),
            WaitStrategy::Yield => crate::sync::yield_now(),
            WaitStrategy::Block if round < SPINS => crate::sync::spin_hint(),
            WaitStrategy::Block if round < SPINS + YIELDS => crate::sync::yield_now(),
            WaitStrategy::Block => {
                let now = Instant::now();
                let mut slice = if held { next_check.saturating_duration_since(now) } else { MAX_SLICE };
                if let Some(d) = deadline {
                    slice = slice.min(d.saturating_duration_since(now));
                }
                if let Some(v) = sleep(ev, mark, slice.max(Duration::from_micros(50)), &mut attempt)? {
                    return Ok(v);
                }
            }
        }
    }
}

/// One sleep on `ev`, with the re-check of the handshake. `Some` if the re-check succeeded.
fn sleep<T>(
    ev: &Event,
    (mark, bit): SleepMark<'_>,
    slice: Duration,
    attempt: &mut impl FnMut(bool) -> Result<Step<T>>,
) -> Result<Option<T>> {
    ev.sleepers.fetch_add(1, SeqCst);
    // Counted first, marked second (and unmarked before uncounting, below): a death between
    // the two leaks one count rather than letting a reaper uncount what was never counted.
    mark.fetch_or(bit, Relaxed);
    // SeqCst fence: pairs with the one in `notify` (Dekker handshake, see module docs).
    fence(SeqCst);
    let seq = ev.seq.load(Relaxed);
    let recheck = attempt(false);
    if let Ok(Step::Wait | Step::Held) = recheck {
        os::futex_wait(&ev.seq, seq, slice);
    }
    // A reaper only clears the mark of a dead participant, so ours is still set.
    mark.fetch_and(!bit, Relaxed);
    ev.sleepers.fetch_sub(1, SeqCst);
    match recheck? {
        Step::Ready(v) => Ok(Some(v)),
        Step::Wait | Step::Held => Ok(None),
    }
}
