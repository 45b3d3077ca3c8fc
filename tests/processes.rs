//! Real multi-process tests: producers and consumers in separate processes (this test binary
//! run again as a child, see `tests/common`), a million messages each way under spinning and
//! blocking waits, and peers killed with SIGKILL (or leaving with `exit`) in the middle of the
//! protocol: holding an SPSC role, a claimed MPMC slot, or a message being read.
//!
//! Every test runs under a watchdog and removes its temporary segment directory; children are
//! killed when the test ends, however it ends.

mod common;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{env, env_u64, report, ChildProc, Watchdog};
use shmq::status::Status;
use shmq::{Error, Queue, QueueOptions, WaitStrategy};

/// The test that child processes run (see [`child_process_plays_the_role_named_in_its_environment`]).
const ENTRY: &str = "child_process_plays_the_role_named_in_its_environment";
/// Deadline of each test's waits for its children.
const LIMIT: Duration = Duration::from_secs(240);
/// Last resort: the watchdog aborts the test binary after this.
const WATCHDOG: Duration = Duration::from_secs(300);
/// How long a child waits for one message or for space before failing.
const CHILD_WAIT: Duration = Duration::from_secs(120);
/// How long the parent waits for a message or space that must come.
const SOON: Duration = Duration::from_secs(10);

const QUEUE: &str = "SHMQ_TEST_QUEUE";
const WAIT: &str = "SHMQ_TEST_WAIT";
const COUNT: &str = "SHMQ_TEST_COUNT";
const INDEX: &str = "SHMQ_TEST_INDEX";
const PRODUCERS: &str = "SHMQ_TEST_PRODUCERS";
const CONSUMERS: &str = "SHMQ_TEST_CONSUMERS";
const OUT: &str = "SHMQ_TEST_OUT";
const MODE: &str = "SHMQ_TEST_MODE";

/// Kind tag of MPMC data messages: `DATA_KIND + producer index`.
const DATA_KIND: u32 = 100;
/// Kind tag of the end markers MPMC producers send after their data.
const END_KIND: u32 = 0xE0D0;
/// Size of every test payload.
const PAYLOAD: usize = 16;

/// The million-message tests share two cores; run them one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn mix(x: u64) -> u64 {
    (x ^ 0x5DEE_CE66_D1CE_4E5B).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

/// Payload of message `seq` of producer `producer`: both packed in one word, then a check word.
fn payload(producer: u64, seq: u64) -> [u8; PAYLOAD] {
    let w = (producer << 32) | seq;
    let mut b = [0u8; PAYLOAD];
    b[..8].copy_from_slice(&w.to_le_bytes());
    b[8..].copy_from_slice(&mix(w).to_le_bytes());
    b
}

/// `(producer, seq)` of a payload; panics if it is not one `payload` made.
fn decode(b: &[u8]) -> (u64, u64) {
    assert_eq!(b.len(), PAYLOAD, "payload length");
    let w = u64::from_le_bytes(b[..8].try_into().unwrap());
    let check = u64::from_le_bytes(b[8..].try_into().unwrap());
    assert_eq!(check, mix(w), "payload check word of {w:#x} (torn or foreign message)");
    (w >> 32, w & 0xFFFF_FFFF)
}

/// Kind tag of SPSC message `seq`.
fn spsc_kind(seq: u64) -> u32 {
    1 + (seq % 1000) as u32
}

fn wait_name(w: WaitStrategy) -> &'static str {
    match w {
        WaitStrategy::Spin => "spin",
        WaitStrategy::Yield => "yield",
        WaitStrategy::Block => "block",
    }
}

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

/// Runs the child role named in the environment; does nothing in a normal test run.
#[test]
fn child_process_plays_the_role_named_in_its_environment() {
    let Some(role) = common::role() else { return };
    common::die_with_parent();
    match role.as_str() {
        "spsc-producer" => spsc_producer(),
        "spsc-consumer" => spsc_consumer(),
        "mpmc-producer" => mpmc_producer(),
        "mpmc-consumer" => mpmc_consumer(),
        "spsc-producer-then-die" => spsc_producer_then_die(),
        "mpmc-producer-dies-in-loan" => mpmc_producer_dies_in_loan(),
        "mpmc-consumer-dies-in-recv-ref" => mpmc_consumer_dies_in_recv_ref(),
        "consumer-sleeps" => consumer_sleeps(),
        other => panic!("unknown child role {other:?}"),
    }
}

