//! The consumer-group protocol (`ring::group`) against a reference model: random publishes,
//! claims by three members, acknowledgements in any order, and members dying (their claims put
//! back); the group must hand each message to one member at a time, take put-back messages
//! first (oldest first), keep its position at the lowest unacknowledged message, gate the
//! publisher exactly there, and end with every message acknowledged once.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use shmq::layout::slot;
use shmq::ring::group::{self, Found, HeapGroup};
use shmq::ring::{broadcast, HeapRing, Poll, RingMem};

#[derive(Clone, Debug)]
enum Op {
    Publish,
    Claim(u16),
    /// Member, and which of its held messages (index modulo how many it holds).
    Ack(u16, usize),
    Die(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Publish),
        4 => (1u16..=3).prop_map(Op::Claim),
        3 => ((1u16..=3), any::<usize>()).prop_map(|(m, i)| Op::Ack(m, i)),
        1 => (1u16..=3).prop_map(Op::Die),
    ]
}

#[derive(Debug, Default)]
struct Model {
    published: u64,
    next: u64,
    retry: BTreeSet<u64>,
    held: [Vec<u64>; 4],
    acked: BTreeSet<u64>,
}

impl Model {
    fn position(&self) -> u64 {
        (0..self.published).find(|s| !self.acked.contains(s)).unwrap_or(self.published)
    }
}

fn run(cap: u64, ops: &[Op]) {
    let t = HeapRing::new(cap, 8);
    broadcast::init(&t);
    let h = HeapGroup::new(cap);
    let g = h.group();
    group::init(&g, 0);
    let mut m = Model::default();
    let mut deliveries: Vec<u64> = Vec::new();
    for op in ops {
        match *op {
            Op::Publish => {
                let gate = g.position.load(std::sync::atomic::Ordering::Acquire);
                let ok = match broadcast::claim(&t, 9, gate).unwrap() {
                    Poll::Ready(s) => {
                        // SAFETY: claimed topic slot `s`; 8 <= max_msg.
                        unsafe { std::ptr::copy_nonoverlapping(s.to_le_bytes().as_ptr(), t.payload(s), 8) };
                        broadcast::commit(&t, s, 9, 8, 0).unwrap();
                        assert_eq!(s, m.published);
                        true
                    }
                    _ => false,
                };
                assert_eq!(ok, m.published - m.position() < cap, "the group gates at its position: {m:?}");
                if ok {
                    m.published += 1;
                }
            }
            Op::Claim(id) => {
                let want = m.retry.first().copied().or((m.next < m.published).then_some(m.next));
                match group::claim(&t, &g, id, true, false).unwrap() {
                    Found::Message(c) => {
                        assert_eq!(Some(c.seq), want, "claimed {c:?}, the model expected {want:?} ({m:?})");
                        // SAFETY: the group holds the slot until the message is acknowledged.
                        let mut b = [0u8; 8];
                        unsafe { std::ptr::copy_nonoverlapping(t.payload(c.seq), b.as_mut_ptr(), 8) };
                        assert_eq!(u64::from_le_bytes(b), c.seq, "message {} overwritten while held", c.seq);
                        if !m.retry.remove(&c.seq) {
                            m.next += 1;
                        }
                        m.held[id as usize].push(c.seq);
                        deliveries.push(c.seq);
                    }
                    Found::Empty => assert_eq!(want, None, "empty, the model expected {want:?} ({m:?})"),
                    other => panic!("{other:?}"),
                }
            }
            Op::Ack(id, i) => {
                let held = &mut m.held[id as usize];
                if held.is_empty() {
                    continue;
                }
                let seq = held.remove(i % held.len());
                group::ack(&g, cap, seq, id, false).unwrap();
                assert!(m.acked.insert(seq));
            }
            Op::Die(id) => {
                let dead: Vec<(u64, u64)> = group::claims(&g, cap).filter(|&(_, w)| slot::claimer(w) == id).collect();
                let mut want: Vec<u64> = m.held[id as usize].drain(..).collect();
                want.sort();
                assert_eq!(dead.iter().map(|d| d.0).collect::<Vec<_>>(), want, "its claims on the group's words");
                for (s, w) in dead {
                    assert!(group::put_back(&g, s, w));
                    m.retry.insert(s);
                }
            }
        }
        assert_eq!(g.position.load(std::sync::atomic::Ordering::Acquire), m.position(), "position ({m:?})");
    }
    // Every member dies; a last member takes and acknowledges everything left.
    for id in 1..=3u16 {
        for (s, w) in group::claims(&g, cap).filter(|&(_, w)| slot::claimer(w) == id).collect::<Vec<_>>() {
            assert!(group::put_back(&g, s, w));
        }
    }
    let mut rest = VecDeque::new();
    while let Found::Message(c) = group::claim(&t, &g, 7, true, false).unwrap() {
        group::ack(&g, cap, c.seq, 7, false).unwrap();
        rest.push_back(c.seq);
        m.acked.insert(c.seq);
    }
    assert_eq!(m.acked.len() as u64, m.published, "every message acknowledged");
    assert_eq!(g.position.load(std::sync::atomic::Ordering::Acquire), m.published);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn group_matches_the_reference(cap in prop_oneof![Just(2u64), Just(4), Just(8)], ops in prop::collection::vec(op(), 1..200)) {
        run(cap, &ops);
    }
}
