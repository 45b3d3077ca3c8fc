//! The shared-memory layout: every byte of a segment, its magic and version.
//!
//! A segment is one file, mapped whole by every participant. All offsets are multiples of the
//! 128-byte line (pinned with `#[repr(C, align(128))]`, not `CachePadded`, whose size changes with
//! the target) and are recorded in the header, so a layout shared between processes never
//! depends on how either was compiled.
//!
//! ```text
//!  offset                 what                                    written by
//!  ------  ---------------------------------------------------   -----------------------------
//!       0  Header (128 B): magic, version, kind, config, init    creator once; `init` last
//!     128  RingControl (640 B), five 128-byte lines:
//!            +0    tail     next position to write / claim        producers / publishers
//!            +128  head     next position to read (queues),       consumers
//!                           subscriber epoch (topics)             subscribers
//!            +256  data     futex word + sleeper count            consumers sleep here
//!            +384  space    futex word + sleeper count            producers sleep here
//!            +512  stats    relaxed counters (aborted, abandoned, lost, ...), roles seen
//!     768  Participant table: max_participants x 64 B            each process its own entry
//!          Subscriber table (topics): max_subscribers x 256 B   each subscriber its own entry
//!          (topics: max_groups group regions, `GroupOffsets`:    the group's members
//!           a GroupHeader line (member bitmap), then a word
//!           per slot [seq | tag | member], see `ring::group`)
//!          (MPMC queues with max_deliveries, dead-letter queues:
//!           DeadLetterInfo 640 B (move lock, record, name),       movers, under the lock
//!           origins: DeliveryEntry table, capacity x 32 B)        the claimer of the slot
//!          (services: ServiceInfo 384 B (version, description)   creator once
//!           pending bitmap, a bit per participant                 clients set, servers clear
//!           Channel table: max_participants x 128 B              each process its own)
//!          Slots: capacity x slot_stride                          see below
//!          (services: call slots, `call_slot_layout`: header,
//!           request, ResponseHeader and response in each)
//!          (split slots: then, from the next 128-byte line,
//!           payloads: capacity x payload_stride)
//!          (file size rounded up to 4096)
//!
//!  Inline slot (slot_stride = 16 + max_msg rounded up to 16, 32 or 64, or to a multiple of 64):
//!     +0  state  u64  [ seq: 48 bits | tag: 4 bits | claimer: 12 bits ]
//!     +8  len    u32  payload length, <= max_msg (validated by every reader)
//!    +12  kind   u32  user tag, returned to the receiver
//!    +16  payload, max_msg bytes
//!
//!  Split slot (when the 16-byte header would cost one more line, e.g. max_msg = 64, 256, 4096):
//!     header array, slot_stride = 16:   state, len, kind as above, 4 headers per line
//!     payload array, payload_stride = max_msg rounded up to 64: each payload starts a line
//! ```
//!
//! ## Slot state word
//! `seq` is a position modulo 2^48 (compared with wrapping arithmetic, so it never runs out);
//! `tag` is one of the [`slot`] constants; `claimer` is the participant id (table index + 1,
//! 0 = none) of the process that claimed the slot, so that a claim left by a dead process can
//! be recovered (see the crash safety section of the README). SPSC queues use only
//! [`slot::COMMITTED`] (`seq` = the position, claimer 0): the consumer polls it instead of
//! `tail` (see [`crate::ring::spsc`]).
//!
//! Small slots share a line (a 32-byte slot for messages of up to 16 bytes: two per line) and
//! never straddle two; larger ones are whole lines, or split ([`slot_layout`]): a 64-byte
//! message then moves 1.25 lines instead of 2.
//!
//! ## Liveness
//! Every participant and subscriber entry is paired with an open-file-description lock on its
//! first byte, held by its process (see [`lock`]); the pid and start time beside it are only
//! information for `shmq stat`.
//!
//! Everything in a segment may be written by a buggy or hostile process at any time: readers
//! copy the configuration once at open, validate it, and never read it from shared memory again;
//! every index, length and state is checked before use.

use crate::sync::{AtomicU32, AtomicU64};

