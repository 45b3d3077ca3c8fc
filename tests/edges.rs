//! The edges of disconnect, of the durable ack on drop and of error conversion, where a review
//! found each of these failing: `Disconnected` is never said while a message waits behind a dead
//! peer's slot, blocking calls that start after the other side left return at once, batches
//! recover dead claimers as single calls do, a panic keeps its message unacknowledged.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shmq::{
    AckMode, QueueOptions, RecvError, SendError, Start, SubscriberMode, TopicOptions, TryRecvError, WaitStrategy,
};
use shmq_test_support::{env, report, sleep_until_killed, ChildProc, Role};

const LONG: Duration = Duration::from_secs(10);
const DIR_ENV: &str = "SHMQ_EDGES_DIR";

/// Child roles of this binary.
const ROLES: &[Role] = &[("edges-loaner", loaner), ("edges-reader", reader)];
shmq_test_support::children!(ROLES);

/// Child: opens MPMC queue "q" in `DIR_ENV`, takes a loan (its slot is LOANED under this
/// process's participant id), says so, and waits to be killed with the loan held.
fn loaner() {
    let q = QueueOptions::new().dir(env(DIR_ENV)).open("q").expect("open");
    let mut tx = q.producer().expect("producer");
    let loan = tx.loan().expect("loan");
    report("loaned");
    std::mem::forget(loan);
    sleep_until_killed(LONG);
}

/// Child: opens MPMC queue "q" in `DIR_ENV`, claims the next message in place (its slot is
/// READING under this process's participant id), says so, and waits to be killed holding it.
fn reader() {
    let q = QueueOptions::new().dir(env(DIR_ENV)).open("q").expect("open");
    let mut rx = q.consumer().expect("consumer");
    let m = rx.recv_ref().expect("recv_ref");
    report("reading");
    std::mem::forget(m);
    sleep_until_killed(LONG);
}

fn mpmc(dir: &tempfile::TempDir) -> shmq::Queue {
    QueueOptions::new().dir(dir.path()).capacity(4).max_msg_size(64).create("q").expect("create")
}

fn spawn_loaner(dir: &tempfile::TempDir) -> ChildProc {
    let mut c = ChildProc::spawn("edges-loaner", &[(DIR_ENV, dir.path().display().to_string())]);
    c.wait_line("loaned", Instant::now() + LONG);
    c
}

/// "A clean exit is noticed at once": a blocking receive that starts after the last producer
/// left must not sleep a whole slice (100 ms) before it says `Disconnected`. Same for a send
/// on a full queue after the last consumer left.
#[test]
fn blocking_calls_started_after_the_other_side_left_return_disconnected_at_once() {
    for spsc in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let o = QueueOptions::new().dir(dir.path()).capacity(2).max_msg_size(64).wait(WaitStrategy::Block);
        let q = if spsc { o.spsc() } else { o }.create("q").unwrap();
        let mut rx = q.consumer().unwrap();
        let mut tx = q.producer().unwrap();
        tx.send(b"m").unwrap();
        drop(tx);
        let mut buf = [0u8; 64];
        rx.recv_into(&mut buf).unwrap();
        let t = Instant::now();
        assert_eq!(rx.recv_into(&mut buf), Err(RecvError::Disconnected));
        let recv_took = t.elapsed();

        let mut tx = q.producer().unwrap();
        tx.send(b"1").unwrap();
        tx.send(b"2").unwrap();
        drop(rx);
        let t = Instant::now();
        assert_eq!(tx.send(b"3"), Err(SendError::Disconnected));
        let send_took = t.elapsed();
        assert!(
            recv_took < Duration::from_millis(30) && send_took < Duration::from_millis(30),
            "spsc={spsc}: recv took {recv_took:?}, send took {send_took:?} to notice a side that had already left"
        );
    }
}

/// A `try_recv` must not say `Disconnected` while a message can still be received: here the
/// head slot is a loan of a producer that died, and behind it waits a message of a producer
/// that left. Whether the dead loan is recovered depends on a rate-limited turn; the
/// disconnect check (`gone_seen` makes it immediate) looks once more without recovery.
#[test]
fn try_recv_does_not_say_disconnected_while_a_message_waits_behind_a_dead_loan() {
    let dir = tempfile::tempdir().unwrap();
    let q = mpmc(&dir);
    let mut rx = q.consumer().unwrap();
    let mut buf = [0u8; 64];
    // A producer came and left: try_recv learns the queue is disconnected (gone_seen).
    drop(q.producer().unwrap());
    let end = Instant::now() + LONG;
    while rx.try_recv(&mut buf) != Err(TryRecvError::Disconnected) {
        assert!(Instant::now() < end, "try_recv never said Disconnected");
    }
    // A producer process takes a loan at the head; another producer sends behind it and leaves.
    let mut child = spawn_loaner(&dir);
    let mut tx = q.producer().unwrap();
    tx.send(b"behind the loan").unwrap();
    drop(tx);
    // A receive while the loaner lives takes the 10 ms peer-check turn (and times out).
    assert!(rx.recv_timeout(&mut buf, Duration::ZERO).unwrap_err().is_timeout());
    let turn_taken = Instant::now();
    child.kill(); // SIGKILL and reap: the loan's holder is dead
    let killed_after = turn_taken.elapsed();
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let r = rx.try_recv(&mut buf);
        let done = r.is_ok();
        if seen.last() != Some(&r) {
            seen.push(r);
        }
        if done || Instant::now() >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        matches!(seen.last(), Some(Ok(m)) if &buf[..m.len] == b"behind the loan"),
        "the message behind the dead loan was never received: {seen:?}"
    );
    assert!(
        !seen.contains(&Err(TryRecvError::Disconnected)),
        "try_recv said Disconnected before the waiting message (kill took {killed_after:?}): {seen:?}"
    );
}

