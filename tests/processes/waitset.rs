//! One thread waits on a `WaitSet` over eight streams, each fed by its own producer process:
//! 1,000,000 messages in all, every one exactly once, in each stream's order; then, with every
//! producer still attached and nothing coming, the waiting thread uses (almost) no CPU.

use std::time::{Duration, Instant};

use shmq::waitset::{Key, Mechanism, WaitSet};
use shmq::{Consumer, QueueKind, QueueOptions, Start, Subscriber, TopicOptions, TryRecvError};
use shmq_test_support::{report, sleep_until_killed, thread_cpu, ChildProc, Role, Scene};

use crate::{DIR_ENV, NAME_ENV};

/// The roles of this module's children.
pub const ROLES: &[Role] = &[("waitset feeder", feeder)];

const STREAMS: usize = 8;
const TOTAL: u64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(240);
const WATCHDOG: Duration = Duration::from_secs(300);
/// Environment of a feeder: its stream's number, how many messages, and whether it is a topic.
const INDEX_ENV: &str = "SHMQ_TEST_STREAM";
const COUNT_ENV: &str = "SHMQ_TEST_COUNT";
const TOPIC_ENV: &str = "SHMQ_TEST_TOPIC";

/// Sends `COUNT` stamped messages (`stream << 32 | n`) on its stream, pausing now and then so
/// that the waiter falls asleep, then says "done" and stays attached until killed.
fn feeder() {
    let dir = shmq_test_support::env(DIR_ENV);
    let name = shmq_test_support::env(NAME_ENV);
    let stream: u64 = shmq_test_support::env(INDEX_ENV).parse().unwrap();
    let count: u64 = shmq_test_support::env(COUNT_ENV).parse().unwrap();
    let stamp = |n: u64| ((stream << 32) | n).to_le_bytes();
    if shmq_test_support::env(TOPIC_ENV) == "1" {
        let t = TopicOptions::new().dir(&dir).open(&name).expect("feeder opens its topic");
        let mut p = t.publisher().expect("publisher");
        report("ready");
        for n in 0..count {
            p.send_timeout(&stamp(n), LIMIT).expect("publish");
            if n % 4096 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        report("done");
        sleep_until_killed(LIMIT); // still attached: the stream is idle, not disconnected
    } else {
        let q = QueueOptions::new().dir(&dir).open(&name).expect("feeder opens its queue");
        let mut tx = q.producer().expect("producer");
        report("ready");
        for n in 0..count {
            tx.send_timeout(&stamp(n), LIMIT).expect("send");
            if n % 4096 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        report("done");
        sleep_until_killed(LIMIT);
    }
}

#[derive(Clone, Copy)]
enum K {
    Q(Key<Consumer>),
    T(Key<Subscriber>),
}

#[test]
fn one_thread_on_a_waitset_takes_a_million_messages_from_eight_producer_processes() {
    let _heavy = shmq_test_support::heavy();
    let scene = Scene::new("waitset-8", LIMIT, WATCHDOG);
    let per = TOTAL / STREAMS as u64;
    let mut ws = WaitSet::new();
    let mut keys = Vec::new();
    let mut children: Vec<ChildProc> = Vec::new();
    for i in 0..STREAMS {
        let name = format!("{}-{i}", scene.name());
        let topic = i % 4 == 3;
        let key = if topic {
            let t = TopicOptions::new().dir(scene.path()).capacity(1024).create(&name).unwrap();
            K::T(ws.add(t.subscriber().start(Start::Earliest).build().unwrap()))
        } else {
            let kind = if i % 2 == 0 { QueueKind::Spsc } else { QueueKind::Mpmc };
            let q = QueueOptions::new().dir(scene.path()).capacity(1024).kind(kind).create(&name).unwrap();
            K::Q(ws.add(q.consumer().unwrap()))
        };
        keys.push((key.token_of(), key));
        let envs = [
            (DIR_ENV, scene.path().display().to_string()),
            (NAME_ENV, name),
            (INDEX_ENV, i.to_string()),
            (COUNT_ENV, per.to_string()),
            (TOPIC_ENV, if topic { "1" } else { "0" }.to_string()),
        ];
        children.push(ChildProc::spawn("waitset feeder", &envs));
    }
    for c in &mut children {
        c.wait_line("ready", scene.deadline());
    }
    let expect = if shmq::waitset::futex_waitv_supported() { Mechanism::FutexWaitv } else { Mechanism::Fallback };
    assert_eq!(ws.mechanism(), expect);
    let mut next = [0u64; STREAMS];
    let (mut ready, mut buf) = (Vec::with_capacity(STREAMS), [0u8; 64]);
    let (mut got, mut waits) = (0u64, 0u64);
    let t = Instant::now();
    while got < per * STREAMS as u64 {
        ws.wait_timeout(&mut ready, Duration::from_secs(30)).expect("a message within 30 s: a lost wake-up otherwise");
        waits += 1;
        for &token in &ready {
            let (_, key) = keys.iter().find(|(t, _)| *t == token).copied().expect("a stream's token");
            loop {
                let r = match key {
                    K::Q(k) => ws[k].try_recv(&mut buf),
                    K::T(k) => ws[k].try_recv(&mut buf),
                };
                match r {
                    Ok(m) => {
                        let v = u64::from_le_bytes(buf[..m.len].try_into().unwrap());
                        let (stream, n) = ((v >> 32) as usize, v & 0xFFFF_FFFF);
                        assert!(stream < STREAMS, "stream {stream}");
                        assert_eq!(n, next[stream], "stream {stream}: out of order, lost or duplicated");
                        next[stream] += 1;
                        got += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(e) => panic!("receive: {e}"),
                }
            }
        }
    }
    let elapsed = t.elapsed();
    assert!(next.iter().all(|&n| n == per), "{next:?}");
    for c in &mut children {
        c.wait_line("done", scene.deadline());
    }
    // Idle: every producer still attached, nothing coming.
    let cpu = thread_cpu();
    let idle = Instant::now();
    assert!(ws.wait_timeout(&mut ready, Duration::from_secs(1)).unwrap_err().is_timeout(), "{ready:?}");
    let (used, waited) = (thread_cpu() - cpu, idle.elapsed());
    eprintln!(
        "waitset-8 ({}): {got} messages from {STREAMS} processes in {elapsed:?} ({waits} waits); idle for {waited:?}: {used:?} of CPU",
        ws.mechanism().name()
    );
    if ws.mechanism() == Mechanism::FutexWaitv {
        assert!(used < Duration::from_millis(10), "{used:?} of CPU while idle for {waited:?}");
    }
    for c in &mut children {
        c.kill();
    }
}

impl K {
    fn token_of(&self) -> shmq::waitset::Token {
        match self {
            K::Q(k) => k.token(),
            K::T(k) => k.token(),
        }
    }
}
