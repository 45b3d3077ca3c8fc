//! Receiving from a queue: copy, batch, in-place references, typed values.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{give_role, ConsumerSide};
use crate::attach::{Attachment, Deadline};
use crate::error::{Error, Result};
use crate::layout::slot;
use crate::mapped_ring::MappedRing;
use crate::message::{Message, Received};
use crate::ring::{mpmc, Poll, RingMem};
use crate::sync::Ordering::Relaxed;
use crate::wait::Step;

/// Receives messages from a queue. `Send`, not `Sync`.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Attachment>,
    side: ConsumerSide,
    /// The dead-letter queue, for a queue with `max_deliveries`.
    dl: Option<Box<super::dead::DeadLetters>>,
    /// When the next housekeeping look is due (see `claim`).
    next_housekeeping: std::time::Instant,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let ConsumerSide::Spsc { role, .. } = self.side {
            give_role(&self.shared.seg.header().consumer_holder, role);
        }
        self.shared.leave_role(crate::layout::ROLE_CONSUMER);
    }
}

crate::methods::impl_receiver!(Consumer);

impl Consumer {
    pub(super) fn new(
        shared: Arc<Attachment>,
        side: ConsumerSide,
        dl: Option<Box<super::dead::DeadLetters>>,
    ) -> Consumer {
        Consumer { shared, side, dl, next_housekeeping: std::time::Instant::now(), _not_sync: PhantomData }
    }

    crate::methods::receiver_methods!(RecvRef);

    fn recv_value_with<T: bytemuck::Pod>(&mut self, deadline: Deadline) -> Result<T> {
        let mut value = T::zeroed();
        let size = std::mem::size_of::<T>();
        let (pos, len, _) = self.claim(usize::MAX, deadline)?;
        if len == size {
            // SAFETY: we hold the claim on `pos`; len <= max_msg was validated at the claim.
            let bytes = unsafe { std::slice::from_raw_parts(self.shared.ring.payload(pos), len) };
            bytemuck::bytes_of_mut(&mut value).copy_from_slice(bytes);
        }
        self.finish(pos)?;
        if len != size {
            return Err(Error::SizeMismatch { expected: size, found: len });
        }
        Ok(value)
    }

    fn recv_message(&mut self, deadline: Deadline) -> Result<Message> {
        let m = self.recv_ref_with(deadline)?;
        Ok(Message { kind: m.kind(), data: m.to_vec() })
    }

    /// Waits until a message is probably ready, without receiving it (spurious readiness is
    /// possible: another consumer may take it first). `timeout` `None` waits as long as it
    /// takes; `Timeout` after `timeout`, `Disconnected` when nothing more can come.
    #[doc(hidden)]
    pub fn wait_ready(&mut self, timeout: Option<Duration>) -> Result<(), crate::RecvTimeoutError> {
        let deadline = timeout.map_or(Deadline::Forever, Deadline::after);
        let shared = self.shared.clone();
        shared.run_consumer(deadline, |check| self.probe(check)).map_err(crate::RecvTimeoutError::from_internal)
    }

    /// Whether a message is probably ready, without taking it (a `WaitSet`'s and
    /// [`wait_ready`](Self::wait_ready)'s poll). `check`: also recover a slot held by a writer
    /// that died.
    pub(crate) fn probe(&mut self, check: bool) -> Result<Step<()>> {
        let s = &*self.shared;
        let ring = &s.ring;
        if check && matches!(self.side, ConsumerSide::Mpmc) && retries_possible(ring, self.dl.is_some()) {
            mpmc::rescan_retries(ring); // a rejected message the hint does not count
        }
        Ok(match &mut self.side {
            ConsumerSide::Spsc { ring: c, .. } => {
                if c.available(ring)? > 0 {
                    Step::Ready(())
                } else {
                    Step::Wait
                }
            }
            ConsumerSide::Mpmc => match mpmc::peek(ring) {
                Poll::Ready(()) => Step::Ready(()),
                Poll::NotReady => Step::Wait,
                Poll::Held { pos, word } => {
                    if check && s.parts.is_dead(slot::claimer(word)) && mpmc::recover(ring, pos, word, s.id) {
                        s.notify_data();
                    }
                    Step::held_by(word)
                }
            },
        })
    }

    /// The attachment this consumer waits through.
    pub(crate) fn attachment(&self) -> crate::attach::AttRef {
        crate::attach::AttRef::Queue(self.shared.clone())
    }

