//! Named segments: naming rule, creation, opening with full header validation, removal.
//!
//! A user name `orders` lives in the file `<dir>/shmq.orders`, where `<dir>` is the builder's
//! directory, else `$SHMQ_DIR`, else `/dev/shm`. Whoever creates a segment does not own its
//! lifetime: it lives until someone removes it (`unlink`, `shmq rm`, `shmq gc`), so a restarted
//! process finds its queue and the messages in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{
    Header, Kind, Offsets, CONTROL_OFFSET, CONTROL_SIZE, INIT_BUSY, INIT_READY, LINE, MAGIC, MAX_CAPACITY, MAX_MSG,
    MAX_PARTICIPANTS, MAX_SEGMENT, VERSION,
};
use crate::os::{self, Created, Mapping, Opened};
use crate::participants::Participants;
use crate::ring::MappedRing;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// File name prefix of every segment.
pub const PREFIX: &str = "shmq.";
/// Longest user name.
pub const MAX_NAME: usize = 200;
/// Largest subscriber table.
pub const MAX_SUBSCRIBERS: u32 = 1024;

/// Checks a user name against the rule: 1 to 200 bytes of `[A-Za-z0-9._-]`, not starting
/// with `.`. Such a name cannot contain `/`, so it cannot leave the segment directory.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME {
        "it is longer than 200 bytes"
    } else if name.starts_with('.') {
        "it starts with '.'"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        "it contains a character outside [A-Za-z0-9._-]"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { name: name.to_string(), reason })
}

/// The file of segment `name` in `dir`.
pub fn segment_path(dir: &Path, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    Ok(dir.join(format!("{PREFIX}{name}")))
}

/// The configuration of a segment, as created or as validated at open. Trusted: never
/// re-read from shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// What the segment holds.
    pub kind: Kind,
    /// Slots, a power of two >= 2.
    pub capacity: u64,
    /// Maximum payload bytes.
    pub max_msg: u32,
    /// Participant table entries.
    pub max_participants: u32,
    /// Subscriber table entries (topics).
    pub max_subscribers: u32,
}

impl Config {
    /// Checks ranges; returns the offsets of this configuration.
    pub fn validate(&self) -> Result<Offsets> {
        if self.capacity < 2 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return Err(Error::InvalidConfig(format!(
                "capacity {} must be a power of two from 2 to 2^30",
                self.capacity
            )));
        }
        if self.max_msg > MAX_MSG {
            return Err(Error::InvalidConfig(format!(
                "max message size {} exceeds the limit of {MAX_MSG} bytes",
                self.max_msg
            )));
        }
        if self.max_participants == 0 || self.max_participants > MAX_PARTICIPANTS {
            return Err(Error::InvalidConfig(format!(
                "participant table size {} must be from 1 to {MAX_PARTICIPANTS}",
                self.max_participants
            )));
        }
        if self.max_subscribers > MAX_SUBSCRIBERS || (self.kind != Kind::Topic && self.max_subscribers != 0) {
            return Err(Error::InvalidConfig(format!(
                "max subscribers {} must be from 1 to {MAX_SUBSCRIBERS} for topics, 0 for queues",
                self.max_subscribers
            )));
        }
        Offsets::compute(self.capacity, self.max_msg, self.max_participants, self.max_subscribers)
            .ok_or_else(|| Error::InvalidConfig(format!("a segment of this size would exceed {MAX_SEGMENT} bytes")))
    }
}

/// A mapped, validated segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The user name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Validated configuration.
    pub config: Config,
    /// Where things are.
    pub offsets: Offsets,
    /// Creator pid and start time.
    pub creator: (u32, u64),
    /// Creation time, ns since the Unix epoch.
    pub created_unix_ns: u64,
    /// The mapping.
    pub map: Arc<Mapping>,
}

/// What an opener expects of a segment (`None` = accept what is there).
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect {
    /// Allowed kinds (empty = any).
    pub kinds: &'static [Kind],
    /// Exact capacity.
    pub capacity: Option<u64>,
    /// Exact max message size.
    pub max_msg: Option<u32>,
    /// Exact subscriber table size.
    pub max_subscribers: Option<u32>,
}

fn header(map: &Mapping) -> &Header {
    // SAFETY: every mapping we validate is at least CONTROL_OFFSET + CONTROL_SIZE bytes and
    // page aligned, so the header (128 bytes, 128-aligned) is inside and aligned; it is all
    // atomics, valid for any bit pattern.
    unsafe { &*map.as_ptr().cast::<Header>() }
}

