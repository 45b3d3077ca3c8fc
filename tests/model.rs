//! Model tests: random sequences of operations, checked step by step against a `VecDeque`.
//!
//! Two levels:
//! - the ring algorithms on the heap (`HeapRing` with `spsc` / `mpmc`), including start positions
//!   near the 48-bit slot-sequence wrap and the u64 wrap;
//! - real mapped queues through the public API (`QueueOptions` in a private temporary directory).
//!
//! In an MPMC ring a loan dropped without commit still occupies its slot (state ABORTED) until a
//! consumer passes over it, so the MPMC models keep an `Aborted` marker in the deque: it counts
//! towards "full" and towards `Queue::len()` (which is `tail - head`), and is never delivered.

use std::collections::VecDeque;

use proptest::prelude::*;
use proptest::test_runner::Config;
use shmq::layout::slot;
use shmq::ring::spsc::{SpscConsumer, SpscProducer};
use shmq::ring::{mpmc, HeapRing, Poll, RingMem};
use shmq::{Error, QueueOptions, SendError, TryRecvError, TrySendError};

// Relaxed is enough for the index set-up below: it happens before any ring operation, on the
// same thread.
use std::sync::atomic::Ordering::Relaxed;

/// Largest message of the models.
const MAX: usize = 24;

fn config(cases: u32) -> Config {
    // No regression files: helpers must not write into the source tree.
    Config { cases, failure_persistence: None, ..Config::default() }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Message {
    kind: u32,
    bytes: Vec<u8>,
}

/// A message of up to `max` bytes; one in four has exactly `max` bytes.
fn msg_of(max: usize) -> impl Strategy<Value = Message> {
    let bytes = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..=max),
        1 => prop::collection::vec(any::<u8>(), max..=max),
    ];
    (prop_oneof![Just(0u32), any::<u32>()], bytes).prop_map(|(kind, bytes)| Message { kind, bytes })
}

fn capacity() -> impl Strategy<Value = u64> {
    prop_oneof![Just(2u64), Just(4), Just(8)]
}

/// Reads `len` payload bytes of the slot holding `pos`.
///
/// # Safety
/// The caller owns the message at `pos` (SPSC: ready and not released; MPMC: claimed for
/// reading), no other thread touches the ring, and `len <= m.max_msg()`.
unsafe fn read_payload(m: &HeapRing, pos: u64, len: usize) -> Vec<u8> {
    assert!(len <= m.max_msg());
    // SAFETY: payload(pos) is valid for max_msg >= len bytes (RingMem contract); the caller owns
    // the message, so nobody writes it meanwhile.
    unsafe { std::slice::from_raw_parts(m.payload(pos), len).to_vec() }
}

/// Writes `bytes` into the payload of the slot holding `pos`.
///
/// # Safety
/// The caller owns the free slot at `pos` (SPSC: i < free; MPMC: claimed for writing), no other
/// thread touches the ring, and `bytes.len() <= m.max_msg()`.
unsafe fn write_payload(m: &HeapRing, pos: u64, bytes: &[u8]) {
    assert!(bytes.len() <= m.max_msg());
    // SAFETY: payload(pos) is valid for max_msg >= bytes.len() bytes; the slot is ours.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.payload(pos), bytes.len()) };
}

// ---------------------------------------------------------------------------------------------
// SPSC ring on the heap
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum SpscOp {
    Push(Message),
    Pop,
    PushBatch(Vec<Message>),
    PopBatch(usize),
    /// The producer commits these (each readable from its slot at once), dies before it
    /// advances `tail`, and a new producer attaches: they must be delivered, not overwritten.
    CrashAfterCommit(Vec<Message>),
    /// The consumer is replaced by a new one (between messages).
    ReattachConsumer,
}

fn spsc_op() -> impl Strategy<Value = SpscOp> {
    prop_oneof![
        4 => msg_of(MAX).prop_map(SpscOp::Push),
        4 => Just(SpscOp::Pop),
        1 => prop::collection::vec(msg_of(MAX), 0..10).prop_map(SpscOp::PushBatch),
        1 => (0usize..10).prop_map(SpscOp::PopBatch),
        1 => prop::collection::vec(msg_of(MAX), 0..10).prop_map(SpscOp::CrashAfterCommit),
        1 => Just(SpscOp::ReattachConsumer),
    ]
}

