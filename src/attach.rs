//! A process's attachment to a segment: the mapping, its ring, its participant entry, and the
//! blocking-call machinery that queues and topics share.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{self, lock, role, Event};
use crate::mapped_ring::MappedRing;
use crate::os::Lock;
use crate::participants::Participants;
use crate::ring::RingMem;
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering::Relaxed};
use crate::wait::{self, Step, WaitStrategy, PEER_CHECK};
use std::sync::atomic::AtomicBool;

/// One attachment: detaches (frees its participant entry) on drop.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) seg: Segment,
    pub(crate) ring: MappedRing,
    pub(crate) parts: Participants,
    /// Our participant id: what our claims on slots record.
    pub(crate) id: u16,
    pub(crate) wait: WaitStrategy,
    /// When (ns after [`epoch`]) a poll may next check whether a peer holding a slot died.
    next_peer_check: AtomicU64,
    /// When the notify slow path may next look for sleepers that died.
    next_sleeper_reap: AtomicU64,
    /// When a `try_*` call that found nothing may next check whether the other side is gone.
    next_gone_check: AtomicU64,
    /// `try_*` calls that found nothing since the last such check (the clock is read every
    /// [`GONE_POLLS`]).
    empty_polls: AtomicU64,
    /// The last check found the other side gone: `try_*` calls check again at once (cheaply:
    /// the roles of the dead were cleared), so that they keep saying `Disconnected` until a
    /// peer comes back.
    gone_seen: AtomicBool,
    /// Live handles of each role on this attachment (index: the role bit's position). The
    /// entry shows a role while at least one handle has it: handles of one queue or topic
    /// share the attachment, and a producer that is dropped must stop counting as one.
    handles: Mutex<[u32; 6]>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.parts.detach(self.id);
        // Peers waiting on us learn that we left (see `peers_gone`).
        self.wake_all();
    }
}

/// A counted reference to an attachment, whichever handle holds it (a queue's, or a topic's
/// inside its shared state): what a `WaitSet` keeps to sleep on a stream's event.
#[derive(Clone, Debug)]
pub(crate) enum AttRef {
    Queue(std::sync::Arc<Attachment>),
    Topic(std::sync::Arc<crate::topic::TopicShared>),
}

impl std::ops::Deref for AttRef {
    type Target = Attachment;
    fn deref(&self) -> &Attachment {
        match self {
            AttRef::Queue(a) => a,
            AttRef::Topic(t) => &t.att,
        }
    }
}

/// Roles whose absence means that no message will come (receivers watch these).
pub(crate) const SENDERS: u32 = layout::ROLE_PRODUCER | layout::ROLE_PUBLISHER;
/// Roles whose absence means that no space will come (queue senders watch these; a topic's
/// publishers never wait for a subscriber that is gone, see `topic`).
pub(crate) const RECEIVERS: u32 = layout::ROLE_CONSUMER;

/// `try_*` calls that find nothing between two checks of whether the other side is gone.
const GONE_POLLS: u64 = 64;

/// When a blocking call gives up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Never wait (`try_*`).
    Now,
    /// Wait as long as it takes.
    Forever,
    /// Wait until then (`*_timeout`).
    At(Instant),
}

impl Deadline {
    pub(crate) fn after(t: Duration) -> Deadline {
        Instant::now().checked_add(t).map_or(Deadline::Forever, Deadline::At)
    }
}

/// Plain polls a blocking call makes before it starts to wait per its strategy.
const QUICK_POLLS: u32 = 64;
/// How long a `try_*` receive waits out a message being copied in (spinning, then yielding, then
/// sleeping in short naps so that a writer preempted on this CPU can finish). Longer than a
/// scheduler time slice, so that a writer preempted mid-copy on a loaded machine is waited for
/// too.
const WRITE_GRACE: Duration = Duration::from_millis(20);

/// Nanoseconds since a process-wide base instant.
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Takes the turn of a rate-limited action: true at most once per [`PEER_CHECK`].
fn take_turn(next: &AtomicU64) -> bool {
    let now = now_ns();
    let due = next.load(Relaxed);
    now >= due && next.compare_exchange(due, now + PEER_CHECK.as_nanos() as u64, Relaxed, Relaxed).is_ok()
}

