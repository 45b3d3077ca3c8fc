//! Fuzz loops, run by `cargo test` on stable Rust (proptest): everything shmq parses from shared
//! memory, fed with arbitrary and mutated data, must give `Ok` or an error — never a panic, a
//! hang or a result out of bounds.
//!
//! - **Segment images**: arbitrary headers (built from a plausible configuration with fields
//!   overridden), control blocks, tables and slots, and files of the wrong size, opened with
//!   `Segment::open`, `QueueOptions::open`, `TopicOptions::open` and `Status::read`; whatever
//!   opens is then used (send, receive, publish, subscribe).
//! - **Mutated segments**: a real queue or topic, used for a while, then with header, control,
//!   participant, subscriber and slot fields overwritten (or bits flipped), opened and used.
//! - **Slot parsing**: heap rings (`HeapRing`) with arbitrary indices and slot state, length and
//!   kind words, driven through `mpmc`, `spsc` and `broadcast`; every `Ok` is checked in bounds
//!   (lengths at most `max_msg`, counts at most `capacity`, claims really held by the claimer,
//!   publishers never a ring ahead of the gate).
//! - **Layout arithmetic**: `Offsets::compute`, from which validation derives every offset.
//! - **Regressions**: inputs the loops reach only rarely (positions at the top of the sequence
//!   space, counters at `u64::MAX`), checked on every run.
//!
//! `PROPTEST_CASES` raises the number of cases. A case that runs for more than [`CASE_LIMIT`] is
//! a hang: the binary aborts and prints the input of that case.

use shmq_test_support as common;

use std::cell::Cell;
use std::fmt::Debug;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shmq::layout::{self, slot, Offsets, INIT_BUSY, INIT_READY, MAGIC, VERSION};
use shmq::ring::{broadcast, mpmc, spsc, HeapRing, Poll, RingMem};
use shmq::segment::{Expect, Segment};
use shmq::status::{self, Status};
use shmq::{Error, Queue, QueueKind, QueueOptions, Start, SubscriberMode, Topic, TopicOptions, WaitStrategy};

/// One case taking longer than this is a hang (each takes milliseconds).
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// Ready timeout of the opens under test.
const READY: Duration = Duration::from_millis(20);
/// Timeout of the timed operations under test.
const TINY: Duration = Duration::from_millis(1);
/// Largest file an arbitrary image is written to.
const MAX_IMAGE: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Running properties under a per-case watchdog
// ---------------------------------------------------------------------------------------------

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the case watchdog knows: when the current case started, its input, and whether the
/// property is done.
#[derive(Default)]
struct Watched {
    started: Option<Instant>,
    input: String,
    done: bool,
}

/// Aborts the test binary, printing the input, if one case runs longer than [`CASE_LIMIT`].
struct CaseWatch {
    state: Arc<(Mutex<Watched>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaseWatch {
    fn start(test: &'static str, dir: Option<PathBuf>) -> CaseWatch {
        let state = Arc::new((Mutex::new(Watched::default()), Condvar::new()));
        let s = state.clone();
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*s;
            let mut w = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while !w.done {
                if let Some(t) = w.started {
                    if t.elapsed() > CASE_LIMIT {
                        // Straight to stderr: the test harness's capture of `eprintln!` is lost on
                        // abort.
                        let _ = writeln!(
                            std::io::stderr(),
                            "fuzz: {test}: one case ran for more than {CASE_LIMIT:?} (a hang); input:\n{}",
                            w.input
                        );
                        if let Some(d) = &dir {
                            let _ = std::fs::remove_dir_all(d);
                        }
                        std::process::abort();
                    }
                }
                w = cv.wait_timeout(w, Duration::from_millis(200)).unwrap_or_else(std::sync::PoisonError::into_inner).0;
            }
        });
        CaseWatch { state, thread: Some(thread) }
    }

    fn begin(&self, input: &dyn Debug) {
        let mut w = self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        w.started = Some(Instant::now());
        w.input = format!("{input:#?}");
    }

    fn end(&self) {
        self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).started = None;
    }
}

