//! The trust suite: promises the README and the docs make about crashes, liveness and hostile
//! or unlucky timing, each checked the way an adversary would break it. Each test states one
//! promise in its doc comment. The first fourteen (items 1 to 12 of the trust issue) were
//! written against the code before the fix and failed there, every run (the closing note of
//! the issue has the counts); the rest check what the fix added. The promises that need a
//! second process (items 1, 2, 5 and 12, and `shmq stat` reclaiming dead subscribers) are in
//! the multi-process binary, `tests/processes/trust.rs`; the numbered sections here keep the
//! items' numbers.
//!
//! Only the public API is used (options, handles, loans, `recv_ref`, `counters()`,
//! `shmq::status`), so the tests survive a rewrite of the internals; the one exception reads
//! the layout to play a peer that revokes claims. Every test has a watchdog and deadlines, and
//! works in a private temporary directory (under /dev/shm only where tmpfs behaviour matters)
//! that is removed at the end.
//!
//! Some bugs are races: those tests loop for a few seconds and count how often the promise
//! broke (the count is in the failure message). The CPU-heavy ones take a lock so that they do
//! not run at the same time as each other (the machine this was written on has 2 cores).

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use shmq::{
    Error, QueueOptions, RecvTimeoutError, SendError, SendTimeoutError, Start, SubscriberMode, TopicOptions,
    TryRecvError, WaitStrategy,
};
use shmq_test_support::payload::{stream, unstream, STREAM};
use shmq_test_support::{heavy, wait_for, Geometry, RawMap, Scene};

/// Watchdog of every test.
const WATCHDOG: Duration = Duration::from_secs(120);

/// A private segment directory (on the default temporary file system) and a watchdog.
fn scene(name: &str) -> Scene {
    Scene::new(name, WATCHDOG, WATCHDOG)
}

/// [`scene`] on tmpfs (/dev/shm), where file pages are memory.
fn scene_on_tmpfs(name: &str) -> Scene {
    let dir = tempfile::tempdir_in("/dev/shm").expect("temporary directory in /dev/shm");
    Scene::in_dir(dir, name, WATCHDOG, WATCHDOG)
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer and size.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity");
    // SAFETY: `set` is initialised; CPU_ISSET only reads it.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Makes a race that needs a thread to be interrupted at a random point happen often, the way a
/// busy machine makes it happen now and then: the calling thread runs only on `cpu`, and with
/// `idle` it gets the SCHED_IDLE policy, so that any ordinary thread waking up on that CPU
/// preempts it at once, wherever it is.
fn run_on(cpu: usize, idle: bool) {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE (it came from allowed_cpus).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; valid pointer and size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(rc, 0, "sched_setaffinity");
    if idle {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; lowering the policy needs no privilege.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        assert_eq!(rc, 0, "sched_setscheduler(SCHED_IDLE)");
    }
}

// =============================================================================================
// 3. TopicRef of a Start::Earliest reliable subscriber
// =============================================================================================

/// A reliable subscriber that joins with `Start::Earliest` gates publishers from the message it
/// starts at: the bytes behind its `TopicRef` never change while the ref lives.
///
/// The race: a publisher that checked the subscriber epoch just before the subscriber joined
/// claims its next slot with the gate it computed when nobody was subscribed, and that slot
/// holds the oldest message, the one an `Earliest` subscriber starts with. To hit the window
/// often, publisher and joiner share one CPU and the publisher runs as SCHED_IDLE: each time
/// the joiner wakes up, the publisher stops wherever it is (see [`run_on`]).
#[test]
fn a_topic_ref_of_an_earliest_reliable_subscriber_never_changes_under_it() {
    let _heavy = heavy();
    let scene = scene("earliest");
    let topic = TopicOptions::new()
        .dir(scene.path())
        .capacity(8)
        .max_msg_size(STREAM)
        .wait(WaitStrategy::Yield)
        .create("t")
        .expect("create");
    let cpu = allowed_cpus()[0];
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (topic, stop) = (topic.clone(), stop.clone());
        std::thread::spawn(move || {
            run_on(cpu, true);
            let mut p = topic.publisher().expect("publisher");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match p.send_timeout(&stream(n), Duration::from_millis(100)) {
                    Ok(()) => n += 1,
                    Err(SendTimeoutError::Timeout) => {}
                    Err(e) => panic!("publish: {e}"),
                }
            }
            n
        })
    };
    let run = Duration::from_secs(6);
    let joiner = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            run_on(cpu, false);
            let (mut joins, mut changed, mut torn) = (0u64, 0u64, 0u64);
            let mut example = String::new();
            let end = Instant::now() + run;
            while Instant::now() < end {
                // The publisher runs freely meanwhile (nobody subscribed), then is preempted.
                std::thread::sleep(Duration::from_micros(30));
                let mut sub = topic.subscriber().start(Start::Earliest).build().expect("join");
                joins += 1;
                let m = match sub.recv_ref_timeout(Duration::from_secs(2)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(e) => panic!("recv_ref: {e}"),
                };
                let copy = m.to_vec();
                if unstream(&copy).is_none() {
                    torn += 1;
                }
                // Hold the ref while the publisher runs: it must wait for this subscriber.
                std::thread::sleep(Duration::from_micros(100));
                if *m != copy[..] || unstream(&m).is_none() {
                    changed += 1;
                    if example.is_empty() {
                        example = format!(
                            "the ref of sequence {} first held message {:?}, later {:?}",
                            m.sequence(),
                            unstream(&copy),
                            unstream(&m)
                        );
                    }
                }
            }
            (joins, changed, torn, example)
        })
    };
    let (joins, changed, torn, example) = joiner.join().expect("joiner thread");
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher thread");
    eprintln!("earliest: {joins} joins, {published} published, {changed} changed, {torn} torn");
    assert!(
        changed == 0 && torn == 0,
        "{changed} of {joins} TopicRefs of Start::Earliest subscribers changed while held, {torn} \
         were torn when first read ({published} messages published); e.g. {example}"
    );
}