const MIN_LEN: usize = CONTROL_OFFSET + CONTROL_SIZE;

impl Segment {
    /// Creates segment `name` in `dir`. `init` fills the ring's slots before the segment is
    /// published as ready. `Ok(None)` if it already exists.
    pub fn create(
        dir: &Path,
        name: &str,
        config: Config,
        mode: u32,
        init: impl FnOnce(&Segment),
    ) -> Result<Option<Segment>> {
        let path = segment_path(dir, name)?;
        let offsets = config.validate()?;
        let map = match os::create_segment(&path, offsets.total as usize, mode)? {
            Created::Exists => return Ok(None),
            Created::New(m) => Arc::new(m),
        };
        let map2 = map.clone();
        let h = header(&map2);
        let (pid, start) = (os::pid(), os::own_start_time());
        // Who is creating goes first, so that an opener can tell a dead creator.
        h.creator_pid.store(pid, Relaxed);
        h.creator_start.store(start, Relaxed);
        h.magic.store(MAGIC, Relaxed);
        h.version.store(VERSION, Relaxed);
        h.kind.store(config.kind as u32, Relaxed);
        h.line.store(LINE as u32, Relaxed);
        h.max_msg.store(config.max_msg, Relaxed);
        h.capacity.store(config.capacity, Relaxed);
        h.slot_stride.store(offsets.stride, Relaxed);
        h.max_participants.store(config.max_participants, Relaxed);
        h.max_subscribers.store(config.max_subscribers, Relaxed);
        h.participants_offset.store(offsets.participants, Relaxed);
        h.subscribers_offset.store(offsets.subscribers, Relaxed);
        h.slots_offset.store(offsets.slots, Relaxed);
        h.total_size.store(offsets.total, Relaxed);
        let created = os::now_unix_ns();
        h.created_unix_ns.store(created, Relaxed);
        let seg = Segment {
            name: name.to_string(),
            path,
            config,
            offsets,
            creator: (pid, start),
            created_unix_ns: created,
            map,
        };
        init(&seg);
        // Release, last: pairs with the Acquire load in `open`; everything above is visible
        // to an opener that sees READY.
        h.init.store(INIT_READY, Release);
        Ok(Some(seg))
    }