/// Pops message `i` (< available) from the consumer and checks it against `want`.
fn spsc_check_ready(m: &HeapRing, c: &SpscConsumer, i: u64, want: &Message) {
    let (len, kind) = c.peek(m, i).expect("peek of a ready message");
    // SAFETY: i < available(), so the producer does not write this slot; single thread;
    // len <= max_msg was validated by peek.
    let bytes = unsafe { read_payload(m, c.position(i), len) };
    assert_eq!(Message { kind, bytes }, *want, "SPSC ring delivered a different message");
}

fn run_spsc_ring(cap: u64, start: u64, ops: &[SpscOp]) {
    let m = HeapRing::new(cap, MAX);
    m.control().tail.0.store(start, Relaxed);
    m.control().head.0.store(start, Relaxed);
    let mut p = SpscProducer::attach(&m).unwrap();
    let mut c = SpscConsumer::attach(&m).unwrap();
    let mut model: VecDeque<Message> = VecDeque::new();
    let used = |model: &VecDeque<Message>| model.len() as u64;
    for op in ops {
        match op {
            SpscOp::Push(msg) => {
                let free = p.free(&m).unwrap();
                // The cached count may be low, but is zero exactly when the ring is full.
                assert_eq!(free == 0, used(&model) == cap, "free={free} with {} of {cap} used", model.len());
                assert!(free <= cap - used(&model));
                if free > 0 {
                    // SAFETY: the ring's only producer, writing a slot it counted free.
                    unsafe { p.write(&m, 0, msg.kind, &msg.bytes) }.unwrap();
                    p.publish(&m, 1);
                    model.push_back(msg.clone());
                }
            }
            SpscOp::Pop => {
                let ready = c.available(&m).unwrap();
                assert_eq!(ready == 0, model.is_empty(), "available={ready} with {} queued", model.len());
                assert!(ready <= used(&model));
                if ready > 0 {
                    spsc_check_ready(&m, &c, 0, &model.pop_front().unwrap());
                    c.release(&m, 1);
                }
            }
            SpscOp::PushBatch(msgs) => {
                let free = p.free(&m).unwrap();
                assert_eq!(free == 0, used(&model) == cap);
                let n = (free as usize).min(msgs.len());
                for (i, msg) in msgs[..n].iter().enumerate() {
                    // SAFETY: the ring's only producer, writing a slot it counted free.
                    unsafe { p.write(&m, i as u64, msg.kind, &msg.bytes) }.unwrap();
                }
                p.publish(&m, n as u64);
                model.extend(msgs[..n].iter().cloned());
            }
            SpscOp::CrashAfterCommit(msgs) => {
                let n = (p.free(&m).unwrap() as usize).min(msgs.len());
                for (i, msg) in msgs[..n].iter().enumerate() {
                    // SAFETY: the ring's only producer, writing a slot it counted free.
                    unsafe { p.write(&m, i as u64, msg.kind, &msg.bytes) }.unwrap();
                }
                if n > 0 {
                    // Committed slots are readable before `tail` moves.
                    assert!(c.available(&m).unwrap() > 0);
                }
                p = SpscProducer::attach(&m).unwrap();
                model.extend(msgs[..n].iter().cloned());
            }
            SpscOp::ReattachConsumer => c = SpscConsumer::attach(&m).unwrap(),
            SpscOp::PopBatch(k) => {
                let ready = c.available(&m).unwrap();
                assert_eq!(ready == 0, model.is_empty());
                let n = (ready as usize).min(*k);
                for (i, want) in model.iter().take(n).enumerate() {
                    spsc_check_ready(&m, &c, i as u64, want);
                }
                c.release(&m, n as u64);
                model.drain(..n);
            }
        }
        assert_eq!(m.control().tail.0.load(Relaxed).wrapping_sub(m.control().head.0.load(Relaxed)), used(&model));
    }
    // Drain what is left, in order.
    while let Some(want) = model.pop_front() {
        assert!(c.available(&m).unwrap() > 0, "message lost: ring empty while the model holds {want:?}");
        spsc_check_ready(&m, &c, 0, &want);
        c.release(&m, 1);
    }
    assert_eq!(c.available(&m).unwrap(), 0, "ring holds a message the model does not");
    // Empty again: exactly `cap` more pushes fit (the cached free count may be low, never zero).
    for i in 0..cap {
        assert!(p.free(&m).unwrap() > 0, "no room after {i} pushes into an empty ring of {cap}");
        // SAFETY: the ring's only producer, writing a slot it counted free.
        unsafe { p.write(&m, 0, 0, &[]) }.unwrap();
        p.publish(&m, 1);
    }
    assert_eq!(p.free(&m).unwrap(), 0);
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn spsc_heap_ring_matches_a_vecdeque(
        cap in capacity(),
        start in prop_oneof![Just(0u64), Just(u64::MAX - 5)],
        ops in prop::collection::vec(spsc_op(), 1..200),
    ) {
        run_spsc_ring(cap, start, &ops);
    }
}

