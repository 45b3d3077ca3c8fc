//! Slot parsing on heap rings (`HeapRing`) with arbitrary indices and slot state, length and
//! kind words, driven through `mpmc`, `spsc` and `broadcast`: every `Ok` is checked in bounds.

use proptest::prelude::*;
use shmq::layout::{self, slot};
use shmq::ring::{broadcast, mpmc, spsc, HeapRing, Poll, RingMem};

use super::check;
use crate::touch;

/// A position relative to the ring's base position, or any value.
#[derive(Clone, Copy, Debug)]
enum Word {
    Near(i16),
    Raw(u64),
}

impl Word {
    fn at(self, base: u64) -> u64 {
        match self {
            Word::Near(d) => base.wrapping_add(d as i64 as u64),
            Word::Raw(w) => w,
        }
    }
}

fn word() -> impl Strategy<Value = Word> {
    prop_oneof![6 => (-40i16..40).prop_map(Word::Near), 1 => any::<u64>().prop_map(Word::Raw)]
}

/// What a slot is set to.
#[derive(Clone, Copy, Debug)]
struct SlotVals {
    /// `Near(d)`: a state word for position base + d (tag, claimer below); `Raw`: any word.
    state: Word,
    tag: u64,
    claimer: u16,
    /// Length: small values around max_msg, or any.
    len: u32,
    kind: u32,
}

impl SlotVals {
    fn apply(&self, m: &HeapRing, i: u64, base: u64) {
        let s = m.slot(i);
        let w = match self.state {
            Word::Near(_) => slot::pack(self.state.at(base), self.tag, self.claimer),
            Word::Raw(w) => w,
        };
        s.state.store(w, std::sync::atomic::Ordering::Relaxed);
        s.len.store(self.len, std::sync::atomic::Ordering::Relaxed);
        s.kind.store(self.kind, std::sync::atomic::Ordering::Relaxed);
    }
}

fn slot_vals() -> impl Strategy<Value = SlotVals> {
    (word(), 0..16u64, 0..6u16, prop_oneof![4 => 0..80u32, 1 => any::<u32>()], any::<u32>())
        .prop_map(|(state, tag, claimer, len, kind)| SlotVals { state, tag, claimer, len, kind })
}

/// A hostile change made between ring operations.
#[derive(Clone, Copy, Debug)]
enum Poke {
    Slot(u64, SlotVals),
    Tail(Word),
    Head(Word),
}

fn poke() -> impl Strategy<Value = Poke> {
    prop_oneof![
        3 => (0..16u64, slot_vals()).prop_map(|(i, v)| Poke::Slot(i, v)),
        1 => word().prop_map(Poke::Tail),
        1 => word().prop_map(Poke::Head),
    ]
}

impl Poke {
    fn apply(&self, m: &HeapRing, base: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match *self {
            Poke::Slot(i, v) => v.apply(m, i, base),
            Poke::Tail(w) => m.control().tail.0.store(w.at(base), Relaxed),
            Poke::Head(w) => m.control().head.0.store(w.at(base), Relaxed),
        }
    }
}

/// The starting state of a heap ring.
#[derive(Clone, Debug)]
struct RingSetup {
    capacity: u64,
    max_msg: usize,
    /// Every position is relative to this (so that wrap-around at 2^48 and 2^64 is covered).
    base: u64,
    /// `None`: a valid, empty ring at `base`.
    hostile: Option<(Word, Word, Vec<SlotVals>)>,
}

