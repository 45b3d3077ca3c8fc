//! Read-only snapshots of segments for tools (`shmq list`, `shmq stat`, `shmq gc`).
//!
//! Taking a snapshot does not attach: it takes no participant entry. It changes one thing: the
//! entries of topic subscribers whose processes died are reclaimed (anonymous ones freed,
//! durable ones detached), as a join would.

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::queue::RingCounters;
use crate::segment::{self, Expect, Removal, Segment};

pub use crate::layout::{
    Kind, ROLE_CLIENT, ROLE_CONSUMER, ROLE_PRODUCER, ROLE_PUBLISHER, ROLE_SERVER, ROLE_SUBSCRIBER,
};
pub use crate::os::default_dir;
pub use crate::participants::ParticipantInfo;
pub use crate::segment::{list_names, remove, remove_unfinished};
use crate::sync::Ordering::Relaxed;
pub use crate::topic::{remove_subscriber, SubscriberInfo};

/// Everything `shmq stat` shows about one segment.
#[derive(Debug, Clone)]
pub struct Status {
    /// User name.
    pub name: String,
    /// The segment file.
    pub path: String,
    /// What it holds.
    pub kind: Kind,
    /// Slots.
    pub capacity: u64,
    /// Largest message.
    pub max_msg: u32,
    /// Bytes of memory per slot, header included.
    pub slot_stride: u64,
    /// Whether slot headers and payloads are two arrays (see the layout docs: when a 16-byte
    /// header in front of the payload would cost one more cache line per message).
    pub split_slots: bool,
    /// Size of the file.
    pub memory_bytes: u64,
    /// Messages waiting (queues; tail - head, clamped).
    pub depth: u64,
    /// Creator pid (as the creator's pid namespace saw it; information only).
    pub creator_pid: u32,
    /// Creation time, ns since the Unix epoch.
    pub created_unix_ns: u64,
    /// Indices and counters.
    pub counters: RingCounters,
    /// Attached processes.
    pub participants: Vec<ParticipantInfo>,
    /// SPSC role holders: (participant id, pid, alive).
    pub producer_holder: Option<(u16, u32, bool)>,
    /// SPSC consumer role holder.
    pub consumer_holder: Option<(u16, u32, bool)>,
    /// Topics: every registered subscriber.
    pub subscribers: Vec<crate::topic::SubscriberInfo>,
    /// Services: identity, servers and clients.
    pub service: Option<crate::service::ServiceInfo>,
    /// MPMC queues: deliveries before a message is dead-lettered (0: no dead letters).
    pub max_deliveries: u32,
    /// Whether this queue is a dead-letter queue.
    pub dead_letter_queue: bool,
    /// A queue with dead letters: its dead-letter queue's name; a dead-letter queue: the name of
    /// the queue whose letters it holds.
    pub dead_letter_link: Option<String>,
}

impl Status {
    /// Snapshot of segment `name` in `dir`.
    pub fn read(dir: &Path, name: &str) -> Result<Status> {
        let seg = Segment::open(dir, name, &Expect::default(), Duration::from_millis(200))?;
        Ok(Self::of_segment(&seg))
    }

    /// Snapshot of an open segment (for the fuzzers, which open segments themselves).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn of(seg: &Segment) -> Status {
        Self::of_segment(seg)
    }

    /// Snapshot of an open segment.
    pub(crate) fn of_segment(seg: &Segment) -> Status {
        let ring = seg.ring();
        let counters = RingCounters::read(&ring);
        let parts = seg.participants();
        let participants = parts.list();
        let holder = |word: u32| {
            let id = Some(crate::layout::role::holder(word)).filter(|&id| id != 0)?;
            let p = participants.iter().find(|p| p.id == id);
            Some((id, p.map_or(0, |p| p.pid), p.is_some_and(|p| p.alive)))
        };
        let h = seg.header();
        let c = seg.config;
        let split = seg.offsets.service.is_none()
            && seg.offsets.payloads != seg.offsets.slots + crate::layout::SLOT_HEADER as u64;
        let (producer_holder, consumer_holder) = if c.kind == Kind::Spsc {
            (holder(h.producer_holder.load(Relaxed)), holder(h.consumer_holder.load(Relaxed)))
        } else {
            (None, None)
        };
        Status {
            name: seg.name.clone(),
            path: seg.path.display().to_string(),
            kind: c.kind,
            capacity: c.capacity,
            max_msg: c.max_msg,
            slot_stride: if split { seg.offsets.stride + seg.offsets.payload_stride } else { seg.offsets.stride },
            split_slots: split,
            memory_bytes: seg.offsets.total,
            depth: if c.kind == Kind::Topic { 0 } else { counters.tail.saturating_sub(counters.head).min(c.capacity) },
            creator_pid: seg.creator.0,
            created_unix_ns: seg.created_unix_ns,
            counters,
            producer_holder,
            consumer_holder,
            subscribers: if c.kind == Kind::Topic { crate::topic::subscribers_of(seg) } else { Vec::new() },
            service: crate::service::info_of(seg, &participants),
            participants,
            max_deliveries: c.max_deliveries,
            dead_letter_queue: c.flags & crate::layout::FLAG_DEAD_LETTER_QUEUE != 0,
            dead_letter_link: seg.dead_letter_info().and_then(crate::queue::recorded_name),
        }
    }

    /// Whether every participant is dead (or none is attached): what `shmq gc` removes.
    pub fn abandoned(&self) -> bool {
        self.participants.iter().all(|p| !p.alive)
    }
}

