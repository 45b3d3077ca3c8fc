//! Publishing to a topic.

use std::sync::Arc;

use super::TopicShared;
use crate::attach::Deadline;
use crate::error::{Error, Result, SendError};
use crate::layout::{slot, ROLE_PUBLISHER};
use crate::ring::{broadcast, Poll, RingMem};
use crate::sync::Ordering::Relaxed;
use crate::wait::Step;

/// Publishes messages to a topic. `Send`, not `Sync`.
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<TopicShared>,
    /// Cached lower bound of the reliable subscribers' cursors; re-computed only when the
    /// publisher reaches it.
    gate: u64,
    /// Subscriber epoch `gate` was computed at.
    epoch: u64,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shared.att.leave_role(ROLE_PUBLISHER);
    }
}

crate::methods::impl_sender!(Publisher);

impl Publisher {
    pub(super) fn new(shared: Arc<TopicShared>) -> Result<Publisher> {
        shared.att.join_role(ROLE_PUBLISHER);
        let epoch = shared.table.epoch();
        let tail = shared.att.ring.control().tail.0.load(Relaxed);
        let gate = shared.table.gate(tail);
        Ok(Publisher { shared, gate, epoch, _not_sync: std::marker::PhantomData })
    }

    /// The attachment this sender waits through.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn attachment(&self) -> crate::attach::AttRef {
        crate::attach::AttRef::Topic(self.shared.clone())
    }

    crate::methods::sender_methods!(TopicLoan);

    fn loan_with(&mut self, deadline: Deadline) -> Result<TopicLoan<'_>> {
        let seq = self.claim(deadline, true)?;
        Ok(TopicLoan { publisher: self, seq, kind: 0, done: false })
    }

    /// The batch of [`try_send_batch`](Self::try_send_batch): one message after the other,
    /// until one does not fit.
    fn send_batch_now(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let max = self.shared.att.ring.max_msg();
        if let Some(m) = msgs.iter().find(|m| m.len() > max) {
            return Err(Error::MessageTooLarge { len: m.len(), max });
        }
        for (i, m) in msgs.iter().enumerate() {
            match self.send_with(0, m, Deadline::Now) {
                Ok(()) => {}
                Err(Error::Full) => return Ok(i),
                Err(e) => return Err(e),
            }
        }
        Ok(msgs.len())
    }

    fn send_with(&mut self, kind: u32, payload: &[u8], deadline: Deadline) -> Result<()> {
        let max = self.shared.att.ring.max_msg();
        if payload.len() > max {
            return Err(Error::MessageTooLarge { len: payload.len(), max });
        }
        let seq = self.claim(deadline, false)?;
        let ring = &self.shared.att.ring;
        // SAFETY: we claimed `seq` (WRITING) and `claim` waited until no reliable subscriber
        // can be reading the message the slot held, so no reader trusts its payload until our
        // commit and no other publisher writes it; payload.len() <= max_msg, the payload's size.
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), ring.payload(seq), payload.len()) };
        broadcast::commit(ring, seq, self.shared.att.id, payload.len(), kind)?;
        self.shared.att.notify_data();
        Ok(())
    }

    /// Claims the next sequence, waiting per `deadline` for the slowest reliable subscriber;
    /// then makes sure no subscriber that joined meanwhile reads the message the slot held
    /// (see [`settle`](Self::settle)).
    fn claim(&mut self, deadline: Deadline, loan: bool) -> Result<u64> {
        let seq = self.claim_slot(deadline, loan)?;
        self.settle(seq, deadline, if loan { slot::LOANED } else { slot::WRITING })?;
        Ok(seq)
    }

    /// After claiming `seq` (as `tag`): if a subscriber joined since our gate was computed, it
    /// may have started at the message this slot holds (`Start::Earliest`) and be reading it.
    /// Our claim CAS and the SeqCst epoch load below pair with the joiner's epoch bump and fence
    /// (see `ring::broadcast`): either the joiner sees our claim, or we see the new epoch here.
    /// In the second case, if a reliable cursor is a whole ring behind `seq`, we mark the claim
    /// PENDING (we have not touched the slot: the joiner may read the message in it) and wait,
    /// per `deadline`, until no reliable cursor is; then the claim is ours to write again. A
    /// joiner that saw our claim before it turned PENDING waits to see which way it goes. When
    /// the deadline runs out, the claim is aborted (subscribers skip the sequence) and the error
    /// returned.
    fn settle(&mut self, seq: u64, deadline: Deadline, tag: u64) -> Result<()> {
        let s = &*self.shared;
        let ring = &s.att.ring;
        let now = s.table.epoch_after_claim();
        if now == self.epoch {
            return Ok(()); // the common case: one load of a line written only on joins and leaves
        }
        self.epoch = now;
        let cap = ring.capacity();
        // A gate ahead of `seq` (no reliable subscriber: the gate is the tail) is clear too.
        let clear = |gate: u64| (seq.wrapping_sub(gate) as i64) < cap as i64;
        self.gate = s.table.gate(ring.control().tail.0.load(Relaxed));
        if clear(self.gate) {
            return Ok(());
        }
        broadcast::pend(ring, seq, s.att.id, tag)?;
        let gate = &mut self.gate;
        let waited = s.att.run_producer(deadline, |check| {
            *gate = s.table.gate(ring.control().tail.0.load(Relaxed));
            if clear(*gate) {
                return Ok(Step::Ready(()));
            }
            if check && s.table.reap_dead(*gate, |id| s.att.parts.is_dead(id)) {
                *gate = s.table.gate(ring.control().tail.0.load(Relaxed));
            }
            Ok(Step::Held)
        });
        match waited {
            Ok(()) => broadcast::resume(ring, seq, s.att.id, tag),
            Err(e) => {
                if broadcast::abort(ring, seq, s.att.id).is_ok() {
                    s.att.notify_data();
                }
                Err(e)
            }
        }
    }

    fn claim_slot(&mut self, deadline: Deadline, loan: bool) -> Result<u64> {
        let s = &*self.shared;
        let ring = &s.att.ring;
        let (gate, epoch) = (&mut self.gate, &mut self.epoch);
        s.att.run_producer(deadline, |check| {
            // A subscriber joined or left since the gate was computed: compute it again. (One
            // load of a line that is written only on joins and leaves.)
            let now = s.table.epoch();
            if now != *epoch {
                *epoch = now;
                *gate = s.table.gate(ring.control().tail.0.load(Relaxed));
            }
            for _ in 0..2 {
                let claimed = if loan {
                    broadcast::claim_loan(ring, s.att.id, *gate)
                } else {
                    broadcast::claim(ring, s.att.id, *gate)
                };
                match claimed? {
                    Poll::Ready(seq) => return Ok(Step::Ready(seq)),
                    Poll::NotReady => {
                        let tail = ring.control().tail.0.load(Relaxed);
                        let fresh = s.table.gate(tail);
                        if fresh != *gate {
                            *gate = fresh;
                            continue; // the slowest subscriber moved on: try again
                        }
                        if check && s.table.reap_dead(fresh, |id| s.att.parts.is_dead(id)) {
                            *gate = s.table.gate(tail);
                            continue;
                        }
                        return Ok(Step::Held); // re-check subscribers' liveness while waiting
                    }
                    Poll::Held { pos, word } => {
                        if check && s.att.parts.is_dead(slot::claimer(word)) && broadcast::recover(ring, pos, word) {
                            self.shared.att.notify_data();
                            continue;
                        }
                        return Ok(Step::Held);
                    }
                }
            }
            Ok(Step::Wait)
        })
    }
}

