//! `WaitSet`: one thread waiting on many queues, topics and timers, in the kernel while idle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shmq::waitset::{Key, Mechanism, Token, WaitSet};
use shmq::{Consumer, Subscriber};
use shmq::{QueueKind, QueueOptions, Start, TopicOptions, TryRecvError};
use shmq_test_support::thread_cpu;

const LONG: Duration = Duration::from_secs(20);

#[test]
fn ready_sources_are_reported_and_the_wait_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).create("orders").unwrap();
    let t = TopicOptions::new().dir(dir.path()).create("prices").unwrap();
    let mut ws = WaitSet::new();
    let orders = ws.add(q.consumer().unwrap());
    let prices = ws.add(t.subscriber().build().unwrap());
    let mut ready = Vec::new();
    // Nothing yet.
    assert!(ws.wait_timeout(&mut ready, Duration::from_millis(30)).unwrap_err().is_timeout());
    assert!(ready.is_empty());
    // Senders stay attached: a stream whose senders all left is ready too (see below).
    let (mut tx, mut publisher) = (q.producer().unwrap(), t.publisher().unwrap());
    tx.send(b"buy").unwrap();
    ws.wait_timeout(&mut ready, LONG).unwrap();
    assert_eq!(ready, vec![orders.token()]);
    // Waiting again reports it again: the wait took nothing.
    ws.wait(&mut ready).unwrap();
    assert_eq!(ready, vec![orders.token()]);
    let mut buf = [0u8; 64];
    let m = ws[orders].try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..m.len], b"buy");
    publisher.send(b"42").unwrap();
    ws.wait_timeout(&mut ready, LONG).unwrap();
    assert!(ready.len() == 1 && ready[0] == prices, "{ready:?}");
    assert_eq!(ws[prices].try_recv(&mut buf).unwrap().len, 2);
    assert!(ws.wait_timeout(&mut ready, Duration::from_millis(30)).unwrap_err().is_timeout());
    // A source taken back is not waited on any more.
    let sub = ws.remove(prices);
    drop(sub);
    assert_eq!(ws.len(), 1);
}

#[test]
fn deadlines_and_intervals_are_ready_when_due() {
    let mut ws = WaitSet::new();
    let start = Instant::now();
    let tick = ws.add_interval(Duration::from_millis(20));
    let mut ready = Vec::new();
    for n in 1..=3u32 {
        ws.wait(&mut ready).unwrap();
        assert_eq!(ready, vec![tick.token()]);
        assert!(start.elapsed() >= Duration::from_millis(20) * n, "tick {n} at {:?}", start.elapsed());
    }
    ws.remove(tick);
    let at = Instant::now() + Duration::from_millis(30);
    let d = ws.add_deadline(at);
    ws.wait(&mut ready).unwrap();
    assert!(ready == vec![d.token()] && Instant::now() >= at);
    // A deadline stays ready until removed.
    ws.wait_timeout(&mut ready, Duration::ZERO).unwrap();
    assert_eq!(ready, vec![d.token()]);
}

#[test]
fn a_stream_whose_senders_left_is_ready_and_its_receive_says_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).create("q").unwrap();
    let mut ws = WaitSet::new();
    let key = ws.add(q.consumer().unwrap());
    let tx = q.producer().unwrap();
    let leaver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(tx);
    });
    let mut ready = Vec::new();
    let t = Instant::now();
    ws.wait_timeout(&mut ready, LONG).unwrap();
    assert!(t.elapsed() < LONG / 2 && ready == vec![key.token()], "{ready:?} after {:?}", t.elapsed());
    let mut buf = [0u8; 8];
    assert_eq!(ws[key].try_recv(&mut buf), Err(TryRecvError::Disconnected));
    leaver.join().unwrap();
}

