//! The one error type of shmq. Every message says what happened and what to do about it.

use std::io;

/// Everything that can go wrong in shmq.
///
/// Errors that concern shared memory written by another process (`Corrupted`, `Incompatible`,
/// `Stale`) never come with undefined behaviour: shmq validates every value it reads from a
/// segment before using it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue or topic name breaks the naming rule.
    #[error("invalid name {name:?}: {reason}; use 1 to 200 bytes of [A-Za-z0-9._-], not starting with '.'")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// A configuration value is out of range (capacity, message size, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// No segment with this name exists in the segment directory.
    #[error("no queue or topic named {name:?} in {dir}; create it first (or use open_or_create)")]
    NotFound {
        /// The user-facing name.
        name: String,
        /// The segment directory searched.
        dir: String,
    },
    /// A segment with this name already exists.
    #[error("{name:?} already exists; open it instead, or remove it with `shmq rm {name}`")]
    AlreadyExists {
        /// The user-facing name.
        name: String,
    },
    /// The segment exists but was made with another layout, version, kind or configuration.
    #[error("incompatible segment: {what} is {found}, expected {expected}; remove it with `shmq rm` or open it with matching settings")]
    Incompatible {
        /// Which header field disagrees.
        what: &'static str,
        /// What this process expected.
        expected: String,
        /// What the segment holds.
        found: String,
    },
    /// The file under this name is not a complete segment and nobody is working on it: its
    /// creator died before finishing it (an older version of shmq, which named segments before
    /// they were complete), or it was put there by something else.
    #[error("segment {name:?} was left half-initialised by a dead creator; open_or_create replaces it, or remove it with `shmq rm {name}`")]
    Stale {
        /// The user-facing name.
        name: String,
    },
    /// Shared memory holds a value that no correct peer could have written.
    #[error("corrupted segment: {0}; a peer wrote invalid data, remove the segment with `shmq rm` and recreate it")]
    Corrupted(String),
    /// The message is larger than the queue's maximum message size.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes; split it or create the queue with a larger max message size")]
    MessageTooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The queue's maximum message size.
        max: usize,
    },
    /// The receive buffer is smaller than the next message; the message stays in the queue.
    #[error("receive buffer of {len} bytes is smaller than the next message ({needed} bytes); the message was not consumed, retry with a larger buffer")]
    BufferTooSmall {
        /// Length of the buffer given.
        len: usize,
        /// Length of the waiting message.
        needed: usize,
    },
    /// A typed receive found a message of another size than the type.
    #[error("message of {found} bytes cannot be read as a value of {expected} bytes")]
    SizeMismatch {
        /// `size_of::<T>()`.
        expected: usize,
        /// The message length.
        found: usize,
    },
    /// The queue is full (`try_send`), or a topic's slowest reliable subscriber is a whole
    /// ring behind (`try_publish`).
    #[error("queue or topic is full; retry later, or use send/publish (or their _timeout forms) to wait for space")]
    Full,
    /// The queue is empty (`try_recv`).
    #[error("queue is empty; retry later, or use recv/recv_timeout to wait for a message")]
    Empty,
    /// A lossy subscriber was overtaken by publishers and missed this many messages; it goes on
    /// from the oldest message still in the ring.
    #[error("subscriber lagged behind and missed {0} messages; it continues with the oldest retained message (use a reliable subscriber or a larger capacity to miss none)")]
    Lagged(u64),
    /// A durable subscriber name is held by a live process.
    #[error("subscriber name {name:?} is held by live process {pid}; stop it first, or choose another name")]
    SubscriberNameTaken {
        /// The name.
        name: String,
        /// The holder (0 if unknown).
        pid: u32,
    },
    /// The topic's subscriber table is full.
    #[error("all {max} subscriber slots of this topic are in use; remove stale durable subscribers with `shmq rm TOPIC --subscriber NAME` or create the topic with more")]
    TooManySubscribers {
        /// The table size.
        max: usize,
    },
    /// A peer took back the slot this handle had claimed (it judged the process dead, which
    /// shmq's liveness never does to a live process, or shared memory was overwritten). The
    /// message in the slot was dropped and counted by the peer (`abandoned` for a message being
    /// sent, `lost_by_crash` for one being received); nothing torn was returned.
    #[error("this handle's claim on a slot was revoked by a peer (which judged this process dead, or overwrote shared memory); the message in it was dropped and counted (abandoned or lost_by_crash): send or receive again")]
    ClaimRevoked,
    /// The other side is gone: a receive found nothing and no sender (producer, publisher) is
    /// attached any more, or a send found the queue full and no consumer is attached any
    /// more. Only after a sender (receiver) was there once: a receiver that starts first waits
    /// for one. A sender (receiver) that attaches later makes the queue usable again.
    #[error("disconnected: nobody is left on the other side (every producer or publisher left or died and everything sent was received, or every consumer left or died and the queue is full)")]
    Disconnected,
    /// A timed operation gave up.
    #[error("timed out; the peer may be slow or gone (check with `shmq stat`)")]
    Timeout,
    /// An exclusive role (SPSC producer or consumer) is held by a live process.
    #[error("the {role} role of this SPSC queue is held by live process {pid}; use an MPMC queue for several {role}s")]
    RoleTaken {
        /// "producer" or "consumer".
        role: &'static str,
        /// The holder's process id.
        pid: u32,
    },
    /// Every participant slot of the segment is in use by live processes.
    #[error("all {max} participant slots of this segment are held by live processes; close some handles")]
    TooManyParticipants {
        /// The size of the participant table.
        max: usize,
    },
    /// The segment directory has no room for the segment.
    #[error("not enough space in {dir} for a segment of {bytes} bytes; free space there, choose a smaller capacity, or set SHMQ_DIR (Docker: --shm-size)")]
    NoSpace {
        /// The segment directory.
        dir: String,
        /// The segment size asked for.
        bytes: u64,
    },
    /// Permission denied by the operating system.
    #[error("permission denied on {path}; the segment belongs to another user or mode (see --mode)")]
    PermissionDenied {
        /// The segment file.
        path: String,
    },
    /// Any other operating-system error.
    #[error("{context}: {source}")]
    Io {
        /// What shmq was doing.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with shmq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    #[cfg_attr(loom, allow(dead_code))] // the OS layer is not built under loom
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn corrupted(what: impl Into<String>) -> Self {
        Error::Corrupted(what.into())
    }
}