/// Undoes what dead participant `dead` left counted: its sleeper counts, its SPSC roles.
/// (Slot claims are recovered by the kind's own scrub, or by the peer that waits on them.)
/// The caller owns `dead`'s entry (holds its lock), so the dead process's counts cannot change
/// meanwhile.
pub(crate) fn release_dead(ring: &MappedRing, seg: &Segment, parts: &Participants, dead: u16) {
    if let Some(e) = parts.entry(dead) {
        let ctl = ring.control();
        // A service's clients sleep for responses on their own channel's event, not on `space`.
        let service = seg.service();
        let space = match &service {
            Some(sv) => &crate::ring::call::CallMem::channel(sv, dead).responses,
            None => &ctl.space.0,
        };
        for (mine, ev) in [(&e.sleeping_data, &ctl.data.0), (&e.sleeping_space, space)] {
            let n = mine.swap(0, Relaxed);
            // Never below zero: a hostile count must not wrap the shared one.
            let _ = ev.sleepers.fetch_update(Relaxed, Relaxed, |s| Some(s.saturating_sub(n)));
        }
    }
    let h = seg.header();
    for holder in [&h.producer_holder, &h.consumer_holder] {
        let w = holder.load(Relaxed);
        if role::holder(w) == dead {
            let _ = holder.compare_exchange(w, role::free(w), Relaxed, Relaxed);
        }
    }
}

/// The last look of a call that found the other side gone: first with the liveness check (a
/// slot at the head held by a claimer that died meanwhile, or whose check was not due, is
/// recovered), then once more past what was recovered; `Disconnected` if nothing is there.
fn last_look<T>(poll: &mut impl FnMut(bool) -> Result<Step<T>>) -> Result<T> {
    for check in [true, false] {
        if let Step::Ready(v) = poll(check)? {
            return Ok(v);
        }
    }
    Err(Error::Disconnected)
}

impl Attachment {
    /// Whether a `try_*` batch that found a slot held may check the holder's liveness now (at
    /// most every [`PEER_CHECK`] per attachment, like the first attempt of [`run`](Self::run)).
    pub(crate) fn peer_check_due(&self) -> bool {
        take_turn(&self.next_peer_check)
    }

