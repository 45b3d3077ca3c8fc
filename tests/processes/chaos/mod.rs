//! Chaos: an MPMC queue and a topic under real processes that are SIGKILLed at random.
//!
//! Four producer and four consumer processes share an MPMC queue (256 slots, Block wait); two
//! publisher and three reliable subscriber processes (two anonymous, one durable named
//! `durable` with explicit acks) share a topic. The parent kills a random one of these 13
//! participants every 50 to 200 ms (from a seeded PRNG; the seed is printed) and restarts it at
//! once: a producer or publisher with a new incarnation number (its sequence starts at 0 again),
//! the durable subscriber under its name (it resumes at its cursor), an anonymous subscriber or a
//! consumer afresh. One time in eight it kills two to four participants at once and restarts them
//! together (their attaches race); one time in four it kills a restarted one again 0 to 20 ms
//! after its start (while it opens, attaches or joins). Every process works in random bursts
//! with random pauses, and a pause often falls while it holds a claim (a loan, a `recv_ref`) or
//! between its log write and its release or ack, so that kills land mid-protocol.
//!
//! Adversarial liveness: whether a peer lives is decided with open-file-description locks
//! (`src/os.rs`), and two kinds of child attack what the former `/proc/PID/stat` +
//! `kill(pid, 0)` check got wrong. Each incarnation of each participant is, independently and
//! one time in two each (from the seed, without changing the kill schedule):
//! - **out of file descriptors**: right after it attached (opened the queue or topic; its log
//!   file exists already), before it takes its role (producer, consumer, publisher, or joins as
//!   a subscriber), it lowers its soft `RLIMIT_NOFILE` to a few above the descriptors it has
//!   open and opens `/dev/null` until `open` fails with EMFILE, and keeps them all to the end
//!   (`shmq_test_support::fds`). It checks that `open`, `dup` and `socket` all fail with EMFILE
//!   and prints so before its role, again every 256 messages and each time it is idle, and once
//!   more at the end (still attached); a free descriptor fails it. So every liveness check it
//!   makes on its peers runs with no descriptor free: consumers and producers recovering slots
//!   claimed by dead peers, subscribers and publishers recovering slots of dead publishers,
//!   publishers reaping dead subscribers that gate them, subscribers reaping dead ones while
//!   they join. The old check judged live peers dead there. A restarted incarnation attaches
//!   first and exhausts again.
//! - **in a pid namespace of its own**: started under `unshare --pid --fork --mount-proc
//!   --kill-child`, it is pid 1 of a new namespace (with its own `/proc`), so its pid means
//!   nothing to the others (several participants are pid 1 at once) and theirs nothing to it; it
//!   checks that it is pid 1 with a parent outside its namespace and prints so. Its kill
//!   SIGKILLs the process that plays the role (found as `unshare`'s child in `/proc`), not
//!   `unshare`, and reaps `unshare`, which reaped that process first: when the kill returns the
//!   victim is gone, as after a direct kill (see `fleet::Fleet::kill_namespaced`). `unshare` carries
//!   the parent-death signal of the test's thread, and `--kill-child` passes it on, so an
//!   aborted test leaves nothing behind. The test first checks that `unshare --pid --fork
//!   --mount-proc --kill-child true` works (it needs root, or user namespaces); if not, it prints
//!   a line saying that the pid-namespace part is skipped and why, and runs without it.
//!
//! Besides, the parent holds a lossy subscriber of the topic for the whole test (it never gates
//! anyone), and every child of the topic, at the same moments as the descriptor checks, asks
//! shmq (`Topic::subscribers`) whether it lives: a peer that certainly lives, judged by a
//! checker that may have no free descriptor and may be in a namespace where the parent's pid
//! means nothing. Judged dead, it fails the child.
//!
//! A live peer judged dead also shows up in the checks below: a slot recovered under its claim
//! (an acknowledged message lost, a duplicate, a torn message, a `ClaimRevoked` or other error
//! that fails the child), a reliable subscriber reaped while it lives (an error in that child,
//! or messages it misses), or `lost_by_crash`/`abandoned` above the kill counts. Every
//! adversarial incarnation that ran to the end must have printed its confirmations, and once
//! every child is reaped no process with the test's directory in its environment may be left.
//!
//! Bookkeeping survives SIGKILL: every process appends a 32-byte record per message to its own
//! log file with one `write(2)` (`check::Log`): producers and publishers after
//! `send` returned Ok (so what is logged was acknowledged by shmq), consumers and
//! subscribers right after receiving. A kill loses at most the one record in flight. Payloads
//! carry (producer id, incarnation, seq) and are fully determined by them, so a torn message is
//! caught by the receiver (which then fails).
//!
//! At the end producers and publishers are stopped, consumers and subscribers drain (each with a
//! deadline), and the logs are checked:
//! - queue: no duplicate at all; each consumer incarnation sees each producer incarnation's
//!   messages in order; every logged message was received, except at most one per consumer kill
//!   (the message a consumer died holding, counted in `lost_by_crash`, or died before logging);
//!   a received message that was not logged can only be the last send of a killed producer
//!   incarnation (killed between `send` returning and its log write); the queue ends empty;
//!   `lost_by_crash <= consumer kills`, `abandoned <= producer kills`.
//! - topic (subscribers log the topic sequence of each message): one message per topic
//!   sequence; every subscriber incarnation receives strictly increasing sequences, and from the
//!   sequence it joined at to its last receipt (to the topic's tail for incarnations that ran to
//!   the end) it misses only sequences that nobody received, at most `abandoned` of them in all
//!   (slots of killed publishers); per publisher incarnation its messages are contiguous. The
//!   durable subscriber receives every logged message; since it records before it acknowledges
//!   (`AckMode::Explicit`: receive, log, `ack()`), a kill between the log write and the ack makes
//!   the next incarnation receive that one message again, so it resumes exactly at its last
//!   logged sequence or the one after, and its duplicates are at most one per kill (each at a
//!   kill boundary).
//!
//! `SHMQ_CHAOS_SECS` sets the chaos phase (default 20 s), `SHMQ_CHAOS_SEED` replays a kill
//! schedule and which incarnations are adversarial (the timing of the processes themselves is
//! not reproducible). A child that fails
//! (a torn message, an error from shmq, a drain that does not finish) fails the test with its
//! output; a hang is ended by deadlines and a watchdog.
//!
//! `concurrent_attachers_never_take_the_same_entry_of_a_dead_participant` is the narrowed
//! reproduction of the first bug this test found (see its docs).