// =============================================================================================
// 4. Stale-segment recovery must not delete live segments
// =============================================================================================

/// Processes (here threads) that race to `open_or_create` one queue all end up on the same
/// segment: none of them recreates it under the others, so every message sent through any of
/// the handles can be received from a fresh `open`. This holds when they start from nothing,
/// and when they start from a segment left half-initialised by a dead creator (which
/// `open_or_create` promises to remove and recreate): each of them sees it stale and removes it
/// by name, and a later removal takes away the live segment an earlier racer already made.
///
/// For 2 s the rounds start with no segment, then for 4 s with a planted stale one: a
/// zero-filled file of segment size (what a creator killed after sizing the file, before
/// writing the header, leaves).
#[test]
fn racing_open_or_create_calls_all_end_on_the_same_segment() {
    const THREADS: usize = 6;
    let _heavy = heavy();
    let scene = scene("race-create");
    let dir = scene.path().to_path_buf();
    let clean_phase = Duration::from_secs(2);
    let run = Duration::from_secs(6);
    let start = Arc::new(Barrier::new(THREADS + 1));
    let sent = Arc::new(Barrier::new(THREADS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    // Bit `id` is set when thread `id` sent its message in the current round.
    let senders = Arc::new(AtomicU64::new(0));
    // Errors other than a timeout (a creator slower than the 50 ms ready timeout is possible on
    // a loaded machine; they are reported, not counted as failures).
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let timeouts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|id| {
            let (dir, start, sent, stop) = (dir.clone(), start.clone(), sent.clone(), stop.clone());
            let (senders, errors, timeouts) = (senders.clone(), errors.clone(), timeouts.clone());
            std::thread::spawn(move || loop {
                start.wait();
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // A shorter wait for a creator that never writes its header (default: 2 s).
                let options = QueueOptions::new().dir(&dir).capacity(8).max_msg_size(8);
                let r = options.ready_timeout(Duration::from_millis(50)).open_or_create("same");
                // Open, attach and send, their errors as `shmq::Error` (a timeout is open's).
                match r.map_err(Error::from).and_then(|q| Ok(q.producer()?.try_send(&[id as u8])?)) {
                    Ok(()) => {
                        senders.fetch_or(1 << id, Ordering::Relaxed);
                    }
                    Err(Error::Timeout) => {
                        timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.lock().unwrap().push(format!("thread {id}: {e}")),
                }
                sent.wait();
            })
        })
        .collect();
    // [rounds from no segment, rounds from a stale one], and how many of each lost messages.
    let (mut rounds, mut short) = ([0u64; 2], [0u64; 2]);
    let mut examples = [String::new(), String::new()];
    let began = Instant::now();
    while began.elapsed() < run {
        let stale = began.elapsed() >= clean_phase;
        if stale {
            File::create(dir.join("shmq.same")).and_then(|f| f.set_len(64 << 10)).expect("plant a stale segment");
        }
        senders.store(0, Ordering::Relaxed);
        start.wait();
        sent.wait();
        let k = usize::from(stale);
        rounds[k] += 1;
        let mut got = 0u64;
        if let Ok(q) = QueueOptions::new().dir(&dir).open("same") {
            let mut rx = q.consumer().expect("consumer");
            let mut buf = [0u8; 8];
            while let Ok(m) = rx.try_recv(&mut buf) {
                if m.len == 1 && (buf[0] as usize) < THREADS {
                    got |= 1 << buf[0];
                }
            }
        }
        let sent_by = senders.load(Ordering::Relaxed);
        if got & sent_by != sent_by {
            short[k] += 1;
            if examples[k].is_empty() {
                let ids = |mask: u64| (0..THREADS).filter(|i| mask & (1 << i) != 0).collect::<Vec<_>>();
                examples[k] = format!("threads {:?} sent, the queue held the messages of {:?}", ids(sent_by), ids(got));
            }
        }
        let _ = std::fs::remove_file(dir.join("shmq.same"));
    }
    stop.store(true, Ordering::Relaxed);
    start.wait();
    for t in threads {
        t.join().expect("racing thread");
    }
    let errors = errors.lock().unwrap();
    let timeouts = timeouts.load(Ordering::Relaxed);
    eprintln!(
        "race-create: from no segment {} rounds, {} lost messages; from a stale one {} rounds, {} \
         lost messages; {} errors, {timeouts} timeouts",
        rounds[0],
        short[0],
        rounds[1],
        short[1],
        errors.len()
    );
    assert!(
        short == [0, 0] && errors.is_empty(),
        "{THREADS} threads raced open_or_create on one name, then sent a message each: some thread \
         ended on a deleted segment (its message was lost) in {} of {} rounds that started with no \
         segment ({}) and in {} of {} rounds that started with a stale one ({}); errors: {:?}; \
         {timeouts} timeouts",
        short[0],
        rounds[0],
        examples[0],
        short[1],
        rounds[1],
        examples[1],
        &errors[..errors.len().min(5)]
    );
}

// =============================================================================================
// 6. open must validate before it maps and pre-faults
// =============================================================================================

/// Opening a planted file that is not a valid segment allocates no memory: `open` does not
/// pre-fault (populate) a file before it has validated its header.
#[test]
fn open_does_not_populate_a_planted_sparse_file() {
    let scene = scene_on_tmpfs("planted");
    let path = scene.path().join("shmq.planted");
    File::create(&path).expect("plant").set_len(1 << 30).expect("make it 1 GiB, sparse");
    let blocks = || std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&path).expect("stat"));
    let before = blocks();
    let t0 = Instant::now();
    let r = QueueOptions::new().dir(scene.path()).ready_timeout(Duration::from_millis(100)).open("planted");
    let took = t0.elapsed();
    let after = blocks();
    std::fs::remove_file(&path).expect("remove the planted file");
    assert!(r.is_err(), "a zero-filled file was accepted as a queue");
    assert!(
        after * 512 < 1 << 20,
        "open of a planted sparse 1 GiB file allocated {} MiB of it ({before} blocks before, \
         {after} after; took {took:?}; returned {:?})",
        (after * 512) >> 20,
        r.err()
    );
}