/// A topic slot borrowed for writing in place. The buffer is shared memory holding whatever the
/// slot held before.
#[derive(Debug)]
pub struct TopicLoan<'a> {
    publisher: &'a mut Publisher,
    seq: u64,
    kind: u32,
    done: bool,
}

impl TopicLoan<'_> {
    /// The kind tag to publish with.
    pub fn set_kind(&mut self, kind: u32) {
        self.kind = kind;
    }

    /// Publishes the first `len` bytes.
    ///
    /// # Errors
    /// [`SendError::MessageTooLarge`] if `len` exceeds the buffer (the loan is given back,
    /// nothing is published); [`SendError::ClaimRevoked`] if a peer took the slot back
    /// (nothing was published).
    pub fn commit(mut self, len: usize) -> Result<(), SendError> {
        let att = &self.publisher.shared.att;
        if len > att.ring.max_msg() {
            return Err(SendError::MessageTooLarge { len, max: att.ring.max_msg() });
        }
        self.done = true;
        broadcast::commit_loan(&att.ring, self.seq, att.id, len, self.kind).map_err(SendError::from_internal)?;
        att.notify_data();
        Ok(())
    }
}

impl std::ops::Deref for TopicLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ring = &self.publisher.shared.att.ring;
        // SAFETY: the slot is claimed by this loan; its payload has max_msg bytes.
        unsafe { std::slice::from_raw_parts(ring.payload(self.seq), ring.max_msg()) }
    }
}

impl std::ops::DerefMut for TopicLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let ring = &self.publisher.shared.att.ring;
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(ring.payload(self.seq), ring.max_msg()) }
    }
}

impl Drop for TopicLoan<'_> {
    fn drop(&mut self) {
        let att = &self.publisher.shared.att;
        // A revoked claim needs nothing more: the peer that revoked it counted it.
        if !self.done && broadcast::abort(&att.ring, self.seq, att.id).is_ok() {
            att.notify_data();
        }
    }
}
