//! Where everything is in a segment, and the corrupter the hostile tests share: random writes of
//! plausible and implausible values into the header, the control block, the participant and
//! subscriber tables and the slots, through a [`RawMap`] (as another process could write them).
//!
//! The field tables follow `src/layout.rs` (whose compile-time checks pin the offsets). The
//! fuzz loops pick fields from them with proptest strategies; the hostile sweeps and the hostile
//! writer process pick with a [`Corrupter`], each with its own [`Weights`].

use shmq::layout::{self, slot};

use crate::raw::RawMap;
use crate::rng::Rng;

/// A field of a shared structure: name, offset (in the segment, or in its entry or slot), width
/// in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// `header.magic`, `control.tail`, `participant.pid`, ...
    pub name: &'static str,
    /// Offset: in the segment (header, control), or in the entry or slot (the others).
    pub offset: u64,
    /// 8, 4 or 1 bytes.
    pub width: usize,
}

const fn f(name: &'static str, offset: u64, width: usize) -> Field {
    Field { name, offset, width }
}

/// The header's fields, in order.
pub const HEADER: &[Field] = &[
    f("header.magic", 0, 8),
    f("header.version", 8, 4),
    f("header.kind", 12, 4),
    f("header.init", 16, 4),
    f("header.line", 20, 4),
    f("header.creator_pid", 24, 4),
    f("header.max_msg", 28, 4),
    f("header.creator_start", 32, 8),
    f("header.capacity", 40, 8),
    f("header.slot_stride", 48, 8),
    f("header.max_participants", 56, 4),
    f("header.max_subscribers", 60, 4),
    f("header.participants_offset", 64, 8),
    f("header.subscribers_offset", 72, 8),
    f("header.slots_offset", 80, 8),
    f("header.total_size", 88, 8),
    f("header.created_unix_ns", 96, 8),
    f("header.producer_holder", 104, 4),
    f("header.consumer_holder", 108, 4),
];

/// The ring control block's fields: `tail` and `head` first.
pub const CONTROL: &[Field] = &[
    f("control.tail", 128, 8),
    f("control.head", 256, 8),
    f("control.data.seq", 384, 4),
    f("control.data.sleepers", 388, 4),
    f("control.space.seq", 512, 4),
    f("control.space.sleepers", 516, 4),
    f("control.stats.aborted", 640, 8),
    f("control.stats.abandoned", 648, 8),
    f("control.stats.lost_by_crash", 656, 8),
    f("control.stats.full_events", 664, 8),
    f("control.stats.blocked_ns", 672, 8),
    f("control.stats+40 (padding)", 680, 8),
];

/// A participant entry's fields (offsets in the entry).
pub const PARTICIPANT: &[Field] = &[
    f("state", 0, 4),
    f("pid", 4, 4),
    f("start_time", 8, 8),
    f("roles", 16, 4),
    f("reserved", 20, 4),
    f("last_activity_ns", 24, 8),
    f("attached_unix_ns", 32, 8),
    f("sleeping_data+sleeping_space", 40, 8),
];

/// A subscriber entry's fields (offsets in the entry).
pub const SUBSCRIBER: &[Field] = &[
    f("cursor", 0, 8),
    f("delivered", 8, 8),
    f("lagged", 16, 8),
    f("last_activity_ns", 24, 8),
    f("state", 128, 4),
    f("mode", 132, 4),
    f("pid", 136, 4),
    f("name_len", 140, 4),
    f("start_time", 144, 8),
    f("name", 192, 8),
];

/// A slot's state word (offset in the slot).
pub const SLOT_STATE: Field = f("state", 0, 8);
/// A slot's payload length (offset in the slot).
pub const SLOT_LEN: Field = f("len", 8, 4);
/// A slot's kind tag (offset in the slot).
pub const SLOT_KIND: Field = f("kind", 12, 4);

/// The header or control block field called `name` (`header.magic`, `control.tail`, ...).
///
/// # Panics
/// If there is none.
pub fn field(name: &str) -> Field {
    *HEADER.iter().chain(CONTROL).find(|f| f.name == name).unwrap_or_else(|| panic!("no segment field {name}"))
}

/// Values worth trying in any field.
pub const EDGES: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    64,
    128,
    u64::MAX,
    u64::MAX - 1,
    1 << 31,
    1 << 32,
    1 << 47,
    1 << 48,
    i64::MAX as u64,
    layout::INIT_READY as u64,
];

