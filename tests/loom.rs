//! Loom model checks of the ring algorithms (heap rings of capacity 2).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom`
//!
//! Under `cfg(loom)` the rings take their atomics from loom (see `src/sync.rs`), so loom explores
//! the interleavings of every load, store and CAS. Payload bytes live in plain `UnsafeCell`s that
//! loom does not track; the checks below verify them by value instead (a message read before its
//! writer finished, or after it was overwritten, shows up as wrong bytes).
//!
//! The MPMC models make a bounded number of attempts per thread and let the main thread finish
//! the work after joining: with three or more threads, loom can starve a thread that spins on
//! `yield_now` until its branch limit ("Model exceeded maximum number of branches"), so an
//! unbounded retry loop is not checkable. Every interleaving of the bounded attempts is.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmq::ring::spsc::{SpscConsumer, SpscProducer};
use shmq::ring::{mpmc, HeapRing, Poll, RingMem};

const CAP: u64 = 2;
const MAX: usize = 2;

/// Runs `f` under loom with at most two preemptions (unless `LOOM_MAX_PREEMPTIONS` says otherwise).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// The payload of message `n` of producer `p`: both bytes identify it.
fn payload(p: u8, n: u8) -> [u8; MAX] {
    [p, n]
}

/// Copies `bytes` into the slot holding `pos`.
///
/// # Safety
/// The caller owns slot `pos` for writing (SPSC: a free slot; MPMC: `claim_write` gave it).
unsafe fn write(m: &HeapRing, pos: u64, bytes: &[u8]) {
    assert!(bytes.len() <= m.max_msg());
    // SAFETY: payload(pos) has max_msg >= bytes.len() bytes; the slot is ours (caller).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.payload(pos), bytes.len()) };
}

/// Copies `len` bytes out of the slot holding `pos`.
///
/// # Safety
/// The caller owns the message at `pos` for reading (SPSC: ready; MPMC: `claim_read` gave it).
unsafe fn read(m: &HeapRing, pos: u64, len: usize) -> Vec<u8> {
    assert!(len <= m.max_msg());
    // SAFETY: payload(pos) has max_msg >= len bytes; the message is ours until released.
    unsafe { std::slice::from_raw_parts(m.payload(pos), len).to_vec() }
}

#[test]
fn spsc_consumer_sees_three_messages_in_order_with_their_bytes() {
    model(|| {
        let m = Arc::new(HeapRing::new(CAP, MAX));
        let producer = {
            let m = m.clone();
            thread::spawn(move || {
                let mut p = SpscProducer::attach(&*m).unwrap();
                for n in 0..3u8 {
                    while p.free(&*m).unwrap() == 0 {
                        thread::yield_now();
                    }
                    // SAFETY: the ring's only producer, writing a slot it counted free.
                    unsafe { p.write(&*m, 0, n as u32, &payload(1, n)) }.unwrap();
                    p.publish(&*m, 1);
                }
            })
        };
        let mut c = SpscConsumer::attach(&*m).unwrap();
        for n in 0..3u8 {
            while c.available(&*m).unwrap() == 0 {
                thread::yield_now();
            }
            let (len, kind) = c.peek(&*m, 0).unwrap();
            // SAFETY: the message is ready (available > 0) and not yet released.
            let bytes = unsafe { read(&m, c.position(0), len) };
            assert_eq!((kind, &bytes[..]), (n as u32, &payload(1, n)[..]), "message {n} out of order or torn");
            c.release(&*m, 1);
        }
        producer.join().unwrap();
        assert_eq!(c.available(&*m).unwrap(), 0, "a fourth message appeared");
    });
}

#[test]
fn spsc_batch_consumer_trusts_tail_and_finds_every_slot_committed() {
    // The producer commits two messages and publishes them with one store of `tail`; the
    // consumer counts ready messages from `tail` (a batch) and reads each slot: the slots'
    // states and bytes are visible whenever `tail` is (its Release follows the states').
    model(|| {
        let m = Arc::new(HeapRing::new(CAP, MAX));
        let producer = {
            let m = m.clone();
            thread::spawn(move || {
                let mut p = SpscProducer::attach(&*m).unwrap();
                assert!(p.free_for(&*m, 2).unwrap() >= 2);
                for n in 0..2u8 {
                    // SAFETY: the ring's only producer, writing slots it counted free.
                    unsafe { p.write(&*m, n as u64, n as u32, &payload(1, n)) }.unwrap();
                }
                p.publish(&*m, 2);
            })
        };
        let mut c = SpscConsumer::attach(&*m).unwrap();
        let mut got = 0u8;
        while got < 2 {
            let ready = c.available_for(&*m, 2).unwrap();
            if ready == 0 {
                thread::yield_now();
                continue;
            }
            for i in 0..ready {
                let (len, kind) = c.peek(&*m, i).expect("a slot below tail is committed");
                // SAFETY: message i is ready (below tail) and not yet released.
                let bytes = unsafe { read(&m, c.position(i), len) };
                let n = got + i as u8;
                assert_eq!((kind, &bytes[..]), (n as u32, &payload(1, n)[..]), "message {n} torn");
            }
            c.release(&*m, ready);
            got += ready as u8;
        }
        producer.join().unwrap();
    });
}

