//! Fuzz loops, run by `cargo test` on stable Rust (proptest): everything shmq parses from shared
//! memory, fed with arbitrary and mutated data, must give `Ok` or an error — never a panic, a
//! hang or a result out of bounds.
//!
//! - **Segment images**: arbitrary headers (built from a plausible configuration with fields
//!   overridden), control blocks, tables and slots, and files of the wrong size, opened with
//!   `Segment::open`, `QueueOptions::open`, `TopicOptions::open` and `Status::read`; whatever
//!   opens is then used (send, receive, publish, subscribe).
//! - **Mutated segments**: a real queue or topic, used for a while, then with header, control,
//!   participant, subscriber and slot fields overwritten (or bits flipped), opened and used.
//! - **Slot parsing**: heap rings (`HeapRing`) with arbitrary indices and slot state, length and
//!   kind words, driven through `mpmc`, `spsc` and `broadcast`; every `Ok` is checked in bounds
//!   (lengths at most `max_msg`, counts at most `capacity`, claims really held by the claimer,
//!   publishers never a ring ahead of the gate).
//! - **Layout arithmetic**: `Offsets::compute`, from which validation derives every offset.
//! - **Regressions**: inputs the loops reach only rarely (positions at the top of the sequence
//!   space, counters at `u64::MAX`), checked on every run.
//!
//! `PROPTEST_CASES` raises the number of cases. A case that runs for more than [`CASE_LIMIT`] is
//! a hang: the binary aborts and prints the input of that case.
//!
//! The modules: [`images`] (arbitrary images and layout arithmetic), [`mutations`] (mutated real
//! segments), [`rings`] (slot parsing on heap rings), [`regressions`]. Fields are found through
//! `shmq_test_support::corrupt`'s tables, and written through its `RawMap`.

mod images;
mod mutations;
mod regressions;
mod rings;

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shmq::segment::{Expect, Segment};
use shmq::status::{self, Status};
use shmq::{Error, Queue, QueueOptions, Start, SubscriberMode, Topic, TopicOptions, WaitStrategy};
use shmq_test_support::CaseWatch;

use crate::touch;

