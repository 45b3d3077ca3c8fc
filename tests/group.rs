//! Consumer groups in one process: members share a group's messages, every group gets every
//! message, acknowledgement modes, a member leaving, the group's durability and gating, and bad
//! names. (Members killed across processes: `tests/processes/group.rs`; the claim protocol under
//! loom: `tests/loom_group.rs`; against a reference: `tests/group_model.rs`.)

use std::collections::BTreeSet;

use shmq::topic::{AckMode, Start, SubscriberMode};
use shmq::{Error, OpenError, TopicOptions, TryRecvError};

fn topic(dir: &std::path::Path, cap: usize) -> shmq::Topic {
    TopicOptions::new().dir(dir).capacity(cap).max_msg_size(16).create("orders").unwrap()
}

fn recv(s: &mut shmq::Subscriber) -> Option<u64> {
    let mut buf = [0u8; 16];
    match s.try_recv(&mut buf) {
        Ok(r) => Some(u64::from_le_bytes(buf[..r.len].try_into().unwrap())),
        Err(TryRecvError::Empty) => None,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn members_share_a_group_and_every_group_gets_everything() {
    let d = tempfile::tempdir().unwrap();
    let t = topic(d.path(), 8);
    let mut a1 = t.subscriber().group("inventory").build().unwrap();
    let mut a2 = t.subscriber().group("inventory").build().unwrap();
    let mut b = t.subscriber().group("notifications").build().unwrap();
    let mut p = t.publisher().unwrap();
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for i in 0..100u64 {
        // The ring holds 8: both groups gate the publisher, so receive as we go.
        p.send(&i.to_le_bytes()).unwrap();
        let m = if i % 2 == 0 { &mut a1 } else { &mut a2 };
        got_a.extend(recv(m));
        got_b.extend(recv(&mut b));
    }
    while let Some(x) = recv(&mut a1).or_else(|| recv(&mut a2)) {
        got_a.push(x);
    }
    got_b.extend(std::iter::from_fn(|| recv(&mut b)));
    got_a.sort();
    assert_eq!(got_a, (0..100).collect::<Vec<_>>(), "group A: every message once, across its members");
    assert_eq!(got_b, (0..100).collect::<Vec<_>>(), "group B: every message once, in order");
    let groups = t.groups();
    assert_eq!(groups.len(), 2);
    let inv = groups.iter().find(|g| g.name == "inventory").unwrap();
    // Members are listed by process: both of ours are one.
    assert_eq!((inv.members.len(), inv.delivered, inv.lossy), (1, 100, false));
    assert!(inv.members.iter().all(|m| m.alive));
}

#[test]
fn a_member_that_leaves_hands_its_unacknowledged_messages_to_another() {
    let d = tempfile::tempdir().unwrap();
    let t = topic(d.path(), 8);
    let mut explicit = t.subscriber().group("g").ack(AckMode::Explicit).build().unwrap();
    let mut other = t.subscriber().group("g").build().unwrap();
    let mut p = t.publisher().unwrap();
    for i in 0..4u64 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!((recv(&mut explicit), recv(&mut explicit)), (Some(0), Some(1)));
    explicit.ack(); // 0 and 1 are done
    assert_eq!(recv(&mut explicit), Some(2));
    drop(explicit); // leaves with 2 unacknowledged
    let rest: BTreeSet<u64> = std::iter::from_fn(|| recv(&mut other)).collect();
    assert_eq!(rest, BTreeSet::from([2, 3]), "2 comes again, to the other member; 0 and 1 do not");
    drop(other);
    let g = &t.groups()[0];
    assert_eq!((g.position, g.redelivered, g.members.len()), (4, 1, 0));
}

#[test]
fn a_group_keeps_its_position_without_members_and_gates_publishers() {
    let d = tempfile::tempdir().unwrap();
    let t = topic(d.path(), 4);
    let mut p = t.publisher().unwrap();
    p.send(&0u64.to_le_bytes()).unwrap(); // before the group: not for it
    drop(t.subscriber().group("audit").build().unwrap()); // created at the tail, then empty
    for i in 1..5u64 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    assert!(p.try_send(&5u64.to_le_bytes()).is_err(), "the group holds 4 unacknowledged: the ring is full");
    let mut m = t.subscriber().group("audit").start(Start::Earliest).build().unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| recv(&mut m)).collect();
    assert_eq!(got, [1, 2, 3, 4], "from where the group was, not from the earliest");
    drop(m);
    p.send(&5u64.to_le_bytes()).unwrap();
    assert!(t.remove_group("audit").unwrap());
    assert!(t.groups().is_empty());
}

#[test]
fn a_lossy_group_never_gates_and_counts_what_it_missed() {
    let d = tempfile::tempdir().unwrap();
    let t = topic(d.path(), 4);
    let mut m = t.subscriber().group("stats").mode(SubscriberMode::Lossy).build().unwrap();
    let mut p = t.publisher().unwrap();
    for i in 0..10u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    let mut buf = [0u8; 16];
    assert!(matches!(m.try_recv(&mut buf), Err(TryRecvError::Lagged(6))));
    let got: Vec<u64> = std::iter::from_fn(|| recv(&mut m)).collect();
    assert_eq!(got, [6, 7, 8, 9]);
    let g = &t.groups()[0];
    assert_eq!((g.lossy, g.lagged), (true, 6));
}

#[test]
fn names_and_limits() {
    let d = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(d.path()).capacity(4).max_groups(1).create("t").unwrap();
    assert!(matches!(t.subscriber().group("bad name").build(), Err(OpenError::InvalidName { .. })));
    let _a = t.subscriber().group("a").build().unwrap();
    assert!(matches!(t.subscriber().group("b").build(), Err(OpenError::TooManyGroups { max: 1 })));
    // A durable subscriber and a group cannot share a name.
    assert!(matches!(t.subscriber().name("a").build(), Err(OpenError::Incompatible { .. })));
    let _s = t.subscriber().name("s").build().unwrap();
    let none = TopicOptions::new().dir(d.path()).max_groups(0).create("plain").unwrap();
    assert!(matches!(none.subscriber().group("x").build(), Err(OpenError::InvalidConfig(_))));
    // A group with a live member cannot be removed.
    assert!(matches!(t.remove_group("a"), Err(Error::SubscriberNameTaken { .. })));
}
