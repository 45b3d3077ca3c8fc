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
//!   (`chaos_support::adversary`). It checks that `open`, `dup` and `socket` all fail with EMFILE
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
//!   victim is gone, as after a direct kill (see `Fleet::kill_namespaced`). `unshare` carries
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
//! log file with one `write(2)` (`chaos_support::Log`): producers and publishers after
//! `send`/`publish` returned Ok (so what is logged was acknowledged by shmq), consumers and
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

mod chaos_support;

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chaos_support::adversary::{self, Exhausted};
use chaos_support::{
    check_queue, check_topic, decode, encode, kills, Log, Rec, Rng, Role, Run, Tag, Watchdog, MAX_MSG, PARENT_ENV,
    PIDNS_ENV, PRODUCER_ID_BASE, PUBLISHER_ID_BASE, ROLE_ENV,
};
use shmq::{AckMode, Error, QueueOptions, Start, SubscriberMode, Topic, TopicOptions, WaitStrategy};

/// The test that child processes run.
const ENTRY: &str = "chaos_child_plays_the_role_named_in_its_environment";

const QUEUE: &str = "chaos-queue";
const TOPIC: &str = "chaos-topic";
const DURABLE: &str = "durable";
const CAPACITY: u64 = 256;
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
const ATTACHER: &str = "attacher";
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

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

/// What a child knows: where it is, who it is, where it logs.
struct Ctx {
    dir: PathBuf,
    id: u32,
    inc: u32,
    log: Log,
    until: Instant,
    pace: Pace,
    /// Whether to take every free descriptor once attached.
    emfile: bool,
    /// The descriptors taken (`emfile`, once attached).
    exhausted: Option<Exhausted>,
    /// Pid of the parent, as the parent's pid namespace sees it.
    parent: u32,
    /// Messages handled, for [`VERIFY_EVERY`].
    handled: u64,
    /// How many times [`Ctx::verify`] ran, and how many times it found the parent's subscriber
    /// of the topic alive.
    verified: u64,
    parent_alive: u64,
}

/// Random bursts and pauses, so that the rings are sometimes full and sometimes empty (and the
/// logs stay a manageable size). A pause falls at a random point of the message's handling:
/// while its slot is claimed (a loan or a `recv_ref` held), after the receiver logged it but
/// before it released (or acknowledged) it, or after everything: so that kills often land in
/// the middle of the protocol, not only between messages.
struct Pace {
    rng: Rng,
    left: u64,
    burst: u64,
    pause_ms: u64,
}

/// Where a pause falls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The slot is claimed, nothing logged yet.
    Holding,
    /// Receivers: logged, the slot still claimed (or the durable message not yet acknowledged).
    Logged,
    /// Done with the message.
    After,
}

/// A pause of the current message, if it ends a burst.
#[derive(Clone, Copy)]
struct Nap(Option<(Duration, Phase)>);

impl Nap {
    fn at(self, phase: Phase) {
        if let Some((d, p)) = self.0 {
            if p == phase {
                std::thread::sleep(d);
            }
        }
    }

    fn holds(self) -> bool {
        matches!(self.0, Some((_, Phase::Holding)))
    }
}

impl Pace {
    /// Counts one message; the message that ends a burst of 1 to `burst` gets a pause of 0 to
    /// `pause_ms`.
    fn next(&mut self, receiver: bool) -> Nap {
        if self.left > 0 {
            self.left -= 1;
            return Nap(None);
        }
        self.left = self.rng.range(1, self.burst);
        let d = Duration::from_millis(self.rng.range(0, self.pause_ms));
        let phase = match self.rng.range(0, 2) {
            0 => Phase::Holding,
            1 if receiver => Phase::Logged,
            _ => Phase::After,
        };
        Nap(Some((d, phase)))
    }

    fn coin(&mut self) -> bool {
        self.rng.next_u64() & 1 == 0
    }
}