/// Where things are in one segment, read from its header (before it is corrupted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Slots.
    pub capacity: u64,
    /// Largest payload.
    pub max_msg: u64,
    /// Bytes per slot.
    pub stride: u64,
    /// Participant table: offset, entries.
    pub participants: u64,
    /// Entries in the participant table.
    pub max_participants: u64,
    /// Subscriber table: offset.
    pub subscribers: u64,
    /// Entries in the subscriber table (0 for queues).
    pub max_subscribers: u64,
    /// Offset of slot 0.
    pub slots: u64,
    /// Offset of slot 0's payload (right after its header, or the payload array of split slots).
    pub payloads: u64,
    /// Bytes from one payload to the next.
    pub payload_stride: u64,
    /// Bytes mapped.
    pub size: u64,
}

impl Geometry {
    /// Reads the geometry from the header of the segment `map` maps.
    pub fn read(map: &RawMap) -> Geometry {
        let get = |name: &str| {
            let f = field(name);
            map.load(f.offset, f.width)
        };
        let mut g = Geometry {
            capacity: get("header.capacity"),
            max_msg: get("header.max_msg"),
            stride: get("header.slot_stride"),
            participants: get("header.participants_offset"),
            max_participants: get("header.max_participants"),
            subscribers: get("header.subscribers_offset"),
            max_subscribers: get("header.max_subscribers"),
            slots: get("header.slots_offset"),
            payloads: 0,
            payload_stride: 0,
            size: map.len() as u64,
        };
        // Where the payloads are follows from the configuration (as `open` derives it); a header
        // too broken to compute it from is taken as inline slots.
        let computed = layout::Offsets::compute(
            g.capacity,
            g.max_msg as u32,
            g.max_participants as u32,
            g.max_subscribers as u32,
            0,
        );
        // (Relative to the slots: what lies before them, group regions and dead-letter parts,
        // does not change where the payloads are after them.)
        match computed {
            Some(o) => (g.payloads, g.payload_stride) = (g.slots + (o.payloads - o.slots), o.payload_stride),
            None => (g.payloads, g.payload_stride) = (g.slots + layout::SLOT_HEADER as u64, g.stride),
        }
        g
    }

    /// Offset of slot `i`'s payload.
    pub fn payload(&self, i: u64) -> u64 {
        self.payloads + i * self.payload_stride
    }

    /// Offset of slot `i`.
    pub fn slot(&self, i: u64) -> u64 {
        self.slots + i * self.stride
    }

    /// Offset of participant entry `i`.
    pub fn participant(&self, i: u64) -> u64 {
        self.participants + i * layout::PARTICIPANT_SIZE as u64
    }

    /// Offset of subscriber entry `i`.
    pub fn subscriber(&self, i: u64) -> u64 {
        self.subscribers + i * layout::SUBSCRIBER_SIZE as u64
    }
}

/// How often a [`Corrupter`] hits each region (relative weights).
#[derive(Clone, Copy, Debug)]
pub struct Weights {
    /// Header fields.
    pub header: u64,
    /// `tail` and `head`.
    pub indices: u64,
    /// The rest of the control block: futex words, sleeper counts, counters.
    pub control: u64,
    /// Participant entries.
    pub participants: u64,
    /// Subscriber entries (segments without them: slot states instead).
    pub subscribers: u64,
    /// Slot state words.
    pub slot_state: u64,
    /// Slot lengths.
    pub slot_len: u64,
    /// Slot kinds.
    pub slot_kind: u64,
    /// Payload bytes.
    pub payload: u64,
    /// A few random bytes anywhere in the segment.
    pub anywhere: u64,
}

impl Weights {
    /// For a few writes into a fresh queue, then every operation once (the hostile sweeps): the
    /// header and control block as often as the slots.
    pub const SWEEP: Weights = Weights {
        header: 20,
        indices: 4,
        control: 16,
        participants: 10,
        subscribers: 0,
        slot_state: 15,
        slot_len: 7,
        slot_kind: 10,
        payload: 8,
        anywhere: 10,
    };

