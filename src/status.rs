//! Read-only snapshots of segments for tools (`shmq list`, `shmq stat`, `shmq gc`).
//!
//! Taking a snapshot does not attach: it takes no participant entry and changes nothing.

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::layout::Kind;
use crate::participants::ParticipantInfo;
use crate::queue::RingCounters;
use crate::segment::{self, Expect, Segment};
use crate::sync::Ordering::Relaxed;

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
    /// Bytes per slot.
    pub slot_stride: u64,
    /// Size of the file.
    pub memory_bytes: u64,
    /// Messages waiting (queues; tail - head, clamped).
    pub depth: u64,
    /// Creator pid.
    pub creator_pid: u32,
    /// Whether the creator process is still running.
    pub creator_alive: bool,
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
}

impl Status {
    /// Snapshot of segment `name` in `dir`.
    pub fn read(dir: &Path, name: &str) -> Result<Status> {
        let seg = Segment::open(dir, name, &Expect::default(), Duration::from_millis(200))?;
        Ok(Self::of(&seg))
    }

    /// Snapshot of an open segment.
    pub fn of(seg: &Segment) -> Status {
        let ring = seg.ring();
        let counters = RingCounters::read(&ring);
        let parts = seg.participants();
        let participants = parts.list();
        let holder = |raw: u32| {
            let id = u16::try_from(raw).ok().filter(|&id| id != 0)?;
            let p = participants.iter().find(|p| p.id == id);
            Some((id, p.map_or(0, |p| p.pid), p.is_some_and(|p| p.alive)))
        };
        let h = seg.header();
        let c = seg.config;
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
            slot_stride: seg.offsets.stride,
            memory_bytes: seg.offsets.total,
            depth: if c.kind == Kind::Topic { 0 } else { counters.tail.saturating_sub(counters.head).min(c.capacity) },
            creator_pid: seg.creator.0,
            creator_alive: crate::os::process_alive(seg.creator.0, seg.creator.1),
            created_unix_ns: seg.created_unix_ns,
            counters,
            participants,
            producer_holder,
            consumer_holder,
            subscribers: if c.kind == Kind::Topic { crate::topic::subscribers_of(seg) } else { Vec::new() },
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
    /// Remove: nobody alive uses it and nothing in it is waiting for anyone.
    Remove(&'static str),
    /// Keep, and why.
    Keep(String),
}

/// Decides whether `shmq gc` removes segment `name` of `dir`.
///
/// A segment is removed when no live process is attached to it and its creator is dead, and
/// it holds nothing someone may come back for: a queue must be empty, a topic must have no
/// durable subscriber. A segment half-initialised by a dead creator is removed too. With
/// `force`, non-empty queues and topics with durable subscribers are removed as well.
pub fn gc_verdict(dir: &Path, name: &str, force: bool) -> GcVerdict {
    match Status::read(dir, name) {
        Err(crate::Error::Stale { .. }) => GcVerdict::Remove("half-initialised by a dead creator"),
        Err(e) => GcVerdict::Keep(format!("cannot be read: {e}")),
        Ok(s) => {
            if let Some(p) = s.participants.iter().find(|p| p.alive) {
                return GcVerdict::Keep(format!("process {} is attached", p.pid));
            }
            if s.creator_alive {
                return GcVerdict::Keep(format!("its creator (process {}) is alive", s.creator_pid));
            }
            if !force && s.depth > 0 {
                return GcVerdict::Keep(format!("{} messages are waiting (use --force to drop them)", s.depth));
            }
            if !force && s.subscribers.iter().any(|sub| sub.name.is_some()) {
                return GcVerdict::Keep("it has durable subscribers (use --force to drop them)".into());
            }
            GcVerdict::Remove(if s.participants.is_empty() {
                "no process attached"
            } else {
                "every attached process is dead"
            })
        }
    }
}
