//! Queues: each message goes to exactly one consumer.
//!
//! A [`Queue`] is a process's attachment to a named queue segment; from it come
//! [`Producer`]s and [`Consumer`]s. An SPSC queue allows one live producer and one live
//! consumer at a time ([`Error::RoleTaken`] otherwise; a dead holder's role is taken over); an
//! MPMC queue allows any number of each.
//!
//! Ownership: creating a queue does not tie its lifetime to the creator. The segment stays,
//! with its messages, until [`Queue::unlink`] or [`status::remove`](crate::status::remove) removes it; dropping
//! handles only detaches them.

mod consumer;
mod dead;
mod producer;

pub use consumer::{Consumer, RecvRef};
pub(crate) use dead::recorded_name;
pub use producer::{Loan, Producer};

use std::path::Path;
use std::sync::Arc;

use crate::attach::Attachment;
use crate::error::{Error, OpenError, Result};
use crate::layout::{role, slot, Kind, DEFAULT_PARTICIPANTS, ROLE_CONSUMER, ROLE_PRODUCER};
use crate::mapped_ring::MappedRing;
use crate::options::{common_setters, Common};
pub use crate::options::{DEFAULT_CAPACITY, DEFAULT_MAX_MSG, DEFAULT_MODE};
use crate::ring::{mpmc, spsc, RingMem};
use crate::segment::{Config, Expect, Segment};
use crate::sync::{AtomicU32, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// Which ring a queue uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueKind {
    /// One producer and one consumer; the fastest.
    Spsc,
    /// Any number of producers and consumers.
    #[default]
    Mpmc,
}

impl From<QueueKind> for Kind {
    fn from(k: QueueKind) -> Kind {
        match k {
            QueueKind::Spsc => Kind::Spsc,
            QueueKind::Mpmc => Kind::Mpmc,
        }
    }
}

/// How to create or open a queue. Like `std::fs::OpenOptions`: set what you need, then call
/// [`create`](Self::create), [`open`](Self::open) or [`open_or_create`](Self::open_or_create).
///
/// Settings given explicitly are checked when opening an existing queue: a mismatch is
/// [`Error::Incompatible`].
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    common: Common,
    kind: Option<QueueKind>,
    max_deliveries: Option<u32>,
    dead_letter_queue: Option<String>,
    flags: u32,
    /// For a dead-letter queue: its origin's name.
    origin: Option<String>,
}

impl QueueOptions {
    /// Defaults: MPMC, 1024 slots, 256-byte messages, mode 0600, [`WaitStrategy::Block`](crate::WaitStrategy::Block).
    pub fn new() -> Self {
        Self::default()
    }
    common_setters!();

    /// SPSC or MPMC.
    pub fn kind(mut self, kind: QueueKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Shorthand for `kind(QueueKind::Spsc)`.
    pub fn spsc(self) -> Self {
        self.kind(QueueKind::Spsc)
    }
    /// Dead letters (MPMC queues): a message is delivered at most `n` times (from 1 to
    /// 1,000,000). A delivery fails when its consumer [rejects](RecvRef::reject) it, or dies
    /// holding it (then, in such a queue, the message is delivered again rather than lost);
    /// after the `n`-th failure the message is moved, with the reason and its delivery count,
    /// to the dead-letter queue (see [`dead_letter_queue`](Self::dead_letter_queue)). Checked
    /// when opening an existing queue. See [`crate::deadletter`].
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = Some(n);
        self
    }
    /// The dead-letter queue's name (default: this queue's name and `.dlq`). It is created, as
    /// an MPMC queue of the same capacity with room for the letter's header, by the first
    /// consumer. Only with [`max_deliveries`](Self::max_deliveries); recorded in the queue.
    pub fn dead_letter_queue(mut self, name: &str) -> Self {
        self.dead_letter_queue = Some(name.to_string());
        self
    }
    fn config(&self) -> Result<Config> {
        if self.dead_letter_queue.is_some() && self.max_deliveries.unwrap_or(0) == 0 {
            return Err(Error::InvalidConfig(
                "a dead-letter queue needs max_deliveries (from 1): it says when a message goes there".into(),
            ));
        }
        if self.max_deliveries == Some(0) {
            return Err(Error::InvalidConfig(format!(
                "max deliveries 0 would never deliver a message; use 1 to {}",
                crate::layout::MAX_DELIVERIES
            )));
        }
        Ok(Config {
            kind: self.kind.unwrap_or_default().into(),
            capacity: self.common.slots_or_default()?,
            max_msg: self.common.max_msg_u32()?,
            max_participants: DEFAULT_PARTICIPANTS,
            max_subscribers: 0,
            max_response: 0,
            max_deliveries: self.max_deliveries.unwrap_or(0),
            flags: self.flags,
            max_groups: 0,
        })
    }

