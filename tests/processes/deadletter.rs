//! Dead letters across processes: consumers SIGKILLed holding a poison message until it lands in
//! the dead-letter queue, and consumers SIGKILLed at random while they reject every tenth
//! message of a producer process.
//!
//! Nothing is lost and nothing doubled: every good message is acknowledged (twice at most for
//! the message a killed consumer held, once per kill), every rejected one is in the dead-letter
//! queue exactly once, after exactly `max_deliveries` deliveries.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmq::deadletter::{DeadLetter, RejectError, Rejected};
use shmq::{QueueOptions, RecvTimeoutError};
use shmq_test_support::{env, env_u64, report, sleep_until_killed, ChildProc, Role, Scene};

use crate::{DIR_ENV, NAME_ENV};

/// The roles of this module's children.
pub const ROLES: &[Role] = &[
    ("deadletter poison consumer", poison_consumer),
    ("deadletter producer", producer),
    ("deadletter rejecter", rejecter),
];

const LIMIT: Duration = Duration::from_secs(120);
const WATCHDOG: Duration = Duration::from_secs(180);
/// The poison message's kind.
const POISON_KIND: u32 = 9;
/// The kind of the message that tells a poison consumer to leave.
const STOP_KIND: u32 = 2;
/// Good messages behind the poison one.
const GOOD: u64 = 200;
/// Messages the producer sends in the rejecting test (`SHMQ_TEST_COUNT` overrides).
const N: u64 = 20_000;
const FINAL_ENV: &str = "SHMQ_TEST_FINAL";
const COUNT_ENV: &str = "SHMQ_TEST_COUNT";
const ACKS_ENV: &str = "SHMQ_TEST_ACKS";

fn open() -> shmq::Queue {
    QueueOptions::new().dir(env(DIR_ENV)).open(&env(NAME_ENV)).expect("open the queue")
}

