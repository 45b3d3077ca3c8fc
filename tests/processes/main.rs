//! Queues and topics across real processes: the parent test and child processes that are this
//! test binary again, each playing a role (see `shmq_test_support`'s crate docs for how).
//!
//! - [`queue`]: a million messages each way, and peers SIGKILLed (or exiting) mid-protocol;
//! - [`topic`]: fan-out of a million messages, killed subscribers (anonymous and durable), a
//!   slow lossy subscriber;
//! - [`chaos`]: an MPMC queue and a topic under processes SIGKILLed at random, some of them out
//!   of file descriptors or in pid namespaces of their own;
//! - [`trust`]: the trust suite's promises that need a second process (liveness under EMFILE
//!   and across pid namespaces, dead subscribers and sleepers); the rest is `tests/trust.rs`;
//! - [`disconnect`]: a consumer or subscriber blocked in `recv_timeout` returns `Disconnected`
//!   soon after its only sender, a child process, is SIGKILLed;
//! - [`waitset`]: one thread on a `WaitSet` takes a million messages from eight producer
//!   processes, and uses no CPU while they are idle;
//! - [`service`]: four client processes call two server processes; one server is SIGKILLed
//!   holding a request, a client is SIGKILLed with calls in flight;
//! - [`journal`]: a recorder process SIGKILLed every ~200 ms and restarted while a publisher
//!   publishes: the journal holds every message once;
//! - [`deadletter`]: consumer processes SIGKILLed holding a poison message until it is
//!   dead-lettered, and SIGKILLed at random while rejecting: nothing lost, nothing doubled;
//! - [`group`]: two publishers and two consumer groups of member processes share a million
//!   messages, each group every message once; members SIGKILLed every ~200 ms lose nothing.
//!
//! Every test works in a private temporary directory under a watchdog; children die with the
//! test, however it ends. The CPU-heavy tests take `shmq_test_support::heavy()`, so that they
//! run one at a time.

use shmq::WaitStrategy;
use shmq_test_support::{env, ChildProc, Scene};

mod chaos;
mod deadletter;
mod disconnect;
mod group;
mod journal;
mod queue;
mod service;
mod topic;
mod trust;
mod waitset;

shmq_test_support::children!(
    queue::ROLES,
    topic::ROLES,
    chaos::ROLES,
    trust::ROLES,
    disconnect::ROLES,
    waitset::ROLES,
    service::ROLES,
    journal::ROLES,
    deadletter::ROLES,
    group::ROLES
);

/// Environment of a queue or topic child: the segment directory, the segment's name, the wait
/// strategy (`spin`, `yield` or `block`).
const DIR_ENV: &str = "SHMQ_DIR";
const NAME_ENV: &str = "SHMQ_TEST_NAME";
const WAIT_ENV: &str = "SHMQ_TEST_WAIT";

fn wait_name(w: WaitStrategy) -> &'static str {
    match w {
        WaitStrategy::Spin => "spin",
        WaitStrategy::Yield => "yield",
        WaitStrategy::Block => "block",
    }
}

/// The wait strategy a child was told ([`WAIT_ENV`]).
fn wait_from_env() -> WaitStrategy {
    match env(WAIT_ENV).as_str() {
        "spin" => WaitStrategy::Spin,
        "yield" => WaitStrategy::Yield,
        "block" => WaitStrategy::Block,
        w => panic!("unknown wait strategy {w:?}"),
    }
}

/// Starts a child playing `role` on the segment named like the scene, in its directory, with
/// `wait`, and `extra` in its environment.
fn spawn(scene: &Scene, role: &str, wait: WaitStrategy, extra: &[(&str, String)]) -> ChildProc {
    let mut envs = vec![
        (DIR_ENV, scene.path().display().to_string()),
        (NAME_ENV, scene.name().to_string()),
        (WAIT_ENV, wait_name(wait).to_string()),
    ];
    envs.extend(extra.iter().cloned());
    ChildProc::spawn(role, &envs)
}