/// The system call a thread of this process is in now (`/proc/self/task/TID/syscall`).
fn syscall_of(tid: libc::pid_t) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Among many streams, one whose sender leaves while the set sleeps: the wake-up is understood
/// at once. The set checks every stream's peers only every `max_slice` here (20 s), so only
/// the check of the streams whose word moved during the sleep can report it in time. (Without
/// `futex_waitv` the set wakes every millisecond and a departure can fall between two sleeps,
/// where only the periodic check sees it: that kernel gets the default set, checked every
/// 10 ms.)
#[test]
fn a_departure_that_wakes_the_set_is_understood_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let waitv = shmq::waitset::futex_waitv_supported();
    let mut ws = if waitv { WaitSet::new().sleep_at_once(LONG) } else { WaitSet::new() };
    let mut senders = Vec::new();
    let mut keys = Vec::new();
    for i in 0..16 {
        let q = QueueOptions::new().dir(dir.path()).create(&format!("q{i}")).unwrap();
        keys.push(ws.add(q.consumer().unwrap()));
        senders.push(q.producer().unwrap());
    }
    let leaving = senders.remove(9);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let asleep = if waitv { libc::SYS_futex_waitv } else { libc::SYS_futex };
    let leaver = std::thread::spawn(move || {
        // Until the waiter sleeps, then leave.
        let t = Instant::now();
        while syscall_of(tid) != Some(asleep) {
            assert!(t.elapsed() < LONG, "the waiter never slept");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(leaving);
        Instant::now()
    });
    let mut ready = Vec::new();
    ws.wait_timeout(&mut ready, LONG * 2).unwrap();
    let left = leaver.join().unwrap();
    assert!(left.elapsed() < LONG / 4, "the departure was understood {:?} after it", left.elapsed());
    assert_eq!(ready, vec![keys[9].token()]);
    let mut buf = [0u8; 8];
    assert_eq!(ws[keys[9]].try_recv(&mut buf), Err(TryRecvError::Disconnected));
    assert_eq!(ws[keys[3]].try_recv(&mut buf), Err(TryRecvError::Empty));
}

#[derive(Clone, Copy)]
enum Stream {
    Queue(Key<Consumer>),
    Topic(Key<Subscriber>),
}

/// Eight streams (SPSC and MPMC queues, topics), one sender thread each with pauses long
/// enough for the waiter to fall asleep; one thread waits on all of them: every message
/// exactly once, in each stream's order.
fn many_streams(ws: WaitSet, expect: Mechanism) {
    const STREAMS: usize = 8;
    const PER_STREAM: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let mut ws = ws;
    let mut senders = Vec::new();
    let mut keys = HashMap::new();
    for i in 0..STREAMS {
        let name = format!("s{i}");
        let pause = Duration::from_micros(if i % 2 == 0 { 0 } else { 300 });
        if i % 3 == 2 {
            let t = TopicOptions::new().dir(dir.path()).capacity(64).create(&name).unwrap();
            let sub = t.subscriber().start(Start::Earliest).build().unwrap();
            let k = ws.add(sub);
            keys.insert(k.token(), (i, Stream::Topic(k)));
            senders.push(std::thread::spawn(move || {
                let mut p = t.publisher().unwrap();
                for n in 0..PER_STREAM {
                    p.send_timeout(&n.to_le_bytes(), LONG).unwrap();
                    if n % 64 == 0 {
                        std::thread::sleep(pause);
                    }
                }
            }));
        } else {
            let kind = if i % 3 == 0 { QueueKind::Spsc } else { QueueKind::Mpmc };
            let q = QueueOptions::new().dir(dir.path()).capacity(64).kind(kind).create(&name).unwrap();
            let k = ws.add(q.consumer().unwrap());
            keys.insert(k.token(), (i, Stream::Queue(k)));
            senders.push(std::thread::spawn(move || {
                let mut p = q.producer().unwrap();
                for n in 0..PER_STREAM {
                    p.send_timeout(&n.to_le_bytes(), LONG).unwrap();
                    if n % 64 == 0 {
                        std::thread::sleep(pause);
                    }
                }
            }));
        }
    }
    assert_eq!(ws.mechanism(), expect);
    let mut next = [0u64; STREAMS];
    let mut ready: Vec<Token> = Vec::with_capacity(STREAMS);
    let mut buf = [0u8; 64];
    let mut waits = 0u64;
    while next.iter().any(|&n| n < PER_STREAM) {
        ws.wait_timeout(&mut ready, LONG).expect("a message within 20 s: a lost wake-up otherwise");
        waits += 1;
        for &token in &ready {
            let (i, key) = keys[&token];
            loop {
                let r = match key {
                    Stream::Topic(k) => ws[k].try_recv(&mut buf),
                    Stream::Queue(k) => ws[k].try_recv(&mut buf),
                };
                match r {
                    Ok(m) => {
                        let n = u64::from_le_bytes(buf[..m.len].try_into().unwrap());
                        assert_eq!(n, next[i], "stream {i}: out of order or duplicated");
                        next[i] += 1;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    Err(e) => panic!("stream {i}: {e}"),
                }
            }
        }
    }
    for s in senders {
        s.join().unwrap();
    }
    eprintln!("{expect:?}: {} messages in {waits} waits", STREAMS as u64 * PER_STREAM);
}

#[test]
fn one_thread_waits_on_eight_streams_and_gets_every_message_once_in_order() {
    many_streams(
        WaitSet::new(),
        if shmq::waitset::futex_waitv_supported() { Mechanism::FutexWaitv } else { Mechanism::Fallback },
    );
}

#[test]
fn the_fallback_also_gets_every_message_once_in_order() {
    many_streams(WaitSet::new().with_fallback(), Mechanism::Fallback);
}

#[test]
fn an_idle_wait_on_eight_streams_sleeps_in_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = WaitSet::new();
    let mut handles = Vec::new();
    for i in 0..8 {
        let q = QueueOptions::new().dir(dir.path()).create(&format!("q{i}")).unwrap();
        ws.add(q.consumer().unwrap());
        handles.push(q.producer().unwrap()); // senders stay, so nothing is disconnected
    }
    let cpu = thread_cpu();
    let t = Instant::now();
    let mut ready = Vec::new();
    assert!(ws.wait_timeout(&mut ready, Duration::from_secs(1)).unwrap_err().is_timeout());
    let (used, waited) = (thread_cpu() - cpu, t.elapsed());
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    eprintln!("{:?}: {used:?} of CPU in {waited:?}", ws.mechanism());
    if ws.mechanism() == Mechanism::FutexWaitv {
        assert!(used < Duration::from_millis(10), "{used:?} of CPU while idle for {waited:?}");
    }
}

