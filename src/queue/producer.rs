//! Sending into a queue: copy, batch, zero-copy loans, typed values.

use std::marker::PhantomData;
use std::sync::Arc;

use super::{give_role, ProducerSide};
use crate::attach::{Attachment, Deadline};
use crate::error::{Error, Result, SendError};
use crate::layout::slot;
use crate::mapped_ring::MappedRing;
use crate::ring::{mpmc, Poll, RingMem};
use crate::wait::Step;

/// Sends messages into a queue. `Send`, not `Sync`: one thread at a time.
#[derive(Debug)]
pub struct Producer {
    shared: Arc<Attachment>,
    side: ProducerSide,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let ProducerSide::Spsc { role, .. } = self.side {
            give_role(&self.shared.seg.header().producer_holder, role);
        }
        self.shared.leave_role(crate::layout::ROLE_PRODUCER);
    }
}

crate::methods::impl_sender!(Producer);

impl Producer {
    pub(super) fn new(shared: Arc<Attachment>, side: ProducerSide) -> Producer {
        Producer { shared, side, _not_sync: PhantomData }
    }

    /// The attachment this sender waits through.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn attachment(&self) -> crate::attach::AttRef {
        crate::attach::AttRef::Queue(self.shared.clone())
    }

    crate::methods::sender_methods!(Loan);

    /// The batch of [`try_send_batch`](Self::try_send_batch). An SPSC queue publishes it with
    /// one store. A claim taken back stops it with `ClaimRevoked` (the messages before it were
    /// sent).
    fn send_batch_now(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let max = self.shared.seg.config.max_msg as usize;
        if let Some(m) = msgs.iter().find(|m| m.len() > max) {
            return Err(Error::MessageTooLarge { len: m.len(), max });
        }
        let mut held = None;
        let n = Self::batch(&self.shared, &mut self.side, msgs, &mut held)?;
        if n > 0 || msgs.is_empty() {
            return Ok(n);
        }
        // Nothing fit: the slot may be held by a consumer that died (checked at most every
        // 10 ms, as a single send does).
        if self.shared.peer_check_due() && self.recover_dead(held.take()) {
            let n = Self::batch(&self.shared, &mut self.side, msgs, &mut held)?;
            if n > 0 {
                return Ok(n);
            }
        }
        if self.shared.gone_after_polls(crate::attach::RECEIVERS) {
            // One more look, for space the last consumer freed before it left (or left held
            // when it died).
            let mut n = Self::batch(&self.shared, &mut self.side, msgs, &mut held)?;
            if n == 0 && self.recover_dead(held.take()) {
                n = Self::batch(&self.shared, &mut self.side, msgs, &mut held)?;
            }
            return if n == 0 { Err(Error::Disconnected) } else { Ok(n) };
        }
        Ok(0)
    }

    /// Recovers the MPMC slot a batch found `held` (position, state word) if its claimer died;
    /// whether it did.
    fn recover_dead(&self, held: Option<(u64, u64)>) -> bool {
        let s = &*self.shared;
        let Some((pos, word)) = held else { return false };
        if s.parts.is_dead(slot::claimer(word)) && mpmc::recover(&s.ring, pos, word, s.id) {
            s.notify_space();
            return true;
        }
        false
    }

    /// As many of `msgs` as fit now; `held` tells the MPMC slot that stopped it, if a claimer
    /// holds it.
    fn batch(
        shared: &Arc<Attachment>,
        side: &mut ProducerSide,
        msgs: &[&[u8]],
        held: &mut Option<(u64, u64)>,
    ) -> Result<usize> {
        let ring = &shared.ring;
        let me = shared.id;
        // Consumers are woken for what was sent on every way out, errors included.
        let mut sent = Sent { att: shared, n: 0 };
        match side {
            ProducerSide::Spsc { ring: p, .. } => {
                let n = (p.free_for(ring, msgs.len() as u64)? as usize).min(msgs.len());
                for (i, m) in msgs[..n].iter().enumerate() {
                    // SAFETY: this producer holds the SPSC producer role (one at a time) and
                    // i < n <= free.
                    unsafe { p.write(ring, i as u64, 0, m) }?;
                }
                p.publish(ring, n as u64);
                sent.n = n;
            }
            ProducerSide::Mpmc => {
                for m in msgs {
                    match mpmc::claim_write(ring, me)? {
                        Poll::Ready(pos) => {
                            copy_in(ring, pos, m);
                            mpmc::commit(ring, pos, me, m.len(), 0)?;
                            sent.n += 1;
                        }
                        Poll::Held { pos, word } => {
                            *held = Some((pos, word));
                            break;
                        }
                        Poll::NotReady => break,
                    }
                }
            }
        }
        Ok(sent.n)
    }

    fn send_with(&mut self, kind: u32, payload: &[u8], deadline: Deadline) -> Result<()> {
        let max = self.shared.seg.config.max_msg as usize;
        if payload.len() > max {
            return Err(Error::MessageTooLarge { len: payload.len(), max });
        }
        // The common case first, straight: an SPSC queue with room (no closure, no wait
        // machinery; the general path below polls again).
        if let ProducerSide::Spsc { ring: p, .. } = &mut self.side {
            let ring = &self.shared.ring;
            if p.free(ring)? > 0 {
                // SAFETY: this producer holds the SPSC producer role, and slot 0 is free.
                unsafe { p.write(ring, 0, kind, payload) }?;
                p.publish(ring, 1);
                self.shared.notify_data();
                return Ok(());
            }
        }
        let pos = self.reserve(deadline, false)?;
        let ring = &self.shared.ring;
        copy_in(ring, pos, payload);
        self.publish(pos, payload.len(), kind, false)
    }

    /// Waits for a free slot; returns its position (claimed for MPMC, as a loan if `loan`).
    fn reserve(&mut self, deadline: Deadline, loan: bool) -> Result<u64> {
        let s = &*self.shared;
        let ring = &s.ring;
        match &mut self.side {
            ProducerSide::Spsc { ring: p, .. } => s.run_producer(deadline, |_| {
                Ok(if p.free(ring)? > 0 { Step::Ready(p.position(0)) } else { Step::Wait })
            }),
            ProducerSide::Mpmc => s.run_producer(deadline, |check| {
                let claimed = if loan { mpmc::claim_loan(ring, s.id) } else { mpmc::claim_write(ring, s.id) };
                Ok(match claimed? {
                    Poll::Ready(pos) => Step::Ready(pos),
                    Poll::NotReady => Step::Wait,
                    Poll::Held { pos, word } => {
                        if check && s.parts.is_dead(slot::claimer(word)) && mpmc::recover(ring, pos, word, s.id) {
                            s.notify_space();
                        }
                        Step::Held
                    }
                })
            }),
        }
    }

    /// Publishes the reserved slot `pos` and wakes sleeping consumers.
    fn publish(&mut self, pos: u64, len: usize, kind: u32, loan: bool) -> Result<()> {
        let ring = &self.shared.ring;
        match &mut self.side {
            ProducerSide::Spsc { ring: p, .. } => {
                debug_assert_eq!(pos, p.position(0));
                // SAFETY: this producer holds the SPSC producer role and slot 0 was free when
                // reserved (`reserve`); len <= max_msg (checked by every caller).
                unsafe { p.commit(ring, 0, len, kind) };
                p.publish(ring, 1);
            }
            ProducerSide::Mpmc if loan => mpmc::commit_loan(ring, pos, self.shared.id, len, kind)?,
            ProducerSide::Mpmc => mpmc::commit(ring, pos, self.shared.id, len, kind)?,
        }
        self.shared.notify_data();
        Ok(())
    }

    fn loan_with(&mut self, deadline: Deadline) -> Result<Loan<'_>> {
        let pos = self.reserve(deadline, true)?;
        Ok(Loan { producer: self, pos, kind: 0, done: false })
    }
}

