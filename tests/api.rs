//! What users of crossbeam-channel, std mpsc and tokio expect of any channel: the other side
//! leaving is reported (`Disconnected`), any capacity from 1 is accepted.

use std::time::{Duration, Instant};

use shmq::{Error, QueueOptions, Start, TopicOptions, WaitStrategy};

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
        assert!(matches!(rx.recv_timeout(&mut buf, LONG), Err(Error::Disconnected)), "spsc={spsc}");
        assert!(t.elapsed() < LONG / 2, "woke only after {:?}", t.elapsed());
        sender.join().unwrap();
        // It stays disconnected, also for try_recv (which checks every few polls).
        assert!(matches!(rx.recv_into(&mut buf), Err(Error::Disconnected)));
        let polls = (0..10_000).find(|_| matches!(rx.try_recv(&mut buf), Err(Error::Disconnected)));
        assert!(polls.is_some(), "try_recv never said Disconnected");
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
        matches!(rx.recv_timeout(&mut buf, Duration::from_millis(300)), Err(Error::Timeout)),
        "a second producer handle is still there"
    );
    drop(tx2);
    assert!(matches!(rx.recv_timeout(&mut buf, LONG), Err(Error::Disconnected)));
}

#[test]
fn a_consumer_that_starts_before_any_producer_waits_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, false);
    let mut rx = q.consumer().unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(250)), Err(Error::Timeout)));
    for _ in 0..1000 {
        assert!(matches!(rx.try_recv(&mut buf), Err(Error::Empty)));
    }
    // A late producer connects it; and after it leaves, a new one connects it again.
    for round in 0..2u8 {
        let mut tx = q.producer().unwrap();
        tx.send(&[round]).unwrap();
        drop(tx);
        assert_eq!(rx.recv_timeout(&mut buf, LONG).unwrap().len, 1);
        assert_eq!(buf[0], round);
        assert!(matches!(rx.recv_timeout(&mut buf, LONG), Err(Error::Disconnected)));
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
        assert!(matches!(tx.send_timeout(b"x", LONG), Err(Error::Disconnected)), "spsc={spsc}");
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
    assert!(matches!(tx.send(b"x"), Err(Error::Disconnected)));
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
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(250)), Err(Error::Timeout)));
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
        p.publish(&[i]).unwrap();
    }
    drop(p);
    let got: Vec<Vec<u8>> = sub.iter().map(|m| m.expect("message").data).collect();
    assert_eq!(got, vec![vec![0], vec![1], vec![2]]);
    let mut buf = [0u8; 8];
    assert!(matches!(sub.recv_timeout(&mut buf, LONG), Err(Error::Disconnected)));
}

#[test]
fn a_publisher_is_never_disconnected_by_subscribers_leaving() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(2).create("t").unwrap();
    drop(t.subscriber().build().unwrap());
    let mut p = t.publisher().unwrap();
    for i in 0..10u8 {
        p.try_publish(&[i]).expect("no subscriber: publishing never blocks or fails");
    }
}

#[test]
fn any_capacity_from_1_is_rounded_up_to_a_power_of_two_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    for (asked, made) in [(1u64, 2usize), (2, 2), (3, 4), (1000, 1024), (1024, 1024)] {
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
        assert!(matches!(tx.try_send(b"m"), Err(Error::Full)), "capacity({asked}) holds {made}");
        let t = TopicOptions::new().dir(dir.path()).capacity(asked).create(&format!("t{name}")).unwrap();
        assert_eq!(t.capacity(), made);
    }
    for bad in [0, (1 << 30) + 1] {
        let r = QueueOptions::new().dir(dir.path()).capacity(bad).create("bad");
        assert!(matches!(r, Err(Error::InvalidConfig(_))), "capacity({bad}): {r:?}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("bad")));
}