fn child_queue() -> Queue {
    let wait = match env(WAIT).as_str() {
        "spin" => WaitStrategy::Spin,
        "yield" => WaitStrategy::Yield,
        "block" => WaitStrategy::Block,
        w => panic!("unknown wait strategy {w:?}"),
    };
    QueueOptions::new()
        .dir(env("SHMQ_DIR"))
        .wait(wait)
        .open(&env(QUEUE))
        .unwrap_or_else(|e| panic!("child opens the queue: {e}"))
}

fn spsc_producer() {
    let q = child_queue();
    let mut tx = q.producer().expect("child takes the producer role");
    let n = env_u64(COUNT);
    for seq in 0..n {
        tx.send_kind_timeout(spsc_kind(seq), &payload(0, seq), CHILD_WAIT)
            .unwrap_or_else(|e| panic!("send of message {seq}: {e}"));
    }
    report(&format!("sent {n}"));
}

fn spsc_consumer() {
    let q = child_queue();
    let mut rx = q.consumer().expect("child takes the consumer role");
    let n = env_u64(COUNT);
    let mut buf = [0u8; 64];
    let mut sum = 0u64;
    for expected in 0..n {
        let m = rx.recv_timeout(&mut buf, CHILD_WAIT).unwrap_or_else(|e| panic!("receive of message {expected}: {e}"));
        let (producer, seq) = decode(&buf[..m.len]);
        assert_eq!((producer, seq), (0, expected), "message {expected} out of order, duplicated or lost");
        assert_eq!(m.kind, spsc_kind(seq), "kind tag of message {seq}");
        sum += seq;
    }
    match rx.try_recv(&mut buf) {
        Err(Error::Empty) => {}
        other => panic!("after {n} messages the queue must be empty, got {other:?}"),
    }
    report(&format!("result received={n} sum={sum}"));
}

fn mpmc_producer() {
    let q = child_queue();
    let mut tx = q.producer().expect("producer");
    let (me, n, consumers) = (env_u64(INDEX), env_u64(COUNT), env_u64(CONSUMERS));
    for seq in 0..n {
        tx.send_kind_timeout(DATA_KIND + me as u32, &payload(me, seq), CHILD_WAIT)
            .unwrap_or_else(|e| panic!("producer {me}: send of message {seq}: {e}"));
    }
    // One end marker per consumer; each consumer stops after one marker per producer.
    for _ in 0..consumers {
        tx.send_kind_timeout(END_KIND, &payload(me, n), CHILD_WAIT)
            .unwrap_or_else(|e| panic!("producer {me}: send of end marker: {e}"));
    }
    report(&format!("sent {n}"));
}

/// Receives until it has one end marker per producer; checks each producer's order in its own
/// stream and writes `producer << 32 | seq` of every message to the result file.
fn mpmc_consumer() {
    let q = child_queue();
    let mut rx = q.consumer().expect("consumer");
    let (me, producers) = (env_u64(INDEX), env_u64(PRODUCERS) as usize);
    let mut out = BufWriter::new(File::create(env(OUT)).expect("create result file"));
    let mut next = vec![0u64; producers]; // lowest seq the producer may send next
    let mut counts = vec![0u64; producers];
    let mut ends = 0;
    let mut buf = [0u8; 64];
    while ends < producers {
        let m = rx
            .recv_timeout(&mut buf, CHILD_WAIT)
            .unwrap_or_else(|e| panic!("consumer {me}: receive after {counts:?} messages and {ends} end markers: {e}"));
        let (p, seq) = decode(&buf[..m.len]);
        assert!((p as usize) < producers, "consumer {me}: message from unknown producer {p}");
        if m.kind == END_KIND {
            ends += 1;
            continue;
        }
        assert_eq!(m.kind, DATA_KIND + p as u32, "consumer {me}: kind tag of producer {p}'s message {seq}");
        let p = p as usize;
        assert!(seq >= next[p], "consumer {me}: producer {p}'s message {seq} came after {}", next[p] - 1);
        next[p] = seq + 1;
        counts[p] += 1;
        out.write_all(&(((p as u64) << 32) | seq).to_le_bytes()).expect("write result file");
    }
    out.flush().expect("flush result file");
    let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
    report(&format!("result counts={}", counts.join(",")));
}

