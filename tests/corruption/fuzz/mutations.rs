//! Real queues and topics, used for a while, then with header, control, participant,
//! subscriber and slot fields overwritten (or bits flipped), opened and used.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use shmq::layout::{self, slot, Offsets};
use shmq::segment::{Expect, Segment};
use shmq::{QueueKind, QueueOptions, SubscriberMode, TopicOptions};
use shmq_test_support::corrupt::{CONTROL, EDGES, HEADER, PARTICIPANT, SLOT_KIND, SLOT_LEN, SLOT_STATE, SUBSCRIBER};
use shmq_test_support::RawMap;

use super::{check, next_name, open_every_way, READY};

/// A new value for a field of a real segment.
#[derive(Clone, Copy, Debug)]
enum Val {
    Raw(u64),
    Edge(u64),
    /// `u64::MAX` minus this: positions at the top of the sequence space.
    Top(u8),
    /// The current value plus this.
    Delta(i16),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        1 => any::<u64>().prop_map(Val::Raw),
        1 => prop::sample::select(EDGES.to_vec()).prop_map(Val::Edge),
        1 => (0..40u8).prop_map(Val::Top),
        2 => (-40i16..40).prop_map(Val::Delta),
    ]
}

/// A new state word for a slot.
#[derive(Clone, Copy, Debug)]
enum StateVal {
    Raw(u64),
    /// The current sequence plus `seq`, with this tag and claimer.
    Shift {
        seq: i16,
        tag: u64,
        claimer: u16,
    },
}

