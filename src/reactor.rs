//! The background waiter of the `async` feature: one thread per process sleeps on the futex
//! words of every stream a pending future waits on, and wakes those futures' tasks.
//!
//! A future that finds nothing to do ([`Registration::poll_with`]):
//!
//! ```text
//!  counts itself as a sleeper on the stream's event (sleepers += 1, the participant's mark)
//!  fence(SeqCst); membarrier(GLOBAL_EXPEDITED)       -- the single-receive handshake (`wait`);
//!                                                       count and barrier once while pending
//!  s0 = seq (Acquire)
//!  tries again; if it can, it is done (and uncounts itself)
//!  hands (seq, s0, waker) to the reactor and returns Pending
//! ```
//!
//! The reactor sleeps in `futex_waitv` on its own wake-up word (new watches) and on every
//! watched `seq`; a watch whose `seq` moved from `s0` has its task woken and is dropped. A
//! sender that published after the future's last try saw the sleeper and bumped `seq` after
//! the future read `s0` (or the future's try saw the message): no wake-up is lost. The reactor
//! also wakes every watch at least every 100 ms, so that a future notices senders that died
//! (no one will bump `seq` for it). A future dropped while pending uncounts itself; the reactor
//! drops its watch at its next turn. Without `futex_waitv`, the reactor sleeps on its own word
//! in 1 ms slices and compares every watched word after each.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::attach::AttRef;
use crate::os;
use crate::sync::{fence, Ordering::Acquire, Ordering::Relaxed};

/// Longest reactor sleep: pending futures are polled again at least this often (tests
/// lengthen it, so that a lost wake-up shows as a stall: [`set_slice_for_tests`]).
const MAX_SLICE: Duration = Duration::from_millis(100);
static SLICE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(MAX_SLICE.as_millis() as u64);

/// For tests: the reactor's longest sleep.
pub fn set_slice_for_tests(slice: Duration) {
    SLICE_MS.store(slice.as_millis().max(1) as u64, SeqCst);
}

fn slice() -> Duration {
    Duration::from_millis(SLICE_MS.load(SeqCst))
}
/// The reactor's sleep without `futex_waitv`.
const FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// What one pending future waits for.
struct Watch {
    att: AttRef,
    /// The space event (a sender) rather than the data event (a receiver).
    space: bool,
    /// The event's `seq` when the future last found nothing.
    seq0: AtomicU32,
    waker: Mutex<Option<Waker>>,
    /// Set by the future when it no longer waits (done or dropped).
    cancelled: AtomicBool,
    /// Set by the reactor when it woke the task (the watch is then out of its list).
    fired: AtomicBool,
}

impl Watch {
    fn seq(&self) -> &AtomicU32 {
        if self.space {
            &self.att.space_sleep().0.seq
        } else {
            &self.att.data_sleep().0.seq
        }
    }
}

struct Reactor {
    watches: Mutex<Vec<Arc<Watch>>>,
    /// Bumped (and futex-woken) when a watch is added.
    bell: AtomicU32,
}

/// This process's reactor, started on first use. A child forked from a process that had one
/// has no reactor thread (fork copies only the calling thread): it starts its own.
fn reactor() -> &'static Reactor {
    static REACTOR: Mutex<Option<(u32, &'static Reactor)>> = Mutex::new(None);
    let mut r = REACTOR.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    match *r {
        Some((p, reactor)) if p == pid => reactor,
        _ => {
            let reactor: &'static Reactor =
                Box::leak(Box::new(Reactor { watches: Mutex::new(Vec::new()), bell: AtomicU32::new(0) }));
            std::thread::Builder::new()
                .name("shmq-reactor".into())
                .spawn(move || reactor.run())
                .expect("starting the shmq reactor thread");
            *r = Some((pid, reactor));
            reactor
        }
    }
}

