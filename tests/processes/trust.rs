//! The trust suite's promises that need a second process (the others are in `tests/trust.rs`,
//! whose docs tell the story): a live producer is not judged dead by a consumer out of file
//! descriptors, a live peer in another pid namespace keeps its role, dead subscribers do not
//! keep their table entries, `shmq stat` reclaims them, and a dead process leaves no sleeper
//! counted. Each test states its promise in its doc comment; the numbers are the items of the
//! trust issue.

use std::time::{Duration, Instant};

use shmq::status::Status;
use shmq::{OpenError, QueueOptions, SubscriberMode, TopicOptions, TryRecvError, WaitStrategy};
use shmq_test_support::{
    children_of, env, exhaust_fds, is_dead, report, sleep_until_killed, wait_for, ChildProc, Role, Scene, Spawn,
};

use crate::{DIR_ENV, NAME_ENV};

/// Environment of a subscriber child: "lossy" or "reliable".
const MODE_ENV: &str = "SHMQ_TRUST_MODE";
/// Environment of a subscriber child: its durable name, if any.
const SUB_NAME_ENV: &str = "SHMQ_TRUST_SUB_NAME";
/// How long a child lives at most if nobody kills it.
const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// Watchdog of every test.
const WATCHDOG: Duration = Duration::from_secs(120);

/// The roles of this module's children.
pub const ROLES: &[Role] = &[
    ("trust emfile-consumer", emfile_consumer),
    ("trust ns-spsc-consumer", ns_spsc_consumer),
    ("trust topic-subscriber", topic_subscriber),
    ("trust two-sleeping-consumers", two_sleeping_consumers),
];

/// A private segment directory and a watchdog (the tests set their own deadlines).
fn scene(name: &str) -> Scene {
    Scene::new(name, WATCHDOG, WATCHDOG)
}

/// The environment of a child using segment `name` of the scene.
fn envs(scene: &Scene, name: &str) -> Vec<(&'static str, String)> {
    vec![(DIR_ENV, scene.path().display().to_string()), (NAME_ENV, name.to_string())]
}

// =============================================================================================
// Children
// =============================================================================================

/// Item 1, child side: a consumer out of file descriptors polls a slot loaned by its (live)
/// parent, says what it judged, then waits for the parent's commit.
fn emfile_consumer() {
    let q = QueueOptions::new().dir(env(DIR_ENV)).open(&env(NAME_ENV)).expect("child opens the queue");
    let mut rx = q.consumer().expect("consumer");
    let files = exhaust_fds();
    let proc_read = match std::fs::read("/proc/self/stat") {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("errno{}", e.raw_os_error().unwrap_or(0)),
    };
    report(&format!("exhausted files={} proc_read={proc_read}", files.held()));
    let mut buf = [0u8; 64];
    // 200 ms of polls: liveness of the slot's claimer is checked every 10 ms.
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        match rx.try_recv(&mut buf) {
            Err(TryRecvError::Empty) => {}
            other => report(&format!("early {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    report(&format!("checked abandoned={}", q.counters().abandoned));
    // The parent commits its loan now; the message must arrive.
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        match rx.try_recv(&mut buf) {
            Ok(m) => {
                report(&format!("received {}", String::from_utf8_lossy(&buf[..m.len])));
                break;
            }
            Err(TryRecvError::Empty) if Instant::now() < end => std::thread::sleep(Duration::from_millis(1)),
            Err(TryRecvError::Empty) => {
                report("received nothing");
                break;
            }
            Err(e) => {
                report(&format!("received error {e}"));
                break;
            }
        }
    }
    drop(files);
}

/// Item 2, child side: takes the consumer role of an SPSC queue and stays alive.
fn ns_spsc_consumer() {
    let q = QueueOptions::new().dir(env(DIR_ENV)).open(&env(NAME_ENV)).expect("child opens the queue");
    let rx = q.consumer().expect("child takes the consumer role");
    report(&format!("ready pid={}", std::process::id()));
    let _keep = (q, rx);
    sleep_until_killed(CHILD_LIMIT);
}

/// Item 5, child side: joins a topic as a subscriber (lossy or reliable; durable if
/// `SUB_NAME_ENV` is set) and stays.
fn topic_subscriber() {
    let t = TopicOptions::new().dir(env(DIR_ENV)).open(&env(NAME_ENV)).expect("child opens the topic");
    let mode = if env(MODE_ENV) == "lossy" { SubscriberMode::Lossy } else { SubscriberMode::Reliable };
    let mut b = t.subscriber().mode(mode);
    if let Ok(name) = std::env::var(SUB_NAME_ENV) {
        b = b.name(name);
    }
    let sub = b.build().expect("child joins");
    report("joined");
    let _keep = (t, sub);
    sleep_until_killed(CHILD_LIMIT);
}

/// Item 12, child side: one attachment, two threads with a consumer each, both receiving
/// (Block wait) in a loop; each message received is reported.
fn two_sleeping_consumers() {
    let q = QueueOptions::new()
        .dir(env(DIR_ENV))
        .wait(WaitStrategy::Block)
        .open(&env(NAME_ENV))
        .expect("child opens the queue");
    for i in 0..2 {
        let mut rx = q.consumer().expect("consumer");
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match rx.recv_into(&mut buf) {
                    Ok(m) => report(&format!("got {i} {}", String::from_utf8_lossy(&buf[..m.len]))),
                    Err(e) => panic!("thread {i}: recv_into: {e}"),
                }
            }
        });
    }
    sleep_until_killed(CHILD_LIMIT);
}