/// Takes the SPSC producer role, sends `COUNT` messages, then dies without dropping anything:
/// `MODE=exit` exits at once, `MODE=kill` waits to be SIGKILLed.
fn spsc_producer_then_die() {
    let q = child_queue();
    let mut tx = q.producer().expect("child takes the producer role");
    for seq in 0..env_u64(COUNT) {
        tx.send_kind_timeout(spsc_kind(seq), &payload(0, seq), CHILD_WAIT).expect("send");
    }
    report("ready");
    match env(MODE).as_str() {
        "exit" => std::process::exit(0),
        _ => common::sleep_until_killed(LIMIT),
    }
}

/// Claims an MPMC slot with a loan and waits to be SIGKILLed holding it.
fn mpmc_producer_dies_in_loan() {
    let q = child_queue();
    let mut tx = q.producer().expect("producer");
    let mut loan = tx.try_loan().expect("loan a slot");
    loan[..4].copy_from_slice(b"dead");
    report("ready");
    common::sleep_until_killed(LIMIT);
}

/// Claims the next MPMC message with `recv_ref` and waits to be SIGKILLed holding it.
fn mpmc_consumer_dies_in_recv_ref() {
    let q = child_queue();
    let mut rx = q.consumer().expect("consumer");
    let m = rx.recv_ref_timeout(CHILD_WAIT).expect("receive the message to die with");
    let (_, seq) = decode(&m);
    report(&format!("ready {seq}"));
    common::sleep_until_killed(LIMIT);
}

