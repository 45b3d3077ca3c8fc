//! Topics across real processes: a million messages from two publisher processes fanned out to
//! three subscriber processes, subscribers killed with SIGKILL mid-stream (anonymous ones must
//! stop gating, durable ones must resume without losing or re-delivering acknowledged
//! messages), and a slow lossy subscriber that must account for every message it missed and
//! never see a torn payload.
//!
//! Every test runs under a watchdog and removes its temporary segment directory; children are
//! killed when the test ends, however it ends. The tests take the binary's heavy-test lock, so
//! they run one at a time with the other CPU-heavy tests (they share two cores with everything
//! else).

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use shmq::{AckMode, RecvTimeoutError, Start, SubscriberMode, Topic, TopicOptions, TryRecvError, WaitStrategy};
use shmq_test_support::payload::{self, read_records, stamp, unstamp, unwide, Sequences, WIDE};
use shmq_test_support::{
    env, env_opt, env_u64, field, heavy, num, report, result_line, sleep_until_killed, wait_for, ChildProc, Rng, Role,
    Scene,
};

use crate::{spawn, wait_from_env, DIR_ENV, NAME_ENV};

/// Deadline of each test's waits for its children.
const LIMIT: Duration = Duration::from_secs(300);
/// Last resort: the watchdog aborts the test binary after this.
const WATCHDOG: Duration = Duration::from_secs(360);
/// How long a child waits for one message or for space before failing.
const CHILD_WAIT: Duration = Duration::from_secs(120);

/// Messages per publisher.
const COUNT: &str = "SHMQ_TEST_COUNT";
/// Publisher index (in the payload).
const INDEX: &str = "SHMQ_TEST_INDEX";
/// Number of publishers a subscriber expects.
const PUBLISHERS: &str = "SHMQ_TEST_PUBLISHERS";
/// Optional: microseconds a subscriber sleeps after each message.
const DELAY_US: &str = "SHMQ_TEST_DELAY_US";
/// Optional: a subscriber prints "progress" after this many messages (then goes on).
const PROGRESS: &str = "SHMQ_TEST_PROGRESS";
/// Optional: a durable subscriber prints "holding" after recording this message and waits to
/// be killed (without acknowledging it in explicit mode).
const HOLD: &str = "SHMQ_TEST_HOLD";
/// Durable subscriber's acknowledgement mode: "explicit" or "next".
const ACK: &str = "SHMQ_TEST_ACK";
/// Explicit mode: acknowledge after each message whose `seq + 1` is a multiple of this.
const ACK_EVERY: &str = "SHMQ_TEST_ACK_EVERY";
/// File a durable subscriber records the sequence of every message it processed in.
const OUT: &str = "SHMQ_TEST_OUT";
/// Durable subscriber name.
const SUB_NAME: &str = "SHMQ_TEST_SUBSCRIBER";
/// Lossy subscriber: receive nothing until this many messages were published.
const FIRST_AFTER: &str = "SHMQ_TEST_FIRST_AFTER";

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

/// The roles of this module's children.
pub const ROLES: &[Role] = &[
    ("topic publisher", || publisher(false)),
    ("topic wide-publisher", || publisher(true)),
    ("topic reliable-subscriber", reliable_subscriber),
    ("topic durable-subscriber", durable_subscriber),
    ("topic lossy-subscriber", lossy_subscriber),
];

fn child_topic() -> Topic {
    TopicOptions::new()
        .dir(env(DIR_ENV))
        .wait(wait_from_env())
        .open(&env(NAME_ENV))
        .unwrap_or_else(|e| panic!("child opens the topic: {e}"))
}

/// Publishes `COUNT` messages (fan-out payloads of publisher `INDEX`, or wide payloads);
/// reports the longest single `send` call.
fn publisher(wide: bool) {
    let topic = child_topic();
    let mut p = topic.publisher().expect("publisher");
    let n = env_u64(COUNT);
    let me = if wide { 0 } else { env_u64(INDEX) };
    let mut longest = Duration::ZERO;
    for seq in 0..n {
        let started = Instant::now();
        let r = if wide {
            p.send_timeout(&payload::wide(seq), CHILD_WAIT)
        } else {
            p.send_timeout(&stamp(me, seq), CHILD_WAIT)
        };
        r.unwrap_or_else(|e| panic!("publisher {me}: publish of message {seq}: {e}"));
        longest = longest.max(started.elapsed());
    }
    report(&format!("result sent={n} longest_publish_us={}", longest.as_micros()));
}

