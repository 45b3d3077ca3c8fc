//! The one place that picks `std` or `loom` atomics.
//!
//! Ring algorithms import their atomics from here, so `RUSTFLAGS="--cfg loom"` swaps every atomic the
//! rings touch for loom's model-checked ones (see `tests/loom.rs`). Under loom only heap storage
//! exists: loom atomics cannot live in a shared mapping.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Hint to the CPU (or to loom's scheduler) that we are busy-waiting.
#[inline]
#[cfg_attr(loom, allow(dead_code))] // the waiting code is not built under loom
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Give up the CPU (a real `sched_yield`, or a loom scheduling point).
#[inline]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
