//! Where a ring's memory lives: the heap (loom, unit tests) or a shared mapping.

use std::cell::UnsafeCell;

use crate::layout::{Channel, DeliveryEntry, Event, ResponseHeader, RingControl, SlotHeader};
use crate::sync::{AtomicU32, AtomicU64};

/// The memory of one ring: its control block and `capacity` slots of `max_msg` payload bytes.
///
/// # Safety
/// Implementors guarantee that `capacity()` is a power of two and constant, `max_msg()` is
/// constant, and that for every `pos`, `slot(pos)` and `payload(pos)` refer to the slot
/// `pos % capacity`, with `payload(pos)` valid for reads and writes of `max_msg()` bytes for as
/// long as `self` lives.
pub unsafe trait RingMem {
    /// The shared indices, wait words and counters.
    fn control(&self) -> &RingControl;
    /// Number of slots (a trusted, validated copy; never re-read from shared memory).
    fn capacity(&self) -> u64;
    /// Maximum payload bytes (trusted copy).
    fn max_msg(&self) -> usize;
    /// The header of the slot holding position `pos`.
    fn slot(&self, pos: u64) -> &SlotHeader;
    /// The payload of the slot holding position `pos`.
    fn payload(&self, pos: u64) -> *mut u8;
    /// The delivery count of the slot holding position `pos`, in a queue with dead letters
    /// (`None`: the queue counts no deliveries, and a consumer that dies loses its message).
    fn delivery(&self, _pos: u64) -> Option<&DeliveryEntry> {
        None
    }
}

/// A ring on the heap, for loom models and unit tests.
pub struct HeapRing {
    control: RingControl,
    slots: Box<[SlotHeader]>,
    data: Box<[UnsafeCell<u8>]>,
    capacity: u64,
    max_msg: usize,
    deliveries: Option<Box<[DeliveryEntry]>>,
}

// SAFETY: the payload bytes are only accessed through raw pointers under the ring protocol,
// which orders them with the slot atomics; everything else is atomics.
unsafe impl Sync for HeapRing {}
// SAFETY: as above; the ring owns all its memory.
unsafe impl Send for HeapRing {}

impl HeapRing {
    /// A zeroed ring; call the ring kind's `init` before use.
    ///
    /// # Panics
    /// If `capacity` is not a power of two, or `capacity * max_msg` bytes cannot be allocated.
    pub fn new(capacity: u64, max_msg: usize) -> Self {
        assert!(capacity.is_power_of_two(), "capacity must be a power of two");
        let bytes = usize::try_from(capacity)
            .ok()
            .and_then(|c| c.checked_mul(max_msg))
            .filter(|&b| b <= isize::MAX as usize)
            .expect("capacity * max_msg must fit in memory");
        HeapRing {
            control: RingControl::new(),
            slots: (0..capacity).map(|_| SlotHeader::new(0)).collect(),
            data: (0..bytes).map(|_| UnsafeCell::new(0)).collect(),
            capacity,
            max_msg,
            deliveries: None,
        }
    }

    /// [`new`](Self::new) with a delivery count per slot (a queue with dead letters).
    pub fn with_deliveries(capacity: u64, max_msg: usize) -> Self {
        let mut r = Self::new(capacity, max_msg);
        r.deliveries = Some((0..capacity).map(|_| DeliveryEntry::new()).collect());
        r
    }
}

// SAFETY: capacity is a power of two (checked in `new`) and fixed; `data` holds
// capacity * max_msg bytes (the product checked for overflow in `new`), so payload(pos) has
// max_msg valid bytes.
unsafe impl RingMem for HeapRing {
    fn control(&self) -> &RingControl {
        &self.control
    }
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn max_msg(&self) -> usize {
        self.max_msg
    }
    fn slot(&self, pos: u64) -> &SlotHeader {
        &self.slots[(pos & (self.capacity - 1)) as usize]
    }
    fn payload(&self, pos: u64) -> *mut u8 {
        let i = (pos & (self.capacity - 1)) as usize * self.max_msg;
        // Derived from the whole slice (not from one element's `get()`), so the pointer may be
        // used for the slot's `max_msg` bytes; `UnsafeCell<u8>` has the layout of `u8` and
        // permits writes through a shared reference.
        // SAFETY: i + max_msg <= capacity * max_msg = data.len(), so the offset stays inside
        // (or one past the end of, when max_msg is 0) the allocation.
        unsafe { UnsafeCell::raw_get(self.data.as_ptr().add(i)) }
    }
    fn delivery(&self, pos: u64) -> Option<&DeliveryEntry> {
        let d = self.deliveries.as_ref()?;
        Some(&d[(pos & (self.capacity - 1)) as usize])
    }
}