mod check;
mod child;
mod fleet;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use shmq::{QueueOptions, SubscriberMode, TopicOptions, WaitStrategy};
use shmq_test_support::payload::INCARNATION_MAX;
use shmq_test_support::{env_opt, heavy, pid_namespaces, processes_with_env, Rng, Scene, Spawn};

use check::{check_adversaries, check_queue, check_topic};
use fleet::Fleet;

/// The roles of this module's children: the participants, and the attacher of the attach race.
pub const ROLES: &[shmq_test_support::Role] = &[
    ("chaos producer", || child::run(Role::Producer)),
    ("chaos consumer", || child::run(Role::Consumer)),
    ("chaos publisher", || child::run(Role::Publisher)),
    ("chaos subscriber", || child::run(Role::Subscriber)),
    ("chaos durable-subscriber", || child::run(Role::Durable)),
    (ATTACHER, child::attacher),
];

const QUEUE: &str = "chaos-queue";
const TOPIC: &str = "chaos-topic";
const DURABLE: &str = "durable";
const CAPACITY: usize = 256;
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
const PUBLISHERS: usize = 2;
const ANON_SUBSCRIBERS: usize = 2;

/// Environment of a child: the test directory, its id, incarnation and log file, its time limit.
const DIR_ENV: &str = "SHMQ_CHAOS_DIR";
const ID_ENV: &str = "SHMQ_CHAOS_ID";
const INC_ENV: &str = "SHMQ_CHAOS_INC";
const LOG_ENV: &str = "SHMQ_CHAOS_LOG";
const LIMIT_ENV: &str = "SHMQ_CHAOS_LIMIT_SECS";
const SEED_ENV: &str = "SHMQ_CHAOS_CHILD_SEED";
/// Set (to 1) in a child that takes every free file descriptor right after attaching.
const EMFILE_ENV: &str = "SHMQ_CHAOS_EMFILE";

