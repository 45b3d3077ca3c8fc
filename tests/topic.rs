//! Topic behaviour in one process: fan-out, flow control, lag, durable subscribers, errors.

use std::time::Duration;

use shmq::{
    AckMode, Error, OpenError, SendTimeoutError, Start, SubscriberMode, Topic, TopicOptions, TryRecvError, TrySendError,
};

fn topic(dir: &tempfile::TempDir, name: &str, cap: usize) -> Topic {
    TopicOptions::new().dir(dir.path()).capacity(cap).max_msg_size(64).create(name).unwrap()
}

fn recv_u64(sub: &mut shmq::Subscriber) -> Result<u64, TryRecvError> {
    let mut buf = [0u8; 64];
    let r = sub.try_recv(&mut buf)?;
    assert_eq!(r.len, 8);
    Ok(u64::from_le_bytes(buf[..8].try_into().unwrap()))
}

#[test]
fn every_reliable_subscriber_receives_every_message_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "fanout", 8);
    let mut subs: Vec<_> = (0..3).map(|_| t.subscriber().build().unwrap()).collect();
    let mut p = t.publisher().unwrap();
    for round in 0..10u64 {
        for i in 0..8 {
            p.try_send(&(round * 8 + i).to_le_bytes()).unwrap();
        }
        for s in &mut subs {
            for i in 0..8 {
                assert_eq!(recv_u64(s).unwrap(), round * 8 + i);
            }
            assert!(matches!(recv_u64(s), Err(TryRecvError::Empty)));
        }
    }
    assert_eq!(t.published(), 80);
    assert_eq!(t.subscriber_count(), 3);
}

#[test]
fn slowest_reliable_subscriber_gates_publishers() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "gate", 4);
    let mut fast = t.subscriber().build().unwrap();
    let mut slow = t.subscriber().build().unwrap();
    let mut p = t.publisher().unwrap();
    for i in 0..4u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
        assert_eq!(recv_u64(&mut fast).unwrap(), i);
    }
    assert!(matches!(p.try_send(b"x"), Err(TrySendError::Full)));
    assert!(matches!(p.send_timeout(b"x", Duration::from_millis(20)), Err(SendTimeoutError::Timeout)));
    assert_eq!(recv_u64(&mut slow).unwrap(), 0);
    p.try_send(&4u64.to_le_bytes()).unwrap();
    assert!(t.counters().full_events >= 2);
}

#[test]
fn lagged_count_matches_number_of_overwritten_messages() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "lag", 4);
    let mut lossy = t.subscriber().mode(SubscriberMode::Lossy).build().unwrap();
    let mut p = t.publisher().unwrap();
    for i in 0..10u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    // 10 published, 4 retained (6..=9): 6 missed.
    assert!(matches!(recv_u64(&mut lossy), Err(TryRecvError::Lagged(6))));
    for i in 6..10 {
        assert_eq!(recv_u64(&mut lossy).unwrap(), i);
    }
    assert!(matches!(recv_u64(&mut lossy), Err(TryRecvError::Empty)));
    let info = t.subscribers();
    assert_eq!((info[0].lagged, info[0].delivered, info[0].lossy), (6, 4, true));
}

#[test]
fn earliest_delivers_retained_history_and_latest_only_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "history", 4);
    let mut p = t.publisher().unwrap();
    for i in 0..6u64 {
        p.try_send(&i.to_le_bytes()).unwrap(); // nobody gates yet
    }
    let mut early = t.subscriber().start(Start::Earliest).build().unwrap();
    let mut late = t.subscriber().start(Start::Latest).build().unwrap();
    p.try_send(&6u64.to_le_bytes()).unwrap_err(); // early gates: 2..=5 unread, ring of 4 full
    for i in 2..6 {
        assert_eq!(recv_u64(&mut early).unwrap(), i);
    }
    p.try_send(&6u64.to_le_bytes()).unwrap();
    assert_eq!(recv_u64(&mut early).unwrap(), 6);
    assert_eq!(recv_u64(&mut late).unwrap(), 6);
}

