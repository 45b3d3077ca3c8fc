//! Single-producer single-consumer ring: Lamport's queue with cached indices (as in rtrb),
//! whose consumer polls the slot instead of the producer's index (as in FastForward).
//!
//! `tail` (written only by the producer) and `head` (written only by the consumer) are
//! monotonic u64 positions on separate lines. The producer keeps a cached copy of `head` and
//! re-reads it only when the cache says full. The consumer learns that message `pos` is ready
//! from the slot itself: the producer stores the slot's state word as
//! [`committed(pos)`](committed) after writing the message, so a consumer polling an empty ring
//! reads one line (the slot it will read anyway) and the producer's `tail` line never moves
//! between the cores. `tail` is still published (after the slot) for batches, which learn with
//! one load how many messages are ready, for `len()`, and for a producer that takes over.
//!
//! ```text
//!  producer                                   consumer
//!  write len, kind, payload into slot(pos)    w = slot(head).state.load(Acquire)
//!  slot(pos).state.store(committed(pos),      if w == committed(head):
//!                        Release)                 read len (validated), kind, payload
//!  tail.store(pos + 1, Release)                   head.store(head + 1, Release)
//! ```
//!
//! Orderings: the Release store of the state pairs with the consumer's Acquire load of it, so
//! the message bytes are visible once the state is; the Release store of `tail` (after the
//! state) pairs with the Acquire load of a batch or a new producer, so every position below
//! `tail` has its state committed. The consumer reads a slot, then stores `head` with Release;
//! the producer loads `head` with Acquire (pairs with it) before overwriting the slot.
//!
//! A state is committed for one position only (`committed(pos)` holds the position), so a
//! slot's state from an earlier lap never reads as ready. A producer that died between a
//! slot's state and `tail` left committed messages past `tail`: the next producer's `attach`
//! advances `tail` over them, so they are delivered and not overwritten. Shared values are
//! validated on every load: `0 <= tail - head <= capacity`, a slot below `tail` has its
//! state committed, and `len <= max_msg`.

use super::RingMem;
use crate::error::{Error, Result};
use crate::layout::slot;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// The state word of a slot that holds the committed message `pos`.
#[inline]
pub fn committed(pos: u64) -> u64 {
    slot::pack(pos, slot::COMMITTED, 0)
}

/// The producer side's private state.
#[derive(Debug)]
pub struct SpscProducer {
    tail: u64,
    head_cache: u64,
}

/// The consumer side's private state.
#[derive(Debug)]
pub struct SpscConsumer {
    head: u64,
    tail_cache: u64,
}

fn check(head: u64, tail: u64, cap: u64) -> Result<()> {
    let depth = tail.wrapping_sub(head);
    if depth > cap {
        return Err(Error::corrupted(format!(
            "SPSC indices head={head} tail={tail} are more than a capacity ({cap}) apart"
        )));
    }
    Ok(())
}

impl SpscProducer {
    /// Takes over the producer side from the shared indices (validated).
    ///
    /// Messages a previous producer committed without advancing `tail` (it died in between)
    /// are taken as sent: `tail` moves past them, so they are delivered and not overwritten.
    pub fn attach(m: &impl RingMem) -> Result<Self> {
        let mut tail = m.control().tail.0.load(Acquire);
        let head = m.control().head.0.load(Acquire);
        let cap = m.capacity();
        check(head, tail, cap)?;
        let published = tail;
        // Acquire: pairs with the dead producer's Release store of the state (nothing to read
        // here, but a later batch of ours trusts `tail`). At most a capacity of slots.
        while tail.wrapping_sub(head) < cap && m.slot(tail).state.load(Acquire) == committed(tail) {
            tail = tail.wrapping_add(1);
        }
        if tail != published {
            // Release: as in `publish`.
            m.control().tail.0.store(tail, Release);
        }
        Ok(SpscProducer { tail, head_cache: head })
    }

    /// Number of free slots; re-reads `head` only when the cached value says full.
    #[inline]
    pub fn free(&mut self, m: &impl RingMem) -> Result<u64> {
        self.free_for(m, 1)
    }

    /// Number of free slots; re-reads `head` only when the cached value says fewer than
    /// `want` are free (so a batch gets every slot that is free now).
    #[inline]
    pub fn free_for(&mut self, m: &impl RingMem, want: u64) -> Result<u64> {
        let cap = m.capacity();
        let free = cap - self.tail.wrapping_sub(self.head_cache);
        if free >= want.min(cap) && free > 0 {
            return Ok(free);
        }
        // Acquire: pairs with the consumer's Release store of `head` in `release`, so its
        // reads of the slots it released happen before we overwrite them.
        let head = m.control().head.0.load(Acquire);
        // The consumer's head can only be at or behind our tail.
        let depth = self.tail.wrapping_sub(head);
        if depth > cap || head.wrapping_sub(self.head_cache) > cap {
            return Err(Error::corrupted(format!(
                "SPSC head={head} is not within a capacity behind tail={}",
                self.tail
            )));
        }
        self.head_cache = head;
        Ok(cap - depth)
    }