#[test]
fn a_waker_ends_a_wait_from_another_thread() {
    let mut ws = WaitSet::new();
    let (key, waker) = ws.add_waker();
    let t = Instant::now();
    let w = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake();
    });
    let mut ready = Vec::new();
    ws.wait_timeout(&mut ready, LONG).unwrap();
    assert!(ready == vec![key.token()] && t.elapsed() < LONG / 2, "{ready:?} after {:?}", t.elapsed());
    // Reported once per wake.
    assert!(ws.wait_timeout(&mut ready, Duration::from_millis(20)).unwrap_err().is_timeout());
    w.join().unwrap();
}

mod dispatcher {
    use super::*;
    use shmq::dispatch::{DispatchErrorKind, Dispatcher};
    use std::sync::{Arc, Mutex};

    #[test]
    fn handlers_run_per_message_errors_go_to_the_callback_and_another_thread_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let q = QueueOptions::new().dir(dir.path()).create("jobs").unwrap();
        let t = TopicOptions::new().dir(dir.path()).create("news").unwrap();
        let (jobs, news, errors, ticks) =
            (Mutex::new(Vec::new()), Mutex::new(Vec::new()), Mutex::new(Vec::new()), Mutex::new(0));
        let mut d = Dispatcher::new()
            .on(q.consumer().unwrap(), |m, kind| {
                jobs.lock().unwrap().push((m.to_vec(), kind));
                Ok(())
            })
            .on(t.subscriber().build().unwrap(), |m, _| {
                news.lock().unwrap().push(m.to_vec());
                if m == b"bad" {
                    return Err("cannot handle bad news".into());
                }
                Ok(())
            })
            .every(Duration::from_millis(5), || {
                *ticks.lock().unwrap() += 1;
                Ok(())
            })
            .on_error(|e| {
                errors.lock().unwrap().push((
                    e.stream.clone(),
                    e.to_string(),
                    matches!(e.kind, DispatchErrorKind::Handler { .. }),
                ))
            });
        let stop = d.stopper();
        let (qc, tc) = (q.clone(), t.clone());
        let feeder = std::thread::spawn(move || {
            let (mut tx, mut p) = (qc.producer().unwrap(), tc.publisher().unwrap());
            for i in 0..100u32 {
                tx.send_kind(i, &i.to_le_bytes()).unwrap();
            }
            p.send(b"good").unwrap();
            p.send(b"bad").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            stop.stop();
            (tx, p) // kept until stopped: the streams do not end on their own
        });
        d.run().unwrap();
        let _senders = feeder.join().unwrap();
        drop(d);
        let jobs = jobs.into_inner().unwrap();
        assert_eq!(jobs.len(), 100);
        assert!(jobs.iter().enumerate().all(|(i, (m, k))| *k == i as u32 && m[..] == (i as u32).to_le_bytes()));
        assert_eq!(news.into_inner().unwrap(), [b"good".to_vec(), b"bad".to_vec()]);
        let errors = errors.into_inner().unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].0 == "news" && errors[0].1.contains("cannot handle bad news") && errors[0].2, "{errors:?}");
        assert!(*ticks.lock().unwrap() >= 5, "the 5 ms timer ran {} times in 100 ms", ticks.lock().unwrap());
    }

    #[test]
    fn run_returns_when_every_stream_has_ended_and_no_timer_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let q = QueueOptions::new().dir(dir.path()).create("q").unwrap();
        let count = Arc::new(Mutex::new(0));
        let c = count.clone();
        let mut d = Dispatcher::new().on(q.consumer().unwrap(), move |_, _| {
            *c.lock().unwrap() += 1;
            Ok(())
        });
        let qc = q.clone();
        let sender = std::thread::spawn(move || {
            let mut tx = qc.producer().unwrap();
            for _ in 0..1000 {
                tx.send(b"x").unwrap();
            }
        });
        let t = Instant::now();
        d.run().unwrap();
        sender.join().unwrap();
        assert_eq!(*count.lock().unwrap(), 1000);
        assert!(t.elapsed() < LONG);
    }
}