mod deadletter;
pub use deadletter::{
    letter, DeadLetterInfo, DeadLetterOffsets, DeliveryEntry, CAUSE_CONSUMER_DIED, CAUSE_DLQ_FULL, CAUSE_REJECTED,
    DEAD_LETTER_INFO_SIZE, DELIVERY_ENTRY_SIZE, FLAG_DEAD_LETTER_QUEUE, LETTER_HEADER, LETTER_MAGIC, MAX_DELIVERIES,
    MAX_REASON, REC_MOVING, REC_NONE,
};
pub mod slot;
mod subscriber;
pub use subscriber::{
    GroupHeader, GroupOffsets, Subscriber, DEFAULT_MAX_GROUPS, GROUP_HEADER_SIZE, MAX_SUBSCRIBER_NAME, MODE_GROUP,
    MODE_LOSSY, MODE_RELIABLE, SUB_ACTIVE, SUB_BUSY, SUB_DETACHED, SUB_FREE,
};
mod service;
pub use service::{
    call, call_slot_layout, Channel, ResponseHeader, ServiceInfo, CHANNEL_SIZE, MAX_DESCRIPTION, RESPONSE_HEADER,
    SERVICE_INFO_SIZE,
};

/// `"SHMQSEG\0"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMQSEG\0");
/// Layout version; bump on any change to this file.
pub const VERSION: u32 = 8;
/// The line size every shared structure is aligned and padded to.
pub const LINE: usize = 128;
/// Bytes of slot header before the payload.
pub const SLOT_HEADER: usize = 16;
/// Slots larger than this are padded to a multiple of it (one cache line); smaller ones to the
/// next power of two, so that no slot straddles two lines.
pub const SLOT_ALIGN: usize = 64;
/// Size of one participant entry.
pub const PARTICIPANT_SIZE: usize = 64;
/// Size of one subscriber entry.
pub const SUBSCRIBER_SIZE: usize = 256;
/// Participant table size of new segments.
pub const DEFAULT_PARTICIPANTS: u32 = 64;
/// Largest participant table: ids must fit the 12-bit claimer field.
pub const MAX_PARTICIPANTS: u32 = 4095;
/// Largest capacity (positions are 48-bit on the slot, so stay far below).
pub const MAX_CAPACITY: u64 = 1 << 30;
/// Largest message.
pub const MAX_MSG: u32 = 64 << 20;
/// Largest segment shmq will create or map.
pub const MAX_SEGMENT: u64 = 1 << 40;

/// `Header::init` while the creator is still writing the segment.
pub const INIT_BUSY: u32 = 0;
/// `Header::init` once the segment is complete (stored with Release, last).
pub const INIT_READY: u32 = 0x5245_4459; // "READY" in spirit; any other value is not ready

/// What a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// Single producer, single consumer queue.
    Spsc = 1,
    /// Multi producer, multi consumer queue.
    Mpmc = 2,
    /// Broadcast topic.
    Topic = 3,
    /// Request-response service (see [`crate::service`]).
    Service = 4,
}

impl Kind {
    /// Decodes a header value.
    pub fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Spsc),
            2 => Some(Kind::Mpmc),
            3 => Some(Kind::Topic),
            4 => Some(Kind::Service),
            _ => None,
        }
    }

    /// Lower-case name, as the command line prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
            Kind::Topic => "topic",
            Kind::Service => "service",
        }
    }
}