#[test]
fn spsc_heap_ring_keeps_order_over_many_laps_of_max_size_messages() {
    let cap = 2;
    let m = HeapRing::new(cap, MAX);
    let mut p = SpscProducer::attach(&m).unwrap();
    let mut c = SpscConsumer::attach(&m).unwrap();
    for lap in 0..1000u32 {
        for i in 0..cap {
            assert!(p.free(&m).unwrap() > 0);
            let bytes = vec![(lap as u8).wrapping_add(i as u8); MAX];
            // SAFETY: the ring's only producer, writing a slot it counted free.
            unsafe { p.write(&m, 0, lap, &bytes) }.unwrap();
            p.publish(&m, 1);
        }
        assert_eq!(p.free(&m).unwrap(), 0, "full after {cap} pushes");
        for i in 0..cap {
            assert!(c.available(&m).unwrap() > 0);
            spsc_check_ready(&m, &c, 0, &Message { kind: lap, bytes: vec![(lap as u8).wrapping_add(i as u8); MAX] });
            c.release(&m, 1);
        }
        assert_eq!(c.available(&m).unwrap(), 0, "empty after {cap} pops");
    }
    assert_eq!(m.control().tail.0.load(Relaxed), 2000);
}

// ---------------------------------------------------------------------------------------------
// MPMC ring on the heap
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum MpmcOp {
    Push(Message),
    /// Claim a slot for writing, then give it back (`abort`).
    Abort,
    /// Claim the next message for a reader that accepts at most this many bytes.
    Pop(usize),
    PushBatch(Vec<Message>),
    PopBatch(usize),
    /// Claim the next message and reject it: it waits in its slot to be delivered again.
    Reject,
}

