//! Subscribing to a topic.

use std::sync::Arc;
use std::time::Duration;

use super::table::validate_subscriber_name;
use super::TopicShared;
use crate::attach::Deadline;
use crate::error::{Error, Result};
use crate::layout::{slot, ROLE_SUBSCRIBER};
use crate::message::{Message, Received};
use crate::os;
use crate::ring::{broadcast, broadcast::Read, RingMem};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::wait::Step;

/// Where a new subscriber starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// With the next message published.
    #[default]
    Latest,
    /// With the oldest message still in the ring (up to `capacity` messages of history).
    Earliest,
}

/// Whether a subscriber gates publishers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SubscriberMode {
    /// Never misses a message; publishers wait for it.
    #[default]
    Reliable,
    /// Never slows publishers; told how many messages it missed ([`Error::Lagged`]).
    Lossy,
}

/// When a durable subscriber's messages count as acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// A message is acknowledged when the next one is received, on [`Subscriber::ack`], or when
    /// the subscriber is dropped (not while a panic unwinds). A crash (or a panic) redelivers at
    /// most the one message that was received last.
    #[default]
    OnNextReceive,
    /// Only [`Subscriber::ack`] acknowledges; a subscriber dropped without it gets every
    /// unacknowledged message again on restart.
    Explicit,
}

/// Builds a [`Subscriber`]; from [`Topic::subscriber`](super::Topic::subscriber).
#[derive(Debug)]
pub struct SubscriberBuilder {
    shared: Arc<TopicShared>,
    name: Option<String>,
    group: Option<String>,
    start: Start,
    mode: SubscriberMode,
    kinds: Option<Vec<u32>>,
    ack: AckMode,
}

impl SubscriberBuilder {
    pub(super) fn new(shared: Arc<TopicShared>) -> Self {
        SubscriberBuilder {
            shared,
            name: None,
            group: None,
            start: Start::Latest,
            mode: SubscriberMode::Reliable,
            kinds: None,
            ack: AckMode::default(),
        }
    }
    /// Makes the subscriber durable under `name` (1 to 64 bytes of `[A-Za-z0-9._-]`): it keeps
    /// its place across restarts and crashes.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Makes the subscriber a member of consumer group `name` (1 to 64 bytes of
    /// `[A-Za-z0-9._-]`): each message of the topic goes to one member of each group, and every
    /// group gets every message. The group is created by its first member (with this builder's
    /// [`start`](Self::start) and [`mode`](Self::mode); later members take the group's), and is
    /// durable: it keeps its position while it has no member, and a reliable group gates
    /// publishers. A member acknowledges per its [`ack`](Self::ack) mode; what a member that
    /// dies or leaves had received and not acknowledged goes to another member. Within one
    /// member, messages come in each publisher's order (a message put back by a member that
    /// died comes when it is taken); across members there is no order. See `ring::group`.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }
    /// Where a new subscriber starts (a resumed durable one continues where it was).
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }
    /// Reliable (default) or lossy.
    pub fn mode(mut self, mode: SubscriberMode) -> Self {
        self.mode = mode;
        self
    }
    /// Receives only messages of these kinds; others are skipped without copying.
    pub fn kinds(mut self, kinds: &[u32]) -> Self {
        self.kinds = Some(kinds.to_vec());
        self
    }
    /// Acknowledgement mode of a durable subscriber.
    pub fn ack(mut self, ack: AckMode) -> Self {
        self.ack = ack;
        self
    }

    /// Joins the topic.
    ///
    /// # Errors
    /// [`Error::SubscriberNameTaken`] if a live process holds the durable name;
    /// [`Error::TooManySubscribers`] if the table is full; [`Error::InvalidName`].
    pub fn build(self) -> Result<Subscriber, crate::OpenError> {
        self.build_inner().map_err(crate::OpenError::from_internal)
    }

    fn build_inner(self) -> Result<Subscriber> {
        if let Some(n) = &self.name {
            validate_subscriber_name(n)?;
        }
        if let Some(g) = self.group.clone() {
            return self.build_member(g);
        }
        let s = &self.shared;
        let ring = &s.att.ring;
        let cap = ring.capacity();
        let start = self.start;
        let joined_at = std::cell::Cell::new(0);
        let (index, cursor, resumed) =
            s.table.join(self.name.as_deref(), self.mode == SubscriberMode::Lossy, || {
                let tail = ring.control().tail.0.load(Acquire);
                joined_at.set(tail);
                match start {
                    Start::Latest => tail,
                    Start::Earliest => tail.saturating_sub(cap),
                }
            })?;
        s.att.join_role(ROLE_SUBSCRIBER);
        // A resumed durable subscriber continues its count.
        let delivered = if resumed { s.table.entry(index).delivered.load(Relaxed) } else { 0 };
        Ok(Subscriber {
            durable: self.name.is_some(),
            shared: self.shared,
            index,
            next: cursor,
            pending_ack: cursor,
            // History of a new subscriber may be overwritten while it joins: skipped silently.
            history_end: if resumed || self.mode == SubscriberMode::Lossy { cursor } else { joined_at.get() },
            lossy: self.mode == SubscriberMode::Lossy,
            kinds: self.kinds.map(Vec::into_boxed_slice),
            ack: self.ack,
            delivered,
            unfinished: false,
            member: None,
            _not_sync: std::marker::PhantomData,
        })
    }

    fn build_member(self, group: String) -> Result<Subscriber> {
        validate_subscriber_name(&group)?;
        if self.name.is_some() {
            return Err(Error::InvalidConfig("a group member has no name of its own: use group() or name()".into()));
        }
        if self.kinds.is_some() {
            return Err(Error::InvalidConfig(
                "a group member takes whatever the group hands it (a message it skipped would be lost to the other \
                 members): filter by kind in the handler, or use a group per kind"
                    .into(),
            ));
        }
        let s = &self.shared;
        let ring = &s.att.ring;
        let cap = ring.capacity();
        let start = self.start;
        let index = s.table.join_group(&group, self.mode == SubscriberMode::Lossy, s.att.id, || {
            let tail = ring.control().tail.0.load(Acquire);
            match start {
                Start::Latest => tail,
                Start::Earliest => tail.saturating_sub(cap),
            }
        })?;
        s.att.join_role(ROLE_SUBSCRIBER);
        let mode = s.table.entry(index).mode.load(Relaxed);
        Ok(Subscriber {
            durable: true,
            shared: self.shared,
            index,
            next: 0,
            pending_ack: 0,
            history_end: 0,
            lossy: mode & crate::layout::MODE_LOSSY != 0,
            kinds: self.kinds.map(Vec::into_boxed_slice),
            ack: self.ack,
            delivered: 0,
            unfinished: false,
            member: Some(Box::new(super::member::Member::new(mode))),
            _not_sync: std::marker::PhantomData,
        })
    }
}