/// A value alone on its own 128-byte line.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// Segment header: identity and configuration. Written by the creator before `init` becomes
/// [`INIT_READY`] (Release); read once, with Acquire on `init`, by every opener, which keeps a
/// validated copy. Fields are atomics only because other processes may write them at any time.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// [`Kind`] as u32.
    pub kind: AtomicU32,
    /// [`INIT_BUSY`], then [`INIT_READY`] once the creator is done.
    pub init: AtomicU32,
    /// [`LINE`]: the alignment this layout was built with.
    pub line: AtomicU32,
    /// Process id of the creator (information for `shmq stat`).
    pub creator_pid: AtomicU32,
    /// Maximum payload bytes per message.
    pub max_msg: AtomicU32,
    /// Start time of the creator (see `os::process_start_time`; information only).
    pub creator_start: AtomicU64,
    /// Number of slots, a power of two.
    pub capacity: AtomicU64,
    /// Bytes per slot.
    pub slot_stride: AtomicU64,
    /// Entries in the participant table.
    pub max_participants: AtomicU32,
    /// Entries in the subscriber table (0 for queues).
    pub max_subscribers: AtomicU32,
    /// Offset of the participant table.
    pub participants_offset: AtomicU64,
    /// Offset of the subscriber table.
    pub subscribers_offset: AtomicU64,
    /// Offset of slot 0.
    pub slots_offset: AtomicU64,
    /// Size of the whole file.
    pub total_size: AtomicU64,
    /// Creation time, ns since the Unix epoch.
    pub created_unix_ns: AtomicU64,
    /// SPSC: the producer role, `[generation:20 | participant id:12]` (id 0 = nobody; see
    /// [`role`]). Taken and given back by CAS of the whole word.
    pub producer_holder: AtomicU32,
    /// SPSC: the consumer role, like `producer_holder`.
    pub consumer_holder: AtomicU32,
    /// Services: maximum payload bytes per response (0 for queues and topics).
    pub max_response: AtomicU32,
    /// MPMC queues: deliveries a message gets before it is moved to the dead-letter queue (0:
    /// no dead letters).
    pub max_deliveries: AtomicU32,
    /// [`FLAG_DEAD_LETTER_QUEUE`] for a dead-letter queue.
    pub flags: AtomicU32,
    /// Topics: how many of the first subscriber entries can hold a consumer group (each with
    /// its group region, see [`GroupOffsets`]).
    pub max_groups: AtomicU32,
}

/// Futex word plus the number of processes sleeping on it.
///
/// A sleeper increments `sleepers`, reads `seq`, re-checks its condition and then sleeps while
/// `seq` is unchanged. A notifier publishes its change, issues a SeqCst fence, and only if
/// `sleepers` is non-zero bumps `seq` and calls `FUTEX_WAKE`: no syscall when nobody sleeps.
#[derive(Debug)]
#[repr(C)]
pub struct Event {
    /// Bumped by each notification that finds a sleeper; the futex word.
    pub seq: AtomicU32,
    /// Processes between "about to sleep" and "woke up".
    pub sleepers: AtomicU32,
}

/// Relaxed counters, on a line away from the hot indices. Written rarely (never per message).
#[derive(Debug)]
#[repr(C)]
pub struct Stats {
    /// Loans dropped without commit (their slots are skipped by consumers).
    pub aborted: AtomicU64,
    /// Slots claimed by a producer that died before committing (skipped, message lost).
    pub abandoned: AtomicU64,
    /// Messages a consumer claimed and died holding (lost by the crash).
    pub lost_by_crash: AtomicU64,
    /// Times a producer found the ring full and had to wait or fail.
    pub full_events: AtomicU64,
    /// Nanoseconds producers spent waiting for space.
    pub blocked_ns: AtomicU64,
    /// Every `ROLE_*` bit that any participant has ever taken (set with `fetch_or` after the
    /// participant's own `roles`; never cleared): "disconnected" needs a peer that was once
    /// there (see `Attachment::peers_gone`).
    pub roles_seen: AtomicU32,
    /// MPMC: messages rejected (or left by a consumer that died, in a queue with dead letters)
    /// and waiting to be delivered again, in state [`slot::RETRY`]. A hint (consumers look
    /// for such slots while it is not zero); corrected by a consumer whose look finds none.
    pub retry_pending: AtomicU64,
    /// MPMC: deliveries rejected by their consumer.
    pub rejected: AtomicU64,
    /// MPMC: messages moved to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// MPMC with dead letters: messages delivered again because their consumer died.
    pub redelivered_after_crash: AtomicU64,
}

/// The hot shared indices and wait words of a ring; each on its own line.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct RingControl {
    /// Next position to write (SPSC, MPMC) or claim (topics). Monotonic.
    pub tail: Line<AtomicU64>,
    /// Next position to read (SPSC, MPMC). Topics (whose cursors are per subscriber) keep
    /// here the subscriber epoch instead: bumped on every join and leave, so that publishers
    /// know when to re-compute their cached gate.
    pub head: Line<AtomicU64>,
    /// Consumers sleep here while the ring is empty.
    pub data: Line<Event>,
    /// Producers sleep here while the ring is full.
    pub space: Line<Event>,
    /// Counters.
    pub stats: Line<Stats>,
}