/// Waits for a message on an empty queue (sleeping on the futex with `Block`) until killed.
fn consumer_sleeps() {
    let q = child_queue();
    let mut rx = q.consumer().expect("consumer");
    report("ready");
    let mut buf = [0u8; 64];
    let r = rx.recv_timeout(&mut buf, LIMIT);
    panic!("the sleeping consumer should have been killed, its receive returned {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

/// What every test sets up: a temporary segment directory and a watchdog.
struct Scene {
    name: &'static str,
    deadline: Instant,
    // Field order is drop order: stop the watchdog, then remove the directory.
    _dog: Watchdog,
    dir: tempfile::TempDir,
}

impl Scene {
    fn new(name: &'static str) -> Scene {
        let dir = tempfile::tempdir().expect("temporary directory");
        let dog = Watchdog::start(name, WATCHDOG, Some(dir.path()));
        Scene { name, deadline: Instant::now() + LIMIT, _dog: dog, dir }
    }

    fn options(&self, wait: WaitStrategy) -> QueueOptions {
        QueueOptions::new().dir(self.dir.path()).wait(wait)
    }

    fn envs(&self, wait: WaitStrategy, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("SHMQ_DIR", self.dir.path().display().to_string()),
            (QUEUE, self.name.to_string()),
            (WAIT, wait_name(wait).to_string()),
        ];
        v.extend(extra.iter().cloned());
        v
    }

    fn spawn(&self, role: &str, wait: WaitStrategy, extra: &[(&'static str, String)]) -> ChildProc {
        ChildProc::spawn(ENTRY, role, &self.envs(wait, extra))
    }
}

/// The value of `key=` in a marked result line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in result line {line:?}"))
}

fn result_line(lines: &[String], who: &str) -> String {
    lines.iter().find_map(|l| l.strip_prefix("result ")).unwrap_or_else(|| panic!("{who} printed no result")).into()
}

fn recv_seq(rx: &mut shmq::Consumer, what: &str) -> (u64, u32) {
    let mut buf = [0u8; 64];
    let m = rx.recv_timeout(&mut buf, SOON).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (_, seq) = decode(&buf[..m.len]);
    (seq, m.kind)
}

fn assert_empty(rx: &mut shmq::Consumer) {
    let mut buf = [0u8; 64];
    match rx.try_recv(&mut buf) {
        Err(Error::Empty) => {}
        other => panic!("queue should be empty, got {other:?}"),
    }
}

/// Waits until process `pid` is a zombie: dead, not yet reaped.
/// Waits until every thread of `pid` has exited and only its zombie leader is left. The leader
/// turns `Z` before the other threads of its group (the test harness's thread holds the queue) have
/// closed their files, so the state alone does not say the kernel has dropped the process's locks.
fn wait_zombie(pid: u32, deadline: Instant) {
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("child's /proc entry");
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(usize::MAX);
        if state == Some("Z") && threads == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "child {pid} did not die after SIGKILL (state {state:?}, {threads} threads)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spsc_million(wait: WaitStrategy, name: &'static str) {
    const N: u64 = 1_000_000;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = Scene::new(name);
    let q = scene.options(wait).spsc().capacity(1024).max_msg_size(64).create(name).expect("create queue");
    let count = [(COUNT, N.to_string())];
    let mut consumer = scene.spawn("spsc-consumer", wait, &count);
    let mut producer = scene.spawn("spsc-producer", wait, &count);
    producer.expect_success(scene.deadline);
    let result = result_line(&consumer.expect_success(scene.deadline), consumer.what());
    assert_eq!(field(&result, "received"), N.to_string());
    assert_eq!(field(&result, "sum"), (N * (N - 1) / 2).to_string());
    let c = q.counters();
    assert_eq!((c.tail, c.head), (N, N), "shared indices after the run");
    q.unlink().expect("unlink");
    eprintln!("{name}: {:?}", started.elapsed());
}

fn mpmc_million(wait: WaitStrategy, name: &'static str) {
    const NP: u64 = 2;
    const NC: u64 = 2;
    const PER_PRODUCER: u64 = 500_000;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = Scene::new(name);
    let q = scene.options(wait).capacity(1024).max_msg_size(64).create(name).expect("create queue");
    let out = |i: u64| scene.dir.path().join(format!("consumer-{i}.bin"));
    let mut consumers: Vec<ChildProc> = (0..NC)
        .map(|i| {
            let extra = [(INDEX, i.to_string()), (PRODUCERS, NP.to_string()), (OUT, out(i).display().to_string())];
            scene.spawn("mpmc-consumer", wait, &extra)
        })
        .collect();
    let mut producers: Vec<ChildProc> = (0..NP)
        .map(|i| {
            let extra = [(INDEX, i.to_string()), (COUNT, PER_PRODUCER.to_string()), (CONSUMERS, NC.to_string())];
            scene.spawn("mpmc-producer", wait, &extra)
        })
        .collect();
    for p in &mut producers {
        p.expect_success(scene.deadline);
    }
    let mut totals = [0u64; NP as usize];
    for c in &mut consumers {
        let result = result_line(&c.expect_success(scene.deadline), c.what());
        for (t, n) in totals.iter_mut().zip(field(&result, "counts").split(',')) {
            *t += n.parse::<u64>().expect("count");
        }
    }
    assert_eq!(totals, [PER_PRODUCER; NP as usize], "messages per producer over all consumers");
    // Merge the consumers' streams: each message exactly once, each producer's order kept
    // within each stream.
    let mut seen = vec![vec![false; PER_PRODUCER as usize]; NP as usize];
    for i in 0..NC {
        let bytes = read_all(&out(i));
        let mut last = [None::<u64>; NP as usize];
        for w in bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())) {
            let (p, seq) = ((w >> 32) as usize, w & 0xFFFF_FFFF);
            assert!(p < NP as usize && seq < PER_PRODUCER, "consumer {i}: bad record {w:#x}");
            if let Some(l) = last[p] {
                assert!(l < seq, "consumer {i}: producer {p}'s message {seq} came after {l}");
            }
            last[p] = Some(seq);
            assert!(!std::mem::replace(&mut seen[p][seq as usize], true), "producer {p}'s message {seq} twice");
        }
    }
    for (p, s) in seen.iter().enumerate() {
        assert!(s.iter().all(|&x| x), "producer {p}'s message {:?} was lost", s.iter().position(|&x| !x));
    }
    let c = q.counters();
    let total = NP * (PER_PRODUCER + NC);
    assert_eq!((c.tail, c.head), (total, total), "shared indices after the run");
    assert_eq!((c.aborted, c.abandoned, c.lost_by_crash), (0, 0, 0), "no message was skipped");
    q.unlink().expect("unlink");
    eprintln!("{name}: {:?}", started.elapsed());
}

fn read_all(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut v)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    v
}

// ---------------------------------------------------------------------------------------------
// A million messages between processes
// ---------------------------------------------------------------------------------------------

#[test]
fn spsc_million_messages_between_processes_arrive_once_in_order_with_spin() {
    spsc_million(WaitStrategy::Spin, "spsc-1m-spin");
}

#[test]
fn spsc_million_messages_between_processes_arrive_once_in_order_with_block() {
    spsc_million(WaitStrategy::Block, "spsc-1m-block");
}

#[test]
fn mpmc_two_producer_and_two_consumer_processes_deliver_a_million_messages_once_with_spin() {
    mpmc_million(WaitStrategy::Spin, "mpmc-1m-spin");
}

#[test]
fn mpmc_two_producer_and_two_consumer_processes_deliver_a_million_messages_once_with_block() {
    mpmc_million(WaitStrategy::Block, "mpmc-1m-block");
}