fn seq_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// The rejecting test's message `seq`: its sequence number, then padding.
fn payload(seq: u64) -> Vec<u8> {
    let len = 8 + (seq % 23) as usize;
    let mut b = vec![(seq % 251) as u8; len];
    b[..8].copy_from_slice(&seq.to_le_bytes());
    b
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn is_bad(seq: u64) -> bool {
    seq % 10 == 0
}

/// Receives and acknowledges good messages (reporting `got SEQ` before acknowledging each);
/// holds the poison message until killed (after reporting `holding DELIVERY`), or panics on it
/// if it is the final consumer (`FINAL_ENV`), which should never see it; leaves on a stop
/// message.
fn poison_consumer() {
    let q = open();
    let mut rx = q.consumer().expect("consumer");
    let last = std::env::var_os(FINAL_ENV).is_some();
    report("ready");
    loop {
        let m = rx.recv_ref_timeout(LIMIT).expect("recv");
        match m.kind() {
            POISON_KIND => {
                let d = m.delivery().expect("a queue with max_deliveries counts deliveries");
                assert!(!last, "the poison message was delivered again (delivery {d}) after 3 failed deliveries");
                report(&format!("holding {d}"));
                sleep_until_killed(LIMIT);
            }
            STOP_KIND => {
                drop(m);
                report("done");
                return;
            }
            _ => {
                report(&format!("got {}", seq_of(&m)));
                drop(m); // acknowledged
            }
        }
    }
}

#[test]
fn a_poison_message_killing_its_consumers_ends_in_the_dead_letter_queue() {
    let _heavy = shmq_test_support::heavy();
    let scene = Scene::new("dl-poison", LIMIT, WATCHDOG);
    let q = QueueOptions::new()
        .dir(scene.path())
        .capacity(64)
        .max_msg_size(64)
        .max_deliveries(3)
        .create(scene.name())
        .unwrap();
    let dlq = q.dead_letter_queue().unwrap().expect("a queue with max_deliveries has a dead-letter queue");
    assert_eq!(dlq.name(), format!("{}.dlq", scene.name()));
    let envs = |extra: Vec<(&'static str, String)>| {
        let mut e = vec![(DIR_ENV, scene.path().display().to_string()), (NAME_ENV, scene.name().to_string())];
        e.extend(extra);
        e
    };
    let started = Instant::now();
    // The poison first, then the good ones (the queue holds 64: the sender waits for room).
    let mut tx = q.producer().unwrap();
    tx.send_kind(POISON_KIND, b"poison").unwrap();
    let sender = {
        let (dir, name) = (scene.path().to_path_buf(), scene.name().to_string());
        std::thread::spawn(move || {
            let q = QueueOptions::new().dir(dir).open(&name).unwrap();
            let mut tx = q.producer().unwrap();
            let end = Instant::now() + LIMIT;
            for s in 0..GOOD {
                // Between a kill and the next consumer's start, the queue is full (the dead one
                // holds the poison message) and has no live consumer: `Disconnected`, by the
                // rule. The next consumer comes: try again.
                loop {
                    match tx.send_timeout(&s.to_le_bytes(), end.saturating_duration_since(Instant::now())) {
                        Ok(()) => break,
                        Err(shmq::SendTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(1)),
                        Err(e) => panic!("send {s}: {e}"),
                    }
                }
            }
        })
    };
    let mut got: Vec<u64> = Vec::new();
    let mut collect = |c: &ChildProc| {
        got.extend(c.marked().iter().filter_map(|l| l.strip_prefix("got ")).map(|s| s.parse::<u64>().unwrap()));
    };
    // Three consumers, one after the other, each killed holding the poison message.
    for want in 1..=3u32 {
        let mut c = ChildProc::spawn("deadletter poison consumer", &envs(vec![]));
        let d: u32 = c.wait_line("holding", scene.deadline()).parse().unwrap();
        assert_eq!(d, want, "consumer {want} got the poison message as delivery {d}");
        c.kill();
        collect(&c);
    }
    // The fourth finds the third dead holding it: the message goes to the dead-letter queue.
    let mut last = ChildProc::spawn("deadletter poison consumer", &envs(vec![(FINAL_ENV, "1".into())]));
    last.wait_line("ready", scene.deadline());
    let mut letters = dlq.consumer().unwrap();
    {
        let l = letters
            .recv_ref_timeout(scene.deadline().saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("no dead letter: {e}"));
        let letter = DeadLetter::parse(&l).unwrap();
        assert_eq!(letter.payload, b"poison");
        assert_eq!(letter.kind, POISON_KIND);
        assert_eq!(letter.deliveries, 3, "{letter:?}");
        assert!(letter.reason.contains("died"), "reason {:?}", letter.reason);
        assert_eq!(letter.origin_position, 0, "{letter:?}");
        assert!(letter.first_failed_ns > 0 && letter.first_failed_ns <= letter.dead_lettered_ns, "{letter:?}");
        eprintln!("dl-poison: the letter: {:?} after {} deliveries", letter.reason, letter.deliveries);
    }
    sender.join().expect("the sender");
    tx.send_kind(STOP_KIND, b"stop").unwrap();
    last.wait_line("done", scene.deadline());
    last.expect_success(scene.deadline());
    collect(&last);
    // Every good message once, whoever took it.
    let mut counts = vec![0u32; GOOD as usize];
    for &s in &got {
        assert!(s < GOOD, "a message that was never sent: {s}");
        counts[s as usize] += 1;
    }
    let wrong: Vec<(usize, u32)> = counts.iter().copied().enumerate().filter(|&(_, n)| n != 1).collect();
    assert!(wrong.is_empty(), "good messages received other than once (seq, times): {wrong:?}");
    assert!(q.is_empty(), "{} messages left in the queue", q.len());
    assert!(
        matches!(letters.try_recv_ref(), Err(shmq::TryRecvError::Empty)),
        "more than one letter in the dead-letter queue"
    );
    eprintln!(
        "dl-poison: the poison message killed 3 consumer processes and went to the dead-letter queue; {GOOD} good messages each received once, in {:?}",
        started.elapsed()
    );
}

/// Sends `COUNT` messages (payload `payload(seq)`), pausing 1 ms every 10 (2 s or more in all,
/// so that consumers are killed a dozen times meanwhile), and leaves.
fn producer() {
    let q = open();
    let mut tx = q.producer().expect("producer");
    report("ready");
    let n = env_u64(COUNT_ENV);
    for s in 0..n {
        tx.send_timeout(&payload(s), LIMIT).unwrap_or_else(|e| panic!("send {s}: {e}"));
        if s % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    report("done");
}

/// Rejects every message whose seq is a multiple of 10 (reason `bad SEQ`); appends the seq of
/// every other one to its file (`ACKS_ENV`) and then acknowledges it. Leaves when the queue is
/// empty and the producer gone, reporting what became of its rejections.
fn rejecter() {
    let q = open();
    report("opened");
    let mut rx = q.consumer().expect("consumer");
    report("attached");
    let mut acks = std::fs::OpenOptions::new().create(true).append(true).open(env(ACKS_ENV)).expect("acks file");
    report("ready");
    let (mut redelivered, mut dead, mut full, mut busy, mut revoked, mut acked) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let m = match rx.recv_ref_timeout(LIMIT) {
            Ok(m) => m,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        };
        let seq = seq_of(&m);
        assert_eq!(&m[..], &payload(seq)[..], "message {seq} damaged");
        let d = m.delivery().expect("a queue with max_deliveries counts deliveries");
        assert!((1..=4).contains(&d), "message {seq} delivered a {d}th time (max_deliveries 4)");
        if is_bad(seq) {
            // For the parent's diagnostics, should this message go astray.
            report(&format!("reject {seq} {d}"));
            match m.reject(&format!("bad {seq}")) {
                Ok(Rejected::Redelivered { failed }) => {
                    assert!(failed < 4, "message {seq}: redelivered after {failed} failures");
                    redelivered += 1;
                }
                Ok(Rejected::DeadLettered { .. }) => dead += 1,
                Err(RejectError::DeadLetterQueueFull { .. }) => full += 1,
                Err(RejectError::LockBusy { .. }) => busy += 1,
                Err(RejectError::ClaimRevoked) => revoked += 1,
                Err(e) => panic!("reject {seq}: {e}"),
            }
        } else {
            // Recorded before it is acknowledged: killed in between, it is recorded twice.
            acks.write_all(&seq.to_le_bytes()).expect("write the acks file");
            acked += 1;
            drop(m);
        }
    }
    report(&format!(
        "done acked={acked} redelivered={redelivered} dead={dead} full={full} busy={busy} revoked={revoked}"
    ));
}

#[test]
fn consumers_killed_while_rejecting_lose_nothing_and_double_nothing() {
    let _heavy = shmq_test_support::heavy();
    let scene = Scene::new("dl-reject", LIMIT, WATCHDOG);
    let n = std::env::var(COUNT_ENV).ok().map_or(N, |v| v.parse().expect("a number"));
    let q = QueueOptions::new()
        .dir(scene.path())
        .capacity(256)
        .max_msg_size(64)
        .max_deliveries(4)
        .create(scene.name())
        .unwrap();
    let dlq = q.dead_letter_queue().unwrap().expect("a queue with max_deliveries has a dead-letter queue");
    let envs = |extra: Vec<(&'static str, String)>| {
        let mut e = vec![(DIR_ENV, scene.path().display().to_string()), (NAME_ENV, scene.name().to_string())];
        e.extend(extra);
        e
    };
    // The dead-letter queue holds 256 letters: drain it as they come (seq, reason, deliveries).
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        // However the test ends, the drainer stops (else the scope would wait for it forever).
        let _stop = StopOnDrop(&stop);
        let drainer = s.spawn(|| {
            let mut rx = dlq.consumer().unwrap();
            let mut got: Vec<(u64, String, u32, bool)> = Vec::new();
            loop {
                match rx.recv_ref_timeout(Duration::from_millis(50)) {
                    Ok(l) => {
                        let letter = DeadLetter::parse(&l).unwrap();
                        let seq = seq_of(letter.payload);
                        let intact = letter.payload == &payload(seq)[..] && letter.kind == 0;
                        got.push((seq, letter.reason.to_string(), letter.deliveries, intact));
                    }
                    Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Acquire) => return got,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(e) => panic!("receive a letter: {e}"),
                }
            }
        });
        let mut spawned = 0u32;
        let spawn = |spawned: &mut u32| {
            *spawned += 1;
            let file = scene.join(&format!("acks-{spawned}"));
            let mut c = ChildProc::spawn("deadletter rejecter", &envs(vec![(ACKS_ENV, file.display().to_string())]));
            // A start takes milliseconds: 30 s means it hangs.
            c.wait_line("ready", scene.deadline().min(Instant::now() + Duration::from_secs(30)));
            c
        };
        let mut consumers: Vec<ChildProc> = (0..3).map(|_| spawn(&mut spawned)).collect();
        let mut producer = ChildProc::spawn("deadletter producer", &envs(vec![(COUNT_ENV, n.to_string())]));
        producer.wait_line("ready", scene.deadline());
        // Kill a consumer every 100 to 200 ms and start another, while the producer sends.
        let mut rng = shmq_test_support::Rng::new(13);
        let mut kills = 0u32;
        let mut killed: Vec<ChildProc> = Vec::new();
        let (mut last_tail, mut progress_at) = (0u64, Instant::now());
        while q.counters().tail < n {
            std::thread::sleep(Duration::from_millis(100 + rng.below(100)));
            let c = q.counters();
            if c.tail != last_tail {
                (last_tail, progress_at) = (c.tail, Instant::now());
            } else if progress_at.elapsed() > Duration::from_secs(3) {
                // Stuck: leave the consumers alone a while, then say where.
                std::thread::sleep(Duration::from_secs(7));
                if q.counters().tail == last_tail {
                    let stuck = status(&scene, &q, &dlq);
                    said_about(&stuck, killed.iter_mut().chain(consumers.iter_mut()));
                    let pids: Vec<u32> = consumers.iter().map(|c| c.pid()).collect();
                    panic!("no message sent for 10 s ({} of {n} sent, {kills} kills); consumers {pids:?}", last_tail);
                }
            }
            let i = rng.below(consumers.len() as u64) as usize;
            consumers[i].kill();
            kills += 1;
            killed.push(std::mem::replace(&mut consumers[i], spawn(&mut spawned)));
            assert!(Instant::now() < scene.deadline(), "the producer did not finish");
        }
        producer.expect_success(scene.deadline());
        let sent_at = started.elapsed();
        // The survivors drain the queue and leave when it is empty.
        let mut outcomes = Vec::new();
        for c in &mut consumers {
            outcomes.push(c.wait_line("done", scene.deadline()));
            c.expect_success(scene.deadline());
        }
        // Whatever the last killed consumers held and nobody took back yet: this process takes
        // it (rejecting and acknowledging as they do), until nothing comes for a second.
        let mut late_acks: Vec<u64> = Vec::new();
        let mut late_rejects = 0u32;
        {
            let mut rx = q.consumer().unwrap();
            let mut idle_since = Instant::now();
            while idle_since.elapsed() < Duration::from_secs(1) {
                match rx.recv_ref_timeout(Duration::from_millis(20)) {
                    Ok(m) => {
                        idle_since = Instant::now();
                        let seq = seq_of(&m);
                        if is_bad(seq) {
                            late_rejects += 1;
                            m.reject(&format!("bad {seq}")).unwrap_or_else(|e| panic!("reject {seq}: {e}"));
                        } else {
                            late_acks.push(seq);
                        }
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("drain: {e}"),
                }
            }
        }
        assert!(q.is_empty(), "{} messages left in the queue", q.len());
        stop.store(true, Ordering::Release);
        let letters = drainer.join().expect("the letter drainer");

        // The acknowledged seqs of every consumer process, killed or not.
        let mut acked: HashMap<u64, u32> = HashMap::new();
        for i in 1..=spawned {
            let bytes = std::fs::read(scene.join(&format!("acks-{i}"))).unwrap_or_default();
            // A consumer killed in the middle of a write may have left part of one.
            for c in bytes.chunks_exact(8) {
                *acked.entry(seq_of(c)).or_default() += 1;
            }
        }
        for &s in &late_acks {
            *acked.entry(s).or_default() += 1;
        }
        let mut problems: Vec<String> = Vec::new();
        let mut twice = 0u32;
        for seq in 0..n {
            let times = acked.get(&seq).copied().unwrap_or(0);
            if is_bad(seq) && times > 0 {
                problems.push(format!("bad message {seq} acknowledged {times} times"));
            } else if !is_bad(seq) && times == 0 {
                problems.push(format!("good message {seq} never acknowledged"));
            } else if times > 1 {
                twice += times - 1;
            }
        }
        if let Some(s) = acked.keys().find(|&&s| s >= n) {
            problems.push(format!("acknowledged a message never sent: {s}"));
        }
        let mut in_dlq: HashMap<u64, u32> = HashMap::new();
        let mut died = 0u32;
        for (seq, reason, deliveries, intact) in &letters {
            *in_dlq.entry(*seq).or_default() += 1;
            if !is_bad(*seq) {
                problems
                    .push(format!("good message {seq} in the dead-letter queue ({reason:?}, {deliveries} deliveries)"));
            }
            if !intact {
                problems.push(format!("letter of {seq} damaged"));
            }
            if *deliveries != 4 {
                problems.push(format!("letter of {seq}: {deliveries} deliveries ({reason:?})"));
            }
            if reason.contains("died") {
                died += 1;
            } else if *reason != format!("bad {seq}") {
                problems.push(format!("letter of {seq}: reason {reason:?}"));
            }
        }
        for seq in (0..n).filter(|&s| is_bad(s)) {
            match in_dlq.get(&seq).copied().unwrap_or(0) {
                1 => {}
                k => problems.push(format!("bad message {seq} in the dead-letter queue {k} times")),
            }
        }
        if !problems.is_empty() {
            diagnose(&scene, &q, &dlq, &problems, killed.iter_mut().chain(consumers.iter_mut()));
        }
        assert!(
            problems.is_empty(),
            "{} problems after {kills} kills ({} letters, {twice} acknowledged twice), the first 30:\n{}",
            problems.len(),
            letters.len(),
            problems.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
        );
        assert!(twice <= kills, "{twice} messages acknowledged twice, after only {kills} kills");
        assert!(kills >= 5, "only {kills} kills: the producer was too fast for the test to mean much");
        eprintln!(
            "dl-reject: {n} messages sent in {sent_at:?} while 3 rejecting consumers were SIGKILLed {kills} times; {} letters (each once, {died} for a consumer that died), {twice} acknowledged twice, {} taken by the parent at the end ({late_rejects} rejected); survivors: {outcomes:?}",
            letters.len(),
            late_acks.len()
        );
    });
}