    /// Attaches to `seg` with a new participant entry; when the entry of a dead participant is
    /// taken over, its leftovers are released first and `scrub(ring, dead_id)` recovers its
    /// slot claims.
    ///
    /// Holds the segment lock shared meanwhile (waiting up to `lock_wait` while a remover holds
    /// it), and checks under it that the name still leads to the segment: [`Error::NotFound`]
    /// if it was removed (see `segment`), so that the caller opens the name again.
    pub(crate) fn new(
        seg: Segment,
        wait: WaitStrategy,
        lock_wait: Duration,
        mut scrub: impl FnMut(&MappedRing, u16),
    ) -> Result<Self> {
        let files = seg.files.clone();
        let started = Instant::now();
        while !files.lock.lock(lock::SEGMENT, Lock::Read)? {
            if started.elapsed() >= lock_wait {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let attached = (|| {
            if !seg.is_linked()? {
                return Err(Error::NotFound {
                    name: seg.name.clone(),
                    dir: seg.path.parent().map(|d| d.display().to_string()).unwrap_or_default(),
                });
            }
            let ring = seg.ring();
            let parts = seg.participants();
            let id = parts.attach(0, |dead| {
                release_dead(&ring, &seg, &parts, dead);
                scrub(&ring, dead);
            })?;
            Ok((ring, parts, id))
        })();
        files.lock.unlock(lock::SEGMENT);
        let (ring, parts, id) = attached?;
        Ok(Attachment {
            seg,
            ring,
            parts,
            id,
            wait,
            next_peer_check: AtomicU64::new(0),
            next_sleeper_reap: AtomicU64::new(0),
            next_gone_check: AtomicU64::new(0),
            empty_polls: AtomicU64::new(0),
            gone_seen: AtomicBool::new(false),
            handles: Mutex::new([0; 6]),
        })
    }

    /// A handle of `role` (one `ROLE_*` bit) starts: the entry shows the role from the first.
    pub(crate) fn join_role(&self, role: u32) {
        let mut h = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        let n = &mut h[role.trailing_zeros() as usize % 6];
        *n += 1;
        if *n == 1 {
            self.parts.add_roles(self.id, role, &self.ring.control().stats.0.roles_seen);
        }
    }

    /// A handle of `role` ends: the entry drops the role with the last one, and peers that
    /// wait are woken, so that they see whether anybody is left on our side.
    pub(crate) fn leave_role(&self, role: u32) {
        let mut h = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        let n = &mut h[role.trailing_zeros() as usize % 6];
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.parts.remove_roles(self.id, role);
            drop(h);
            self.wake_all();
        }
    }

    /// Wakes everybody asleep on this segment's events.
    fn wake_all(&self) {
        self.notify_data();
        self.notify_space();
    }

    /// Whether the other side is gone: some participant once had one of `roles` (so a
    /// receiver that starts before any sender waits for one), and none that has one now is
    /// alive. A participant that left cleared its roles; one that died still shows them, and
    /// its lock (free) tells.
    pub(crate) fn peers_gone(&self, roles: u32) -> bool {
        // Acquire: pairs with the Release `fetch_or` in `Participants::add_roles`.
        roles != 0
            && self.ring.control().stats.0.roles_seen.load(crate::sync::Ordering::Acquire) & roles != 0
            && !self.parts.any_alive(roles, self.id)
    }

    /// For a `try_*` call that found nothing: whether the other side is gone, checked at most
    /// every [`PEER_CHECK`] and every [`GONE_POLLS`] calls (so that polling in a loop costs no
    /// syscall per call). The caller looks once more before it reports `Disconnected`.
    pub(crate) fn gone_after_polls(&self, watch: u32) -> bool {
        if self.gone_seen.load(Relaxed) {
            if self.peers_gone(watch) {
                return true;
            }
            self.gone_seen.store(false, Relaxed); // a peer came (back)
        }
        // A load and a store, not a read-modify-write: this is the polling path, and a count
        // lost to a race between threads only delays the check by a poll.
        let polls = self.empty_polls.load(Relaxed);
        self.empty_polls.store(polls.wrapping_add(1), Relaxed);
        let gone = polls % GONE_POLLS == GONE_POLLS - 1 && take_turn(&self.next_gone_check) && self.peers_gone(watch);
        if gone {
            self.gone_seen.store(true, Relaxed);
        }
        gone
    }

    /// One attempt, then (unless `deadline` is `Now`, which gives `on_empty`) a wait per the
    /// strategy until `deadline`. The first attempt may check a holder's liveness too (at most
    /// every 10 ms per attachment), so that polling with `try_*` also gets past a dead peer;
    /// the clock is read only when a slot is held. Producers (`blocked` set) count the times
    /// and the time they waited; the fast path touches no counter.
    ///
    /// When nothing can be done, and nobody of the roles in `watch` is left on the other side
    /// (see [`peers_gone`](Self::peers_gone)), the call ends with [`Error::Disconnected`]
    /// after one more attempt (a message sent just before the last sender left is still
    /// received). Blocking calls check this at every wake-up and at least every 100 ms (so a
    /// peer's death is noticed within 100 ms, its clean exit at once: leaving wakes sleepers);
    /// `try_*` calls at most every 10 ms, after [`GONE_POLLS`] empty attempts.
    #[allow(clippy::too_many_arguments)]
    fn run<T>(
        &self,
        ev: &Event,
        data: bool,
        deadline: Deadline,
        on_empty: Error,
        watch: u32,
        blocked: Option<&layout::Stats>,
        mut poll: impl FnMut(bool) -> Result<Step<T>>,
    ) -> Result<T> {
        let (held, writing) = match poll(false)? {
            Step::Ready(v) => return Ok(v),
            Step::Held => (true, false),
            Step::Writing => (true, true),
            Step::Wait => (false, false),
        };
        if held && take_turn(&self.next_peer_check) {
            if let Step::Ready(v) = poll(true)? {
                return Ok(v);
            }
        }
        if matches!(deadline, Deadline::Now) {
            // `Empty` must mean that nothing can be received now. A receiver that finds the next
            // message mid-copy (a producer between its claim and its commit) waits the copy out,
            // as crossbeam's `ArrayQueue::pop` does, but boundedly ([`WRITE_GRACE`], the writer
            // checked for death on the way): a writer stopped by a signal or a debugger must
            // not stop us. A loan (user code writing in place, for as long as it takes) is not
            // waited for: nothing can be received past it for now.
            if writing && data {
                let started = Instant::now();
                let mut checked = false;
                for i in 1u32.. {
                    // Spin for a copy in progress; then yield, and then sleep briefly, so that a
                    // writer preempted on this very CPU gets it back to finish.
                    match i {
                        0..=64 => crate::sync::spin_hint(),
                        65..=80 => crate::sync::yield_now(),
                        _ => std::thread::sleep(Duration::from_micros(50)),
                    }
                    let late = i > 64 && started.elapsed() >= PEER_CHECK;
                    let check = late && !std::mem::replace(&mut checked, true);
                    match poll(check)? {
                        Step::Ready(v) => return Ok(v),
                        Step::Writing if !(i > 64 && started.elapsed() >= WRITE_GRACE) => {}
                        _ => break,
                    }
                }
            }
        } else {
            // A peer a few nanoseconds behind is the common case: a few plain polls before any
            // bookkeeping (clock reads, counters, the participant stamp).
            for _ in 0..QUICK_POLLS {
                crate::sync::spin_hint();
                if let Step::Ready(v) = poll(false)? {
                    return Ok(v);
                }
            }
        }
        if let Some(st) = blocked {
            st.full_events.fetch_add(1, Relaxed);
        }
        let until = match deadline {
            Deadline::Now => {
                if self.gone_after_polls(watch) {
                    return last_look(&mut poll);
                }
                return Err(on_empty);
            }
            Deadline::Forever => None,
            Deadline::At(t) => Some(t),
        };
        self.parts.touch(self.id);
        let started = Instant::now();
        let entry = self.parts.entry(self.id).expect("own participant entry");
        let mine = if data { &entry.sleeping_data } else { &entry.sleeping_space };
        let r = wait::wait_until(self.wait, until, ev, mine, |check| {
            let step = poll(check)?;
            if !check || matches!(step, Step::Ready(_)) || !self.peers_gone(watch) {
                return Ok(step);
            }
            // Nobody is left to send (or receive): one more look, for what they did before
            // they left, and then the end.
            last_look(&mut poll).map(Step::Ready)
        });
        if let Some(st) = blocked {
            st.blocked_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        }
        r
    }

    /// Whether every sender of this segment has gone (no message will come but those in the
    /// ring); if so, also tells this attachment's `try_*` receives at once (see `gone_seen`).
    pub(crate) fn sender_gone(&self) -> bool {
        let gone = self.peers_gone(SENDERS);
        if gone {
            self.gone_seen.store(true, Relaxed);
        }
        gone
    }

    /// The event receivers sleep on, and this participant's mark for it.
    pub(crate) fn data_sleep(&self) -> (&Event, wait::SleepMark<'_>) {
        let entry = self.parts.entry(self.id).expect("own participant entry");
        (&self.ring.control().data.0, &entry.sleeping_data)
    }

    /// The event senders sleep on (waiting for space), and this participant's mark for it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn space_sleep(&self) -> (&Event, wait::SleepMark<'_>) {
        let entry = self.parts.entry(self.id).expect("own participant entry");
        (&self.ring.control().space.0, &entry.sleeping_space)
    }

