//! Loom model checks of rejection (redelivery in place) and of moves to the dead-letter queue.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_deadletter`
//!
//! As in `tests/loom.rs`, threads make a bounded number of attempts and the main thread finishes
//! the work after joining; payload bytes are checked by value.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmq::layout::{DeadLetterInfo, LETTER_HEADER};
use shmq::ring::deadletter::{self as dl, LetterMeta, Lock, Moved};
use shmq::ring::{mpmc, HeapRing, Poll, RingMem};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Sends one-byte message `b` (kind `b`) as participant 1; the ring must have room.
fn send(m: &HeapRing, b: u8) {
    let Poll::Ready(pos) = mpmc::claim_write(m, 1).unwrap() else { panic!("full") };
    // SAFETY: claim_write gave us slot `pos`; 1 <= max_msg.
    unsafe { *m.payload(pos) = b };
    mpmc::commit(m, pos, 1, 1, b as u32).unwrap();
}

/// Claims the next message as `me`: (position, byte), the byte checked against the kind.
fn take(m: &HeapRing, me: u16) -> Option<(u64, u8)> {
    match mpmc::claim_read(m, me, 1, &mut 0).unwrap() {
        Poll::Ready(msg) => {
            // SAFETY: claim_read gave us the message at msg.pos (1 byte, validated).
            let b = unsafe { *m.payload(msg.pos) };
            assert_eq!(b as u32, msg.kind, "a torn message");
            Some((msg.pos, b))
        }
        _ => None,
    }
}

/// One consumer rejects the first message it gets, once, while another consumer and a producer
/// (which finds the ring full: the rejected message still holds its slot) run: every message is
/// finally consumed exactly once, and nothing overwrites the rejected message.
#[test]
fn a_rejected_message_is_delivered_again_exactly_once() {
    model(|| {
        let m = Arc::new(HeapRing::with_deliveries(2, 1));
        mpmc::init(&*m);
        send(&m, 10);
        send(&m, 11);
        let rejecter = {
            let m = m.clone();
            thread::spawn(move || {
                // (The other consumer may have taken both first.)
                if let Some((pos, _)) = take(&m, 2) {
                    mpmc::reject(&*m, pos, 2).unwrap();
                }
            })
        };
        let other = {
            let m = m.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..2 {
                    match take(&m, 3) {
                        Some((pos, b)) => {
                            mpmc::release(&*m, pos, 3).unwrap();
                            got.push(b);
                        }
                        None => thread::yield_now(),
                    }
                }
                got
            })
        };
        // A producer racing for the slot the rejected message holds: never overwrites it.
        let sent = match mpmc::claim_write(&*m, 1).unwrap() {
            Poll::Ready(pos) => {
                // SAFETY: claim_write gave us slot `pos`.
                unsafe { *m.payload(pos) = 12 };
                mpmc::commit(&*m, pos, 1, 1, 12).unwrap();
                true
            }
            _ => false,
        };
        rejecter.join().unwrap();
        let mut got = other.join().unwrap();
        while let Some((pos, b)) = take(&m, 4) {
            mpmc::release(&*m, pos, 4).unwrap();
            got.push(b);
        }
        got.sort();
        let want: &[u8] = if sent { &[10, 11, 12] } else { &[10, 11] };
        assert_eq!(got, want, "each message exactly once");
    });
}

/// Two consumers move their messages to the dead-letter queue at once (the lock serializes
/// them) while a consumer of the dead-letter queue takes letters: each letter arrives whole,
/// once, and the origin's slots are freed.
#[test]
fn two_moves_and_a_dead_letter_consumer() {
    model(|| {
        let origin = Arc::new(HeapRing::with_deliveries(2, 1));
        let dlq = Arc::new(HeapRing::new(2, LETTER_HEADER + 1));
        let info = Arc::new(DeadLetterInfo::new());
        mpmc::init(&*origin);
        mpmc::init(&*dlq);
        send(&origin, 20);
        send(&origin, 21);
        let (p0, _) = take(&origin, 2).unwrap();
        let (p1, _) = take(&origin, 3).unwrap();
        let movers: Vec<_> = [(2u16, p0), (3u16, p1)]
            .into_iter()
            .map(|(me, pos)| {
                let (origin, dlq, info) = (origin.clone(), dlq.clone(), info.clone());
                thread::spawn(move || {
                    for _ in 0..3 {
                        if let Lock::Taken(w) = dl::try_lock(&info, me, |_| false) {
                            let meta = LetterMeta { deliveries: 1, first_failed_ns: 0, reason: b"r", now_ns: 0 };
                            let r = dl::move_locked(&*origin, &info, &*dlq, me, pos, &meta).unwrap();
                            dl::unlock(&info, w);
                            assert!(matches!(r, Moved::To(_)));
                            return true;
                        }
                        thread::yield_now();
                    }
                    false
                })
            })
            .collect();
        let mut letters = Vec::new();
        if let Poll::Ready(msg) = mpmc::claim_read(&*dlq, 9, usize::MAX, &mut 0).unwrap() {
            // SAFETY: claim_read gave us the letter (len validated).
            let bytes = unsafe { std::slice::from_raw_parts(dlq.payload(msg.pos), msg.len) }.to_vec();
            mpmc::release(&*dlq, msg.pos, 9).unwrap();
            letters.push(bytes);
        }
        let moved: Vec<bool> = movers.into_iter().map(|t| t.join().unwrap()).collect();
        // Whoever gave up for want of the lock moves now.
        for (i, (&me, &pos)) in [2u16, 3].iter().zip(&[p0, p1]).enumerate() {
            if !moved[i] {
                let Lock::Taken(w) = dl::try_lock(&info, me, |_| false) else { panic!("the lock stayed taken") };
                let meta = LetterMeta { deliveries: 1, first_failed_ns: 0, reason: b"r", now_ns: 0 };
                dl::move_locked(&*origin, &info, &*dlq, me, pos, &meta).unwrap();
                dl::unlock(&info, w);
            }
        }
        while let Poll::Ready(msg) = mpmc::claim_read(&*dlq, 9, usize::MAX, &mut 0).unwrap() {
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(dlq.payload(msg.pos), msg.len) }.to_vec();
            mpmc::release(&*dlq, msg.pos, 9).unwrap();
            letters.push(bytes);
        }
        let mut got: Vec<u8> = letters
            .iter()
            .map(|l| {
                assert_eq!(l.len(), LETTER_HEADER + 1);
                assert_eq!(&l[..8], b"SHMQDLT1", "a letter read before it was written");
                l[LETTER_HEADER]
            })
            .collect();
        got.sort();
        assert_eq!(got, [20, 21], "each letter once");
        // Both origin slots are free for the next lap: two more messages fit.
        send(&origin, 22);
        send(&origin, 23);
    });
}
