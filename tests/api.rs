//! What users of crossbeam-channel, std mpsc and tokio expect of any channel: the other side
//! leaving is reported (`Disconnected`), any capacity from 1 is accepted.

use std::time::{Duration, Instant};

use shmq::{
    OpenError, QueueOptions, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Start, TopicOptions,
    TryRecvError, TrySendError, WaitStrategy,
};

const LONG: Duration = Duration::from_secs(10);

fn queue(dir: &tempfile::TempDir, spsc: bool) -> shmq::Queue {
    let o = QueueOptions::new().dir(dir.path()).capacity(4).max_msg_size(64);
    let o = if spsc { o.spsc() } else { o };
    o.create("q").expect("create")
}

#[test]
fn a_blocked_recv_returns_disconnected_after_the_last_producer_drops_and_everything_was_received() {
    for spsc in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, spsc);
        let mut rx = q.consumer().unwrap();
        let mut tx = q.producer().unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(b"last words").unwrap();
            // tx drops here: the only producer leaves.
        });
        let mut buf = [0u8; 64];
        let m = rx.recv_timeout(&mut buf, LONG).expect("the message sent before leaving");
        assert_eq!(&buf[..m.len], b"last words");
        let t = Instant::now();
        assert!(matches!(rx.recv_timeout(&mut buf, LONG), Err(RecvTimeoutError::Disconnected)), "spsc={spsc}");
        assert!(t.elapsed() < LONG / 2, "woke only after {:?}", t.elapsed());
        sender.join().unwrap();
        // It stays disconnected, also for try_recv (which checks every few polls).
        assert!(matches!(rx.recv_into(&mut buf), Err(RecvError::Disconnected)));
        let polls = (0..10_000).find(|_| matches!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected)));
        assert!(polls.is_some(), "try_recv never said Disconnected");
        for _ in 0..100 {
            assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected), "and then says it every time");
        }
        // A new producer connects it again.
        let mut again = q.producer().unwrap();
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        again.send(b"back").unwrap();
        assert_eq!(rx.try_recv(&mut buf).unwrap().len, 4);
    }
}

#[test]
fn a_producer_dropped_in_the_same_process_as_the_consumer_stops_counting() {
    // The producer and the consumer share one attachment (one queue handle): dropping the
    // producer must take the role off it.
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, false);
    let (tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let tx2 = q.producer().unwrap();
    drop(tx);
    let mut buf = [0u8; 64];
    assert!(
        matches!(rx.recv_timeout(&mut buf, Duration::from_millis(300)), Err(RecvTimeoutError::Timeout)),
        "a second producer handle is still there"
    );
    drop(tx2);
    assert!(matches!(rx.recv_timeout(&mut buf, LONG), Err(RecvTimeoutError::Disconnected)));
}

#[test]
fn a_consumer_that_starts_before_any_producer_waits_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, false);
    let mut rx = q.consumer().unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(250)), Err(RecvTimeoutError::Timeout)));
    for _ in 0..1000 {
        assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    }
    // A late producer connects it; and after it leaves, a new one connects it again.
    for round in 0..2u8 {
        let mut tx = q.producer().unwrap();
        tx.send(&[round]).unwrap();
        drop(tx);
        assert_eq!(rx.recv_timeout(&mut buf, LONG).unwrap().len, 1);
        assert_eq!(buf[0], round);
        assert!(matches!(rx.recv_timeout(&mut buf, LONG), Err(RecvTimeoutError::Disconnected)));
    }
}

#[test]
fn a_send_blocked_on_a_full_queue_returns_disconnected_when_the_last_consumer_drops() {
    for spsc in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, spsc);
        let rx = q.consumer().unwrap();
        let mut tx = q.producer().unwrap();
        for i in 0..4u8 {
            tx.send(&[i]).unwrap();
        }
        let leaver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(rx);
        });
        let t = Instant::now();
        assert!(matches!(tx.send_timeout(b"x", LONG), Err(SendTimeoutError::Disconnected)), "spsc={spsc}");
        assert!(t.elapsed() < LONG / 2, "woke only after {:?}", t.elapsed());
        leaver.join().unwrap();
        // The messages stay for a consumer that comes later.
        assert_eq!(q.len(), 4);
        let mut rx = q.consumer().unwrap();
        let mut buf = [0u8; 64];
        rx.recv_timeout(&mut buf, LONG).unwrap();
        assert_eq!(buf[0], 0);
        tx.send_timeout(b"x", LONG).expect("room again, and a consumer");
    }
}