    /// The batch of [`try_recv_batch`](Self::try_recv_batch). An SPSC queue releases it with
    /// one store. If `f` panics, the messages handed to it so far, the one it panicked on
    /// included, are consumed, their slots released, and producers woken; the panic goes on.
    fn recv_batch_now(&mut self, max: usize, mut f: impl FnMut(&[u8], u32)) -> Result<usize> {
        let n = self.batch(max, &mut f)?;
        if n > 0 || max == 0 {
            return Ok(n);
        }
        // Nothing: the head may be held by a writer that died (checked at most every 10 ms, as
        // a single receive does).
        if self.shared.peer_check_due()
            && (self.recover_dead_head()
                || (retries_possible(&self.shared.ring, self.dl.is_some())
                    && mpmc::rescan_retries(&self.shared.ring) > 0))
        {
            let n = self.batch(max, &mut f)?;
            if n > 0 {
                return Ok(n);
            }
        }
        if self.shared.gone_after_polls(crate::attach::SENDERS) {
            // One more look, for what the last sender sent before it left (past a dead
            // writer's slot).
            let mut n = self.batch(max, &mut f)?;
            if n == 0 && self.recover_dead_head() {
                n = self.batch(max, &mut f)?;
            }
            return if n == 0 { Err(Error::Disconnected) } else { Ok(n) };
        }
        Ok(0)
    }

    /// Recovers the MPMC head slot if a writer that died holds it; whether it did.
    fn recover_dead_head(&self) -> bool {
        let s = &*self.shared;
        let ConsumerSide::Mpmc = self.side else { return false };
        let Poll::Held { pos, word } = mpmc::peek(&s.ring) else { return false };
        if s.parts.is_dead(slot::claimer(word)) && mpmc::recover(&s.ring, pos, word, s.id) {
            s.notify_data();
            s.notify_space();
            return true;
        }
        false
    }

    fn batch(&mut self, max: usize, f: &mut impl FnMut(&[u8], u32)) -> Result<usize> {
        let me = self.shared.id;
        let ring = &self.shared.ring;
        match &mut self.side {
            ConsumerSide::Spsc { ring: c, .. } => {
                let n = (c.available_for(ring, max as u64)? as usize).min(max);
                // Releases what was handed out on every way out (one store), and wakes producers.
                let mut done = SpscBatch { att: &self.shared, ring, c, n: 0 };
                for i in 0..n as u64 {
                    let (len, kind) = match done.c.peek(ring, i) {
                        Ok(v) => v,
                        Err(e) => {
                            done.n += 1; // skip the corrupted slot too
                            return Err(e);
                        }
                    };
                    // Counted before the call: if `f` panics, it was handed out.
                    done.n += 1;
                    // SAFETY: message i is ready (i < available) and len <= max_msg (peek).
                    f(unsafe { std::slice::from_raw_parts(ring.payload(done.c.position(i)), len) }, kind);
                }
                Ok(n)
            }
            ConsumerSide::Mpmc => {
                let mut done = MpmcBatch { att: &self.shared, held: None, n: 0, freed: 0 };
                while done.n < max {
                    match claim_next(&self.shared, self.dl.as_deref(), usize::MAX, &mut done.freed)? {
                        Poll::Ready(msg) => {
                            // Released by the guard if `f` panics.
                            done.held = Some(msg.pos);
                            // SAFETY: we claimed slot msg.pos; msg.len <= max_msg (validated at
                            // the claim, never re-read).
                            f(unsafe { std::slice::from_raw_parts(ring.payload(msg.pos), msg.len) }, msg.kind);
                            done.held = None;
                            done.n += 1;
                            mpmc::release(ring, msg.pos, me)?;
                            done.freed += 1;
                        }
                        _ => break,
                    }
                }
                Ok(done.n)
            }
        }
    }