#[test]
fn kinds_filter_skips_other_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "kinds", 8);
    let mut only2 = t.subscriber().kinds(&[2]).build().unwrap();
    let mut p = t.publisher().unwrap();
    for i in 0..6u64 {
        p.try_send_kind((i % 3) as u32, &i.to_le_bytes()).unwrap();
    }
    let mut buf = [0u8; 64];
    let r = only2.try_recv(&mut buf).unwrap();
    assert_eq!((r.kind, buf[0]), (2, 2));
    let r = only2.try_recv(&mut buf).unwrap();
    assert_eq!((r.kind, buf[0]), (2, 5));
    assert!(matches!(only2.try_recv(&mut buf), Err(TryRecvError::Empty)));
}

#[test]
fn durable_subscriber_dropped_cleanly_resumes_after_the_last_message_it_received() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "durable", 16);
    let mut p = t.publisher().unwrap();
    {
        let mut billing = t.subscriber().name("billing").build().unwrap();
        for i in 0..5u64 {
            p.try_send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(recv_u64(&mut billing).unwrap(), 0);
        assert_eq!(recv_u64(&mut billing).unwrap(), 1);
        // Dropped cleanly: 1 counts as processed (like a Kafka consumer's close).
    }
    // Away: it keeps gating, and keeps its place, with no lag left for what it received.
    assert_eq!(t.subscriber_count(), 1);
    let info = t.subscribers().into_iter().find(|s| s.name.as_deref() == Some("billing")).expect("listed");
    assert_eq!(info.cursor, 2, "the clean drop acknowledged both messages received: {info:?}");
    let mut billing = t.subscriber().name("billing").build().unwrap();
    for i in 2..5 {
        assert_eq!(recv_u64(&mut billing).unwrap(), i);
    }
}

#[test]
fn durable_subscriber_dropped_by_a_panic_gets_the_message_it_was_handling_again() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "durable-panic", 16);
    let mut p = t.publisher().unwrap();
    for i in 0..3u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    let handler = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = t.subscriber().name("ledger").start(Start::Earliest).build().unwrap();
        assert_eq!(recv_u64(&mut s).unwrap(), 0);
        assert_eq!(recv_u64(&mut s).unwrap(), 1);
        panic!("handling message 1 failed");
    }));
    assert!(handler.is_err());
    let mut s = t.subscriber().name("ledger").build().unwrap();
    assert_eq!(recv_u64(&mut s).unwrap(), 1, "the message being handled when the panic came is delivered again");
    assert_eq!(recv_u64(&mut s).unwrap(), 2);
}

#[test]
fn explicit_ack_mode_redelivers_everything_unacknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "explicit", 16);
    let mut p = t.publisher().unwrap();
    for i in 0..4u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    {
        let mut s = t.subscriber().name("audit").start(Start::Earliest).ack(AckMode::Explicit).build().unwrap();
        assert_eq!(recv_u64(&mut s).unwrap(), 0);
        s.ack();
        assert_eq!(recv_u64(&mut s).unwrap(), 1);
        assert_eq!(recv_u64(&mut s).unwrap(), 2);
    }
    let mut s = t.subscriber().name("audit").ack(AckMode::Explicit).build().unwrap();
    assert_eq!(recv_u64(&mut s).unwrap(), 1);
}

#[test]
fn durable_name_is_exclusive_and_removal_stops_gating() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "names", 2);
    let held = t.subscriber().name("ops").build().unwrap();
    assert!(matches!(t.subscriber().name("ops").build(), Err(OpenError::SubscriberNameTaken { .. })));
    assert!(matches!(t.remove_subscriber("ops"), Err(Error::SubscriberNameTaken { .. })));
    drop(held);
    let mut p = t.publisher().unwrap();
    p.try_send(b"a").unwrap();
    p.try_send(b"b").unwrap();
    assert!(matches!(p.try_send(b"c"), Err(TrySendError::Full))); // the detached "ops" gates
    assert!(t.remove_subscriber("ops").unwrap());
    p.try_send(b"c").unwrap();
    assert!(!t.has_subscribers());
    assert!(matches!(t.subscriber().name("bad/name").build(), Err(OpenError::InvalidName { .. })));
}

#[test]
fn too_many_subscribers_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).max_subscribers(2).create("full").unwrap();
    let _a = t.subscriber().build().unwrap();
    let _b = t.subscriber().build().unwrap();
    assert!(matches!(t.subscriber().build(), Err(OpenError::TooManySubscribers { max: 2 })));
}

