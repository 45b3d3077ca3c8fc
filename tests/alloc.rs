//! The hot path allocates nothing: after setup (queue created, producer and consumer made,
//! buffers allocated), sending and receiving in every form, including `Err(Full)`,
//! `Err(Empty)`, too-large and too-small errors, wrap-around and full/empty transitions, make no
//! heap allocation.
//!
//! A counting global allocator wraps `System`. Counting is switched on per thread and the count
//! is per thread, so allocations by the test harness and by tests running in parallel on other
//! threads are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use shmq::{QueueOptions, TryRecvError, TrySendError};

struct Counting;

thread_local! {
    // `const` thread-locals without destructors never allocate, so the allocator may use them.
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // try_with: during thread teardown the thread-locals may be gone; then we do not count.
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the GlobalAlloc contract;
// the counting touches only const thread-locals, which do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout` (caller's contract).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout` (caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Number of heap allocations (alloc, alloc_zeroed, realloc) `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    ON.with(|on| on.set(true));
    f();
    ON.with(|on| on.set(false));
    COUNT.with(Cell::get)
}

#[test]
fn counting_allocator_sees_allocations_on_its_own_thread_only() {
    assert!(allocations_in(|| drop(black_box(Box::new(7u64)))) >= 1, "a Box was not counted");
    assert!(allocations_in(|| drop(black_box(vec![1u8; 100]))) >= 1, "a Vec was not counted");
    let other_thread = allocations_in(|| {
        // The spawn itself allocates here; what the other thread allocates must not count.
        let before = COUNT.with(Cell::get);
        std::thread::spawn(|| {
            for _ in 0..100 {
                drop(black_box(Box::new(0u64)));
            }
        })
        .join()
        .unwrap();
        let spawn_cost = COUNT.with(Cell::get) - before;
        assert!(spawn_cost < 100, "{spawn_cost} allocations: the other thread's were counted here");
    });
    assert!(other_thread < 100);
    assert_eq!(allocations_in(|| black_box(())), 0);
}

const CAP: usize = 8;
const MAX: usize = 64;
const ITERATIONS: u64 = 3000;

/// One round: fills the queue with every send form to `Err(Full)`, then drains it with every
/// receive form to `Err(Empty)`. Starts and ends with an empty queue.
fn round(i: u64, tx: &mut shmq::Producer, rx: &mut shmq::Consumer, buf: &mut [u8], small: &mut [u8], too_large: &[u8]) {
    let a = i.to_le_bytes();
    // Sends: plain, with kind, without waiting, in place, a value.
    tx.send(b"alpha").unwrap();
    tx.send_kind(7, &a).unwrap();
    tx.try_send(b"gamma").unwrap();
    let mut loan = tx.loan().unwrap();
    loan[..5].copy_from_slice(b"delta");
    loan.set_kind(4);
    loan.commit(5).unwrap();
    tx.send_value(&i).unwrap();
    // A loan dropped without commit (MPMC: an aborted slot that consumers pass over).
    let mut loan = tx.try_loan().unwrap();
    loan[0] = 1;
    drop(loan);
    // Errors that must not allocate either.
    assert!(matches!(tx.try_send(too_large), Err(TrySendError::MessageTooLarge { .. })));
    assert!(matches!(tx.try_send_batch(&[b"x", too_large]), Err(TrySendError::MessageTooLarge { .. })));
    // Fill to full with a batch, then single sends until Err(Full).
    let sent = tx.try_send_batch(&[b"b1", b"b2", b"b3", b"b4"]).unwrap();
    assert!(sent >= 1, "room left but the batch sent nothing");
    let mut extra = 0;
    loop {
        match tx.try_send(b"fill") {
            Ok(()) => extra += 1,
            Err(TrySendError::Full) => break,
            Err(e) => panic!("try_send: {e}"),
        }
    }
    assert!(matches!(tx.try_send_kind(1, b"no room"), Err(TrySendError::Full)));
    assert!(matches!(tx.try_loan(), Err(TrySendError::Full)));

    // Receives, in the order sent.
    let m = rx.recv_into(buf).unwrap();
    assert_eq!(&buf[..m.len], b"alpha");
    assert!(matches!(rx.try_recv(small), Err(TryRecvError::BufferTooSmall { .. })));
    let m = rx.try_recv(buf).unwrap();
    assert_eq!((&buf[..m.len], m.kind), (&a[..], 7));
    let r = rx.recv_ref().unwrap();
    assert_eq!(&*r, b"gamma");
    drop(r);
    let r = rx.try_recv_ref().unwrap();
    assert_eq!((&*r, r.kind()), (&b"delta"[..], 4));
    drop(r);
    assert_eq!(rx.recv_value::<u64>().unwrap(), i);
    // The rest in one batch (SPSC may hand over fewer than are waiting: repeat until empty).
    let mut got = 0;
    let mut bytes = 0;
    loop {
        let n = rx.try_recv_batch(usize::MAX, |m, _| bytes += m.len()).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, sent + extra, "batch receive missed messages");
    assert!(bytes >= 2 * got);
    assert!(matches!(rx.try_recv(buf), Err(TryRecvError::Empty)));
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
}

fn assert_hot_path_allocates_nothing(spsc: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = QueueOptions::new().dir(dir.path()).capacity(CAP).max_msg_size(MAX);
    if spsc {
        opts = opts.spsc();
    }
    let q = opts.create("alloc").unwrap();
    let mut tx = q.producer().unwrap();
    let mut rx = q.consumer().unwrap();
    let mut buf = vec![0u8; MAX];
    let mut small = vec![0u8; 2];
    let too_large = vec![0u8; MAX + 1];
    let n = allocations_in(|| {
        for i in 0..ITERATIONS {
            round(i, &mut tx, &mut rx, &mut buf, &mut small, &too_large);
        }
    });
    assert_eq!(n, 0, "{n} heap allocations in {ITERATIONS} rounds of send/receive");
    // The rounds really went round the ring many times.
    assert!(q.counters().tail >= ITERATIONS * CAP as u64, "tail {} after {ITERATIONS} rounds", q.counters().tail);
    assert!(q.is_empty());
    q.unlink().unwrap();
}

#[test]
fn spsc_send_and_receive_allocate_nothing() {
    assert_hot_path_allocates_nothing(true);
}

#[test]
fn mpmc_send_and_receive_allocate_nothing() {
    assert_hot_path_allocates_nothing(false);
}

#[test]
fn full_and_empty_errors_allocate_nothing() {
    for spsc in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = QueueOptions::new().dir(dir.path()).capacity(2).max_msg_size(8);
        if spsc {
            opts = opts.spsc();
        }
        let q = opts.create("edges").unwrap();
        let mut tx = q.producer().unwrap();
        let mut rx = q.consumer().unwrap();
        let mut buf = [0u8; 8];
        let n = allocations_in(|| {
            for _ in 0..1000 {
                assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
                assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
                assert_eq!(rx.try_recv_batch(4, |_, _| {}).unwrap(), 0);
                tx.try_send(b"1").unwrap();
                tx.try_send(b"2").unwrap();
                assert!(matches!(tx.try_send(b"3"), Err(TrySendError::Full)));
                assert!(matches!(tx.try_loan(), Err(TrySendError::Full)));
                assert_eq!(tx.try_send_batch(&[b"4"]).unwrap(), 0);
                assert_eq!(rx.try_recv_batch(4, |_, _| {}).unwrap() + rx.try_recv_batch(4, |_, _| {}).unwrap(), 2);
            }
        });
        assert_eq!(n, 0, "{n} heap allocations on full/empty edges (spsc: {spsc})");
        q.unlink().unwrap();
    }
}