    fn recv_with(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<Received> {
        // The common case first, straight: an SPSC queue with a message ready whose length
        // is valid and fits (anything else takes the general path, which polls again).
        if let ConsumerSide::Spsc { ring: c, .. } = &mut self.side {
            let ring = &self.shared.ring;
            if c.available(ring)? > 0 {
                if let Ok((len, kind)) = c.peek(ring, 0) {
                    if len <= buf.len() {
                        // SAFETY: message 0 is ready and not released, so the producer does not
                        // write its slot; len <= max_msg (peek) and len <= buf.len().
                        unsafe { std::ptr::copy_nonoverlapping(ring.payload(c.position(0)), buf.as_mut_ptr(), len) };
                        c.release(ring, 1);
                        self.shared.notify_space();
                        return Ok(Received { len, kind });
                    }
                }
            }
        }
        let (pos, len, kind) = self.claim(buf.len(), deadline)?;
        // SAFETY: we hold the claim on `pos` (SPSC: not yet released; MPMC: READING), len <=
        // max_msg was validated at the claim, and len <= buf.len() was checked by `claim`.
        unsafe { std::ptr::copy_nonoverlapping(self.shared.ring.payload(pos), buf.as_mut_ptr(), len) };
        // A revoked claim means a producer may have been writing while we copied: the copy is
        // not returned.
        self.finish(pos)?;
        Ok(Received { len, kind })
    }

    fn recv_ref_with(&mut self, deadline: Deadline) -> Result<RecvRef<'_>> {
        let (pos, len, kind) = self.claim(usize::MAX, deadline)?;
        Ok(RecvRef { consumer: self, pos, len, kind, done: false })
    }

    /// Waits for the next message of at most `max_len` bytes and claims it; returns its
    /// position, length and kind. The caller must [`finish`](Self::finish) it.
    fn claim(&mut self, max_len: usize, deadline: Deadline) -> Result<(u64, usize, u32)> {
        let s = &*self.shared;
        let ring = &s.ring;
        match &mut self.side {
            ConsumerSide::Spsc { ring: c, .. } => s.run_consumer(deadline, |_| {
                if c.available(ring)? == 0 {
                    return Ok(Step::Wait);
                }
                let (len, kind) = c.peek(ring, 0).inspect_err(|_| {
                    c.release(ring, 1); // skip the corrupted slot so the queue goes on
                    s.notify_space();
                })?;
                if len > max_len {
                    return Err(Error::BufferTooSmall { len: max_len, needed: len });
                }
                Ok(Step::Ready((c.position(0), len, kind)))
            }),
            ConsumerSide::Mpmc => s.run_consumer(deadline, |check| {
                let mut freed = 0;
                let dl = self.dl.as_deref();
                let mut r = claim_next(s, dl, max_len, &mut freed);
                // Now and then while nothing comes: what dead consumers and movers left, and
                // rejected messages the retry hint does not count (see `mpmc::rescan_retries`).
                if !matches!(r, Ok(Poll::Ready(_)))
                    && retries_possible(ring, dl.is_some())
                    && (check || super::dead::due(&mut self.next_housekeeping))
                {
                    if let Some(dl) = dl {
                        super::dead::housekeeping(s, dl);
                    }
                    if mpmc::rescan_retries(ring) > 0 {
                        r = claim_next(s, dl, max_len, &mut freed);
                    }
                }
                if freed > 0 {
                    // Skipped slots (aborted, abandoned, corrupted) are free space: producers
                    // blocked on a full queue must hear of it whatever this poll returns.
                    s.notify_space();
                }
                Ok(match r? {
                    Poll::Ready(msg) => Step::Ready((msg.pos, msg.len, msg.kind)),
                    Poll::NotReady => Step::Wait,
                    Poll::Held { pos, word } => {
                        if check && s.parts.is_dead(slot::claimer(word)) && mpmc::recover(ring, pos, word, s.id) {
                            s.notify_data();
                            s.notify_space();
                        }
                        Step::held_by(word)
                    }
                })
            }),
        }
    }

    /// Releases the message claimed at `pos` and wakes producers.
    fn finish(&mut self, pos: u64) -> Result<()> {
        let ring = &self.shared.ring;
        let r = match &mut self.side {
            ConsumerSide::Spsc { ring: c, .. } => {
                c.release(ring, 1);
                Ok(())
            }
            ConsumerSide::Mpmc => mpmc::release(ring, pos, self.shared.id),
        };
        if r.is_ok() {
            self.shared.notify_space();
        }
        r
    }
}

/// The SPSC side of [`Consumer::try_recv_batch`]: releases the first `n` messages with one
/// store, and wakes producers, however the batch ends.
struct SpscBatch<'a> {
    att: &'a Attachment,
    ring: &'a MappedRing,
    c: &'a mut crate::ring::spsc::SpscConsumer,
    n: usize,
}

impl Drop for SpscBatch<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.c.release(self.ring, self.n as u64);
            self.att.notify_space();
        }
    }
}

/// The MPMC side of [`Consumer::try_recv_batch`]: releases a claim held while `f` runs if
/// `f` panics, and wakes producers if any slot was freed, however the batch ends.
struct MpmcBatch<'a> {
    att: &'a Attachment,
    held: Option<u64>,
    n: usize,
    freed: u32,
}