/// Snapshots of every segment in `dir`; segments that cannot be read come back as errors.
pub fn list(dir: &Path) -> Result<Vec<(String, Result<Status>)>> {
    Ok(segment::list_names(dir)?
        .into_iter()
        .map(|n| {
            let s = Status::read(dir, &n);
            (n, s)
        })
        .collect())
}

/// Why `shmq gc` would remove a segment, or keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcVerdict {
    /// Remove (or, from [`gc_remove`], removed): nobody alive uses it and nothing in it is
    /// waiting for anyone.
    Remove(&'static str),
    /// Keep, and why.
    Keep(String),
    /// Keep because something in it waits for someone who may come back (messages, durable
    /// subscribers), and why; removed with `force`.
    KeepUnlessForced(String),
    /// There is no such segment (any more).
    Gone,
}

/// Decides whether `shmq gc` removes segment `name` of `dir` (and removes nothing).
///
/// A segment is removed when no live process is attached to it and it holds nothing someone
/// may come back for: a queue must be empty, a topic must have no durable subscriber. A file
/// under the name that is not a complete segment and that nobody works on is removed too.
/// With `force`, non-empty queues and topics with durable subscribers are removed as well.
/// Liveness is the participants' locks (see `crate::os`): a process that cannot be asked
/// about counts as alive.
pub fn gc_verdict(dir: &Path, name: &str, force: bool) -> GcVerdict {
    gc(dir, name, force, false)
}

/// Like [`gc_verdict`], and removes the segment if the verdict is [`GcVerdict::Remove`].
/// The verdict and the removal happen under the segment's lock, which attaching processes
/// take too: a process that attaches meanwhile either counts in the verdict or finds the
/// name gone (and creates or opens a new segment), never a removed segment.
pub fn gc_remove(dir: &Path, name: &str, force: bool) -> GcVerdict {
    gc(dir, name, force, true)
}

fn gc(dir: &Path, name: &str, force: bool, remove: bool) -> GcVerdict {
    let decided = segment::remove_if(dir, name, |seg| {
        let verdict = verdict(seg, force);
        (remove && matches!(verdict, GcVerdict::Remove(_)), verdict)
    });
    match decided {
        Ok(Removal::Removed(v) | Removal::Kept(v)) => v,
        Ok(Removal::Busy) => GcVerdict::Keep("a process is creating, attaching to or removing it right now".into()),
        Ok(Removal::Gone) => GcVerdict::Gone,
        Err(e) => GcVerdict::Keep(format!("cannot be read: {e}")),
    }
}

fn verdict(seg: std::result::Result<&Segment, &crate::Error>, force: bool) -> GcVerdict {
    let s = match seg {
        Err(crate::Error::Stale { .. }) => return GcVerdict::Remove("half-initialised by a dead creator"),
        Err(e) => return GcVerdict::Keep(format!("cannot be read: {e}")),
        Ok(seg) => Status::of_segment(seg),
    };
    if let Some(p) = s.participants.iter().find(|p| p.alive) {
        return GcVerdict::Keep(format!("process {} is attached", p.pid));
    }
    if !force && s.depth > 0 {
        let waiting =
            if s.depth == 1 { "1 message is waiting".into() } else { format!("{} messages are waiting", s.depth) };
        return GcVerdict::KeepUnlessForced(waiting);
    }
    if !force && s.subscribers.iter().any(|sub| sub.name.is_some()) {
        return GcVerdict::KeepUnlessForced("it has durable subscribers".into());
    }
    GcVerdict::Remove(if s.participants.is_empty() { "no process attached" } else { "every attached process is dead" })
}