impl Ctx {
    fn from_env() -> Ctx {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("chaos child needs {k}"));
        let num = |k: &str| var(k).parse::<u64>().unwrap_or_else(|_| panic!("{k} is not a number"));
        // The log exists before the child touches shmq: a message of an incarnation without a
        // log file is a phantom.
        let log = Log::create(Path::new(&var(LOG_ENV)));
        let (burst, pause_ms) = match Role::from_name(&var(ROLE_ENV)) {
            Role::Producer | Role::Publisher => (128, 20),
            _ => (256, 10),
        };
        let mut rng = Rng::new(num(SEED_ENV));
        let left = rng.range(1, burst);
        Ctx {
            dir: PathBuf::from(var(DIR_ENV)),
            id: num(ID_ENV) as u32,
            inc: num(INC_ENV) as u32,
            log,
            until: Instant::now() + Duration::from_secs(num(LIMIT_ENV)),
            pace: Pace { rng, left, burst, pause_ms },
            emfile: std::env::var_os(EMFILE_ENV).is_some(),
            exhausted: None,
            parent: num(PARENT_ENV) as u32,
            handled: 0,
            verified: 0,
            parent_alive: 0,
        }
    }

    /// Called right after the child attached (opened its queue or topic, before it takes its
    /// role): an `emfile` child takes every free descriptor now, and keeps them to the end. Its
    /// log file exists already; nothing it does afterwards may need a descriptor, and every
    /// liveness check it makes on its peers (recovering a dead producer's or publisher's slot,
    /// reaping dead subscribers while joining or publishing) runs with none free.
    fn attached(&mut self) {
        if self.emfile {
            self.exhausted = Some(adversary::exhaust_fds());
        }
    }

    /// Checks what this child's adversarial state claims, with shmq's help where it can:
    /// - an `emfile` child has no free descriptor (`open`, `dup`, `socket` fail with EMFILE);
    /// - a child of the topic (`topic`) finds the lossy subscriber the parent holds for the whole
    ///   test alive, by shmq's own liveness check (`Topic::subscribers`, a lock query through a
    ///   descriptor the attachment holds): a peer that certainly lives, judged by a checker that
    ///   may have no free descriptor and may be in a pid namespace where the parent's pid means
    ///   nothing (the entry holds the parent's pid as its own namespace sees it).
    fn verify(&mut self, topic: Option<&Topic>) {
        if self.exhausted.is_some() {
            adversary::check_out_of_fds();
        }
        if let Some(t) = topic {
            let subs = t.subscribers();
            let sentinel = subs.iter().find(|s| s.lossy && s.pid == self.parent);
            assert!(
                sentinel.is_some_and(|s| s.alive),
                "the lossy subscriber of the parent (pid {}), alive throughout, is judged {:?} (emfile {}, pid \
                 namespace of its own {}): a live peer judged dead; every subscriber: {subs:?}",
                self.parent,
                sentinel.map(|s| if s.alive { "alive" } else { "dead" }),
                self.exhausted.is_some(),
                std::env::var_os(PIDNS_ENV).is_some()
            );
            self.parent_alive += 1;
        }
        self.verified += 1;
    }

    /// Counts one message handled; verifies every [`VERIFY_EVERY`] of them.
    fn handled(&mut self, topic: Option<&Topic>) {
        self.handled += 1;
        if self.handled % VERIFY_EVERY == 0 {
            self.verify(topic);
        }
    }

    /// The role ended normally, still attached: verifies once more; an `emfile` child says that
    /// it still has no free descriptor.
    fn finish(&mut self, topic: Option<&Topic>) {
        self.verify(topic);
        if let Some(ex) = &self.exhausted {
            let mut what =
                format!("{} messages handled, no descriptor free at each of {} checks", self.handled, self.verified);
            if topic.is_some() {
                what += &format!(", the parent's subscriber judged alive each time ({})", self.parent_alive);
            }
            ex.finish(&what);
        }
    }

    fn segments(&self) -> PathBuf {
        self.dir.join("seg")
    }

    fn told(&self, stop: &str) -> bool {
        self.dir.join(stop).exists()
    }

    fn check_time(&self) {
        assert!(Instant::now() < self.until, "chaos child ran past its time limit (the parent is gone or hung)");
    }
}

