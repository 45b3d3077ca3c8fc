//! Waiting on many queues, topics and timers at once: [`WaitSet`].
//!
//! A `WaitSet` owns the consumers and subscribers attached to it (borrow them back with
//! `ws[key]`), plus deadlines and intervals. [`WaitSet::wait`] returns the [`Token`]s of those
//! that are probably ready: a consumer or subscriber with a message to look at (or whose
//! senders are all gone, so that a receive says `Disconnected`), a timer that is due. Nothing
//! is received by the wait itself, so nothing is lost; readiness may be spurious (a message
//! another consumer took first), but is never missed.
//!
//! ## How it sleeps
//!
//! Per its [`WaitStrategy`]: `Spin` and `Yield` poll every source; `Block` (the default) polls
//! for 50 µs, yields for 100 µs, and then sleeps in the kernel on the futex words of every
//! attached stream at once with `futex_waitv` (Linux 5.16+). It uses the handshake of a single
//! blocking receive (see `wait`), once per stream:
//!
//! ```text
//!  for each stream: sleepers += 1 (and the participant's mark)
//!  fence(SeqCst); membarrier(GLOBAL_EXPEDITED)
//!  for each stream: s_i = seq_i            (Acquire)
//!  poll every source; if one is ready, stop
//!  futex_waitv([(seq_i, s_i)...], until the next timer, at most 100 ms)
//!  for each stream: sleepers -= 1
//! ```
//!
//! A sender that publishes after our poll sees a sleeper and bumps `seq_i`, so the kernel
//! either does not let us sleep or wakes us: no wake-up is lost, and senders make no syscall
//! while nobody sleeps. Without `futex_waitv` (older kernels, or more than 128 distinct
//! streams) the set sleeps on the first stream's word in slices of 1 ms and polls every source
//! after each (the fallback: correct, but it wakes 1,000 times a second); [`WaitSet::mechanism`]
//! says which one runs.

use std::ops::{Index, IndexMut};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attach::AttRef;
use crate::error::{Error, Result};
use crate::os;
use crate::queue::Consumer;
use crate::sync::{
    fence,
    Ordering::{Acquire, Relaxed, SeqCst},
};
use crate::topic::Subscriber;
use crate::wait::{Step, WaitStrategy, PEER_CHECK};

/// How long `Block` polls before it yields, and yields before it sleeps (as a single receive).
const SPIN_BUDGET: Duration = Duration::from_micros(50);
const YIELD_BUDGET: Duration = Duration::from_micros(100);
/// Longest sleep: senders that died are noticed at least this often.
const MAX_SLICE: Duration = Duration::from_millis(100);
/// The fallback's sleep on one word.
const FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// Identifies a source in a [`WaitSet`]'s ready list. Compare it with a [`Key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// A source attached to a [`WaitSet`]: index the set with it (`ws[key]`) to use a consumer or
/// subscriber, compare it with the [`Token`]s that `wait` returns.
#[derive(Debug)]
pub struct Key<T> {
    token: Token,
    set: u64,
    _kind: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Key<T> {}

impl<T> Key<T> {
    /// The token this source is reported with.
    pub fn token(&self) -> Token {
        self.token
    }
}

impl<T> PartialEq<Token> for Key<T> {
    fn eq(&self, t: &Token) -> bool {
        self.token == *t
    }
}

impl<T> PartialEq<Key<T>> for Token {
    fn eq(&self, k: &Key<T>) -> bool {
        *self == k.token
    }
}

/// A deadline attached to a [`WaitSet`]: ready once, when it has passed (until removed).
#[derive(Debug)]
pub struct Deadline(Instant);

/// An interval attached to a [`WaitSet`]: ready every period (a period missed while nobody
/// waited is reported once, not once per period missed).
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Instant,
}

/// A wake-up source attached to a [`WaitSet`] ([`WaitSet::add_waker`]): ready once after each
/// [`Waker::wake`] from any thread.
#[derive(Debug)]
pub struct Wake(Arc<WakeWord>);

/// Wakes a [`WaitSet`] from another thread; `Clone`, `Send`, `Sync`.
#[derive(Clone, Debug)]
pub struct Waker(Arc<WakeWord>);

#[derive(Debug, Default)]
struct WakeWord {
    /// Set by `wake`, cleared by the poll that reports it.
    pending: AtomicBool,
    /// The futex word: bumped after `pending` is set.
    seq: AtomicU32,
}