// ---------------------------------------------------------------------------------------------
// Dead peers
// ---------------------------------------------------------------------------------------------

#[test]
fn spsc_producer_role_of_a_sigkilled_process_is_taken_over_and_its_messages_kept() {
    let scene = Scene::new("spsc-killed-producer");
    let q = scene.options(WaitStrategy::Block).spsc().capacity(16).create(scene.name).expect("create");
    let mut child =
        scene.spawn("spsc-producer-then-die", WaitStrategy::Block, &[(COUNT, "5".into()), (MODE, "kill".into())]);
    child.wait_line("ready", scene.deadline);
    match q.producer() {
        Err(Error::RoleTaken { role: "producer", pid }) => assert_eq!(pid, child.pid(), "holder's pid"),
        other => panic!("a live producer's role must not be taken, got {other:?}"),
    }
    child.kill_no_reap();
    // Still a zombie: dead, but its pid is not yet free for reuse.
    wait_zombie(child.pid(), scene.deadline);
    let mut tx = q.producer().expect("the role of a dead producer is taken over");
    child.reap();
    let mut rx = q.consumer().expect("consumer");
    for seq in 0..5 {
        assert_eq!(recv_seq(&mut rx, "message of the dead producer"), (seq, spsc_kind(seq)));
    }
    for seq in 5..40 {
        tx.send_kind_timeout(spsc_kind(seq), &payload(0, seq), SOON).expect("send after takeover");
        assert_eq!(recv_seq(&mut rx, "message of the new producer"), (seq, spsc_kind(seq)));
    }
    assert_empty(&mut rx);
    q.unlink().expect("unlink");
}

#[test]
fn spsc_producer_role_of_a_process_that_exited_without_dropping_is_taken_over() {
    let scene = Scene::new("spsc-exited-producer");
    let q = scene.options(WaitStrategy::Block).spsc().capacity(16).create(scene.name).expect("create");
    let mut child =
        scene.spawn("spsc-producer-then-die", WaitStrategy::Block, &[(COUNT, "7".into()), (MODE, "exit".into())]);
    child.expect_success(scene.deadline);
    let mut tx = q.producer().expect("the role of an exited producer is taken over");
    let mut rx = q.consumer().expect("consumer");
    for seq in 0..7 {
        assert_eq!(recv_seq(&mut rx, "message of the exited producer"), (seq, spsc_kind(seq)));
    }
    tx.send_kind_timeout(spsc_kind(7), &payload(0, 7), SOON).expect("send after takeover");
    assert_eq!(recv_seq(&mut rx, "message of the new producer"), (7, spsc_kind(7)));
    q.unlink().expect("unlink");
}

/// Opens handles until the participant table is full; with one entry held by a dead process,
/// the last open takes that entry over. Returns the handles (they keep their entries).
fn fill_participant_table(scene: &Scene, live_before: usize) -> Vec<Queue> {
    let table = shmq::layout::DEFAULT_PARTICIPANTS as usize;
    // `live_before` live entries and one dead one: the free ones, then the dead one's.
    let handles: Vec<Queue> = (0..table - live_before)
        .map(|i| scene.options(WaitStrategy::Block).open(scene.name).unwrap_or_else(|e| panic!("open {i}: {e}")))
        .collect();
    match scene.options(WaitStrategy::Block).open(scene.name) {
        Err(Error::TooManyParticipants { .. }) => {}
        other => panic!("the table should be full now (the dead entry reused), got {other:?}"),
    }
    handles
}

#[test]
fn spsc_role_of_a_dead_holder_is_free_after_its_participant_entry_is_reused() {
    let scene = Scene::new("spsc-role-entry-reused");
    let q = scene.options(WaitStrategy::Block).spsc().capacity(16).create(scene.name).expect("create");
    let mut child =
        scene.spawn("spsc-producer-then-die", WaitStrategy::Block, &[(COUNT, "3".into()), (MODE, "exit".into())]);
    child.expect_success(scene.deadline);
    // `q` holds one entry; the dead child's entry is taken over by the last handle.
    let handles = fill_participant_table(&scene, 1);
    let status = Status::read(scene.dir.path(), scene.name).expect("status");
    let holder = status.producer_holder;
    let mut tx = q.producer().unwrap_or_else(|e| {
        panic!("the dead producer's role must stay free when its participant id is reused (holder {holder:?}): {e}")
    });
    let mut rx = q.consumer().expect("consumer");
    for seq in 0..3 {
        assert_eq!(recv_seq(&mut rx, "message of the dead producer"), (seq, spsc_kind(seq)));
    }
    tx.send_kind_timeout(spsc_kind(3), &payload(0, 3), SOON).expect("send after takeover");
    assert_eq!(recv_seq(&mut rx, "message of the new producer"), (3, spsc_kind(3)));
    drop(handles);
    q.unlink().expect("unlink");
}