impl RingControl {
    /// All zero: position 0, nobody sleeping, counters 0.
    pub fn new() -> Self {
        let ev = || Line(Event { seq: AtomicU32::new(0), sleepers: AtomicU32::new(0) });
        RingControl {
            tail: Line(AtomicU64::new(0)),
            head: Line(AtomicU64::new(0)),
            data: ev(),
            space: ev(),
            stats: Line(Stats {
                aborted: AtomicU64::new(0),
                abandoned: AtomicU64::new(0),
                lost_by_crash: AtomicU64::new(0),
                full_events: AtomicU64::new(0),
                blocked_ns: AtomicU64::new(0),
                roles_seen: AtomicU32::new(0),
                retry_pending: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
                redelivered_after_crash: AtomicU64::new(0),
            }),
        }
    }
}

impl Default for RingControl {
    fn default() -> Self {
        Self::new()
    }
}

/// The fixed part of a slot; the payload follows it.
#[derive(Debug)]
#[repr(C)]
pub struct SlotHeader {
    /// `[seq:48 | tag:4 | claimer:12]`, see [`slot`].
    pub state: AtomicU64,
    /// Payload length, written before the commit that publishes it (Relaxed; ordered by `state`
    /// or by the SPSC `tail`).
    pub len: AtomicU32,
    /// User kind tag, written like `len`.
    pub kind: AtomicU32,
}

impl SlotHeader {
    /// A slot in state `state`.
    pub fn new(state: u64) -> Self {
        SlotHeader { state: AtomicU64::new(state), len: AtomicU32::new(0), kind: AtomicU32::new(0) }
    }
}

/// One process attached to a segment.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Participant {
    /// `[generation:30 | state:2]` (see [`entry`]): [`PARTICIPANT_FREE`], [`PARTICIPANT_BUSY`]
    /// (being claimed or reclaimed) or [`PARTICIPANT_ACTIVE`].
    pub state: AtomicU32,
    /// Process id (information for `shmq stat`; liveness is the entry's lock, see
    /// [`lock`]).
    pub pid: AtomicU32,
    /// Process start time (information only).
    pub start_time: AtomicU64,
    /// Bit set of `ROLE_*`.
    pub roles: AtomicU32,
    /// Reserved, zero.
    pub reserved32: AtomicU32,
    /// Last time the participant blocked or attached, ns since the Unix epoch.
    pub last_activity_ns: AtomicU64,
    /// When it attached, ns since the Unix epoch.
    pub attached_unix_ns: AtomicU64,
    /// How many of this participant's threads count themselves in `RingControl::data`'s
    /// sleepers: incremented after `Event::sleepers`, decremented before it, so whoever finds
    /// the participant dead can undo its counts.
    pub sleeping_data: AtomicU32,
    /// The same for `RingControl::space`.
    pub sleeping_space: AtomicU32,
    /// Reserved, zero.
    pub reserved: [AtomicU64; 2],
}

/// Participant entry unused.
pub const PARTICIPANT_FREE: u32 = 0;
/// Participant entry being filled or reclaimed by the process holding its lock.
pub const PARTICIPANT_BUSY: u32 = 1;
/// Participant entry in use.
pub const PARTICIPANT_ACTIVE: u32 = 2;
/// Role bit: sends to a queue.
pub const ROLE_PRODUCER: u32 = 1;
/// Role bit: receives from a queue.
pub const ROLE_CONSUMER: u32 = 2;
/// Role bit: publishes to a topic.
pub const ROLE_PUBLISHER: u32 = 4;
/// Role bit: subscribes to a topic.
pub const ROLE_SUBSCRIBER: u32 = 8;
/// Role bit: serves a service's requests.
pub const ROLE_SERVER: u32 = 16;
/// Role bit: calls a service.
pub const ROLE_CLIENT: u32 = 32;

/// State words of table entries (participants, subscribers): `[generation:30 | state:2]`.
///
/// Every transition that takes ownership of an entry (FREE, ACTIVE of a dead process, or
/// DETACHED, to BUSY) bumps the generation, and is a CAS on the whole word. So a process that
/// judged an entry's owner dead and then CASes the word it read fails if anyone took the entry
/// meanwhile: two live processes never share an entry (found by the chaos test).
pub mod entry {
    /// The state part.
    #[inline]
    pub fn state(w: u32) -> u32 {
        w & 3
    }

    /// The word for `state` in a new generation (taking ownership).
    #[inline]
    pub fn take(w: u32, state: u32) -> u32 {
        (w & !3).wrapping_add(4) | state
    }

