//! Waiting: spin, then yield, then sleep on a futex word in the segment.
//!
//! The sleeper/notifier handshake (see [`crate::layout::Event`]):
//!
//! ```text
//!  sleeper                                   notifier
//!  sleepers.fetch_add(1)  (SeqCst)           publish (Release store of state / index)
//!  fence(SeqCst)                             light: compiler fence  | heavy: fence(SeqCst)
//!  membarrier(GLOBAL_EXPEDITED)              if sleepers.load() != 0 {
//!  s = seq.load()                                seq.fetch_add(1); FUTEX_WAKE(seq)
//!  re-check the condition; if it holds,      }
//!      stop waiting
//!  FUTEX_WAIT(seq, s, slice)
//!  sleepers.fetch_sub(1)
//! ```
//!
//! This is a Dekker handshake: either the notifier sees the sleeper's count, or the sleeper's
//! re-check sees the notifier's publish; a wake-up between the read of `seq` and the sleep makes
//! FUTEX_WAIT return at once. So no wake-up is lost, and a notifier makes no syscall while
//! nobody sleeps.
//!
//! The notifier is the hot path (every send and every receive), so it uses an *asymmetric*
//! fence, as userspace RCU does: a process registered for expedited global membarriers
//! ([`os::membarrier_register`]) issues only a compiler fence, and the sleeper, which is about
//! to make a syscall anyway, issues `membarrier(GLOBAL_EXPEDITED)`, which runs a full barrier
//! on every CPU running a registered process. Whatever point of the notifier's store-then-load
//! that barrier lands on, one of the two sides sees the other. A process that cannot register
//! uses a full fence (heavy notifier); a sleeper whose membarrier fails sleeps in 1 ms slices.
//! (Measured: the SeqCst fence was about 60% of a producer's time in a throughput loop.)
//!
//! Sleeps are also bounded by a slice, so a corrupted counter or a peer that died
//! mid-protocol costs latency, never a hang.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::Event;
use crate::os;
use std::sync::atomic::compiler_fence;

use crate::sync::{
    fence, AtomicU32,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};

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

/// Spins before the first yield (Yield).
const SPINS: u32 = 256;
/// How long Block spins before it yields: longer than a futex wake-up, so that a ping-pong
/// partner's reply usually arrives before anyone sleeps.
const SPIN_BUDGET: Duration = Duration::from_micros(50);
/// How long Block yields before it sleeps.
const YIELD_BUDGET: Duration = Duration::from_micros(100);
/// Longest single sleep: how long a sleeper may take to notice that the other side died
/// (`Error::Disconnected`), and a safety net for corrupted counters.
const MAX_SLICE: Duration = Duration::from_millis(100);
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
    /// Like `Held`, by a writer copying a message in (`slot::WRITING`): done in moments, so a
    /// `try_*` receive waits it out (see `Attachment::run`).
    Writing,
}

impl<T> Step<T> {
    /// `Held`, or `Writing` if the claim in the slot state `word` is a copy in progress.
    pub(crate) fn held_by(word: u64) -> Step<T> {
        if crate::layout::slot::tag(word) == crate::layout::slot::WRITING {
            Step::Writing
        } else {
            Step::Held
        }
    }
}

/// Wakes everybody sleeping on `ev`, if anybody is. Call after publishing a change. Returns
/// whether anybody was counted as sleeping (the slow path).
#[inline]
pub(crate) fn notify(ev: &Event) -> bool {
    // Orders our publish before the load of `sleepers` (Dekker handshake, see module docs):
    // a compiler fence when sleepers' membarrier covers us, else a full fence.
    if os::membarrier_register() {
        compiler_fence(SeqCst);
    } else {
        fence(SeqCst);
    }
    if ev.sleepers.load(Relaxed) == 0 {
        return false;
    }
    // Release: pairs with the sleeper's Acquire load of `seq`. A sleeper that sees the new
    // `seq` (and so does not sleep, or wakes) also sees what we published before it, on any
    // CPU (on x86 every store is a release store anyway).
    ev.seq.fetch_add(1, Release);
    os::futex_wake_all(&ev.seq);
    true
}

