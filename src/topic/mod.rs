//! Topics: publish/subscribe where every subscriber sees every message.
//!
//! Each topic is one segment holding one broadcast ring (the `broadcast` ring): a message
//! is written once, and each subscriber reads it through its own cursor in the subscriber
//! table. Several publishers may publish on one topic.
//!
//! ## Flow control
//! - A **reliable** subscriber (the default) gates publishers: no slot it has not read is
//!   overwritten. When the slowest reliable subscriber is a full ring behind, `send` waits
//!   per the wait strategy, `try_send` returns [`TrySendError::Full`](crate::TrySendError::Full)
//!   and `send_timeout` returns [`SendTimeoutError::Timeout`](crate::SendTimeoutError::Timeout).
//! - A **lossy** subscriber never gates. When publishers lap it, its next receive returns
//!   `Lagged(n)` ([`TryRecvError::Lagged`](crate::TryRecvError::Lagged)) with the exact number of messages it missed, then it
//!   goes on from the oldest message still in the ring. A message overwritten while it is being
//!   copied is detected and counted, never returned torn.
//! - With no reliable subscriber, publishers never wait; [`Topic::has_subscribers`] tells a
//!   publisher whether anyone listens.
//! - When every publisher has left (or died) and a subscriber has received everything, its
//!   receives return `Disconnected` and its iterator ends (see the crate docs for the rule).
//!
//! ## Joining, leaving, dying
//! - [`Start::Latest`] (default) delivers messages published after the subscriber joined;
//!   [`Start::Earliest`] first delivers the history still in the ring (up to `capacity`
//!   messages; history that publishers overwrite while the subscriber joins is skipped).
//! - A **durable** subscriber (`.name("billing")`) keeps its cursor when its process exits or
//!   dies, and keeps gating publishers (messages wait for it) until it returns or is removed
//!   (`shmq rm TOPIC --subscriber NAME`). It resumes at the first unacknowledged message. By
//!   default a message is acknowledged when the next one is received (so the message being
//!   processed when a crash happens is delivered again); [`AckMode::Explicit`] acknowledges
//!   only on [`Subscriber::ack`].
//! - An anonymous subscriber whose process dies stops gating: a publisher blocked on it checks
//!   its liveness (its entry's lock) every 10 ms and frees its entry; so do
//!   a join that finds the table full, `shmq stat` and `shmq gc`, for lossy subscribers too.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::{TopicOptions, SubscriberMode, TryRecvError};
//! let topic = TopicOptions::new().dir(dir.path()).capacity(4).create("prices")?;
//! let mut lossy = topic.subscriber().mode(SubscriberMode::Lossy).build()?;
//! let mut publisher = topic.publisher()?;
//! for i in 0..7u8 {
//!     publisher.send(&[i])?; // no reliable subscriber: never waits
//! }
//! let mut buf = [0u8; 16];
//! assert_eq!(lossy.try_recv(&mut buf), Err(TryRecvError::Lagged(3)));
//! assert_eq!(lossy.try_recv(&mut buf)?.len, 1);
//! assert_eq!(buf[0], 3); // the oldest message still in the ring
//! # topic.unlink()?;
//! # Ok::<(), shmq::Error>(())
//! ```

mod member;
mod publisher;
mod subscriber;
mod table;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use publisher::{Publisher, TopicLoan};
pub use subscriber::{AckMode, Start, Subscriber, SubscriberBuilder, SubscriberMode, TopicRef};
pub use table::{GroupInfo, MemberInfo, SubscriberInfo};

use crate::attach::Attachment;
use crate::error::{Error, OpenError, Result};
use crate::layout::{slot, Kind, DEFAULT_MAX_GROUPS, DEFAULT_PARTICIPANTS};
use crate::mapped_ring::MappedRing;
use crate::options::{common_setters, Common};
use crate::ring::{broadcast, RingMem};
use crate::segment::{Config, Expect, Segment};
use crate::sync::Ordering::{Acquire, Relaxed};
use table::SubscriberTable;

// Handles move between threads (one thread at a time).
const _: () = {
    const fn send<T: Send>() {}
    send::<Topic>();
    send::<Publisher>();
    send::<Subscriber>();
    send::<crate::Queue>();
    send::<crate::Producer>();
    send::<crate::Consumer>();
};

/// Default size of the subscriber table.
pub const DEFAULT_MAX_SUBSCRIBERS: u32 = 16;

/// How to create or open a topic; like [`QueueOptions`](crate::QueueOptions).
#[derive(Clone, Debug, Default)]
pub struct TopicOptions {
    common: Common,
    max_subscribers: Option<u32>,
    max_groups: Option<u32>,
}