#[test]
fn topic_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "errs", 4);
    let mut p = t.publisher().unwrap();
    assert!(matches!(p.try_send(&[0u8; 65]), Err(TrySendError::MessageTooLarge { len: 65, max: 64 })));
    assert!(matches!(TopicOptions::new().dir(dir.path()).open("nope"), Err(OpenError::NotFound { .. })));
    assert!(matches!(
        TopicOptions::new().dir(dir.path()).capacity(8).open("errs"),
        Err(OpenError::Incompatible { what: "capacity", .. })
    ));
    shmq::QueueOptions::new().dir(dir.path()).create("a-queue").unwrap();
    assert!(matches!(
        TopicOptions::new().dir(dir.path()).open("a-queue"),
        Err(OpenError::Incompatible { what: "kind", .. })
    ));
    let mut s = t.subscriber().mode(SubscriberMode::Lossy).build().unwrap();
    assert!(matches!(s.try_recv_ref(), Err(TryRecvError::Unsupported(_))));
}

#[test]
fn loans_publish_in_place_and_aborted_loans_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "loans", 4);
    let mut s = t.subscriber().build().unwrap();
    let mut p = t.publisher().unwrap();
    drop(p.try_loan().unwrap());
    let mut l = p.try_loan().unwrap();
    l[..3].copy_from_slice(b"abc");
    l.set_kind(9);
    l.commit(3).unwrap();
    let m = s.try_recv_ref().unwrap();
    assert_eq!((&m[..], m.kind(), m.sequence()), (&b"abc"[..], 9, 1));
    drop(m);
    assert_eq!(t.counters().aborted, 1);
}

/// A publisher looks at the subscriber table again after each claim when somebody joined
/// meanwhile (an `Earliest` joiner may be reading the slot it claimed). Joiners that cannot be
/// reading it, a lossy one and a reliable one at the tail, must not hold it up; an `Earliest`
/// reliable one a whole ring behind gates it, as any reliable subscriber does.
#[test]
fn a_publisher_waits_after_its_claim_only_for_a_joiner_that_may_read_the_slot() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir, "joins", 4);
    let mut p = t.publisher().unwrap();
    for i in 0..4u64 {
        p.try_send(&i.to_le_bytes()).unwrap(); // nobody subscribed: never waits
    }
    let _lossy = t.subscriber().mode(SubscriberMode::Lossy).build().unwrap();
    p.try_send(&4u64.to_le_bytes()).expect("a lossy joiner does not gate");
    let mut latest = t.subscriber().start(Start::Latest).build().unwrap();
    p.try_send(&5u64.to_le_bytes()).expect("a joiner at the tail does not gate");
    let mut earliest = t.subscriber().start(Start::Earliest).build().unwrap();
    assert!(matches!(p.try_send(&6u64.to_le_bytes()), Err(TrySendError::Full)), "a ring behind: full");
    assert_eq!(recv_u64(&mut earliest).unwrap(), 2, "the oldest message still in the ring");
    p.try_send(&6u64.to_le_bytes()).expect("room again");
    assert_eq!(recv_u64(&mut latest).unwrap(), 5);
    assert_eq!(recv_u64(&mut latest).unwrap(), 6);
    assert_eq!(t.counters().aborted, 0, "no sequence was given up on the way");
}

/// Two processes (here: two handles, each with descriptions of its own) that create the same
/// durable name at once, while the entry before theirs frees up, never both keep it: one of
/// them gets `SubscriberNameTaken` (or both retry), so the name never has two entries that
/// would both gate publishers once their holders leave.
#[test]
fn a_durable_name_created_concurrently_has_one_holder() {
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    let opts = TopicOptions::new().dir(dir.path()).max_subscribers(3).capacity(4);
    opts.create("t").unwrap();
    let handles: Vec<_> = (0..3).map(|_| opts.open("t").unwrap()).collect();
    let mut both = 0;
    for _ in 0..2000 {
        let first = handles[2].subscriber().build().unwrap(); // holds entry 0 for a moment
        let start = Arc::new(Barrier::new(3));
        let racers: Vec<_> = (0..2)
            .map(|k| {
                let (t, start) = (handles[k].clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    t.subscriber().name("foo").build().ok()
                })
            })
            .collect();
        start.wait();
        drop(first);
        let subs: Vec<_> = racers.into_iter().map(|h| h.join().unwrap()).collect();
        both += usize::from(subs.iter().all(Option::is_some));
        drop(subs);
        while handles[2].remove_subscriber("foo").unwrap() {}
    }
    assert_eq!(both, 0, "rounds in which two live subscribers both held the durable name");
}
