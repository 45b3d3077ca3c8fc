//! Receiving from a queue: copy, batch, in-place references, typed values.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{give_role, ConsumerSide, Received};
use crate::attach::{Attachment, Deadline};
use crate::error::{Error, Result};
use crate::layout::slot;
use crate::ring::{mpmc, Poll, RingMem};
use crate::wait::Step;

/// Receives messages from a queue. `Send`, not `Sync`.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Attachment>,
    side: ConsumerSide,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let ConsumerSide::Spsc(_) = self.side {
            give_role(&self.shared, &self.shared.seg.header().consumer_holder);
        }
    }
}

impl Consumer {
    pub(super) fn new(shared: Arc<Attachment>, side: ConsumerSide) -> Consumer {
        Consumer { shared, side, _not_sync: PhantomData }
    }

    /// Receives the next message into `buf`, waiting per the wait strategy.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if the message does not fit (it stays in the queue);
    /// [`Error::Corrupted`] if a peer wrote an invalid slot (that slot is skipped).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<Received> {
        self.recv_with(buf, Deadline::Forever)
    }
    /// Receives without waiting: [`Error::Empty`] if there is no message.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Received> {
        self.recv_with(buf, Deadline::Now)
    }
    /// Receives, waiting at most `timeout`: [`Error::Timeout`] after that.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Received> {
        self.recv_with(buf, Deadline::after(timeout))
    }

    /// Receives a plain-old-data value.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if the message is not exactly `size_of::<T>()` bytes (the
    /// message is consumed: the sender broke the protocol).
    pub fn recv_value<T: bytemuck::Pod>(&mut self) -> Result<T> {
        let m = self.recv_ref()?;
        if m.len() != std::mem::size_of::<T>() {
            return Err(Error::SizeMismatch { expected: std::mem::size_of::<T>(), found: m.len() });
        }
        Ok(bytemuck::pod_read_unaligned(&m))
    }

    /// Borrows the next message in place (zero-copy), waiting per the wait strategy. The slot is
    /// released when the guard drops.
    pub fn recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.recv_ref_with(Deadline::Forever)
    }
    /// [`recv_ref`](Self::recv_ref) without waiting: [`Error::Empty`] if there is no message.
    pub fn try_recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.recv_ref_with(Deadline::Now)
    }
    /// [`recv_ref`](Self::recv_ref) waiting at most `timeout`.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvRef<'_>> {
        self.recv_ref_with(Deadline::after(timeout))
    }

    /// Hands up to `max` waiting messages, in order, to `f(payload, kind)` without waiting;
    /// returns how many. An SPSC queue releases them with one store.
    pub fn try_recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8], u32)) -> Result<usize> {
        let ring = &self.shared.ring;
        let n = match &mut self.side {
            ConsumerSide::Spsc(c) => {
                let n = (c.available_for(ring, max as u64)? as usize).min(max);
                for i in 0..n as u64 {
                    let (len, kind) = match c.peek(ring, i) {
                        Ok(v) => v,
                        Err(e) => {
                            c.release(ring, i + 1); // skip the corrupted slot too
                            return Err(e);
                        }
                    };
                    // SAFETY: message i is ready (i < available) and len <= max_msg (peek).
                    f(unsafe { std::slice::from_raw_parts(ring.payload(c.position(i)), len) }, kind);
                }
                c.release(ring, n as u64);
                n
            }
            ConsumerSide::Mpmc => {
                let mut n = 0;
                while n < max {
                    match mpmc::claim_read(ring, self.shared.id, usize::MAX)? {
                        Poll::Ready(msg) => {
                            // SAFETY: we claimed slot msg.pos; msg.len <= max_msg (validated at
                            // the claim, never re-read).
                            f(unsafe { std::slice::from_raw_parts(ring.payload(msg.pos), msg.len) }, msg.kind);
                            mpmc::release(ring, msg.pos);
                            n += 1;
                        }
                        _ => break,
                    }
                }
                n
            }
        };
        if n > 0 {
            self.shared.notify_space();
        }
        Ok(n)
    }

    fn recv_with(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<Received> {
        let m = self.claim(buf.len(), deadline)?;
        buf[..m.len].copy_from_slice(&m);
        Ok(Received { len: m.len, kind: m.kind })
    }

    fn recv_ref_with(&mut self, deadline: Deadline) -> Result<RecvRef<'_>> {
        self.claim(usize::MAX, deadline)
    }

    /// Waits for the next message of at most `max_len` bytes and claims it.
    fn claim(&mut self, max_len: usize, deadline: Deadline) -> Result<RecvRef<'_>> {
        let s = &*self.shared;
        let ring = &s.ring;
        let (pos, len, kind) = match &mut self.side {
            ConsumerSide::Spsc(c) => s.run_consumer(deadline, |_| {
                if c.available(ring)? == 0 {
                    return Ok(Step::Wait);
                }
                let (len, kind) = c.peek(ring, 0).inspect_err(|_| {
                    c.release(ring, 1); // skip the corrupted slot so the queue goes on
                })?;
                if len > max_len {
                    return Err(Error::BufferTooSmall { len: max_len, needed: len });
                }
                Ok(Step::Ready((c.position(0), len, kind)))
            })?,
            ConsumerSide::Mpmc => s.run_consumer(deadline, |check| {
                Ok(match mpmc::claim_read(ring, s.id, max_len)? {
                    Poll::Ready(msg) => Step::Ready((msg.pos, msg.len, msg.kind)),
                    Poll::NotReady => Step::Wait,
                    Poll::Held { pos, word } => {
                        if check && s.parts.is_dead(slot::claimer(word)) && mpmc::recover(ring, pos, word) {
                            s.notify_data();
                            s.notify_space();
                        }
                        Step::Held
                    }
                })
            })?,
        };
        Ok(RecvRef { consumer: self, pos, len, kind })
    }
}

/// A message borrowed in place; the slot is released when this drops.
#[derive(Debug)]
pub struct RecvRef<'a> {
    consumer: &'a mut Consumer,
    pos: u64,
    len: usize,
    kind: u32,
}

impl RecvRef<'_> {
    /// The sender's kind tag.
    pub fn kind(&self) -> u32 {
        self.kind
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
        let ring = &self.consumer.shared.ring;
        match &mut self.consumer.side {
            ConsumerSide::Spsc(c) => c.release(ring, 1),
            ConsumerSide::Mpmc => mpmc::release(ring, self.pos),
        }
        self.consumer.shared.notify_space();
    }
}