/// Prints what might explain `problems`: the queues' states, a second look at the dead-letter
/// queue, and what each consumer said about the messages concerned.
fn diagnose<'a>(
    scene: &Scene,
    q: &shmq::Queue,
    dlq: &shmq::Queue,
    problems: &[String],
    consumers: impl Iterator<Item = &'a mut ChildProc>,
) {
    let seqs: Vec<u64> =
        problems.iter().filter_map(|p| p.split_whitespace().find_map(|w| w.parse::<u64>().ok())).take(10).collect();
    status(scene, q, dlq);
    // A late letter?
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(mut rx) = dlq.consumer() {
        while let Ok(l) = rx.recv_ref_timeout(Duration::from_millis(200)) {
            match DeadLetter::parse(&l) {
                Ok(letter) => eprintln!(
                    "diagnose: a late letter: seq {} reason {:?} deliveries {} origin position {}",
                    seq_of(letter.payload),
                    letter.reason,
                    letter.deliveries,
                    letter.origin_position
                ),
                Err(e) => eprintln!("diagnose: not a letter: {e}"),
            }
        }
    }
    // A late message?
    if let Ok(mut rx) = q.consumer() {
        let end = Instant::now() + Duration::from_millis(500);
        while Instant::now() < end {
            if let Ok(m) = rx.recv_ref_timeout(Duration::from_millis(50)) {
                eprintln!("diagnose: a late message: seq {} delivery {:?}", seq_of(&m), m.delivery());
            }
        }
    }
    said_about(&seqs, consumers);
}