    /// The dead-letter queue's name for a queue `name` created with these options.
    fn dlq_name(&self, name: &str) -> Option<String> {
        self.max_deliveries?;
        Some(self.dead_letter_queue.clone().unwrap_or_else(|| format!("{name}.dlq")))
    }

    fn expect(&self) -> Result<Expect> {
        const SPSC: &[Kind] = &[Kind::Spsc];
        const MPMC: &[Kind] = &[Kind::Mpmc];
        const ANY: &[Kind] = &[Kind::Spsc, Kind::Mpmc];
        Ok(Expect {
            kinds: match self.kind {
                Some(QueueKind::Spsc) => SPSC,
                Some(QueueKind::Mpmc) => MPMC,
                None => ANY,
            },
            capacity: self.common.slots()?,
            max_msg: self.common.max_msg.map(|m| m.min(u32::MAX as usize) as u32),
            max_subscribers: None,
            max_deliveries: self.max_deliveries,
        })
    }

    /// Creates queue `name`; [`OpenError::AlreadyExists`] if it exists.
    pub fn create(&self, name: &str) -> Result<Queue, OpenError> {
        self.create_inner(name).map_err(OpenError::from_internal)
    }

    /// Opens existing queue `name` and attaches to it. This is a few system calls (tens of
    /// microseconds, against tens of nanoseconds for a message): open once and keep the
    /// [`Queue`] and its handles. [`OpenError::NotFound`] if there is none, and
    /// [`OpenError::Incompatible`] if it is not a queue of the kind and settings asked for
    /// (settings not asked for are taken from the queue).
    pub fn open(&self, name: &str) -> Result<Queue, OpenError> {
        self.open_inner(name).map_err(OpenError::from_internal)
    }

    /// Opens queue `name`, creating it if it does not exist. Any number of processes may call
    /// this at once: they all end on the same queue. A file left under the name by a creator
    /// that died before finishing it ([`OpenError::Stale`]) is replaced.
    pub fn open_or_create(&self, name: &str) -> Result<Queue, OpenError> {
        self.common
            .open_or_create(name, || self.create_inner(name), || self.open_inner(name))
            .map_err(OpenError::from_internal)
    }

    fn create_inner(&self, name: &str) -> Result<Queue> {
        let config = self.config()?;
        let other = match self.dlq_name(name) {
            Some(dlq) => {
                crate::segment::validate_name(&dlq).map_err(|e| {
                    Error::InvalidConfig(format!(
                        "the dead-letter queue's name {dlq:?} is not valid ({e}); give one with dead_letter_queue"
                    ))
                })?;
                if dlq == name {
                    return Err(Error::InvalidConfig("a queue cannot be its own dead-letter queue".into()));
                }
                Some(dlq)
            }
            None => self.origin.clone(),
        };
        match Segment::create(&self.common.dir_path(), name, config, self.common.mode, |seg| {
            if config.kind == Kind::Mpmc {
                mpmc::init(&seg.ring());
            }
            if let (Some(info), Some(other)) = (seg.dead_letter_info(), &other) {
                crate::ring::deadletter::store_name(info, other);
            }
        })? {
            Some(seg) => Queue::attach(seg, &self.common),
            None => Err(Error::AlreadyExists { name: name.into() }),
        }
    }

    fn open_inner(&self, name: &str) -> Result<Queue> {
        self.common.open(name, &self.expect()?, |seg| Queue::attach(seg, &self.common))
    }
}

/// A process's attachment to a queue. Cheap to share: producers and consumers made from it keep
/// the mapping alive.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{Queue, QueueOptions};
/// let q = QueueOptions::new().dir(dir.path()).capacity(8).create("doc-queue")?;
/// let mut tx = q.producer()?;
/// let mut rx = q.consumer()?;
/// tx.send(b"hello")?;
/// let mut buf = [0u8; 256];
/// let got = rx.recv_into(&mut buf)?;
/// assert_eq!(&buf[..got.len], b"hello");
/// q.unlink()?;
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    shared: Arc<Attachment>,
}

impl Queue {
    /// Creates queue `name` with default options (see [`QueueOptions`]).
    pub fn create(name: &str) -> Result<Queue, OpenError> {
        QueueOptions::new().create(name)
    }