/// The handshake under fire: two threads ping-pong through two queues, each waiting on a
/// `WaitSet` that sleeps at once (no spinning), so that every message races a sleep. A lost
/// wake-up would stall its waiter to the end of its 5 s wait (the slice is 10 s): any message
/// that takes over 2.5 s fails the test. `SHMQ_WAKE_CYCLES` sets the number of round trips (default 50,000; the
/// README quotes a run of 10,000,000).
#[test]
fn no_wake_up_is_lost_between_a_waiters_last_look_and_its_sleep() {
    if !shmq::waitset::futex_waitv_supported() {
        eprintln!("skipped: no futex_waitv (the fallback sleeps in 1 ms slices, which would hide a lost wake-up)");
        return;
    }
    let cycles: u64 = std::env::var("SHMQ_WAKE_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let dir = tempfile::tempdir().unwrap();
    let ping = QueueOptions::new().dir(dir.path()).capacity(2).spsc().create("ping").unwrap();
    let pong = QueueOptions::new().dir(dir.path()).capacity(2).spsc().create("pong").unwrap();
    let watchdog = Duration::from_secs(5);
    let (pi, po) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        let mut ws = WaitSet::new().sleep_at_once(Duration::from_secs(10));
        let rx = ws.add(pi.consumer().unwrap());
        let mut tx = po.producer().unwrap();
        let (mut ready, mut buf) = (Vec::new(), [0u8; 8]);
        for i in 0..cycles {
            let t = Instant::now();
            loop {
                // A lost wake-up sleeps to the end of the wait (5 s) and then finds the message.
                let _ = ws.wait_timeout(&mut ready, watchdog);
                assert!(t.elapsed() < watchdog / 2, "echo: ping {i} took {:?}: a lost wake-up", t.elapsed());
                if ws[rx].try_recv(&mut buf).is_ok() {
                    break;
                }
            }
            assert_eq!(u64::from_le_bytes(buf), i);
            tx.send(&i.to_le_bytes()).unwrap();
        }
    });
    let mut ws = WaitSet::new().sleep_at_once(Duration::from_secs(10));
    let rx = ws.add(pong.consumer().unwrap());
    let mut tx = ping.producer().unwrap();
    let (mut ready, mut buf) = (Vec::new(), [0u8; 8]);
    let t = Instant::now();
    for i in 0..cycles {
        tx.send(&i.to_le_bytes()).unwrap();
        let t = Instant::now();
        loop {
            let _ = ws.wait_timeout(&mut ready, watchdog);
            assert!(t.elapsed() < watchdog / 2, "requester: pong {i} took {:?}: a lost wake-up", t.elapsed());
            if ws[rx].try_recv(&mut buf).is_ok() {
                break;
            }
        }
        assert_eq!(u64::from_le_bytes(buf), i);
    }
    echo.join().unwrap();
    eprintln!("{cycles} round trips, each side asleep before each message, in {:?}", t.elapsed());
}

#[test]
fn debug_output_says_which_mechanism_sleeps() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).create("q").unwrap();
    let mut ws = WaitSet::new();
    ws.add(q.consumer().unwrap());
    let text = format!("{ws:?}");
    assert!(text.contains(&format!("mechanism: {:?}", ws.mechanism().name())), "{text}");
    let fallback = format!("{:?}", WaitSet::new().with_fallback());
    assert!(fallback.contains("fallback (1 ms slices)"), "{fallback}");
}