/// Prints what each consumer said about the messages `seqs` (and whether it was its last word).
fn said_about<'a>(seqs: &[u64], consumers: impl Iterator<Item = &'a mut ChildProc>) {
    for c in consumers {
        let (pid, lines) = (c.pid(), c.marked());
        let ended = c.transcript().contains("done acked");
        for (i, l) in lines.iter().enumerate() {
            if seqs.iter().any(|s| l.starts_with(&format!("reject {s} "))) || l.starts_with("done") {
                let last = i + 1 == lines.len();
                eprintln!("diagnose: consumer {pid} (finished: {ended}, its last line: {last}): {l}");
            }
        }
    }
}

/// Prints the states of `q` and `dlq`.
/// Returns the positions of `q`'s messages waiting in RETRY slots.
fn status(scene: &Scene, q: &shmq::Queue, dlq: &shmq::Queue) -> Vec<u64> {
    let mut retry = Vec::new();
    for name in [q.name(), dlq.name()] {
        match shmq::status::Status::read(scene.path(), name) {
            Ok(st) => eprintln!(
                "diagnose: {name}: depth {} counters {:?} participants {:?}",
                st.depth, st.counters, st.participants
            ),
            Err(e) => eprintln!("diagnose: {name}: {e}"),
        }
    }
    // The slots not simply free or committed: (slot, seq, tag, claimer).
    for qq in [q, dlq] {
        let map = shmq_test_support::RawMap::open(qq.path());
        let g = shmq_test_support::Geometry::read(&map);
        let odd: Vec<(u64, u64, u64, u64)> = (0..g.capacity)
            .map(|i| (i, map.u64_at(g.slot(i)).load(Ordering::Acquire)))
            .filter(|&(_, w)| (w >> 12) & 0xF != 0)
            .map(|(i, w)| (i, w >> 16, (w >> 12) & 0xF, w & 0xFFF))
            .collect();
        eprintln!("diagnose: {}: slots not IDLE (slot, seq, tag, claimer): {odd:?}", qq.name());
        if qq.name() == q.name() {
            // RETRY (8) holds the message of position seq - 1.
            retry.extend(odd.iter().filter(|o| o.2 == 8).map(|o| o.1 - 1));
        }
    }
    retry
}