fn mpmc_op() -> impl Strategy<Value = MpmcOp> {
    prop_oneof![
        4 => msg_of(MAX).prop_map(MpmcOp::Push),
        2 => Just(MpmcOp::Reject),
        1 => Just(MpmcOp::Abort),
        3 => Just(MpmcOp::Pop(usize::MAX)),
        1 => (0..=MAX).prop_map(MpmcOp::Pop),
        1 => prop::collection::vec(msg_of(MAX), 0..10).prop_map(MpmcOp::PushBatch),
        1 => (0usize..10).prop_map(MpmcOp::PopBatch),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Message(Message),
    Aborted,
}

/// The reference of an MPMC ring: the entries from head to tail, and the rejected messages
/// waiting (behind head) to be delivered again, by position, with their rejection counts.
#[derive(Debug, Default)]
struct MpmcModel {
    queue: VecDeque<Entry>,
    retries: Vec<(u64, Message, u32)>,
    /// Rejections of the message at each position (positions are unique within a test).
    rejections: std::collections::HashMap<u64, u32>,
    head: u64,
    tail: u64,
}

impl MpmcModel {
    /// Whether a producer finds the ring full: a whole ring between head and tail, or the
    /// slot's last-lap message still waiting there, rejected.
    fn full(&self, cap: u64) -> bool {
        self.queue.len() as u64 == cap || self.retries.iter().any(|r| r.0 == self.tail.wrapping_sub(cap))
    }
    /// The rejected message a consumer takes next: the first by slot index (its scan's order).
    fn next_retry(&self, cap: u64) -> Option<usize> {
        (0..self.retries.len()).min_by_key(|&i| self.retries[i].0 & (cap - 1))
    }
}

const WRITER: u16 = 1;
const READER: u16 = 2;

/// One MPMC push; returns whether it went in (false: full, as the model must agree).
fn mpmc_push(m: &HeapRing, model: &mut MpmcModel, cap: u64, msg: Option<&Message>) -> bool {
    match mpmc::claim_write(m, WRITER).unwrap() {
        Poll::Ready(pos) => {
            assert!(!model.full(cap), "claimed a slot while the model is full: {model:?}");
            assert_eq!(pos, model.tail);
            model.tail = model.tail.wrapping_add(1);
            match msg {
                Some(msg) => {
                    // SAFETY: slot `pos` is claimed by us; single thread; len <= MAX.
                    unsafe { write_payload(m, pos, &msg.bytes) };
                    mpmc::commit(m, pos, WRITER, msg.bytes.len(), msg.kind).unwrap();
                    model.queue.push_back(Entry::Message(msg.clone()));
                }
                None => {
                    mpmc::abort(m, pos, WRITER).unwrap();
                    model.queue.push_back(Entry::Aborted);
                }
            }
            true
        }
        Poll::NotReady => {
            assert!(model.full(cap), "full while the model holds {model:?}");
            false
        }
        Poll::Held { pos, word } => panic!("slot {pos} held ({word:#x}) with no other participant"),
    }
}

/// One MPMC pop with a reader buffer of `max_len` bytes, checked against the model; `reject`:
/// reject the message instead of releasing it.
fn mpmc_take(m: &HeapRing, model: &mut MpmcModel, cap: u64, max_len: usize, reject: bool) -> bool {
    // Rejected messages come first; consumers pass over aborted slots before they look at the
    // next message.
    let retry = model.next_retry(cap);
    if retry.is_none() {
        while model.queue.front() == Some(&Entry::Aborted) {
            model.queue.pop_front();
            model.head = model.head.wrapping_add(1);
        }
    }
    let want = match (retry, model.queue.front()) {
        (Some(i), _) => Some((model.retries[i].0, model.retries[i].1.clone())),
        (None, Some(Entry::Message(msg))) => Some((model.head, msg.clone())),
        _ => None,
    };
    match (mpmc::claim_read(m, READER, max_len, &mut 0), want) {
        (Ok(Poll::NotReady), None) => false,
        (Err(Error::BufferTooSmall { len, needed }), Some((_, want))) if want.bytes.len() > max_len => {
            assert_eq!((len, needed), (max_len, want.bytes.len()));
            false
        }
        (Ok(Poll::Ready(got)), Some((pos, want))) if want.bytes.len() <= max_len => {
            // SAFETY: we claimed slot `got.pos` for reading; single thread; got.len was validated
            // against max_msg by the claim.
            let bytes = unsafe { read_payload(m, got.pos, got.len) };
            assert_eq!(Message { kind: got.kind, bytes }, want, "MPMC ring delivered a different message");
            assert_eq!(got.pos, pos, "delivered from another position");
            let rejected = model.rejections.get(&pos).copied().unwrap_or(0);
            assert_eq!(mpmc::failed_deliveries(m, pos), Some(rejected), "delivery count of position {pos}");
            match retry {
                Some(i) => {
                    model.retries.swap_remove(i);
                }
                None => {
                    model.queue.pop_front();
                    model.head = model.head.wrapping_add(1);
                }
            }
            if reject {
                let e = m.delivery(pos).unwrap();
                mpmc::count_failure(e, pos, shmq::layout::CAUSE_REJECTED, 1, 5);
                mpmc::reject(m, pos, READER).unwrap();
                model.rejections.insert(pos, rejected + 1);
                model.retries.push((pos, want, rejected + 1));
            } else {
                mpmc::release(m, got.pos, READER).unwrap();
            }
            true
        }
        (got, want) => panic!("claim_read(max_len={max_len}) gave {got:?}, the model expected {want:?}"),
    }
}

fn mpmc_pop(m: &HeapRing, model: &mut MpmcModel, cap: u64, max_len: usize) -> bool {
    mpmc_take(m, model, cap, max_len, false)
}

fn run_mpmc_ring(cap: u64, start: u64, ops: &[MpmcOp]) {
    let m = HeapRing::with_deliveries(cap, MAX);
    mpmc::init(&m);
    // Pretend the ring already carried `start` messages: every slot free for its next position.
    m.control().tail.0.store(start, Relaxed);
    m.control().head.0.store(start, Relaxed);
    for i in 0..cap {
        let pos = start.wrapping_add(i);
        m.slot(pos).state.store(slot::pack(pos, slot::IDLE, 0), Relaxed);
    }
    let mut model = MpmcModel { head: start, tail: start, ..MpmcModel::default() };
    let mut aborts = 0;
    for op in ops {
        match op {
            MpmcOp::Push(msg) => {
                mpmc_push(&m, &mut model, cap, Some(msg));
            }
            MpmcOp::Abort => aborts += mpmc_push(&m, &mut model, cap, None) as u64,
            MpmcOp::Pop(max_len) => {
                mpmc_pop(&m, &mut model, cap, *max_len);
            }
            MpmcOp::Reject => {
                mpmc_take(&m, &mut model, cap, usize::MAX, true);
            }
            MpmcOp::PushBatch(msgs) => {
                for msg in msgs {
                    if !mpmc_push(&m, &mut model, cap, Some(msg)) {
                        break;
                    }
                }
            }
            MpmcOp::PopBatch(k) => {
                for _ in 0..*k {
                    if !mpmc_pop(&m, &mut model, cap, usize::MAX) {
                        break;
                    }
                }
            }
        }
        let (tail, head) = (m.control().tail.0.load(Relaxed), m.control().head.0.load(Relaxed));
        assert_eq!(tail.wrapping_sub(head), model.queue.len() as u64, "tail - head disagrees with the model");
    }
    while !model.retries.is_empty() || model.queue.iter().any(|e| matches!(e, Entry::Message(_))) {
        assert!(mpmc_pop(&m, &mut model, cap, usize::MAX), "message lost: the model still holds {model:?}");
    }
    assert!(!mpmc_pop(&m, &mut model, cap, usize::MAX), "ring holds a message the model does not");
    assert_eq!(m.control().stats.0.aborted.load(Relaxed), aborts);
    assert_eq!(mpmc::retries::pending(m.control().stats.0.retry_pending.load(Relaxed)), 0, "retry hint left over");
    // Empty again: exactly `cap` pushes fit.
    for _ in 0..cap {
        assert!(mpmc_push(&m, &mut model, cap, Some(&Message { kind: 1, bytes: vec![7; MAX] })));
    }
    assert!(!mpmc_push(&m, &mut model, cap, Some(&Message { kind: 1, bytes: vec![] })));
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn mpmc_heap_ring_matches_a_vecdeque(
        cap in capacity(),
        // Fresh, just before the 48-bit slot sequence wraps, and just before u64 positions wrap.
        start in prop_oneof![Just(0u64), Just((1u64 << 48) - 3), Just(u64::MAX - 3)],
        ops in prop::collection::vec(mpmc_op(), 1..200),
    ) {
        run_mpmc_ring(cap, start, &ops);
    }
}

#[test]
fn mpmc_heap_ring_keeps_order_over_many_laps_of_max_size_messages() {
    let cap = 2;
    let m = HeapRing::with_deliveries(cap, MAX);
    mpmc::init(&m);
    let mut model = MpmcModel::default();
    for lap in 0..1000u32 {
        for i in 0..cap {
            let msg = Message { kind: lap, bytes: vec![(lap as u8).wrapping_add(i as u8); MAX] };
            assert!(mpmc_push(&m, &mut model, cap, Some(&msg)));
        }
        assert!(!mpmc_push(&m, &mut model, cap, Some(&Message { kind: 0, bytes: vec![] })), "full after {cap}");
        for _ in 0..cap {
            assert!(mpmc_pop(&m, &mut model, cap, MAX));
        }
        assert!(!mpmc_pop(&m, &mut model, cap, MAX), "empty after {cap} pops");
    }
}

// ---------------------------------------------------------------------------------------------
// Mapped queues through the public API
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum QOp {
    /// `try_send` (kind 0) of the message's bytes.
    TrySend(Vec<u8>),
    TrySendKind(Message),
    /// `try_send` of `max + 1 + extra` bytes.
    TrySendTooLarge(usize),
    /// `loan`, write, `set_kind`, `commit`.
    LoanCommit(Message),
    /// `loan`, write these bytes, drop without commit.
    LoanDrop(Vec<u8>),
    /// `loan`, then `commit(max + 1)`.
    LoanCommitTooLarge,
    /// `try_recv` into a buffer of this many bytes.
    TryRecv(usize),
    /// `recv_ref` when a message is waiting, else `try_recv_ref`.
    RecvRef,
    TrySendBatch(Vec<Vec<u8>>),
    /// A batch whose message at index `.1 % len` is one byte too large.
    TrySendBatchTooLarge(Vec<Vec<u8>>, usize),
    TryRecvBatch(usize),
}

fn bytes_of(max: usize) -> impl Strategy<Value = Vec<u8>> {
    msg_of(max).prop_map(|m| m.bytes)
}

fn qop(max: usize) -> impl Strategy<Value = QOp> {
    prop_oneof![
        3 => bytes_of(max).prop_map(QOp::TrySend),
        3 => msg_of(max).prop_map(QOp::TrySendKind),
        1 => (0usize..100).prop_map(QOp::TrySendTooLarge),
        2 => msg_of(max).prop_map(QOp::LoanCommit),
        1 => bytes_of(max).prop_map(QOp::LoanDrop),
        1 => Just(QOp::LoanCommitTooLarge),
        4 => prop_oneof![3 => Just(max), 1 => 0..=max].prop_map(QOp::TryRecv),
        2 => Just(QOp::RecvRef),
        1 => prop::collection::vec(bytes_of(max), 0..10).prop_map(QOp::TrySendBatch),
        1 => (prop::collection::vec(bytes_of(max), 1..5), any::<usize>())
            .prop_map(|(v, i)| QOp::TrySendBatchTooLarge(v, i)),
        1 => (0usize..10).prop_map(QOp::TryRecvBatch),
    ]
}

/// The model of one queue: its entries and whether loans dropped without commit hold a slot.
struct QModel {
    entries: VecDeque<Entry>,
    cap: usize,
    mpmc: bool,
}

impl QModel {
    fn full(&self) -> bool {
        self.entries.len() == self.cap
    }
    fn push(&mut self, kind: u32, bytes: &[u8]) {
        assert!(!self.full());
        self.entries.push_back(Entry::Message(Message { kind, bytes: bytes.to_vec() }));
    }
    fn abort(&mut self) {
        if self.mpmc {
            self.entries.push_back(Entry::Aborted);
        }
    }
    /// The next real message, after dropping the aborted entries a consumer skips.
    fn front(&mut self) -> Option<Message> {
        while self.entries.front() == Some(&Entry::Aborted) {
            self.entries.pop_front();
        }
        match self.entries.front() {
            Some(Entry::Message(m)) => Some(m.clone()),
            _ => None,
        }
    }
    fn has_message(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Message(_)))
    }
}