impl Waker {
    /// Makes the wait (the current one, or the next) return with this waker's token ready.
    pub fn wake(&self) {
        // Set, then bump the futex word: a waiter that read the word before the bump either
        // sees `pending` when it polls or finds the word changed when it sleeps.
        self.0.pending.store(true, SeqCst);
        self.0.seq.fetch_add(1, SeqCst);
        os::futex_wake_all(&self.0.seq);
    }
}

#[derive(Debug)]
enum Source {
    Consumer(Consumer),
    Subscriber(Subscriber),
    Deadline(Deadline),
    Interval(Interval),
    Wake(Wake),
}

impl Source {
    fn stream(&mut self) -> Option<Stream<'_>> {
        match self {
            Source::Consumer(c) => Some(Stream::Consumer(c)),
            Source::Subscriber(s) => Some(Stream::Subscriber(s)),
            _ => None,
        }
    }
}

enum Stream<'a> {
    Consumer(&'a mut Consumer),
    Subscriber(&'a mut Subscriber),
}

impl Stream<'_> {
    fn probe(&mut self, check: bool) -> Result<Step<()>> {
        match self {
            Stream::Consumer(c) => c.probe(check),
            Stream::Subscriber(s) => s.probe(check),
        }
    }
    fn attachment(&self) -> AttRef {
        match self {
            Stream::Consumer(c) => c.attachment(),
            Stream::Subscriber(s) => s.attachment(),
        }
    }
}

/// Kinds of sources a [`WaitSet`] holds; implemented for [`Consumer`], [`Subscriber`],
/// [`Deadline`] and [`Interval`] (sealed).
pub trait Attach: Sized + private::Sealed {
    #[doc(hidden)]
    fn into_source(self) -> SourceBox;
    #[doc(hidden)]
    fn from_source(s: &SourceBox) -> Option<&Self>;
    #[doc(hidden)]
    fn from_source_mut(s: &mut SourceBox) -> Option<&mut Self>;
    #[doc(hidden)]
    fn take(s: SourceBox) -> Option<Self>;
}

/// A source inside a [`WaitSet`] (opaque).
#[doc(hidden)]
#[derive(Debug)]
pub struct SourceBox(Source);

mod private {
    pub trait Sealed {}
    impl Sealed for crate::queue::Consumer {}
    impl Sealed for crate::topic::Subscriber {}
    impl Sealed for super::Deadline {}
    impl Sealed for super::Interval {}
    impl Sealed for super::Wake {}
}

