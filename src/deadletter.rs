//! Rejected messages, redelivery and dead letters (MPMC queues).
//!
//! A consumer that cannot process a message [rejects](crate::queue::RecvRef::reject) it
//! instead of just receiving it. A rejected message stays in its slot and is delivered again,
//! to any consumer, before newer messages (good messages keep their order among themselves).
//!
//! A queue created with [`max_deliveries(n)`](crate::QueueOptions::max_deliveries) counts the
//! failed deliveries of each message: a rejection, or the death of the consumer holding it (in
//! such a queue a consumer that dies does not lose its message: it is delivered again). After
//! the `n`-th failure the message is moved to the queue's **dead-letter queue** (`NAME.dlq` by
//! default, [`dead_letter_queue`](crate::QueueOptions::dead_letter_queue) to choose), as a
//! [`DeadLetter`]: the original payload and kind, the reason, the number of deliveries, and when
//! its first delivery failed. Receive from the dead-letter queue like from any queue and read
//! each message with [`DeadLetter::parse`]; `shmq dlq NAME` lists them, and `shmq dlq NAME
//! --requeue` sends them back ([`Queue::requeue_dead_letters`](crate::Queue::requeue_dead_letters)).
//!
//! ## Nothing is lost, nothing doubled
//! Moves are serialized by a lock in the queue and write the dead-letter queue without claiming
//! a slot, so that one atomic step, the letter's commit, decides where the message is; a
//! consumer killed at any point of a reject or a move leaves the message in exactly one of the
//! two queues (the move's next holder finishes or undoes what it recorded; see the
//! `ring::deadletter` docs). Only moves write a dead-letter queue: it refuses producers.
//! Requeueing sends a letter's payload back and then consumes the letter: a requeuer killed
//! between the two leaves it in both (at least once, never lost).
//!
//! # Examples
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::deadletter::{DeadLetter, Rejected};
//! use shmq::QueueOptions;
//! let q = QueueOptions::new().dir(dir.path()).max_deliveries(2).create("jobs")?;
//! let (mut tx, mut rx) = (q.producer()?, q.consumer()?);
//! tx.send(b"poison")?;
//! let m = rx.recv_ref()?;
//! assert_eq!(m.delivery(), Some(1));
//! assert_eq!(m.reject("cannot parse")?, Rejected::Redelivered { failed: 1 });
//! let m = rx.recv_ref()?; // the same message, delivered again
//! assert_eq!(m.delivery(), Some(2));
//! assert!(matches!(m.reject("cannot parse")?, Rejected::DeadLettered { .. }));
//!
//! let dlq = q.dead_letter_queue()?.expect("jobs has one");
//! let mut letters = dlq.consumer()?;
//! let l = letters.recv_ref()?;
//! let letter = DeadLetter::parse(&l)?;
//! assert_eq!((letter.payload, letter.reason, letter.deliveries), (&b"poison"[..], "cannot parse", 2));
//! # drop(l); q.unlink()?; dlq.unlink()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::Error;
use crate::layout::{letter, LETTER_HEADER, LETTER_MAGIC, MAX_REASON};

/// What became of a rejected message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// It will be delivered again; `failed` deliveries so far (counted only in a queue with
    /// `max_deliveries`, else 0).
    Redelivered {
        /// Failed deliveries so far.
        failed: u32,
    },
    /// It reached `max_deliveries` and is now in the dead-letter queue.
    DeadLettered {
        /// Its position in the dead-letter queue.
        position: u64,
    },
}

/// Why a rejection did not go as asked. The message is never lost: each variant says where it
/// is.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum RejectError {
    /// The message was due for the dead-letter queue, which is full: it was put back to be
    /// delivered again (and will be moved when a consumer next gets it and there is room).
    #[error("dead-letter queue {name:?} is full: the message was put back to be delivered again; drain it (shmq dlq {origin} --requeue, or receive from {name})")]
    DeadLetterQueueFull {
        /// The dead-letter queue.
        name: String,
        /// The queue the message came from.
        origin: String,
    },
    /// Another live process held the queue's move lock for over a second: the message was put
    /// back to be delivered again.
    #[error("another process (id {holder}) held the dead-letter move lock of this queue for over a second; the message was put back to be delivered again")]
    LockBusy {
        /// The holder's participant id.
        holder: u16,
    },
    /// A peer took the message back from this handle (see [`Error::ClaimRevoked`]); it is in
    /// the queue, not here.
    #[error("{}", Error::ClaimRevoked)]
    ClaimRevoked,
    /// Shared memory holds impossible values (see [`Error::Corrupted`]).
    #[error("{}", Error::Corrupted(.0.clone()))]
    Corrupted(String),
    /// SPSC queues deliver again by not consuming; anything else this handle cannot do.
    #[error("{0}")]
    Unsupported(String),
}