#[test]
fn mpmc_slot_claimed_by_a_sigkilled_producer_is_skipped_and_later_messages_arrive() {
    let scene = Scene::new("mpmc-killed-producer");
    let q = scene.options(WaitStrategy::Block).capacity(8).create(scene.name).expect("create");
    let mut child = scene.spawn("mpmc-producer-dies-in-loan", WaitStrategy::Block, &[]);
    child.wait_line("ready", scene.deadline);
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    for seq in 0..5 {
        tx.send_kind_timeout(7, &payload(1, seq), SOON).expect("send behind the claimed slot");
    }
    // While its claimer lives, the claimed slot holds the messages behind it back (order is kept).
    let mut buf = [0u8; 64];
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Empty)), "a live writer's slot must not be skipped");
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(50)), Err(Error::Timeout)));
    child.kill_no_reap(); // a zombie must count as dead too
    for seq in 0..5 {
        assert_eq!(recv_seq(&mut rx, "message committed after the dead producer's claim"), (seq, 7));
    }
    assert_empty(&mut rx);
    let c = q.counters();
    assert_eq!((c.abandoned, c.aborted, c.lost_by_crash), (1, 0, 0), "the dead claim is counted as abandoned");
    // The ring goes on over several laps.
    for seq in 5..40 {
        tx.send_kind_timeout(7, &payload(1, seq), SOON).expect("send");
        assert_eq!(recv_seq(&mut rx, "message after recovery"), (seq, 7));
    }
    child.reap();
    q.unlink().expect("unlink");
}

#[test]
fn mpmc_slot_held_by_a_sigkilled_consumer_is_freed_when_producers_wrap_onto_it() {
    const CAP: u64 = 4;
    let scene = Scene::new("mpmc-killed-consumer");
    let q = scene.options(WaitStrategy::Block).capacity(CAP).create(scene.name).expect("create");
    let mut tx = q.producer().expect("producer");
    tx.send_kind_timeout(9, &payload(1, 0), SOON).expect("send the message the consumer dies with");
    let mut child = scene.spawn("mpmc-consumer-dies-in-recv-ref", WaitStrategy::Block, &[]);
    assert_eq!(child.wait_line("ready", scene.deadline), "0");
    let mut rx = q.consumer().expect("consumer");
    for seq in 1..CAP {
        tx.send_kind_timeout(9, &payload(1, seq), SOON).expect("send");
    }
    for seq in 1..CAP {
        assert_eq!(recv_seq(&mut rx, "message next to the held one"), (seq, 9));
    }
    // The ring has wrapped onto the slot the live consumer still reads: producers wait.
    assert!(matches!(tx.try_send(&payload(1, CAP)), Err(Error::Full)), "a live reader's slot must not be reused");
    assert!(matches!(tx.send_timeout(&payload(1, CAP), Duration::from_millis(50)), Err(Error::Timeout)));
    child.kill();
    tx.send_kind_timeout(9, &payload(1, CAP), SOON).expect("producers must not stay stuck behind a dead consumer");
    assert_eq!(recv_seq(&mut rx, "message written into the recovered slot"), (CAP, 9));
    let c = q.counters();
    assert_eq!((c.lost_by_crash, c.abandoned, c.aborted), (1, 0, 0), "the dead reader's message is counted as lost");
    for seq in CAP + 1..CAP * 10 {
        tx.send_kind_timeout(9, &payload(1, seq), SOON).expect("send");
        assert_eq!(recv_seq(&mut rx, "message after recovery"), (seq, 9));
    }
    assert_empty(&mut rx);
    q.unlink().expect("unlink");
}