/// `try_recv_batch` never recovers a slot whose claimer died, so behind a dead loan it says
/// `Disconnected` for ever while a message waits (before this change it said 0 for ever).
#[test]
fn try_recv_batch_gets_the_message_behind_a_dead_loan_instead_of_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let q = mpmc(&dir);
    let mut rx = q.consumer().unwrap();
    let mut child = spawn_loaner(&dir);
    let mut tx = q.producer().unwrap();
    tx.send(b"behind the loan").unwrap();
    drop(tx);
    child.kill();
    let mut got = Vec::new();
    let mut disconnected = 0;
    let end = Instant::now() + Duration::from_secs(1);
    while got.is_empty() && Instant::now() < end {
        match rx.try_recv_batch(8, |p, _| got.push(p.to_vec())) {
            Ok(_) => {}
            Err(TryRecvError::Disconnected) => disconnected += 1,
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(
        got,
        vec![b"behind the loan".to_vec()],
        "try_recv_batch said Disconnected {disconnected} times; the message is still there: {:?}",
        rx.try_recv(&mut [0u8; 64]).map(|m| m.len)
    );
}

/// The ack on drop: "not while a panic unwinds (the message being handled did not get
/// processed): then, as after a crash, the last message received comes again". A handler that
/// panics while it holds the in-place guard, caught by the caller, leaves the subscriber to be
/// dropped normally: the message whose handling panicked is acknowledged and lost.
#[test]
fn a_message_whose_in_place_handler_panicked_is_not_acknowledged_by_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(8).max_msg_size(64).create("t").unwrap();
    let mut p = t.publisher().unwrap();
    let mut sub = t.subscriber().name("billing").start(Start::Earliest).build().unwrap();
    p.send(b"invoice").unwrap();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(AssertUnwindSafe(|| {
        let m = sub.recv_ref().unwrap();
        assert_eq!(&*m, b"invoice");
        panic!("the handler failed");
    }));
    std::panic::set_hook(prev);
    assert!(r.is_err());
    drop(sub);
    let mut sub = t.subscriber().name("billing").build().unwrap();
    let mut buf = [0u8; 64];
    let again = sub.try_recv(&mut buf).map(|m| buf[..m.len].to_vec());
    assert_eq!(again, Ok(b"invoice".to_vec()), "the message whose handling panicked was acknowledged");
}

/// The per-operation errors convert into `Error` "with the same text" (crate docs, test in
/// api.rs); `Unsupported` becomes `InvalidConfig`, whose text adds "invalid configuration: ".
#[test]
fn unsupported_converts_into_error_with_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(8).create("t").unwrap();
    let mut lossy = t.subscriber().mode(SubscriberMode::Lossy).ack(AckMode::OnNextReceive).build().unwrap();
    let e = lossy.try_recv_batch(4, |_, _| {}).unwrap_err();
    assert!(matches!(e, TryRecvError::Unsupported(_)), "{e:?}");
    let text = e.to_string();
    let as_error: shmq::Error = e.into();
    assert_eq!(as_error.to_string(), text);
}

/// The producer's batch has the same gap: a slot held by a consumer that died is never
/// recovered by `try_send_batch`, which says `Disconnected` for ever, while `try_send` on the
/// same queue recovers the slot and sends.
#[test]
fn try_send_batch_recovers_a_dead_readers_slot_as_try_send_does() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).capacity(2).max_msg_size(64).create("q").unwrap();
    let mut tx = q.producer().unwrap();
    tx.send(b"1").unwrap();
    tx.send(b"2").unwrap();
    let mut child = ChildProc::spawn("edges-reader", &[(DIR_ENV, dir.path().display().to_string())]);
    child.wait_line("reading", Instant::now() + LONG);
    child.kill(); // the only consumer died holding message 1: the queue is full but one slot is free
    let mut results = Vec::new();
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        let r = tx.try_send_batch(&[b"3"]);
        let sent = r == Ok(1);
        if results.last() != Some(&r) {
            results.push(r);
        }
        if sent {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(results.last(), Some(&Ok(1)), "try_send_batch never used the dead reader's slot: {results:?}");
}
