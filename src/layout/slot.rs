//! Slot state word encoding: `[seq:48 | tag:4 | claimer:12]`.

/// Free (queue: seq == position) or committed (queue: seq == position + 1; topic: seq ==
/// the message's sequence).
pub const IDLE: u64 = 0;
/// Claimed by `claimer`, which is writing the payload for position `seq`.
pub const WRITING: u64 = 1;
/// Claimed by `claimer`, which is reading the message (queues).
pub const READING: u64 = 2;
/// The writer died before committing; consumers skip the slot.
pub const ABANDONED: u64 = 3;
/// The writer dropped its loan without committing; consumers skip the slot.
pub const ABORTED: u64 = 4;
/// Claimed by `claimer` for a loan: user code writes the payload in place, for as long as
/// it takes. Like [`WRITING`] in every respect but one: a `try_*` receive waits out a
/// [`WRITING`] slot (a copy of a few nanoseconds) and not a loaned one.
pub const LOANED: u64 = 5;
/// Topics: claimed by `claimer`, who has not touched the slot yet and waits before it does
/// (a reliable subscriber that joined meanwhile may be reading the message the slot still
/// holds, intact; see `topic::publisher`). Then back to [`WRITING`] or [`LOANED`].
pub const PENDING: u64 = 6;
/// SPSC queues: the message for position `seq` is committed (the only state an SPSC slot
/// takes; never zero, so a slot never written reads as empty at any position).
pub const COMMITTED: u64 = 7;
/// MPMC: the message for position `seq - 1` was rejected (or its consumer died) and waits,
/// in place, to be delivered again; consumers find it by scanning (see
/// `Stats::retry_pending`), producers treat it as unconsumed.
pub const RETRY: u64 = 8;
/// MPMC: the message for position `seq - 1` is being moved to the dead-letter queue by
/// `claimer` under the queue's move lock (see [`crate::deadletter`]); only the lock's holder
/// touches it.
pub const MOVING: u64 = 9;

/// Whether `tag` is a writer's claim ([`WRITING`], [`LOANED`] or [`PENDING`]).
#[inline]
pub fn is_write_claim(tag: u64) -> bool {
    tag == WRITING || tag == LOANED || tag == PENDING
}

const TAG_SHIFT: u32 = 12;
const SEQ_SHIFT: u32 = 16;
const CLAIMER_MASK: u64 = 0xFFF;

/// Packs a state word. Only the low 48 bits of `seq` are kept.
#[inline]
pub fn pack(seq: u64, tag: u64, claimer: u16) -> u64 {
    (seq << SEQ_SHIFT) | (tag << TAG_SHIFT) | (claimer as u64 & CLAIMER_MASK)
}

/// The tag of a state word.
#[inline]
pub fn tag(w: u64) -> u64 {
    (w >> TAG_SHIFT) & 0xF
}

/// The `seq` of a state word (48 bits).
#[inline]
pub fn seq(w: u64) -> u64 {
    w >> SEQ_SHIFT
}

/// The claimer of a state word.
#[inline]
pub fn claimer(w: u64) -> u16 {
    (w & CLAIMER_MASK) as u16
}

/// `seq(w) - pos` as a signed number, with 48-bit wrapping (positions are full u64).
#[inline]
pub fn diff(w: u64, pos: u64) -> i64 {
    ((w & !0xFFFF).wrapping_sub(pos << SEQ_SHIFT) as i64) >> SEQ_SHIFT
}