/// Receives every message of a topic through its own cursor. `Send`, not `Sync`.
#[derive(Debug)]
pub struct Subscriber {
    pub(super) shared: Arc<TopicShared>,
    pub(super) index: usize,
    durable: bool,
    lossy: bool,
    /// Next sequence to look at.
    next: u64,
    /// Sequence the shared cursor will be set to on the next acknowledgement.
    pending_ack: u64,
    /// A new reliable subscriber's history (`Start::Earliest`) ends here: before it, messages
    /// that publishers overwrote while it joined are skipped without a `Lagged` report (see
    /// `build` and `awaited`).
    history_end: u64,
    pub(super) kinds: Option<Box<[u32]>>,
    pub(super) ack: AckMode,
    pub(super) delivered: u64,
    /// The last message received was borrowed in place by a guard dropped while a panic
    /// unwound: its handling did not finish, so dropping the subscriber does not acknowledge it
    /// (the next receive still does, as in the default mode).
    pub(super) unfinished: bool,
    /// A member of a consumer group: its messages come from the group's claim.
    pub(super) member: Option<Box<super::member::Member>>,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.member.is_some() {
            self.member_leave();
            self.shared.att.leave_role(ROLE_SUBSCRIBER);
            return;
        }
        // A clean close commits the position, as Kafka's and NATS's consumers do: what was
        // received counts as processed. Not in explicit mode (only `ack` acknowledges), and not
        // while a panic unwinds (the message being handled did not get processed): then, as
        // after a crash, the last message received comes again on restart.
        if self.durable && self.ack == AckMode::OnNextReceive && !std::thread::panicking() && !self.unfinished {
            self.pending_ack = self.next;
            self.store_cursor();
        }
        let t = &self.shared.table;
        t.entry(self.index).delivered.store(self.delivered, Relaxed);
        t.leave(self.index, self.durable);
        self.shared.att.notify_space();
        self.shared.att.leave_role(ROLE_SUBSCRIBER);
    }
}

crate::methods::impl_receiver!(Subscriber);