    /// For a stream of writes into a live segment (the hostile writer process): mostly the
    /// slots and tables, rarely the header (a broken header stops a segment for good).
    pub const LIVE: Weights = Weights {
        header: 4,
        indices: 2,
        control: 3,
        participants: 11,
        subscribers: 12,
        slot_state: 30,
        slot_len: 15,
        slot_kind: 5,
        payload: 13,
        anywhere: 5,
    };
}

/// One write into a segment, as a [`Corrupter`] made it.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The region hit (`header`, `slot state`, ...).
    pub region: &'static str,
    /// What exactly (`header.capacity`, `slot[3].len`, ...).
    pub what: String,
    /// Where.
    pub offset: u64,
    /// The bytes written there.
    pub bytes: Vec<u8>,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} @{} <- {:02x?}", self.what, self.offset, self.bytes)
    }
}

/// Random writes into one segment: a field (or a few bytes) chosen by [`Weights`], a value
/// near the current one, near a value the field could plausibly hold, an edge value, or random
/// bits. Everything it writes goes through its [`RawMap`], with one store per field.
pub struct Corrupter {
    map: RawMap,
    g: Geometry,
    weights: Weights,
}

impl Corrupter {
    /// A corrupter of the segment `map` maps, whose geometry is read now (before any write).
    pub fn new(map: RawMap, weights: Weights) -> Corrupter {
        let g = Geometry::read(&map);
        Corrupter { map, g, weights }
    }

    /// The segment's geometry, as read before the first write.
    pub fn geometry(&self) -> &Geometry {
        &self.g
    }

    /// The mapping it writes through.
    pub fn map(&self) -> &RawMap {
        &self.map
    }

    /// Makes one random write; returns what it wrote.
    pub fn hit(&self, rng: &mut Rng) -> Hit {
        let (g, w) = (&self.g, &self.weights);
        let cap = g.capacity.max(1);
        let regions = [
            w.header,
            w.indices,
            w.control,
            w.participants,
            w.subscribers,
            w.slot_state,
            w.slot_len,
            w.slot_kind,
            w.payload,
            w.anywhere,
        ];
        let mut roll = rng.below(regions.iter().sum());
        let mut region = 0;
        while roll >= regions[region] {
            roll -= regions[region];
            region += 1;
        }
        if region == 4 && g.max_subscribers == 0 {
            region = 5; // no subscriber table: hit the slot states instead
        }
        let (tail, head) = (self.map.load(CONTROL[0].offset, 8), self.map.load(CONTROL[1].offset, 8));
        match region {
            0 => {
                let &fl = rng.pick(HEADER);
                let near = [g.capacity, g.max_msg, g.stride, g.slots, g.size, layout::INIT_READY as u64, 1, 2, 3, 64];
                self.field("header", fl.name.to_string(), fl.offset, fl.width, rng, &near)
            }
            1 | 2 => {
                let &fl = if region == 1 { rng.pick(&CONTROL[..2]) } else { rng.pick(&CONTROL[2..]) };
                let near = [
                    tail,
                    head,
                    tail.wrapping_add(cap),
                    head.wrapping_add(cap),
                    head.wrapping_sub(cap),
                    tail.wrapping_sub(cap),
                    0,
                ];
                let name = if region == 1 { "tail/head" } else { "control" };
                self.field(name, fl.name.to_string(), fl.offset, fl.width, rng, &near)
            }
            3 => {
                let entries = if rng.below(2) == 0 { 4 } else { g.max_participants.clamp(1, 4096) };
                let i = rng.below(entries);
                let &fl = rng.pick(PARTICIPANT);
                let near = [0, 1, 2, std::process::id() as u64];
                let what = format!("participant[{i}].{}", fl.name);
                self.field("participants", what, g.participant(i) + fl.offset, fl.width, rng, &near)
            }
            4 => {
                let i = rng.below(g.max_subscribers.min(4096));
                let &fl = rng.pick(SUBSCRIBER);
                let near = [0, 1, 2, 3, std::process::id() as u64, tail];
                let what = format!("subscriber[{i}].{}", fl.name);
                self.field("subscribers", what, g.subscriber(i) + fl.offset, fl.width, rng, &near)
            }
            5 => {
                let i = rng.below(cap);
                let at = g.slot(i);
                let v = state_value(rng, self.map.load(at, 8), [tail, head, i], cap);
                self.store("slot state", format!("slot[{i}].state"), at, 8, v)
            }
            6 => {
                let i = rng.below(cap);
                let at = g.slot(i) + SLOT_LEN.offset;
                let max = g.max_msg;
                let v = match rng.below(4) {
                    0 => max + 1 + rng.below(4),
                    1 => rng.below(max + 1),
                    _ => value(rng, self.map.load(at, 4), &[max, max + 1, 0, 4]),
                };
                self.store("slot len", format!("slot[{i}].len"), at, 4, v)
            }
            7 => {
                let i = rng.below(cap);
                let at = g.slot(i) + SLOT_KIND.offset;
                let v = value(rng, self.map.load(at, 4), &[]);
                self.store("slot kind", format!("slot[{i}].kind"), at, 4, v)
            }
            8 => {
                let i = rng.below(cap);
                let into = rng.below(g.max_msg.max(1));
                let at = g.payload(i) + into;
                let n = (1 + rng.below(g.max_msg.clamp(1, 32))).min(g.size.saturating_sub(at));
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                self.write("payload", format!("slot[{i}].payload+{into}"), at, &bytes)
            }
            _ => {
                let n = rng.below(16) + 1;
                let at = rng.below(g.size - n);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                self.write("anywhere", "random bytes".into(), at, &bytes)
            }
        }
    }

