//! Where a ring's memory lives: the heap (loom, unit tests) or a shared mapping.

use std::cell::UnsafeCell;

use crate::layout::{RingControl, SlotHeader};

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
}

/// A ring on the heap, for loom models and unit tests.
pub struct HeapRing {
    control: RingControl,
    slots: Box<[SlotHeader]>,
    data: Box<[UnsafeCell<u8>]>,
    capacity: u64,
    max_msg: usize,
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
        }
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
}

