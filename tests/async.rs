//! The `async` feature with tokio: futures woken by the reactor thread, `select!`, cancellation.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use shmq::{QueueOptions, RecvError, TopicOptions};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_async_waits_for_a_message_sent_later_from_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).capacity(4).create("q").unwrap();
    let mut rx = q.consumer().unwrap();
    let qc = q.clone();
    let sender = std::thread::spawn(move || {
        let mut tx = qc.producer().unwrap();
        for i in 0..1000u32 {
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2)); // let the receiver go pending
            }
            tx.send(&i.to_le_bytes()).unwrap();
        }
        tx
    });
    let mut buf = [0u8; 16];
    for i in 0..1000u32 {
        let m = tokio::time::timeout(LONG, rx.recv_async(&mut buf)).await.expect("woken").unwrap();
        assert_eq!(buf[..m.len], i.to_le_bytes());
    }
    let tx = sender.join().unwrap();
    drop(tx);
    // Every sender left and everything was received.
    let r = tokio::time::timeout(LONG, rx.recv_async(&mut buf)).await.expect("told within 20 s");
    assert_eq!(r, Err(RecvError::Disconnected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_async_waits_for_space_in_a_full_queue() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).capacity(2).create("q").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    tx.send(b"1").unwrap();
    tx.send(b"2").unwrap();
    let drainer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let mut got = Vec::new();
        for _ in 0..3 {
            let m = rx.recv_timeout(&mut buf, LONG).unwrap();
            got.push(buf[..m.len].to_vec());
        }
        got
    });
    let t = Instant::now();
    tokio::time::timeout(LONG, tx.send_async(b"3")).await.expect("woken").unwrap();
    assert!(t.elapsed() >= Duration::from_millis(40), "sent into a full queue after {:?}", t.elapsed());
    assert_eq!(drainer.join().unwrap(), [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_over_two_subscribers_and_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let a = TopicOptions::new().dir(dir.path()).create("a").unwrap();
    let b = TopicOptions::new().dir(dir.path()).create("b").unwrap();
    let (mut sa, mut sb) = (a.subscriber().build().unwrap(), b.subscriber().build().unwrap());
    let (mut pa, mut pb) = (a.publisher().unwrap(), b.publisher().unwrap());
    let feeder = std::thread::spawn(move || {
        for i in 0..50u32 {
            std::thread::sleep(Duration::from_micros(500));
            if i % 2 == 0 { pa.send(&i.to_le_bytes()) } else { pb.send(&i.to_le_bytes()) }.unwrap();
        }
        (pa, pb)
    });
    let (mut from_a, mut from_b, mut timeouts) = (Vec::new(), Vec::new(), 0);
    let (mut ba, mut bb) = ([0u8; 8], [0u8; 8]);
    while from_a.len() + from_b.len() < 50 {
        tokio::select! {
            r = sa.recv_async(&mut ba) => from_a.push(u32::from_le_bytes(ba[..r.unwrap().len].try_into().unwrap())),
            r = sb.recv_async(&mut bb) => from_b.push(u32::from_le_bytes(bb[..r.unwrap().len].try_into().unwrap())),
            _ = tokio::time::sleep(Duration::from_millis(5)) => timeouts += 1,
        }
    }
    let _publishers = feeder.join().unwrap();
    // Every message once, in order, whichever branch lost each race (dropped futures took nothing).
    assert_eq!(from_a, (0..50).step_by(2).collect::<Vec<u32>>());
    assert_eq!(from_b, (1..50).step_by(2).collect::<Vec<u32>>());
    // Nothing more is ready: the timeout branch wins.
    tokio::select! {
        _ = sa.recv_async(&mut ba) => panic!("nothing was published"),
        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    eprintln!("{timeouts} timeouts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_receive_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).create("q").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let mut buf = [0u8; 16];
    for i in 0..200u32 {
        // Pending, then dropped by the timeout.
        assert!(tokio::time::timeout(Duration::from_micros(200), rx.recv_async(&mut buf)).await.is_err());
        tx.send(&i.to_le_bytes()).unwrap();
        let m = tokio::time::timeout(LONG, rx.recv_async(&mut buf)).await.expect("woken").unwrap();
        assert_eq!(buf[..m.len], i.to_le_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_stream_yields_every_message_and_ends_when_publishers_leave() {
    let dir = tempfile::tempdir().unwrap();
    let t = TopicOptions::new().dir(dir.path()).capacity(16).create("t").unwrap();
    let stream = t.subscriber().build().unwrap().into_stream();
    let tc = t.clone();
    let publisher = std::thread::spawn(move || {
        let mut p = tc.publisher().unwrap();
        for i in 0..500u32 {
            p.send_kind(i, &i.to_le_bytes()).unwrap();
        }
    });
    let got: Vec<_> = tokio::time::timeout(LONG, stream.collect::<Vec<_>>()).await.expect("the stream ended");
    publisher.join().unwrap();
    assert_eq!(got.len(), 500);
    for (i, m) in got.into_iter().enumerate() {
        let m = m.unwrap();
        assert_eq!((m.kind, &m.data[..]), (i as u32, &(i as u32).to_le_bytes()[..]));
    }
}

/// The reactor's handshake under fire: two tasks ping-pong through two queues with
/// `recv_async`, on two runtimes (two threads), so that every message races a future going
/// pending. The reactor's own sleep is stretched to 10 s, so a lost wake-up would stall a
/// message that long: any message slower than 2.5 s fails the test. (This is the only test of
/// the binary that changes the reactor's slice; the others do not depend on it.)
#[test]
fn no_wake_up_is_lost_between_a_futures_last_look_and_pending() {
    shmq::future::set_reactor_slice_for_tests(Duration::from_secs(10));
    let rounds: u64 = std::env::var("SHMQ_WAKE_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let ping = QueueOptions::new().dir(dir.path()).capacity(2).spsc().create("ping").unwrap();
    let pong = QueueOptions::new().dir(dir.path()).capacity(2).spsc().create("pong").unwrap();
    let watchdog = Duration::from_millis(2500);
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (pi, po) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        rt().block_on(async move {
            let (mut rx, mut tx) = (pi.consumer().unwrap(), po.producer().unwrap());
            let mut buf = [0u8; 8];
            for i in 0..rounds {
                let t = Instant::now();
                let m = rx.recv_async(&mut buf).await.unwrap();
                assert!(t.elapsed() < watchdog, "echo: ping {i} took {:?}: a lost wake-up", t.elapsed());
                assert_eq!(buf[..m.len], i.to_le_bytes());
                tx.send_async(&i.to_le_bytes()).await.unwrap();
            }
        })
    });
    rt().block_on(async move {
        let (mut tx, mut rx) = (ping.producer().unwrap(), pong.consumer().unwrap());
        let mut buf = [0u8; 8];
        for i in 0..rounds {
            tx.send_async(&i.to_le_bytes()).await.unwrap();
            let t = Instant::now();
            let m = rx.recv_async(&mut buf).await.unwrap();
            assert!(t.elapsed() < watchdog, "requester: pong {i} took {:?}: a lost wake-up", t.elapsed());
            assert_eq!(buf[..m.len], i.to_le_bytes());
        }
    });
    echo.join().unwrap();
}