#[test]
fn sending_to_a_queue_without_consumers_works_until_it_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, false);
    drop(q.consumer().unwrap()); // a consumer came and left
    let mut tx = q.producer().unwrap();
    for i in 0..4u8 {
        tx.try_send(&[i]).expect("room in the queue: kept for a later consumer");
    }
    let t = Instant::now();
    assert!(matches!(tx.send(b"x"), Err(SendError::Disconnected)));
    assert!(t.elapsed() < LONG / 2);
}

#[test]
fn one_of_two_producers_leaving_does_not_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, false);
    let q2 = QueueOptions::new().dir(dir.path()).open("q").unwrap();
    let mut rx = q.consumer().unwrap();
    let a = q.producer().unwrap();
    let mut b = q2.producer().unwrap();
    drop(a);
    let mut buf = [0u8; 64];
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(250)), Err(RecvTimeoutError::Timeout)));
    b.send(b"b").unwrap();
    assert_eq!(rx.recv_timeout(&mut buf, LONG).unwrap().len, 1);
}

#[test]
fn a_subscriber_gets_disconnected_after_every_publisher_left_and_its_iterator_ends() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(8).wait(WaitStrategy::Block).create("t").unwrap();
    let mut sub = t.subscriber().start(Start::Earliest).build().unwrap();
    let mut p = t.publisher().unwrap();
    for i in 0..3u8 {
        p.send(&[i]).unwrap();
    }
    drop(p);
    let got: Vec<Vec<u8>> = sub.iter().map(|m| m.expect("message").data).collect();
    assert_eq!(got, vec![vec![0], vec![1], vec![2]]);
    let mut buf = [0u8; 8];
    assert!(matches!(sub.recv_timeout(&mut buf, LONG), Err(RecvTimeoutError::Disconnected)));
}

#[test]
fn a_publisher_is_never_disconnected_by_subscribers_leaving() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(2).create("t").unwrap();
    drop(t.subscriber().build().unwrap());
    let mut p = t.publisher().unwrap();
    for i in 0..10u8 {
        p.try_send(&[i]).expect("no subscriber: publishing never blocks or fails");
    }
}

#[test]
fn any_capacity_from_1_is_rounded_up_to_a_power_of_two_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    for (asked, made) in [(1usize, 2usize), (2, 2), (3, 4), (1000, 1024), (1024, 1024)] {
        let name = format!("cap{asked}");
        let q = QueueOptions::new().dir(dir.path()).capacity(asked).create(&name).unwrap();
        assert_eq!(q.capacity(), made, "capacity({asked})");
        // Opening with the same request matches what was made.
        let again = QueueOptions::new().dir(dir.path()).capacity(asked).open(&name).unwrap();
        assert_eq!(again.capacity(), made);
        let mut tx = q.producer().unwrap();
        for _ in 0..made {
            tx.try_send(b"m").unwrap();
        }
        assert!(matches!(tx.try_send(b"m"), Err(TrySendError::Full)), "capacity({asked}) holds {made}");
        let t = TopicOptions::new().dir(dir.path()).capacity(asked).create(&format!("t{name}")).unwrap();
        assert_eq!(t.capacity(), made);
    }
    for bad in [0, (1 << 30) + 1] {
        let r = QueueOptions::new().dir(dir.path()).capacity(bad).create("bad");
        assert!(matches!(r, Err(OpenError::InvalidConfig(_))), "capacity({bad}): {r:?}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("bad")));
}

#[derive(Clone, Copy, Debug, PartialEq, shmq::bytemuck::Pod, shmq::bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    id: u64,
    price: f64,
}