    /// The word for `state` in the same generation (the owner moving on).
    #[inline]
    pub fn with(w: u32, state: u32) -> u32 {
        (w & !3) | state
    }
}

/// SPSC role words (`Header::producer_holder`, `Header::consumer_holder`):
/// `[generation:20 | participant id:12]`, id 0 = free.
///
/// Taking a role bumps the generation, and every change is a CAS of the whole word, so a
/// process that read the word before the holder gave the role back (and a new process with
/// the same participant id took it) cannot take or free it by a stale CAS.
pub mod role {
    const ID_MASK: u32 = 0xFFF;

    /// The participant id in a role word (0 = free).
    #[inline]
    pub fn holder(w: u32) -> u16 {
        (w & ID_MASK) as u16
    }

    /// The word for participant `id` taking the role from word `w` (new generation).
    #[inline]
    pub fn take(w: u32, id: u16) -> u32 {
        ((w & !ID_MASK).wrapping_add(ID_MASK + 1)) | (id as u32 & ID_MASK)
    }

    /// The word of a free role after word `w` (same generation).
    #[inline]
    pub fn free(w: u32) -> u32 {
        w & !ID_MASK
    }
}

/// Which byte of the segment file each lock is on (see `os` for the lock mechanism).
///
/// ```text
///  byte 0 (the header's first)       segment lock: written (exclusive) by the creator
///                                    while it builds the segment and by whoever removes it
///                                    after a verdict (`shmq gc`, a stale segment's
///                                    replacement); read (shared) by a process while it attaches
///  first byte of participant entry   held (exclusive) by the attached process, from before its
///                                    entry leaves FREE until after it is FREE again
///  first byte of subscriber entry    held (exclusive) by the subscriber's process likewise
/// ```
///
/// So an entry that is not FREE and whose byte nobody locks belongs to a process that died.
pub mod lock {
    use super::{Offsets, PARTICIPANT_SIZE, SUBSCRIBER_SIZE};

    /// The segment lock's byte.
    pub const SEGMENT: u64 = 0;

    /// The lock byte of participant `id` (1-based).
    #[inline]
    pub fn participant(o: &Offsets, id: u16) -> u64 {
        o.participants + (id as u64 - 1) * PARTICIPANT_SIZE as u64
    }

    /// The lock byte of subscriber entry `i` (0-based).
    #[inline]
    pub fn subscriber(o: &Offsets, i: usize) -> u64 {
        o.subscribers + (i * SUBSCRIBER_SIZE) as u64
    }
}

/// Rounds `n` up to a multiple of `to` (a power of two).
pub const fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// How the slots of a ring are laid out for a maximum message size: `(header_stride,
/// payload_stride, split)`.
///
/// - Inline (`split` false): each slot is its 16-byte header followed by its payload, rounded
///   up to a power of two up to one line (2 or 4 small slots share a line, none straddles two)
///   and to a whole number of lines above that. Both strides are the slot's size.
/// - Split (`split` true), when the header would cost a payload of whole lines one more line
///   (max_msg a multiple of 64, or 49 to 63 more than one): the headers form their own array (16
///   bytes each, 4 per line) and the payloads another, each payload on its own lines. A 64-byte
///   message then moves one payload line and a quarter of a header line instead of two lines.
pub const fn slot_layout(max_msg: usize) -> (usize, usize, bool) {
    let n = SLOT_HEADER + max_msg;
    if n <= SLOT_ALIGN {
        let s = n.next_power_of_two();
        (s, s, false)
    } else if round_up(n, SLOT_ALIGN) > round_up(max_msg, SLOT_ALIGN) {
        (SLOT_HEADER, round_up(max_msg, SLOT_ALIGN), true)
    } else {
        let s = round_up(n, SLOT_ALIGN);
        (s, s, false)
    }
}

/// Where everything lives in a segment of a given configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    /// Offset of the participant table.
    pub participants: u64,
    /// Offset of the subscriber table.
    pub subscribers: u64,
    /// Offset of slot 0 (its header).
    pub slots: u64,
    /// Bytes from one slot header to the next (recorded in the header as `slot_stride`).
    pub stride: u64,
    /// Offset of slot 0's payload: `slots + 16` inline, the payload array when split.
    pub payloads: u64,
    /// Bytes from one payload to the next (`stride` inline).
    pub payload_stride: u64,
    /// Services: where their parts live (`None` for queues and topics).
    pub service: Option<ServiceOffsets>,
    /// MPMC queues with dead letters, and dead-letter queues: where their parts live.
    pub dead_letters: Option<DeadLetterOffsets>,
    /// Topics with consumer groups: where their regions live.
    pub groups: Option<GroupOffsets>,
    /// Size of the file.
    pub total: u64,
}