macro_rules! attach {
    ($t:ty, $v:ident) => {
        impl Attach for $t {
            fn into_source(self) -> SourceBox {
                SourceBox(Source::$v(self))
            }
            fn from_source(s: &SourceBox) -> Option<&Self> {
                match &s.0 {
                    Source::$v(x) => Some(x),
                    _ => None,
                }
            }
            fn from_source_mut(s: &mut SourceBox) -> Option<&mut Self> {
                match &mut s.0 {
                    Source::$v(x) => Some(x),
                    _ => None,
                }
            }
            fn take(s: SourceBox) -> Option<Self> {
                match s.0 {
                    Source::$v(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}
attach!(Consumer, Consumer);
attach!(Subscriber, Subscriber);
attach!(Deadline, Deadline);
attach!(Interval, Interval);
attach!(Wake, Wake);

/// Which kernel mechanism a [`WaitSet`] sleeps with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `futex_waitv` on every stream's futex word at once: woken by whichever stream gets a
    /// message; no CPU used while idle.
    FutexWaitv,
    /// The kernel has no `futex_waitv` (before Linux 5.16), or more than 128 distinct streams
    /// are attached: sleeps on the first stream's word in 1 ms slices and polls every source
    /// after each.
    Fallback,
}

impl Mechanism {
    /// A short name for logs: `futex_waitv` or `fallback (1 ms slices)`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::FutexWaitv => "futex_waitv",
            Mechanism::Fallback => "fallback (1 ms slices)",
        }
    }
}

/// Waits on many consumers, subscribers and timers at once. See the [module docs](self).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::waitset::WaitSet;
/// use shmq::{QueueOptions, TopicOptions};
/// use std::time::Duration;
///
/// let q = QueueOptions::new().dir(dir.path()).create("orders")?;
/// let t = TopicOptions::new().dir(dir.path()).create("prices")?;
/// let mut ws = WaitSet::new();
/// let orders = ws.add(q.consumer()?);
/// let prices = ws.add(t.subscriber().build()?);
/// let tick = ws.add_interval(Duration::from_millis(100));
///
/// q.producer()?.send(b"buy 10")?;
/// let mut ready = Vec::new();
/// let mut buf = [0u8; 256];
/// ws.wait(&mut ready)?;
/// for &token in &ready {
///     if token == orders {
///         while let Ok(m) = ws[orders].try_recv(&mut buf) {
///             assert_eq!(&buf[..m.len], b"buy 10");
///         }
///     } else if token == prices {
///         while ws[prices].try_recv(&mut buf).is_ok() {}
///     } else if token == tick {
///         // once every 100 ms
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WaitSet {
    sources: Vec<Option<SourceBox>>,
    id: u64,
    strategy: WaitStrategy,
    force_fallback: bool,
    /// `Block`'s spin and yield budgets, and its longest sleep (tests shorten or lengthen them).
    spin_budget: Duration,
    yield_budget: Duration,
    max_slice: Duration,
    /// How often every stream's peers are checked (a syscall per stream).
    check_period: Duration,
    /// The attachments of the streams, one per distinct segment (what `sleep` counts itself
    /// on), and the futex values read before a sleep: rebuilt when sources change, so that
    /// `wait` allocates nothing.
    sleep_on: Vec<AttRef>,
    seqs: Vec<u32>,
    /// Per `sleep_on` entry: whether its futex word moved during the last sleep (a message, or
    /// a sender that left: only those segments' senders are checked after a wake-up).
    moved: Vec<bool>,
    /// Per source: its index in `sleep_on` (`usize::MAX` for timers and wakers).
    seg_of: Vec<usize>,
    /// The wake-up words of the attached wakers, and their values read before a sleep.
    wakers: Vec<Arc<WakeWord>>,
    waker_seqs: Vec<u32>,
    next_check: Instant,
}

impl std::fmt::Debug for WaitSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("sources", &self.len())
            .field("segments", &self.sleep_on.len())
            .field("strategy", &self.strategy)
            .field("mechanism", &self.mechanism().name())
            .finish()
    }
}

impl Default for WaitSet {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitSet {
    /// An empty set that waits per [`WaitStrategy::Block`].
    pub fn new() -> WaitSet {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        WaitSet {
            sources: Vec::new(),
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            strategy: WaitStrategy::Block,
            force_fallback: false,
            spin_budget: SPIN_BUDGET,
            yield_budget: YIELD_BUDGET,
            max_slice: MAX_SLICE,
            check_period: PEER_CHECK,
            sleep_on: Vec::new(),
            seqs: Vec::new(),
            moved: Vec::new(),
            seg_of: Vec::new(),
            wakers: Vec::new(),
            waker_seqs: Vec::new(),
            next_check: Instant::now(),
        }
    }

    /// How `wait` waits (the default is `Block`).
    pub fn with_strategy(mut self, strategy: WaitStrategy) -> WaitSet {
        self.strategy = strategy;
        self
    }

    /// Sleeps with the fallback mechanism even where `futex_waitv` exists (for tests and
    /// comparisons).
    pub fn with_fallback(mut self) -> WaitSet {
        self.force_fallback = true;
        self
    }

    /// For tests: `Block` sleeps at once (no spinning, no yielding), each sleep lasts up to
    /// `max_slice` when nothing wakes it, and every stream's peers are checked only that often
    /// (so that a lost wake-up, or a departure not understood on its wake-up, shows as a stall
    /// that long).
    #[doc(hidden)]
    pub fn sleep_at_once(mut self, max_slice: Duration) -> WaitSet {
        self.spin_budget = Duration::ZERO;
        self.yield_budget = Duration::ZERO;
        self.max_slice = max_slice;
        self.check_period = max_slice;
        self
    }

    /// The mechanism `wait` sleeps with now.
    pub fn mechanism(&self) -> Mechanism {
        let words = self.sleep_on.len() + self.wakers.len();
        if self.force_fallback || !os::futex_waitv_supported() || words > os::FUTEX_WAITV_MAX {
            Mechanism::Fallback
        } else {
            Mechanism::FutexWaitv
        }
    }

