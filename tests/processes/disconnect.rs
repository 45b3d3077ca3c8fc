//! Disconnect across processes: a receiver blocked in `recv_timeout` whose only sender, a child
//! process, is SIGKILLed returns `Disconnected` soon after, not at the end of its timeout. The
//! library promises to notice a death within 100 ms; these tests only check that the death is
//! noticed at all, well before the timeout (speed belongs in the benchmarks), and print the
//! time it took.
//!
//! Every case runs for an SPSC and an MPMC queue, or a reliable and a lossy subscriber, under
//! each wait strategy. Every test runs under a watchdog and removes its temporary segment
//! directory; children are killed when the test ends, however it ends.

use std::time::{Duration, Instant};

use shmq::{QueueKind, QueueOptions, RecvTimeoutError, SubscriberMode, TopicOptions, WaitStrategy};
use shmq_test_support::payload::{stamp, unstamp};
use shmq_test_support::{poll_until, report, sleep_until_killed, ChildProc, Role, Scene};

use crate::{spawn, wait_from_env, wait_name, DIR_ENV, NAME_ENV};

/// Deadline of each test's waits for its children.
const LIMIT: Duration = Duration::from_secs(120);
/// Last resort: the watchdog aborts the test binary after this.
const WATCHDOG: Duration = Duration::from_secs(180);
/// The timeout of the receive that the sender's death must end early.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// The receive must end this long after the kill at the latest: well before [`RECV_TIMEOUT`],
/// so that a receive that ran into its timeout fails the test, and far above the promised
/// 100 ms, so that a slow machine does not.
const NOTICED_WITHIN: Duration = Duration::from_secs(5);
/// How long the parent waits for the first message, and for its receiver to be waiting.
const SOON: Duration = Duration::from_secs(10);
/// Receivers that do not sleep on a futex (spin, yield) are given this long to be waiting
/// before the kill.
const SETTLE: Duration = Duration::from_millis(200);
/// Kind tag of the message the child sends before it waits to be killed.
const KIND: u32 = 7;

/// The roles of this module's children.
pub const ROLES: &[Role] = &[("disconnect producer", producer), ("disconnect publisher", publisher)];

/// Takes a producer of the queue, sends one message, and waits to be SIGKILLed.
fn producer() {
    let q = QueueOptions::new()
        .dir(shmq_test_support::env(DIR_ENV))
        .wait(wait_from_env())
        .open(&shmq_test_support::env(NAME_ENV))
        .unwrap_or_else(|e| panic!("child opens the queue: {e}"));
    let mut tx = q.producer().expect("child takes a producer");
    tx.send_kind_timeout(KIND, &stamp(0, 0), SOON).expect("send the first message");
    report("ready");
    sleep_until_killed(LIMIT);
}

/// Takes a publisher of the topic, publishes one message, and waits to be SIGKILLed.
fn publisher() {
    let t = TopicOptions::new()
        .dir(shmq_test_support::env(DIR_ENV))
        .wait(wait_from_env())
        .open(&shmq_test_support::env(NAME_ENV))
        .unwrap_or_else(|e| panic!("child opens the topic: {e}"));
    let mut p = t.publisher().expect("child takes a publisher");
    p.send_kind_timeout(KIND, &stamp(0, 0), SOON).expect("publish the first message");
    report("ready");
    sleep_until_killed(LIMIT);
}

/// What one blocked receive gave, and when.
struct Blocked {
    result: Result<shmq::Received, RecvTimeoutError>,
    /// From the start of the receive to its return.
    blocked: Duration,
    /// From just before the SIGKILL to the return of the receive (negative: before the kill).
    since_kill: Option<Duration>,
}

/// Calls `recv` (a receive with a timeout of [`RECV_TIMEOUT`]) while another thread SIGKILLs
/// `child`, the only sender, once the receiver waits: once `asleep()` says it sleeps (`Block`),
/// or [`SETTLE`] after the receive started (spin, yield).
fn recv_while_sender_is_killed(
    wait: WaitStrategy,
    child: &mut ChildProc,
    asleep: impl Fn() -> bool + Sync,
    recv: impl FnOnce(Duration) -> Result<shmq::Received, RecvTimeoutError>,
) -> Blocked {
    std::thread::scope(|s| {
        let killer = s.spawn(|| {
            if wait == WaitStrategy::Block {
                assert!(poll_until(SOON, &asleep), "the receiver never went to sleep on the futex");
            } else {
                std::thread::sleep(SETTLE);
            }
            let killed_at = Instant::now();
            child.kill(); // SIGKILL, and reaped
            killed_at
        });
        let started = Instant::now();
        let result = recv(RECV_TIMEOUT);
        let returned = Instant::now();
        let killed_at = killer.join().expect("killer thread");
        Blocked { result, blocked: returned - started, since_kill: returned.checked_duration_since(killed_at) }
    })
}