#[test]
fn mpmc_slot_of_a_dead_producer_is_recovered_when_its_participant_entry_is_reused() {
    let scene = Scene::new("mpmc-entry-reused");
    let q = scene.options(WaitStrategy::Block).capacity(8).create(scene.name).expect("create");
    let mut child = scene.spawn("mpmc-producer-dies-in-loan", WaitStrategy::Block, &[]);
    child.wait_line("ready", scene.deadline);
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    for seq in 0..2 {
        tx.send_kind_timeout(5, &payload(1, seq), SOON).expect("send");
    }
    child.kill();
    // Taking over the dead process's entry scrubs its claims.
    let handles = fill_participant_table(&scene, 1);
    // No waiting (try_recv never recovers slots itself): the scrub already freed the slot.
    let mut buf = [0u8; 64];
    for seq in 0..2 {
        let m = rx.try_recv(&mut buf).unwrap_or_else(|e| panic!("message {seq} behind the scrubbed slot: {e}"));
        assert_eq!((decode(&buf[..m.len]).1, m.kind), (seq, 5));
    }
    assert_eq!(q.counters().abandoned, 1, "the scrubbed claim is counted as abandoned");
    drop(handles);
    q.unlink().expect("unlink");
}

/// A consumer killed while asleep on the futex must not leave the sleeper count raised: a raised
/// count makes every later send pay a `FUTEX_WAKE` system call, forever.
#[test]
fn consumer_killed_while_asleep_does_not_leave_the_sleeper_count_raised() {
    let scene = Scene::new("killed-sleeper");
    let q = scene.options(WaitStrategy::Block).capacity(8).create(scene.name).expect("create");
    let mut child = scene.spawn("consumer-sleeps", WaitStrategy::Block, &[]);
    child.wait_line("ready", scene.deadline);
    let until = Instant::now() + SOON;
    while q.counters().sleepers.0 == 0 {
        assert!(Instant::now() < until, "the consumer never went to sleep: {:?}", q.counters());
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill();
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    for seq in 0..3 {
        tx.send_kind_timeout(1, &payload(1, seq), SOON).expect("send");
        assert_eq!(recv_seq(&mut rx, "message after the sleeper died"), (seq, 1));
    }
    assert_eq!(q.counters().sleepers, (0, 0), "sleepers left counted after the sleeping consumer died");
    q.unlink().expect("unlink");
}

/// Kills a child holding a claimed slot with three messages committed behind it, then polls with
/// `poll` until all three arrive; fails if they do not within [`SOON`].
fn poll_past_dead_producer(
    name: &'static str,
    how: &str,
    mut poll: impl FnMut(&mut shmq::Consumer, &mut [u8]) -> Result<shmq::Received, Error>,
) {
    let scene = Scene::new(name);
    let q = scene.options(WaitStrategy::Block).capacity(8).create(scene.name).expect("create");
    let mut child = scene.spawn("mpmc-producer-dies-in-loan", WaitStrategy::Block, &[]);
    child.wait_line("ready", scene.deadline);
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    for seq in 0..3 {
        tx.send_kind_timeout(2, &payload(1, seq), SOON).expect("send");
    }
    child.kill();
    let until = Instant::now() + SOON;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 3 {
        assert!(
            Instant::now() < until,
            "a consumer polling with {how} never got past the dead producer's slot (received {got:?}, {:?})",
            q.counters()
        );
        match poll(&mut rx, &mut buf) {
            Ok(m) => got.push(decode(&buf[..m.len]).1),
            Err(Error::Empty | Error::Timeout) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{how}: {e}"),
        }
    }
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(q.counters().abandoned, 1);
    q.unlink().expect("unlink");
}

/// Each call here is shorter than the interval at which waiting calls check a holder's liveness;
/// the check must still happen over a series of calls. (While it does not, this test fails unless
/// the scheduler happens to stretch one call past that interval, which a loaded machine does.)
#[test]
fn consumer_polling_with_short_timeouts_gets_past_a_dead_producers_slot() {
    poll_past_dead_producer("poll-recv-timeout", "recv_timeout(1 ms)", |rx, buf| {
        rx.recv_timeout(buf, Duration::from_millis(1))
    });
}

#[test]
fn consumer_polling_with_try_recv_gets_past_a_dead_producers_slot() {
    poll_past_dead_producer("poll-try-recv", "try_recv", |rx, buf| rx.try_recv(buf));
}

/// Messages a streaming child would send if nobody killed it.
const ENDLESS: u64 = 1 << 31;

/// Receives the stream of `child` (`(producer, kind)` of each message given) while a thread
/// SIGKILLs the child after a random delay, so that the kill lands mid-send. Returns the next
/// sequence number expected once everything received before the kill was checked.
fn receive_until_killed(
    rx: &mut shmq::Consumer,
    child: &mut ChildProc,
    producer: u64,
    kind: impl Fn(u64) -> u32,
) -> u64 {
    let mut rng = common::Rng::new(u64::from(std::process::id()) ^ 0x4B11);
    let delay = Duration::from_micros(rng.below(5_000));
    let mut next = 0;
    let mut buf = [0u8; 64];
    let check = |next: &mut u64, m: shmq::Received, buf: &[u8]| {
        let (p, seq) = decode(&buf[..m.len]);
        assert_eq!((p, seq, m.kind), (producer, *next, kind(*next)), "stream (kill after {delay:?})");
        *next += 1;
    };
    while next < 1_000 {
        let m = rx.recv_timeout(&mut buf, SOON).unwrap_or_else(|e| panic!("message {next} of the stream: {e}"));
        check(&mut next, m, &buf);
    }
    let pid = child.pid() as libc::pid_t;
    let killer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        // SAFETY: kill(2) with a plain pid; the child is not yet reaped, so the pid is still
        // this child's and cannot name another process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    while !killer.is_finished() {
        match rx.recv_timeout(&mut buf, Duration::from_millis(1)) {
            Ok(m) => check(&mut next, m, &buf),
            Err(Error::Timeout) => {}
            Err(e) => panic!("receiving while the producer is killed: {e}"),
        }
    }
    killer.join().expect("killer thread");
    child.reap();
    next
}