    /// Attaches a consumer, a subscriber, a [`Deadline`] or an [`Interval`]; use it through
    /// `ws[key]`, take it back with [`remove`](Self::remove).
    pub fn add<T: Attach>(&mut self, source: T) -> Key<T> {
        let token = Token(self.sources.len());
        self.sources.push(Some(source.into_source()));
        self.rebuild();
        Key { token, set: self.id, _kind: std::marker::PhantomData }
    }

    /// Attaches a deadline: ready once `at` has passed, until removed.
    pub fn add_deadline(&mut self, at: Instant) -> Key<Deadline> {
        self.add(Deadline(at))
    }

    /// Attaches an interval: ready every `period`, the first time one period from now.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn add_interval(&mut self, period: Duration) -> Key<Interval> {
        assert!(!period.is_zero(), "an interval needs a period above zero");
        self.add(Interval { period, next: Instant::now() + period })
    }

    /// Attaches a wake-up source: its token is ready once after each [`Waker::wake`] (from any
    /// thread), which also ends a sleep at once.
    pub fn add_waker(&mut self) -> (Key<Wake>, Waker) {
        let word = Arc::new(WakeWord::default());
        (self.add(Wake(word.clone())), Waker(word))
    }

    /// Takes a source back out of the set; its key is not valid any more (its token is not
    /// reused).
    ///
    /// # Panics
    /// If `key` belongs to another set or was removed already.
    pub fn remove<T: Attach>(&mut self, key: Key<T>) -> T {
        self.check(&key);
        let s = self.sources[key.token.0].take().expect("the key's source was removed already");
        self.rebuild();
        T::take(s).expect("a key's type matches its source")
    }

    /// The source of type `T` at `token`, if it is one.
    pub(crate) fn by_token_mut<T: Attach>(&mut self, token: Token) -> Option<&mut T> {
        T::from_source_mut(self.sources.get_mut(token.0)?.as_mut()?)
    }

    /// Drops the source at `token`.
    pub(crate) fn remove_token(&mut self, token: Token) {
        if let Some(s) = self.sources.get_mut(token.0) {
            *s = None;
        }
        self.rebuild();
    }

    /// Number of sources attached.
    pub fn len(&self) -> usize {
        self.sources.iter().flatten().count()
    }