/// Checks what the receive of `case` gave: `Disconnected`, after the kill, well before its
/// timeout. Prints the measured times.
fn check(case: &str, b: &Blocked) {
    eprintln!(
        "{case}: recv_timeout({RECV_TIMEOUT:?}) returned {:?} after {:?} blocked, {:?} after the SIGKILL",
        b.result, b.blocked, b.since_kill
    );
    let since_kill = b
        .since_kill
        .unwrap_or_else(|| panic!("{case}: the receive returned {:?} before its only sender was killed", b.result));
    assert!(
        matches!(b.result, Err(RecvTimeoutError::Disconnected)),
        "{case}: a receive whose only sender was SIGKILLed must return Disconnected, got {:?} after {:?}",
        b.result,
        b.blocked
    );
    assert!(
        since_kill < NOTICED_WITHIN,
        "{case}: the death of the only sender was noticed {since_kill:?} after the SIGKILL \
         (the receive's timeout is {RECV_TIMEOUT:?}; it must end well before)"
    );
}

const WAITS: [WaitStrategy; 3] = [WaitStrategy::Block, WaitStrategy::Yield, WaitStrategy::Spin];

#[test]
fn consumer_blocked_in_recv_timeout_gets_disconnected_soon_after_its_only_producer_is_sigkilled() {
    for kind in [QueueKind::Spsc, QueueKind::Mpmc] {
        for wait in WAITS {
            let case = format!("{kind:?} queue, {} wait", wait_name(wait));
            let scene = Scene::new(&format!("disconnect-queue-{kind:?}-{}", wait_name(wait)), LIMIT, WATCHDOG);
            let q = QueueOptions::new()
                .dir(scene.path())
                .kind(kind)
                .wait(wait)
                .capacity(8)
                .max_msg_size(64)
                .create(scene.name())
                .expect("create the queue");
            let mut rx = q.consumer().expect("consumer");
            let mut child = spawn(&scene, "disconnect producer", wait, &[]);
            child.wait_line("ready", scene.deadline());
            // The producer was there: its message arrives.
            let mut buf = [0u8; 64];
            let m = rx.recv_timeout(&mut buf, SOON).unwrap_or_else(|e| panic!("{case}: the first message: {e}"));
            assert_eq!((unstamp(&buf[..m.len]), m.kind), ((0, 0), KIND), "{case}: the first message");
            let b = recv_while_sender_is_killed(
                wait,
                &mut child,
                || q.counters().sleepers.0 != 0,
                |timeout| rx.recv_timeout(&mut buf, timeout),
            );
            check(&case, &b);
            q.unlink().expect("unlink");
        }
    }
}

#[test]
fn subscriber_blocked_in_recv_timeout_gets_disconnected_soon_after_its_only_publisher_is_sigkilled() {
    for mode in [SubscriberMode::Reliable, SubscriberMode::Lossy] {
        for wait in WAITS {
            let case = format!("{mode:?} subscriber, {} wait", wait_name(wait));
            let scene = Scene::new(&format!("disconnect-topic-{mode:?}-{}", wait_name(wait)), LIMIT, WATCHDOG);
            let t = TopicOptions::new()
                .dir(scene.path())
                .wait(wait)
                .capacity(8)
                .max_msg_size(64)
                .create(scene.name())
                .expect("create the topic");
            let mut sub = t.subscriber().mode(mode).build().expect("subscriber");
            let mut child = spawn(&scene, "disconnect publisher", wait, &[]);
            child.wait_line("ready", scene.deadline());
            // The publisher was there: its message arrives.
            let mut buf = [0u8; 64];
            let m = sub.recv_timeout(&mut buf, SOON).unwrap_or_else(|e| panic!("{case}: the first message: {e}"));
            assert_eq!((unstamp(&buf[..m.len]), m.kind), ((0, 0), KIND), "{case}: the first message");
            let b = recv_while_sender_is_killed(
                wait,
                &mut child,
                || t.counters().sleepers.0 != 0,
                |timeout| sub.recv_timeout(&mut buf, timeout),
            );
            check(&case, &b);
            t.unlink().expect("unlink");
        }
    }
}