    /// Opens segment `name` in `dir`, waiting up to `ready_timeout` for a creator still
    /// initialising it, and validates every header field.
    pub fn open(dir: &Path, name: &str, expect: &Expect, ready_timeout: Duration) -> Result<Segment> {
        let path = segment_path(dir, name)?;
        let now = Instant::now();
        let deadline = now.checked_add(ready_timeout).unwrap_or(now + Duration::from_secs(86400 * 365));
        loop {
            let (map, _ino) = match os::open_segment(&path, MIN_LEN, MAX_SEGMENT as usize)? {
                Opened::Missing => return Err(Error::NotFound { name: name.into(), dir: dir.display().to_string() }),
                Opened::TooSmall { .. } => {
                    if Instant::now() >= deadline {
                        // The creator never got as far as sizing the file.
                        return Err(Error::Stale { name: name.into() });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Opened::Mapped { map, ino } => (Arc::new(map), ino),
            };
            let h = header(&map);
            let magic = h.magic.load(Relaxed);
            if magic != MAGIC && magic != 0 {
                return Err(Error::Incompatible {
                    what: "magic",
                    expected: format!("{MAGIC:#x} (a shmq segment)"),
                    found: format!("{magic:#x}"),
                });
            }
            // Acquire: pairs with the creator's Release store of READY.
            let init = h.init.load(Acquire);
            if init != INIT_READY {
                if init != INIT_BUSY {
                    return Err(Error::corrupted(format!("init state {init:#x} is neither busy nor ready")));
                }
                let (pid, start) = (h.creator_pid.load(Relaxed), h.creator_start.load(Relaxed));
                if pid != 0 && !os::process_alive(pid, start) {
                    return Err(Error::Stale { name: name.into() });
                }
                if Instant::now() >= deadline {
                    return Err(if pid == 0 { Error::Stale { name: name.into() } } else { Error::Timeout });
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            return Self::validate(name, path, map, expect);
        }
    }

    fn validate(name: &str, path: PathBuf, map: Arc<Mapping>, expect: &Expect) -> Result<Segment> {
        let h = header(&map);
        let incompatible = |what, expected: String, found: String| Error::Incompatible { what, expected, found };
        let version = h.version.load(Relaxed);
        if version != VERSION {
            return Err(incompatible("layout version", VERSION.to_string(), version.to_string()));
        }
        let line = h.line.load(Relaxed);
        if line != LINE as u32 {
            return Err(incompatible("cache-line alignment", LINE.to_string(), line.to_string()));
        }
        let raw_kind = h.kind.load(Relaxed);
        let kind = Kind::from_u32(raw_kind)
            .ok_or_else(|| incompatible("kind", "spsc, mpmc or topic".into(), raw_kind.to_string()))?;
        if !expect.kinds.is_empty() && !expect.kinds.contains(&kind) {
            let names: Vec<_> = expect.kinds.iter().map(|k| k.name()).collect();
            return Err(incompatible("kind", names.join(" or "), kind.name().into()));
        }
        let config = Config {
            kind,
            capacity: h.capacity.load(Relaxed),
            max_msg: h.max_msg.load(Relaxed),
            max_participants: h.max_participants.load(Relaxed),
            max_subscribers: h.max_subscribers.load(Relaxed),
        };
        let offsets =
            config.validate().map_err(|e| Error::corrupted(format!("header holds an invalid configuration: {e}")))?;
        if let Some(c) = expect.capacity.filter(|&c| c != config.capacity) {
            return Err(incompatible("capacity", c.to_string(), config.capacity.to_string()));
        }
        if let Some(m) = expect.max_msg.filter(|&m| m != config.max_msg) {
            return Err(incompatible("max message size", m.to_string(), config.max_msg.to_string()));
        }
        if let Some(s) = expect.max_subscribers.filter(|&s| s != config.max_subscribers) {
            return Err(incompatible("max subscribers", s.to_string(), config.max_subscribers.to_string()));
        }
        let stored = [
            ("slot stride", offsets.stride, h.slot_stride.load(Relaxed)),
            ("participants offset", offsets.participants, h.participants_offset.load(Relaxed)),
            ("subscribers offset", offsets.subscribers, h.subscribers_offset.load(Relaxed)),
            ("slots offset", offsets.slots, h.slots_offset.load(Relaxed)),
            ("total size", offsets.total, h.total_size.load(Relaxed)),
        ];
        for (what, expected, found) in stored {
            if expected != found {
                return Err(incompatible(what, expected.to_string(), found.to_string()));
            }
        }
        if offsets.total > map.len() as u64 {
            return Err(incompatible("file size", offsets.total.to_string(), map.len().to_string()));
        }
        Ok(Segment {
            name: name.to_string(),
            path,
            config,
            offsets,
            creator: (h.creator_pid.load(Relaxed), h.creator_start.load(Relaxed)),
            created_unix_ns: h.created_unix_ns.load(Relaxed),
            map,
        })
    }

    /// The segment header.
    pub fn header(&self) -> &Header {
        header(&self.map)
    }

    /// The ring of this segment.
    pub fn ring(&self) -> MappedRing {
        // SAFETY: `config.validate()` checked the capacity (power of two) and computed
        // `offsets` so that slots_offset + capacity * stride <= total <= map.len() (checked in
        // `validate`/at creation); stride = round_up(16 + max_msg, 64) is a multiple of 8.
        unsafe {
            MappedRing::new(
                self.map.clone(),
                self.offsets.slots as usize,
                self.offsets.stride as usize,
                self.config.capacity,
                self.config.max_msg as usize,
            )
        }
    }

    /// The participant table.
    pub(crate) fn participants(&self) -> Participants {
        Participants::new(self.map.clone(), self.offsets.participants as usize, self.config.max_participants)
    }

    /// Removes the segment's file (mappings stay valid until dropped).
    pub fn unlink(&self) -> Result<bool> {
        os::unlink(&self.path)
    }
}

/// Removes segment `name` from `dir`. `Ok(false)` if there was none.
pub fn remove(dir: &Path, name: &str) -> Result<bool> {
    os::unlink(&segment_path(dir, name)?)
}

/// Names of every segment file in `dir` (user names, without the prefix), sorted.
pub fn list_names(dir: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(PREFIX)).map(str::to_string))
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}