/// Tries to send messages `0..count` of producer `id` (participant id `id`), in order, making at
/// most `attempts` claims per message (yielding while full); returns how many it sent. Bounded so
/// that loom never models an endless spin; the test sends the rest once the threads are joined.
fn try_produce(m: &HeapRing, id: u8, count: u8, attempts: u32) -> u8 {
    'msgs: for n in 0..count {
        for _ in 0..attempts {
            match mpmc::claim_write(m, id as u16).unwrap() {
                Poll::Ready(pos) => {
                    // SAFETY: claim_write gave us slot `pos`.
                    unsafe { write(m, pos, &payload(id, n)) };
                    mpmc::commit(m, pos, id as u16, MAX, id as u32).unwrap();
                    continue 'msgs;
                }
                Poll::NotReady | Poll::Held { .. } => thread::yield_now(),
            }
        }
        return n;
    }
    count
}

/// Claims and checks the next message as participant `me`; `None` if there is none ready now.
fn try_consume(m: &HeapRing, me: u16) -> Option<(u8, u8)> {
    match mpmc::claim_read(m, me, MAX, &mut 0).unwrap() {
        Poll::Ready(msg) => {
            // SAFETY: claim_read gave us the message at `msg.pos` until we release it.
            let bytes = unsafe { read(m, msg.pos, msg.len) };
            mpmc::release(m, msg.pos, me).unwrap();
            assert_eq!(msg.len, MAX);
            assert_eq!(bytes[0] as u32, msg.kind, "payload and kind of one message disagree (torn message)");
            Some((bytes[0], bytes[1]))
        }
        Poll::NotReady | Poll::Held { .. } => None,
    }
}

/// Makes `attempts` claims as participant `me`, yielding after each miss; returns what it got.
fn consume_some(m: &HeapRing, me: u16, attempts: u32) -> Vec<(u8, u8)> {
    let mut got = Vec::new();
    for _ in 0..attempts {
        match try_consume(m, me) {
            Some(msg) => got.push(msg),
            None => thread::yield_now(),
        }
    }
    got
}

/// After every thread is joined: sends the messages `sent[p]..counts[p]` of each producer (in
/// order), consuming whenever the ring is full, then drains the ring. Single-threaded now, so
/// nothing may be held.
fn finish(m: &HeapRing, counts: &[u8], sent: &[u8], got: &mut Vec<(u8, u8)>) {
    for (i, (&count, &from)) in counts.iter().zip(sent).enumerate() {
        let id = i as u8 + 1;
        for n in from..count {
            loop {
                match mpmc::claim_write(m, id as u16).unwrap() {
                    Poll::Ready(pos) => {
                        // SAFETY: claim_write gave us slot `pos`.
                        unsafe { write(m, pos, &payload(id, n)) };
                        mpmc::commit(m, pos, id as u16, MAX, id as u32).unwrap();
                        break;
                    }
                    Poll::NotReady => got.push(try_consume(m, 99).expect("full ring but nothing to consume")),
                    held => panic!("{held:?} after every thread was joined"),
                }
            }
        }
    }
    while let Some(msg) = try_consume(m, 99) {
        got.push(msg);
    }
    assert_eq!(mpmc::claim_read(m, 99, MAX, &mut 0).unwrap(), Poll::NotReady, "ring not empty after the drain");
}

/// Checks that `got` holds every message of `counts[p]` messages per producer exactly once, each
/// producer's in order.
fn check_exactly_once_in_order(got: &[(u8, u8)], counts: &[u8]) {
    for (i, &count) in counts.iter().enumerate() {
        let p = i as u8 + 1;
        let mine: Vec<u8> = got.iter().filter(|(q, _)| *q == p).map(|&(_, n)| n).collect();
        assert_eq!(mine, (0..count).collect::<Vec<_>>(), "producer {p}'s messages in {got:?}");
    }
    assert_eq!(got.len(), counts.iter().map(|&c| c as usize).sum::<usize>(), "unknown messages in {got:?}");
}