/// Where the parts of a service segment live (see [`crate::service`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceOffsets {
    /// The [`ServiceInfo`].
    pub info: u64,
    /// The pending bitmap: one bit per participant with requests waiting (bit `(id - 1) % 64`
    /// of word `(id - 1) / 64`).
    pub pending: u64,
    /// Words in the pending bitmap.
    pub pending_words: u64,
    /// The [`Channel`] table, one per participant.
    pub channels: u64,
    /// Response 0's [`ResponseHeader`], inside call slot 0 (see [`call_slot_layout`]).
    pub response_headers: u64,
    /// Response 0's payload, inside call slot 0.
    pub responses: u64,
    /// Bytes from one response to the next (the slot stride).
    pub response_stride: u64,
}

/// Offset of the ring control block.
pub const CONTROL_OFFSET: usize = LINE;

impl Offsets {
    /// Computes the layout; `None` if it overflows or exceeds [`MAX_SEGMENT`]. `max_response` is
    /// 0 for queues and topics; a service's parts go between the subscriber table (empty) and
    /// the slots, and its responses after the payloads.
    pub fn compute(
        capacity: u64,
        max_msg: u32,
        participants: u32,
        subscribers: u32,
        max_response: u32,
    ) -> Option<Offsets> {
        Self::compute_with(capacity, max_msg, participants, subscribers, max_response, DeadLetterParts::None, 0)
    }

    /// [`compute`](Self::compute) for a queue with dead-letter parts (between the subscriber
    /// table, empty, and the slots).
    pub fn compute_with(
        capacity: u64,
        max_msg: u32,
        participants: u32,
        subscribers: u32,
        max_response: u32,
        dead_letter_parts: DeadLetterParts,
        max_groups: u32,
    ) -> Option<Offsets> {
        let (mut stride, mut payload_stride, mut split) = slot_layout(max_msg as usize);
        let mut request_at = SLOT_HEADER as u64;
        let line = LINE as u64;
        let participants_off = (CONTROL_OFFSET + CONTROL_SIZE) as u64;
        let subscribers_off = round_up_u64(participants_off + participants as u64 * PARTICIPANT_SIZE as u64, line)?;
        let mut slots = round_up_u64(subscribers_off + subscribers as u64 * SUBSCRIBER_SIZE as u64, line)?;
        let mut groups = None;
        if max_groups > 0 {
            // A group region: a header line (the member bitmap), then a word per slot.
            let stride = round_up_u64(LINE as u64 + capacity.checked_mul(8)?, line)?;
            groups = Some(GroupOffsets { first: slots, stride, count: max_groups });
            slots = slots.checked_add(stride.checked_mul(max_groups as u64)?)?;
        }
        let mut dead_letters = None;
        if dead_letter_parts != DeadLetterParts::None {
            let info = slots;
            slots = info + DEAD_LETTER_INFO_SIZE as u64;
            let mut deliveries = None;
            if dead_letter_parts == DeadLetterParts::Origin {
                deliveries = Some(slots);
                slots = round_up_u64(slots.checked_add(capacity.checked_mul(DELIVERY_ENTRY_SIZE as u64)?)?, line)?;
            }
            dead_letters = Some(DeadLetterOffsets { info, deliveries });
        }
        let mut service = None;
        if max_response > 0 {
            let (call_stride, request, response_header, response) =
                call_slot_layout(max_msg as usize, max_response as usize);
            (stride, payload_stride, split, request_at) = (call_stride, call_stride, false, request as u64);
            let info = slots;
            let pending = info + SERVICE_INFO_SIZE as u64;
            let pending_words = (participants as u64).div_ceil(64);
            let channels = round_up_u64(pending + pending_words * 8, line)?;
            slots = channels.checked_add((participants as u64).checked_mul(CHANNEL_SIZE as u64)?)?;
            service = Some(ServiceOffsets {
                info,
                pending,
                pending_words,
                channels,
                response_headers: slots + response_header as u64,
                responses: slots + response as u64,
                response_stride: call_stride as u64,
            });
        }
        let (stride, payload_stride) = (stride as u64, payload_stride as u64);
        let headers_end = slots.checked_add(capacity.checked_mul(stride)?)?;
        let (payloads, end) = if split {
            let payloads = round_up_u64(headers_end, line)?;
            (payloads, payloads.checked_add(capacity.checked_mul(payload_stride)?)?)
        } else {
            (slots + request_at, headers_end)
        };
        let total = round_up_u64(end, 4096)?;
        (total <= MAX_SEGMENT).then_some(Offsets {
            participants: participants_off,
            subscribers: subscribers_off,
            slots,
            stride,
            payloads,
            payload_stride,
            service,
            dead_letters,
            groups,
            total,
        })
    }
}