/// The role of the child in `concurrent_attachers_never_take_the_same_entry_of_a_dead_participant`.
const ATTACHER: &str = "chaos attacher";
const ATTACHMENTS_ENV: &str = "SHMQ_CHAOS_ATTACHMENTS";

/// Files in the test directory that tell senders, then receivers, to finish.
const STOP_SENDERS: &str = "stop-senders";
const STOP_RECEIVERS: &str = "stop-receivers";

/// How long one blocking call waits before the caller looks at the stop files again.
const TICK: Duration = Duration::from_millis(100);
/// How long a receiver may take to drain once told to finish.
const DRAIN: Duration = Duration::from_secs(30);
/// A child verifies its adversarial state (see [`Ctx::verify`]) every this many messages, and
/// whenever it is idle.
const VERIFY_EVERY: u64 = 256;

/// What a chaos participant does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends to the queue.
    Producer,
    /// Receives from the queue.
    Consumer,
    /// Publishes to the topic.
    Publisher,
    /// An anonymous reliable subscriber of the topic.
    Subscriber,
    /// The durable (named) reliable subscriber of the topic.
    Durable,
}

impl Role {
    /// Its name, in logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
            Role::Durable => "durable-subscriber",
        }
    }

    /// The child role that plays it (see [`ROLES`]).
    pub fn child_role(self) -> String {
        format!("chaos {}", self.name())
    }

    /// Producers and publishers.
    pub fn sends(self) -> bool {
        matches!(self, Role::Producer | Role::Publisher)
    }
}

/// Queue producers have ids 1.., publishers 101..: a message in the wrong ring is caught.
pub const PRODUCER_ID_BASE: u32 = 1;
/// See [`PRODUCER_ID_BASE`].
pub const PUBLISHER_ID_BASE: u32 = 101;

/// One run (incarnation) of one participant, as the checks see it.
pub struct Run {
    /// What it did.
    pub role: Role,
    /// Which of the participants of its role.
    pub index: usize,
    /// Its incarnation number (0 for the first run).
    pub inc: u32,
    /// Its log file (absent if it was killed before it made one).
    pub log: PathBuf,
    /// Its stdout and stderr.
    pub out: PathBuf,
    /// Whether the parent killed it (otherwise it ran to the end).
    pub killed: bool,
    /// Whether it took every free file descriptor right after attaching (so that it checked its
    /// peers' liveness with none left).
    pub emfile: bool,
    /// Whether it ran as pid 1 of a pid namespace of its own (under `unshare`).
    pub pidns: bool,
}