    /// Position of the `i`-th free slot (only valid for `i < free()`).
    #[inline]
    pub fn position(&self, i: u64) -> u64 {
        self.tail.wrapping_add(i)
    }

    /// Advances `tail` over the next `n` slots, which the caller has committed (with
    /// [`write`](Self::write) or [`commit`](Self::commit)).
    #[inline]
    pub fn publish(&mut self, m: &impl RingMem, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        // Release: pairs with the Acquire load of `tail` in `available_for` and `attach`, so
        // every slot below it is seen committed.
        m.control().tail.0.store(self.tail, Release);
    }

    /// Commits the message whose payload the caller has written in place into the `i`-th free
    /// slot: the consumer can read it from now on (before [`publish`](Self::publish)).
    ///
    /// # Safety
    /// As for [`write`](Self::write); `len <= max_msg`.
    #[inline]
    pub unsafe fn commit(&self, m: &impl RingMem, i: u64, len: usize, kind: u32) {
        debug_assert!(len <= m.max_msg());
        let pos = self.position(i);
        let slot = m.slot(pos);
        slot.len.store(len as u32, Relaxed);
        slot.kind.store(kind, Relaxed);
        // Release: pairs with the consumer's Acquire load of the state; the payload, len and
        // kind written before it are visible to a consumer that sees it.
        slot.state.store(committed(pos), Release);
    }

    /// Writes one message into the `i`-th free slot and commits it (the consumer can read it
    /// from now on; `tail` moves with [`publish`](Self::publish)).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `payload` exceeds the ring's maximum message size (nothing
    /// is written).
    ///
    /// # Safety
    /// `self` is the ring's only producer (no other thread or process writes its slots), and
    /// `i` is below the last [`free`](Self::free) or [`free_for`](Self::free_for) result, so the
    /// consumer is not reading the slot.
    #[inline]
    pub unsafe fn write(&self, m: &impl RingMem, i: u64, kind: u32, payload: &[u8]) -> Result<()> {
        if payload.len() > m.max_msg() {
            return Err(Error::MessageTooLarge { len: payload.len(), max: m.max_msg() });
        }
        let pos = self.position(i);
        // SAFETY: payload.len() <= max_msg (checked above) and payload(pos) is valid for
        // max_msg bytes (RingMem contract); the caller guarantees that nobody else writes or
        // reads the slot meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), m.payload(pos), payload.len()) };
        // SAFETY: the caller's guarantees, passed on; len <= max_msg as checked.
        unsafe { self.commit(m, i, payload.len(), kind) };
        Ok(())
    }
}

impl SpscConsumer {
    /// Takes over the consumer side from the shared indices (validated).
    pub fn attach(m: &impl RingMem) -> Result<Self> {
        let head = m.control().head.0.load(Acquire);
        let tail = m.control().tail.0.load(Acquire);
        check(head, tail, m.capacity())?;
        Ok(SpscConsumer { head, tail_cache: tail })
    }

    /// Whether a message is ready: the number known ready (from the last `tail` read), or else
    /// 1 or 0 from the next slot's state (the producer's `tail` line is not read).
    #[inline]
    pub fn available(&mut self, m: &impl RingMem) -> Result<u64> {
        // tail_cache - head is at most a capacity (validated when `tail` was read, and kept
        // so by `release`).
        let known = self.tail_cache.wrapping_sub(self.head);
        if known != 0 {
            return Ok(known);
        }
        // Acquire: pairs with the producer's Release store of the state in `commit`.
        Ok(u64::from(m.slot(self.head).state.load(Acquire) == committed(self.head)))
    }

    /// Number of messages ready, at least; re-reads `tail` only when the cached value says
    /// fewer than `want` are ready. (A message committed while `tail` was not yet advanced
    /// is counted by [`available`](Self::available) only.)
    #[inline]
    pub fn available_for(&mut self, m: &impl RingMem, want: u64) -> Result<u64> {
        let ready = self.tail_cache.wrapping_sub(self.head);
        if ready >= want.min(m.capacity()) && ready > 0 {
            return Ok(ready);
        }
        // Acquire: pairs with the producer's Release store of `tail` in `publish`.
        let tail = m.control().tail.0.load(Acquire);
        let ready = tail.wrapping_sub(self.head);
        if ready > m.capacity() {
            // Behind head by at most a capacity: we read messages from their slots before the
            // producer advanced `tail` over them (it commits, then publishes).
            if self.head.wrapping_sub(tail) <= m.capacity() {
                return Ok(0);
            }
            return Err(Error::corrupted(format!(
                "SPSC tail={tail} is not within a capacity of head={}",
                self.head
            )));
        }
        self.tail_cache = tail;
        Ok(ready)
    }

    /// Position of the `i`-th ready message (only valid for `i < available()`).
    #[inline]
    pub fn position(&self, i: u64) -> u64 {
        self.head.wrapping_add(i)
    }

