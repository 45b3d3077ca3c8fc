//! The dead-letter parts of an MPMC queue segment (see [`crate::deadletter`]): the move lock
//! and its record, the name of the queue at the other end, and the per-slot delivery counts.
//!
//! ```text
//!  (between the participant table and the slots, only in queues with dead letters)
//!  DeadLetterInfo (640 B, five lines)
//!     +0    lock          u64  [generation:48 | holder participant id:16], 0 id = free
//!     +8    rec_state     u32  REC_NONE or REC_MOVING: the record below describes a move
//!     +12   rec_deliveries u32 deliveries of the message being moved
//!     +16   rec_pos       u64  its position in this queue
//!     +24   rec_dlq_pos   u64  the dead-letter queue position it goes to
//!     +32   rec_first_failed_ns u64
//!     +40   rec_reason_len u32
//!     +44   name_len      u32  bytes of `name`
//!     +128  rec_reason    [u8; 256]  why (UTF-8, at most MAX_REASON bytes)
//!     +384  name          [u8; 256]  origin queue: its dead-letter queue; dead-letter queue: its origin
//!  DeliveryEntry table (origin queues only): capacity x 32 B, entry i for slot i
//!     +0  key        u64  position + 1 of the message it describes (0: none)
//!     +8  count      u32  deliveries that failed (rejected, or the consumer died holding it)
//!     +12 last_pid   u32  pid of the consumer of the last failed delivery
//!     +16 first_failed_ns u64
//!     +24 cause      u32  CAUSE_*: how the last delivery failed
//! ```
//!
//! A dead letter (a message of the dead-letter queue) is a [`LETTER_HEADER`]-byte header, then
//! the original payload:
//!
//! ```text
//!     +0   magic          u64  LETTER_MAGIC
//!     +8   origin_pos     u64  its position in the origin queue
//!     +16  first_failed_ns u64 when its first delivery failed
//!     +24  dead_ns        u64  when it was moved
//!     +32  deliveries     u32
//!     +36  kind           u32  the original kind (also the letter's kind)
//!     +40  len            u32  the original payload's length
//!     +44  reason_len     u32
//!     +48  reason         [u8; 208]  (at most MAX_REASON bytes used)
//!     +256 payload
//! ```

use super::LINE;
use crate::sync::{AtomicU32, AtomicU64};

/// The move lock, its record and the other queue's name (see the module docs).
#[derive(Debug)]
#[repr(C, align(128))]
pub struct DeadLetterInfo {
    /// `[generation:48 | holder id:16]`; holder 0 = free. Taken by CAS of the whole word.
    pub lock: AtomicU64,
    /// [`REC_NONE`] or [`REC_MOVING`].
    pub rec_state: AtomicU32,
    /// Deliveries of the message being moved.
    pub rec_deliveries: AtomicU32,
    /// Its position in this queue.
    pub rec_pos: AtomicU64,
    /// The dead-letter queue position it is written to.
    pub rec_dlq_pos: AtomicU64,
    /// When its first delivery failed, ns since the Unix epoch.
    pub rec_first_failed_ns: AtomicU64,
    /// Bytes of `rec_reason`.
    pub rec_reason_len: AtomicU32,
    /// Bytes of `name`.
    pub name_len: AtomicU32,
    /// Reserved, zero.
    pub reserved: [AtomicU64; 10],
    /// Why it is moved.
    pub rec_reason: [AtomicU64; 32],
    /// The other queue's name.
    pub name: [AtomicU64; 32],
}

impl DeadLetterInfo {
    /// A zeroed block (heap rings: unit tests, loom models).
    pub fn new() -> Self {
        let z = || AtomicU64::new(0);
        DeadLetterInfo {
            lock: z(),
            rec_state: AtomicU32::new(0),
            rec_deliveries: AtomicU32::new(0),
            rec_pos: z(),
            rec_dlq_pos: z(),
            rec_first_failed_ns: z(),
            rec_reason_len: AtomicU32::new(0),
            name_len: AtomicU32::new(0),
            reserved: std::array::from_fn(|_| z()),
            rec_reason: std::array::from_fn(|_| z()),
            name: std::array::from_fn(|_| z()),
        }
    }
}