/// How many runs of `role` were killed.
pub fn kills(runs: &[Run], role: Role) -> usize {
    runs.iter().filter(|r| r.role == role && r.killed).count()
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// Sleeps `d` in short steps, failing as soon as a child ends by itself.
fn pause(fleet: &mut Fleet, d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    loop {
        fleet.check_running()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

#[test]
fn queue_and_topic_lose_duplicate_or_tear_nothing_while_participants_are_killed_at_random() {
    let _heavy = heavy();
    let began = Instant::now();
    let secs = env_opt("SHMQ_CHAOS_SECS").unwrap_or(20);
    let seed = env_opt("SHMQ_CHAOS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        (t as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    println!("chaos: seed {seed}, {secs} s of kills (replay the kill schedule with SHMQ_CHAOS_SEED={seed})");
    let pidns = match pid_namespaces() {
        Ok(()) => {
            println!("chaos: pid namespaces: on (half the incarnations run as pid 1 of a namespace of their own)");
            true
        }
        Err(why) => {
            println!("chaos: pid-namespace part SKIPPED (every child runs in this pid namespace): {why}");
            false
        }
    };
    let limit = Duration::from_secs(secs + 180);
    let tmp = Scene::new(&format!("chaos (seed {seed})"), limit, Duration::from_secs(secs + 240));
    let mut fleet = Fleet::new(tmp.path(), limit, seed, pidns);
    let seg = tmp.path().join("seg");
    let q = QueueOptions::new()
        .dir(&seg)
        .capacity(CAPACITY)
        .max_msg_size(INCARNATION_MAX)
        .wait(WaitStrategy::Block)
        .create(QUEUE)
        .expect("create the queue");
    let t = TopicOptions::new()
        .dir(&seg)
        .capacity(CAPACITY)
        .max_msg_size(INCARNATION_MAX)
        .wait(WaitStrategy::Block)
        .create(TOPIC)
        .expect("create the topic");
    // A peer that lives throughout: the children of the topic check that shmq judges it alive
    // (`Ctx::verify`). Lossy, so it never gates the publishers.
    let sentinel = t.subscriber().mode(SubscriberMode::Lossy).build().expect("the parent's lossy subscriber");

    let fail = |what: &str, e: String| -> ! { panic!("chaos (seed {seed}): {what}: {e}") };
    // The durable subscriber joins before anything is published, so it must see every message.
    let soon = Instant::now() + Duration::from_secs(30);
    let durable = fleet.add(Role::Durable, 0);
    fleet.wait_joined(durable, soon).unwrap_or_else(|e| fail("start", e));
    for i in 0..ANON_SUBSCRIBERS {
        let m = fleet.add(Role::Subscriber, i);
        fleet.wait_joined(m, soon).unwrap_or_else(|e| fail("start", e));
    }
    for i in 0..CONSUMERS {
        fleet.add(Role::Consumer, i);
    }
    for i in 0..PRODUCERS {
        fleet.add(Role::Producer, i);
    }
    for i in 0..PUBLISHERS {
        fleet.add(Role::Publisher, i);
    }

    let mut rng = Rng::new(seed);
    let chaos_end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < chaos_end {
        pause(&mut fleet, Duration::from_millis(rng.range(50, 200))).unwrap_or_else(|e| fail("during the kills", e));
        let n = fleet.participants() as u64;
        let mut victims = vec![rng.range(0, n - 1) as usize];
        // One time in eight, several at once, restarted together: their attaches race.
        if rng.range(0, 7) == 0 {
            for _ in 0..rng.range(1, 3) {
                let v = rng.range(0, n - 1) as usize;
                if !victims.contains(&v) {
                    victims.push(v);
                }
            }
        }
        for &v in &victims {
            fleet.kill(v).unwrap_or_else(|e| fail("during the kills", e));
        }
        for &v in &victims {
            fleet.spawn(v);
        }
        // One time in four, kill a restarted one again while it starts (opens, attaches, joins).
        if rng.range(0, 3) == 0 {
            let v = victims[0];
            pause(&mut fleet, Duration::from_micros(rng.range(0, 20_000)))
                .unwrap_or_else(|e| fail("during the kills", e));
            fleet.kill(v).unwrap_or_else(|e| fail("during the kills", e));
            fleet.spawn(v);
        }
    }
    let chaos_took = began.elapsed();

    std::fs::write(tmp.path().join(STOP_SENDERS), b"").expect("write the stop file");
    fleet
        .wait_exit(Role::sends, Instant::now() + Duration::from_secs(30))
        .unwrap_or_else(|e| fail("stopping senders", e));
    std::fs::write(tmp.path().join(STOP_RECEIVERS), b"").expect("write the stop file");
    fleet
        .wait_exit(|_| true, Instant::now() + DRAIN + Duration::from_secs(15))
        .unwrap_or_else(|e| fail("draining receivers", e));

    let (qc, tc) = (q.counters(), t.counters());
    let mut failures = Vec::new();
    let qr = check_queue(&fleet.runs, &qc, q.len(), &mut failures);
    let tr = check_topic(&fleet.runs, &tc, t.published(), &mut failures);
    let ar = check_adversaries(&fleet.runs, &mut failures);
    // Every child was reaped, and every child under unshare was reaped by it first: nothing of
    // this test may run any more.
    let dir = tmp.path().to_str().expect("a UTF-8 temporary directory");
    let left = processes_with_env(DIR_ENV, dir);
    if !left.is_empty() {
        failures.push(format!("processes left behind after every child was reaped: {left:?}"));
    }

    println!("chaos summary (seed {seed}, kills for {chaos_took:.1?}, total {:.1?}):", began.elapsed());
    for role in [Role::Producer, Role::Consumer, Role::Publisher, Role::Subscriber, Role::Durable] {
        println!(
            "  {:<19} kills {:>3}, incarnations {:>3}",
            role.name(),
            fleet.kills(role),
            fleet.runs.iter().filter(|r| r.role == role).count()
        );
    }
    println!(
        "  queue: {} logged sends, {} received ({} sent but unlogged: killed right after send), {} missing; \
         lost_by_crash {}, abandoned {}, aborted {}, full_events {}",
        qr.sent, qr.received, qr.unlogged_sends, qr.missing, qc.lost_by_crash, qc.abandoned, qc.aborted, qc.full_events
    );
    println!(
        "  topic: {} logged publishes, tail {}, received {} by anonymous and {} by the durable subscriber \
         ({} duplicates), {} unlogged publishes received; {} holes, abandoned {}",
        tr.published,
        tr.tail,
        tr.received_anon,
        tr.received_durable,
        tr.durable_duplicates,
        tr.unlogged_publishes,
        tr.holes,
        tc.abandoned
    );
    println!(
        "  out of file descriptors: {} incarnations, {} confirmed EMFILE before their role, {} ran to the end \
         and confirmed it again",
        ar.emfile, ar.emfile_confirmed, ar.emfile_to_the_end
    );
    if pidns {
        println!(
            "  own pid namespace: {} incarnations, {} confirmed pid 1, {} ran to the end",
            ar.pidns, ar.pidns_confirmed, ar.pidns_to_the_end
        );
    } else {
        println!("  own pid namespace: skipped (see above)");
    }
    assert!(failures.is_empty(), "chaos (seed {seed}) found {} problems:\n{}", failures.len(), failures.join("\n"));
    drop(fleet);
    drop(sentinel);
    q.unlink().expect("remove the queue");
    t.unlink().expect("remove the topic");
}

/// Processes that attach at the same moment, when every free participant entry is gone, take
/// over entries of dead processes. Two of them must never take the same one: they would share a
/// participant id, so that one's claims look alive while it is dead (never recovered: the ring
/// wedges) or dead while it lives (recovered under it), and the first to detach frees the
/// other's entry.
///
/// The race (`Participants::attach`, second pass, src/participants.rs): a taker checks that
/// the entry's process is dead (a `/proc` read, tens of microseconds) and then CASes the state
/// ACTIVE -> BUSY; another taker that took the entry and made it ACTIVE again in between is not
/// noticed (ABA on the state word), so both own it.
///
/// Each round a child fills the participant table (63 entries, plus the parent's one) and is
/// killed; then four threads attach at once, and the table must show an entry for each of the
/// five attachments. The race this catches is narrow (it showed up in about one round in ten
/// on two cores), so the test runs up to 60 rounds and stops at the first failure.
#[test]
fn concurrent_attachers_never_take_the_same_entry_of_a_dead_participant() {
    const THREADS: usize = 4;
    let limit = Duration::from_secs(180);
    let scene = Scene::new("attach race", limit, limit);
    let dir = scene.path().to_path_buf();
    let q = QueueOptions::new().dir(&dir).capacity(8).create(QUEUE).expect("create the queue");
    let me = std::process::id();
    for round in 0..60 {
        let ready = dir.join("attached");
        let _ = std::fs::remove_file(&ready);
        let mut child = Spawn::new(ATTACHER)
            .env(DIR_ENV, &dir)
            .env(ATTACHMENTS_ENV, (shmq::layout::DEFAULT_PARTICIPANTS - 1).to_string())
            .command()
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the attacher");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(st) = child.try_wait().expect("try_wait") {
                panic!("the attacher ended with {st} before it attached");
            }
            assert!(Instant::now() < deadline, "the attacher did not attach within 30 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("kill the attacher");
        child.wait().expect("reap the attacher");

        let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (start, dir) = (start.clone(), dir.clone());
                std::thread::spawn(move || {
                    start.wait();
                    QueueOptions::new().dir(&dir).open(QUEUE).expect("attach to the queue")
                })
            })
            .collect();
        let held: Vec<_> = threads.into_iter().map(|t| t.join().expect("an attaching thread")).collect();
        let status = shmq::status::Status::read(&dir, QUEUE).expect("read the queue's status");
        let mine = status.participants.iter().filter(|p| p.pid == me).count();
        assert_eq!(
            mine,
            THREADS + 1,
            "round {round}: {} attachments of this process hold {mine} participant entries: two attachers \
             took over the same entry of a dead process",
            THREADS + 1
        );
        drop(held);
    }
    q.unlink().expect("remove the queue");
}
