//! Errors: one type per operation, as crossbeam-channel and tokio have, and [`Error`], which
//! every one of them converts into (for `?` in code that does not care which operation failed).
//!
//! | operation | error |
//! |---|---|
//! | `send`, `send_kind`, `send_value`, `loan`, `Loan::commit` | [`SendError`] |
//! | `try_send*`, `try_loan`, `try_send_batch` | [`TrySendError`] (adds `Full`) |
//! | `send*_timeout`, `send_deadline`, `loan_timeout` | [`SendTimeoutError`] (adds `Timeout`) |
//! | `recv_into`, `recv_ref`, `recv_value` | [`RecvError`] |
//! | `try_recv*`, `try_recv_batch` | [`TryRecvError`] (adds `Empty`) |
//! | `recv*_timeout`, `recv_deadline` | [`RecvTimeoutError`] (adds `Timeout`) |
//! | `create`, `open`, `open_or_create`, `producer`, `consumer`, `publisher`, `subscriber().build()` | [`OpenError`] |
//!
//! Every message says what happened and what to do about it, in terms of this library (the
//! command line adds its own advice).

// Under loom only the rings are built: the conversions of the user API are unused there.
#![cfg_attr(loom, allow(dead_code))]

use std::fmt;
use std::io;

/// Everything that can go wrong in shmq: what every per-operation error converts into.
///
/// Errors that concern shared memory written by another process (`Corrupted`, `Incompatible`,
/// `Stale`) never come with undefined behaviour: shmq validates every value it reads from a
/// segment before using it.
#[derive(thiserror::Error)]
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
    #[error("{name:?} already exists; open it instead (or open_or_create), or remove it first")]
    AlreadyExists {
        /// The user-facing name.
        name: String,
    },
    /// The segment exists but was made with another layout, version, kind or configuration.
    #[error("incompatible segment: {what} is {found}, expected {expected}; open it with matching settings (or as what it is), or remove it and create it again, which deletes the messages in it")]
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
    #[error("segment {name:?} was left half-initialised by a dead creator; open_or_create replaces it, or remove it")]
    Stale {
        /// The user-facing name.
        name: String,
    },
    /// Shared memory holds a value that no correct peer could have written.
    #[error(
        "corrupted segment: {0}; a peer wrote invalid data into shared memory: remove the segment and create it again"
    )]
    Corrupted(String),
    /// The message is larger than the queue's maximum message size.
    #[error("a message of {} exceeds the maximum of {}; split it, or create the queue or topic with a larger max message size", bytes(*.len), bytes(*.max))]
    MessageTooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The queue's maximum message size.
        max: usize,
    },
    /// The receive buffer is smaller than the next message; the message stays in the queue.
    #[error("a receive buffer of {} is smaller than the next message ({}); the message was not consumed: retry with a larger buffer", bytes(*.len), bytes(*.needed))]
    BufferTooSmall {
        /// Length of the buffer given.
        len: usize,
        /// Length of the waiting message.
        needed: usize,
    },
    /// A typed receive found a message of another size than the type.
    #[error("a message of {} cannot be read as a value of {}; sender and receiver disagree on the type", bytes(*.found), bytes(*.expected))]
    SizeMismatch {
        /// `size_of::<T>()`.
        expected: usize,
        /// The message length.
        found: usize,
    },
    /// The queue is full (`try_send`), or a topic's slowest reliable subscriber is a whole
    /// ring behind (`try_send` on a publisher).
    #[error("the queue or topic is full; retry later, or use send (or send_timeout) to wait for space")]
    Full,
    /// The queue is empty (`try_recv`).
    #[error("nothing to receive yet; retry later, or use recv_into (or recv_timeout) to wait for a message")]
    Empty,
    /// A lossy subscriber was overtaken by publishers and missed this many messages; it goes on
    /// from the oldest message still in the ring.
    #[error("the subscriber lagged behind and missed {}; it continues with the oldest message still retained (a reliable subscriber, or a larger capacity, misses none)", messages(*.0))]
    Lagged(u64),
    /// A durable subscriber name is held by a live process (or a consumer group to be removed
    /// still has a live member, in process `pid`).
    #[error("subscriber name {name:?} is held by live process {pid}; stop it first, or choose another name")]
    SubscriberNameTaken {
        /// The name.
        name: String,
        /// The holder (0 if unknown).
        pid: u32,
    },
    /// The topic's subscriber table is full.
    #[error("all {max} subscriber slots of this topic are in use; remove durable subscribers that are not coming back (Topic::remove_subscriber), or create the topic with more (TopicOptions::max_subscribers)")]
    TooManySubscribers {
        /// The table size.
        max: usize,
    },
    /// The topic holds as many consumer groups as it has room for (`max` 0: it was created
    /// with no room for groups).
    #[error("{}", too_many_groups(*max))]
    TooManyGroups {
        /// The topic's `max_groups`.
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
    #[error("timed out; the peer may be slow, stopped, or not started yet")]
    Timeout,
    /// The operation does not exist for this handle (e.g. an in-place read by a lossy
    /// subscriber, whose slot could be overwritten under the reference).
    #[error("{0}")]
    Unsupported(String),
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
    #[error("permission denied on {path}; the segment or its directory belongs to another user or has a mode that excludes this one (a segment is created owner-only unless a mode is given)")]
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

/// "1 byte", "2 bytes".
fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// "1 message", "2 messages".
fn too_many_groups(max: usize) -> String {
    let more = "create the topic with more (TopicOptions::max_groups)";
    if max == 0 {
        return format!("this topic has no room for consumer groups; {more}");
    }
    format!(
        "all {max} consumer group entries of this topic are in use; remove groups that are not coming back \
         (Topic::remove_group, shmq rm TOPIC --group NAME), or {more}"
    )
}

fn messages(n: u64) -> String {
    if n == 1 {
        "1 message".into()
    } else {
        format!("{n} messages")
    }
}

/// Declares a per-operation error: its own variants first, then `$shared` (the failures every
/// operation of its family shares), with `From<$name> for Error` (variant for variant) and the
/// conversion from the internal [`Error`] the rings and the waiting code produce.
macro_rules! op_error {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $own:ident),* }
        $shared:ident
    ) => {
        $shared! {
            $(#[$meta])*
            $name { $($(#[$vmeta])* #[error("{}", Error::$own)] $own,)* }
        }

        impl From<$name> for Error {
            fn from(e: $name) -> Error {
                e.into_error()
            }
        }
    };
}

/// The failures every send shares.
macro_rules! send_family {
    ($(#[$meta:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($own)*
            /// Nobody is left to receive: the queue is full and every consumer that was attached
            /// left or died (see [`Error::Disconnected`]). The message was not sent.
            #[error("{}", Error::Disconnected)]
            Disconnected,
            /// The message is larger than the maximum message size; nothing was sent.
            #[error("{}", Error::MessageTooLarge { len: *len, max: *max })]
            MessageTooLarge {
                /// Length of the message.
                len: usize,
                /// The maximum message size.
                max: usize,
            },
            /// A peer took back the slot this handle had claimed (see [`Error::ClaimRevoked`]):
            /// the message was not sent; send it again.
            #[error("{}", Error::ClaimRevoked)]
            ClaimRevoked,
            /// Shared memory holds a value no correct peer writes (see [`Error::Corrupted`]).
            #[error("{}", Error::Corrupted(.0.clone()))]
            Corrupted(String),
        }

        impl $name {
            /// Whether nobody is left to receive.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, Self::Disconnected)
            }

            fn into_error(self) -> Error {
                match self {
                    $name::Disconnected => Error::Disconnected,
                    $name::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
                    $name::ClaimRevoked => Error::ClaimRevoked,
                    $name::Corrupted(s) => Error::Corrupted(s),
                    #[allow(unreachable_patterns)]
                    other => other.into_own(),
                }
            }

            /// The internal error of a send, as this operation's error.
            pub(crate) fn from_internal(e: Error) -> Self {
                match e {
                    Error::Disconnected => $name::Disconnected,
                    Error::MessageTooLarge { len, max } => $name::MessageTooLarge { len, max },
                    Error::ClaimRevoked => $name::ClaimRevoked,
                    Error::Corrupted(s) => $name::Corrupted(s),
                    other => Self::from_own(other),
                }
            }
        }
    };
}

/// The failures every receive shares.
macro_rules! recv_family {
    ($(#[$meta:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($own)*
            /// Nothing is left to receive: every sender (producer, publisher) that was attached
            /// left or died, and every message they sent was received (see
            /// [`Error::Disconnected`]).
            #[error("{}", Error::Disconnected)]
            Disconnected,
            /// A lossy subscriber was overtaken and missed this many messages; the next receive
            /// continues with the oldest message still in the ring.
            #[error("{}", Error::Lagged(*.0))]
            Lagged(u64),
            /// The buffer is smaller than the next message, which was not consumed.
            #[error("{}", Error::BufferTooSmall { len: *len, needed: *needed })]
            BufferTooSmall {
                /// Length of the buffer given.
                len: usize,
                /// Length of the waiting message.
                needed: usize,
            },
            /// A typed receive found a message of another size than the type (it was consumed).
            #[error("{}", Error::SizeMismatch { expected: *expected, found: *found })]
            SizeMismatch {
                /// `size_of::<T>()`.
                expected: usize,
                /// The message length.
                found: usize,
            },
            /// The operation does not exist for this handle (e.g. an in-place read by a lossy
            /// subscriber, whose slot could be overwritten under the reference).
            #[error("{0}")]
            Unsupported(String),
            /// A peer took back the slot this handle had claimed; the message in it is lost and
            /// counted (see [`Error::ClaimRevoked`]).
            #[error("{}", Error::ClaimRevoked)]
            ClaimRevoked,
            /// Shared memory holds a value no correct peer writes (see [`Error::Corrupted`]).
            #[error("{}", Error::Corrupted(.0.clone()))]
            Corrupted(String),
        }

        impl $name {
            /// Whether nothing is left to receive (every sender gone).
            pub fn is_disconnected(&self) -> bool {
                matches!(self, Self::Disconnected)
            }
            /// How many messages a lossy subscriber missed, if that is the error.
            pub fn lagged(&self) -> Option<u64> {
                match self {
                    Self::Lagged(n) => Some(*n),
                    _ => None,
                }
            }

            fn into_error(self) -> Error {
                match self {
                    $name::Disconnected => Error::Disconnected,
                    $name::Lagged(n) => Error::Lagged(n),
                    $name::BufferTooSmall { len, needed } => Error::BufferTooSmall { len, needed },
                    $name::SizeMismatch { expected, found } => Error::SizeMismatch { expected, found },
                    $name::Unsupported(s) => Error::Unsupported(s),
                    $name::ClaimRevoked => Error::ClaimRevoked,
                    $name::Corrupted(s) => Error::Corrupted(s),
                    #[allow(unreachable_patterns)]
                    other => other.into_own(),
                }
            }

            /// The internal error of a receive, as this operation's error.
            pub(crate) fn from_internal(e: Error) -> Self {
                match e {
                    Error::Disconnected => $name::Disconnected,
                    Error::Lagged(n) => $name::Lagged(n),
                    Error::BufferTooSmall { len, needed } => $name::BufferTooSmall { len, needed },
                    Error::SizeMismatch { expected, found } => $name::SizeMismatch { expected, found },
                    Error::Unsupported(s) => $name::Unsupported(s),
                    Error::ClaimRevoked => $name::ClaimRevoked,
                    Error::Corrupted(s) => $name::Corrupted(s),
                    other => Self::from_own(other),
                }
            }
        }
    };
}

op_error! {
    /// Why a blocking send ([`Producer::send`](crate::Producer::send) and the like, on queues
    /// and topics) failed.
    SendError {}
    send_family
}

op_error! {
    /// Why a send that does not wait ([`Producer::try_send`](crate::Producer::try_send) and
    /// the like) failed.
    TrySendError {
        /// No space now (a queue is full, or a topic's slowest reliable subscriber is a whole
        /// ring behind); retry later.
        Full
    }
    send_family
}

op_error! {
    /// Why a send with a time limit ([`Producer::send_timeout`](crate::Producer::send_timeout)
    /// and the like) failed.
    SendTimeoutError {
        /// No space came within the time limit.
        Timeout
    }
    send_family
}

op_error! {
    /// Why a blocking receive ([`Consumer::recv_into`](crate::Consumer::recv_into) and the
    /// like, on queues and topics) failed.
    RecvError {}
    recv_family
}

op_error! {
    /// Why a receive that does not wait ([`Consumer::try_recv`](crate::Consumer::try_recv) and
    /// the like) failed.
    TryRecvError {
        /// No message now; retry later.
        Empty
    }
    recv_family
}

op_error! {
    /// Why a receive with a time limit
    /// ([`Consumer::recv_timeout`](crate::Consumer::recv_timeout) and the like) failed.
    RecvTimeoutError {
        /// No message came within the time limit.
        Timeout
    }
    recv_family
}

/// The conversions of each error's own variants (the ones its family does not share).
macro_rules! own_variants {
    ($name:ident { $($own:ident),* }) => {
        impl $name {
            #[allow(unreachable_code, unused_variables)]
            fn into_own(self) -> Error {
                match self {
                    $($name::$own => Error::$own,)*
                    // Only the family's shared variants are left, which `into_error` handled.
                    _ => unreachable!("shared variants are converted by into_error"),
                }
            }
            /// An internal error no operation of this kind produces becomes `Corrupted` with
            /// its text (never a panic).
            fn from_own(e: Error) -> Self {
                match e {
                    $(Error::$own => $name::$own,)*
                    other => $name::Corrupted(format!("unexpected: {other}")),
                }
            }
        }
    };
}

own_variants!(SendError {});
own_variants!(TrySendError { Full });
own_variants!(SendTimeoutError { Timeout });
own_variants!(RecvError {});
own_variants!(TryRecvError { Empty });
own_variants!(RecvTimeoutError { Timeout });

impl TrySendError {
    /// Whether there was no space.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full)
    }
}

impl SendTimeoutError {
    /// Whether the time limit passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout)
    }
}