impl Drop for CaseWatch {
    fn drop(&mut self) {
        self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).done = true;
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `body` on `default_cases` inputs from `strategy` (proptest catches panics and shrinks
/// to a minimal failing input, which the failure message shows).
fn check<S>(test: &'static str, default_cases: u32, dir: Option<&Path>, strategy: S, body: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: Debug,
{
    let watch = CaseWatch::start(test, dir.map(Path::to_path_buf));
    let config = Config { cases: cases(default_cases), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        watch.begin(&input);
        body(input);
        watch.end();
        Ok(())
    });
    drop(watch);
    if let Err(e) = result {
        panic!("{test}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Using whatever opened
// ---------------------------------------------------------------------------------------------

fn touch(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a ^ x)
}

fn check_received(r: &Result<shmq::Received, Error>, buf_len: usize, max: usize) {
    if let Ok(m) = r {
        assert!(m.len <= buf_len && m.len <= max, "received {} bytes into {buf_len} (max message {max})", m.len);
    }
}

/// Every kind of send and receive on an opened (possibly corrupted) queue.
fn exercise_queue(q: &Queue) {
    let max = q.max_msg_size();
    let _ = (q.len(), q.is_empty(), q.counters(), q.kind(), q.capacity());
    let mut tx = q.producer().ok();
    let mut rx = q.consumer().ok();
    let msg: Vec<u8> = (0..max.min(300)).map(|i| i as u8).collect();
    let mut buf = vec![0u8; max];
    for round in 0..6usize {
        if let Some(tx) = tx.as_mut() {
            let m = &msg[..round * 7 % (msg.len() + 1)];
            let _ = tx.try_send(m);
            let _ = tx.send_kind_timeout(round as u32, m, TINY);
            let _ = tx.try_send_batch(&[m, &m[..m.len() / 2]]);
            if let Ok(mut loan) = tx.try_loan() {
                loan.fill(0x5A);
                let _ = loan.commit(m.len());
            }
        }
        if let Some(rx) = rx.as_mut() {
            check_received(&rx.try_recv(&mut buf), buf.len(), max);
            check_received(&rx.recv_timeout(&mut buf, TINY), buf.len(), max);
            let mut small = [0u8; 3];
            check_received(&rx.try_recv(&mut small), 3, max);
            if let Ok(m) = rx.try_recv_ref() {
                assert!(m.len() <= max, "borrowed message of {} bytes (max {max})", m.len());
                touch(&m);
            }
            let _ = rx.try_recv_batch(4, |p, _| {
                assert!(p.len() <= max, "batch message of {} bytes (max {max})", p.len());
                touch(p);
            });
        }
    }
    let _ = (q.len(), q.counters());
}

/// Every kind of publish and receive on an opened (possibly corrupted) topic.
fn exercise_topic(t: &Topic) {
    let max = t.max_msg_size();
    let _ = (t.subscribers(), t.subscriber_count(), t.published(), t.counters(), t.has_subscribers());
    let mut subs: Vec<shmq::Subscriber> = [
        t.subscriber().build(),
        t.subscriber().mode(SubscriberMode::Lossy).start(Start::Earliest).build(),
        t.subscriber().name("fz").start(Start::Earliest).build(),
        // Resumes the durable subscriber of `used_segment`, with whatever its entry holds now.
        t.subscriber().name("keep").build(),
        t.subscriber().kinds(&[1, 2]).build(),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect();
    let mut publisher = t.publisher().ok();
    let msg: Vec<u8> = (0..max.min(300)).map(|i| i as u8).collect();
    let mut buf = vec![0u8; max];
    for round in 0..6usize {
        if let Some(p) = publisher.as_mut() {
            let m = &msg[..round * 5 % (msg.len() + 1)];
            let _ = p.try_publish(m);
            let _ = p.publish_kind_timeout(round as u32 % 3, m, TINY);
            if let Ok(mut loan) = p.try_loan() {
                loan.set_kind(1);
                let _ = loan.commit(m.len());
            }
        }
        for s in subs.iter_mut() {
            check_received(&s.try_recv(&mut buf), buf.len(), max);
            check_received(&s.recv_timeout(&mut buf, TINY), buf.len(), max);
            let mut small = [0u8; 3];
            check_received(&s.try_recv(&mut small), 3, max);
            if let Ok(m) = s.try_recv_ref() {
                assert!(m.len() <= max, "borrowed topic message of {} bytes (max {max})", m.len());
                touch(&m);
            }
            let _ = (s.lag(), s.position());
            s.ack();
        }
    }
    drop(subs);
    let _ = t.remove_subscriber("fz");
    let _ = t.subscribers();
}

/// Every way to open segment `name` of `dir`; whatever opens is used.
fn open_every_way(dir: &Path, name: &str) {
    match Segment::open(dir, name, &Expect::default(), READY) {
        // Status::read would wait its own ready timeout (200 ms) for the same answer.
        Err(Error::Stale { .. } | Error::Timeout) => {}
        seg => {
            if let Ok(seg) = seg {
                let _ = Status::of(&seg);
            }
            let _ = Status::read(dir, name);
            let _ = status::gc_verdict(dir, name, false);
        }
    }
    let queue = QueueOptions::new().dir(dir).ready_timeout(READY).wait(WaitStrategy::Yield);
    if let Ok(q) = queue.open(name) {
        exercise_queue(&q);
    }
    let topic = TopicOptions::new().dir(dir).ready_timeout(READY).wait(WaitStrategy::Yield);
    if let Ok(t) = topic.open(name) {
        exercise_topic(&t);
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary segment images
// ---------------------------------------------------------------------------------------------

/// Header fields: offset, width (see src/layout.rs).
const HEADER_FIELDS: &[(&str, u64, usize)] = &[
    ("magic", 0, 8),
    ("version", 8, 4),
    ("kind", 12, 4),
    ("init", 16, 4),
    ("line", 20, 4),
    ("creator_pid", 24, 4),
    ("max_msg", 28, 4),
    ("creator_start", 32, 8),
    ("capacity", 40, 8),
    ("slot_stride", 48, 8),
    ("max_participants", 56, 4),
    ("max_subscribers", 60, 4),
    ("participants_offset", 64, 8),
    ("subscribers_offset", 72, 8),
    ("slots_offset", 80, 8),
    ("total_size", 88, 8),
    ("created_unix_ns", 96, 8),
    ("producer_holder", 104, 4),
    ("consumer_holder", 108, 4),
];
/// Ring control block fields: offset, width.
const CONTROL_FIELDS: &[(&str, u64, usize)] = &[
    ("tail", 128, 8),
    ("head", 256, 8),
    ("data.seq", 384, 4),
    ("data.sleepers", 388, 4),
    ("space.seq", 512, 4),
    ("space.sleepers", 516, 4),
    ("stats.aborted", 640, 8),
    ("stats.abandoned", 648, 8),
    ("stats.lost_by_crash", 656, 8),
    ("stats.full_events", 664, 8),
    ("stats.blocked_ns", 672, 8),
    ("stats.published", 680, 8),
];
/// Participant entry fields: offset in the entry, width.
const PARTICIPANT_FIELDS: &[(&str, u64, usize)] = &[
    ("state", 0, 4),
    ("pid", 4, 4),
    ("start_time", 8, 8),
    ("roles", 16, 4),
    ("generation", 20, 4),
    ("sleeping", 40, 8),
];
/// Subscriber entry fields: offset in the entry, width.
const SUBSCRIBER_FIELDS: &[(&str, u64, usize)] = &[
    ("cursor", 0, 8),
    ("delivered", 8, 8),
    ("lagged", 16, 8),
    ("state", 128, 4),
    ("mode", 132, 4),
    ("pid", 136, 4),
    ("name_len", 140, 4),
    ("start_time", 144, 8),
    ("name", 192, 8),
];

/// Values worth trying in any field.
const EDGES: &[u64] =
    &[0, 1, 2, 3, 4, 64, 128, u64::MAX, u64::MAX - 1, 1 << 31, 1 << 32, 1 << 47, 1 << 48, i64::MAX as u64];

fn put(buf: &mut [u8], offset: u64, width: usize, value: u64) {
    let at = offset as usize;
    if at + width <= buf.len() {
        buf[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

/// How big the file of an image is.
#[derive(Clone, Copy, Debug)]
enum FileSize {
    /// What the configuration needs (capped at [`MAX_IMAGE`]).
    Total,
    /// A page less than that.
    PageShort,
    /// A fixed size.
    Fixed(u64),
}

/// What fills the file after the header.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// Zeros, then a valid initialisation of the ring and the subscriber cursors.
    Initialised,
    /// All zero.
    Zero,
    /// All 0xFF.
    Ones,
    /// Random bytes from this seed.
    Random(u64),
}

/// An arbitrary segment file.
#[derive(Clone, Debug)]
struct Image {
    kind: u32,
    capacity: u64,
    max_msg: u32,
    participants: u32,
    subscribers: Option<u32>,
    init: u32,
    creator_pid: u32,
    /// Header fields set to arbitrary values: (index into `HEADER_FIELDS`, value).
    overrides: Vec<(usize, u64)>,
    size: FileSize,
    body: Body,
    /// Writes anywhere: (position as a fraction of the file in 1/2^32, width 1/4/8, value).
    pokes: Vec<(u32, usize, u64)>,
}

fn image() -> impl Strategy<Value = Image> {
    let kind = prop_oneof![8 => 1..=3u32, 1 => any::<u32>()];
    let capacity = prop_oneof![6 => (1..=6u32).prop_map(|s| 1u64 << s), 1 => 0..20u64, 1 => any::<u64>()];
    let max_msg = prop_oneof![6 => prop::sample::select(vec![0u32, 1, 8, 40, 64, 200]), 1 => any::<u32>()];
    let participants = prop_oneof![6 => prop::sample::select(vec![1u32, 2, 64]), 1 => any::<u32>()];
    // `None`: what the kind needs (0 for queues, 4 for topics).
    let subscribers = prop_oneof![6 => Just(None), 2 => prop::sample::select(vec![0u32, 1, 16]).prop_map(Some), 1 => any::<u32>().prop_map(Some)];
    // Mostly ready (or invalid, which fails at once); busy and unsized files wait for the ready
    // timeout, so they are rarer.
    let init = prop_oneof![16 => Just(INIT_READY), 3 => any::<u32>(), 1 => Just(INIT_BUSY)];
    let creator_pid = prop_oneof![3 => Just(std::process::id()), 1 => Just(0u32), 4 => any::<u32>()];
    let field = (0..HEADER_FIELDS.len(), prop_oneof![1 => prop::sample::select(EDGES.to_vec()), 1 => any::<u64>()]);
    let size = prop_oneof![
        12 => Just(FileSize::Total),
        2 => Just(FileSize::PageShort),
        2 => prop::sample::select(vec![768u64, 4096, 8192, 65536]).prop_map(FileSize::Fixed),
        1 => (0..768u64).prop_map(FileSize::Fixed),
    ];
    let body = prop_oneof![
        4 => Just(Body::Initialised),
        1 => Just(Body::Zero),
        1 => Just(Body::Ones),
        2 => any::<u64>().prop_map(Body::Random),
    ];
    let poke = (any::<u32>(), prop::sample::select(vec![1usize, 4, 8]), any::<u64>());
    (
        (kind, capacity, max_msg, participants, subscribers, init, creator_pid),
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(field, 1..4)],
        size,
        body,
        prop::collection::vec(poke, 0..8),
    )
        .prop_map(|(config, overrides, size, body, pokes)| {
            let (kind, capacity, max_msg, participants, subscribers, init, creator_pid) = config;
            Image {
                kind,
                capacity,
                max_msg,
                participants,
                subscribers,
                init,
                creator_pid,
                overrides,
                size,
                body,
                pokes,
            }
        })
}

impl Image {
    fn bytes(&self) -> Vec<u8> {
        let subscribers = self.subscribers.unwrap_or(if self.kind == 3 { 4 } else { 0 });
        let offsets =
            Offsets::compute(self.capacity, self.max_msg, self.participants.min(1 << 20), subscribers.min(1 << 20));
        let total = offsets.map_or(MAX_IMAGE, |o| o.total);
        let len = match self.size {
            FileSize::Total => total.min(MAX_IMAGE),
            FileSize::PageShort => total.min(MAX_IMAGE).saturating_sub(4096),
            FileSize::Fixed(n) => n,
        } as usize;
        let mut buf = match self.body {
            Body::Initialised | Body::Zero => vec![0u8; len],
            Body::Ones => vec![0xFFu8; len],
            Body::Random(seed) => {
                let mut rng = common::Rng::new(seed);
                (0..len).map(|_| rng.next_u64() as u8).collect()
            }
        };
        if let (Body::Initialised, Some(o)) = (self.body, offsets) {
            let cap = self.capacity;
            if o.total as usize <= len && cap.is_power_of_two() {
                for i in 0..cap {
                    let seq = if self.kind == 3 { i.wrapping_sub(cap) } else { i };
                    put(&mut buf, o.slots + i * o.stride, 8, slot::pack(seq, slot::IDLE, 0));
                }
                for i in 0..subscribers as u64 {
                    put(&mut buf, o.subscribers + i * layout::SUBSCRIBER_SIZE as u64, 8, u64::MAX);
                }
            }
        }
        let o = offsets.unwrap_or(Offsets { participants: 768, subscribers: 768, slots: 768, stride: 64, total });
        let start_time = if self.creator_pid == std::process::id() { shmq::os::own_start_time() } else { 7 };
        let header: [u64; 19] = [
            MAGIC,
            VERSION as u64,
            self.kind as u64,
            self.init as u64,
            layout::LINE as u64,
            self.creator_pid as u64,
            self.max_msg as u64,
            start_time,
            self.capacity,
            o.stride,
            self.participants as u64,
            subscribers as u64,
            o.participants,
            o.subscribers,
            o.slots,
            o.total,
            1_700_000_000_000_000_000,
            0,
            0,
        ];
        for (&(_, offset, width), &value) in HEADER_FIELDS.iter().zip(header.iter()) {
            put(&mut buf, offset, width, value);
        }
        for &(field, value) in &self.overrides {
            let (_, offset, width) = HEADER_FIELDS[field];
            put(&mut buf, offset, width, value);
        }
        for &(at, width, value) in &self.pokes {
            let offset = (at as u64 * len as u64) >> 32;
            put(&mut buf, offset & !(width as u64 - 1), width, value);
        }
        buf
    }
}

/// Unique segment names within one test binary.
fn next_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// `Offsets::compute` is what validation derives every offset from: for any configuration it
/// returns `None` or a layout that fits (no overflow, nothing overlaps, within `MAX_SEGMENT`).
#[test]
fn offsets_of_any_configuration_are_none_or_a_layout_that_fits() {
    let max_msg = prop_oneof![1 => any::<u32>(), 1 => prop::sample::select(vec![0u32, 48, 112, 4080])];
    let table = prop_oneof![1 => any::<u32>(), 1 => 0..100u32];
    // `Far(d)`: the capacity whose slots end `d` bytes before 2^64, where rounding the file
    // size up to a page could overflow.
    #[derive(Clone, Copy, Debug)]
    enum Cap {
        Any(u64),
        Far(u64),
    }
    let cap = prop_oneof![
        1 => any::<u64>().prop_map(Cap::Any),
        1 => (0..64u32).prop_map(|s| Cap::Any(1u64 << s)),
        2 => (1..8192u64).prop_map(Cap::Far),
    ];
    let strategy = (cap, max_msg, table.clone(), table).prop_map(|(cap, max_msg, participants, subscribers)| {
        let capacity = match (cap, Offsets::compute(2, max_msg, participants, subscribers)) {
            (Cap::Far(d), Some(o)) => (u64::MAX - o.slots).saturating_sub(d) / o.stride,
            (Cap::Far(d), None) => u64::MAX - d,
            (Cap::Any(c), _) => c,
        };
        (capacity, max_msg, participants, subscribers)
    });
    check("offsets", 1000, None, strategy, |(capacity, max_msg, participants, subscribers)| {
        if let Some(o) = Offsets::compute(capacity, max_msg, participants, subscribers) {
            let slots_end = capacity as u128 * o.stride as u128 + o.slots as u128;
            assert!(o.total <= layout::MAX_SEGMENT && slots_end <= o.total as u128, "{o:?}");
            assert!(o.participants + participants as u64 * layout::PARTICIPANT_SIZE as u64 <= o.subscribers, "{o:?}");
            assert!(o.subscribers + subscribers as u64 * layout::SUBSCRIBER_SIZE as u64 <= o.slots, "{o:?}");
            assert!(o.stride >= layout::SLOT_HEADER as u64 + max_msg as u64, "{o:?}");
        }
    });
}

#[test]
fn arbitrary_segment_images_open_as_ok_or_error_never_panic_or_hang() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let opened = Cell::new(0u32);
    check("arbitrary images", 384, Some(d), image(), |img| {
        let name = next_name("img");
        let path = d.join(format!("shmq.{name}"));
        std::fs::write(&path, img.bytes()).expect("write the image");
        if Segment::open(d, &name, &Expect::default(), READY).is_ok() {
            opened.set(opened.get() + 1);
        }
        open_every_way(d, &name);
        std::fs::remove_file(&path).expect("remove the image");
    });
    // The images must reach past validation, or the loop tests only the first checks.
    assert!(opened.get() > 0, "no arbitrary image passed validation; the generator is too wild");
    eprintln!("arbitrary images: {} opened", opened.get());
}

// ---------------------------------------------------------------------------------------------
// Mutations of real segments
// ---------------------------------------------------------------------------------------------

/// A new value for a field of a real segment.
#[derive(Clone, Copy, Debug)]
enum Val {
    Raw(u64),
    Edge(u64),
    /// `u64::MAX` minus this: positions at the top of the sequence space.
    Top(u8),
    /// The current value plus this.
    Delta(i16),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        1 => any::<u64>().prop_map(Val::Raw),
        1 => prop::sample::select(EDGES.to_vec()).prop_map(Val::Edge),
        1 => (0..40u8).prop_map(Val::Top),
        2 => (-40i16..40).prop_map(Val::Delta),
    ]
}

/// A new state word for a slot.
#[derive(Clone, Copy, Debug)]
enum StateVal {
    Raw(u64),
    /// The current sequence plus `seq`, with this tag and claimer.
    Shift {
        seq: i16,
        tag: u64,
        claimer: u16,
    },
}

fn state_val() -> impl Strategy<Value = StateVal> {
    prop_oneof![
        1 => any::<u64>().prop_map(StateVal::Raw),
        4 => (-40i16..40, 0..16u64, 0..8u16).prop_map(|(seq, tag, claimer)| StateVal::Shift { seq, tag, claimer }),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Header(usize, Val),
    Control(usize, Val),
    Participant(u64, usize, Val),
    Subscriber(u64, usize, Val),
    SlotState(u64, StateVal),
    SlotLen(u64, Val),
    SlotKind(u64, u32),
    /// Flip bit `.1` of the byte at this fraction of the file (in 1/2^32).
    Flip(u32, u8),
    /// Write these bytes at this fraction of the file.
    Bytes(u32, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (0..HEADER_FIELDS.len(), val()).prop_map(|(f, v)| Mutation::Header(f, v)),
        3 => (0..CONTROL_FIELDS.len(), val()).prop_map(|(f, v)| Mutation::Control(f, v)),
        // tail and head (the first two control fields), whose values drive every position.
        2 => (0..2usize, val()).prop_map(|(f, v)| Mutation::Control(f, v)),
        2 => (0..4u64, 0..PARTICIPANT_FIELDS.len(), val()).prop_map(|(i, f, v)| Mutation::Participant(i, f, v)),
        2 => (0..4u64, 0..SUBSCRIBER_FIELDS.len(), val()).prop_map(|(i, f, v)| Mutation::Subscriber(i, f, v)),
        4 => (0..16u64, state_val()).prop_map(|(i, s)| Mutation::SlotState(i, s)),
        2 => (0..16u64, val()).prop_map(|(i, v)| Mutation::SlotLen(i, v)),
        1 => (0..16u64, any::<u32>()).prop_map(|(i, k)| Mutation::SlotKind(i, k)),
        2 => (any::<u32>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        1 => (any::<u32>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, b)| Mutation::Bytes(at, b)),
    ]
}

#[derive(Clone, Debug)]
struct Mutated {
    /// 0 SPSC, 1 MPMC, 2 topic.
    kind: u8,
    capacity: u64,
    max_msg: usize,
    /// Messages sent before the mutation, and how many of them were received.
    sent: u8,
    received: u8,
    mutations: Vec<Mutation>,
}

fn mutated() -> impl Strategy<Value = Mutated> {
    (
        0..3u8,
        prop::sample::select(vec![2u64, 4, 8]),
        prop::sample::select(vec![0usize, 8, 40]),
        0..24u8,
        0..24u8,
        prop::collection::vec(mutation(), 1..6),
    )
        .prop_map(|(kind, capacity, max_msg, sent, received, mutations)| Mutated {
            kind,
            capacity,
            max_msg,
            sent,
            received,
            mutations,
        })
}

/// Where a field of `m` is, and how wide.
fn locate(m: &Mutation, o: &Offsets, capacity: u64, len: u64) -> (u64, usize) {
    let slot = |i: u64| o.slots + (i % capacity) * o.stride;
    match *m {
        Mutation::Header(f, _) => (HEADER_FIELDS[f].1, HEADER_FIELDS[f].2),
        Mutation::Control(f, _) => (CONTROL_FIELDS[f].1, CONTROL_FIELDS[f].2),
        Mutation::Participant(i, f, _) => {
            (o.participants + i * layout::PARTICIPANT_SIZE as u64 + PARTICIPANT_FIELDS[f].1, PARTICIPANT_FIELDS[f].2)
        }
        // Queues have no subscriber table: these hit the start of the slots instead.
        Mutation::Subscriber(i, f, _) => {
            (o.subscribers + i * layout::SUBSCRIBER_SIZE as u64 + SUBSCRIBER_FIELDS[f].1, SUBSCRIBER_FIELDS[f].2)
        }
        Mutation::SlotState(i, _) => (slot(i), 8),
        Mutation::SlotLen(i, _) => (slot(i) + 8, 4),
        Mutation::SlotKind(i, _) => (slot(i) + 12, 4),
        Mutation::Flip(at, _) => ((at as u64 * len) >> 32, 1),
        Mutation::Bytes(at, ref b) => (((at as u64 * len) >> 32).min(len - b.len() as u64), b.len()),
    }
}

fn apply(file: &std::fs::File, m: &Mutation, o: &Offsets, capacity: u64) {
    let len = file.metadata().expect("segment size").len();
    let (offset, width) = locate(m, o, capacity, len);
    let mut cur = vec![0u8; width];
    file.read_exact_at(&mut cur, offset).expect("read the field");
    let current = {
        let mut b = [0u8; 8];
        b[..width.min(8)].copy_from_slice(&cur[..width.min(8)]);
        u64::from_le_bytes(b)
    };
    let new: Vec<u8> = match m {
        Mutation::Flip(_, bit) => vec![cur[0] ^ (1 << bit)],
        Mutation::Bytes(_, b) => b.clone(),
        Mutation::SlotKind(_, k) => k.to_le_bytes().to_vec(),
        Mutation::SlotState(_, s) => {
            let w = match *s {
                StateVal::Raw(w) => w,
                StateVal::Shift { seq, tag, claimer } => {
                    slot::pack((current >> 16).wrapping_add(seq as i64 as u64), tag, claimer)
                }
            };
            w.to_le_bytes().to_vec()
        }
        Mutation::Header(_, v)
        | Mutation::Control(_, v)
        | Mutation::Participant(_, _, v)
        | Mutation::Subscriber(_, _, v)
        | Mutation::SlotLen(_, v) => {
            let x = match *v {
                Val::Raw(x) | Val::Edge(x) => x,
                Val::Top(d) => u64::MAX - d as u64,
                Val::Delta(d) => current.wrapping_add(d as i64 as u64),
            };
            x.to_le_bytes()[..width].to_vec()
        }
    };
    file.write_all_at(&new, offset).expect("write the field");
}

/// A real segment of `case`'s shape, used for a while and closed (its file stays).
fn used_segment(dir: &Path, name: &str, case: &Mutated) -> (PathBuf, Offsets) {
    let msg = vec![0xC3u8; case.max_msg];
    let mut buf = vec![0u8; case.max_msg];
    if case.kind == 2 {
        let t = TopicOptions::new()
            .dir(dir)
            .capacity(case.capacity)
            .max_msg_size(case.max_msg)
            .max_subscribers(4)
            .create(name)
            .expect("create the topic");
        // A durable subscriber stays in the table (detached) after its handle is gone.
        let mut durable = t.subscriber().name("keep").build().expect("durable subscriber");
        let mut lossy = t.subscriber().mode(SubscriberMode::Lossy).build().expect("lossy subscriber");
        let mut p = t.publisher().expect("publisher");
        for i in 0..case.sent as usize {
            if p.try_publish_kind(i as u32, &msg[..i % (case.max_msg + 1)]).is_err() {
                let _ = durable.try_recv(&mut buf);
            }
        }
        for _ in 0..case.received {
            let _ = durable.try_recv(&mut buf);
            let _ = lossy.try_recv(&mut buf);
        }
        let o = Offsets::compute(case.capacity, case.max_msg as u32, layout::DEFAULT_PARTICIPANTS, 4).expect("layout");
        return (t.path().to_path_buf(), o);
    }
    let kind = if case.kind == 0 { QueueKind::Spsc } else { QueueKind::Mpmc };
    let q = QueueOptions::new()
        .dir(dir)
        .kind(kind)
        .capacity(case.capacity)
        .max_msg_size(case.max_msg)
        .create(name)
        .expect("create the queue");
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    for i in 0..case.sent as usize {
        if tx.try_send_kind(i as u32, &msg[..i % (case.max_msg + 1)]).is_err() {
            let _ = rx.try_recv(&mut buf);
        }
    }
    for _ in 0..case.received {
        let _ = rx.try_recv(&mut buf);
    }
    let o = Offsets::compute(case.capacity, case.max_msg as u32, layout::DEFAULT_PARTICIPANTS, 0).expect("layout");
    (q.path().to_path_buf(), o)
}

#[test]
fn mutated_queue_and_topic_segments_give_ok_or_errors_never_panic_or_hang() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let (opened, failed) = (Cell::new(0u32), Cell::new(0u32));
    check("mutated segments", 384, Some(d), mutated(), |case| {
        let name = next_name("mut");
        let (path, offsets) = used_segment(d, &name, &case);
        let file = OpenOptions::new().read(true).write(true).open(&path).expect("open the segment file");
        for m in &case.mutations {
            apply(&file, m, &offsets, case.capacity);
        }
        match Segment::open(d, &name, &Expect::default(), READY) {
            Ok(_) => opened.set(opened.get() + 1),
            Err(_) => failed.set(failed.get() + 1),
        }
        open_every_way(d, &name);
        std::fs::remove_file(&path).expect("remove the segment");
    });
    eprintln!("mutated segments: {} opened, {} rejected", opened.get(), failed.get());
    assert!(opened.get() > 0 && failed.get() > 0, "mutations should both spare and break the header");
}

// ---------------------------------------------------------------------------------------------
// Slot parsing on heap rings
// ---------------------------------------------------------------------------------------------

/// A position relative to the ring's base position, or any value.
#[derive(Clone, Copy, Debug)]
enum Word {
    Near(i16),
    Raw(u64),
}

impl Word {
    fn at(self, base: u64) -> u64 {
        match self {
            Word::Near(d) => base.wrapping_add(d as i64 as u64),
            Word::Raw(w) => w,
        }
    }
}

fn word() -> impl Strategy<Value = Word> {
    prop_oneof![6 => (-40i16..40).prop_map(Word::Near), 1 => any::<u64>().prop_map(Word::Raw)]
}

/// What a slot is set to.
#[derive(Clone, Copy, Debug)]
struct SlotVals {
    /// `Near(d)`: a state word for position base + d (tag, claimer below); `Raw`: any word.
    state: Word,
    tag: u64,
    claimer: u16,
    /// Length: small values around max_msg, or any.
    len: u32,
    kind: u32,
}

impl SlotVals {
    fn apply(&self, m: &HeapRing, i: u64, base: u64) {
        let s = m.slot(i);
        let w = match self.state {
            Word::Near(_) => slot::pack(self.state.at(base), self.tag, self.claimer),
            Word::Raw(w) => w,
        };
        s.state.store(w, std::sync::atomic::Ordering::Relaxed);
        s.len.store(self.len, std::sync::atomic::Ordering::Relaxed);
        s.kind.store(self.kind, std::sync::atomic::Ordering::Relaxed);
    }
}

fn slot_vals() -> impl Strategy<Value = SlotVals> {
    (word(), 0..16u64, 0..6u16, prop_oneof![4 => 0..80u32, 1 => any::<u32>()], any::<u32>())
        .prop_map(|(state, tag, claimer, len, kind)| SlotVals { state, tag, claimer, len, kind })
}

/// A hostile change made between ring operations.
#[derive(Clone, Copy, Debug)]
enum Poke {
    Slot(u64, SlotVals),
    Tail(Word),
    Head(Word),
}

fn poke() -> impl Strategy<Value = Poke> {
    prop_oneof![
        3 => (0..16u64, slot_vals()).prop_map(|(i, v)| Poke::Slot(i, v)),
        1 => word().prop_map(Poke::Tail),
        1 => word().prop_map(Poke::Head),
    ]
}

impl Poke {
    fn apply(&self, m: &HeapRing, base: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match *self {
            Poke::Slot(i, v) => v.apply(m, i, base),
            Poke::Tail(w) => m.control().tail.0.store(w.at(base), Relaxed),
            Poke::Head(w) => m.control().head.0.store(w.at(base), Relaxed),
        }
    }
}

/// The starting state of a heap ring.
#[derive(Clone, Debug)]
struct RingSetup {
    capacity: u64,
    max_msg: usize,
    /// Every position is relative to this (so that wrap-around at 2^48 and 2^64 is covered).
    base: u64,
    /// `None`: a valid, empty ring at `base`.
    hostile: Option<(Word, Word, Vec<SlotVals>)>,
}

fn ring_setup() -> impl Strategy<Value = RingSetup> {
    let base = prop_oneof![
        2 => Just(0u64),
        2 => 0..1000u64,
        1 => (1u64 << 48) - 40..(1u64 << 48) + 40,
        1 => u64::MAX - 40..=u64::MAX,
        1 => any::<u64>(),
    ];
    let hostile = prop::option::weighted(0.7, (word(), word(), prop::collection::vec(slot_vals(), 16)));
    ((1..=4u32).prop_map(|s| 1u64 << s), prop::sample::select(vec![0usize, 8, 64]), base, hostile)
        .prop_map(|(capacity, max_msg, base, hostile)| RingSetup { capacity, max_msg, base, hostile })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RingKind {
    Mpmc,
    Spsc,
    Broadcast,
}

impl RingSetup {
    fn build(&self, kind: RingKind) -> HeapRing {
        use std::sync::atomic::Ordering::Relaxed;
        let m = HeapRing::new(self.capacity, self.max_msg);
        let (cap, base) = (self.capacity, self.base);
        // A valid empty ring whose next position is `base`.
        for p in (0..cap).map(|i| base.wrapping_add(i)) {
            let seq = if kind == RingKind::Broadcast { p.wrapping_sub(cap) } else { p };
            m.slot(p).state.store(slot::pack(seq, slot::IDLE, 0), Relaxed);
        }
        m.control().tail.0.store(base, Relaxed);
        m.control().head.0.store(base, Relaxed);
        if let Some((tail, head, slots)) = &self.hostile {
            m.control().tail.0.store(tail.at(base), Relaxed);
            m.control().head.0.store(head.at(base), Relaxed);
            for (i, v) in slots.iter().take(cap as usize).enumerate() {
                v.apply(&m, i as u64, base);
            }
        }
        m
    }
}

fn state_of(m: &HeapRing, pos: u64) -> u64 {
    m.slot(pos).state.load(std::sync::atomic::Ordering::Relaxed)
}

/// MPMC operations.
#[derive(Clone, Copy, Debug)]
enum MpmcOp {
    Write {
        me: u16,
        len: usize,
        commit: bool,
    },
    Read {
        me: u16,
        max_len: usize,
    },
    /// Recover the last slot reported held.
    Recover,
    Poke(Poke),
}

fn mpmc_op() -> impl Strategy<Value = MpmcOp> {
    let me = 1..=layout::MAX_PARTICIPANTS as u16;
    let max_len = prop_oneof![3 => 0..80usize, 1 => Just(usize::MAX)];
    prop_oneof![
        4 => (me.clone(), 0..80usize, any::<bool>()).prop_map(|(me, len, commit)| MpmcOp::Write { me, len, commit }),
        4 => (me, max_len).prop_map(|(me, max_len)| MpmcOp::Read { me, max_len }),
        1 => Just(MpmcOp::Recover),
        2 => poke().prop_map(MpmcOp::Poke),
    ]
}

#[test]
fn mpmc_claims_on_hostile_slots_return_in_bounds_or_errors() {
    let strategy = (ring_setup(), prop::collection::vec(mpmc_op(), 1..24));
    check("mpmc slot parsing", 1000, None, strategy, |(setup, ops)| {
        let m = setup.build(RingKind::Mpmc);
        let max = setup.max_msg;
        let mut held = None;
        for op in ops {
            match op {
                MpmcOp::Write { me, len, commit } => match mpmc::claim_write(&m, me) {
                    Ok(Poll::Ready(pos)) => {
                        let w = state_of(&m, pos);
                        assert_eq!(w, slot::pack(pos, slot::WRITING, me), "claim_write gave {pos}, not held by {me}");
                        if commit {
                            let _ = mpmc::commit(&m, pos, me, len.min(max), 3);
                        } else {
                            let _ = mpmc::abort(&m, pos, me);
                        }
                    }
                    Ok(Poll::Held { pos, word }) => held = Some((pos, word)),
                    Ok(Poll::NotReady) | Err(_) => {}
                },
                MpmcOp::Read { me, max_len } => match mpmc::claim_read(&m, me, max_len, &mut 0) {
                    Ok(Poll::Ready(msg)) => {
                        assert!(msg.len <= max && msg.len <= max_len, "claim_read gave {msg:?} (max {max}, {max_len})");
                        let w = state_of(&m, msg.pos);
                        let want = slot::pack(msg.pos.wrapping_add(1), slot::READING, me);
                        assert_eq!(w, want, "claim_read gave {msg:?}, not held by {me}");
                        mpmc::release(&m, msg.pos, me).expect("our own claim");
                    }
                    Ok(Poll::Held { pos, word }) => held = Some((pos, word)),
                    Ok(Poll::NotReady) | Err(_) => {}
                },
                MpmcOp::Recover => {
                    if let Some((pos, word)) = held.take() {
                        mpmc::recover(&m, pos, word);
                    }
                }
                MpmcOp::Poke(p) => p.apply(&m, setup.base),
            }
        }
    });
}

/// SPSC operations.
#[derive(Clone, Copy, Debug)]
enum SpscOp {
    /// Write up to `n` messages of `len` bytes (as many as are free) and publish them.
    Produce {
        n: u64,
        len: usize,
    },
    /// Read up to `n` messages and release them.
    Consume {
        n: u64,
    },
    /// Attach the producer or consumer side again (as a restarted process would).
    Reattach {
        producer: bool,
    },
    Poke(Poke),
}

fn spsc_op() -> impl Strategy<Value = SpscOp> {
    prop_oneof![
        4 => (0..20u64, 0..80usize).prop_map(|(n, len)| SpscOp::Produce { n, len }),
        4 => (0..20u64).prop_map(|n| SpscOp::Consume { n }),
        1 => any::<bool>().prop_map(|producer| SpscOp::Reattach { producer }),
        2 => poke().prop_map(SpscOp::Poke),
    ]
}

#[test]
fn spsc_indices_and_lengths_from_hostile_memory_stay_in_bounds_or_are_errors() {
    let strategy = (ring_setup(), prop::collection::vec(spsc_op(), 1..24));
    check("spsc slot parsing", 1000, None, strategy, |(setup, ops)| {
        let m = setup.build(RingKind::Spsc);
        let (cap, max) = (setup.capacity, setup.max_msg);
        let payload = vec![0x77u8; max];
        let mut producer = spsc::SpscProducer::attach(&m).ok();
        let mut consumer = spsc::SpscConsumer::attach(&m).ok();
        for op in ops {
            match op {
                SpscOp::Produce { n, len } => {
                    let Some(p) = producer.as_mut() else { continue };
                    if let Ok(free) = p.free(&m) {
                        assert!(free <= cap, "free() = {free} > capacity {cap}");
                        let n = n.min(free);
                        for i in 0..n {
                            // SAFETY: the ring's only producer, writing a slot it counted free.
                            unsafe { p.write(&m, i, i as u32, &payload[..len.min(max)]) }.unwrap();
                        }
                        p.publish(&m, n);
                    }
                }
                SpscOp::Consume { n } => {
                    let Some(c) = consumer.as_mut() else { continue };
                    if let Ok(ready) = c.available(&m) {
                        assert!(ready <= cap, "available() = {ready} > capacity {cap}");
                        let n = n.min(ready);
                        for i in 0..n {
                            if let Ok((len, _)) = c.peek(&m, i) {
                                assert!(len <= max, "peek gave length {len} > max_msg {max}");
                                // SAFETY: message i is ready (i < available) and len <= max_msg,
                                // the size of the slot's payload.
                                touch(unsafe { std::slice::from_raw_parts(m.payload(c.position(i)), len) });
                            }
                        }
                        c.release(&m, n);
                    }
                }
                SpscOp::Reattach { producer: true } => producer = spsc::SpscProducer::attach(&m).ok(),
                SpscOp::Reattach { producer: false } => consumer = spsc::SpscConsumer::attach(&m).ok(),
                SpscOp::Poke(p) => p.apply(&m, setup.base),
            }
        }
    });
}

/// Broadcast (topic) operations.
#[derive(Clone, Copy, Debug)]
enum TopicOp {
    Claim {
        me: u16,
        gate: Word,
        len: usize,
        commit: bool,
    },
    Read {
        cursor: Word,
    },
    /// Recover the last slot reported held.
    Recover,
    Poke(Poke),
}

fn topic_op() -> impl Strategy<Value = TopicOp> {
    prop_oneof![
        4 => (1..=layout::MAX_PARTICIPANTS as u16, word(), 0..80usize, any::<bool>())
            .prop_map(|(me, gate, len, commit)| TopicOp::Claim { me, gate, len, commit }),
        4 => word().prop_map(|cursor| TopicOp::Read { cursor }),
        1 => Just(TopicOp::Recover),
        2 => poke().prop_map(TopicOp::Poke),
    ]
}

#[test]
fn broadcast_reads_and_claims_on_hostile_slots_return_in_bounds_or_errors() {
    let strategy = (ring_setup(), prop::collection::vec(topic_op(), 1..24));
    check("broadcast slot parsing", 1000, None, strategy, |(setup, ops)| {
        let m = setup.build(RingKind::Broadcast);
        let (cap, max, base) = (setup.capacity, setup.max_msg, setup.base);
        let mut held = None;
        for op in ops {
            match op {
                TopicOp::Claim { me, gate, len, commit } => {
                    let gate = gate.at(base);
                    match broadcast::claim(&m, me, gate) {
                        Ok(Poll::Ready(seq)) => {
                            let ahead = seq.wrapping_sub(gate) as i64;
                            assert!(ahead < cap as i64, "claimed {seq}, a ring or more ahead of gate {gate}");
                            let w = state_of(&m, seq);
                            assert_eq!(w, slot::pack(seq, slot::WRITING, me), "claim gave {seq}, not held by {me}");
                            if commit {
                                broadcast::commit(&m, seq, me, len.min(max), 1).expect("our own claim");
                            } else {
                                broadcast::abort(&m, seq, me).expect("our own claim");
                            }
                        }
                        Ok(Poll::Held { pos, word }) => held = Some((pos, word)),
                        Ok(Poll::NotReady) | Err(_) => {}
                    }
                }
                TopicOp::Read { cursor } => {
                    let cursor = cursor.at(base);
                    match broadcast::read(&m, cursor, false) {
                        Ok(broadcast::Read::Ready { len, word, .. }) => {
                            assert!(len <= max, "read gave length {len} > max_msg {max} at {cursor}");
                            // SAFETY: len <= max_msg, the size of the slot's payload.
                            touch(unsafe { std::slice::from_raw_parts(m.payload(cursor), len) });
                            assert!(broadcast::still_intact(&m, cursor, word), "nothing rewrote the slot");
                        }
                        Ok(broadcast::Read::Lapped { seq }) => {
                            let ahead = seq.wrapping_sub(cursor);
                            assert!(ahead > 0 && ahead < 1 << 47, "lapped to {seq}, not ahead of cursor {cursor}");
                        }
                        Ok(broadcast::Read::Held { word }) => held = Some((cursor, word)),
                        Ok(broadcast::Read::Skip | broadcast::Read::NotReady) | Err(_) => {}
                    }
                }
                TopicOp::Recover => {
                    if let Some((pos, word)) = held.take() {
                        broadcast::recover(&m, pos, word);
                    }
                }
                TopicOp::Poke(p) => p.apply(&m, base),
            }
        }
    });
}

/// `open` of a file that is too short or still being initialised waits at most its ready
/// timeout; these are the inputs the image generator makes rare, checked once each here.
#[test]
fn unready_and_unsized_images_end_in_stale_or_timeout_errors() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let _dog = common::Watchdog::start("unready images", Duration::from_secs(60), Some(d));
    let short = vec![0u8; 100];
    let mut busy = vec![0u8; 4096];
    put(&mut busy, 0, 8, MAGIC);
    put(&mut busy, 16, 4, INIT_BUSY as u64);
    put(&mut busy, 24, 4, std::process::id() as u64);
    put(&mut busy, 32, 8, shmq::os::own_start_time());
    let mut dead = busy.clone();
    put(&mut dead, 32, 8, 12345);
    for (name, bytes) in [("short", &short), ("busy", &busy), ("dead", &dead)] {
        std::fs::write(d.join(format!("shmq.{name}")), bytes).expect("write the image");
        let r = Segment::open(d, name, &Expect::default(), READY);
        assert!(matches!(r, Err(Error::Stale { .. } | Error::Timeout)), "{name}: {r:?}");
        open_every_way(d, name);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs the loops above reach only rarely, checked every run
// ---------------------------------------------------------------------------------------------

/// Runs `f`, failing with `what` if it panics (rather than with the bare panic).
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        panic!("{what} panicked: {}", msg.unwrap_or_default())
    })
}

/// A topic whose `tail` a peer set to `u64::MAX` gives a joining subscriber the cursor
/// `u64::MAX`; when publishers then lap it, the lag count must not overflow.
#[test]
fn subscriber_lapped_at_the_top_of_the_sequence_space_reports_lag_without_overflow() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let _dog = common::Watchdog::start("lap at u64::MAX", Duration::from_secs(60), Some(dir.path()));
    let mut failures = Vec::new();
    for lossy in [false, true] {
        let name = if lossy { "wrap-lossy" } else { "wrap-reliable" };
        let t = TopicOptions::new().dir(dir.path()).capacity(4).max_msg_size(8).create(name).expect("create");
        let file = OpenOptions::new().write(true).open(t.path()).expect("open the segment file");
        file.write_all_at(&u64::MAX.to_le_bytes(), 128).expect("overwrite control.tail");
        let mode = if lossy { SubscriberMode::Lossy } else { SubscriberMode::Reliable };
        let mut sub = t.subscriber().mode(mode).build().expect("subscriber");
        let mut p = t.publisher().expect("publisher");
        for i in 0..4u8 {
            let _ = p.try_publish(&[i]);
        }
        let mut buf = [0u8; 8];
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.try_recv(&mut buf))) {
            Ok(Ok(m)) => assert!(m.len <= 8, "received {} bytes", m.len),
            Ok(Err(_)) => {}
            Err(p) => {
                let msg =
                    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
                failures.push(format!(
                    "try_recv of a {mode:?} subscriber at u64::MAX panicked: {}",
                    msg.unwrap_or_default()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A durable subscriber resumes with the `delivered` count stored in its entry, which a peer
/// may have set to anything; counting the next message must not overflow.
#[test]
fn resumed_durable_subscriber_with_a_hostile_delivered_count_receives_without_overflow() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let _dog = common::Watchdog::start("delivered count", Duration::from_secs(60), Some(dir.path()));
    let t = TopicOptions::new()
        .dir(dir.path())
        .capacity(4)
        .max_msg_size(8)
        .max_subscribers(4)
        .create("resume")
        .expect("create");
    drop(t.subscriber().name("keep").build().expect("durable subscriber"));
    let o = Offsets::compute(4, 8, layout::DEFAULT_PARTICIPANTS, 4).expect("layout");
    let file = OpenOptions::new().write(true).open(t.path()).expect("open the segment file");
    file.write_all_at(&u64::MAX.to_le_bytes(), o.subscribers + 8).expect("overwrite subscriber[0].delivered");
    let mut sub = t.subscriber().name("keep").build().expect("resume the durable subscriber");
    t.publisher().expect("publisher").try_publish(b"x").expect("publish");
    let mut buf = [0u8; 8];
    let r = no_panic("try_recv of a resumed subscriber whose delivered count is u64::MAX", || sub.try_recv(&mut buf));
    assert_eq!(r.expect("the message").len, 1);
}

/// A new reliable subscriber that joins at a `tail` a peer set near `u64::MAX` (after messages
/// were published at small sequences) finds every slot "lapped"; skipping the lost history one
/// position per step must not take 2^40 steps inside one `try_recv`.
#[test]
fn new_reliable_subscriber_joining_at_a_hostile_tail_returns_from_try_recv() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let _dog = common::Watchdog::start("join at a hostile tail", Duration::from_secs(120), Some(dir.path()));
    let t = TopicOptions::new().dir(dir.path()).capacity(4).max_msg_size(8).create("far").expect("create");
    let mut p = t.publisher().expect("publisher");
    for i in 0..12u8 {
        p.try_publish(&[i]).expect("publish (no reliable subscriber: never full)");
    }
    let file = OpenOptions::new().write(true).open(t.path()).expect("open the segment file");
    file.write_all_at(&(u64::MAX - (1 << 40)).to_le_bytes(), 128).expect("overwrite control.tail");
    let mut sub = t.subscriber().build().expect("reliable subscriber");
    let (tx, rx) = std::sync::mpsc::channel();
    // The call runs on its own thread so that a hang fails this test instead of the binary.
    std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.try_recv(&mut buf).map(|m| m.len)));
        let _ = tx.send(r.map_err(|_| "panicked"));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(r)) => eprintln!("try_recv returned {r:?}"),
        Ok(Err(p)) => panic!("try_recv {p}"),
        Err(_) => panic!("try_recv of a new reliable subscriber at tail u64::MAX - 2^40 did not return within 20 s"),
    }
}