/// Where a sleeper records that it is counted in an event's `sleepers`: its participant's
/// count of sleeping threads for that event (`Participant::sleeping_data` or
/// `sleeping_space`), so that whoever finds the participant dead can undo exactly its counts
/// (one per sleeping thread: threads of one attachment share the entry).
pub(crate) type SleepMark<'a> = &'a AtomicU32;

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
    let mut now = start;
    let mut next_check = start + PEER_CHECK;
    let mut round: u32 = 0;
    let mut slept = false;
    loop {
        // The clock is read every 64 spins, and on every round once we yield or sleep.
        let spinning = match strategy {
            WaitStrategy::Spin => true,
            WaitStrategy::Yield => round < SPINS,
            WaitStrategy::Block => now - start < SPIN_BUDGET,
        };
        let fresh = !spinning || round % 64 == 0;
        if fresh {
            now = Instant::now();
        }
        let check = fresh && now >= next_check;
        if check {
            next_check = now + PEER_CHECK;
        }
        let held = match attempt(check)? {
            Step::Ready(v) => return Ok(v),
            Step::Wait => false,
            Step::Held | Step::Writing => true,
        };
        if let Some(d) = deadline.filter(|_| fresh) {
            if now >= d {
                return Err(Error::Timeout);
            }
        }
        round = round.saturating_add(1);
        if spinning {
            crate::sync::spin_hint();
            continue;
        }
        match strategy {
            WaitStrategy::Block if now - start >= SPIN_BUDGET + YIELD_BUDGET => {
                let mut slice = if held { next_check.saturating_duration_since(now) } else { MAX_SLICE };
                if let Some(d) = deadline {
                    slice = slice.min(d.saturating_duration_since(now));
                }
                // The re-check before the first sleep checks peers too: a side that left before
                // this call started wakes nobody, and must not cost a whole slice.
                let check_first = !std::mem::replace(&mut slept, true);
                if let Some(v) = sleep(ev, mark, slice.max(Duration::from_micros(50)), check_first, &mut attempt)? {
                    return Ok(v);
                }
                // Woken (or the slice ended): check peers on the next attempt, so that a
                // wake-up from a peer that left is understood at once.
                next_check = Instant::now();
            }
            _ => crate::sync::yield_now(),
        }
    }
}

/// One sleep on `ev`, with the re-check of the handshake (`check`: told to check peers). `Some`
/// if the re-check succeeded.
fn sleep<T>(
    ev: &Event,
    mark: SleepMark<'_>,
    slice: Duration,
    check: bool,
    attempt: &mut impl FnMut(bool) -> Result<Step<T>>,
) -> Result<Option<T>> {
    ev.sleepers.fetch_add(1, SeqCst);
    // Counted first, marked second (and unmarked before uncounting, below): a death between
    // the two leaks one count rather than letting a reaper uncount what was never counted.
    mark.fetch_add(1, Relaxed);
    // Pairs with the notifier's fence (Dekker handshake, see module docs): a full fence for
    // heavy notifiers, and a barrier on every registered notifier's CPU for light ones.
    fence(SeqCst);
    let slice = if os::membarrier_global() { slice } else { slice.min(Duration::from_millis(1)) };
    // Acquire: pairs with the notifier's Release bump of `seq` (see `notify`).
    let seq = ev.seq.load(Acquire);
    let recheck = attempt(check);
    if let Ok(Step::Wait | Step::Held | Step::Writing) = recheck {
        os::futex_wait(&ev.seq, seq, slice);
    }
    // A reaper only clears the counts of a dead participant, so ours is still there.
    mark.fetch_sub(1, Relaxed);
    ev.sleepers.fetch_sub(1, SeqCst);
    match recheck? {
        Step::Ready(v) => Ok(Some(v)),
        Step::Wait | Step::Held | Step::Writing => Ok(None),
    }
}