    /// Whether no source is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check<T>(&self, key: &Key<T>) {
        assert!(key.set == self.id, "this key belongs to another WaitSet");
    }

    /// Waits until at least one source is ready and puts the tokens of the ready ones in
    /// `ready` (cleared first). Returns at once if some already are.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if a segment holds impossible indices; nothing else.
    pub fn wait(&mut self, ready: &mut Vec<Token>) -> std::result::Result<(), crate::RecvError> {
        self.wait_until(ready, None).map_err(crate::RecvError::from_internal)
    }

    /// [`wait`](Self::wait), for at most `timeout`: `Timeout` (and `ready` empty) if nothing
    /// was ready by then.
    ///
    /// # Errors
    /// `Timeout`; `Corrupted` as for `wait`.
    pub fn wait_timeout(
        &mut self,
        ready: &mut Vec<Token>,
        timeout: Duration,
    ) -> std::result::Result<(), crate::RecvTimeoutError> {
        let until = Instant::now().checked_add(timeout);
        self.wait_until(ready, Some(until.unwrap_or_else(far_future))).map_err(crate::RecvTimeoutError::from_internal)
    }

    /// The tokens of the sources that are ready now, without waiting (`ready` may stay empty).
    ///
    /// # Errors
    /// `Corrupted` as for `wait`.
    pub fn poll(&mut self, ready: &mut Vec<Token>) -> std::result::Result<(), crate::RecvError> {
        ready.clear();
        let check = self.check_due(Instant::now());
        let checks = Check::new(check, &self.seg_of, &self.moved);
        poll_sources(&mut self.sources, ready, checks).map_err(crate::RecvError::from_internal)?;
        self.moved.fill(false);
        Ok(())
    }

    fn wait_until(&mut self, ready: &mut Vec<Token>, deadline: Option<Instant>) -> Result<()> {
        ready.clear();
        let start = Instant::now();
        let mut round: u32 = 0;
        loop {
            let now =
                if round % 64 == 0 || !matches!(self.strategy, WaitStrategy::Spin) { Instant::now() } else { start };
            let check = self.check_due(now);
            let held = poll_sources(&mut self.sources, ready, Check::new(check, &self.seg_of, &self.moved))?;
            self.moved.fill(false);
            if !ready.is_empty() {
                return Ok(());
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
            round = round.wrapping_add(1);
            let waited = now.saturating_duration_since(start);
            match self.strategy {
                WaitStrategy::Spin => crate::sync::spin_hint(),
                WaitStrategy::Yield => crate::sync::yield_now(),
                WaitStrategy::Block if waited < self.spin_budget => crate::sync::spin_hint(),
                WaitStrategy::Block if waited < self.spin_budget + self.yield_budget => crate::sync::yield_now(),
                WaitStrategy::Block => {
                    let mut slice = if held { PEER_CHECK } else { self.max_slice };
                    if let Some(t) = self.next_timer() {
                        slice = slice.min(t.saturating_duration_since(now));
                    }
                    if let Some(d) = deadline {
                        slice = slice.min(d.saturating_duration_since(now));
                    }
                    self.sleep(ready, slice)?;
                    if !ready.is_empty() {
                        return Ok(());
                    }
                    // The next poll checks the senders of the segments whose word moved (a
                    // sender that leaves wakes its receivers), so that such a wake-up is
                    // understood at once; the others wait for their turn (`PEER_CHECK`).
                }
            }
        }
    }

    /// Recomputes the distinct segments to sleep on.
    fn rebuild(&mut self) {
        self.sleep_on.clear();
        self.wakers.clear();
        self.seg_of.clear();
        for s in self.sources.iter_mut() {
            let s = s.as_mut().map(|s| &mut s.0);
            if let Some(Source::Wake(w)) = &s {
                self.wakers.push(w.0.clone());
            }
            let Some(st) = s.and_then(Source::stream) else {
                self.seg_of.push(usize::MAX);
                continue;
            };
            let att = st.attachment();
            let ev = att.data_sleep().0;
            match self.sleep_on.iter().position(|a| std::ptr::eq(a.data_sleep().0, ev)) {
                Some(i) => self.seg_of.push(i),
                None => {
                    self.seg_of.push(self.sleep_on.len());
                    self.sleep_on.push(att);
                }
            }
        }
        self.seqs = vec![0; self.sleep_on.len()];
        self.moved = vec![false; self.sleep_on.len()];
        self.waker_seqs = vec![0; self.wakers.len()];
    }

    /// Whether it is time to check the peers of every stream (every [`PEER_CHECK`]).
    fn check_due(&mut self, now: Instant) -> bool {
        let due = now >= self.next_check;
        if due {
            self.next_check = now + self.check_period;
        }
        due
    }

    fn next_timer(&self) -> Option<Instant> {
        self.sources
            .iter()
            .flatten()
            .filter_map(|s| match &s.0 {
                Source::Deadline(d) => Some(d.0),
                Source::Interval(iv) => Some(iv.next),
                _ => None,
            })
            .min()
    }

    /// One sleep on every stream's data event (see the module docs), for at most `slice`.
    fn sleep(&mut self, ready: &mut Vec<Token>, slice: Duration) -> Result<()> {
        let mechanism = self.mechanism();
        // Counted first, marked second (and unmarked before uncounting, below), as a single
        // receive does (`wait::sleep`).
        for att in &self.sleep_on {
            let (ev, mark) = att.data_sleep();
            ev.sleepers.fetch_add(1, SeqCst);
            mark.fetch_add(1, Relaxed);
        }
        // Pairs with the notifiers' fence (Dekker handshake, see `wait`).
        fence(SeqCst);
        let slice = if self.sleep_on.is_empty() || os::membarrier_global() { slice } else { slice.min(FALLBACK_SLICE) };
        for (att, seq) in self.sleep_on.iter().zip(self.seqs.iter_mut()) {
            // Acquire: pairs with the notifier's Release bump of `seq`.
            *seq = att.data_sleep().0.seq.load(Acquire);
        }
        for (w, seq) in self.wakers.iter().zip(self.waker_seqs.iter_mut()) {
            *seq = w.seq.load(SeqCst);
        }
        let recheck = poll_sources(&mut self.sources, ready, Check::new(false, &[], &[]));
        if recheck.is_ok() && ready.is_empty() {
            let streams = self.sleep_on.iter().map(|a| &a.data_sleep().0.seq).zip(self.seqs.iter().copied());
            let wakers = self.wakers.iter().map(|w| &w.seq).zip(self.waker_seqs.iter().copied());
            let words = streams.chain(wakers);
            let slept = mechanism == Mechanism::FutexWaitv && os::futex_waitv(words, slice);
            if !slept {
                // One word at a time: a waker's if there is one (wakes at once), else the first
                // stream's; every source is polled again after at most FALLBACK_SLICE.
                let short = if self.sleep_on.is_empty() { slice } else { slice.min(FALLBACK_SLICE) };
                match (self.wakers.first(), self.sleep_on.first()) {
                    (Some(w), _) => os::futex_wait(&w.seq, self.waker_seqs[0], short),
                    (None, Some(a)) => os::futex_wait(&a.data_sleep().0.seq, self.seqs[0], short),
                    (None, None) => std::thread::sleep(slice), // only timers
                }
            }
        }
        for ((att, seq), moved) in self.sleep_on.iter().zip(&self.seqs).zip(self.moved.iter_mut()) {
            let (ev, mark) = att.data_sleep();
            mark.fetch_sub(1, Relaxed);
            ev.sleepers.fetch_sub(1, SeqCst);
            // Relaxed: only decides which senders the next poll checks (a hint; every
            // segment's are checked every PEER_CHECK anyway).
            *moved = ev.seq.load(Relaxed) != *seq;
        }
        recheck.map(|_| ())
    }
}