impl TopicOptions {
    /// Defaults: 1024 slots, 256-byte messages, 16 subscribers, mode 0600, Block.
    pub fn new() -> Self {
        Self::default()
    }

    common_setters!();

    /// Size of the subscriber table (default 16).
    pub fn max_subscribers(mut self, n: u32) -> Self {
        self.max_subscribers = Some(n);
        self
    }

    /// How many consumer groups the topic can hold at once (default 4, at most the subscriber
    /// table): each takes a subscriber entry and a region of 8 bytes per slot (see
    /// [`SubscriberBuilder::group`]).
    pub fn max_groups(mut self, n: u32) -> Self {
        self.max_groups = Some(n);
        self
    }

    fn config(&self) -> Result<Config> {
        let max_subscribers = self.max_subscribers.unwrap_or(DEFAULT_MAX_SUBSCRIBERS);
        if max_subscribers == 0 {
            return Err(Error::InvalidConfig("a topic needs room for at least 1 subscriber".into()));
        }
        Ok(Config {
            kind: Kind::Topic,
            capacity: self.common.slots_or_default()?,
            max_msg: self.common.max_msg_u32()?,
            max_participants: DEFAULT_PARTICIPANTS,
            max_subscribers,
            max_response: 0,
            max_deliveries: 0,
            flags: 0,
            max_groups: self.max_groups.unwrap_or(DEFAULT_MAX_GROUPS.min(max_subscribers)),
        })
    }

    /// Creates topic `name`; [`OpenError::AlreadyExists`] if it exists.
    pub fn create(&self, name: &str) -> Result<Topic, OpenError> {
        self.create_inner(name).map_err(OpenError::from_internal)
    }

    /// Opens existing topic `name` and attaches to it: a few system calls (tens of
    /// microseconds); open once and keep the [`Topic`] and its handles.
    /// [`OpenError::NotFound`] if there is none.
    pub fn open(&self, name: &str) -> Result<Topic, OpenError> {
        self.open_inner(name).map_err(OpenError::from_internal)
    }

    /// Opens topic `name`, creating it if needed; concurrent callers end on the same topic, and
    /// a file left under the name by a creator that died before finishing it is replaced.
    pub fn open_or_create(&self, name: &str) -> Result<Topic, OpenError> {
        self.common
            .open_or_create(name, || self.create_inner(name), || self.open_inner(name))
            .map_err(OpenError::from_internal)
    }

    fn create_inner(&self, name: &str) -> Result<Topic> {
        let config = self.config()?;
        let seg = Segment::create(&self.common.dir_path(), name, config, self.common.mode, |seg| {
            broadcast::init(&seg.ring());
            let t = table_of(seg);
            for i in 0..t.len() {
                t.entry(i).cursor.store(u64::MAX, Relaxed);
            }
        })?
        .ok_or_else(|| Error::AlreadyExists { name: name.into() })?;
        Topic::attach(seg, &self.common)
    }

    fn open_inner(&self, name: &str) -> Result<Topic> {
        let expect = Expect {
            kinds: &[Kind::Topic],
            capacity: self.common.slots()?,
            max_msg: self.common.max_msg.map(|m| m.min(u32::MAX as usize) as u32),
            max_subscribers: self.max_subscribers,
            max_deliveries: None,
        };
        self.common.open(name, &expect, |seg| Topic::attach(seg, &self.common))
    }
}

pub(crate) fn table_of(seg: &Segment) -> SubscriberTable {
    SubscriberTable::new(
        seg.map.clone(),
        seg.files.clone(),
        seg.offsets,
        seg.config.max_subscribers as usize,
        seg.config.capacity as usize,
    )
}

#[derive(Debug)]
pub(crate) struct TopicShared {
    pub(crate) att: Attachment,
    pub(crate) table: SubscriberTable,
}

/// A process's attachment to a topic; publishers and subscribers come from it.
#[derive(Debug, Clone)]
pub struct Topic {
    shared: Arc<TopicShared>,
}

impl Topic {
    /// Creates topic `name` with default options.
    pub fn create(name: &str) -> Result<Topic, OpenError> {
        TopicOptions::new().create(name)
    }
    /// Opens existing topic `name`.
    pub fn open(name: &str) -> Result<Topic, OpenError> {
        TopicOptions::new().open(name)
    }
    /// Opens topic `name`, creating it with default options if needed.
    pub fn open_or_create(name: &str) -> Result<Topic, OpenError> {
        TopicOptions::new().open_or_create(name)
    }
    /// Options for creating or opening a topic.
    pub fn options() -> TopicOptions {
        TopicOptions::new()
    }

