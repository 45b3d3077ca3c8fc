//! Loom model checks of consumer groups (`ring::group`): members claiming from one group cursor
//! while a publisher waits for the group's position, and a member that dies holding a message.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_group`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmq::ring::group::{self, Found, HeapGroup};
use shmq::ring::{broadcast, HeapRing, Poll, RingMem};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

const CAP: u64 = 2;

/// Publishes message `seq` (its one byte is the sequence) if the group's position lets it.
fn try_publish(t: &HeapRing, g: &HeapGroup) -> Option<u64> {
    let gate = g.group().position.load(loom::sync::atomic::Ordering::Acquire);
    match broadcast::claim(t, 9, gate).unwrap() {
        Poll::Ready(s) => {
            // SAFETY: claimed topic slot `s`; 1 <= max_msg.
            unsafe { *t.payload(s) = s as u8 };
            broadcast::commit(t, s, 9, 1, s as u32).unwrap();
            Some(s)
        }
        _ => None,
    }
}

/// Claims one message for `me` and checks its byte; `None` if none now.
fn take(t: &HeapRing, g: &HeapGroup, me: u16) -> Option<u64> {
    match group::claim(t, &g.group(), me, false, false).unwrap() {
        Found::Message(c) => {
            // SAFETY: the group gates publishers at its position <= c.seq until we ack.
            let b = unsafe { *t.payload(c.seq) };
            assert_eq!(b as u64, c.seq, "message {} overwritten while its member held it", c.seq);
            assert_eq!(c.kind as u64, c.seq);
            Some(c.seq)
        }
        _ => None,
    }
}

/// Two members take from one group while a publisher waits for the group to free a slot; one
/// member dies holding what it took (never acks). After a recovery step (its claims put back),
/// a third member takes the rest: every message is acknowledged exactly once, the dead member's
/// included, and no slot is overwritten before its message was acknowledged.
#[test]
fn two_members_a_publisher_and_a_dead_member() {
    model(|| {
        let t = Arc::new(HeapRing::new(CAP, 1));
        broadcast::init(&*t);
        let g = Arc::new(HeapGroup::new(CAP));
        group::init(&g.group(), 0);
        assert_eq!(try_publish(&t, &g), Some(0));
        assert_eq!(try_publish(&t, &g), Some(1));
        let live = {
            let (t, g) = (t.clone(), g.clone());
            thread::spawn(move || {
                let mut acked = Vec::new();
                for _ in 0..2 {
                    match take(&t, &g, 1) {
                        Some(s) => {
                            group::ack(&g.group(), CAP, s, 1, false).unwrap();
                            acked.push(s);
                        }
                        None => thread::yield_now(),
                    }
                }
                acked
            })
        };
        let dying = {
            let (t, g) = (t.clone(), g.clone());
            thread::spawn(move || take(&t, &g, 2))
        };
        // The publisher: message 2 needs message 0 acknowledged.
        let published = try_publish(&t, &g).is_some();
        let mut acked = live.join().unwrap();
        let _held = dying.join().unwrap();
        // Recovery: member 2 is dead; its claims go back to the group.
        let dead: Vec<_> = group::claims(&g.group(), CAP).filter(|&(_, w)| w & 0xFFF == 2).collect();
        for (s, w) in dead {
            assert!(group::put_back(&g.group(), s, w));
        }
        // Member 3 takes the rest (publishing message 2 if it was not yet).
        let mut published = published;
        loop {
            match take(&t, &g, 3) {
                Some(s) => {
                    group::ack(&g.group(), CAP, s, 3, false).unwrap();
                    acked.push(s);
                }
                None if !published => published = try_publish(&t, &g).is_some(),
                None => break,
            }
        }
        acked.sort();
        assert_eq!(acked, [0, 1, 2], "each message acknowledged once");
        assert_eq!(g.group().position.load(loom::sync::atomic::Ordering::Acquire), 3);
    });
}