/// One case taking longer than this is a hang (each takes milliseconds).
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// Ready timeout of the opens under test.
const READY: Duration = Duration::from_millis(20);
/// Timeout of the timed operations under test.
const TINY: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Running properties under a per-case watchdog
// ---------------------------------------------------------------------------------------------

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `body` on `default_cases` inputs from `strategy` (proptest catches panics and shrinks
/// to a minimal failing input, which the failure message shows).
fn check<S>(test: &'static str, default_cases: u32, dir: Option<&Path>, strategy: S, body: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: Debug,
{
    let watch = CaseWatch::start(test, CASE_LIMIT, dir.map(Path::to_path_buf));
    let config = Config { cases: cases(default_cases), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        watch.begin(&input);
        body(input);
        watch.end();
        Ok(())
    });
    drop(watch);
    if let Err(e) = result {
        panic!("{test}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Using whatever opened
// ---------------------------------------------------------------------------------------------

/// Checks a receive's result, whatever its operation's error type.
fn check_received<E>(r: &Result<shmq::Received, E>, buf_len: usize, max: usize) {
    if let Ok(m) = r {
        assert!(m.len <= buf_len && m.len <= max, "received {} bytes into {buf_len} (max message {max})", m.len);
    }
}

/// Every kind of send and receive on an opened (possibly corrupted) queue.
fn exercise_queue(q: &Queue) {
    let max = q.max_msg_size();
    let _ = (q.len(), q.is_empty(), q.counters(), q.kind(), q.capacity());
    let mut tx = q.producer().ok();
    let mut rx = q.consumer().ok();
    let msg: Vec<u8> = (0..max.min(300)).map(|i| i as u8).collect();
    let mut buf = vec![0u8; max];
    for round in 0..6usize {
        if let Some(tx) = tx.as_mut() {
            let m = &msg[..round * 7 % (msg.len() + 1)];
            let _ = tx.try_send(m);
            let _ = tx.send_kind_timeout(round as u32, m, TINY);
            let _ = tx.try_send_batch(&[m, &m[..m.len() / 2]]);
            if let Ok(mut loan) = tx.try_loan() {
                loan.fill(0x5A);
                let _ = loan.commit(m.len());
            }
        }
        if let Some(rx) = rx.as_mut() {
            check_received(&rx.try_recv(&mut buf), buf.len(), max);
            check_received(&rx.recv_timeout(&mut buf, TINY), buf.len(), max);
            let mut small = [0u8; 3];
            check_received(&rx.try_recv(&mut small), 3, max);
            if let Ok(m) = rx.try_recv_ref() {
                assert!(m.len() <= max, "borrowed message of {} bytes (max {max})", m.len());
                touch(&m);
            }
            let _ = rx.try_recv_batch(4, |p, _| {
                assert!(p.len() <= max, "batch message of {} bytes (max {max})", p.len());
                touch(p);
            });
        }
    }
    let _ = (q.len(), q.counters());
}

/// Every kind of publish and receive on an opened (possibly corrupted) topic.
fn exercise_topic(t: &Topic) {
    let max = t.max_msg_size();
    let _ = (t.subscribers(), t.subscriber_count(), t.published(), t.counters(), t.has_subscribers());
    let mut subs: Vec<shmq::Subscriber> = [
        t.subscriber().build(),
        t.subscriber().mode(SubscriberMode::Lossy).start(Start::Earliest).build(),
        t.subscriber().name("fz").start(Start::Earliest).build(),
        // Resumes the durable subscriber of `used_segment`, with whatever its entry holds now.
        t.subscriber().name("keep").build(),
        t.subscriber().kinds(&[1, 2]).build(),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect();
    let mut publisher = t.publisher().ok();
    let msg: Vec<u8> = (0..max.min(300)).map(|i| i as u8).collect();
    let mut buf = vec![0u8; max];
    for round in 0..6usize {
        if let Some(p) = publisher.as_mut() {
            let m = &msg[..round * 5 % (msg.len() + 1)];
            let _ = p.try_send(m);
            let _ = p.send_kind_timeout(round as u32 % 3, m, TINY);
            if let Ok(mut loan) = p.try_loan() {
                loan.set_kind(1);
                let _ = loan.commit(m.len());
            }
        }
        for s in subs.iter_mut() {
            check_received(&s.try_recv(&mut buf), buf.len(), max);
            check_received(&s.recv_timeout(&mut buf, TINY), buf.len(), max);
            let mut small = [0u8; 3];
            check_received(&s.try_recv(&mut small), 3, max);
            if let Ok(m) = s.try_recv_ref() {
                assert!(m.len() <= max, "borrowed topic message of {} bytes (max {max})", m.len());
                touch(&m);
            }
            let _ = (s.lag(), s.position());
            s.ack();
        }
    }
    drop(subs);
    let _ = t.remove_subscriber("fz");
    let _ = t.subscribers();
}

/// Every way to open segment `name` of `dir`; whatever opens is used.
fn open_every_way(dir: &Path, name: &str) {
    match Segment::open(dir, name, &Expect::default(), READY) {
        // Status::read would wait its own ready timeout (200 ms) for the same answer.
        Err(Error::Stale { .. } | Error::Timeout) => {}
        seg => {
            if let Ok(seg) = seg {
                let _ = Status::of(&seg);
            }
            let _ = Status::read(dir, name);
            let _ = status::gc_verdict(dir, name, false);
        }
    }
    let queue = QueueOptions::new().dir(dir).ready_timeout(READY).wait(WaitStrategy::Yield);
    if let Ok(q) = queue.open(name) {
        exercise_queue(&q);
    }
    let topic = TopicOptions::new().dir(dir).ready_timeout(READY).wait(WaitStrategy::Yield);
    if let Ok(t) = topic.open(name) {
        exercise_topic(&t);
    }
}

/// Unique segment names within one test binary.
fn next_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}