    fn attach(seg: Segment, common: &Common) -> Result<Topic> {
        let table = table_of(&seg);
        let att = Attachment::new(seg, common.wait, common.ready_timeout, |ring: &MappedRing, dead| {
            // Claims of a dead publisher whose participant id is reused: abandon them.
            for i in 0..ring.capacity() {
                let w = ring.slot(i).state.load(Acquire);
                if slot::claimer(w) == dead && slot::is_write_claim(slot::tag(w)) {
                    broadcast::recover(ring, i, w);
                }
            }
        })?;
        Ok(Topic { shared: Arc::new(TopicShared { att, table }) })
    }

    /// A publisher.
    pub fn publisher(&self) -> Result<Publisher, OpenError> {
        Publisher::new(self.shared.clone()).map_err(OpenError::from_internal)
    }

    /// A subscriber builder: `.name(..)`, `.start(..)`, `.mode(..)`, `.kinds(..)`, `.ack(..)`,
    /// then `.build()`.
    pub fn subscriber(&self) -> SubscriberBuilder {
        SubscriberBuilder::new(self.shared.clone())
    }

    /// Whether any subscriber (live, or durable and away) is registered.
    pub fn has_subscribers(&self) -> bool {
        self.subscriber_count() > 0
    }

    /// Number of registered subscribers (live, or durable and away).
    pub fn subscriber_count(&self) -> usize {
        self.shared.table.count()
    }

    /// Removes durable subscriber `name`, which must not be held by a live process; its
    /// unread messages stop gating publishers. `Ok(false)` if there is none.
    pub fn remove_subscriber(&self, name: &str) -> Result<bool> {
        table::validate_subscriber_name(name)?;
        let r = self.shared.table.remove(name, &self.shared.att.parts)?;
        self.shared.att.notify_space();
        Ok(r)
    }

    /// Snapshot of every consumer group: members (with pid, liveness and messages in flight),
    /// position, lag, counters.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let tail = self.shared.att.ring.control().tail.0.load(Acquire);
        self.shared.table.groups(tail, &self.shared.att.parts)
    }

    /// Removes consumer group `name`, which must have no live member (its messages stop gating
    /// publishers). `Ok(false)` if there is none.
    pub fn remove_group(&self, name: &str) -> Result<bool> {
        table::validate_subscriber_name(name)?;
        let r = self.shared.table.remove(name, &self.shared.att.parts)?;
        self.shared.att.notify_space();
        Ok(r)
    }

    /// Snapshot of every subscriber.
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        self.shared.table.list(self.shared.att.ring.control().tail.0.load(Relaxed))
    }

    /// Messages published so far (sequences claimed, including aborted and abandoned ones).
    pub fn published(&self) -> u64 {
        self.shared.att.ring.control().tail.0.load(Relaxed)
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.shared.att.seg.name
    }
    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.shared.att.seg.path
    }
    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.att.seg.config.capacity as usize
    }
    /// Largest message in bytes.
    pub fn max_msg_size(&self) -> usize {
        self.shared.att.seg.config.max_msg as usize
    }
    /// Indices and counters (a snapshot).
    pub fn counters(&self) -> crate::RingCounters {
        crate::RingCounters::read(&self.shared.att.ring)
    }
    /// Removes the topic's segment file.
    pub fn unlink(&self) -> Result<bool> {
        self.shared.att.seg.unlink()
    }
}

/// Subscriber snapshots of an open topic segment (for `shmq stat`), after reclaiming the
/// entries of dead subscribers.
pub(crate) fn subscribers_of(seg: &Segment) -> Vec<SubscriberInfo> {
    let table = table_of(seg);
    if table.reap().unwrap_or(0) > 0 {
        crate::wait::notify(&seg.ring().control().space.0); // a blocked publisher may go on
    }
    table.list(seg.ring().control().tail.0.load(Relaxed))
}

/// Removes durable subscriber `name` of topic `topic` in `dir` (for `shmq rm --subscriber`).
pub fn remove_subscriber(dir: &Path, topic: &str, name: &str) -> Result<bool> {
    table::validate_subscriber_name(name)?;
    let seg = Segment::open(
        dir,
        topic,
        &Expect { kinds: &[Kind::Topic], ..Expect::default() },
        std::time::Duration::from_secs(1),
    )?;
    let parts = seg.participants();
    let r = table_of(&seg).remove(name, &parts)?;
    crate::wait::notify(&seg.ring().control().space.0);
    Ok(r)
}