/// Runs the child role named in the environment; does nothing in a normal test run.
#[test]
fn chaos_child_plays_the_role_named_in_its_environment() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    chaos_support::die_with_parent();
    if role == ATTACHER {
        return attacher();
    }
    let mut cx = Ctx::from_env();
    match Role::from_name(&role) {
        Role::Producer => producer(&mut cx),
        Role::Consumer => consumer(&mut cx),
        Role::Publisher => publisher(&mut cx),
        Role::Subscriber => subscriber(&mut cx, false),
        Role::Durable => subscriber(&mut cx, true),
    }
}

/// Opens the queue `ATTACHMENTS_ENV` times, says so with the file `attached`, and waits to be
/// killed (so that its participant entries are left to a dead process).
fn attacher() {
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("the test directory"));
    let n: usize = std::env::var(ATTACHMENTS_ENV).expect("the number of attachments").parse().expect("a number");
    let held: Vec<_> =
        (0..n).map(|_| QueueOptions::new().dir(&dir).open(QUEUE).expect("attach to the queue")).collect();
    std::fs::write(dir.join("attached"), b"").expect("write the ready file");
    std::thread::sleep(Duration::from_secs(60));
    panic!("attacher holding {} attachments was not killed within 60 s", held.len());
}

/// A producer: sends (or, half the time and whenever it pauses while holding, writes a loan
/// in place and commits it), then logs.
fn producer(cx: &mut Ctx) {
    let q = QueueOptions::new().dir(cx.segments()).wait(WaitStrategy::Block).open(QUEUE).expect("open the queue");
    cx.attached();
    let mut tx = q.producer().expect("a producer");
    let mut buf = [0u8; MAX_MSG];
    let mut seq = 0u64;
    loop {
        if seq % 16 == 0 && cx.told(STOP_SENDERS) {
            break;
        }
        let len = encode(cx.id, cx.inc, seq, &mut buf);
        let nap = cx.pace.next(false);
        let mut sent = false;
        if nap.holds() || cx.pace.coin() {
            match tx.try_loan() {
                Ok(mut loan) => {
                    loan[..len].copy_from_slice(&buf[..len]);
                    nap.at(Phase::Holding);
                    loan.commit(len).expect("commit a loan");
                    sent = true;
                }
                // Disconnected: every consumer is between two incarnations.
                Err(Error::Full | Error::Disconnected) => {}
                Err(e) => panic!("producer {} incarnation {}: loan failed: {e}", cx.id, cx.inc),
            }
        }
        if !sent {
            match tx.send_timeout(&buf[..len], TICK) {
                Ok(()) => {}
                Err(e @ (Error::Timeout | Error::Disconnected)) => {
                    if matches!(e, Error::Disconnected) {
                        std::thread::sleep(TICK); // no consumer for now: wait for the next one
                    }
                    if cx.told(STOP_SENDERS) {
                        break;
                    }
                    cx.check_time();
                    cx.verify(None);
                    continue;
                }
                Err(e) => panic!("producer {} incarnation {}: send failed: {e}", cx.id, cx.inc),
            }
        }
        cx.log.append(Rec { tag: Tag::Sent, id: cx.id, inc: cx.inc, seq, tseq: 0 });
        seq += 1;
        cx.handled(None);
        nap.at(Phase::After);
    }
    cx.finish(None);
}

/// A consumer: borrows each message in place, logs it, releases it.
fn consumer(cx: &mut Ctx) {
    let q = QueueOptions::new().dir(cx.segments()).wait(WaitStrategy::Block).open(QUEUE).expect("open the queue");
    cx.attached();
    let mut rx = q.consumer().expect("a consumer");
    let mut drain_until = None;
    loop {
        match rx.recv_ref_timeout(TICK) {
            Ok(m) => {
                let nap = cx.pace.next(true);
                nap.at(Phase::Holding);
                let (id, inc, seq) = decode(&m).unwrap_or_else(|e| panic!("consumer received {e}"));
                cx.log.append(Rec { tag: Tag::Received, id, inc, seq, tseq: 0 });
                nap.at(Phase::Logged);
                drop(m);
                cx.handled(None);
                nap.at(Phase::After);
                continue;
            }
            Err(Error::Timeout) => {}
            // Every producer is between two incarnations: wait for the next one.
            Err(Error::Disconnected) => std::thread::sleep(TICK),
            Err(e) => panic!("consumer: receive failed: {e}"),
        }
        if cx.told(STOP_RECEIVERS) {
            if q.is_empty() {
                break;
            }
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            assert!(
                Instant::now() < until,
                "consumer: the queue still holds {} messages that nobody can receive after {DRAIN:?} (counters {:?})",
                q.len(),
                q.counters()
            );
        }
        cx.check_time();
        cx.verify(None);
    }
    cx.finish(None);
}

