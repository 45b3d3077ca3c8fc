//! Regressions: inputs the loops reach only rarely (positions at the top of the sequence space,
//! counters at `u64::MAX`), checked on every run.

use std::time::Duration;

use shmq::layout::{self, Offsets};
use shmq::{SubscriberMode, TopicOptions};
use shmq_test_support::corrupt::{field, SUBSCRIBER};
use shmq_test_support::{RawMap, Scene};

use crate::panic_message;

/// Runs `f`, failing with `what` if it panics (rather than with the bare panic).
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| panic!("{what} panicked: {}", panic_message(&*p)))
}

/// A topic whose `tail` a peer set to `u64::MAX` gives a joining subscriber the cursor
/// `u64::MAX`; when publishers then lap it, the lag count must not overflow.
#[test]
fn subscriber_lapped_at_the_top_of_the_sequence_space_reports_lag_without_overflow() {
    let limit = Duration::from_secs(60);
    let scene = Scene::new("lap at u64::MAX", limit, limit);
    let mut failures = Vec::new();
    for lossy in [false, true] {
        let name = if lossy { "wrap-lossy" } else { "wrap-reliable" };
        let t = TopicOptions::new().dir(scene.path()).capacity(4).max_msg_size(8).create(name).expect("create");
        RawMap::open(t.path()).store(field("control.tail").offset, 8, u64::MAX);
        let mode = if lossy { SubscriberMode::Lossy } else { SubscriberMode::Reliable };
        let mut sub = t.subscriber().mode(mode).build().expect("subscriber");
        let mut p = t.publisher().expect("publisher");
        for i in 0..4u8 {
            let _ = p.try_send(&[i]);
        }
        let mut buf = [0u8; 8];
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.try_recv(&mut buf))) {
            Ok(Ok(m)) => assert!(m.len <= 8, "received {} bytes", m.len),
            Ok(Err(_)) => {}
            Err(p) => {
                failures
                    .push(format!("try_recv of a {mode:?} subscriber at u64::MAX panicked: {}", panic_message(&*p)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A durable subscriber resumes with the `delivered` count stored in its entry, which a peer
/// may have set to anything; counting the next message must not overflow.
#[test]
fn resumed_durable_subscriber_with_a_hostile_delivered_count_receives_without_overflow() {
    let limit = Duration::from_secs(60);
    let scene = Scene::new("delivered count", limit, limit);
    let t = TopicOptions::new()
        .dir(scene.path())
        .capacity(4)
        .max_msg_size(8)
        .max_subscribers(4)
        .create("resume")
        .expect("create");
    drop(t.subscriber().name("keep").build().expect("durable subscriber"));
    let o = Offsets::compute(4, 8, layout::DEFAULT_PARTICIPANTS, 4, 0).expect("layout");
    let delivered = SUBSCRIBER.iter().find(|f| f.name == "delivered").expect("subscriber.delivered").offset;
    RawMap::open(t.path()).store(o.subscribers + delivered, 8, u64::MAX);
    let mut sub = t.subscriber().name("keep").build().expect("resume the durable subscriber");
    t.publisher().expect("publisher").try_send(b"x").expect("publish");
    let mut buf = [0u8; 8];
    let r = no_panic("try_recv of a resumed subscriber whose delivered count is u64::MAX", || sub.try_recv(&mut buf));
    assert_eq!(r.expect("the message").len, 1);
}

/// A new reliable subscriber that joins at a `tail` a peer set near `u64::MAX` (after messages
/// were published at small sequences) finds every slot "lapped"; skipping the lost history one
/// position per step must not take 2^40 steps inside one `try_recv`.
#[test]
fn new_reliable_subscriber_joining_at_a_hostile_tail_returns_from_try_recv() {
    let limit = Duration::from_secs(120);
    let scene = Scene::new("join at a hostile tail", limit, limit);
    let t = TopicOptions::new().dir(scene.path()).capacity(4).max_msg_size(8).create("far").expect("create");
    let mut p = t.publisher().expect("publisher");
    for i in 0..12u8 {
        p.try_send(&[i]).expect("publish (no reliable subscriber: never full)");
    }
    RawMap::open(t.path()).store(field("control.tail").offset, 8, u64::MAX - (1 << 40));
    let mut sub = t.subscriber().build().expect("reliable subscriber");
    let (tx, rx) = std::sync::mpsc::channel();
    // The call runs on its own thread so that a hang fails this test instead of the binary.
    std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.try_recv(&mut buf).map(|m| m.len)));
        let _ = tx.send(r.map_err(|_| "panicked"));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(r)) => eprintln!("try_recv returned {r:?}"),
        Ok(Err(p)) => panic!("try_recv {p}"),
        Err(_) => panic!("try_recv of a new reliable subscriber at tail u64::MAX - 2^40 did not return within 20 s"),
    }
}