/// The same calls, with the same shapes, on a queue and on a topic.
macro_rules! exercise_one_api {
    ($tx:expr, $rx:expr) => {{
        let (tx, rx) = (&mut $tx, &mut $rx);
        let mut buf = [0u8; 64];
        // copy, kind, try, timeout, deadline
        tx.send(b"a").unwrap();
        tx.send_kind(7, b"b").unwrap();
        tx.try_send(b"c").unwrap();
        tx.try_send_kind(8, b"d").unwrap();
        tx.send_timeout(b"e", LONG).unwrap();
        tx.send_kind_timeout(9, b"f", LONG).unwrap();
        tx.send_deadline(b"g", Instant::now() + LONG).unwrap();
        let r = rx.recv_into(&mut buf).unwrap();
        assert_eq!((&buf[..r.len], r.kind), (&b"a"[..], 0));
        let r = rx.try_recv(&mut buf).unwrap();
        assert_eq!((&buf[..r.len], r.kind), (&b"b"[..], 7));
        let r = rx.recv_timeout(&mut buf, LONG).unwrap();
        assert_eq!(&buf[..r.len], b"c");
        let r = rx.recv_deadline(&mut buf, Instant::now() + LONG).unwrap();
        assert_eq!((&buf[..r.len], r.kind), (&b"d"[..], 8));
        // in place
        let m = rx.recv_ref().unwrap();
        assert_eq!(&*m, b"e");
        drop(m);
        let m = rx.try_recv_ref().unwrap();
        assert_eq!((&*m, m.kind()), (&b"f"[..], 9));
        drop(m);
        assert_eq!(&*rx.recv_ref_timeout(LONG).unwrap(), b"g");
        // typed
        let t = Tick { id: 1, price: 2.5 };
        tx.send_value(&t).unwrap();
        tx.send_kind_value(3, &t).unwrap();
        tx.try_send_value(&t).unwrap();
        tx.send_value_timeout(&t, LONG).unwrap();
        assert_eq!(rx.recv_value::<Tick>().unwrap(), t);
        assert_eq!(rx.try_recv_value::<Tick>().unwrap(), t);
        assert_eq!(rx.recv_value_timeout::<Tick>(LONG).unwrap(), t);
        assert_eq!(rx.recv_value::<Tick>().unwrap(), t);
        assert!(matches!(rx.try_recv_value::<Tick>(), Err(TryRecvError::Empty)));
        // loans
        let mut loan = tx.loan().unwrap();
        loan[..2].copy_from_slice(b"L1");
        loan.set_kind(4);
        loan.commit(2).unwrap();
        let mut loan = tx.try_loan().unwrap();
        loan[..2].copy_from_slice(b"L2");
        loan.commit(2).unwrap();
        let loan = tx.loan_timeout(LONG).unwrap();
        drop(loan); // given back: nothing sent
                    // batches
        assert_eq!(tx.try_send_batch(&[b"x1", b"x2"]).unwrap(), 2);
        let mut got = Vec::new();
        let n = rx.try_recv_batch(10, |p, k| got.push((p.to_vec(), k))).unwrap();
        assert_eq!(n, 4);
        assert_eq!(got[0], (b"L1".to_vec(), 4));
        assert_eq!(got[1], (b"L2".to_vec(), 0));
        assert_eq!(got[3], (b"x2".to_vec(), 0));
        // iterators
        tx.send(b"i1").unwrap();
        tx.send_kind(5, b"i2").unwrap();
        let msgs: Vec<_> = rx.try_iter().map(|m| m.unwrap()).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[1].kind, msgs[1].data.as_slice()), (5, &b"i2"[..]));
        // errors of each operation
        assert!(rx.try_recv(&mut buf).unwrap_err().is_empty());
        assert!(rx.recv_timeout(&mut buf, Duration::from_millis(1)).unwrap_err().is_timeout());
        let big = [0u8; 65];
        assert_eq!(tx.send(&big), Err(SendError::MessageTooLarge { len: 65, max: 64 }));
        tx.send(b"too long for the buffer").unwrap();
        let mut small = [0u8; 4];
        assert_eq!(rx.try_recv(&mut small), Err(TryRecvError::BufferTooSmall { len: 4, needed: 23 }));
        assert_eq!(rx.try_recv(&mut buf).unwrap().len, 23, "not consumed by the failed receive");
        tx.send(b"xyz").unwrap();
        assert_eq!(rx.recv_value::<Tick>(), Err(RecvError::SizeMismatch { expected: 16, found: 3 }));
    }};
}