    /// Opens existing queue `name`.
    pub fn open(name: &str) -> Result<Queue, OpenError> {
        QueueOptions::new().open(name)
    }

    /// Opens queue `name`, creating it with default options if needed.
    pub fn open_or_create(name: &str) -> Result<Queue, OpenError> {
        QueueOptions::new().open_or_create(name)
    }

    /// Options for creating or opening a queue.
    pub fn options() -> QueueOptions {
        QueueOptions::new()
    }

    fn attach(seg: Segment, common: &Common) -> Result<Queue> {
        let seg2 = seg.clone();
        let att = Attachment::new(seg, common.wait, common.ready_timeout, |ring, dead| scrub(ring, &seg2, dead))?;
        Ok(Queue { shared: Arc::new(att) })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.shared.seg.name
    }
    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.shared.seg.path
    }
    /// SPSC or MPMC.
    pub fn kind(&self) -> QueueKind {
        match self.shared.seg.config.kind {
            Kind::Spsc => QueueKind::Spsc,
            _ => QueueKind::Mpmc,
        }
    }
    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.seg.config.capacity as usize
    }
    /// Largest message in bytes.
    pub fn max_msg_size(&self) -> usize {
        self.shared.seg.config.max_msg as usize
    }
    /// Messages waiting (a snapshot; clamped to the capacity). On an MPMC queue this counts
    /// slots of dropped loans until a consumer skips them.
    pub fn len(&self) -> usize {
        let c = self.shared.ring.control();
        let tail = c.tail.0.load(Relaxed);
        let head = c.head.0.load(Relaxed);
        tail.saturating_sub(head).min(self.shared.seg.config.capacity) as usize
    }
    /// Whether no message is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the queue's segment file. Attached processes keep working on their mapping;
    /// new opens fail with [`Error::NotFound`].
    pub fn unlink(&self) -> Result<bool> {
        self.shared.seg.unlink()
    }

    /// A producer. For SPSC, takes the exclusive producer role.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] if another live producer holds an SPSC queue;
    /// [`Error::Corrupted`] if the shared indices are invalid.
    pub fn producer(&self) -> Result<Producer, OpenError> {
        self.producer_inner().map_err(OpenError::from_internal)
    }

    fn producer_inner(&self) -> Result<Producer> {
        let s = &self.shared;
        if self.is_dead_letter_queue() {
            return Err(Error::Incompatible {
                what: "queue",
                expected: "a queue producers may send to".into(),
                found: format!(
                    "the dead-letter queue of {:?}, which only its moves write: receive from it, or send its letters \
                     back with Queue::requeue_dead_letters (shmq dlq NAME --requeue)",
                    self.dead_letter_link().unwrap_or_default()
                ),
            });
        }
        let side = match s.seg.config.kind {
            Kind::Spsc => {
                let holder = &s.seg.header().producer_holder;
                let role = take_role(s, holder, "producer")?;
                match spsc::SpscProducer::attach(&s.ring) {
                    Ok(ring) => ProducerSide::Spsc { ring, role },
                    Err(e) => {
                        give_role(holder, role);
                        return Err(e);
                    }
                }
            }
            _ => ProducerSide::Mpmc,
        };
        s.join_role(ROLE_PRODUCER);
        Ok(Producer::new(s.clone(), side))
    }

    /// A consumer. For SPSC, takes the exclusive consumer role.
    ///
    /// # Errors
    /// As for [`producer`](Self::producer).
    pub fn consumer(&self) -> Result<Consumer, OpenError> {
        self.consumer_inner().map_err(OpenError::from_internal)
    }

    fn consumer_inner(&self) -> Result<Consumer> {
        let s = &self.shared;
        let side = match s.seg.config.kind {
            Kind::Spsc => {
                let holder = &s.seg.header().consumer_holder;
                let role = take_role(s, holder, "consumer")?;
                match spsc::SpscConsumer::attach(&s.ring) {
                    Ok(ring) => ConsumerSide::Spsc { ring, role },
                    Err(e) => {
                        give_role(holder, role);
                        return Err(e);
                    }
                }
            }
            _ => ConsumerSide::Mpmc,
        };
        let dl = dead::DeadLetters::of(self)?;
        s.join_role(ROLE_CONSUMER);
        Ok(Consumer::new(s.clone(), side, dl))
    }
}

