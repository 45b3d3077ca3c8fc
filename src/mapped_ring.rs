//! A ring inside a mapped segment: the [`RingMem`] the queues and topics run on. It lives
//! beside the segment code that validates what it is built from; `ring/` itself knows no OS.

use std::sync::Arc;

use crate::layout::{
    Channel, DeliveryEntry, Offsets, ResponseHeader, RingControl, ServiceOffsets, SlotHeader, CHANNEL_SIZE,
    CONTROL_OFFSET, DELIVERY_ENTRY_SIZE,
};
use crate::os::Mapping;
use crate::ring::call::CallMem;
use crate::ring::RingMem;
use crate::sync::AtomicU64;

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
    /// The delivery counts of a queue with dead letters (null: none).
    deliveries: *mut u8,
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
    /// overlaps a slot header; that the control block at `CONTROL_OFFSET` lies inside the
    /// mapping; and, if `o.dead_letters` has a delivery table, that its `capacity` 32-byte
    /// entries lie inside the mapping, 32-byte aligned, overlapping nothing else.
    pub unsafe fn new(map: Arc<Mapping>, o: &Offsets, capacity: u64, max_msg: usize) -> Self {
        // SAFETY: both offsets are inside the mapping (caller's contract).
        let (headers, payloads) =
            unsafe { (map.as_ptr().add(o.slots as usize), map.as_ptr().add(o.payloads as usize)) };
        let deliveries = match o.dead_letters.and_then(|d| d.deliveries) {
            // SAFETY: inside the mapping (caller's contract).
            Some(at) => unsafe { map.as_ptr().add(at as usize) },
            None => std::ptr::null_mut(),
        };
        MappedRing {
            map,
            headers,
            header_stride: o.stride as usize,
            payloads,
            payload_stride: o.payload_stride as usize,
            capacity,
            max_msg,
            deliveries,
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
    #[inline]
    fn delivery(&self, pos: u64) -> Option<&DeliveryEntry> {
        if self.deliveries.is_null() {
            return None;
        }
        let i = (pos & (self.capacity - 1)) as usize;
        // SAFETY: the table holds `capacity` entries inside the mapping, aligned (constructor
        // contract), and i < capacity; an entry is all atomics, valid for any bit pattern.
        Some(unsafe { &*self.deliveries.add(i * DELIVERY_ENTRY_SIZE).cast::<DeliveryEntry>() })
    }
}

/// A service's memory inside a mapped segment: its call slots as a [`MappedRing`], plus the
/// pending bitmap, the channels and the responses (see [`crate::layout::ServiceOffsets`]).
#[derive(Debug, Clone)]
pub struct MappedService {
    ring: MappedRing,
    clients: u16,
    per_client: u64,
    pending: *mut u8,
    pending_words: usize,
    channels: *mut u8,
    response_headers: *mut u8,
    responses: *mut u8,
    response_stride: usize,
    max_response: usize,
}

// SAFETY: the raw pointers point into the ring's mapping, which is Send + Sync and kept alive
// by the ring's Arc.
unsafe impl Send for MappedService {}
// SAFETY: as above.
unsafe impl Sync for MappedService {}

impl MappedService {
    /// A view of the service parts of a segment laid out as `o`, around its call slots `ring`.
    ///
    /// # Safety
    /// As for [`MappedRing::new`] (which built `ring` from the same `map` and `o`), and: `o`
    /// came from `Offsets::compute` with these `clients` (1 to 4095) and `max_response`, and
    /// `ring`'s capacity is `clients * per_client`; so the bitmap (`pending_words` words) and
    /// the `clients` channels lie inside the mapping, 8-byte and 128-byte aligned, and overlap
    /// nothing else; and each of the `capacity` call slots (`response_stride` bytes apart) holds,
    /// besides its header and its request, a response header (8-byte aligned) and
    /// `max_response` response bytes that overlap neither those nor each other.
    pub unsafe fn new(map: &Mapping, ring: MappedRing, o: &ServiceOffsets, clients: u16, max_response: usize) -> Self {
        let per_client = ring.capacity() / clients as u64;
        // SAFETY: the offsets are inside the mapping (caller's contract).
        let (pending, channels, response_headers, responses) = unsafe {
            (
                map.as_ptr().add(o.pending as usize),
                map.as_ptr().add(o.channels as usize),
                map.as_ptr().add(o.response_headers as usize),
                map.as_ptr().add(o.responses as usize),
            )
        };
        MappedService {
            ring,
            clients,
            per_client,
            pending,
            pending_words: o.pending_words as usize,
            channels,
            response_headers,
            responses,
            response_stride: o.response_stride as usize,
            max_response,
        }
    }
}

// SAFETY: delegates to the MappedRing, whose contract holds.
unsafe impl RingMem for MappedService {
    fn control(&self) -> &RingControl {
        self.ring.control()
    }
    fn capacity(&self) -> u64 {
        self.ring.capacity()
    }
    fn max_msg(&self) -> usize {
        self.ring.max_msg()
    }
    #[inline]
    fn slot(&self, pos: u64) -> &SlotHeader {
        self.ring.slot(pos)
    }
    #[inline]
    fn payload(&self, pos: u64) -> *mut u8 {
        self.ring.payload(pos)
    }
}

// SAFETY: the constructor's contract places every part inside the mapping; the indices are
// bounded below (a bad one panics rather than leave the part), and all parts are atomics or
// raw bytes, valid for any bit pattern.
unsafe impl CallMem for MappedService {
    fn clients(&self) -> u16 {
        self.clients
    }
    fn per_client(&self) -> u64 {
        self.per_client
    }
    #[inline]
    fn pending(&self, w: usize) -> &AtomicU64 {
        assert!(w < self.pending_words, "pending word {w} out of range");
        // SAFETY: w < pending_words, inside the bitmap; 8-byte aligned (contract); an atomic.
        unsafe { &*self.pending.add(w * 8).cast::<AtomicU64>() }
    }
    #[inline]
    fn channel(&self, id: u16) -> &Channel {
        assert!(id >= 1 && id <= self.clients, "channel {id} out of range");
        // SAFETY: 1 <= id <= clients: inside the channel table, 128-byte aligned; all atomics.
        unsafe { &*self.channels.add((id as usize - 1) * CHANNEL_SIZE).cast::<Channel>() }
    }
    #[inline]
    fn response(&self, i: u64) -> (&ResponseHeader, *mut u8) {
        let i = (i & (self.ring.capacity() - 1)) as usize;
        // SAFETY: i < capacity: response i's header and its max_response bytes are inside call
        // slot i, in the mapping, the header 8-byte aligned (contract); the header is atomics.
        unsafe {
            let at = i * self.response_stride;
            (&*self.response_headers.add(at).cast::<ResponseHeader>(), self.responses.add(at))
        }
    }
    fn max_response(&self) -> usize {
        self.max_response
    }
}