/// A service's memory on the heap, for loom models and unit tests: a [`HeapRing`] of call
/// slots plus the pending bitmap, channels and responses.
pub struct HeapService {
    ring: HeapRing,
    clients: u16,
    per_client: u64,
    pending: Box<[AtomicU64]>,
    channels: Box<[Channel]>,
    responses: Box<[ResponseHeader]>,
    response_data: Box<[UnsafeCell<u8>]>,
    max_response: usize,
}

// SAFETY: as for HeapRing: response bytes are only accessed through raw pointers under the call
// protocol, which orders them with the slot atomics; everything else is atomics.
unsafe impl Sync for HeapService {}
// SAFETY: as above; it owns all its memory.
unsafe impl Send for HeapService {}

impl HeapService {
    /// A service of `clients` participants with `per_client` call slots each.
    ///
    /// # Panics
    /// If `clients * per_client` is not a power of two, or `clients` is 0 or above 4095.
    pub fn new(clients: u16, per_client: u64, max_msg: usize, max_response: usize) -> Self {
        assert!((1..=4095).contains(&clients), "1 to 4095 clients");
        let cap = clients as u64 * per_client;
        let zero64 = || AtomicU64::new(0);
        let channel = || Channel {
            responses: Event { seq: AtomicU32::new(0), sleepers: AtomicU32::new(0) },
            pad: std::array::from_fn(|_| AtomicU32::new(0)),
            calls: zero64(),
            answered: zero64(),
            failed: zero64(),
            served: zero64(),
            dropped: zero64(),
            reserved: std::array::from_fn(|_| zero64()),
        };
        HeapService {
            ring: HeapRing::new(cap, max_msg),
            clients,
            per_client,
            pending: (0..(clients as usize).div_ceil(64)).map(|_| zero64()).collect(),
            channels: (0..clients).map(|_| channel()).collect(),
            responses: (0..cap).map(|_| ResponseHeader { len: AtomicU32::new(0), status: AtomicU32::new(0) }).collect(),
            response_data: (0..cap as usize * max_response).map(|_| UnsafeCell::new(0)).collect(),
            max_response,
        }
    }
}

// SAFETY: delegates to the HeapRing (whose contract holds).
unsafe impl RingMem for HeapService {
    fn control(&self) -> &RingControl {
        self.ring.control()
    }
    fn capacity(&self) -> u64 {
        self.ring.capacity()
    }
    fn max_msg(&self) -> usize {
        self.ring.max_msg()
    }
    fn slot(&self, pos: u64) -> &SlotHeader {
        self.ring.slot(pos)
    }
    fn payload(&self, pos: u64) -> *mut u8 {
        self.ring.payload(pos)
    }
}

// SAFETY: capacity == clients * per_client (the ring was built so); the pending words, channels
// and responses are allocated for exactly those counts, and the indexing below panics rather
// than leave them.
unsafe impl super::call::CallMem for HeapService {
    fn clients(&self) -> u16 {
        self.clients
    }
    fn per_client(&self) -> u64 {
        self.per_client
    }
    fn pending(&self, w: usize) -> &AtomicU64 {
        &self.pending[w]
    }
    fn channel(&self, id: u16) -> &Channel {
        &self.channels[id as usize - 1]
    }
    fn response(&self, i: u64) -> (&ResponseHeader, *mut u8) {
        let i = i as usize;
        let at = i * self.max_response;
        assert!(at + self.max_response <= self.response_data.len());
        // SAFETY: at + max_response <= len (checked), so the pointer and its max_response
        // bytes are inside the allocation; derived from the whole slice, as in HeapRing.
        (&self.responses[i], unsafe { UnsafeCell::raw_get(self.response_data.as_ptr().add(at)) })
    }
    fn max_response(&self) -> usize {
        self.max_response
    }
}