    fn field(&self, region: &'static str, what: String, offset: u64, width: usize, rng: &mut Rng, near: &[u64]) -> Hit {
        let v = value(rng, self.map.load(offset, width), near);
        self.store(region, what, offset, width, v)
    }

    /// Stores a field (`width` bytes at an aligned `offset`) with one atomic store.
    fn store(&self, region: &'static str, what: String, offset: u64, width: usize, value: u64) -> Hit {
        self.map.store(offset, width, value);
        Hit { region, what, offset, bytes: value.to_le_bytes()[..width].to_vec() }
    }

    /// Writes bytes anywhere, one at a time.
    fn write(&self, region: &'static str, what: String, offset: u64, bytes: &[u8]) -> Hit {
        self.map.write_bytes(offset, bytes);
        Hit { region, what, offset, bytes: bytes.to_vec() }
    }
}

/// A new value for a field holding `current`: near it, near one of `near` (values the field
/// could plausibly hold), an edge value, a small number, or random bits.
pub fn value(rng: &mut Rng, current: u64, near: &[u64]) -> u64 {
    let around = |rng: &mut Rng, v: u64| v.wrapping_add(rng.below(9)).wrapping_sub(4);
    match rng.below(10) {
        0..=2 => around(rng, current),
        3 | 4 if !near.is_empty() => {
            let v = *rng.pick(near);
            around(rng, v)
        }
        3 | 4 => around(rng, current),
        5 | 6 => *rng.pick(EDGES),
        7 => rng.below(300),
        _ => rng.next_u64(),
    }
}