/// A publisher: like a producer, with topic loans.
fn publisher(cx: &mut Ctx) {
    let t = TopicOptions::new().dir(cx.segments()).wait(WaitStrategy::Block).open(TOPIC).expect("open the topic");
    cx.attached();
    let mut publisher = t.publisher().expect("a publisher");
    let mut buf = [0u8; MAX_MSG];
    let mut seq = 0u64;
    loop {
        if seq % 16 == 0 && cx.told(STOP_SENDERS) {
            break;
        }
        let len = encode(cx.id, cx.inc, seq, &mut buf);
        let nap = cx.pace.next(false);
        let mut sent = false;
        if nap.holds() || cx.pace.coin() {
            match publisher.try_loan() {
                Ok(mut loan) => {
                    loan[..len].copy_from_slice(&buf[..len]);
                    nap.at(Phase::Holding);
                    loan.commit(len).expect("commit a loan");
                    sent = true;
                }
                Err(Error::Full) => {}
                Err(e) => panic!("publisher {} incarnation {}: loan failed: {e}", cx.id, cx.inc),
            }
        }
        if !sent {
            match publisher.publish_timeout(&buf[..len], TICK) {
                Ok(()) => {}
                Err(Error::Timeout) => {
                    if cx.told(STOP_SENDERS) {
                        break;
                    }
                    cx.check_time();
                    cx.verify(Some(&t));
                    continue;
                }
                Err(e) => panic!("publisher {} incarnation {}: publish failed: {e}", cx.id, cx.inc),
            }
        }
        cx.log.append(Rec { tag: Tag::Sent, id: cx.id, inc: cx.inc, seq, tseq: 0 });
        seq += 1;
        cx.handled(Some(&t));
        nap.at(Phase::After);
    }
    cx.finish(Some(&t));
}

/// A reliable subscriber: anonymous (joins at the latest message), or the durable one (joins at
/// the earliest on its first start, resumes at its cursor after). Each message is borrowed in
/// place, logged, released, and (durable) acknowledged with `ack()`.
fn subscriber(cx: &mut Ctx, durable: bool) {
    let t = TopicOptions::new().dir(cx.segments()).wait(WaitStrategy::Block).open(TOPIC).expect("open the topic");
    cx.attached();
    let mut sub = if durable {
        t.subscriber().name(DURABLE).start(Start::Earliest).ack(AckMode::Explicit).build()
    } else {
        t.subscriber().build()
    }
    .expect("join the topic");
    cx.log.append(Rec { tag: Tag::Start, id: 0, inc: 0, seq: 0, tseq: sub.position() });
    let mut drain_until = None;
    loop {
        let nap = match sub.recv_ref_timeout(TICK) {
            Ok(m) => {
                let nap = cx.pace.next(true);
                nap.at(Phase::Holding);
                let tseq = m.sequence();
                let (id, inc, seq) =
                    decode(&m).unwrap_or_else(|e| panic!("subscriber received at topic sequence {tseq}: {e}"));
                cx.log.append(Rec { tag: Tag::Received, id, inc, seq, tseq });
                nap.at(Phase::Logged);
                Some(nap)
            }
            Err(Error::Timeout) => None,
            // Every publisher is between two incarnations: wait for the next one.
            Err(Error::Disconnected) => {
                std::thread::sleep(TICK);
                None
            }
            Err(e) => panic!("subscriber: receive failed: {e}"),
        };
        if let Some(nap) = nap {
            if durable {
                sub.ack();
            }
            cx.handled(Some(&t));
            nap.at(Phase::After);
            continue;
        }
        if cx.told(STOP_RECEIVERS) {
            if sub.lag() == 0 {
                break;
            }
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            assert!(
                Instant::now() < until,
                "subscriber stuck at topic sequence {} with {} messages unread after {DRAIN:?} (counters {:?})",
                sub.position(),
                sub.lag(),
                t.counters()
            );
        }
        cx.check_time();
        cx.verify(Some(&t));
    }
    cx.finish(Some(&t));
}