// =============================================================================================
// 7. Skipping an aborted slot wakes a blocked producer
// =============================================================================================

/// When a consumer skips an aborted slot, the space that frees wakes a producer blocked on a full
/// queue at once (not after its safety-net sleep).
#[test]
fn skipping_an_aborted_slot_wakes_a_blocked_producer() {
    let scene = scene("skip-wake");
    let q = QueueOptions::new()
        .dir(scene.path())
        .capacity(2)
        .max_msg_size(16)
        .wait(WaitStrategy::Block)
        .create("q")
        .expect("create");
    // Position 0: an aborted loan. Position 1: a loan held (live, not committed). Full.
    let mut p1 = q.producer().expect("producer");
    drop(p1.loan().expect("loan 0"));
    let mut p2 = q.producer().expect("producer");
    let mut held = p2.loan().expect("loan 1");
    held[..4].copy_from_slice(b"held");

    let (done_tx, done_rx) = mpsc::channel();
    let sender = {
        let q = q.clone();
        std::thread::spawn(move || {
            let r = q.producer().expect("producer").send_timeout(b"blocked", Duration::from_secs(5));
            done_tx.send((Instant::now(), r.map_err(|e| e.to_string()))).expect("report");
        })
    };
    // The sender sleeps for space.
    wait_for("the sender to sleep", Duration::from_secs(5), || q.counters().sleepers.1 == 1);
    let mut rx = q.consumer().expect("consumer");
    let mut buf = [0u8; 16];
    // Skips the aborted slot (freeing it), then finds the held one: nothing to deliver.
    let r = rx.try_recv(&mut buf);
    let skipped_at = Instant::now();
    let head = q.counters().head;
    let (sent_at, sent) = done_rx.recv_timeout(Duration::from_secs(10)).expect("sender returns");
    sender.join().expect("sender thread");
    let latency = sent_at.saturating_duration_since(skipped_at);
    held.commit(4).expect("commit");
    eprintln!("skip-wake: the blocked send returned {latency:?} after the skip");
    assert!(matches!(r, Err(TryRecvError::Empty)) && head == 1, "test setup: try_recv gave {r:?}, head {head}");
    assert!(sent.is_ok(), "the blocked send failed: {sent:?}");
    assert!(
        latency < Duration::from_millis(200),
        "the producer blocked on a full queue returned {latency:?} after a consumer freed a slot \
         by skipping an aborted loan (expected well under 200 ms)"
    );
}