/// Frees MPMC slots still claimed by a dead participant whose id is being reused (a message it
/// was reading is delivered again in a queue with dead letters), and orphans the dead-letter
/// move lock if it held it (the lock's next holder resolves its move).
fn scrub(ring: &MappedRing, seg: &Segment, dead: u16) {
    if seg.config.kind != Kind::Mpmc {
        return;
    }
    if let Some(info) = seg.dead_letter_info() {
        crate::ring::deadletter::orphan(info, dead);
    }
    for i in 0..ring.capacity() {
        let w = ring.slot(i).state.load(Acquire);
        if slot::claimer(w) == dead && (slot::is_write_claim(slot::tag(w)) || slot::tag(w) == slot::READING) {
            mpmc::recover(ring, i, w, dead);
        }
    }
}

/// Takes an SPSC role (see [`crate::layout::role`]); returns the role word we installed.
fn take_role(s: &Attachment, holder: &AtomicU32, name: &'static str) -> Result<u32> {
    loop {
        let cur = holder.load(Acquire);
        let id = role::holder(cur);
        // Held by a live participant (ourselves included: one role per attachment).
        if id != 0 && (id == s.id || !s.parts.is_dead(id)) {
            return Err(Error::RoleTaken { role: name, pid: s.parts.pid(id) });
        }
        // Free, or held by a dead (or impossible) participant: take it. The CAS is of the
        // whole word read before the liveness check, so it fails if the role changed hands.
        let mine = role::take(cur, s.id);
        if holder.compare_exchange(cur, mine, Acquire, Relaxed).is_ok() {
            return Ok(mine);
        }
    }
}

/// Gives back the SPSC role we took as word `mine` (nothing if it changed hands since).
pub(crate) fn give_role(holder: &AtomicU32, mine: u32) {
    let _ = holder.compare_exchange(mine, role::free(mine), Release, Relaxed);
}

#[derive(Debug)]
pub(crate) enum ProducerSide {
    Spsc { ring: spsc::SpscProducer, role: u32 },
    Mpmc,
}

#[derive(Debug)]
pub(crate) enum ConsumerSide {
    Spsc { ring: spsc::SpscConsumer, role: u32 },
    Mpmc,
}

/// Counters and indices of a ring (a snapshot, for tools).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    /// Next position to write.
    pub tail: u64,
    /// Next position to read (queues).
    pub head: u64,
    /// Loans dropped without commit.
    pub aborted: u64,
    /// Slots of producers that died mid-write.
    pub abandoned: u64,
    /// Messages lost with a consumer that died holding them.
    pub lost_by_crash: u64,
    /// Times a producer found the ring full and waited or failed.
    pub full_events: u64,
    /// Nanoseconds producers spent waiting for space.
    pub blocked_ns: u64,
    /// Processes sleeping for data / for space.
    pub sleepers: (u32, u32),
    /// MPMC: deliveries rejected by their consumer.
    pub rejected: u64,
    /// MPMC: rejected messages waiting to be delivered again (a hint, see
    /// [`crate::deadletter`]).
    pub retry_pending: u64,
    /// MPMC with `max_deliveries`: messages moved to the dead-letter queue.
    pub dead_lettered: u64,
    /// MPMC with `max_deliveries`: messages delivered again because their consumer died.
    pub redelivered_after_crash: u64,
}

impl RingCounters {
    /// Reads the counters of a ring.
    pub(crate) fn read(ring: &impl RingMem) -> RingCounters {
        let c = ring.control();
        let st = &c.stats.0;
        RingCounters {
            tail: c.tail.0.load(Relaxed),
            head: c.head.0.load(Relaxed),
            aborted: st.aborted.load(Relaxed),
            abandoned: st.abandoned.load(Relaxed),
            lost_by_crash: st.lost_by_crash.load(Relaxed),
            full_events: st.full_events.load(Relaxed),
            blocked_ns: st.blocked_ns.load(Relaxed),
            sleepers: (c.data.0.sleepers.load(Relaxed), c.space.0.sleepers.load(Relaxed)),
            rejected: st.rejected.load(Relaxed),
            retry_pending: mpmc::retries::pending(st.retry_pending.load(Relaxed)) as u64,
            dead_lettered: st.dead_lettered.load(Relaxed),
            redelivered_after_crash: st.redelivered_after_crash.load(Relaxed),
        }
    }
}

impl Queue {
    /// Indices and counters (a snapshot).
    pub fn counters(&self) -> RingCounters {
        RingCounters::read(&self.shared.ring)
    }
}
