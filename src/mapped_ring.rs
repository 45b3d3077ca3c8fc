//! A ring inside a mapped segment: the [`RingMem`] the queues and topics run on. It lives
//! beside the segment code that validates what it is built from; `ring/` itself knows no OS.

use std::sync::Arc;

use crate::layout::{Offsets, RingControl, SlotHeader, CONTROL_OFFSET};
use crate::os::Mapping;
use crate::ring::RingMem;

/// A ring inside a mapped segment: slot headers at `headers + i * header_stride`, payloads at
/// `payloads + i * payload_stride` (inline slots: the payload right after its header; split
/// slots: two arrays, see [`crate::layout::slot_layout`]).
#[derive(Debug, Clone)]
pub struct MappedRing {
    map: Arc<Mapping>,
    headers: *mut u8,
    header_stride: usize,
    payloads: *mut u8,
    payload_stride: usize,
    capacity: u64,
    max_msg: usize,
}

// SAFETY: the raw pointers point into `map`, which is Send + Sync and kept alive by the Arc.
unsafe impl Send for MappedRing {}
// SAFETY: as above.
unsafe impl Sync for MappedRing {}

impl MappedRing {
    /// A view of the ring of a segment laid out as `o`.
    ///
    /// # Safety
    /// The caller has validated (from a trusted copy of the header) that `capacity` is a
    /// power of two; that `o.slots` is 16-byte aligned, `o.stride` a multiple of 16 and
    /// `o.slots + capacity * o.stride <= map.len()`; that `o.payload_stride >= max_msg` and
    /// `o.payloads + (capacity - 1) * o.payload_stride + max_msg <= map.len()`; that no payload
    /// overlaps a slot header; and that the control block at `CONTROL_OFFSET` lies inside the
    /// mapping.
    pub unsafe fn new(map: Arc<Mapping>, o: &Offsets, capacity: u64, max_msg: usize) -> Self {
        // SAFETY: both offsets are inside the mapping (caller's contract).
        let (headers, payloads) =
            unsafe { (map.as_ptr().add(o.slots as usize), map.as_ptr().add(o.payloads as usize)) };
        MappedRing {
            map,
            headers,
            header_stride: o.stride as usize,
            payloads,
            payload_stride: o.payload_stride as usize,
            capacity,
            max_msg,
        }
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
    #[inline]
    fn slot(&self, pos: u64) -> &SlotHeader {
        let i = (pos & (self.capacity - 1)) as usize;
        // SAFETY: i < capacity, so the header is inside the mapping; the headers start 16-byte
        // aligned and header_stride is a multiple of 16, so it is aligned; it is all atomics.
        unsafe { &*self.headers.add(i * self.header_stride).cast::<SlotHeader>() }
    }
    #[inline]
    fn payload(&self, pos: u64) -> *mut u8 {
        let i = (pos & (self.capacity - 1)) as usize;
        // SAFETY: i < capacity, so payload i and its max_msg bytes are inside the mapping.
        unsafe { self.payloads.add(i * self.payload_stride) }
    }
}
