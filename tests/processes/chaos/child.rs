//! The chaos test's children: producers, consumers, publishers and subscribers that log every
//! message, pause at random points of the protocol, and check their adversarial state; and the
//! attacher of the attach race.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shmq::{AckMode, QueueOptions, Start, Topic, TopicOptions, WaitStrategy};
use shmq::{RecvTimeoutError, SendTimeoutError, TrySendError};
use shmq_test_support::payload::{decode_incarnation, encode_incarnation, INCARNATION_MAX};
use shmq_test_support::{check_out_of_fds, env, env_u64, exhaust_fds, Exhausted, Rng, PARENT_ENV, PIDNS_ENV};

use super::check::{Log, Rec, Tag};
use super::{
    Role, ATTACHMENTS_ENV, DIR_ENV, DRAIN, DURABLE, EMFILE_ENV, ID_ENV, INC_ENV, LIMIT_ENV, LOG_ENV, QUEUE, SEED_ENV,
    STOP_RECEIVERS, STOP_SENDERS, TICK, TOPIC, VERIFY_EVERY,
};

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
    /// What a child playing `role` was told.
    fn from_env(role: Role) -> Ctx {
        // The log exists before the child touches shmq: a message of an incarnation without a
        // log file is a phantom.
        let log = Log::create(Path::new(&env(LOG_ENV)));
        let (burst, pause_ms) = if role.sends() { (128, 20) } else { (256, 10) };
        let mut rng = Rng::new(env_u64(SEED_ENV));
        let left = rng.range(1, burst);
        Ctx {
            dir: PathBuf::from(env(DIR_ENV)),
            id: env_u64(ID_ENV) as u32,
            inc: env_u64(INC_ENV) as u32,
            log,
            until: Instant::now() + Duration::from_secs(env_u64(LIMIT_ENV)),
            pace: Pace { rng, left, burst, pause_ms },
            emfile: std::env::var_os(EMFILE_ENV).is_some(),
            exhausted: None,
            parent: env_u64(PARENT_ENV) as u32,
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
            self.exhausted = Some(exhaust_fds());
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
            check_out_of_fds();
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

/// Runs a chaos participant of `role` (see [`super::ROLES`]).
pub fn run(role: Role) {
    let mut cx = Ctx::from_env(role);
    match role {
        Role::Producer => producer(&mut cx),
        Role::Consumer => consumer(&mut cx),
        Role::Publisher => publisher(&mut cx),
        Role::Subscriber => subscriber(&mut cx, false),
        Role::Durable => subscriber(&mut cx, true),
    }
}

/// Opens the queue `ATTACHMENTS_ENV` times, says so with the file `attached`, and waits to be
/// killed (so that its participant entries are left to a dead process).
pub fn attacher() {
    let dir = PathBuf::from(env(DIR_ENV));
    let n = env_u64(ATTACHMENTS_ENV) as usize;
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
    let mut buf = [0u8; INCARNATION_MAX];
    let mut seq = 0u64;
    loop {
        if seq % 16 == 0 && cx.told(STOP_SENDERS) {
            break;
        }
        let len = encode_incarnation(cx.id, cx.inc, seq, &mut buf);
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
                Err(TrySendError::Full | TrySendError::Disconnected) => {}
                Err(e) => panic!("producer {} incarnation {}: loan failed: {e}", cx.id, cx.inc),
            }
        }
        if !sent {
            match tx.send_timeout(&buf[..len], TICK) {
                Ok(()) => {}
                Err(e @ (SendTimeoutError::Timeout | SendTimeoutError::Disconnected)) => {
                    if e.is_disconnected() {
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
                let (id, inc, seq) = decode_incarnation(&m).unwrap_or_else(|e| panic!("consumer received {e}"));
                cx.log.append(Rec { tag: Tag::Received, id, inc, seq, tseq: 0 });
                nap.at(Phase::Logged);
                drop(m);
                cx.handled(None);
                nap.at(Phase::After);
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Every producer is between two incarnations: wait for the next one.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
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
    let mut buf = [0u8; INCARNATION_MAX];
    let mut seq = 0u64;
    loop {
        if seq % 16 == 0 && cx.told(STOP_SENDERS) {
            break;
        }
        let len = encode_incarnation(cx.id, cx.inc, seq, &mut buf);
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
                // Disconnected: every reliable subscriber is between two incarnations.
                Err(TrySendError::Full | TrySendError::Disconnected) => {}
                Err(e) => panic!("publisher {} incarnation {}: loan failed: {e}", cx.id, cx.inc),
            }
        }
        if !sent {
            match publisher.send_timeout(&buf[..len], TICK) {
                Ok(()) => {}
                Err(e @ (SendTimeoutError::Timeout | SendTimeoutError::Disconnected)) => {
                    if e.is_disconnected() {
                        std::thread::sleep(TICK); // no reliable subscriber for now: wait for the next one
                    }
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
                let (id, inc, seq) = decode_incarnation(&m)
                    .unwrap_or_else(|e| panic!("subscriber received at topic sequence {tseq}: {e}"));
                cx.log.append(Rec { tag: Tag::Received, id, inc, seq, tseq });
                nap.at(Phase::Logged);
                Some(nap)
            }
            Err(RecvTimeoutError::Timeout) => None,
            // Every publisher is between two incarnations: wait for the next one.
            Err(RecvTimeoutError::Disconnected) => {
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