// =============================================================================================
// 1. Liveness under EMFILE
// =============================================================================================

/// A consumer whose process has no free file descriptor must not judge a live producer dead:
/// the slot it loaned is not abandoned, and its message arrives once committed.
#[test]
fn a_live_producer_is_not_judged_dead_by_a_consumer_out_of_file_descriptors() {
    let scene = scene("emfile");
    let q = QueueOptions::new().dir(scene.path()).capacity(8).max_msg_size(64).create("fd").expect("create");
    let mut tx = q.producer().expect("producer");
    let mut loan = tx.loan().expect("loan");
    loan[..5].copy_from_slice(b"hello");

    let mut child = ChildProc::spawn("trust emfile-consumer", &envs(&scene, "fd"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let exhausted = child.wait_line("exhausted", deadline);
    let checked = child.wait_line("checked", deadline);
    loan.commit(5).expect("commit the loan");
    let lines = child.expect_success(deadline);
    let received = lines.iter().find_map(|l| l.strip_prefix("received ")).unwrap_or("(no line)").to_string();

    assert!(
        exhausted.contains(&format!("proc_read=errno{}", libc::EMFILE)),
        "test setup: the child should be out of file descriptors ({exhausted})"
    );
    assert!(
        checked == "abandoned=0" && received == "hello",
        "the consumer (out of fds) judged the live producer dead: after 200 ms of try_recv it \
         reported {checked} (expected abandoned=0), and after the commit it received {received:?} \
         (expected \"hello\"); parent sees counters {:?}",
        q.counters()
    );
}

// =============================================================================================
// 2. Peer in another pid namespace
// =============================================================================================

/// A live process in another pid namespace that holds the SPSC consumer role keeps it: a
/// second consumer gets `RoleTaken`, and `shmq stat` (Status) shows the holder alive.
#[test]
fn a_live_peer_in_another_pid_namespace_keeps_its_role() {
    let scene = scene("pidns");
    let q = QueueOptions::new().dir(scene.path()).spsc().capacity(8).create("ns").expect("create");
    let mut child = match Spawn::new("trust ns-spsc-consumer").envs(&envs(&scene, "ns")).in_pid_namespace(true).start()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            return;
        }
    };
    let ready = match child.try_wait_line("ready", Instant::now() + Duration::from_secs(20)) {
        Ok(r) => r,
        Err(transcript) if transcript.contains("unshare:") => {
            eprintln!("skipped: unshare failed here (needs CAP_SYS_ADMIN):\n{transcript}");
            return;
        }
        Err(transcript) => panic!("the namespaced child did not take the consumer role:\n{transcript}"),
    };
    let grandchildren = children_of(child.pid());

    let status = Status::read(scene.path(), "ns").expect("status");
    let holder = status.consumer_holder;
    let second = q.consumer();
    let second_desc = match &second {
        Ok(_) => "Ok (admitted)".to_string(),
        Err(e) => format!("Err({e})"),
    };
    let refused = matches!(second, Err(OpenError::RoleTaken { role: "consumer", .. }));
    drop(second);

    // The child dies with `unshare` (--kill-child); make sure of it.
    child.kill();
    for &pid in &grandchildren {
        let end = Instant::now() + Duration::from_secs(5);
        while !is_dead(pid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !is_dead(pid) {
            // SAFETY: plain kill(2) of a process we started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the namespaced child {pid} outlived unshare --kill-child");
        }
    }

    assert!(
        refused && holder.is_some_and(|(_, _, alive)| alive),
        "a live consumer in another pid namespace ({ready} inside it) was judged dead: a second \
         consumer() returned {second_desc} (expected RoleTaken), and Status lists the role holder \
         as {holder:?} (id, pid, alive)"
    );
}

// =============================================================================================
// 5. Dead subscribers must not keep their table entries
// =============================================================================================

/// Two anonymous subscribers (`mode`) join from child processes that are then SIGKILLed; a new
/// subscriber joins the full table.
fn join_after_dead_subscribers(test: &str, mode: &str) {
    let scene = scene(test);
    let topic =
        TopicOptions::new().dir(scene.path()).capacity(16).max_subscribers(2).create("t").expect("create topic");
    let mut publisher = topic.publisher().expect("publisher");
    publisher.send(b"one").expect("publish"); // far from full: no publisher blocks
    let mut envs = envs(&scene, "t");
    envs.push((MODE_ENV, mode.to_string()));
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..2 {
        let mut child = ChildProc::spawn("trust topic-subscriber", &envs);
        child.wait_line("joined", deadline);
        child.kill(); // SIGKILL, and reaped
    }
    let listed = topic.subscribers();
    let third = topic.subscriber().mode(SubscriberMode::Lossy).build();
    assert!(
        third.is_ok(),
        "a subscriber could not join a table whose two entries belong to SIGKILLed {mode} \
         subscribers: {:?}; table: {listed:?}",
        third.err()
    );
}

/// Entries of lossy subscribers whose processes died are reclaimed when a new subscriber needs
/// the room.
#[test]
fn dead_lossy_subscribers_do_not_keep_the_subscriber_table_full() {
    join_after_dead_subscribers("dead-lossy", "lossy");
}

/// Entries of anonymous reliable subscribers whose processes died are reclaimed on join, even
/// when no publisher was blocked on them.
#[test]
fn dead_anonymous_reliable_subscribers_are_reclaimed_on_join() {
    join_after_dead_subscribers("dead-reliable", "reliable");
}

// =============================================================================================
// 12. Sleeper counts of a process that dies
// =============================================================================================

/// When a process whose threads sleep in `recv` dies, every sleeper it counted is uncounted in
/// the end (two threads of one attachment each count themselves), so later notifies go back to
/// making no syscall.
#[test]
fn a_dead_process_leaves_no_sleeper_counted_even_with_two_sleeping_threads() {
    let scene = scene("sleepers");
    let q = QueueOptions::new().dir(scene.path()).capacity(64).max_msg_size(16).create("q").expect("create");
    let mut tx = q.producer().expect("producer");
    let mut child = ChildProc::spawn("trust two-sleeping-consumers", &envs(&scene, "q"));
    let limit = Duration::from_secs(10);
    wait_for("both child threads to sleep", limit, || q.counters().sleepers.0 == 2);
    tx.send(b"one").expect("send");
    child.wait_line("got", Instant::now() + limit);
    wait_for("both child threads to sleep again", limit, || q.counters().sleepers.0 == 2);
    child.kill();
    // Dead sleepers are reaped on the notify slow path, at most every 10 ms.
    let mut seen = Vec::new();
    for i in 0..10u8 {
        tx.send(&[i]).expect("send");
        std::thread::sleep(Duration::from_millis(25));
        seen.push(q.counters().sleepers.0);
    }
    assert_eq!(
        q.counters().sleepers.0,
        0,
        "sleepers counted after the SIGKILLed child's two sleeping threads died (after each of 10 \
         sends 25 ms apart: {seen:?})"
    );
}

// =============================================================================================
// What the fix added: reclaiming in stat
// =============================================================================================

/// `shmq stat` reclaims the entries of subscribers whose processes died, as a join would: an
/// anonymous one disappears, a durable one stays, shown away (it keeps its place), and the
/// table has room again.
#[test]
fn stat_reclaims_the_entries_of_dead_subscribers() {
    let scene = scene("stat-reclaims");
    let topic =
        TopicOptions::new().dir(scene.path()).capacity(16).max_subscribers(2).create("t").expect("create topic");
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in [None, Some("keep")] {
        let mut envs = envs(&scene, "t");
        envs.push((MODE_ENV, "lossy".into()));
        if let Some(n) = name {
            envs.push((SUB_NAME_ENV, n.into()));
        }
        let mut child = ChildProc::spawn("trust topic-subscriber", &envs);
        child.wait_line("joined", deadline);
        child.kill();
    }
    assert_eq!(topic.subscriber_count(), 2, "both entries are still taken before anyone looks");
    let s = Status::read(scene.path(), "t").expect("stat");
    let names: Vec<_> = s.subscribers.iter().map(|sub| (sub.name.clone(), sub.alive)).collect();
    assert_eq!(names, vec![(Some("keep".to_string()), false)], "stat shows the durable one away, the other gone");
    assert_eq!(topic.subscriber_count(), 1, "stat freed the anonymous entry");
}