#[test]
fn queues_and_topics_have_the_same_message_methods_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    for spsc in [false, true] {
        let q = QueueOptions::new().dir(dir.path()).capacity(16).max_msg_size(64);
        let q = if spsc { q.spsc() } else { q }.create(if spsc { "spsc" } else { "mpmc" }).unwrap();
        let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
        exercise_one_api!(tx, rx);
    }
    let t = TopicOptions::new().dir(dir.path()).capacity(16).max_msg_size(64).create("topic").unwrap();
    let mut sub = t.subscriber().build().unwrap();
    let mut publisher = t.publisher().unwrap();
    exercise_one_api!(publisher, sub);
}

#[test]
fn every_operation_error_converts_into_error_with_the_same_text() {
    fn open_missing(dir: &std::path::Path) -> Result<(), shmq::Error> {
        QueueOptions::new().dir(dir).open("missing")?;
        Ok(())
    }
    let dir = tempfile::tempdir().unwrap();
    let e = open_missing(dir.path()).unwrap_err();
    assert!(matches!(e, shmq::Error::NotFound { .. }), "{e:?}");
    let q = QueueOptions::new().dir(dir.path()).capacity(2).create("q").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let mut buf = [0u8; 8];
    let empty = rx.try_recv(&mut buf).unwrap_err();
    let text = empty.to_string();
    let as_error: shmq::Error = empty.into();
    assert!(matches!(as_error, shmq::Error::Empty));
    assert_eq!(as_error.to_string(), text);
    tx.send(b"1").unwrap();
    tx.send(b"2").unwrap();
    let full = tx.try_send(b"3").unwrap_err();
    assert!(full.is_full() && !full.is_disconnected());
    assert!(matches!(shmq::Error::from(full), shmq::Error::Full));
    let timeout = tx.send_timeout(b"3", Duration::from_millis(1)).unwrap_err();
    assert!(matches!(shmq::Error::from(timeout), shmq::Error::Timeout));
}

#[test]
fn code_generic_over_sender_and_receiver_works_with_queues_and_topics() {
    fn relay(from: &mut impl shmq::Receiver, to: &mut impl shmq::Sender) -> usize {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while let Ok(m) = from.try_recv(&mut buf) {
            to.send_kind(m.kind, &buf[..m.len]).expect("relay");
            n += 1;
        }
        n
    }
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).capacity(8).max_msg_size(64).create("in").unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(8).max_msg_size(64).create("out").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let (mut publisher, mut sub) = (t.publisher().unwrap(), t.subscriber().build().unwrap());
    for i in 0..3u32 {
        tx.send_kind(i, &[i as u8]).unwrap();
    }
    assert_eq!(relay(&mut rx, &mut publisher), 3);
    let back = QueueOptions::new().dir(dir.path()).capacity(8).max_msg_size(64).create("back").unwrap();
    let (mut btx, mut brx) = (back.producer().unwrap(), back.consumer().unwrap());
    assert_eq!(relay(&mut sub, &mut btx), 3);
    let mut buf = [0u8; 64];
    for i in 0..3u32 {
        let m = brx.try_recv(&mut buf).unwrap();
        assert_eq!((m.kind, buf[0]), (i, i as u8));
    }
}

#[test]
fn an_error_returned_from_main_prints_what_to_do() {
    // `fn main() -> Result<(), E>` prints `Error: {e:?}`: the Debug text says what Display says.
    let dir = tempfile::tempdir().unwrap();
    let e = QueueOptions::new().dir(dir.path()).open("missing").unwrap_err();
    let debug = format!("{e:?}");
    assert!(debug.starts_with("NotFound: ") && debug.ends_with(&e.to_string()), "{debug}");
    let e = shmq::Error::from(e);
    assert_eq!(format!("{e:?}"), format!("NotFound: {e}"));
}