/// An anonymous reliable subscriber: joins, prints "ready", then receives `COUNT` messages from
/// each of `PUBLISHERS` publishers, checking that each publisher's messages arrive exactly once
/// and in order.
fn reliable_subscriber() {
    let topic = child_topic();
    let mut sub = topic.subscriber().build().expect("subscribe");
    report("ready");
    let (publishers, n) = (env_u64(PUBLISHERS) as usize, env_u64(COUNT));
    let (delay, progress) = (env_opt(DELAY_US).map(Duration::from_micros), env_opt(PROGRESS));
    let mut seen = Sequences::new(publishers);
    let mut buf = [0u8; 64];
    for received in 1..=publishers as u64 * n {
        let m = sub
            .recv_timeout(&mut buf, CHILD_WAIT)
            .unwrap_or_else(|e| panic!("receive after {:?} messages per publisher: {e}", seen.counts()));
        let (p, seq) = unstamp(&buf[..m.len]);
        seen.exactly_next(p, seq).unwrap_or_else(|e| panic!("{e}"));
        if progress == Some(received) {
            report(&format!("progress {received}"));
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
    }
    assert!(seen.counts().iter().all(|&c| c == n), "messages per publisher {:?}, expected {n} each", seen.counts());
    // Nothing left: `Empty`, or `Disconnected` once every publisher has exited.
    match sub.try_recv(&mut buf) {
        Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        other => panic!("after every message the subscriber must find nothing, got {other:?}"),
    }
    report(&format!("result counts={}", seen.counts_line()));
}

/// A durable subscriber (`SUB_NAME`, `Start::Earliest`, ack mode `ACK`) of one publisher's
/// `COUNT` messages. It "processes" each message by appending its sequence to `OUT` (an
/// unbuffered write: once it returns the record is in the kernel and survives a SIGKILL), then,
/// in explicit mode, acknowledges it (every `ACK_EVERY` messages). With `HOLD`, it stops after
/// recording that message (unacknowledged) and waits to be killed.
fn durable_subscriber() {
    let topic = child_topic();
    let ack = match env(ACK).as_str() {
        "explicit" => AckMode::Explicit,
        "next" => AckMode::OnNextReceive,
        a => panic!("unknown ack mode {a:?}"),
    };
    let mut sub =
        topic.subscriber().name(env(SUB_NAME)).start(Start::Earliest).ack(ack).build().expect("durable subscriber");
    let mut out = OpenOptions::new().create(true).append(true).open(env(OUT)).expect("open the record file");
    report("ready");
    let n = env_u64(COUNT);
    let (delay, progress, hold) = (env_opt(DELAY_US).map(Duration::from_micros), env_opt(PROGRESS), env_opt(HOLD));
    let ack_every = env_opt(ACK_EVERY).unwrap_or(1);
    let mut buf = [0u8; 64];
    let mut last: Option<u64> = None;
    let mut recorded = 0u64;
    loop {
        let m = sub.recv_timeout(&mut buf, CHILD_WAIT).unwrap_or_else(|e| panic!("receive after {last:?}: {e}"));
        let (_, seq) = unstamp(&buf[..m.len]);
        if let Some(l) = last {
            assert_eq!(seq, l + 1, "message {seq} came after {l}");
        }
        last = Some(seq);
        // Processing takes time on both sides of the record, so that a kill lands before the
        // record (delivered, not recorded) as often as after it (recorded, not acknowledged).
        if let Some(d) = delay {
            std::thread::sleep(d / 2);
        }
        out.write_all(&seq.to_le_bytes()).expect("record the message");
        recorded += 1;
        if hold == Some(seq) {
            report(&format!("holding {seq}"));
            sleep_until_killed(LIMIT);
        }
        if let Some(d) = delay {
            std::thread::sleep(d / 2);
        }
        if ack == AckMode::Explicit && (seq + 1) % ack_every == 0 {
            sub.ack();
        }
        if progress == Some(recorded) {
            report(&format!("progress {recorded}"));
        }
        if seq + 1 == n {
            break;
        }
    }
    // Nothing left: `Empty`, or `Disconnected` once the publisher has exited.
    match sub.try_recv(&mut buf) {
        Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        other => panic!("after the last message the subscriber must find nothing, got {other:?}"),
    }
    report(&format!("result recorded={recorded}"));
}

/// A lossy subscriber of `COUNT` wide messages that waits until `FIRST_AFTER` were published
/// (so that it is lapped at least once) and sleeps `DELAY_US` after each message. Checks every
/// payload for tearing and that each message is the one its cursor and the `Lagged` counts
/// predict.
fn lossy_subscriber() {
    let topic = child_topic();
    let mut sub = topic.subscriber().mode(SubscriberMode::Lossy).build().expect("lossy subscriber");
    report("ready");
    let n = env_u64(COUNT);
    let delay = Duration::from_micros(env_u64(DELAY_US));
    let first_after = env_u64(FIRST_AFTER);
    let what = format!("the publisher to publish {first_after} messages");
    wait_for(&what, CHILD_WAIT, || topic.published() >= first_after);
    let (mut expected, mut received, mut lagged, mut lag_events) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = [0u8; WIDE];
    while expected < n {
        match sub.recv_timeout(&mut buf, CHILD_WAIT) {
            Ok(m) => {
                assert_eq!(m.len, WIDE, "length of message {expected}");
                let seq = unwide(&buf);
                assert_eq!(seq, expected, "received message {seq} when the Lagged counts say {expected} is next");
                expected += 1;
                received += 1;
                std::thread::sleep(delay);
            }
            Err(RecvTimeoutError::Lagged(k)) => {
                assert!(k > 0, "Lagged(0)");
                expected += k;
                lagged += k;
                lag_events += 1;
                assert!(expected <= n, "Lagged({k}) skips past the {n} messages published");
            }
            Err(e) => panic!("receive at {expected}: {e}"),
        }
    }
    assert_eq!(sub.position(), n, "the subscriber's position after every message");
    // Nothing left: `Empty`, or `Disconnected` once the publisher has exited.
    match sub.try_recv(&mut buf) {
        Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        other => panic!("after every message the lossy subscriber must find nothing, got {other:?}"),
    }
    let me = topic.subscribers().into_iter().find(|s| s.lossy).expect("the lossy subscriber's entry");
    assert_eq!((me.delivered, me.lagged), (received, lagged), "the table's counts of delivered and lagged messages");
    report(&format!("result received={received} lagged={lagged} lag_events={lag_events}"));
}

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

/// A test's directory, watchdog and deadline.
fn scene(name: &str) -> Scene {
    Scene::new(name, LIMIT, WATCHDOG)
}

/// Creates the scene's topic.
fn create(scene: &Scene, wait: WaitStrategy, capacity: usize) -> Topic {
    TopicOptions::new()
        .dir(scene.path())
        .wait(wait)
        .capacity(capacity)
        .max_msg_size(64)
        .create(scene.name())
        .expect("create topic")
}

// ---------------------------------------------------------------------------------------------
// Fan-out of a million messages
// ---------------------------------------------------------------------------------------------

/// Two publisher processes publish 500,000 messages each to three reliable subscriber processes
/// that joined before the first message; each subscriber checks that it receives every message
/// exactly once, in each publisher's order.
fn fan_out_million(wait: WaitStrategy, name: &'static str) {
    const NP: u64 = 2;
    const NS: u64 = 3;
    const PER_PUBLISHER: u64 = 500_000;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = scene(name);
    let topic = create(&scene, wait, 1024);
    let sub_env = [(PUBLISHERS, NP.to_string()), (COUNT, PER_PUBLISHER.to_string())];
    let mut subs: Vec<ChildProc> =
        (0..NS).map(|_| spawn(&scene, "topic reliable-subscriber", wait, &sub_env)).collect();
    // Every subscriber is joined before the first message is published.
    for s in &mut subs {
        s.wait_line("ready", scene.deadline());
    }
    assert_eq!(topic.subscriber_count(), NS as usize, "subscribers joined");
    let mut pubs: Vec<ChildProc> = (0..NP)
        .map(|i| spawn(&scene, "topic publisher", wait, &[(INDEX, i.to_string()), (COUNT, PER_PUBLISHER.to_string())]))
        .collect();
    for p in &mut pubs {
        let result = result_line(&p.expect_success(scene.deadline()), p.what());
        assert_eq!(num(&result, "sent"), PER_PUBLISHER);
    }
    let expected = vec![PER_PUBLISHER.to_string(); NP as usize].join(",");
    for s in &mut subs {
        let result = result_line(&s.expect_success(scene.deadline()), s.what());
        assert_eq!(field(&result, "counts"), expected, "{}: messages per publisher", s.what());
    }
    let c = topic.counters();
    assert_eq!(c.tail, NP * PER_PUBLISHER, "messages published");
    assert_eq!((c.aborted, c.abandoned), (0, 0), "no message was skipped");
    assert!(!topic.has_subscribers(), "every subscriber left: {:?}", topic.subscribers());
    topic.unlink().expect("unlink");
    eprintln!("{name}: {} messages to {NS} subscriber processes in {:?}", NP * PER_PUBLISHER, started.elapsed());
}

#[test]
fn two_publisher_and_three_subscriber_processes_deliver_a_million_messages_to_every_subscriber_once_in_order_with_block(
) {
    fan_out_million(WaitStrategy::Block, "topic-fanout-1m-block");
}

#[test]
fn two_publisher_and_three_subscriber_processes_deliver_a_million_messages_to_every_subscriber_once_in_order_with_yield(
) {
    fan_out_million(WaitStrategy::Yield, "topic-fanout-1m-yield");
}

// ---------------------------------------------------------------------------------------------
// Killed subscribers
// ---------------------------------------------------------------------------------------------

#[test]
fn sigkilled_anonymous_reliable_subscriber_stops_gating_and_the_publisher_finishes() {
    const N: u64 = 20_000;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = scene("topic-killed-anonymous");
    let topic = create(&scene, WaitStrategy::Block, 64);
    let common = [(PUBLISHERS, "1".to_string()), (COUNT, N.to_string())];
    // The victim is slow (so it gates the publisher) and is killed after 500 messages.
    let mut victim_env = common.to_vec();
    victim_env.extend([(DELAY_US, "200".to_string()), (PROGRESS, "500".to_string())]);
    let mut victim = spawn(&scene, "topic reliable-subscriber", WaitStrategy::Block, &victim_env);
    let mut survivor = spawn(&scene, "topic reliable-subscriber", WaitStrategy::Block, &common);
    victim.wait_line("ready", scene.deadline());
    survivor.wait_line("ready", scene.deadline());
    let mut publisher =
        spawn(&scene, "topic publisher", WaitStrategy::Block, &[(INDEX, "0".into()), (COUNT, N.to_string())]);
    victim.wait_line("progress", scene.deadline());
    victim.kill();
    let result = result_line(&publisher.expect_success(scene.deadline()), publisher.what());
    let result_survivor = result_line(&survivor.expect_success(scene.deadline()), survivor.what());
    assert_eq!(field(&result_survivor, "counts"), N.to_string(), "the survivor receives every message");
    assert_eq!(topic.published(), N);
    // The publisher freed the dead subscriber's entry; the survivor left on its own.
    assert!(!topic.has_subscribers(), "the dead subscriber's entry must be freed: {:?}", topic.subscribers());
    topic.unlink().expect("unlink");
    eprintln!(
        "killed anonymous subscriber: longest publish call {} us (the publisher's wait on the dead subscriber); total {:?}",
        field(&result, "longest_publish_us"),
        started.elapsed()
    );
}

/// Runs a durable subscriber of `n` messages from one publisher, SIGKILLs it `kills` times
/// mid-stream (each run is killed at a random point in the few dozen messages after it printed
/// "progress") and restarts it under the same name; returns the sequences each run recorded.
fn durable_killed_repeatedly(scene: &Scene, ack: &str, n: u64, kills: usize) -> Vec<Vec<u64>> {
    let topic = create(scene, WaitStrategy::Block, 64);
    let run_env = |run: usize| {
        vec![
            (SUB_NAME, "billing".to_string()),
            (ACK, ack.to_string()),
            (COUNT, n.to_string()),
            (OUT, scene.join(&format!("run-{run}.bin")).display().to_string()),
            (DELAY_US, "100".to_string()),
            (PROGRESS, "700".to_string()),
        ]
    };
    let mut sub = spawn(scene, "topic durable-subscriber", WaitStrategy::Block, &run_env(0));
    sub.wait_line("ready", scene.deadline());
    let mut publisher =
        spawn(scene, "topic publisher", WaitStrategy::Block, &[(INDEX, "0".into()), (COUNT, n.to_string())]);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill delays from seed {seed}");
    let mut rng = Rng::new(seed);
    for run in 1..=kills {
        sub.wait_line("progress", scene.deadline());
        // Somewhere in the next few dozen messages.
        std::thread::sleep(Duration::from_micros(rng.below(5_000)));
        sub.kill();
        // The entry stays, and shows the subscriber dead. (Not necessarily at the first look: a
        // publisher blocked on the dead subscriber takes its entry's lock for a moment to detach
        // it, and a held lock reads as alive, never the other way round.)
        let dead_end = Instant::now() + Duration::from_secs(5);
        let mut info = topic.subscribers();
        while !info.iter().any(|s| s.name.as_deref() == Some("billing") && !s.alive) && Instant::now() < dead_end {
            std::thread::sleep(Duration::from_millis(1));
            info = topic.subscribers();
        }
        assert!(
            info.iter().any(|s| s.name.as_deref() == Some("billing") && !s.alive),
            "the killed durable subscriber keeps its entry, shown dead: {info:?}"
        );
        sub = spawn(scene, "topic durable-subscriber", WaitStrategy::Block, &run_env(run));
        sub.wait_line("ready", scene.deadline());
    }
    sub.expect_success(scene.deadline());
    publisher.expect_success(scene.deadline());
    // Away, the durable subscriber keeps its place: after the last message, acknowledged
    // explicitly, or (on next receive) by the last run's clean exit.
    let info = topic.subscribers();
    let billing = info.iter().find(|s| s.name.as_deref() == Some("billing")).expect("the durable subscriber's entry");
    let cursor = n;
    assert_eq!((billing.cursor, billing.alive), (cursor, false), "the durable subscriber's entry after its last run");
    assert!(topic.remove_subscriber("billing").expect("remove the durable subscriber"));
    topic.unlink().expect("unlink");
    (0..=kills).map(|run| read_records(&scene.join(&format!("run-{run}.bin")))).collect()
}

/// Checks the runs of a durable subscriber of `n` messages whose processing is "record, then
/// acknowledge": each run records consecutive messages, the first from 0, the last to `n - 1`,
/// and each restart begins at the last message recorded before the kill (recorded but maybe not
/// acknowledged: the one possible duplicate) or at the one after it (nothing lost).
fn check_runs(runs: &[Vec<u64>], n: u64) {
    let mut expected_first: Option<u64> = Some(0);
    for (i, r) in runs.iter().enumerate() {
        assert!(!r.is_empty(), "run {i} recorded nothing");
        for w in r.windows(2) {
            assert_eq!(w[1], w[0] + 1, "run {i}: message {} recorded after {}", w[1], w[0]);
        }
        let first = r[0];
        match expected_first {
            Some(e) => assert_eq!(first, e, "run {i} must begin with message {e}"),
            None => {
                let prev = *runs[i - 1].last().unwrap();
                assert!(
                    first == prev || first == prev + 1,
                    "run {i} begins with message {first}, but run {} recorded up to {prev}: \
                     {} (only the last recorded message may be delivered again)",
                    i - 1,
                    if first > prev + 1 { "messages were lost" } else { "acknowledged messages were delivered again" }
                );
            }
        }
        expected_first = None;
    }
    assert_eq!(*runs.last().unwrap().last().unwrap(), n - 1, "the last run records the last message");
    let total: usize = runs.iter().map(Vec::len).sum();
    let duplicates = total as u64 - n;
    assert!(duplicates <= (runs.len() - 1) as u64, "at most one duplicate per kill, got {duplicates}");
}

#[test]
fn durable_explicit_ack_subscriber_killed_repeatedly_records_every_message_and_redelivers_at_most_the_unacknowledged_one(
) {
    const N: u64 = 6_000;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = scene("topic-durable-explicit-killed");
    let runs = durable_killed_repeatedly(&scene, "explicit", N, 3);
    check_runs(&runs, N);
    let bounds: Vec<(u64, u64)> = runs.iter().map(|r| (r[0], *r.last().unwrap())).collect();
    eprintln!("explicit ack, 3 kills: runs recorded {bounds:?}; {:?}", started.elapsed());
}

#[test]
fn durable_subscriber_with_ack_on_next_receive_killed_repeatedly_loses_nothing_and_repeats_at_most_the_last_delivered_message(
) {
    const N: u64 = 6_000;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = scene("topic-durable-next-killed");
    let runs = durable_killed_repeatedly(&scene, "next", N, 3);
    check_runs(&runs, N);
    let bounds: Vec<(u64, u64)> = runs.iter().map(|r| (r[0], *r.last().unwrap())).collect();
    eprintln!("ack on next receive, 3 kills: runs recorded {bounds:?}; {:?}", started.elapsed());
}

/// A durable subscriber of `n` messages records messages and stops at `hold` (recorded, not
/// acknowledged), is killed there while the publisher is mid-stream, and is restarted;
/// returns the two runs' records.
fn durable_killed_holding(scene: &Scene, ack: &str, ack_every: u64, n: u64, hold: u64) -> (Vec<u64>, Vec<u64>) {
    let topic = create(scene, WaitStrategy::Block, 64);
    let run_env = |run: usize| {
        let mut v = vec![
            (SUB_NAME, "billing".to_string()),
            (ACK, ack.to_string()),
            (ACK_EVERY, ack_every.to_string()),
            (COUNT, n.to_string()),
            (OUT, scene.join(&format!("run-{run}.bin")).display().to_string()),
        ];
        if run == 0 {
            v.push((HOLD, hold.to_string()));
        }
        v
    };
    let mut sub = spawn(scene, "topic durable-subscriber", WaitStrategy::Block, &run_env(0));
    sub.wait_line("ready", scene.deadline());
    let mut publisher =
        spawn(scene, "topic publisher", WaitStrategy::Block, &[(INDEX, "0".into()), (COUNT, n.to_string())]);
    assert_eq!(sub.wait_line("holding", scene.deadline()), hold.to_string());
    sub.kill();
    let mut sub = spawn(scene, "topic durable-subscriber", WaitStrategy::Block, &run_env(1));
    sub.expect_success(scene.deadline());
    publisher.expect_success(scene.deadline());
    assert!(topic.remove_subscriber("billing").expect("remove the durable subscriber"));
    topic.unlink().expect("unlink");
    (read_records(&scene.join("run-0.bin")), read_records(&scene.join("run-1.bin")))
}

#[test]
fn durable_explicit_ack_subscriber_killed_before_acknowledging_resumes_at_the_first_unacknowledged_message() {
    const N: u64 = 2_000;
    const HOLD_AT: u64 = 105;
    const ACK_EVERY_N: u64 = 10;
    let _heavy = heavy();
    let scene = scene("topic-durable-explicit-hold");
    let (first, second) = durable_killed_holding(&scene, "explicit", ACK_EVERY_N, N, HOLD_AT);
    assert_eq!(first, (0..=HOLD_AT).collect::<Vec<_>>(), "the first run records 0..={HOLD_AT}");
    // Acknowledged up to 99 (after message 99); 100..=105 were delivered but not acknowledged.
    let resume = (HOLD_AT + 1) / ACK_EVERY_N * ACK_EVERY_N;
    assert_eq!(
        second,
        (resume..N).collect::<Vec<_>>(),
        "the restarted run resumes at {resume}, the first unacknowledged message"
    );
}

#[test]
fn durable_subscriber_with_ack_on_next_receive_resumes_at_the_last_message_delivered_before_the_kill() {
    const N: u64 = 2_000;
    const HOLD_AT: u64 = 300;
    let _heavy = heavy();
    let scene = scene("topic-durable-next-hold");
    let (first, second) = durable_killed_holding(&scene, "next", 1, N, HOLD_AT);
    assert_eq!(first, (0..=HOLD_AT).collect::<Vec<_>>(), "the first run records 0..={HOLD_AT}");
    assert_eq!(
        second,
        (HOLD_AT..N).collect::<Vec<_>>(),
        "the restarted run resumes at {HOLD_AT}, delivered once before the kill"
    );
}

// ---------------------------------------------------------------------------------------------
// A slow lossy subscriber
// ---------------------------------------------------------------------------------------------

#[test]
fn slow_lossy_subscriber_process_accounts_for_every_message_and_never_sees_a_torn_payload() {
    const N: u64 = 200_000;
    const CAP: usize = 16;
    let _heavy = heavy();
    let started = Instant::now();
    let scene = scene("topic-lossy-slow");
    let topic = create(&scene, WaitStrategy::Block, CAP);
    let sub_env = [(COUNT, N.to_string()), (DELAY_US, "20".to_string()), (FIRST_AFTER, (4 * CAP).to_string())];
    let mut sub = spawn(&scene, "topic lossy-subscriber", WaitStrategy::Block, &sub_env);
    sub.wait_line("ready", scene.deadline());
    let mut publisher = spawn(&scene, "topic wide-publisher", WaitStrategy::Block, &[(COUNT, N.to_string())]);
    publisher.expect_success(scene.deadline());
    let result = result_line(&sub.expect_success(scene.deadline()), sub.what());
    let (received, lagged) = (num(&result, "received"), num(&result, "lagged"));
    assert_eq!(topic.published(), N);
    assert_eq!(received + lagged, N, "received + lagged must be every message published ({result})");
    assert!(num(&result, "lag_events") >= 1, "the subscriber started 4 rings behind, so it was lapped");
    topic.unlink().expect("unlink");
    eprintln!("slow lossy subscriber: {result}; {:?}", started.elapsed());
}
