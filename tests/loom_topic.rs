//! loom model checks of the broadcast (topic) ring at capacity 2.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_topic`.
//! The topic's subscriber table needs the OS, so these models drive the ring directly and keep
//! each reliable subscriber's cursor in a loom atomic, as the table does. A message's content is
//! carried in the slot's `kind` and `len` atomics (seq and seq % 3 + 1) so that a torn read is
//! visible to loom.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmq::ring::broadcast::{self, Read};
use shmq::ring::{HeapRing, Poll, RingMem};

const CAP: u64 = 2;

fn ring() -> Arc<HeapRing> {
    let r = HeapRing::new(CAP, 4);
    broadcast::init(&r);
    Arc::new(r)
}

fn len_of(seq: u64) -> usize {
    (seq % 3 + 1) as usize
}

/// Publishes one message (kind = publisher's tag + seq index), gated by `cursors`.
fn publish(r: &HeapRing, me: u16, cursors: &[&AtomicU64]) -> u64 {
    loop {
        let tail = r.control().tail.0.load(Ordering::Relaxed);
        // The gate: min of the reliable cursors (Acquire pairs with their Release stores).
        let gate = cursors.iter().map(|c| c.load(Ordering::Acquire)).min().unwrap_or(tail).min(tail);
        match broadcast::claim(r, me, gate).unwrap() {
            Poll::Ready(seq) => {
                broadcast::commit(r, seq, me, len_of(seq), seq as u32).unwrap();
                return seq;
            }
            _ => thread::yield_now(),
        }
    }
}

/// A reliable subscriber reads `n` messages in order.
fn reliable(r: &HeapRing, cursor: &AtomicU64, n: u64) -> Vec<u64> {
    let mut got = Vec::new();
    let mut next = 0;
    while (got.len() as u64) < n {
        match broadcast::read(r, next, false).unwrap() {
            Read::Ready { len, kind, .. } => {
                assert_eq!(kind as u64, next, "reliable subscriber read another message");
                assert_eq!(len, len_of(next), "torn message");
                got.push(next);
                next += 1;
                cursor.store(next, Ordering::Release);
            }
            Read::NotReady | Read::Held { .. } => thread::yield_now(),
            other => panic!("reliable subscriber saw {other:?}"),
        }
    }
    got
}

/// A lossy reader's state: next sequence, messages received, messages reported missed.
#[derive(Default)]
struct Lossy {
    next: u64,
    received: u64,
    lagged: u64,
}

impl Lossy {
    /// One read attempt at `next`.
    fn step(&mut self, r: &HeapRing) {
        match broadcast::read(r, self.next, false).unwrap() {
            Read::Ready { len, kind, word } => {
                if broadcast::still_intact(r, self.next, word) {
                    assert_eq!((kind as u64, len), (self.next, len_of(self.next)), "torn message");
                    self.received += 1;
                    self.next += 1;
                }
            }
            Read::Lapped { seq } => {
                // Resync to the oldest message that can still be in the ring.
                let tail = r.control().tail.0.load(Ordering::Acquire).max(seq + 1);
                let oldest = tail.saturating_sub(CAP).max(self.next + 1);
                self.lagged += oldest - self.next;
                self.next = oldest;
            }
            Read::NotReady | Read::Held { .. } => thread::yield_now(),
            Read::Skip => unreachable!("nothing is aborted here"),
        }
    }
}

#[test]
fn reliable_sees_every_message_and_lossy_received_plus_lagged_equals_published() {
    loom::model(|| {
        let r = ring();
        let cursor = Arc::new(AtomicU64::new(0));
        let published = 3;
        let p = {
            let (r, cursor) = (r.clone(), cursor.clone());
            thread::spawn(move || {
                for _ in 0..published {
                    publish(&r, 1, &[&cursor]);
                }
            })
        };
        // With three threads, an open-ended retry loop lets loom spin one thread to its branch
        // limit: the lossy reader makes a bounded number of attempts concurrently, and the
        // main thread finishes its reading after the publisher is done.
        let lossy = {
            let r = r.clone();
            thread::spawn(move || {
                let mut l = Lossy::default();
                for _ in 0..2 {
                    if l.next >= published {
                        break;
                    }
                    l.step(&r);
                }
                l
            })
        };
        let got = reliable(&r, &cursor, published);
        assert_eq!(got, vec![0, 1, 2]);
        p.join().unwrap();
        let mut l = lossy.join().unwrap();
        while l.next < published {
            l.step(&r);
        }
        assert_eq!(l.received + l.lagged, published);
    });
}

#[test]
fn two_publishers_one_reliable_subscriber_every_message_once() {
    loom::model(|| {
        let r = ring();
        let cursor = Arc::new(AtomicU64::new(0));
        let pubs: Vec<_> = (1..=2u16)
            .map(|me| {
                let (r, cursor) = (r.clone(), cursor.clone());
                thread::spawn(move || publish(&r, me, &[&cursor]))
            })
            .collect();
        let got = reliable(&r, &cursor, 2);
        let mut seqs: Vec<u64> = pubs.into_iter().map(|p| p.join().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![0, 1]);
        assert_eq!(got, vec![0, 1]);
    });
}