/// Which dead-letter parts a queue segment has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterParts {
    /// None (topics, services, queues without dead letters).
    None,
    /// A queue with `max_deliveries`: the move lock and the delivery counts.
    Origin,
    /// A dead-letter queue: the info block only (its origin's name).
    Queue,
}

fn round_up_u64(n: u64, to: u64) -> Option<u64> {
    Some(n.checked_add(to - 1)? & !(to - 1))
}

/// Size of [`RingControl`] (five lines).
pub const CONTROL_SIZE: usize = 5 * LINE;

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == LINE && align_of::<Header>() == LINE);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, version) == 8);
    assert!(offset_of!(Header, kind) == 12);
    assert!(offset_of!(Header, init) == 16);
    assert!(offset_of!(Header, creator_start) == 32);
    assert!(offset_of!(Header, capacity) == 40);
    assert!(offset_of!(Header, total_size) == 88);
    assert!(offset_of!(Header, consumer_holder) == 108);
    assert!(size_of::<RingControl>() == CONTROL_SIZE);
    assert!(offset_of!(RingControl, head) == LINE);
    assert!(offset_of!(RingControl, data) == 2 * LINE);
    assert!(offset_of!(RingControl, space) == 3 * LINE);
    assert!(offset_of!(RingControl, stats) == 4 * LINE);
    assert!(size_of::<SlotHeader>() == SLOT_HEADER);
    assert!(size_of::<Participant>() == PARTICIPANT_SIZE);
    assert!(size_of::<Subscriber>() == SUBSCRIBER_SIZE);
    assert!(offset_of!(Subscriber, state) == LINE);
    assert!(CONTROL_OFFSET + CONTROL_SIZE == 768);
    assert!(offset_of!(Header, max_response) == 112);
    assert!(size_of::<ServiceInfo>() == SERVICE_INFO_SIZE);
    assert!(offset_of!(ServiceInfo, description) == LINE);
    assert!(size_of::<Channel>() == CHANNEL_SIZE);
    assert!(offset_of!(Channel, calls) == 64);
    assert!(size_of::<ResponseHeader>() == RESPONSE_HEADER);
    assert!(size_of::<DeadLetterInfo>() == DEAD_LETTER_INFO_SIZE);
    assert!(offset_of!(DeadLetterInfo, rec_reason) == LINE);
    assert!(offset_of!(DeadLetterInfo, name) == 3 * LINE);
    assert!(size_of::<DeliveryEntry>() == DELIVERY_ENTRY_SIZE);
    assert!(offset_of!(Header, max_deliveries) == 116);
    assert!(offset_of!(Header, flags) == 120);
    assert!(offset_of!(Header, max_groups) == 124);
    assert!(size_of::<GroupHeader>() == GROUP_HEADER_SIZE);
    assert!(size_of::<Stats>() <= LINE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips_and_wraps() {
        let w = slot::pack(5, slot::WRITING, 7);
        assert_eq!(slot::tag(w), slot::WRITING);
        assert_eq!(slot::claimer(w), 7);
        assert_eq!(slot::diff(w, 5), 0);
        assert_eq!(slot::diff(w, 4), 1);
        assert_eq!(slot::diff(w, 6), -1);
        // 48-bit wrap: a position past 2^48 still compares right.
        let big = (1u64 << 48) + 3;
        let w = slot::pack(big + 1, slot::IDLE, 0);
        assert_eq!(slot::diff(w, big), 1);
        let w = slot::pack(big.wrapping_sub(16), slot::IDLE, 0);
        assert_eq!(slot::diff(w, big), -16);
    }

    #[test]
    fn role_words_take_a_new_generation_so_a_stale_word_never_matches() {
        let w0 = 0;
        let w1 = role::take(w0, 3);
        assert_eq!(role::holder(w1), 3);
        let w2 = role::free(w1);
        assert_eq!(role::holder(w2), 0);
        // The same participant id takes the role again: a CAS from the word seen before
        // (w1, by a process that meanwhile judged id 3 dead or was giving the role back) fails.
        let w3 = role::take(w2, 3);
        assert_eq!(role::holder(w3), 3);
        assert_ne!(w3, w1);
        assert_ne!(role::free(w3), w2);
        // Ids are 12 bits; the generation wraps without touching them.
        assert_eq!(role::holder(role::take(u32::MAX, 4095)), 4095);
    }

    #[test]
    fn offsets_are_line_aligned_and_reject_overflow() {
        let o = Offsets::compute(1024, 100, 64, 16, 0).unwrap();
        assert_eq!((o.stride, o.payload_stride, o.payloads), (128, 128, o.slots + 16));
        assert_eq!(o.participants % LINE as u64, 0);
        assert_eq!(o.subscribers % LINE as u64, 0);
        assert_eq!(o.slots % LINE as u64, 0);
        assert_eq!(o.total % 4096, 0);
        assert!(o.total >= o.slots + 1024 * 128);
        // Split: 16-byte headers, then line-aligned 64-byte payloads.
        let o = Offsets::compute(1000, 64, 64, 16, 0).unwrap();
        assert_eq!((o.stride, o.payload_stride), (16, 64));
        assert_eq!(o.payloads, o.slots + 16_000); // 16,000 is a multiple of the 128-byte line
        let o = Offsets::compute(1001, 64, 64, 16, 0).unwrap();
        assert_eq!(o.payloads, (o.slots + 16_016).div_ceil(128) * 128);
        assert!(o.total >= o.payloads + 1000 * 64);
        assert_eq!(slot_layout(8), (32, 32, false));
        assert_eq!(slot_layout(48), (64, 64, false));
        assert_eq!(slot_layout(49), (16, 64, true));
        assert_eq!(slot_layout(112), (128, 128, false));
        assert_eq!(slot_layout(4096), (16, 4096, true));
        assert!(Offsets::compute(1 << 30, MAX_MSG, 64, 0, 0).is_none());
    }

    #[test]
    fn call_slots_keep_small_calls_on_one_line_and_large_ones_on_lines_of_their_own() {
        // 8-byte requests and responses: header, request, response header, response in 64 bytes.
        assert_eq!(call_slot_layout(8, 8), (64, 16, 24, 32));
        assert_eq!(call_slot_layout(1, 1), (64, 16, 24, 32));
        assert_eq!(call_slot_layout(1, 0), (32, 16, 24, 32));
        // 64 bytes: a line of headers, then the request's line, then the response's.
        assert_eq!(call_slot_layout(64, 64), (192, 64, 16, 128));
        assert_eq!(call_slot_layout(100, 10), (64 + 128 + 64, 64, 16, 192));
        for (req, resp) in [(1, 1), (8, 8), (9, 31), (24, 16), (64, 64), (100, 3000), (4096, 8)] {
            let o = Offsets::compute(64 * 16, req, 64, 0, resp).unwrap();
            let sv = o.service.unwrap();
            let (i, last) = (0, 64 * 16 - 1);
            for i in [i, last] {
                let slot = o.slots + i * o.stride;
                let (request, rh, response) = (
                    o.payloads + i * o.payload_stride,
                    sv.response_headers + i * o.stride,
                    sv.responses + i * o.stride,
                );
                // Header, request, response header and response are disjoint and inside the slot.
                let mut parts = [(slot, 16), (request, req as u64), (rh, 8), (response, resp as u64)];
                parts.sort();
                assert!(parts.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "{req}/{resp}: {parts:?}");
                assert!(parts[3].0 + parts[3].1 <= slot + o.stride, "{req}/{resp}");
                assert_eq!((rh % 8, o.stride % 16, slot % 16), (0, 0, 0));
            }
            assert!(o.total >= o.slots + 64 * 16 * o.stride);
        }
    }
}