impl Drop for MpmcBatch<'_> {
    fn drop(&mut self) {
        if let Some(pos) = self.held.take() {
            if mpmc::release(&self.att.ring, pos, self.att.id).is_ok() {
                self.freed += 1;
            }
        }
        if self.freed > 0 {
            self.att.notify_space();
        }
    }
}

/// Claims the next message of an MPMC queue for `att` (see `mpmc::claim_read`). In a queue with
/// dead letters, a message that already failed its last delivery (its consumers died, or the
/// dead-letter queue was full when it was due) goes there instead of to the caller; after 64 of
/// those in a row this says `NotReady`, to be asked again.
#[inline]
fn claim_next(
    att: &Attachment,
    dl: Option<&super::dead::DeadLetters>,
    max_len: usize,
    freed: &mut u32,
) -> Result<Poll<crate::ring::Msg>> {
    for _ in 0..64 {
        match mpmc::claim_read(&att.ring, att.id, max_len, freed)? {
            Poll::Ready(msg) if dl.is_some_and(|dl| super::dead::screen(att, dl, msg.pos)) => {}
            r => return Ok(r),
        }
    }
    Ok(Poll::NotReady)
}

/// Whether slots of `ring` may wait in state RETRY: something was rejected, or the queue has
/// dead letters (where a dead consumer's message is delivered again through RETRY).
fn retries_possible(ring: &MappedRing, dead_letters: bool) -> bool {
    dead_letters || ring.control().stats.0.rejected.load(Relaxed) > 0
}

/// A message borrowed in place; the slot is released when this drops.
///
/// The bytes are shared memory: a process that follows the protocol does not write them while
/// the guard lives. (Were a peer to judge this process dead and take the slot back, which
/// shmq's liveness never does to a live process, the drop finds out and leaves the slot to it.)
#[derive(Debug)]
pub struct RecvRef<'a> {
    consumer: &'a mut Consumer,
    pos: u64,
    len: usize,
    kind: u32,
    /// Rejected: the drop leaves the slot alone.
    done: bool,
}

impl RecvRef<'_> {
    /// The sender's kind tag.
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// Which delivery of this message this is (1 the first time; more after rejections or the
    /// death of a consumer that held it). `None` in a queue without `max_deliveries`, which
    /// counts no deliveries.
    pub fn delivery(&self) -> Option<u32> {
        match self.consumer.side {
            ConsumerSide::Mpmc => {
                mpmc::failed_deliveries(&self.consumer.shared.ring, self.pos).map(|n| n.saturating_add(1))
            }
            ConsumerSide::Spsc { .. } => None,
        }
    }

    /// Rejects the message instead of consuming it: it will be delivered again (before newer
    /// messages, to any consumer). In a queue with
    /// [`max_deliveries(n)`](crate::QueueOptions::max_deliveries), the `n`-th failed delivery
    /// moves it to the dead-letter queue, with `reason` (at most 200 bytes kept) and its
    /// delivery count (see [`crate::deadletter`]). An SPSC queue delivers it again by not
    /// consuming it (the next receive returns it).
    ///
    /// # Errors
    /// See [`RejectError`](crate::deadletter::RejectError): the message is then still in the
    /// queue, to be delivered again, never lost.
    pub fn reject(mut self, reason: &str) -> Result<crate::deadletter::Rejected, crate::deadletter::RejectError> {
        use crate::deadletter::Rejected;
        let pos = self.pos;
        self.done = true; // whatever happens below, the drop does not release it
        let c = &mut *self.consumer;
        match c.side {
            ConsumerSide::Spsc { .. } => Ok(Rejected::Redelivered { failed: 0 }),
            ConsumerSide::Mpmc => {
                let failed = super::dead::count_rejection(&c.shared, pos);
                match &c.dl {
                    Some(dl) if failed >= dl.max => super::dead::move_message(&c.shared, dl, pos, failed, reason),
                    _ => super::dead::put_back(&c.shared, pos)
                        .map(|()| Rejected::Redelivered { failed })
                        .map_err(crate::deadletter::RejectError::from_internal),
                }
            }
        }
    }
}

impl std::ops::Deref for RecvRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ring = &self.consumer.shared.ring;
        // SAFETY: the message at `pos` is claimed by this guard (SPSC: not yet released; MPMC:
        // READING claim) and len <= max_msg was validated when it was claimed.
        unsafe { std::slice::from_raw_parts(ring.payload(self.pos), self.len) }
    }
}

impl Drop for RecvRef<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.consumer.finish(self.pos);
        }
    }
}