// =============================================================================================
// 8. try_recv_batch and panics
// =============================================================================================

/// A panic in the callback of `try_recv_batch` does not leave a slot claimed: afterwards the
/// queue still holds (or has delivered) every message and all its capacity is usable.
#[test]
fn a_panic_in_the_try_recv_batch_callback_leaves_no_slot_stuck() {
    const CAP: usize = 4;
    let scene = scene("batch-panic");
    let q = QueueOptions::new().dir(scene.path()).capacity(CAP).max_msg_size(16).create("q").expect("create");
    let mut tx = q.producer().expect("producer");
    let mut rx = q.consumer().expect("consumer");
    for i in 0..CAP as u8 {
        tx.send(&[i]).expect("fill");
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.try_recv_batch(10, |_, _| panic!("callback panics (on purpose)"))
    }));
    assert!(caught.is_err(), "the callback's panic propagates");
    // Drain what is left: CAP - 1 messages (the one being handed over is gone), or CAP.
    let mut buf = [0u8; 16];
    let mut left = 0;
    while rx.try_recv(&mut buf).is_ok() {
        left += 1;
    }
    // Now the queue is empty: CAP sends must fit.
    let mut failures = Vec::new();
    for i in 0..CAP as u8 {
        if let Err(e) = tx.send_timeout(&[100 + i], Duration::from_millis(250)) {
            failures.push(format!("send {i}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "after a panic in try_recv_batch's callback ({left} messages left to drain), sends into \
         the empty queue of capacity {CAP} failed: {failures:?}; counters {:?}",
        q.counters()
    );
}

// =============================================================================================
// 9. Lossy readers and the seqlock
// =============================================================================================

/// Kind of topic message `seq` in the stream of the test below: kind 1 (8 bytes: its number
/// among the kind-1 messages) at every third sequence, kind 2 (200 bytes) at the others. A period of 3 on a ring of 4 slots, so that each slot holds both
/// kinds in turn (with a period of 2 every slot would always hold the same kind, and a stale
/// length and kind would still agree).
fn seqlock_stream_kind(seq: u64) -> u32 {
    if seq % 3 == 0 {
        1
    } else {
        2
    }
}

/// A lossy subscriber decides on a message's length and kind only from a consistent read: it
/// never reports a spurious `BufferTooSmall` for a message that fits, and it never skips a
/// message of its kinds silently (every message it misses is counted in a `Lagged` report).
///
/// The race: the reader loads a slot's state, then its length and kind; if a publisher reuses
/// the slot in between, the reader acts on the new message's length and kind (filters it out, or
/// finds it too long) before its seqlock re-check. To hit that often, the reader runs as
/// SCHED_IDLE on a CPU where another thread wakes up every few microseconds, so it is stopped at
/// random points while the publisher, on another CPU, runs on (see [`run_on`]).
///
/// The check is exact: the publisher is the only one, so message `seq` has the kind
/// [`seqlock_stream_kind`] gives, and `Subscriber::position` before and after each call tells
/// which sequences the call delivered, declared missed (`Lagged(n)`: the last `n` it moved
/// over) or passed over silently (the rest). Passing over a kind-1 message silently is a loss.
#[test]
fn a_lossy_subscriber_trusts_length_and_kind_only_after_the_seqlock_check() {
    let _heavy = heavy();
    let scene = scene("lossy-seqlock");
    let topic = TopicOptions::new().dir(scene.path()).capacity(4).max_msg_size(256).create("t").expect("create topic");
    let mut sub = topic.subscriber().mode(SubscriberMode::Lossy).kinds(&[1]).build().expect("subscriber");
    assert_eq!(sub.position(), 0, "test setup: the subscriber starts at the first message");
    let cpus = allowed_cpus();
    // Reader and waker share a CPU (the waker wakes up about every 20 us); the publisher has
    // its own CPU if there is one.
    let (reader_cpu, publisher_cpu) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
    let alone = reader_cpu == publisher_cpu;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (topic, stop) = (topic.clone(), stop.clone());
        std::thread::spawn(move || {
            run_on(publisher_cpu, false);
            let mut p = topic.publisher().expect("publisher");
            let big = [0xABu8; 200];
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..30 {
                    if seqlock_stream_kind(seq) == 1 {
                        p.send_kind(1, &(seq / 3).to_le_bytes()).expect("publish kind 1");
                    } else {
                        p.send_kind(2, &big).expect("publish kind 2");
                    }
                    seq += 1;
                }
                if alone {
                    // One CPU: leave the reader some time (the publisher is the waker then).
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
            seq
        })
    };
    let waker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            run_on(reader_cpu, false);
            // SAFETY: PR_SET_TIMERSLACK takes a plain integer (nanoseconds).
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let reader = std::thread::spawn(move || {
        run_on(reader_cpu, true);
        // delivered, Lagged reports, BufferTooSmall, kind-1 messages passed over silently,
        // deliveries that do not match their sequence, gaps in the kind-1 counter that no
        // Lagged report came before.
        let mut c = [0u64; 6];
        let mut example = String::new();
        let mut last: Option<u64> = None;
        let mut lag_reported = false;
        let mut buf = [0u8; 16];
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            let before = sub.position();
            let r = sub.try_recv(&mut buf);
            let after = sub.position();
            // Sequences [before, silent_end) were passed over without a word.
            let silent_end = match &r {
                Ok(_) => after - 1,
                Err(TryRecvError::Lagged(n)) => after - n,
                _ => after,
            };
            let dropped = (before..silent_end).filter(|&s| seqlock_stream_kind(s) == 1).count() as u64;
            if dropped > 0 {
                c[3] += dropped;
                if example.is_empty() {
                    example = format!("sequences {before}..{silent_end} passed over silently, then {r:?}");
                }
            }
            match r {
                Ok(m) => {
                    c[0] += 1;
                    let seq = after - 1;
                    let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    if (m.kind, m.len, n) != (1, 8, seq / 3) || seqlock_stream_kind(seq) != 1 {
                        c[4] += 1;
                    }
                    if last.is_some_and(|prev| n != prev + 1) && !lag_reported {
                        c[5] += 1;
                    }
                    last = Some(n);
                    lag_reported = false;
                }
                Err(TryRecvError::Lagged(_)) => {
                    c[1] += 1;
                    lag_reported = true;
                }
                Err(TryRecvError::BufferTooSmall { .. }) => c[2] += 1,
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("try_recv: {e}"),
            }
        }
        (c, example)
    });
    let ([delivered, lagged, too_small, dropped, wrong, gaps], example) = reader.join().expect("reader thread");
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher thread");
    waker.join().expect("waker thread");
    eprintln!(
        "lossy-seqlock: {published} published, {delivered} delivered, {lagged} Lagged, {too_small} \
         BufferTooSmall, {dropped} kind-1 passed over silently, {gaps} unreported counter gaps, \
         {wrong} wrong"
    );
    assert!(
        too_small == 0 && dropped == 0 && wrong == 0 && gaps == 0,
        "lossy subscriber (kinds [1], 16-byte buffer) over 2 s: {too_small} spurious \
         BufferTooSmall, {dropped} kind-1 messages passed over without a Lagged report ({gaps} \
         gaps in the kind-1 counter with no Lagged report before them), {wrong} deliveries that \
         do not match their sequence ({delivered} delivered, {lagged} Lagged, {published} \
         messages published); e.g. {example}"
    );
}

// =============================================================================================
// 10. try_recv and Empty
// =============================================================================================

/// `try_recv` returns `Empty` only when no committed message waits: a message committed behind
/// a slot that a live producer is still writing is received, not reported as `Empty`.
#[test]
fn try_recv_does_not_report_empty_while_a_committed_message_waits() {
    const THREADS: usize = 3;
    let _heavy = heavy();
    let scene = scene("empty-but-not");
    let q = QueueOptions::new()
        .dir(scene.path())
        .capacity(64)
        .max_msg_size(16)
        .wait(WaitStrategy::Block)
        .create("q")
        .expect("create");
    // Why Empty is always wrong here: every thread alternates "send one message" and "receive
    // one message" (try_recv, and after an Empty a blocking receive), and starts a receive only
    // after its send returned, i.e. after its message was committed. So at any instant each
    // thread has claimed at most as many messages as it has committed, and a thread inside its
    // try_recv has claimed exactly one fewer than it committed. Summed over the threads: while
    // any thread is in try_recv, at least one committed message is not claimed by anyone.
    // Capacity 64 >= THREADS, so no send ever waits.
    let run = Duration::from_secs(2);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut tx = q.producer().expect("producer");
                let mut rx = q.consumer().expect("consumer");
                let mut buf = [0u8; 16];
                let (mut rounds, mut empties, mut depth_at_empty) = (0u64, 0u64, 0usize);
                let end = Instant::now() + run;
                while Instant::now() < end {
                    tx.send(&[t as u8]).expect("send");
                    rounds += 1;
                    match rx.try_recv(&mut buf) {
                        Ok(_) => {}
                        Err(TryRecvError::Empty) => {
                            empties += 1;
                            depth_at_empty = depth_at_empty.max(q.len());
                            rx.recv_timeout(&mut buf, Duration::from_secs(5)).expect("blocking receive after Empty");
                        }
                        Err(e) => panic!("try_recv: {e}"),
                    }
                }
                (rounds, empties, depth_at_empty)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
    let rounds: u64 = results.iter().map(|r| r.0).sum();
    let empties: u64 = results.iter().map(|r| r.1).sum();
    let depth = results.iter().map(|r| r.2).max().unwrap_or(0);
    eprintln!("empty-but-not: {rounds} rounds, {empties} Empty");
    assert_eq!(
        empties, 0,
        "try_recv returned Empty {empties} times in {rounds} send-then-try_recv rounds of {THREADS} \
         threads, although a committed message was waiting each time (len() right after was up to \
         {depth})"
    );
}

// =============================================================================================
// What the fix added: revoked claims, reclaiming in stat, gc against attach
// =============================================================================================

/// The state word of slot `i` of the segment `map` maps.
fn slot_state(map: &RawMap, i: u64) -> &AtomicU64 {
    map.u64_at(Geometry::read(map).slot(i))
}

/// A producer whose claim a peer revoked (as a peer that judged it dead does: the slot marked
/// abandoned) learns it from `commit` (`ClaimRevoked`), and its commit does not write over the
/// state the peer set: the queue goes on past the abandoned slot. The same for a consumer that
/// drops a `recv_ref` whose claim was revoked (the slot freed by the peer stays freed), and for
/// a topic publisher's loan.
#[test]
fn revoked_claims_are_reported_and_never_written_over() {
    use shmq::layout::slot;
    let scene = scene("revoked");
    let q = QueueOptions::new().dir(scene.path()).capacity(4).max_msg_size(16).create("q").expect("create");
    let peer = RawMap::open(q.path());
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    let state = slot_state(&peer, 0);
    let mut loan = tx.loan().expect("loan");
    loan[..4].copy_from_slice(b"lost");
    let abandoned = slot::pack(1, slot::ABANDONED, 0);
    state.store(abandoned, Ordering::SeqCst); // the peer revokes the claim
    assert!(matches!(loan.commit(4), Err(SendError::ClaimRevoked)), "commit of a revoked loan must fail");
    assert_eq!(state.load(Ordering::SeqCst), abandoned, "the commit wrote over the peer's state");
    tx.send(b"next").expect("send");
    let mut buf = [0u8; 16];
    let m = rx.try_recv(&mut buf).expect("the message after the abandoned slot");
    assert_eq!(&buf[..m.len], b"next");

    // Consumer side: slot 2 holds "held"; the peer frees it while we read it in place.
    tx.send(b"held").expect("send");
    let freed = slot::pack(2 + 4, slot::IDLE, 0);
    let r = rx.try_recv_ref().expect("recv_ref");
    assert_eq!(&*r, b"held");
    slot_state(&peer, 2).store(freed, Ordering::SeqCst);
    drop(r);
    assert_eq!(slot_state(&peer, 2).load(Ordering::SeqCst), freed, "the release wrote over the peer's state");

    // Topic publisher.
    let t = TopicOptions::new().dir(scene.path()).capacity(4).max_msg_size(16).create("t").expect("create topic");
    let tpeer = RawMap::open(t.path());
    let mut sub = t.subscriber().build().expect("subscriber");
    let mut p = t.publisher().expect("publisher");
    let mut loan = p.loan().expect("topic loan");
    loan[..4].copy_from_slice(b"lost");
    let tstate = slot_state(&tpeer, 0);
    let abandoned = slot::pack(0, slot::ABANDONED, 0);
    tstate.store(abandoned, Ordering::SeqCst);
    assert!(matches!(loan.commit(4), Err(SendError::ClaimRevoked)));
    assert_eq!(tstate.load(Ordering::SeqCst), abandoned, "the topic commit wrote over the peer's state");
    p.send(b"next").expect("publish");
    let m = sub.try_recv(&mut buf).expect("the message after the abandoned one");
    assert_eq!(&buf[..m.len], b"next");
}

/// `shmq gc` and a process attaching exclude each other: however their steps interleave, a
/// process that opened a queue is never left on a segment gc removed (a second open by name
/// finds the same queue, with the message the first handle sent).
#[test]
fn gc_never_removes_a_segment_a_process_is_attaching_to() {
    let _heavy = heavy();
    let scene = scene("gc-vs-attach");
    let dir = scene.path().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut removed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let shmq::status::GcVerdict::Remove(_) = shmq::status::gc_remove(&dir, "g", true) {
                    removed += 1;
                }
            }
            removed
        })
    };
    let end = Instant::now() + Duration::from_secs(2);
    let (mut rounds, mut split) = (0u64, 0u64);
    while Instant::now() < end {
        rounds += 1;
        let opts = QueueOptions::new().dir(&dir).capacity(4).max_msg_size(8);
        let q = opts.open_or_create("g").expect("open_or_create");
        q.producer().expect("producer").try_send(&rounds.to_le_bytes()).expect("send");
        // Still attached (q lives): gc must keep the segment, so the name leads to it.
        let same = match opts.open("g") {
            Ok(q2) => q2.counters().tail == q.counters().tail && !q2.is_empty(),
            Err(_) => false,
        };
        if !same {
            split += 1;
        }
        // Empty again, so that a round gc did not end starts with room.
        let mut buf = [0u8; 8];
        q.consumer().expect("consumer").try_recv(&mut buf).expect("the message just sent");
    }
    stop.store(true, Ordering::Relaxed);
    let removed = gc.join().expect("gc thread");
    eprintln!("gc-vs-attach: {rounds} rounds, gc removed the queue {removed} times, {split} split");
    assert!(removed > 0, "gc never removed the queue between rounds: the test did not race");
    assert_eq!(split, 0, "{split} of {rounds} handles were left on a segment gc removed");
}