fn expect_full<T: std::fmt::Debug>(r: Result<T, TrySendError>, what: &str) {
    assert!(matches!(r, Err(TrySendError::Full)), "{what} on a full queue gave {r:?}, expected Err(Full)");
}

fn run_queue(mpmc: bool, cap: usize, max: usize, ops: &[QOp]) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = QueueOptions::new().dir(dir.path()).capacity(cap).max_msg_size(max);
    if !mpmc {
        opts = opts.spsc();
    }
    let q = opts.create("model").unwrap();
    let mut tx = q.producer().unwrap();
    let mut rx = q.consumer().unwrap();
    let mut model = QModel { entries: VecDeque::new(), cap, mpmc };
    let mut buf = vec![0u8; max + 8];
    for op in ops {
        match op {
            QOp::TrySend(bytes) => match tx.try_send(bytes) {
                Ok(()) => model.push(0, bytes),
                r => expect_full(r, "try_send"),
            },
            QOp::TrySendKind(msg) => match tx.try_send_kind(msg.kind, &msg.bytes) {
                Ok(()) => model.push(msg.kind, &msg.bytes),
                r => expect_full(r, "try_send_kind"),
            },
            QOp::TrySendTooLarge(extra) => {
                let big = vec![0xAB; max + 1 + extra];
                match tx.try_send(&big) {
                    Err(TrySendError::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (big.len(), max)),
                    r => panic!("try_send of {} bytes (max {max}) gave {r:?}", big.len()),
                }
            }
            QOp::LoanCommit(msg) => {
                if model.full() {
                    expect_full(tx.try_loan(), "try_loan");
                    continue;
                }
                let mut loan = tx.loan().unwrap();
                assert_eq!(loan.len(), max, "a loan exposes max_msg_size bytes");
                loan[..msg.bytes.len()].copy_from_slice(&msg.bytes);
                loan.set_kind(msg.kind);
                loan.commit(msg.bytes.len()).unwrap();
                model.push(msg.kind, &msg.bytes);
            }
            QOp::LoanDrop(bytes) => {
                if model.full() {
                    expect_full(tx.try_loan(), "try_loan");
                    continue;
                }
                let mut loan = tx.try_loan().unwrap();
                loan[..bytes.len()].copy_from_slice(bytes);
                loan.set_kind(99);
                drop(loan);
                model.abort();
            }
            QOp::LoanCommitTooLarge => {
                if model.full() {
                    expect_full(tx.try_loan(), "try_loan");
                    continue;
                }
                let loan = tx.try_loan().unwrap();
                match loan.commit(max + 1) {
                    Err(SendError::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
                    r => panic!("commit({}) of a loan (max {max}) gave {r:?}", max + 1),
                }
                model.abort();
            }
            QOp::TryRecv(n) => {
                let want = model.front();
                match (rx.try_recv(&mut buf[..*n]), want) {
                    (Err(TryRecvError::Empty), None) => {}
                    (Err(TryRecvError::BufferTooSmall { len, needed }), Some(w)) if w.bytes.len() > *n => {
                        assert_eq!((len, needed), (*n, w.bytes.len()));
                    }
                    (Ok(got), Some(w)) if w.bytes.len() <= *n => {
                        assert_eq!(Message { kind: got.kind, bytes: buf[..got.len].to_vec() }, w);
                        model.entries.pop_front();
                    }
                    (got, want) => panic!("try_recv into {n} bytes gave {got:?}, the model expected {want:?}"),
                }
            }
            QOp::RecvRef => match model.front() {
                Some(w) => {
                    let r = rx.recv_ref().unwrap();
                    assert_eq!(Message { kind: r.kind(), bytes: r.to_vec() }, w);
                    drop(r);
                    model.entries.pop_front();
                }
                None => {
                    let r = rx.try_recv_ref();
                    assert!(matches!(r, Err(TryRecvError::Empty)), "try_recv_ref on an empty queue gave {r:?}");
                }
            },
            QOp::TrySendBatch(msgs) => {
                let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                let n = tx.try_send_batch(&refs).unwrap();
                let fit = (model.cap - model.entries.len()).min(msgs.len());
                if mpmc {
                    assert_eq!(n, fit, "try_send_batch sent {n} of {}; {fit} fit", msgs.len());
                } else {
                    // SPSC sends as many as its cached free count allows (see the test
                    // `spsc_try_send_batch_sends_every_message_that_fits` below): at least one if
                    // any fits, never more than fit.
                    assert!(n <= fit && (n == 0) == (fit == 0), "try_send_batch sent {n}; {fit} fit");
                }
                for m in &msgs[..n] {
                    model.push(0, m);
                }
            }
            QOp::TrySendBatchTooLarge(msgs, i) => {
                let mut msgs = msgs.clone();
                let bad = i % msgs.len();
                msgs[bad] = vec![1; max + 1];
                let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                match tx.try_send_batch(&refs) {
                    Err(TrySendError::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
                    r => panic!("try_send_batch with a too-large message gave {r:?}"),
                }
            }
            QOp::TryRecvBatch(k) => {
                let mut got = Vec::new();
                let n = rx.try_recv_batch(*k, |bytes, kind| got.push(Message { kind, bytes: bytes.to_vec() })).unwrap();
                assert_eq!(n, got.len(), "try_recv_batch returned {n} but handed over {}", got.len());
                if *k > 0 {
                    model.front(); // the batch passed over aborted entries first
                }
                let want: Vec<Message> = model
                    .entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Message(m) => Some(m.clone()),
                        Entry::Aborted => None,
                    })
                    .take(*k)
                    .collect();
                if mpmc {
                    assert_eq!(got, want, "try_recv_batch({k})");
                } else {
                    // "Up to k": SPSC hands over what its cached tail shows, at least one if any.
                    assert_eq!(got[..], want[..n], "try_recv_batch({k})");
                    assert_eq!(n == 0, want.is_empty(), "try_recv_batch({k}) gave {n} of {} waiting", want.len());
                }
                for _ in 0..n {
                    model.front();
                    model.entries.pop_front();
                }
                if n < *k {
                    // The batch went on until it found nothing: past aborted entries too.
                    model.front();
                }
            }
        }
        assert_eq!(q.len(), model.entries.len(), "Queue::len() after {op:?}");
        assert_eq!(q.is_empty(), model.entries.is_empty());
    }
    // Everything the model holds comes out, in order, then the queue is empty.
    while model.has_message() {
        let want = model.front().unwrap();
        let got = rx.try_recv(&mut buf).unwrap_or_else(|e| panic!("message lost: {want:?} expected, got {e}"));
        assert_eq!(Message { kind: got.kind, bytes: buf[..got.len].to_vec() }, want);
        model.entries.pop_front();
    }
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)), "queue holds a message the model does not");
    assert_eq!(q.len(), 0);
    assert!(q.unlink().unwrap());
}

