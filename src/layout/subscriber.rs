//! A topic's subscriber table entries and its consumer-group regions.

use super::LINE;
use crate::sync::{AtomicU32, AtomicU64};

/// One subscriber of a topic: a hot line written by the subscriber, a cold line of identity.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Subscriber {
    /// Next sequence this subscriber will read; everything before it is acknowledged.
    /// Written by the subscriber (Release), read by publishers (Acquire) to gate.
    pub cursor: AtomicU64,
    /// Messages delivered.
    pub delivered: AtomicU64,
    /// Messages missed by a lossy subscriber.
    pub lagged: AtomicU64,
    /// Last receive, ns since the Unix epoch.
    pub last_activity_ns: AtomicU64,
    /// A consumer group ([`MODE_GROUP`]): the next sequence to hand out (its `cursor` is the
    /// group's position, the lowest sequence not acknowledged; see `ring::group`).
    pub group_next: AtomicU64,
    /// A consumer group: messages put back for another member (a hint, see `ring::group`).
    pub group_retry: AtomicU64,
    /// A consumer group: messages put back because their member died or left.
    pub group_redelivered: AtomicU64,
    /// Pads the hot line.
    pub pad: [AtomicU64; 9],
    /// `[generation:30 | state:2]` (see [`entry`](super::entry)): FREE / BUSY / ACTIVE / DETACHED (durable,
    /// no process).
    pub state: AtomicU32,
    /// Reliable (gating) or lossy.
    pub mode: AtomicU32,
    /// Process id of the holder (information only; liveness is the entry's lock).
    pub pid: AtomicU32,
    /// Length of `name` (0 = anonymous).
    pub name_len: AtomicU32,
    /// Start time of the holder (information only).
    pub start_time: AtomicU64,
    /// Reserved, zero.
    pub reserved: [AtomicU64; 5],
    /// Durable name, `name_len` bytes.
    pub name: [AtomicU64; 8],
}

/// Subscriber entry unused.
pub const SUB_FREE: u32 = 0;
/// Subscriber entry being filled or taken over.
pub const SUB_BUSY: u32 = 1;
/// Subscriber entry held by the process holding its lock (or, if nobody holds the lock, left by
/// a process that died).
pub const SUB_ACTIVE: u32 = 2;
/// Durable subscriber whose process has gone; keeps its cursor and keeps gating publishers.
pub const SUB_DETACHED: u32 = 3;
/// Subscriber mode: gates publishers, never misses a message.
pub const MODE_RELIABLE: u32 = 0;
/// Subscriber mode: never gates; told how many messages it missed.
pub const MODE_LOSSY: u32 = 1;
/// Longest durable subscriber name (bytes of `Subscriber::name`).
pub const MAX_SUBSCRIBER_NAME: usize = 64;

/// Where a topic's consumer-group regions live: region `i` (for subscriber entry `i`, `i <
/// count`) at `first + i * stride`: a [`GroupHeader`] line, then one 8-byte word per slot (see
/// `ring::group`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupOffsets {
    /// Region 0.
    pub first: u64,
    /// Bytes from one region to the next.
    pub stride: u64,
    /// Regions (the topic's `max_groups`).
    pub count: u32,
}

/// The first line of a group region.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct GroupHeader {
    /// Members: bit `(id - 1) % 64` of word `(id - 1) / 64` for participant `id` (16 words: up to
    /// 1024 participants; topics have 64).
    pub members: [AtomicU64; 16],
}

/// Size of [`GroupHeader`].
pub const GROUP_HEADER_SIZE: usize = LINE;
/// Subscriber mode bit: the entry is a consumer group (with [`MODE_LOSSY`] or not).
pub const MODE_GROUP: u32 = 2;
/// Default `max_groups` of a topic.
pub const DEFAULT_MAX_GROUPS: u32 = 4;