/// A new state word for slot `indices[2]` holding `current`: mostly a plausible one (a position
/// near the current one or near `tail`, `head` (`indices[0..2]`) or the slot's index, any tag,
/// a small claimer), sometimes random bits.
pub fn state_value(rng: &mut Rng, current: u64, indices: [u64; 3], capacity: u64) -> u64 {
    let seq = match rng.below(5) {
        0 => return rng.next_u64(),
        1 | 2 => {
            let seq = current >> 16;
            let delta = *rng.pick(&[1, 2, capacity - 1, capacity, capacity + 1, 2 * capacity, 1 << 20]);
            match rng.below(4) {
                0 => seq,
                1 => seq.wrapping_sub(delta),
                _ => seq.wrapping_add(delta),
            }
        }
        _ => {
            let [tail, head, i] = indices;
            let starts = [tail, head, tail.wrapping_add(capacity), head.wrapping_add(capacity), i];
            let pos = rng.pick(&starts).wrapping_add(rng.below(2 * capacity + 5));
            pos.wrapping_sub(capacity + 2)
        }
    };
    slot::pack(seq, rng.below(16), rng.below(6) as u16)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::mem::offset_of;

    use shmq::layout::{Header, Participant, RingControl, SlotHeader, Subscriber, CONTROL_OFFSET};

    use super::*;

    /// Checks that the table's fields named in `want` are at those offsets.
    fn at(table: &[Field], want: &[(&str, usize)]) {
        for &(name, offset) in want {
            let f = table.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no field {name}"));
            assert_eq!(f.offset, offset as u64, "offset of {name}");
        }
    }

    #[test]
    fn field_tables_match_the_layout() {
        assert_eq!(HEADER.len(), 19, "every header field, in order");
        at(
            HEADER,
            &[
                ("header.magic", offset_of!(Header, magic)),
                ("header.version", offset_of!(Header, version)),
                ("header.kind", offset_of!(Header, kind)),
                ("header.init", offset_of!(Header, init)),
                ("header.line", offset_of!(Header, line)),
                ("header.creator_pid", offset_of!(Header, creator_pid)),
                ("header.max_msg", offset_of!(Header, max_msg)),
                ("header.creator_start", offset_of!(Header, creator_start)),
                ("header.capacity", offset_of!(Header, capacity)),
                ("header.slot_stride", offset_of!(Header, slot_stride)),
                ("header.max_participants", offset_of!(Header, max_participants)),
                ("header.max_subscribers", offset_of!(Header, max_subscribers)),
                ("header.participants_offset", offset_of!(Header, participants_offset)),
                ("header.subscribers_offset", offset_of!(Header, subscribers_offset)),
                ("header.slots_offset", offset_of!(Header, slots_offset)),
                ("header.total_size", offset_of!(Header, total_size)),
                ("header.created_unix_ns", offset_of!(Header, created_unix_ns)),
                ("header.producer_holder", offset_of!(Header, producer_holder)),
                ("header.consumer_holder", offset_of!(Header, consumer_holder)),
            ],
        );
        let c = CONTROL_OFFSET;
        at(
            CONTROL,
            &[
                ("control.tail", c + offset_of!(RingControl, tail)),
                ("control.head", c + offset_of!(RingControl, head)),
                ("control.data.seq", c + offset_of!(RingControl, data.0.seq)),
                ("control.data.sleepers", c + offset_of!(RingControl, data.0.sleepers)),
                ("control.space.seq", c + offset_of!(RingControl, space.0.seq)),
                ("control.space.sleepers", c + offset_of!(RingControl, space.0.sleepers)),
                ("control.stats.aborted", c + offset_of!(RingControl, stats.0.aborted)),
                ("control.stats.abandoned", c + offset_of!(RingControl, stats.0.abandoned)),
                ("control.stats.lost_by_crash", c + offset_of!(RingControl, stats.0.lost_by_crash)),
                ("control.stats.full_events", c + offset_of!(RingControl, stats.0.full_events)),
                ("control.stats.blocked_ns", c + offset_of!(RingControl, stats.0.blocked_ns)),
            ],
        );
        at(
            PARTICIPANT,
            &[
                ("state", offset_of!(Participant, state)),
                ("pid", offset_of!(Participant, pid)),
                ("start_time", offset_of!(Participant, start_time)),
                ("roles", offset_of!(Participant, roles)),
                ("reserved", offset_of!(Participant, reserved32)),
                ("last_activity_ns", offset_of!(Participant, last_activity_ns)),
                ("attached_unix_ns", offset_of!(Participant, attached_unix_ns)),
                ("sleeping_data+sleeping_space", offset_of!(Participant, sleeping_data)),
            ],
        );
        at(
            SUBSCRIBER,
            &[
                ("cursor", offset_of!(Subscriber, cursor)),
                ("delivered", offset_of!(Subscriber, delivered)),
                ("lagged", offset_of!(Subscriber, lagged)),
                ("last_activity_ns", offset_of!(Subscriber, last_activity_ns)),
                ("state", offset_of!(Subscriber, state)),
                ("mode", offset_of!(Subscriber, mode)),
                ("pid", offset_of!(Subscriber, pid)),
                ("name_len", offset_of!(Subscriber, name_len)),
                ("start_time", offset_of!(Subscriber, start_time)),
                ("name", offset_of!(Subscriber, name)),
            ],
        );
        at(
            &[SLOT_STATE, SLOT_LEN, SLOT_KIND],
            &[
                ("state", offset_of!(SlotHeader, state)),
                ("len", offset_of!(SlotHeader, len)),
                ("kind", offset_of!(SlotHeader, kind)),
            ],
        );
    }
}

/// Flips one bit of the byte at `offset` of `file` (a damaged journal record, a bad header).
pub fn flip_byte(file: &std::path::Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(file).expect("open the file to damage");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read the byte to flip");
    f.write_all_at(&[b[0] ^ 0x40], offset).expect("write the flipped byte");
}