fn queue_case() -> impl Strategy<Value = (usize, usize, Vec<QOp>)> {
    (prop_oneof![Just(2usize), Just(4), Just(8)], prop_oneof![Just(1usize), Just(24), Just(100)])
        .prop_flat_map(|(cap, max)| (Just(cap), Just(max), prop::collection::vec(qop(max), 1..120)))
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn spsc_queue_matches_a_vecdeque((cap, max, ops) in queue_case()) {
        run_queue(false, cap, max, &ops);
    }

    #[test]
    fn mpmc_queue_matches_a_vecdeque((cap, max, ops) in queue_case()) {
        run_queue(true, cap, max, &ops);
    }
}

#[test]
fn mpmc_consumer_skips_a_loan_dropped_without_commit() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).capacity(2).max_msg_size(8).create("skip").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let mut loan = tx.loan().unwrap();
    loan[..5].copy_from_slice(b"ghost");
    drop(loan);
    tx.send(b"real").unwrap();
    // The aborted slot still holds its place until a consumer passes it.
    assert!(matches!(tx.try_send(b"x"), Err(TrySendError::Full)));
    let mut buf = [0u8; 8];
    let got = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"real");
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    assert_eq!(q.counters().aborted, 1);
    q.unlink().unwrap();
}

#[test]
fn spsc_loan_dropped_without_commit_delivers_nothing_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).spsc().capacity(2).max_msg_size(8).create("skip").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let mut loan = tx.loan().unwrap();
    loan[..5].copy_from_slice(b"ghost");
    drop(loan);
    assert_eq!(q.len(), 0);
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    let mut buf = [0u8; 8];
    for want in [&b"one"[..], b"two"] {
        let got = rx.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..got.len], want);
    }
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    q.unlink().unwrap();
}

/// `try_send_batch` promises to send "as many of `msgs` as fit now". An SPSC producer whose
/// cached copy of `head` is stale sends fewer: here the ring is empty (2 of 2 slots free) but the
/// producer last saw it with one message in it, so only one of two messages is sent.
#[test]
fn spsc_try_send_batch_sends_every_message_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().dir(dir.path()).spsc().capacity(2).max_msg_size(8).create("batch").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    tx.try_send(b"a").unwrap();
    let mut buf = [0u8; 8];
    rx.try_recv(&mut buf).unwrap();
    assert_eq!(q.len(), 0);
    let sent = tx.try_send_batch(&[b"b", b"c"]).unwrap();
    q.unlink().unwrap();
    assert_eq!(sent, 2, "both messages fit into the empty queue of capacity 2");
}