    /// Length and kind of the `i`-th ready message, validated: its state is committed for
    /// this position and `len <= max_msg`.
    #[inline]
    pub fn peek(&self, m: &impl RingMem, i: u64) -> Result<(usize, u32)> {
        let pos = self.position(i);
        let slot = m.slot(pos);
        // Acquire: as in `available` (for a message counted from `tail`, the state was stored
        // before `tail` and this load finds it).
        let state = slot.state.load(Acquire);
        if state != committed(pos) {
            return Err(Error::corrupted(format!(
                "SPSC slot state {state:#x} at position {pos} is not committed, though the producer's tail is past it"
            )));
        }
        let len = slot.len.load(Relaxed) as usize;
        if len > m.max_msg() {
            return Err(Error::corrupted(format!("message length {len} exceeds the maximum {}", m.max_msg())));
        }
        Ok((len, slot.kind.load(Relaxed)))
    }

    /// Releases the first `n` ready messages to the producer.
    #[inline]
    pub fn release(&mut self, m: &impl RingMem, n: u64) {
        self.head = self.head.wrapping_add(n);
        // Messages seen from their slots take head past the last `tail` read: the cache is
        // kept at or ahead of head, so `tail_cache - head` stays a count of ready messages.
        if self.tail_cache.wrapping_sub(self.head) > m.capacity() {
            self.tail_cache = self.head;
        }
        // Release: pairs with the producer's Acquire load of `head` in `free`.
        m.control().head.0.store(self.head, Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::HeapRing;

    #[test]
    fn wraps_around_and_reports_full_and_empty() {
        let m = HeapRing::new(4, 8);
        let mut p = SpscProducer::attach(&m).unwrap();
        let mut c = SpscConsumer::attach(&m).unwrap();
        for round in 0..10u8 {
            assert_eq!(p.free(&m).unwrap(), 4);
            for i in 0..4 {
                // SAFETY: the only producer; i < 4 == free.
                unsafe { p.write(&m, i, i as u32, &[round, i as u8]) }.unwrap();
            }
            // Committed but not yet published: the consumer sees the first from its slot.
            assert_eq!(c.available(&m).unwrap(), 1);
            p.publish(&m, 4);
            assert_eq!(p.free(&m).unwrap(), 0);
            assert_eq!(c.available_for(&m, 4).unwrap(), 4);
            for i in 0..4 {
                assert_eq!(c.peek(&m, i).unwrap(), (2, i as u32));
            }
            c.release(&m, 4);
            assert_eq!(c.available(&m).unwrap(), 0);
        }
    }

    #[test]
    fn hostile_indices_and_lengths_are_errors() {
        let m = HeapRing::new(4, 8);
        let mut c = SpscConsumer::attach(&m).unwrap();
        m.control().tail.0.store(100, Release);
        // A single receive reads the slot, not `tail`; a batch reads `tail` and checks it.
        assert_eq!(c.available(&m).unwrap(), 0);
        assert!(matches!(c.available_for(&m, 2), Err(Error::Corrupted(_))));
        m.control().tail.0.store(1, Release);
        assert_eq!(c.available_for(&m, 1).unwrap(), 1);
        // `tail` says ready, the slot does not: corrupted.
        assert!(matches!(c.peek(&m, 0), Err(Error::Corrupted(_))));
        m.slot(0).state.store(committed(0), Release);
        assert_eq!(c.peek(&m, 0).unwrap(), (0, 0));
        m.slot(0).len.store(9, Release);
        assert!(matches!(c.peek(&m, 0), Err(Error::Corrupted(_))));
        let mut p = SpscProducer::attach(&m).unwrap();
        m.control().head.0.store(u64::MAX - 5, Release);
        for i in 0..3 {
            // SAFETY: the only producer; i < 3 <= free.
            unsafe { p.write(&m, i, 0, &[]) }.unwrap();
        }
        // SAFETY: as above.
        let r = unsafe { p.write(&m, 0, 0, &[0; 9]) };
        assert!(matches!(r, Err(Error::MessageTooLarge { len: 9, max: 8 })));
        p.publish(&m, 3);
        assert!(matches!(p.free(&m), Err(Error::Corrupted(_))));
    }

    #[test]
    fn a_new_producer_takes_over_messages_committed_but_not_published() {
        let m = HeapRing::new(4, 8);
        let mut p = SpscProducer::attach(&m).unwrap();
        for i in 0..3 {
            // SAFETY: the only producer; i < 3 <= free.
            unsafe { p.write(&m, i, 7, &[i as u8]) }.unwrap();
        }
        p.publish(&m, 1); // died after committing three, publishing one
        let mut p = SpscProducer::attach(&m).unwrap();
        assert_eq!(m.control().tail.0.load(Acquire), 3, "tail moved past the committed messages");
        assert_eq!(p.free(&m).unwrap(), 1);
        let mut c = SpscConsumer::attach(&m).unwrap();
        assert_eq!(c.available_for(&m, 4).unwrap(), 3);
        for i in 0..3 {
            assert_eq!(c.peek(&m, i).unwrap(), (1, 7));
        }
    }
}