/// Which streams a poll checks the liveness of their peers for (a syscall each): all of them,
/// or those of the segments whose futex word moved during the last sleep.
#[derive(Clone, Copy)]
struct Check<'a> {
    all: bool,
    seg_of: &'a [usize],
    moved: &'a [bool],
}

impl<'a> Check<'a> {
    fn new(all: bool, seg_of: &'a [usize], moved: &'a [bool]) -> Self {
        Check { all, seg_of, moved }
    }
    fn source(&self, i: usize) -> bool {
        self.all || self.seg_of.get(i).and_then(|&seg| self.moved.get(seg)).copied().unwrap_or(false)
    }
}

/// Polls every source once, pushing the ready ones; returns whether a stream's next slot is
/// held by a peer (its liveness is then checked every [`PEER_CHECK`]).
fn poll_sources(sources: &mut [Option<SourceBox>], ready: &mut Vec<Token>, checks: Check<'_>) -> Result<bool> {
    let now = Instant::now();
    let mut held = false;
    for (i, s) in sources.iter_mut().enumerate() {
        let Some(SourceBox(s)) = s else { continue };
        let check = checks.source(i);
        let is_ready = match s {
            Source::Deadline(d) => now >= d.0,
            Source::Interval(iv) => {
                let due = now >= iv.next;
                if due {
                    // Re-armed one period after now: periods missed are reported once.
                    iv.next = now + iv.period;
                }
                due
            }
            Source::Wake(w) => w.0.pending.swap(false, SeqCst),
            Source::Consumer(_) | Source::Subscriber(_) => {
                let mut st = s.stream().expect("a stream");
                match st.probe(check)? {
                    Step::Ready(()) => true,
                    Step::Held | Step::Writing => {
                        held = true;
                        false
                    }
                    Step::Wait => check && st.attachment().sender_gone(),
                }
            }
        };
        if is_ready {
            ready.push(Token(i));
        }
    }
    Ok(held)
}

/// Whether this kernel has `futex_waitv` (Linux 5.16+), which a [`WaitSet`] sleeps with.
pub fn futex_waitv_supported() -> bool {
    os::futex_waitv_supported()
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl<T: Attach> Index<Key<T>> for WaitSet {
    type Output = T;
    fn index(&self, key: Key<T>) -> &T {
        self.check(&key);
        let s = self.sources[key.token.0].as_ref().expect("the key's source was removed");
        T::from_source(s).expect("a key's type matches its source")
    }
}

impl<T: Attach> IndexMut<Key<T>> for WaitSet {
    fn index_mut(&mut self, key: Key<T>) -> &mut T {
        self.check(&key);
        let s = self.sources[key.token.0].as_mut().expect("the key's source was removed");
        T::from_source_mut(s).expect("a key's type matches its source")
    }
}
