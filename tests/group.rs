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
    // A member takes whatever the group hands it: no kind filter.
    assert!(matches!(t.subscriber().group("a").kinds(&[1]).build(), Err(OpenError::InvalidConfig(_))));
    // A durable subscriber and a group cannot share a name.
    assert!(matches!(t.subscriber().name("a").build(), Err(OpenError::Incompatible { .. })));
    let _s = t.subscriber().name("s").build().unwrap();
    let none = TopicOptions::new().dir(d.path()).max_groups(0).create("plain").unwrap();
    assert!(matches!(none.subscriber().group("x").build(), Err(OpenError::TooManyGroups { max: 0 })));
    // A group with a live member cannot be removed.
    assert!(matches!(t.remove_group("a"), Err(Error::SubscriberNameTaken { .. })));
}

/// Two members of one group in one process (one `Topic`, so one participant id): the first
/// leaving does not take the process out of the group, so the group still has a live member.
#[test]
fn a_process_stays_a_member_until_its_last_member_leaves() {
    let d = tempfile::tempdir().unwrap();
    let t = topic(d.path(), 8);
    let a = t.subscriber().group("g").build().unwrap();
    let b = t.subscriber().group("g").build().unwrap();
    drop(a);
    let members = &t.groups()[0].members;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!((members[0].pid, members[0].alive), (std::process::id(), true));
    match t.remove_group("g") {
        Err(Error::SubscriberNameTaken { pid, .. }) => assert_eq!(pid, std::process::id(), "the member's pid"),
        other => panic!("a group with a live member was removed: {other:?}"),
    }
    drop(b);
    assert!(t.groups()[0].members.is_empty());
    assert!(t.remove_group("g").unwrap());
}

/// `remove_group` racing members that join and leave: it removes the group only while it has
/// no member, never from under one that joined.
#[test]
fn a_group_is_never_removed_from_under_a_joining_member() {
    let d = tempfile::tempdir().unwrap();
    let t = topic(d.path(), 8);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let removed = std::thread::scope(|sc| {
        let remover = sc.spawn(|| {
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                removed += matches!(t.remove_group("g"), Ok(true)) as u32;
            }
            removed
        });
        // Stops the remover however this thread ends (a panic included).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for _ in 0..2_000 {
            let m = t.subscriber().group("g").build().unwrap();
            let groups = t.groups();
            let g = groups.iter().find(|g| g.name == "g").expect("the group of a live member was removed");
            assert!(!g.members.is_empty(), "{g:?}");
            drop(m);
        }
        drop(_stop);
        remover.join().unwrap()
    });
    assert!(removed > 0, "the race was not exercised");
}

/// A hostile writer scribbles on everything groups add (the words, `next`, the position, the
/// retry hint, the member bitmap, the entry's mode) while a publisher publishes and two members
/// receive: every call ends with a result or a typed error in time; nothing panics or hangs.
#[test]
fn hostile_bytes_in_a_group_give_errors_never_a_panic_or_a_hang() {
    use shmq::layout::{slot, SUBSCRIBER_SIZE};
    use shmq_test_support::{RawMap, Rng};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(d.path()).capacity(8).max_msg_size(16).create("hostile").unwrap();
    let mut a = t.subscriber().group("g").build().unwrap();
    let mut b = t.subscriber().group("g").ack(AckMode::Explicit).build().unwrap();
    let seg = shmq::segment::Segment::open(d.path(), "hostile", &Default::default(), Duration::from_secs(1)).unwrap();
    let o = seg.offsets();
    let g = o.groups.unwrap();
    // The group took one of the first entries (those that can hold a group).
    let entry = (0..g.count as u64)
        .map(|i| o.subscribers + i * SUBSCRIBER_SIZE as u64)
        .find(|&at| RawMap::open(t.path()).load(at + 132, 4) & 2 != 0)
        .expect("the group's entry");
    let region = g.first + ((entry - o.subscribers) / SUBSCRIBER_SIZE as u64) * g.stride;
    let map = Arc::new(RawMap::open(t.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, map, written) = (stop.clone(), map.clone(), written.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(0x9e0);
            let tags = [slot::IDLE, slot::READING, slot::RETRY, slot::ABORTED, 15];
            while !stop.load(Relaxed) {
                let i = rng.below(8);
                let any = rng.next_u64();
                let small = rng.below(40);
                match rng.below(7) {
                    0 => map.store(
                        region + 128 + i * 8,
                        8,
                        slot::pack(rng.below(40), *rng.pick(&tags), rng.below(8) as u16),
                    ),
                    1 => map.store(entry + 32, 8, *rng.pick(&[0, small, any])), // next
                    2 => map.store(entry, 8, *rng.pick(&[0, small, any])),      // position (the gate)
                    3 => map.store(entry + 40, 8, *rng.pick(&[0, 1 << 32, any])), // retry hint
                    4 => map.store(region + rng.below(16) * 8, 8, any),         // member bitmap
                    5 => map.store(entry + 132, 4, *rng.pick(&[0, 1, 2, 3, 7])), // mode
                    _ => map.store(region + 128 + i * 8, 8, any),
                }
                let n = written.fetch_add(1, Relaxed) + 1;
                if n % 4 == 0 {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        })
    };
    let publisher = {
        let (t, stop) = (t.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut p = t.publisher().unwrap();
            let (mut sent, mut errors) = (0u64, 0u64);
            for i in 0u64.. {
                if stop.load(Relaxed) {
                    break;
                }
                match p.send_timeout(&i.to_le_bytes(), Duration::from_millis(5)) {
                    Ok(()) => sent += 1,
                    Err(_) => errors += 1,
                }
            }
            (sent, errors)
        })
    };
    let started = Instant::now();
    let (mut got, mut errors) = (0u64, std::collections::BTreeMap::<String, u64>::new());
    let mut round = 0u64;
    let mut buf = [0u8; 16];
    while round < 3000 || written.load(Relaxed) < 20_000 {
        round += 1;
        let m = if round % 2 == 0 { &mut a } else { &mut b };
        match m.recv_timeout(&mut buf, Duration::from_millis(5)) {
            Ok(r) => {
                assert!(r.len <= 16);
                got += 1;
            }
            Err(e) => {
                *errors.entry(format!("{e:?}").split([' ', '{', '(']).next().unwrap().to_string()).or_default() += 1
            }
        }
        if round % 64 == 0 {
            b.ack();
            let _ = t.groups();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "hung at round {round}");
    }
    let _ = shmq::status::Status::read(d.path(), "hostile").unwrap();
    stop.store(true, Relaxed);
    let (sent, send_errors) = publisher.join().expect("the publisher never panicked");
    writer.join().unwrap();
    drop((a, b));
    eprintln!(
        "hostile group: {} writes; sent {sent} ({send_errors} send errors), received {got}, errors {errors:?}",
        written.load(Relaxed)
    );
}