impl Reactor {
    fn add(&self, w: Arc<Watch>) {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner).push(w);
        self.bell.fetch_add(1, SeqCst);
        os::futex_wake_all(&self.bell);
    }

    fn run(&self) {
        let mut live: Vec<Arc<Watch>> = Vec::new();
        let mut last_all = std::time::Instant::now();
        loop {
            let bell = self.bell.load(SeqCst);
            {
                let mut w = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
                w.retain(|w| !w.cancelled.load(SeqCst) && !w.fired.load(SeqCst));
                live.clear();
                live.extend(w.iter().cloned());
            }
            let words = std::iter::once((&self.bell, bell)).chain(live.iter().map(|w| (w.seq(), w.seq0.load(SeqCst))));
            let slept = os::futex_waitv_supported() && os::futex_waitv(words, slice());
            if !slept {
                os::futex_wait(&self.bell, bell, FALLBACK_SLICE);
            }
            // Fire the watches whose word moved, and every watch at least every MAX_SLICE (so
            // that futures notice senders that died).
            let all = last_all.elapsed() >= slice();
            if all {
                last_all = std::time::Instant::now();
            }
            for w in &live {
                if (all || w.seq().load(SeqCst) != w.seq0.load(SeqCst)) && !w.fired.swap(true, SeqCst) {
                    if let Some(k) = w.waker.lock().unwrap_or_else(PoisonError::into_inner).take() {
                        k.wake();
                    }
                }
            }
            live.clear();
        }
    }
}

/// A future's wait on one stream's event: counts it as a sleeper while pending.
#[derive(Default)]
pub(crate) struct Registration {
    watch: Option<Arc<Watch>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("pending", &self.watch.is_some()).finish()
    }
}

impl Registration {
    /// Runs `attempt` (`None`: nothing yet); when it finds nothing, registers (see the module
    /// docs), tries once more, and returns `Pending` with the task's waker handed to the
    /// reactor. `att` and `space` name the event to wait on.
    pub(crate) fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        att: impl FnOnce() -> AttRef,
        space: bool,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Poll<T> {
        if let Some(v) = attempt() {
            self.cancel();
            return Poll::Ready(v);
        }
        let watch = match &self.watch {
            Some(w) if !w.fired.load(SeqCst) => {
                // Still armed: a newer waker, perhaps.
                *w.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Some(w) => {
                // Fired (the word moved, or the reactor's slice ran out): re-arm below, still
                // counted as a sleeper. No new barrier: a sender that publishes after our last
                // try sees our count, long visible (the barrier followed the count), and bumps
                // `seq`; `s0` is read (Acquire) before the try, so either we read the old value,
                // which the bump changes, or the try sees the message.
                let w = Arc::new(Watch {
                    att: w.att.clone(),
                    space,
                    seq0: AtomicU32::new(0),
                    waker: Mutex::new(None),
                    cancelled: AtomicBool::new(false),
                    fired: AtomicBool::new(false),
                });
                self.replace(w)
            }
            None => {
                let w = Arc::new(Watch {
                    att: att(),
                    space,
                    seq0: AtomicU32::new(0),
                    waker: Mutex::new(None),
                    cancelled: AtomicBool::new(false),
                    fired: AtomicBool::new(false),
                });
                let (ev, mark) = if space { w.att.space_sleep() } else { w.att.data_sleep() };
                ev.sleepers.fetch_add(1, SeqCst);
                mark.fetch_add(1, Relaxed);
                // Pairs with the notifiers' fence (the Dekker handshake of `wait`): once per
                // registration, right after the count.
                fence(SeqCst);
                os::membarrier_global();
                self.watch = Some(w.clone());
                w
            }
        };
        // Acquire: pairs with the notifier's Release bump of `seq`.
        watch.seq0.store(watch.seq().load(Acquire), SeqCst);
        if let Some(v) = attempt() {
            self.cancel();
            return Poll::Ready(v);
        }
        *watch.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        reactor().add(watch);
        Poll::Pending
    }

    /// Swaps in a fresh watch for a fired one, keeping the sleeper count (which belongs to the
    /// registration, not the watch).
    fn replace(&mut self, w: Arc<Watch>) -> Arc<Watch> {
        self.watch = Some(w.clone());
        w
    }

    /// Stops waiting: uncounts the sleeper, tells the reactor to drop the watch.
    pub(crate) fn cancel(&mut self) {
        if let Some(w) = self.watch.take() {
            w.cancelled.store(true, SeqCst);
            let (ev, mark) = if w.space { w.att.space_sleep() } else { w.att.data_sleep() };
            mark.fetch_sub(1, Relaxed);
            ev.sleepers.fetch_sub(1, SeqCst);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancel();
    }
}