// ---------------------------------------------------------------------------------------------
// The parent: the fleet of children
// ---------------------------------------------------------------------------------------------

/// One of the 13 participants, restarted after each kill.
struct Member {
    role: Role,
    index: usize,
    child: Option<Child>,
    /// Index of its current incarnation in `Fleet::runs`.
    current: usize,
    incarnations: u32,
}

struct Fleet {
    seed: u64,
    dir: PathBuf,
    exe: PathBuf,
    limit: Duration,
    /// Whether children may be started in pid namespaces of their own.
    pidns: bool,
    members: Vec<Member>,
    runs: Vec<Run>,
}

impl Fleet {
    fn new(dir: &Path, limit: Duration, seed: u64, pidns: bool) -> Fleet {
        for sub in ["seg", "logs", "out"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create a test directory");
        }
        Fleet {
            seed,
            dir: dir.to_path_buf(),
            exe: std::env::current_exe().expect("path of the test binary"),
            limit,
            pidns,
            members: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Adds a participant and starts its first incarnation; returns its index.
    fn add(&mut self, role: Role, index: usize) -> usize {
        self.members.push(Member { role, index, child: None, current: 0, incarnations: 0 });
        let m = self.members.len() - 1;
        self.spawn(m);
        m
    }

    /// Starts the next incarnation of member `m`.
    fn spawn(&mut self, m: usize) {
        let (role, index, inc) = {
            let mb = &self.members[m];
            (mb.role, mb.index, mb.incarnations)
        };
        let stem = format!("{}-{index}-{inc}", role.name());
        let log = self.dir.join("logs").join(format!("{stem}.log"));
        let out = self.dir.join("out").join(format!("{stem}.txt"));
        let out_file = File::create(&out).expect("create a child output file");
        let err_file = out_file.try_clone().expect("clone a file handle");
        let id = match role {
            Role::Producer => PRODUCER_ID_BASE + index as u32,
            Role::Publisher => PUBLISHER_ID_BASE + index as u32,
            _ => index as u32,
        };
        // Which adversarial parts this incarnation plays, each one time in two (from the seed,
        // without touching the kill schedule's generator).
        let mut dice = Rng::new(self.seed.rotate_left(29) ^ (m as u64) << 40 ^ u64::from(inc) ^ 0xAD5E);
        let emfile = dice.range(0, 1) == 0;
        let pidns = dice.range(0, 1) == 0 && self.pidns;
        let args = ["--exact", ENTRY, "--nocapture", "--test-threads=1"];
        let mut cmd = if pidns {
            let mut cmd = adversary::in_pid_namespace(&self.exe, &args);
            cmd.env(PIDNS_ENV, "1");
            cmd
        } else {
            let mut cmd = Command::new(&self.exe);
            cmd.args(args);
            cmd
        };
        if emfile {
            cmd.env(EMFILE_ENV, "1");
        }
        let child = cmd
            .env(ROLE_ENV, role.name())
            .env(PARENT_ENV, std::process::id().to_string())
            .env(DIR_ENV, &self.dir)
            .env(ID_ENV, id.to_string())
            .env(INC_ENV, inc.to_string())
            .env(LOG_ENV, &log)
            .env(LIMIT_ENV, self.limit.as_secs().to_string())
            .env(SEED_ENV, Rng::new(self.seed ^ (m as u64) << 32 ^ u64::from(inc)).next_u64().to_string())
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {stem}: {e}"));
        self.runs.push(Run { role, index, inc, log, out, killed: false, emfile, pidns });
        let mb = &mut self.members[m];
        mb.child = Some(child);
        mb.current = self.runs.len() - 1;
        mb.incarnations += 1;
    }

    fn describe(&self, m: usize) -> String {
        let run = &self.runs[self.members[m].current];
        format!("{} {} incarnation {}", run.role.name(), run.index, run.inc)
    }

    /// What incarnation `run` printed (its last lines).
    fn output(&self, run: usize) -> String {
        let text = std::fs::read_to_string(&self.runs[run].out).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    fn died_by_itself(&self, m: usize, st: ExitStatus) -> String {
        format!(
            "{} exited by itself with {st}; its output:\n{}",
            self.describe(m),
            self.output(self.members[m].current)
        )
    }

    /// SIGKILLs member `m` and reaps it. `Err` if it had already ended by itself.
    fn kill(&mut self, m: usize) -> Result<(), String> {
        let cur = self.members[m].current;
        let mut child = self.members[m].child.take().expect("a running child");
        if self.runs[cur].pidns {
            return self.kill_namespaced(m, child);
        }
        let _ = child.kill();
        let st = child.wait().expect("reap a child");
        if st.signal() != Some(libc::SIGKILL) {
            return Err(self.died_by_itself(m, st));
        }
        self.runs[cur].killed = true;
        Ok(())
    }

    /// Kills member `m`, which runs in a pid namespace of its own: SIGKILLs the process that
    /// plays the role (pid 1 of the namespace, the child of `unshare`; its pid here is found in
    /// `/proc`), not `unshare`, and reaps `unshare`, which reaps that process first: so when
    /// this returns the role's process is gone (its locks released, as after a direct kill),
    /// and no orphan can be left. Killing `unshare` instead would rely on `--kill-child`, whose
    /// SIGKILL arrives after `unshare` is reaped (the old incarnation could still run while the
    /// new one starts: the durable subscriber's name would be taken), and which `unshare` sets
    /// only after it forked (a kill in between would leave an orphan).
    ///
    /// `unshare` reports its child's exit code, and when that child was killed by a signal it
    /// dies of the same signal; for SIGKILL util-linux 2.38 fails to and exits 1 instead, after
    /// printing `unshare: sigprocmask unblock failed`. Both count as the kill; any other status
    /// is the child's own (our children exit 0, 3 or 101, or die of another signal).
    fn kill_namespaced(&mut self, m: usize, mut child: Child) -> Result<(), String> {
        let cur = self.members[m].current;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                // It ended before the kill was sent: whatever its status, by itself.
                return Err(self.died_by_itself(m, st));
            }
            match adversary::children_of(child.id())[..] {
                [g] => {
                    // SAFETY: kill takes plain integers.
                    unsafe { libc::kill(g as libc::pid_t, libc::SIGKILL) };
                    break;
                }
                [] if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                ref found => {
                    let _ = child.kill();
                    let st = child.wait().expect("reap unshare");
                    return Err(format!(
                        "{}: unshare (pid {}) had the children {found:?} (one expected) after 10 s, ended with {st}; \
                         its output:\n{}",
                        self.describe(m),
                        child.id(),
                        self.output(cur)
                    ));
                }
            }
        }
        let st = child.wait().expect("reap unshare");
        let out = std::fs::read_to_string(&self.runs[cur].out).unwrap_or_default();
        // (unshare's message may follow, on the same line, the child's unfinished "test ... ".)
        let unshare_said = out.lines().rev().find(|l| !l.trim().is_empty()).is_some_and(|l| l.contains("unshare: "));
        if st.signal() != Some(libc::SIGKILL) && !(st.code() == Some(1) && unshare_said) {
            return Err(self.died_by_itself(m, st));
        }
        self.runs[cur].killed = true;
        Ok(())
    }

    /// `Err` if any child ended (none may end before it is told to).
    fn check_running(&mut self) -> Result<(), String> {
        for m in 0..self.members.len() {
            let st = self.members[m].child.as_mut().and_then(|c| c.try_wait().expect("try_wait"));
            if let Some(st) = st {
                self.members[m].child = None;
                return Err(self.died_by_itself(m, st));
            }
        }
        Ok(())
    }

    /// Waits until the log of member `m` holds a record (a subscriber's Start record: it joined).
    fn wait_joined(&mut self, m: usize, deadline: Instant) -> Result<(), String> {
        let log = self.runs[self.members[m].current].log.clone();
        while std::fs::metadata(&log).map_or(true, |md| md.len() == 0) {
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(format!("{} did not join the topic in time", self.describe(m)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Waits until every member for which `which` holds has exited successfully.
    fn wait_exit(&mut self, which: impl Fn(Role) -> bool, deadline: Instant) -> Result<(), String> {
        loop {
            let mut running = Vec::new();
            for m in 0..self.members.len() {
                if !which(self.members[m].role) {
                    continue;
                }
                let Some(child) = self.members[m].child.as_mut() else { continue };
                match child.try_wait().expect("try_wait") {
                    Some(st) => {
                        self.members[m].child = None;
                        if !st.success() {
                            return Err(format!(
                                "{} failed with {st}; its output:\n{}",
                                self.describe(m),
                                self.output(self.members[m].current)
                            ));
                        }
                    }
                    None => running.push(m),
                }
            }
            if running.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut msg = String::from("hang: still running at the deadline:");
                for m in running {
                    msg += &format!("\n{}; its output:\n{}", self.describe(m), self.output(self.members[m].current));
                }
                return Err(msg);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kills(&self, role: Role) -> usize {
        kills(&self.runs, role)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                // A child under unshare: its process first (unshare's death would kill it too,
                // through --kill-child, but later).
                if self.runs[m.current].pidns {
                    for g in adversary::children_of(c.id()) {
                        // SAFETY: kill takes plain integers.
                        unsafe { libc::kill(g as libc::pid_t, libc::SIGKILL) };
                    }
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

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
    if std::env::var(ROLE_ENV).is_ok() {
        return;
    }
    let began = Instant::now();
    let secs = env_u64("SHMQ_CHAOS_SECS").unwrap_or(20);
    let seed = env_u64("SHMQ_CHAOS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        (t as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    println!("chaos: seed {seed}, {secs} s of kills (replay the kill schedule with SHMQ_CHAOS_SEED={seed})");
    let pidns = match adversary::pid_namespaces() {
        Ok(()) => {
            println!("chaos: pid namespaces: on (half the incarnations run as pid 1 of a namespace of their own)");
            true
        }
        Err(why) => {
            println!("chaos: pid-namespace part SKIPPED (every child runs in this pid namespace): {why}");
            false
        }
    };
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let _dog =
        Watchdog::start(format!("chaos test (seed {seed})"), Duration::from_secs(secs + 240), tmp.path().to_path_buf());
    let mut fleet = Fleet::new(tmp.path(), Duration::from_secs(secs + 180), seed, pidns);
    let seg = tmp.path().join("seg");
    let q = QueueOptions::new()
        .dir(&seg)
        .capacity(CAPACITY)
        .max_msg_size(MAX_MSG)
        .wait(WaitStrategy::Block)
        .create(QUEUE)
        .expect("create the queue");
    let t = TopicOptions::new()
        .dir(&seg)
        .capacity(CAPACITY)
        .max_msg_size(MAX_MSG)
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
        let n = fleet.members.len() as u64;
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
    let ar = adversary::check_adversaries(&fleet.runs, &mut failures);
    // Every child was reaped, and every child under unshare was reaped by it first: nothing of
    // this test may run any more.
    let dir = tmp.path().to_str().expect("a UTF-8 temporary directory");
    let left = adversary::processes_with_env(DIR_ENV, dir);
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
    if std::env::var(ROLE_ENV).is_ok() {
        return;
    }
    const THREADS: usize = 4;
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().to_path_buf();
    let _dog = Watchdog::start("attach race test".into(), Duration::from_secs(180), dir.clone());
    let q = QueueOptions::new().dir(&dir).capacity(8).create(QUEUE).expect("create the queue");
    let me = std::process::id();
    for round in 0..60 {
        let ready = dir.join("attached");
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(std::env::current_exe().expect("path of the test binary"))
            .args(["--exact", ENTRY, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, ATTACHER)
            .env(PARENT_ENV, me.to_string())
            .env(DIR_ENV, &dir)
            .env(ATTACHMENTS_ENV, (shmq::layout::DEFAULT_PARTICIPANTS - 1).to_string())
            .stdin(Stdio::null())
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