fn state_val() -> impl Strategy<Value = StateVal> {
    prop_oneof![
        1 => any::<u64>().prop_map(StateVal::Raw),
        4 => (-40i16..40, 0..16u64, 0..8u16).prop_map(|(seq, tag, claimer)| StateVal::Shift { seq, tag, claimer }),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Header(usize, Val),
    Control(usize, Val),
    Participant(u64, usize, Val),
    Subscriber(u64, usize, Val),
    SlotState(u64, StateVal),
    SlotLen(u64, Val),
    SlotKind(u64, u32),
    /// Flip bit `.1` of the byte at this fraction of the file (in 1/2^32).
    Flip(u32, u8),
    /// Write these bytes at this fraction of the file.
    Bytes(u32, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (0..HEADER.len(), val()).prop_map(|(f, v)| Mutation::Header(f, v)),
        3 => (0..CONTROL.len(), val()).prop_map(|(f, v)| Mutation::Control(f, v)),
        // tail and head (the first two control fields), whose values drive every position.
        2 => (0..2usize, val()).prop_map(|(f, v)| Mutation::Control(f, v)),
        2 => (0..4u64, 0..PARTICIPANT.len(), val()).prop_map(|(i, f, v)| Mutation::Participant(i, f, v)),
        2 => (0..4u64, 0..SUBSCRIBER.len(), val()).prop_map(|(i, f, v)| Mutation::Subscriber(i, f, v)),
        4 => (0..16u64, state_val()).prop_map(|(i, s)| Mutation::SlotState(i, s)),
        2 => (0..16u64, val()).prop_map(|(i, v)| Mutation::SlotLen(i, v)),
        1 => (0..16u64, any::<u32>()).prop_map(|(i, k)| Mutation::SlotKind(i, k)),
        2 => (any::<u32>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        1 => (any::<u32>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, b)| Mutation::Bytes(at, b)),
    ]
}

#[derive(Clone, Debug)]
struct Mutated {
    /// 0 SPSC, 1 MPMC, 2 topic.
    kind: u8,
    capacity: u64,
    max_msg: usize,
    /// Messages sent before the mutation, and how many of them were received.
    sent: u8,
    received: u8,
    mutations: Vec<Mutation>,
}

fn mutated() -> impl Strategy<Value = Mutated> {
    (
        0..3u8,
        prop::sample::select(vec![2u64, 4, 8]),
        // 1, not 0: a maximum message size of 0 is refused now.
        prop::sample::select(vec![1usize, 8, 40]),
        0..24u8,
        0..24u8,
        prop::collection::vec(mutation(), 1..6),
    )
        .prop_map(|(kind, capacity, max_msg, sent, received, mutations)| Mutated {
            kind,
            capacity,
            max_msg,
            sent,
            received,
            mutations,
        })
}

/// Where a field of `m` is, and how wide.
fn locate(m: &Mutation, o: &Offsets, capacity: u64, len: u64) -> (u64, usize) {
    let slot = |i: u64| o.slots + (i % capacity) * o.stride;
    match *m {
        Mutation::Header(f, _) => (HEADER[f].offset, HEADER[f].width),
        Mutation::Control(f, _) => (CONTROL[f].offset, CONTROL[f].width),
        Mutation::Participant(i, f, _) => {
            (o.participants + i * layout::PARTICIPANT_SIZE as u64 + PARTICIPANT[f].offset, PARTICIPANT[f].width)
        }
        // Queues have no subscriber table: these hit the start of the slots instead.
        Mutation::Subscriber(i, f, _) => {
            (o.subscribers + i * layout::SUBSCRIBER_SIZE as u64 + SUBSCRIBER[f].offset, SUBSCRIBER[f].width)
        }
        Mutation::SlotState(i, _) => (slot(i) + SLOT_STATE.offset, SLOT_STATE.width),
        Mutation::SlotLen(i, _) => (slot(i) + SLOT_LEN.offset, SLOT_LEN.width),
        Mutation::SlotKind(i, _) => (slot(i) + SLOT_KIND.offset, SLOT_KIND.width),
        Mutation::Flip(at, _) => ((at as u64 * len) >> 32, 1),
        Mutation::Bytes(at, ref b) => (((at as u64 * len) >> 32).min(len - b.len() as u64), b.len()),
    }
}

/// Writes mutation `m` through `map`, a mapping of a segment laid out as `o`.
fn apply(map: &RawMap, m: &Mutation, o: &Offsets, capacity: u64) {
    let (offset, width) = locate(m, o, capacity, map.len() as u64);
    let mut cur = vec![0u8; width];
    map.read_bytes(offset, &mut cur);
    let current = {
        let mut b = [0u8; 8];
        b[..width.min(8)].copy_from_slice(&cur[..width.min(8)]);
        u64::from_le_bytes(b)
    };
    let new: Vec<u8> = match m {
        Mutation::Flip(_, bit) => vec![cur[0] ^ (1 << bit)],
        Mutation::Bytes(_, b) => b.clone(),
        Mutation::SlotKind(_, k) => k.to_le_bytes().to_vec(),
        Mutation::SlotState(_, s) => {
            let w = match *s {
                StateVal::Raw(w) => w,
                StateVal::Shift { seq, tag, claimer } => {
                    slot::pack((current >> 16).wrapping_add(seq as i64 as u64), tag, claimer)
                }
            };
            w.to_le_bytes().to_vec()
        }
        Mutation::Header(_, v)
        | Mutation::Control(_, v)
        | Mutation::Participant(_, _, v)
        | Mutation::Subscriber(_, _, v)
        | Mutation::SlotLen(_, v) => {
            let x = match *v {
                Val::Raw(x) | Val::Edge(x) => x,
                Val::Top(d) => u64::MAX - d as u64,
                Val::Delta(d) => current.wrapping_add(d as i64 as u64),
            };
            x.to_le_bytes()[..width].to_vec()
        }
    };
    map.write_bytes(offset, &new);
}

/// A real segment of `case`'s shape, used for a while and closed (its file stays).
fn used_segment(dir: &Path, name: &str, case: &Mutated) -> (PathBuf, Offsets) {
    let msg = vec![0xC3u8; case.max_msg];
    let mut buf = vec![0u8; case.max_msg];
    if case.kind == 2 {
        let t = TopicOptions::new()
            .dir(dir)
            .capacity(case.capacity as usize)
            .max_msg_size(case.max_msg)
            .max_subscribers(4)
            .create(name)
            .expect("create the topic");
        // A durable subscriber stays in the table (detached) after its handle is gone.
        let mut durable = t.subscriber().name("keep").build().expect("durable subscriber");
        let mut lossy = t.subscriber().mode(SubscriberMode::Lossy).build().expect("lossy subscriber");
        let mut p = t.publisher().expect("publisher");
        for i in 0..case.sent as usize {
            if p.try_send_kind(i as u32, &msg[..i % (case.max_msg + 1)]).is_err() {
                let _ = durable.try_recv(&mut buf);
            }
        }
        for _ in 0..case.received {
            let _ = durable.try_recv(&mut buf);
            let _ = lossy.try_recv(&mut buf);
        }
        let o = Offsets::compute_with(
            case.capacity,
            case.max_msg as u32,
            layout::DEFAULT_PARTICIPANTS,
            4,
            0,
            layout::DeadLetterParts::None,
            layout::DEFAULT_MAX_GROUPS.min(4),
        )
        .expect("layout");
        return (t.path().to_path_buf(), o);
    }
    let kind = if case.kind == 0 { QueueKind::Spsc } else { QueueKind::Mpmc };
    let q = QueueOptions::new()
        .dir(dir)
        .kind(kind)
        .capacity(case.capacity as usize)
        .max_msg_size(case.max_msg)
        .create(name)
        .expect("create the queue");
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    for i in 0..case.sent as usize {
        if tx.try_send_kind(i as u32, &msg[..i % (case.max_msg + 1)]).is_err() {
            let _ = rx.try_recv(&mut buf);
        }
    }
    for _ in 0..case.received {
        let _ = rx.try_recv(&mut buf);
    }
    let o = Offsets::compute(case.capacity, case.max_msg as u32, layout::DEFAULT_PARTICIPANTS, 0, 0).expect("layout");
    (q.path().to_path_buf(), o)
}

#[test]
fn mutated_queue_and_topic_segments_give_ok_or_errors_never_panic_or_hang() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let (opened, failed) = (Cell::new(0u32), Cell::new(0u32));
    check("mutated segments", 384, Some(d), mutated(), |case| {
        let name = next_name("mut");
        let (path, offsets) = used_segment(d, &name, &case);
        let map = RawMap::open(&path);
        for m in &case.mutations {
            apply(&map, m, &offsets, case.capacity);
        }
        drop(map);
        match Segment::open(d, &name, &Expect::default(), READY) {
            Ok(_) => opened.set(opened.get() + 1),
            Err(_) => failed.set(failed.get() + 1),
        }
        open_every_way(d, &name);
        std::fs::remove_file(&path).expect("remove the segment");
    });
    eprintln!("mutated segments: {} opened, {} rejected", opened.get(), failed.get());
    assert!(opened.get() > 0 && failed.get() > 0, "mutations should both spare and break the header");
}