impl Subscriber {
    crate::methods::receiver_methods!(TopicRef);

    fn recv_value_with<T: bytemuck::Pod>(&mut self, deadline: Deadline) -> Result<T> {
        let mut value = T::zeroed();
        let size = std::mem::size_of::<T>();
        match self.recv_with(bytemuck::bytes_of_mut(&mut value), deadline) {
            Ok(r) if r.len == size => Ok(value),
            Ok(r) => Err(Error::SizeMismatch { expected: size, found: r.len }),
            Err(Error::BufferTooSmall { needed, .. }) => {
                // Consume it: the sender broke the protocol.
                if self.member.is_some() {
                    self.member_take_oversize();
                } else {
                    self.skip(self.next);
                }
                Err(Error::SizeMismatch { expected: size, found: needed })
            }
            Err(e) => Err(e),
        }
    }

    /// The batch of [`try_recv_batch`](Self::try_recv_batch): in place, so reliable subscribers
    /// only (a lossy subscriber's slot can be overwritten while `f` reads it).
    fn recv_batch_now(&mut self, max: usize, mut f: impl FnMut(&[u8], u32)) -> Result<usize> {
        let mut n = 0;
        while n < max {
            match self.recv_ref_with(Deadline::Now) {
                Ok(m) => {
                    f(&m, m.kind());
                    n += 1;
                }
                Err(Error::Empty) => break,
                // Something was received: report the end of the messages on the next call.
                Err(Error::Disconnected) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// The next message in a new `Vec` (in place for a reliable subscriber, through a copy of
    /// the ring's largest message for a lossy one).
    fn recv_message(&mut self, deadline: Deadline) -> Result<Message> {
        if !self.lossy {
            let m = self.recv_ref_with(deadline)?;
            return Ok(Message { kind: m.kind(), data: m.to_vec() });
        }
        let mut buf = vec![0u8; self.shared.att.ring.max_msg()];
        let r = self.recv_with(&mut buf, deadline)?;
        buf.truncate(r.len);
        Ok(Message { kind: r.kind, data: buf })
    }

    /// Waits until a message is probably ready, without receiving it (a message may still be
    /// filtered out by kind, or turn out lapped). `timeout` `None` waits as long as it takes;
    /// `Timeout` after `timeout`, `Disconnected` when nothing more can come.
    #[doc(hidden)]
    pub fn wait_ready(&mut self, timeout: Option<Duration>) -> Result<(), crate::RecvTimeoutError> {
        let deadline = timeout.map_or(Deadline::Forever, Deadline::after);
        let shared = self.shared.clone();
        shared.att.run_consumer(deadline, |check| self.probe(check)).map_err(crate::RecvTimeoutError::from_internal)
    }

    /// Whether a message is probably ready, without receiving it (a `WaitSet`'s and
    /// [`wait_ready`](Self::wait_ready)'s poll): something to look at (a receive reports errors
    /// itself). `check`: also recover a slot held by a writer that died.
    pub(crate) fn probe(&mut self, check: bool) -> Result<Step<()>> {
        if self.member.is_some() {
            return self.member_probe(check);
        }
        let s = &*self.shared;
        let ring = &s.att.ring;
        let (seq, awaited) = (self.next, self.awaited());
        Ok(match broadcast::read(ring, seq, awaited) {
            Ok(Read::NotReady) => Step::Wait,
            Ok(Read::Held { word }) => {
                if check && s.att.parts.is_dead(slot::claimer(word)) && broadcast::recover(ring, seq, word) {
                    s.att.notify_data();
                }
                Step::held_by(word)
            }
            _ => Step::Ready(()),
        })
    }

    /// The attachment this subscriber waits through.
    pub(crate) fn attachment(&self) -> crate::attach::AttRef {
        crate::attach::AttRef::Topic(self.shared.clone())
    }

    /// Acknowledges every message received so far (durable subscribers; for others every
    /// message is acknowledged on receipt).
    pub fn ack(&mut self) {
        if self.member.is_some() {
            return self.member_ack_all();
        }
        self.pending_ack = self.next;
        self.store_cursor();
    }

    /// Next sequence this subscriber will look at (a group member: the group's position, its
    /// lowest sequence not acknowledged).
    pub fn position(&self) -> u64 {
        if self.member.is_some() {
            return self.member_position();
        }
        self.next
    }

    /// Messages published that this subscriber (a group member: its group) has not looked at
    /// yet.
    pub fn lag(&self) -> u64 {
        if self.member.is_some() {
            return self.member_lag();
        }
        self.shared.att.ring.control().tail.0.load(Relaxed).saturating_sub(self.next)
    }

    fn recv_with(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<Received> {
        if self.member.is_some() {
            let (seq, len, kind, word) = self.member_wait_next(buf.len(), deadline)?;
            let ring = &self.shared.att.ring;
            // SAFETY: `read` validated len <= max_msg, the payload's size; buf has >= len bytes
            // (checked by the claim). A reliable group's position is at or before `seq` until
            // we acknowledge it, so publishers do not reclaim the slot; a lossy group's may be
            // reclaimed, which `member_check_copy` detects.
            unsafe { std::ptr::copy_nonoverlapping(ring.payload(seq), buf.as_mut_ptr(), len) };
            self.member_check_copy(seq, word)?;
            self.member_consumed(seq);
            return Ok(Received { len, kind });
        }
        let (seq, len, kind, word) = self.wait_next(buf.len(), deadline)?;
        let ring = &self.shared.att.ring;
        // SAFETY: `read` validated len <= max_msg, the payload's size; buf has >= len bytes
        // (checked in `wait_next`). A reliable subscriber's slot cannot be reclaimed before
        // its cursor passes it; a lossy one may be, which `still_intact` detects below.
        unsafe { std::ptr::copy_nonoverlapping(ring.payload(seq), buf.as_mut_ptr(), len) };
        if self.lossy && !broadcast::still_intact(ring, seq, word) {
            return Err(self.lapped(seq.wrapping_add(ring.capacity())));
        }
        self.consumed(seq);
        Ok(Received { len, kind })
    }

    fn recv_ref_with(&mut self, deadline: Deadline) -> Result<TopicRef<'_>> {
        if self.lossy {
            return Err(Error::Unsupported(
                "in-place reads (recv_ref, try_recv_batch) need a reliable subscriber: a lossy subscriber's slot can be overwritten while borrowed; use recv_into".into(),
            ));
        }
        let (seq, len, kind, _) = if self.member.is_some() {
            self.member_wait_next(usize::MAX, deadline)?
        } else {
            self.wait_next(usize::MAX, deadline)?
        };
        Ok(TopicRef { sub: self, seq, len, kind })
    }

    /// Marks message `seq` received: advance, acknowledge per the mode, free space.
    fn consumed(&mut self, seq: u64) {
        self.unfinished = false;
        self.next = seq.wrapping_add(1);
        self.delivered = self.delivered.wrapping_add(1);
        self.pending_ack = if self.durable && self.ack == AckMode::OnNextReceive {
            seq // everything before this message is acknowledged; this one on the next receive
        } else if self.durable {
            self.pending_ack // explicit: only ack() moves it
        } else {
            self.next
        };
        let e = self.shared.table.entry(self.index);
        e.delivered.store(self.delivered, Relaxed);
        if self.delivered % 256 == 0 {
            e.last_activity_ns.store(os::now_unix_ns(), Relaxed);
        }
        self.store_cursor();
    }

    fn store_cursor(&self) {
        let e = self.shared.table.entry(self.index);
        // Release: pairs with the publishers' Acquire load in `gate`: our reads of the slots
        // before the cursor happen before they are overwritten.
        e.cursor.store(self.pending_ack, Release);
        if !self.lossy {
            self.shared.att.notify_space();
        }
    }

    /// Moves past messages lost to a lap (the slot now holds message `seen` or later) and
    /// returns the `Lagged` error to report (or, for a reliable subscriber that has not yet
    /// received anything, just moves on).
    fn lapped(&mut self, seen: u64) -> Error {
        let ring = &self.shared.att.ring;
        let cap = ring.capacity();
        let tail = ring.control().tail.0.load(Acquire);
        // Distances from `next` (wrapping: positions may be anywhere in u64, shared memory may
        // hold anything): to the newest message we know of, then back a ring to the oldest one
        // that can still be in it. At least one message was missed (the slot showed a later one).
        let newest = tail.wrapping_sub(self.next).max(seen.wrapping_add(1).wrapping_sub(self.next));
        let missed = newest.saturating_sub(cap).max(1);
        let oldest = self.next.wrapping_add(missed);
        let caught_up = self.pending_ack == self.next;
        self.next = oldest;
        // Missed messages need no acknowledgement (pending_ack is at or before next).
        if !self.durable || self.ack == AckMode::OnNextReceive || caught_up {
            self.pending_ack = oldest;
        }
        self.store_cursor();
        let e = self.shared.table.entry(self.index);
        e.lagged.fetch_add(missed, Relaxed);
        Error::Lagged(missed)
    }

    /// Waits for the next deliverable message of at most `max_len` bytes.
    fn wait_next(&mut self, max_len: usize, deadline: Deadline) -> Result<(u64, usize, u32, u64)> {
        let shared = self.shared.clone();
        let s = &*shared;
        let ring = &s.att.ring;
        s.att.run_consumer(deadline, |check| {
            // Bounded, like the rings' claim loops: skipping and silent resyncs make progress,
            // but hostile shared memory must only be able to make a call return early.
            for _ in 0..crate::ring::MAX_CLAIM_ROUNDS {
                let seq = self.next;
                let history = self.awaited();
                let read = broadcast::read(ring, seq, history)?;
                match read {
                    Read::Ready { len, kind, word } => {
                        let filtered = self.kinds.as_ref().is_some_and(|k| !k.contains(&kind));
                        if !filtered && len <= max_len {
                            return Ok(Step::Ready((seq, len, kind, word)));
                        }
                        // A lossy reader's len and kind may belong to a message overwriting this
                        // one: decide on them only once the slot is seen unchanged after they
                        // were read (the seqlock re-check); otherwise it was lapped.
                        if self.lossy && !broadcast::still_intact(ring, seq, word) {
                            return Err(self.lapped(seq.wrapping_add(ring.capacity())));
                        }
                        if filtered {
                            self.skip(seq);
                            continue;
                        }
                        return Err(Error::BufferTooSmall { len: max_len, needed: len });
                    }
                    Read::Skip => self.skip(seq),
                    Read::NotReady => return Ok(Step::Wait),
                    Read::Held { word } => {
                        if check && s.att.parts.is_dead(slot::claimer(word)) && broadcast::recover(ring, seq, word) {
                            self.shared.att.notify_data();
                            continue;
                        }
                        return Ok(Step::held_by(word));
                    }
                    Read::Lapped { seq: seen } => {
                        let err = self.lapped(seen);
                        if !history {
                            return Err(err);
                        }
                        // A new reliable subscriber's history was overwritten while it joined.
                        let e = self.shared.table.entry(self.index);
                        if let Error::Lagged(n) = err {
                            e.lagged.fetch_sub(n, Relaxed);
                        }
                    }
                }
            }
            Ok(Step::Wait)
        })
    }

    /// Whether publishers wait for this subscriber before they write a slot it may be reading
    /// (it is reliable and reads its history): see [`broadcast::read`].
    fn awaited(&self) -> bool {
        !self.lossy && (self.history_end.wrapping_sub(self.next) as i64) > 0
    }

    /// Moves past message `seq` without delivering it (aborted, abandoned, or filtered out).
    /// Skipping happens inside a receive call, which in the default mode acknowledges what was
    /// received before; in explicit mode a skipped message needs no ack when nothing before it
    /// is unacknowledged. Otherwise (explicit mode, unacknowledged messages) the cursor stays.
    fn skip(&mut self, seq: u64) {
        self.next = seq.wrapping_add(1);
        if !self.durable || self.ack == AckMode::OnNextReceive || self.pending_ack == seq {
            self.pending_ack = self.next;
        }
        self.store_cursor();
    }
}

/// A topic message borrowed in place (reliable subscribers). Received when dropped.
#[derive(Debug)]
pub struct TopicRef<'a> {
    sub: &'a mut Subscriber,
    seq: u64,
    len: usize,
    kind: u32,
}

impl TopicRef<'_> {
    /// The publisher's kind tag.
    pub fn kind(&self) -> u32 {
        self.kind
    }
    /// The message's sequence number in the topic.
    pub fn sequence(&self) -> u64 {
        self.seq
    }
}

impl std::ops::Deref for TopicRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ring = &self.sub.shared.att.ring;
        // SAFETY: a reliable subscriber's cursor is at or before `seq` while this guard lives,
        // so publishers do not reclaim the slot; len <= max_msg was validated by `read`.
        unsafe { std::slice::from_raw_parts(ring.payload(self.seq), self.len) }
    }
}

impl Drop for TopicRef<'_> {
    fn drop(&mut self) {
        if self.sub.member.is_some() {
            self.sub.member_consumed(self.seq);
        } else {
            self.sub.consumed(self.seq);
        }
        // Dropped by a panic in the code that handled it: not processed (see `unfinished`).
        self.sub.unfinished = std::thread::panicking();
    }
}