impl TryRecvError {
    /// Whether there was nothing to receive.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

impl RecvTimeoutError {
    /// Whether the time limit passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
}

/// Why creating or opening a queue or topic, or attaching a handle to it (`producer`,
/// `consumer`, `publisher`, `subscriber().build()`), failed.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// See [`Error::InvalidName`].
    #[error("{}", Error::InvalidName { name: name.clone(), reason })]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// See [`Error::InvalidConfig`].
    #[error("{}", Error::InvalidConfig(.0.clone()))]
    InvalidConfig(String),
    /// See [`Error::NotFound`].
    #[error("{}", Error::NotFound { name: name.clone(), dir: dir.clone() })]
    NotFound {
        /// The user-facing name.
        name: String,
        /// The segment directory searched.
        dir: String,
    },
    /// See [`Error::AlreadyExists`].
    #[error("{}", Error::AlreadyExists { name: name.clone() })]
    AlreadyExists {
        /// The user-facing name.
        name: String,
    },
    /// See [`Error::Incompatible`].
    #[error("{}", Error::Incompatible { what, expected: expected.clone(), found: found.clone() })]
    Incompatible {
        /// Which header field disagrees.
        what: &'static str,
        /// What this process expected.
        expected: String,
        /// What the segment holds.
        found: String,
    },
    /// See [`Error::Stale`].
    #[error("{}", Error::Stale { name: name.clone() })]
    Stale {
        /// The user-facing name.
        name: String,
    },
    /// See [`Error::Corrupted`].
    #[error("{}", Error::Corrupted(.0.clone()))]
    Corrupted(String),
    /// See [`Error::NoSpace`].
    #[error("{}", Error::NoSpace { dir: dir.clone(), bytes: *bytes })]
    NoSpace {
        /// The segment directory.
        dir: String,
        /// The segment size asked for.
        bytes: u64,
    },
    /// See [`Error::PermissionDenied`].
    #[error("{}", Error::PermissionDenied { path: path.clone() })]
    PermissionDenied {
        /// The segment file or directory.
        path: String,
    },
    /// Another process held the segment's lock (removing it) for longer than the options'
    /// `ready_timeout`.
    #[error("{}", Error::Timeout)]
    Timeout,
    /// See [`Error::RoleTaken`].
    #[error("{}", Error::RoleTaken { role, pid: *pid })]
    RoleTaken {
        /// "producer" or "consumer".
        role: &'static str,
        /// The holder's process id.
        pid: u32,
    },
    /// See [`Error::TooManyParticipants`].
    #[error("{}", Error::TooManyParticipants { max: *max })]
    TooManyParticipants {
        /// The size of the participant table.
        max: usize,
    },
    /// See [`Error::SubscriberNameTaken`].
    #[error("{}", Error::SubscriberNameTaken { name: name.clone(), pid: *pid })]
    SubscriberNameTaken {
        /// The name.
        name: String,
        /// The holder (0 if unknown).
        pid: u32,
    },
    /// See [`Error::TooManySubscribers`].
    #[error("{}", Error::TooManySubscribers { max: *max })]
    TooManySubscribers {
        /// The table size.
        max: usize,
    },
    /// See [`Error::TooManyGroups`].
    #[error("{}", Error::TooManyGroups { max: *max })]
    TooManyGroups {
        /// The topic's `max_groups`.
        max: usize,
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

impl OpenError {
    /// Whether there is no such queue or topic.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OpenError::NotFound { .. })
    }

    /// The internal error of an open or attach, as an `OpenError`. Errors no open produces
    /// (a full queue, say) become `Corrupted` with their text, never a panic.
    pub(crate) fn from_internal(e: Error) -> OpenError {
        match e {
            Error::InvalidName { name, reason } => OpenError::InvalidName { name, reason },
            Error::InvalidConfig(s) => OpenError::InvalidConfig(s),
            Error::NotFound { name, dir } => OpenError::NotFound { name, dir },
            Error::AlreadyExists { name } => OpenError::AlreadyExists { name },
            Error::Incompatible { what, expected, found } => OpenError::Incompatible { what, expected, found },
            Error::Stale { name } => OpenError::Stale { name },
            Error::Corrupted(s) => OpenError::Corrupted(s),
            Error::NoSpace { dir, bytes } => OpenError::NoSpace { dir, bytes },
            Error::PermissionDenied { path } => OpenError::PermissionDenied { path },
            Error::Timeout => OpenError::Timeout,
            Error::RoleTaken { role, pid } => OpenError::RoleTaken { role, pid },
            Error::TooManyParticipants { max } => OpenError::TooManyParticipants { max },
            Error::SubscriberNameTaken { name, pid } => OpenError::SubscriberNameTaken { name, pid },
            Error::TooManySubscribers { max } => OpenError::TooManySubscribers { max },
            Error::TooManyGroups { max } => OpenError::TooManyGroups { max },
            Error::Io { context, source } => OpenError::Io { context, source },
            other => OpenError::Corrupted(format!("unexpected: {other}")),
        }
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Error {
        match e {
            OpenError::InvalidName { name, reason } => Error::InvalidName { name, reason },
            OpenError::InvalidConfig(s) => Error::InvalidConfig(s),
            OpenError::NotFound { name, dir } => Error::NotFound { name, dir },
            OpenError::AlreadyExists { name } => Error::AlreadyExists { name },
            OpenError::Incompatible { what, expected, found } => Error::Incompatible { what, expected, found },
            OpenError::Stale { name } => Error::Stale { name },
            OpenError::Corrupted(s) => Error::Corrupted(s),
            OpenError::NoSpace { dir, bytes } => Error::NoSpace { dir, bytes },
            OpenError::PermissionDenied { path } => Error::PermissionDenied { path },
            OpenError::Timeout => Error::Timeout,
            OpenError::RoleTaken { role, pid } => Error::RoleTaken { role, pid },
            OpenError::TooManyParticipants { max } => Error::TooManyParticipants { max },
            OpenError::SubscriberNameTaken { name, pid } => Error::SubscriberNameTaken { name, pid },
            OpenError::TooManySubscribers { max } => Error::TooManySubscribers { max },
            OpenError::TooManyGroups { max } => Error::TooManyGroups { max },
            OpenError::Io { context, source } => Error::Io { context, source },
        }
    }
}

/// The variant and the message, so that `fn main() -> Result<(), Error>` (which prints the
/// error with `Debug`) says what happened and what to do, like `Display`.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            Error::InvalidName { .. } => "InvalidName",
            Error::InvalidConfig(_) => "InvalidConfig",
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Incompatible { .. } => "Incompatible",
            Error::Stale { .. } => "Stale",
            Error::Corrupted(_) => "Corrupted",
            Error::MessageTooLarge { .. } => "MessageTooLarge",
            Error::BufferTooSmall { .. } => "BufferTooSmall",
            Error::SizeMismatch { .. } => "SizeMismatch",
            Error::Full => "Full",
            Error::Empty => "Empty",
            Error::Lagged(_) => "Lagged",
            Error::SubscriberNameTaken { .. } => "SubscriberNameTaken",
            Error::TooManySubscribers { .. } => "TooManySubscribers",
            Error::TooManyGroups { .. } => "TooManyGroups",
            Error::ClaimRevoked => "ClaimRevoked",
            Error::Disconnected => "Disconnected",
            Error::Timeout => "Timeout",
            Error::RoleTaken { .. } => "RoleTaken",
            Error::TooManyParticipants { .. } => "TooManyParticipants",
            Error::NoSpace { .. } => "NoSpace",
            Error::PermissionDenied { .. } => "PermissionDenied",
            Error::Unsupported(_) => "Unsupported",
            Error::Io { .. } => "Io",
        };
        write!(f, "{variant}: {self}")
    }
}

/// The variant and the message, so that `fn main() -> Result<(), OpenError>` (which prints the
/// error with `Debug`) says what happened and what to do, like `Display`.
impl fmt::Debug for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            OpenError::InvalidName { .. } => "InvalidName",
            OpenError::InvalidConfig(_) => "InvalidConfig",
            OpenError::NotFound { .. } => "NotFound",
            OpenError::AlreadyExists { .. } => "AlreadyExists",
            OpenError::Incompatible { .. } => "Incompatible",
            OpenError::Stale { .. } => "Stale",
            OpenError::Corrupted(_) => "Corrupted",
            OpenError::NoSpace { .. } => "NoSpace",
            OpenError::PermissionDenied { .. } => "PermissionDenied",
            OpenError::Timeout => "Timeout",
            OpenError::RoleTaken { .. } => "RoleTaken",
            OpenError::TooManyParticipants { .. } => "TooManyParticipants",
            OpenError::SubscriberNameTaken { .. } => "SubscriberNameTaken",
            OpenError::TooManySubscribers { .. } => "TooManySubscribers",
            OpenError::TooManyGroups { .. } => "TooManyGroups",
            OpenError::Io { .. } => "Io",
        };
        write!(f, "{variant}: {self}")
    }
}
