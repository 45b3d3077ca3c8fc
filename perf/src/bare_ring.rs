//! The bare ring: the simplest fast shared-memory SPSC ring of 64-byte messages, to tell what
//! shmq's queue costs over the algorithm alone.
//!
//! Lamport's ring with cached indices (the design of `rtrb`): `head` (next write) and `tail`
//! (next read) on their own 128-byte lines; each side keeps the other's index in a local copy
//! and reloads it only when the copy says full (producer) or empty (consumer). No validation,
//! no peers, no wake-ups: what shmq adds on top is what the ratio measures.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};
use std::time::Instant;

use crate::payload;
use crate::shm::{Padded, ZeroValid};
use crate::stats::TputRep;
use crate::watch::Patience;
use crate::Res;

/// Slots (a power of two; shmq's queues get the same capacity).
pub const SLOTS: usize = 1024;
/// Message size.
pub const MSG: usize = 64;

/// The ring in shared memory.
#[repr(C)]
pub struct Ring {
    head: Padded<AtomicU64>,
    tail: Padded<AtomicU64>,
    slots: [UnsafeCell<[u8; MSG]>; SLOTS],
}

// SAFETY: atomics and bytes, valid when zeroed; a slot is written only by the producer before
// it publishes `head` past it, and read only by the consumer after it sees that `head`.
unsafe impl ZeroValid for Ring {}

/// The producer side: the next write index and its copy of `tail`.
pub struct Producer<'a> {
    ring: &'a Ring,
    head: u64,
    tail: u64,
}

impl<'a> Producer<'a> {
    /// The producer of a fresh (zeroed) ring.
    pub fn new(ring: &'a Ring) -> Self {
        Producer { ring, head: 0, tail: 0 }
    }

    /// Writes `msg` into the next slot; false if the ring is full.
    #[inline]
    pub fn try_push(&mut self, msg: &[u8; MSG]) -> bool {
        if self.head - self.tail == SLOTS as u64 {
            self.tail = self.ring.tail.0.load(Acquire);
            if self.head - self.tail == SLOTS as u64 {
                return false;
            }
        }
        let slot = &self.ring.slots[self.head as usize & (SLOTS - 1)];
        // SAFETY: the slot is below tail + SLOTS, so the consumer has released it (Acquire on
        // `tail`) and will not read it until we publish `head` past it.
        unsafe { *slot.get() = *msg };
        self.head += 1;
        self.ring.head.0.store(self.head, Release);
        true
    }
}

/// The consumer side: the next read index and its copy of `head`.
pub struct Consumer<'a> {
    ring: &'a Ring,
    tail: u64,
    head: u64,
}

impl<'a> Consumer<'a> {
    /// The consumer of a fresh (zeroed) ring.
    pub fn new(ring: &'a Ring) -> Self {
        Consumer { ring, tail: 0, head: 0 }
    }

    /// Copies the next message into `out`; false if the ring is empty.
    #[inline]
    pub fn try_pop(&mut self, out: &mut [u8; MSG]) -> bool {
        if self.tail == self.head {
            self.head = self.ring.head.0.load(Acquire);
            if self.tail == self.head {
                return false;
            }
        }
        let slot = &self.ring.slots[self.tail as usize & (SLOTS - 1)];
        // SAFETY: the slot is below `head` (Acquire), so the producer finished writing it and
        // will not write it again until we publish `tail` past it.
        *out = unsafe { *slot.get() };
        self.tail += 1;
        self.ring.tail.0.store(self.tail, Release);
        true
    }
}

/// Sends `count` stamped messages (the peer's side).
pub fn produce(ring: &Ring, count: u64, p: &Patience) -> Res<()> {
    let mut tx = Producer::new(ring);
    let mut msg: [u8; MSG] = payload::message(MSG).try_into().expect("MSG bytes");
    for seq in 0..count {
        payload::stamp(&mut msg, seq);
        let mut spins = 0;
        while !tx.try_push(&msg) {
            p.spin(&mut spins)?;
        }
    }
    Ok(())
}

/// Receives and checks `count` messages; the rate is timed from the first to the last.
pub fn consume(ring: &Ring, count: u64, p: &Patience) -> Res<TputRep> {
    let mut rx = Consumer::new(ring);
    let mut buf = [0u8; MSG];
    let mut t0 = Instant::now();
    for seq in 0..count {
        let mut spins = 0;
        while !rx.try_pop(&mut buf) {
            p.spin(&mut spins)?;
        }
        if seq == 0 {
            t0 = Instant::now();
        }
        // The whole message is read: without this the compiler could copy only the 16 bytes
        // the check looks at (shmq's receive copies all of them inside the library).
        std::hint::black_box(&mut buf);
        if !payload::is(&buf, MSG, seq) {
            return Err(payload::wrong("bare ring", &buf, MSG, seq));
        }
    }
    Ok(TputRep::new(count, t0.elapsed()))
}