impl RejectError {
    pub(crate) fn from_internal(e: Error) -> RejectError {
        match e {
            Error::ClaimRevoked => RejectError::ClaimRevoked,
            Error::Corrupted(s) => RejectError::Corrupted(s),
            Error::Unsupported(s) => RejectError::Unsupported(s),
            other => RejectError::Corrupted(format!("unexpected: {other}")),
        }
    }
}

impl From<RejectError> for Error {
    fn from(e: RejectError) -> Error {
        match e {
            RejectError::ClaimRevoked => Error::ClaimRevoked,
            RejectError::Corrupted(s) => Error::Corrupted(s),
            RejectError::Unsupported(s) => Error::Unsupported(s),
            other => Error::Unsupported(other.to_string()),
        }
    }
}

/// A message of a dead-letter queue, read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// The original payload.
    pub payload: &'a [u8],
    /// The original kind.
    pub kind: u32,
    /// Why it is dead (the last rejection's reason, or which consumer died).
    pub reason: &'a str,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// When its first delivery failed, ns since the Unix epoch.
    pub first_failed_ns: u64,
    /// When it was moved, ns since the Unix epoch.
    pub dead_lettered_ns: u64,
    /// Its position in the queue it came from.
    pub origin_position: u64,
}

impl<'a> DeadLetter<'a> {
    /// Reads a dead-letter queue's message. `Corrupted` if it is not a letter (every field is
    /// checked: a letter's bytes came from shared memory).
    pub fn parse(bytes: &'a [u8]) -> Result<DeadLetter<'a>, Error> {
        let bad = |what: &str| Error::corrupted(format!("not a dead letter: {what}"));
        if bytes.len() < LETTER_HEADER {
            return Err(bad("shorter than its header"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if u64_at(letter::MAGIC) != LETTER_MAGIC {
            return Err(bad("no letter magic"));
        }
        let len = u32_at(letter::LEN) as usize;
        if len != bytes.len() - LETTER_HEADER {
            return Err(bad("its length disagrees with the message's"));
        }
        let reason_len = u32_at(letter::REASON_LEN) as usize;
        if reason_len > MAX_REASON {
            return Err(bad("reason too long"));
        }
        let reason = std::str::from_utf8(&bytes[letter::REASON..letter::REASON + reason_len])
            .map_err(|_| bad("reason is not UTF-8"))?;
        Ok(DeadLetter {
            payload: &bytes[LETTER_HEADER..],
            kind: u32_at(letter::KIND),
            reason,
            deliveries: u32_at(letter::DELIVERIES),
            first_failed_ns: u64_at(letter::FIRST_FAILED),
            dead_lettered_ns: u64_at(letter::DEAD),
            origin_position: u64_at(letter::ORIGIN_POS),
        })
    }
}

/// A dead letter copied out of the dead-letter queue (see
/// [`Queue::dead_letters`](crate::Queue::dead_letters)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// Its position in the dead-letter queue.
    pub position: u64,
    /// The original payload.
    pub payload: Vec<u8>,
    /// The original kind.
    pub kind: u32,
    /// Why it is dead.
    pub reason: String,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// When its first delivery failed, ns since the Unix epoch.
    pub first_failed_ns: u64,
    /// When it was moved, ns since the Unix epoch.
    pub dead_lettered_ns: u64,
    /// Its position in the queue it came from.
    pub origin_position: u64,
}

/// A reason cut to at most [`MAX_REASON`] bytes, at a character boundary.
pub(crate) fn cut_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The longest reason kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_REASON_LEN: usize = MAX_REASON;
