//! Single-producer single-consumer ring (Lamport's queue with cached indices, as in rtrb).
//!
//! `tail` (written only by the producer) and `head` (written only by the consumer) are
//! monotonic u64 positions on separate lines. Each side keeps a private copy of its own index
//! and a cached copy of the other side's, and re-reads the shared one only when the cache says
//! full (producer) or empty (consumer), so in steady state each message costs one Release
//! store of the own index and no loads of the other side's line.
//!
//! Orderings: the producer writes `len`, `kind` and the payload, then stores `tail` with
//! Release; the consumer loads `tail` with Acquire (pairs with it) before reading them. The
//! consumer reads a slot, then stores `head` with Release; the producer loads `head` with
//! Acquire (pairs with it) before overwriting the slot. Shared values are validated on every
//! load: `0 <= tail - head <= capacity`, and `len <= max_msg`.

use super::RingMem;
use crate::error::{Error, Result};
use crate::sync::Ordering::{Acquire, Relaxed, Release};

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
    pub fn attach(m: &impl RingMem) -> Result<Self> {
        let tail = m.control().tail.0.load(Acquire);
        let head = m.control().head.0.load(Acquire);
        check(head, tail, m.capacity())?;
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

    /// Publishes the next `n` slots, whose len/kind/payload the caller has written.
    #[inline]
    pub fn publish(&mut self, m: &impl RingMem, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        // Release: pairs with the consumer's Acquire load of `tail` in `available`.
        m.control().tail.0.store(self.tail, Release);
    }

    /// Writes one message into the `i`-th free slot (not yet published).
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
        let slot = m.slot(pos);
        slot.len.store(payload.len() as u32, Relaxed);
        slot.kind.store(kind, Relaxed);
        // SAFETY: payload.len() <= max_msg (checked above) and payload(pos) is valid for
        // max_msg bytes (RingMem contract); the caller guarantees that nobody else writes or
        // reads the slot meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), m.payload(pos), payload.len()) };
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

    /// Number of messages ready; re-reads `tail` only when the cached value says empty.
    #[inline]
    pub fn available(&mut self, m: &impl RingMem) -> Result<u64> {
        self.available_for(m, 1)
    }

    /// Number of messages ready; re-reads `tail` only when the cached value says fewer than
    /// `want` are ready.
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
            return Err(Error::corrupted(format!(
                "SPSC tail={tail} is not within a capacity ahead of head={}",
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

    /// Length and kind of the `i`-th ready message, validated against `max_msg`.
    #[inline]
    pub fn peek(&self, m: &impl RingMem, i: u64) -> Result<(usize, u32)> {
        let slot = m.slot(self.position(i));
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
            p.publish(&m, 4);
            assert_eq!(p.free(&m).unwrap(), 0);
            assert_eq!(c.available(&m).unwrap(), 4);
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
        assert!(matches!(c.available(&m), Err(Error::Corrupted(_))));
        m.control().tail.0.store(1, Release);
        assert_eq!(c.available(&m).unwrap(), 1);
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
}