    /// A producer or publisher waits for space.
    pub(crate) fn run_producer<T>(&self, deadline: Deadline, poll: impl FnMut(bool) -> Result<Step<T>>) -> Result<T> {
        let ctl = self.ring.control();
        self.run(&ctl.space.0, false, deadline, Error::Full, RECEIVERS, Some(&ctl.stats.0), poll)
    }

    /// A consumer or subscriber waits for data.
    pub(crate) fn run_consumer<T>(&self, deadline: Deadline, poll: impl FnMut(bool) -> Result<Step<T>>) -> Result<T> {
        self.run(&self.ring.control().data.0, true, deadline, Error::Empty, SENDERS, None, poll)
    }

    /// A service client waits on its channel's event `ev` (its sleeper mark is the entry's
    /// `sleeping_space`, which `release_dead` undoes against that event).
    pub(crate) fn run_client<T>(
        &self,
        ev: &Event,
        deadline: Deadline,
        poll: impl FnMut(bool) -> Result<Step<T>>,
    ) -> Result<T> {
        self.run(ev, false, deadline, Error::Empty, 0, None, poll)
    }

    /// Wakes consumers sleeping for data (after publishing a message).
    #[inline]
    pub(crate) fn notify_data(&self) {
        if wait::notify(&self.ring.control().data.0) {
            self.reap_dead_sleepers();
        }
    }

    /// Wakes producers sleeping for space (after freeing a slot).
    #[inline]
    pub(crate) fn notify_space(&self) {
        if wait::notify(&self.ring.control().space.0) {
            self.reap_dead_sleepers();
        }
    }

    /// On the notify slow path (somebody counts as sleeping, so we made a syscall anyway), at
    /// most every 10 ms: undo the sleeper counts of participants that died asleep, so that a
    /// dead sleeper does not cost every later message a `FUTEX_WAKE`.
    #[cold]
    fn reap_dead_sleepers(&self) {
        if !take_turn(&self.next_sleeper_reap) {
            return;
        }
        for id in 1..=self.seg.config.max_participants as u16 {
            let Some(e) = self.parts.entry(id) else { break };
            if e.sleeping_data.load(Relaxed) != 0 || e.sleeping_space.load(Relaxed) != 0 {
                // Holding the entry while releasing, so a process that reuses it meanwhile
                // cannot have its own fresh sleeper marks undone.
                self.parts.with_dead(id, || release_dead(&self.ring, &self.seg, &self.parts, id));
            }
        }
    }
}