/// Wakes consumers when dropped if `n` messages were sent (so every way out of a batch,
/// errors and panics included, wakes them for what it sent).
struct Sent<'a> {
    att: &'a Attachment,
    n: usize,
}

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.att.notify_data();
        }
    }
}

fn copy_in(ring: &MappedRing, pos: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= ring.max_msg());
    // SAFETY: the caller reserved slot `pos` (free SPSC slot, or MPMC claim), so no peer that
    // follows the protocol touches its payload; payload.len() <= max_msg, the payload's size.
    unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), ring.payload(pos), payload.len()) };
}

/// A slot borrowed for writing in place. Commit with [`commit`](Self::commit); dropping it
/// without commit gives the slot back (MPMC consumers skip it, counted as aborted).
///
/// The buffer is shared memory: it holds whatever the slot held before.
#[derive(Debug)]
pub struct Loan<'a> {
    producer: &'a mut Producer,
    pos: u64,
    kind: u32,
    done: bool,
}

impl Loan<'_> {
    /// The kind tag to send with the message.
    pub fn set_kind(&mut self, kind: u32) {
        self.kind = kind;
    }

    /// Sends the first `len` bytes of the buffer.
    ///
    /// # Errors
    /// [`SendError::MessageTooLarge`] if `len` exceeds the buffer (the loan is given back,
    /// nothing is sent); [`SendError::ClaimRevoked`] if a peer took the slot back (nothing was
    /// sent).
    pub fn commit(mut self, len: usize) -> Result<(), SendError> {
        let max = self.producer.shared.seg.config.max_msg as usize;
        if len > max {
            return Err(SendError::MessageTooLarge { len, max }); // drop aborts
        }
        self.done = true;
        self.producer.publish(self.pos, len, self.kind, true).map_err(SendError::from_internal)
    }
}

impl std::ops::Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ring = &self.producer.shared.ring;
        // SAFETY: the slot is reserved for this loan; its payload has max_msg bytes.
        unsafe { std::slice::from_raw_parts(ring.payload(self.pos), ring.max_msg()) }
    }
}

impl std::ops::DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let ring = &self.producer.shared.ring;
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the buffer.
        unsafe { std::slice::from_raw_parts_mut(ring.payload(self.pos), ring.max_msg()) }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let ProducerSide::Mpmc = self.producer.side {
            let ring = &self.producer.shared.ring;
            // A revoked claim needs nothing more: the peer that revoked it counted it.
            if mpmc::abort(ring, self.pos, self.producer.shared.id).is_ok() {
                self.producer.shared.notify_data();
            }
        }
        // SPSC: nothing was published; the slot stays free.
    }
}