impl Default for DeadLetterInfo {
    fn default() -> Self {
        Self::new()
    }
}

/// Size of [`DeadLetterInfo`].
pub const DEAD_LETTER_INFO_SIZE: usize = 5 * LINE;

/// No move is recorded.
pub const REC_NONE: u32 = 0;
/// A move is recorded (and may be half done if its holder died).
pub const REC_MOVING: u32 = 1;

/// Delivery count of the message in one slot.
#[derive(Debug)]
#[repr(C)]
pub struct DeliveryEntry {
    /// Position + 1 of the message this entry describes (0 or any other value: none, so the
    /// message has not failed yet).
    pub key: AtomicU64,
    /// Deliveries that failed.
    pub count: AtomicU32,
    /// Pid of the consumer of the last failed delivery.
    pub last_pid: AtomicU32,
    /// When the first delivery failed, ns since the Unix epoch.
    pub first_failed_ns: AtomicU64,
    /// [`CAUSE_REJECTED`], [`CAUSE_CONSUMER_DIED`] or [`CAUSE_DLQ_FULL`].
    pub cause: AtomicU32,
    /// Reserved, zero.
    pub reserved: AtomicU32,
}

impl DeliveryEntry {
    /// An empty entry (heap rings).
    pub fn new() -> Self {
        DeliveryEntry {
            key: AtomicU64::new(0),
            count: AtomicU32::new(0),
            last_pid: AtomicU32::new(0),
            first_failed_ns: AtomicU64::new(0),
            cause: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
        }
    }
}

impl Default for DeliveryEntry {
    fn default() -> Self {
        Self::new()
    }
}

/// Size of [`DeliveryEntry`].
pub const DELIVERY_ENTRY_SIZE: usize = 32;

/// The last delivery was rejected by its consumer.
pub const CAUSE_REJECTED: u32 = 1;
/// The consumer of the last delivery died holding the message.
pub const CAUSE_CONSUMER_DIED: u32 = 2;
/// The message was due for the dead-letter queue, which was full.
pub const CAUSE_DLQ_FULL: u32 = 3;

/// `Header::flags` bit: this queue is a dead-letter queue (only moves write it).
pub const FLAG_DEAD_LETTER_QUEUE: u32 = 1;

/// `"SHMQDLT1"` read as a little-endian u64: the first word of every dead letter.
pub const LETTER_MAGIC: u64 = u64::from_le_bytes(*b"SHMQDLT1");
/// Bytes of a dead letter's header, before the original payload.
pub const LETTER_HEADER: usize = 256;
/// Longest reason kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_REASON: usize = 200;
/// Largest `max_deliveries`.
pub const MAX_DELIVERIES: u32 = 1_000_000;

/// Offsets of a letter header's fields.
pub mod letter {
    /// `magic` (u64).
    pub const MAGIC: usize = 0;
    /// `origin_pos` (u64).
    pub const ORIGIN_POS: usize = 8;
    /// `first_failed_ns` (u64).
    pub const FIRST_FAILED: usize = 16;
    /// `dead_ns` (u64).
    pub const DEAD: usize = 24;
    /// `deliveries` (u32).
    pub const DELIVERIES: usize = 32;
    /// `kind` (u32).
    pub const KIND: usize = 36;
    /// `len` (u32).
    pub const LEN: usize = 40;
    /// `reason_len` (u32).
    pub const REASON_LEN: usize = 44;
    /// `reason` bytes.
    pub const REASON: usize = 48;
}

/// Where a queue's dead-letter parts live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetterOffsets {
    /// The [`DeadLetterInfo`].
    pub info: u64,
    /// The [`DeliveryEntry`] table (`None` for a dead-letter queue, which counts no deliveries).
    pub deliveries: Option<u64>,
}