fn ring_setup() -> impl Strategy<Value = RingSetup> {
    let base = prop_oneof![
        2 => Just(0u64),
        2 => 0..1000u64,
        1 => (1u64 << 48) - 40..(1u64 << 48) + 40,
        1 => u64::MAX - 40..=u64::MAX,
        1 => any::<u64>(),
    ];
    let hostile = prop::option::weighted(0.7, (word(), word(), prop::collection::vec(slot_vals(), 16)));
    ((1..=4u32).prop_map(|s| 1u64 << s), prop::sample::select(vec![0usize, 8, 64]), base, hostile)
        .prop_map(|(capacity, max_msg, base, hostile)| RingSetup { capacity, max_msg, base, hostile })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RingKind {
    Mpmc,
    Spsc,
    Broadcast,
}

impl RingSetup {
    fn build(&self, kind: RingKind) -> HeapRing {
        use std::sync::atomic::Ordering::Relaxed;
        let m = HeapRing::new(self.capacity, self.max_msg);
        let (cap, base) = (self.capacity, self.base);
        // A valid empty ring whose next position is `base`.
        for p in (0..cap).map(|i| base.wrapping_add(i)) {
            let seq = if kind == RingKind::Broadcast { p.wrapping_sub(cap) } else { p };
            m.slot(p).state.store(slot::pack(seq, slot::IDLE, 0), Relaxed);
        }
        m.control().tail.0.store(base, Relaxed);
        m.control().head.0.store(base, Relaxed);
        if let Some((tail, head, slots)) = &self.hostile {
            m.control().tail.0.store(tail.at(base), Relaxed);
            m.control().head.0.store(head.at(base), Relaxed);
            for (i, v) in slots.iter().take(cap as usize).enumerate() {
                v.apply(&m, i as u64, base);
            }
        }
        m
    }
}

fn state_of(m: &HeapRing, pos: u64) -> u64 {
    m.slot(pos).state.load(std::sync::atomic::Ordering::Relaxed)
}

/// MPMC operations.
#[derive(Clone, Copy, Debug)]
enum MpmcOp {
    Write {
        me: u16,
        len: usize,
        commit: bool,
    },
    Read {
        me: u16,
        max_len: usize,
    },
    /// Recover the last slot reported held.
    Recover,
    Poke(Poke),
}

fn mpmc_op() -> impl Strategy<Value = MpmcOp> {
    let me = 1..=layout::MAX_PARTICIPANTS as u16;
    let max_len = prop_oneof![3 => 0..80usize, 1 => Just(usize::MAX)];
    prop_oneof![
        4 => (me.clone(), 0..80usize, any::<bool>()).prop_map(|(me, len, commit)| MpmcOp::Write { me, len, commit }),
        4 => (me, max_len).prop_map(|(me, max_len)| MpmcOp::Read { me, max_len }),
        1 => Just(MpmcOp::Recover),
        2 => poke().prop_map(MpmcOp::Poke),
    ]
}

#[test]
fn mpmc_claims_on_hostile_slots_return_in_bounds_or_errors() {
    let strategy = (ring_setup(), prop::collection::vec(mpmc_op(), 1..24));
    check("mpmc slot parsing", 1000, None, strategy, |(setup, ops)| {
        let m = setup.build(RingKind::Mpmc);
        let max = setup.max_msg;
        let mut held = None;
        for op in ops {
            match op {
                MpmcOp::Write { me, len, commit } => match mpmc::claim_write(&m, me) {
                    Ok(Poll::Ready(pos)) => {
                        let w = state_of(&m, pos);
                        assert_eq!(w, slot::pack(pos, slot::WRITING, me), "claim_write gave {pos}, not held by {me}");
                        if commit {
                            let _ = mpmc::commit(&m, pos, me, len.min(max), 3);
                        } else {
                            let _ = mpmc::abort(&m, pos, me);
                        }
                    }
                    Ok(Poll::Held { pos, word }) => held = Some((pos, word)),
                    Ok(Poll::NotReady) | Err(_) => {}
                },
                MpmcOp::Read { me, max_len } => match mpmc::claim_read(&m, me, max_len, &mut 0) {
                    Ok(Poll::Ready(msg)) => {
                        assert!(msg.len <= max && msg.len <= max_len, "claim_read gave {msg:?} (max {max}, {max_len})");
                        let w = state_of(&m, msg.pos);
                        let want = slot::pack(msg.pos.wrapping_add(1), slot::READING, me);
                        assert_eq!(w, want, "claim_read gave {msg:?}, not held by {me}");
                        mpmc::release(&m, msg.pos, me).expect("our own claim");
                    }
                    Ok(Poll::Held { pos, word }) => held = Some((pos, word)),
                    Ok(Poll::NotReady) | Err(_) => {}
                },
                MpmcOp::Recover => {
                    if let Some((pos, word)) = held.take() {
                        mpmc::recover(&m, pos, word, 1);
                    }
                }
                MpmcOp::Poke(p) => p.apply(&m, setup.base),
            }
        }
    });
}

/// SPSC operations.
#[derive(Clone, Copy, Debug)]
enum SpscOp {
    /// Write up to `n` messages of `len` bytes (as many as are free) and publish them.
    Produce {
        n: u64,
        len: usize,
    },
    /// Read up to `n` messages and release them.
    Consume {
        n: u64,
    },
    /// Attach the producer or consumer side again (as a restarted process would).
    Reattach {
        producer: bool,
    },
    Poke(Poke),
}

fn spsc_op() -> impl Strategy<Value = SpscOp> {
    prop_oneof![
        4 => (0..20u64, 0..80usize).prop_map(|(n, len)| SpscOp::Produce { n, len }),
        4 => (0..20u64).prop_map(|n| SpscOp::Consume { n }),
        1 => any::<bool>().prop_map(|producer| SpscOp::Reattach { producer }),
        2 => poke().prop_map(SpscOp::Poke),
    ]
}

#[test]
fn spsc_indices_and_lengths_from_hostile_memory_stay_in_bounds_or_are_errors() {
    let strategy = (ring_setup(), prop::collection::vec(spsc_op(), 1..24));
    check("spsc slot parsing", 1000, None, strategy, |(setup, ops)| {
        let m = setup.build(RingKind::Spsc);
        let (cap, max) = (setup.capacity, setup.max_msg);
        let payload = vec![0x77u8; max];
        let mut producer = spsc::SpscProducer::attach(&m).ok();
        let mut consumer = spsc::SpscConsumer::attach(&m).ok();
        for op in ops {
            match op {
                SpscOp::Produce { n, len } => {
                    let Some(p) = producer.as_mut() else { continue };
                    if let Ok(free) = p.free(&m) {
                        assert!(free <= cap, "free() = {free} > capacity {cap}");
                        let n = n.min(free);
                        for i in 0..n {
                            // SAFETY: the ring's only producer, writing a slot it counted free.
                            unsafe { p.write(&m, i, i as u32, &payload[..len.min(max)]) }.unwrap();
                        }
                        p.publish(&m, n);
                    }
                }
                SpscOp::Consume { n } => {
                    let Some(c) = consumer.as_mut() else { continue };
                    if let Ok(ready) = c.available(&m) {
                        assert!(ready <= cap, "available() = {ready} > capacity {cap}");
                        let n = n.min(ready);
                        for i in 0..n {
                            if let Ok((len, _)) = c.peek(&m, i) {
                                assert!(len <= max, "peek gave length {len} > max_msg {max}");
                                // SAFETY: message i is ready (i < available) and len <= max_msg,
                                // the size of the slot's payload.
                                touch(unsafe { std::slice::from_raw_parts(m.payload(c.position(i)), len) });
                            }
                        }
                        c.release(&m, n);
                    }
                }
                SpscOp::Reattach { producer: true } => producer = spsc::SpscProducer::attach(&m).ok(),
                SpscOp::Reattach { producer: false } => consumer = spsc::SpscConsumer::attach(&m).ok(),
                SpscOp::Poke(p) => p.apply(&m, setup.base),
            }
        }
    });
}

/// Broadcast (topic) operations.
#[derive(Clone, Copy, Debug)]
enum TopicOp {
    Claim {
        me: u16,
        gate: Word,
        len: usize,
        commit: bool,
    },
    Read {
        cursor: Word,
    },
    /// Recover the last slot reported held.
    Recover,
    Poke(Poke),
}

fn topic_op() -> impl Strategy<Value = TopicOp> {
    prop_oneof![
        4 => (1..=layout::MAX_PARTICIPANTS as u16, word(), 0..80usize, any::<bool>())
            .prop_map(|(me, gate, len, commit)| TopicOp::Claim { me, gate, len, commit }),
        4 => word().prop_map(|cursor| TopicOp::Read { cursor }),
        1 => Just(TopicOp::Recover),
        2 => poke().prop_map(TopicOp::Poke),
    ]
}

#[test]
fn broadcast_reads_and_claims_on_hostile_slots_return_in_bounds_or_errors() {
    let strategy = (ring_setup(), prop::collection::vec(topic_op(), 1..24));
    check("broadcast slot parsing", 1000, None, strategy, |(setup, ops)| {
        let m = setup.build(RingKind::Broadcast);
        let (cap, max, base) = (setup.capacity, setup.max_msg, setup.base);
        let mut held = None;
        for op in ops {
            match op {
                TopicOp::Claim { me, gate, len, commit } => {
                    let gate = gate.at(base);
                    match broadcast::claim(&m, me, gate) {
                        Ok(Poll::Ready(seq)) => {
                            let ahead = seq.wrapping_sub(gate) as i64;
                            assert!(ahead < cap as i64, "claimed {seq}, a ring or more ahead of gate {gate}");
                            let w = state_of(&m, seq);
                            assert_eq!(w, slot::pack(seq, slot::WRITING, me), "claim gave {seq}, not held by {me}");
                            if commit {
                                broadcast::commit(&m, seq, me, len.min(max), 1).expect("our own claim");
                            } else {
                                broadcast::abort(&m, seq, me).expect("our own claim");
                            }
                        }
                        Ok(Poll::Held { pos, word }) => held = Some((pos, word)),
                        Ok(Poll::NotReady) | Err(_) => {}
                    }
                }
                TopicOp::Read { cursor } => {
                    let cursor = cursor.at(base);
                    match broadcast::read(&m, cursor, false) {
                        Ok(broadcast::Read::Ready { len, word, .. }) => {
                            assert!(len <= max, "read gave length {len} > max_msg {max} at {cursor}");
                            // SAFETY: len <= max_msg, the size of the slot's payload.
                            touch(unsafe { std::slice::from_raw_parts(m.payload(cursor), len) });
                            assert!(broadcast::still_intact(&m, cursor, word), "nothing rewrote the slot");
                        }
                        Ok(broadcast::Read::Lapped { seq }) => {
                            let ahead = seq.wrapping_sub(cursor);
                            assert!(ahead > 0 && ahead < 1 << 47, "lapped to {seq}, not ahead of cursor {cursor}");
                        }
                        Ok(broadcast::Read::Held { word }) => held = Some((cursor, word)),
                        Ok(broadcast::Read::Skip | broadcast::Read::NotReady) | Err(_) => {}
                    }
                }
                TopicOp::Recover => {
                    if let Some((pos, word)) = held.take() {
                        broadcast::recover(&m, pos, word);
                    }
                }
                TopicOp::Poke(p) => p.apply(&m, base),
            }
        }
    });
}
