//! Arbitrary segment images, opened every way; the layout arithmetic validation relies on; and
//! the unready images the generator makes rare.

use std::cell::Cell;
use std::time::Duration;

use proptest::prelude::*;
use shmq::layout::{self, slot, Offsets, INIT_BUSY, INIT_READY, MAGIC, VERSION};
use shmq::segment::{Expect, Segment};
use shmq::Error;
use shmq_test_support::corrupt::{EDGES, HEADER};
use shmq_test_support::{Rng, Scene};

use super::{check, next_name, open_every_way, READY};

/// Largest file an arbitrary image is written to.
const MAX_IMAGE: u64 = 1 << 20;

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
    /// Header fields set to arbitrary values: (index into `HEADER`, value).
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
    let field = (0..HEADER.len(), prop_oneof![1 => prop::sample::select(EDGES.to_vec()), 1 => any::<u64>()]);
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
            Offsets::compute(self.capacity, self.max_msg, self.participants.min(1 << 20), subscribers.min(1 << 20), 0);
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
                let mut rng = Rng::new(seed);
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
        let o = offsets.unwrap_or(Offsets {
            participants: 768,
            subscribers: 768,
            slots: 768,
            stride: 64,
            payloads: 784,
            payload_stride: 64,
            service: None,
            dead_letters: None,
            groups: None,
            total,
        });
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
        for (f, &value) in HEADER.iter().zip(header.iter()) {
            put(&mut buf, f.offset, f.width, value);
        }
        for &(field, value) in &self.overrides {
            let f = HEADER[field];
            put(&mut buf, f.offset, f.width, value);
        }
        for &(at, width, value) in &self.pokes {
            let offset = (at as u64 * len as u64) >> 32;
            put(&mut buf, offset & !(width as u64 - 1), width, value);
        }
        buf
    }
}

/// `Offsets::compute` is what validation derives every offset from: for any configuration it
/// returns `None` or a layout that fits (no overflow, nothing overlaps, within `MAX_SEGMENT`).
#[test]
fn offsets_of_any_configuration_are_none_or_a_layout_that_fits() {
    let max_msg =
        prop_oneof![1 => any::<u32>(), 1 => prop::sample::select(vec![0u32, 48, 49, 64, 112, 256, 4080, 4096])];
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
        let capacity = match (cap, Offsets::compute(2, max_msg, participants, subscribers, 0)) {
            (Cap::Far(d), Some(o)) => (u64::MAX - o.slots).saturating_sub(d) / o.stride,
            (Cap::Far(d), None) => u64::MAX - d,
            (Cap::Any(c), _) => c,
        };
        (capacity, max_msg, participants, subscribers)
    });
    check("offsets", 1000, None, strategy, |(capacity, max_msg, participants, subscribers)| {
        if let Some(o) = Offsets::compute(capacity, max_msg, participants, subscribers, 0) {
            let slots_end = capacity as u128 * o.stride as u128 + o.slots as u128;
            assert!(o.total <= layout::MAX_SEGMENT && slots_end <= o.total as u128, "{o:?}");
            assert!(o.participants + participants as u64 * layout::PARTICIPANT_SIZE as u64 <= o.subscribers, "{o:?}");
            assert!(o.subscribers + subscribers as u64 * layout::SUBSCRIBER_SIZE as u64 <= o.slots, "{o:?}");
            let payloads_end = (capacity as u128 - 1) * o.payload_stride as u128 + o.payloads as u128 + max_msg as u128;
            assert!(payloads_end <= o.total as u128 && o.payload_stride >= max_msg as u64, "{o:?}");
            if o.payloads == o.slots + layout::SLOT_HEADER as u64 {
                // Inline: each payload follows its header inside the slot.
                assert!(
                    o.stride >= layout::SLOT_HEADER as u64 + max_msg as u64 && o.payload_stride == o.stride,
                    "{o:?}"
                );
            } else {
                // Split: the payload array starts after the header array, on a line.
                assert!(o.stride == layout::SLOT_HEADER as u64 && slots_end <= o.payloads as u128, "{o:?}");
                assert!(o.payloads % layout::LINE as u64 == 0 && o.payload_stride % 64 == 0, "{o:?}");
            }
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

/// `open` of a file that is too short or still being initialised waits at most its ready
/// timeout; these are the inputs the image generator makes rare, checked once each here.
#[test]
fn unready_and_unsized_images_end_in_stale_or_timeout_errors() {
    let scene = Scene::new("unready images", Duration::from_secs(60), Duration::from_secs(60));
    let d = scene.path();
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