/// One thread per producer sends `counts[p]` messages while `consumers` consumers (the main
/// thread and `consumers - 1` more threads) each make `attempts` claims; then the main thread
/// finishes. Checks exactly-once delivery, each producer's order as seen by every consumer, and
/// each producer's order overall.
fn mpmc_scenario(counts: &'static [u8], consumers: u16, attempts: u32) {
    model(move || {
        let m = Arc::new(HeapRing::new(CAP, MAX));
        mpmc::init(&*m);
        let producers: Vec<_> = counts
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                let m = m.clone();
                thread::spawn(move || try_produce(&m, i as u8 + 1, count, attempts))
            })
            .collect();
        let readers: Vec<_> = (1..consumers)
            .map(|c| {
                let m = m.clone();
                thread::spawn(move || consume_some(&m, 10 + c, attempts))
            })
            .collect();
        let mut lists = vec![consume_some(&m, 10, attempts)];
        let sent: Vec<u8> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        lists.extend(readers.into_iter().map(|r| r.join().unwrap()));
        for got in &lists {
            // Each consumer sees each producer's messages in order (a subsequence of it).
            for p in 1..=counts.len() as u8 {
                let mine: Vec<u8> = got.iter().filter(|(q, _)| *q == p).map(|&(_, n)| n).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "a consumer saw producer {p} out of order: {got:?}");
            }
        }
        let mut all = lists.concat();
        if consumers > 1 {
            // Consumers overlap in time: no global order among them, only exactly once.
            all.sort();
        }
        // The main thread drains after every other thread finished.
        finish(&m, counts, &sent, &mut all);
        check_exactly_once_in_order(&all, counts);
    });
}

#[test]
fn mpmc_two_producers_one_consumer_deliver_each_message_once_in_producer_order() {
    // Three messages through two slots: the ring fills and wraps while both producers race.
    mpmc_scenario(&[2, 1], 1, 2);
}

#[test]
fn mpmc_one_producer_two_consumers_deliver_each_message_once_in_order() {
    mpmc_scenario(&[3], 2, 2);
}

#[test]
fn mpmc_two_producers_two_messages_each_one_consumer_deliver_each_once_in_producer_order() {
    mpmc_scenario(&[2, 2], 1, 2);
}

/// Step `step` of the aborting producer: message 0, then a claim given back with `abort` (a
/// loan dropped without commit), then message 1.
fn abort_step(m: &HeapRing, pos: u64, step: u8) {
    if step == 1 {
        mpmc::abort(m, pos, 1).unwrap();
    } else {
        // SAFETY: claim_write gave us slot `pos`.
        unsafe { write(m, pos, &payload(1, step / 2)) };
        mpmc::commit(m, pos, 1, MAX, 1).unwrap();
    }
}

#[test]
fn mpmc_consumer_skips_a_slot_aborted_concurrently_and_delivers_the_rest_in_order() {
    model(|| {
        let m = Arc::new(HeapRing::new(CAP, MAX));
        mpmc::init(&*m);
        let producer = {
            let m = m.clone();
            thread::spawn(move || {
                'steps: for step in 0..3u8 {
                    for _ in 0..2 {
                        match mpmc::claim_write(&*m, 1).unwrap() {
                            Poll::Ready(pos) => {
                                abort_step(&m, pos, step);
                                continue 'steps;
                            }
                            Poll::NotReady | Poll::Held { .. } => thread::yield_now(),
                        }
                    }
                    return step;
                }
                3
            })
        };
        let mut got = consume_some(&m, 10, 3);
        let done = producer.join().unwrap();
        for step in done..3 {
            loop {
                match mpmc::claim_write(&*m, 1).unwrap() {
                    Poll::Ready(pos) => {
                        abort_step(&m, pos, step);
                        break;
                    }
                    Poll::NotReady => got.push(try_consume(&m, 10).expect("full ring but nothing to consume")),
                    held => panic!("{held:?} after the producer was joined"),
                }
            }
        }
        while let Some(msg) = try_consume(&m, 10) {
            got.push(msg);
        }
        assert_eq!(got, [(1, 0), (1, 1)], "the aborted slot was delivered, or a message lost or reordered");
        assert_eq!(m.control().stats.0.aborted.load(loom::sync::atomic::Ordering::Relaxed), 1);
    });
}
