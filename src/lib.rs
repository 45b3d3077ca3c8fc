//! # shmq: lock-free shared-memory queues and topics for processes on one Linux host
//!
//! ## Guarantees
//! - **No syscall on the hot path.** Sending and receiving are loads, stores and (MPMC) CASes
//!   on a shared mapping; a `FUTEX_WAKE` is made only when a peer actually sleeps.
//! - **Bounded memory, no allocation.** A segment's size is fixed at creation and reserved
//!   (`posix_fallocate`), so a full `/dev/shm` fails at create time with [`Error::NoSpace`],
//!   never with SIGBUS later. Send and receive never allocate.
//! - **Nothing lost silently.** A full queue makes `send` wait (per [`WaitStrategy`]),
//!   `try_send` fail with [`TrySendError::Full`], `send_timeout` fail with
//!   [`SendTimeoutError::Timeout`]. A too-small receive buffer leaves the message in the queue
//!   ([`RecvError::BufferTooSmall`]).
//! - **The other side leaving is reported.** A receive that finds nothing, when every sender
//!   that was attached has left or died, returns `Disconnected` ([`RecvError::Disconnected`]);
//!   so does a send that finds a queue full when every consumer left. A clean exit is noticed at
//!   once, a death within 100 ms. "Disconnected" needs a sender that was there once: a
//!   receiver that starts first waits for one.
//! - **Open once, keep the handles.** Opening costs tens of microseconds of system calls
//!   (about 30 µs here, `examples/open_cost.rs`), a message tens of nanoseconds.
//! - **Queues deliver each message to exactly one consumer**, keeping each producer's order.
//! - **Shared memory is never trusted.** Every index, length and state read from a segment is
//!   validated; bad data gives [`Error::Corrupted`], never undefined behaviour, a panic or a
//!   hang.
//! - **Peers may die, and a live peer is never taken for dead.** Every attached process holds
//!   an open-file-description lock on its entry of the segment file; the kernel drops it when
//!   the process dies. No `/proc`, no signals, no pids: it works out of file descriptors, across
//!   users and pid namespaces, and a question the kernel cannot answer counts as "alive". SPSC
//!   roles held by a dead process are taken over; an MPMC slot claimed by a process that died is
//!   recovered by the peer that waits on it (the message in it is counted as abandoned or lost,
//!   see [`RingCounters`]; in a queue with `max_deliveries`, a message its consumer died holding
//!   is delivered again, see [`deadletter`]); a claim taken back from a process is reported to it
//!   ([`Error::ClaimRevoked`]), never written over.
//!
//! ## Quick start: two processes
//! Terminal 1: `shmq recv orders --count 3`; terminal 2: `printf 'a\nb\nc\n' | shmq send orders`.
//! In code (one process here, so it runs as a doctest):
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::{QueueOptions, WaitStrategy};
//! let q = QueueOptions::new().dir(dir.path()).spsc().capacity(64).wait(WaitStrategy::Block)
//!     .open_or_create("orders")?;
//! let (mut tx, mut rx) = (q.producer()?, q.consumer()?);
//! tx.send_kind(7, b"buy 100 XYZ")?;
//! let mut buf = [0u8; 256];
//! let m = rx.recv_into(&mut buf)?;
//! assert_eq!((&buf[..m.len], m.kind), (&b"buy 100 XYZ"[..], 7));
//! assert_eq!(rx.try_recv(&mut buf), Err(shmq::TryRecvError::Empty));
//! drop(tx); // the only producer leaves: once everything is received, the consumer is told
//! assert_eq!(rx.recv_into(&mut buf), Err(shmq::RecvError::Disconnected));
//! q.unlink()?;
//! # Ok::<(), shmq::Error>(())
//! ```
//!
//! ## Modules
//! - [`queue`]: [`Queue`], its [`Producer`]s and [`Consumer`]s (SPSC or MPMC): each message to
//!   exactly one consumer.
//! - [`topic`]: [`Topic`], its [`Publisher`]s and [`Subscriber`]s: every subscriber sees every
//!   message.
//! - [`waitset`]: [`WaitSet`](waitset::WaitSet), one thread waiting on many consumers,
//!   subscribers and timers at once, asleep in the kernel while nothing comes.
//! - [`dispatch`]: [`Dispatcher`](dispatch::Dispatcher), a handler per stream, run on one thread
//!   as messages arrive.
//! - [`deadletter`]: rejecting a message, redelivery, and the dead-letter queue of a queue
//!   with `max_deliveries`.
//! - [`service`]: request-response: a named [`Service`](service::Service) that
//!   [`Server`](service::Server)s offer and [`Client`](service::Client)s call.
//! - `future` (the `async` feature): `recv_async`, `send_async` and `into_stream`, for any
//!   async runtime.
//! - [`error`]: the errors, and what to do about each.
//! - [`status`]: read-only snapshots of segments for tools (what `shmq list` and `shmq stat`
//!   show), and removing segments.
//! - [`limits`]: the largest capacity, message size, subscriber table and names.
//! - [`bytemuck`]: re-exported for the typed helpers (`send_value`, `recv_value`).
//!
//! The segment layout, the ring algorithms and the OS calls are private modules (`layout`,
//! `ring`, `os`, `segment`); the crate's own tests reach them through the `internals` feature,
//! which is not part of the API.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

/// Declares internal modules: private to users, public (and hidden from the docs) with the
/// `internals` feature, which this crate's own tests, loom models and fuzzers turn on.
macro_rules! internal {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unreachable_pub)]
        mod $name;
    )*};
}

internal! {
    mod layout;
    mod ring;
    #[cfg(not(loom))]
    mod os;
    #[cfg(not(loom))]
    mod segment;
}

#[cfg(not(loom))]
mod attach;
pub mod error;
#[cfg(not(loom))]
mod mapped_ring;
pub(crate) mod sync;

#[cfg(not(loom))]
pub mod deadletter;
#[cfg(not(loom))]
pub mod dispatch;
#[cfg(all(feature = "async", not(loom)))]
pub mod future;
#[cfg(not(loom))]
pub mod journal;
#[cfg(not(loom))]
pub mod limits;
#[cfg(not(loom))]
mod message;
#[cfg(not(loom))]
mod methods;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
pub(crate) mod participants;
#[cfg(not(loom))]
pub mod queue;
#[cfg(all(feature = "async", not(loom)))]
mod reactor;
#[cfg(not(loom))]
pub mod service;
#[cfg(not(loom))]
pub mod status;
#[cfg(not(loom))]
pub mod topic;
#[cfg(not(loom))]
mod wait;
#[cfg(not(loom))]
pub mod waitset;

/// The derive macros and traits of the typed helpers (`send_value`, `recv_value`): derive
/// `Pod` and `Zeroable` for your message structs with this crate's re-export, so that your
/// `bytemuck` version always matches ours.
pub use bytemuck;
pub use error::{
    Error, OpenError, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[cfg(not(loom))]
pub use message::{Message, Received};
#[cfg(not(loom))]
pub use methods::{Receiver, Sender};
#[cfg(not(loom))]
pub use queue::{Consumer, Loan, Producer, Queue, QueueKind, QueueOptions, RecvRef, RingCounters};
#[cfg(not(loom))]
pub use topic::{
    AckMode, Publisher, Start, Subscriber, SubscriberBuilder, SubscriberMode, Topic, TopicLoan, TopicOptions, TopicRef,
};
#[cfg(not(loom))]
pub use wait::WaitStrategy;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
