//! # shmq: lock-free shared-memory queues and topics for processes on one Linux host
//!
//! ## Guarantees
//! - **No syscall on the hot path.** Sending and receiving are loads, stores and (MPMC) CASes
//!   on a shared mapping; a `FUTEX_WAKE` is made only when a peer actually sleeps.
//! - **Bounded memory, no allocation.** A segment's size is fixed at creation and reserved
//!   (`posix_fallocate`), so a full `/dev/shm` fails at create time with [`Error::NoSpace`],
//!   never with SIGBUS later. Send and receive never allocate.
//! - **Nothing lost silently.** A full queue makes `send` wait (per [`WaitStrategy`]),
//!   `try_send` fail with [`Error::Full`], `send_timeout` fail with [`Error::Timeout`]. A
//!   too-small receive buffer leaves the message in the queue ([`Error::BufferTooSmall`]).
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
//!   see [`RingCounters`]); a claim taken back from a process is reported to it
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
//! assert!(matches!(rx.try_recv(&mut buf), Err(shmq::Error::Empty)));
//! q.unlink()?;
//! # Ok::<(), shmq::Error>(())
//! ```
//!
//! ## Modules
//! [`layout`] draws every byte of a segment; [`ring`] holds the algorithms (no OS calls);
//! [`os`] holds every OS call; [`queue`] is the user API.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

#[cfg(not(loom))]
mod attach;
#[cfg(not(loom))]
pub mod baseline;
pub mod error;
pub mod layout;
pub mod ring;
pub(crate) mod sync;

#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
pub mod os;
#[cfg(not(loom))]
pub(crate) mod participants;
#[cfg(not(loom))]
pub mod queue;
#[cfg(not(loom))]
pub mod segment;
#[cfg(not(loom))]
pub mod status;
#[cfg(not(loom))]
pub mod topic;
#[cfg(not(loom))]
pub mod wait;

pub use error::{Error, Result};
#[cfg(not(loom))]
pub use participants::ParticipantInfo;
#[cfg(not(loom))]
pub use queue::{Consumer, Loan, Producer, Queue, QueueKind, QueueOptions, Received, RecvRef, RingCounters};
#[cfg(not(loom))]
pub use topic::{
    AckMode, Message, Publisher, Start, Subscriber, SubscriberBuilder, SubscriberInfo, SubscriberMode, Topic,
    TopicLoan, TopicOptions, TopicRef,
};
#[cfg(not(loom))]
pub use wait::WaitStrategy;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
