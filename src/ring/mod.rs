//! Ring algorithms, free of any OS knowledge.
//!
//! Each ring works over a [`RingMem`]: heap memory ([`HeapRing`], used by loom and unit tests) or
//! a shared mapping (`crate::mapped_ring::MappedRing`). The rings never block; waiting is the job of
//! [`crate::wait`].

pub mod broadcast;
pub mod call;
pub mod deadletter;
pub mod group;
pub mod mem;
pub mod mpmc;
pub mod spsc;

#[cfg(any(test, loom, feature = "internals"))]
#[cfg_attr(loom, allow(unused_imports))] // used by the loom models, outside the crate
pub use mem::{HeapRing, HeapService};
pub use mem::RingMem;

/// Result of a non-blocking claim on a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll<T = u64> {
    /// The slot is ours: its position (claims to write) or the message in it (claims to read).
    Ready(T),
    /// Nothing to do now (empty for a consumer, full for a producer).
    NotReady,
    /// Nothing to do now because the slot at `pos` is claimed by another participant (the
    /// claimer in `word`). If that participant is dead, `recover(pos, word)` frees the slot.
    Held {
        /// Position of the slot.
        pos: u64,
        /// The state word seen, with the claimer id.
        word: u64,
    },
}

/// A message claimed for reading, with the length and kind validated at the claim (shared
/// memory is read once: a peer rewriting the slot afterwards cannot change what we use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    /// Position of the slot.
    pub pos: u64,
    /// Payload length, at most max_msg and at most the caller's limit.
    pub len: usize,
    /// Kind tag.
    pub kind: u32,
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it): the time stamps written into
/// shared memory and journals.
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Iterations a claim loop may take before it reports `NotReady` (so that hostile shared memory
/// can only make a call return early, never loop forever).
pub(crate) const MAX_CLAIM_ROUNDS: u32 = 1 << 16;