#[test]
fn spsc_producer_sigkilled_mid_stream_leaves_an_intact_prefix_and_a_free_role() {
    let scene = Scene::new("spsc-killed-mid-stream");
    let q = scene.options(WaitStrategy::Block).spsc().capacity(64).create(scene.name).expect("create");
    let mut rx = q.consumer().expect("consumer");
    let mut child = scene.spawn("spsc-producer", WaitStrategy::Block, &[(COUNT, ENDLESS.to_string())]);
    let mut next = receive_until_killed(&mut rx, &mut child, 0, spsc_kind);
    // Whatever it published before it died is intact and in order; nothing is torn.
    let mut buf = [0u8; 64];
    loop {
        match rx.try_recv(&mut buf) {
            Ok(m) => {
                assert_eq!((decode(&buf[..m.len]).1, m.kind), (next, spsc_kind(next)), "message after the kill");
                next += 1;
            }
            Err(Error::Empty) => break,
            Err(e) => panic!("draining after the kill: {e}"),
        }
    }
    let mut tx = q.producer().expect("the killed producer's role is free");
    for seq in next..next + 100 {
        tx.send_kind_timeout(spsc_kind(seq), &payload(0, seq), SOON).expect("send after takeover");
        assert_eq!(recv_seq(&mut rx, "message of the new producer"), (seq, spsc_kind(seq)));
    }
    q.unlink().expect("unlink");
}

#[test]
fn mpmc_producer_sigkilled_mid_stream_loses_at_most_the_message_it_was_writing() {
    let scene = Scene::new("mpmc-killed-mid-stream");
    let q = scene.options(WaitStrategy::Block).capacity(64).create(scene.name).expect("create");
    let mut rx = q.consumer().expect("consumer");
    let extra = [(INDEX, "1".to_string()), (COUNT, ENDLESS.to_string()), (CONSUMERS, "1".to_string())];
    let mut child = scene.spawn("mpmc-producer", WaitStrategy::Block, &extra);
    let mut next = receive_until_killed(&mut rx, &mut child, 1, |_| DATA_KIND + 1);
    // A marker behind everything the dead producer claimed. The queue may be full of its
    // messages: receive one whenever the marker does not fit yet.
    let mut tx = q.producer().expect("producer");
    let mut marker_sent = false;
    loop {
        if !marker_sent {
            match tx.try_send_kind(END_KIND, &payload(0, 0)) {
                Ok(()) => marker_sent = true,
                Err(Error::Full) => {}
                Err(e) => panic!("send the marker: {e}"),
            }
        }
        let mut buf = [0u8; 64];
        let m = rx.recv_timeout(&mut buf, SOON).unwrap_or_else(|e| panic!("draining after the kill: {e}"));
        let (p, seq) = decode(&buf[..m.len]);
        if m.kind == END_KIND {
            assert_eq!((p, seq), (0, 0), "marker");
            break;
        }
        // Consecutive: a claim the producer died in never held a committed message.
        assert_eq!((p, seq, m.kind), (1, next, DATA_KIND + 1), "message after the kill");
        next += 1;
    }
    assert_empty(&mut rx);
    let c = q.counters();
    assert!(c.abandoned <= 1 && c.aborted == 0 && c.lost_by_crash == 0, "at most the one open claim is lost: {c:?}");
    q.unlink().expect("unlink");
}
