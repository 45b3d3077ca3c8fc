//! A ring inside a mapped segment: the [`RingMem`] the queues and topics run on. It lives
//! beside the segment code that validates what it is built from; `ring/` itself knows no OS.

use std::sync::Arc;

use crate::layout::{RingControl, SlotHeader, CONTROL_OFFSET, SLOT_HEADER};
use crate::os::Mapping;
use crate::ring::RingMem;

/// A ring inside a mapped segment.
#[derive(Debug, Clone)]
pub struct MappedRing {
    map: Arc<Mapping>,
    slots: *mut u8,
    stride: usize,
    capacity: u64,
    max_msg: usize,
}

// SAFETY: the raw pointer points into `map`, which is Send + Sync and kept alive by the Arc.
unsafe impl Send for MappedRing {}
// SAFETY: as above.
unsafe impl Sync for MappedRing {}

impl MappedRing {
    /// A view of the ring in `map`.
    ///
    /// # Safety
    /// The caller has validated (from a trusted copy of the header) that `capacity` is a
    /// power of two, `stride >= SLOT_HEADER + max_msg`, `stride` is a multiple of 8, and
    /// `slots_offset + capacity * stride <= map.len()`, and that the control block at
    /// `CONTROL_OFFSET` lies inside the mapping.
    pub unsafe fn new(map: Arc<Mapping>, slots_offset: usize, stride: usize, capacity: u64, max_msg: usize) -> Self {
        // SAFETY: slots_offset is inside the mapping (caller's contract).
        let slots = unsafe { map.as_ptr().add(slots_offset) };
        MappedRing { map, slots, stride, capacity, max_msg }
    }
}

// SAFETY: the constructor's contract gives a power-of-two capacity and slots that fit the
// mapping; the fields never change.
unsafe impl RingMem for MappedRing {
    fn control(&self) -> &RingControl {
        // SAFETY: the mapping is page aligned, so CONTROL_OFFSET (128) is aligned for
        // RingControl, and it lies in the mapping (constructor contract). All its fields are
        // atomics, valid for any bit pattern another process may write.
        unsafe { &*self.map.as_ptr().add(CONTROL_OFFSET).cast::<RingControl>() }
    }
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn max_msg(&self) -> usize {
        self.max_msg
    }
    fn slot(&self, pos: u64) -> &SlotHeader {
        let i = (pos & (self.capacity - 1)) as usize;
        // SAFETY: i < capacity, so the slot is inside the mapping; stride is a multiple of 8
        // and the slots start line aligned, so the header is aligned; it is all atomics.
        unsafe { &*self.slots.add(i * self.stride).cast::<SlotHeader>() }
    }
    fn payload(&self, pos: u64) -> *mut u8 {
        let i = (pos & (self.capacity - 1)) as usize;
        // SAFETY: in bounds as for `slot`; stride >= SLOT_HEADER + max_msg.
        unsafe { self.slots.add(i * self.stride + SLOT_HEADER) }
    }
}
