//! Named segments: naming rule, creation, opening with full header validation, removal.
//!
//! A user name `orders` lives in the file `<dir>/shmq.orders`, where `<dir>` is the builder's
//! directory, else `$SHMQ_DIR`, else `/dev/shm`. Whoever creates a segment does not own its
//! lifetime: it lives until someone removes it (`unlink`, `shmq rm`, `shmq gc`), so a restarted
//! process finds its queue and the messages in it.
//!
//! ## A name only ever shows a complete segment
//! A creator builds the segment in a file of its own (`.shmq-new.<pid>.<n>.<name>`), holding the
//! segment lock (see [`crate::layout::lock`]) from the moment the file exists: it reserves the
//! memory, maps it, writes the header and the ring, marks it ready, and only then gives it its
//! name with `link(2)`, which fails if the name exists. So an opener never sees a half-built
//! segment, concurrent creators of one name end on the same file (the losers drop theirs and
//! open the winner's), and `shmq gc` cannot remove a segment that is being created. A creator
//! that dies leaves an unnamed `.shmq-new.*` file, which `shmq gc` removes once nobody holds
//! its lock.
//!
//! A file under a segment name that is *not* complete (left by an older version, or planted)
//! is reported as [`Error::Stale`] when nobody holds its segment lock; replacing it takes the
//! lock and removes exactly that file (checked by inode), never whatever the name points to by
//! then.
//!
//! ## Attaching and removing exclude each other
//! A process attaches (takes its participant entry) while holding the segment lock shared and
//! checks, still holding it, that the name still leads to its file; `shmq gc` decides and
//! removes while holding it exclusive. So gc never removes a segment a process is attaching
//! to, and a process never attaches to a segment gc has removed (it opens the name again).
//!
//! ## Opening validates before it maps
//! `open` reads the header with `pread`, checks every field, the file's type, owner and size,
//! and maps exactly the size the header implies: a file that is not a complete segment of this
//! version is never mapped (nor its pages allocated).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

mod config;
pub use config::Config;

use crate::error::{Error, Result};
use crate::layout::{lock, Header, Kind, Offsets, CONTROL_OFFSET, CONTROL_SIZE, INIT_BUSY, INIT_READY, LINE, MAGIC, VERSION};
use crate::mapped_ring::MappedRing;
use crate::os::{self, File, Holder, Lock, Mapping};
use crate::participants::Participants;
use crate::sync::Ordering::{Relaxed, Release};

/// File name prefix of every segment.
pub const PREFIX: &str = "shmq.";
/// File name prefix of a segment being created (not yet linked under its name).
pub const UNFINISHED_PREFIX: &str = ".shmq-new.";
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

/// The two open descriptions of a segment file a process keeps (see `os`): one holds this
/// process's locks, the other asks about everybody's.
#[derive(Debug)]
pub(crate) struct Files {
    /// Holds our locks (participant and subscriber entries, the segment lock while attaching).
    pub(crate) lock: File,
    /// Asks whether a byte is locked by anyone (ourselves included).
    pub(crate) probe: File,
    /// The entry lock bytes `lock` holds. Locks of one open file description do not exclude
    /// each other, so threads of this process that share it (two subscribers of one `Topic`
    /// handle) keep count here, under the mutex, of whose byte is whose: one never takes, nor
    /// gives back, a lock a sibling holds.
    held: Mutex<HashSet<u64>>,
}

impl Files {
    pub(crate) fn new(lock: File, probe: File) -> Files {
        Files { lock, probe, held: Mutex::new(HashSet::new()) }
    }

    fn held(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives back an entry lock taken with [`take`](Self::take).
    pub(crate) fn release(&self, at: u64) {
        if self.held().remove(&at) {
            self.lock.unlock(at);
        }
    }

    /// Whether a process holds the lock of the entry at lock byte `at` (ourselves included).
    pub(crate) fn holder(&self, at: u64) -> Holder {
        self.probe.holder(at)
    }

    /// Takes the lock of the table entry whose lock byte is `at` and whose state word is
    /// `state`, if nobody holds it; returns the state word, unchanged since before the lock was
    /// free. `None` if somebody holds it, or the entry changed meanwhile.
    ///
    /// Several entries of one attachment (its subscribers) are locked through one open file
    /// description, whose locks do not exclude each other; so the lock is first asked about
    /// through the probe (which sees them), and the state word must be the same before the
    /// question and after the lock: an owner holds the lock for the whole life of its
    /// generation of the entry, and every new owner starts a new generation.
    pub(crate) fn take(&self, at: u64, state: &crate::sync::AtomicU32) -> Result<Option<u32>> {
        let mut held = self.held();
        if held.contains(&at) {
            return Ok(None); // a sibling thread owns it
        }
        let before = state.load(crate::sync::Ordering::Acquire);
        if self.probe.holder(at) != Holder::Free || !self.lock.lock(at, Lock::Write)? {
            return Ok(None);
        }
        if state.load(crate::sync::Ordering::Acquire) != before {
            self.lock.unlock(at);
            return Ok(None);
        }
        held.insert(at);
        Ok(Some(before))
    }
}

/// A mapped, validated segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) config: Config,
    pub(crate) offsets: Offsets,
    /// Creator pid and start time (information only).
    pub(crate) creator: (u32, u64),
    pub(crate) created_unix_ns: u64,
    pub(crate) map: Arc<Mapping>,
    pub(crate) files: Arc<Files>,
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
    /// Exact `max_deliveries` (queues).
    pub max_deliveries: Option<u32>,
}

fn header(map: &Mapping) -> &Header {
    // SAFETY: every mapping a Segment holds is at least CONTROL_OFFSET + CONTROL_SIZE bytes
    // (checked by `Config::validate` through `Offsets::compute`, and the map is of
    // `offsets.total`) and page aligned, so the header (128 bytes, 128-aligned) is inside and
    // aligned; it is all atomics, valid for any bit pattern.
    unsafe { &*map.as_ptr().cast::<Header>() }
}

/// The header fields as read with `pread` (a private copy: validated, then trusted).
struct RawHeader([u8; LINE]);

impl RawHeader {
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }
}

macro_rules! field {
    ($raw:expr, u32, $f:ident) => {
        $raw.u32(std::mem::offset_of!(Header, $f))
    };
    ($raw:expr, u64, $f:ident) => {
        $raw.u64(std::mem::offset_of!(Header, $f))
    };
}

/// What the header of a file says.
// Returned once per open and matched at once: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Found {
    /// A complete segment of this version; the configuration is validated.
    Ready { config: Config, offsets: Offsets, creator: (u32, u64), created_unix_ns: u64 },
    /// Not a complete segment: too short, or never marked ready.
    Unfinished,
}

/// A process-wide counter for unique temporary names.
static NONCE: StdAtomicU64 = StdAtomicU64::new(0);

impl Segment {
    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The validated configuration.
    pub fn config(&self) -> Config {
        self.config
    }
    /// Where everything lives.
    pub fn offsets(&self) -> Offsets {
        self.offsets
    }
    /// Pid of the creator (information only).
    pub fn creator_pid(&self) -> u32 {
        self.creator.0
    }
    /// Creation time, ns since the Unix epoch.
    pub fn created_unix_ns(&self) -> u64 {
        self.created_unix_ns
    }

    /// Creates segment `name` in `dir`. `init` fills the ring's slots before the segment is
    /// marked ready and given its name. `Ok(None)` if the name exists.
    ///
    /// The new segment's lock is held shared until the segment is dropped or attached (see the
    /// module docs), so `shmq gc` cannot remove it before its creator is attached.
    pub fn create(
        dir: &Path,
        name: &str,
        config: Config,
        mode: u32,
        init: impl FnOnce(&Segment),
    ) -> Result<Option<Segment>> {
        let path = segment_path(dir, name)?;
        let offsets = config.validate()?;
        if std::fs::symlink_metadata(&path).is_ok() {
            return Ok(None); // no need to build a whole segment to learn that
        }
        let (tmp, file) = Self::unfinished_file(dir, name, mode)?;
        let built = Self::build(&tmp, &path, name, file, config, offsets, dir, init);
        let _ = os::unlink(&tmp); // named (or failed): the temporary name goes either way
        built
    }

    /// A new file of our own to build a segment in, its segment lock held exclusive.
    fn unfinished_file(dir: &Path, name: &str, mode: u32) -> Result<(PathBuf, File)> {
        loop {
            let n = NONCE.fetch_add(1, Relaxed);
            let tmp = dir.join(format!("{UNFINISHED_PREFIX}{}.{n}.{name}", os::pid()));
            let Some(file) = File::create_new(&tmp, mode)? else { continue };
            // `shmq gc` may have taken the lock of this very file in the instant since it was
            // created (a dead creator's leftover, it thought): leave the file to it, take another.
            match file.lock(lock::SEGMENT, Lock::Write) {
                Ok(true) => return Ok((tmp, file)),
                Ok(false) => {}
                Err(e) => {
                    let _ = os::unlink(&tmp);
                    return Err(e);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        tmp: &Path,
        path: &Path,
        name: &str,
        file: File,
        config: Config,
        offsets: Offsets,
        dir: &Path,
        init: impl FnOnce(&Segment),
    ) -> Result<Option<Segment>> {
        file.reserve(offsets.total, dir)?;
        let map = Arc::new(file.map(offsets.total as usize)?);
        let probe =
            File::open(tmp)?.ok_or_else(|| Error::io("reopen new segment", std::io::ErrorKind::NotFound.into()))?;
        let mapped = map.clone();
        let h = header(&mapped);
        let (pid, start) = (os::pid(), os::own_start_time());
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
        h.max_response.store(config.max_response, Relaxed);
        h.max_deliveries.store(config.max_deliveries, Relaxed);
        h.flags.store(config.flags, Relaxed);
        h.max_groups.store(config.max_groups, Relaxed);
        h.participants_offset.store(offsets.participants, Relaxed);
        h.subscribers_offset.store(offsets.subscribers, Relaxed);
        h.slots_offset.store(offsets.slots, Relaxed);
        h.total_size.store(offsets.total, Relaxed);
        let created = os::now_unix_ns();
        h.created_unix_ns.store(created, Relaxed);
        let seg = Segment {
            name: name.to_string(),
            path: path.to_path_buf(),
            config,
            offsets,
            creator: (pid, start),
            created_unix_ns: created,
            map,
            files: Arc::new(Files::new(file, probe)),
        };
        init(&seg);
        // Release, last: pairs with the Acquire load of an attacher that reads the header from
        // the mapping (the opener's `pread` reads the file's pages, which these stores are).
        h.init.store(INIT_READY, Release);
        if !os::link(tmp, path)? {
            return Ok(None);
        }
        // Keep the segment lock, shared, until we are attached (converting ours keeps it
        // held throughout): gc cannot remove the segment in between.
        seg.files.lock.lock(lock::SEGMENT, Lock::Read)?;
        Ok(Some(seg))
    }

    /// Opens segment `name` in `dir` and validates every header field before mapping it.
    /// Waits up to `wait` while someone holds the segment lock of a file that is not (or no
    /// longer) a complete segment (a remover at work).
    pub fn open(dir: &Path, name: &str, expect: &Expect, wait: Duration) -> Result<Segment> {
        let path = segment_path(dir, name)?;
        let now = Instant::now();
        let deadline = now.checked_add(wait).unwrap_or(now + Duration::from_secs(86400 * 365));
        loop {
            let Some(file) = File::open(&path)? else {
                return Err(Error::NotFound { name: name.into(), dir: dir.display().to_string() });
            };
            let st = file.stat()?;
            check_file(&st, &path)?;
            match read_header(&file, st.size, expect)? {
                Found::Ready { config, offsets, creator, created_unix_ns } => {
                    if st.size != offsets.total {
                        return Err(Error::Incompatible {
                            what: "file size",
                            expected: format!("{} bytes (as its header says)", offsets.total),
                            found: format!("{} bytes", st.size),
                        });
                    }
                    // A second description of the same file, to ask about locks (see `os`).
                    let probe = File::open(&path)?.filter(|p| p.is_same(&st).unwrap_or(false));
                    let Some(probe) = probe else {
                        // The name was removed or given to another file meanwhile: start over.
                        if Instant::now() >= deadline {
                            return Err(Error::Timeout);
                        }
                        continue;
                    };
                    let map = Arc::new(file.map(offsets.total as usize)?);
                    return Ok(Segment {
                        name: name.to_string(),
                        path,
                        config,
                        offsets,
                        creator,
                        created_unix_ns,
                        map,
                        files: Arc::new(Files::new(file, probe)),
                    });
                }
                Found::Unfinished => {
                    // Segments get their name complete, so this file was left by a creator of
                    // an older version, or planted. Only a remover holding its lock is worth
                    // waiting for.
                    let e = unfinished(&file, name);
                    if matches!(e, Error::Corrupted(_)) || file.holder(lock::SEGMENT) == Holder::Free {
                        return Err(e);
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// The segment header (shared memory: any field may have been rewritten since it was
    /// validated; use [`Segment::config`] for the configuration).
    pub(crate) fn header(&self) -> &Header {
        header(&self.map)
    }

    /// The ring of this segment.
    pub(crate) fn ring(&self) -> MappedRing {
        // The fields are private to the crate and never change after construction.
        // SAFETY: validated config (capacity a power of two); `Offsets::compute` puts the
        // headers (16-byte multiples, from a 128-aligned slots offset >= 768) and then the
        // payloads (each payload_stride >= max_msg) below total == the mapping's length.
        unsafe { MappedRing::new(self.map.clone(), &self.offsets, self.config.capacity, self.config.max_msg as usize) }
    }

    /// A service's identity block (`None` for queues and topics).
    pub(crate) fn service_info(&self) -> Option<&crate::layout::ServiceInfo> {
        let o = self.offsets.service?;
        // SAFETY: `Offsets::compute` put the info block (SERVICE_INFO_SIZE bytes, 128-byte
        // aligned) inside the mapping, which is `offsets.total` long; it is all atomics.
        Some(unsafe { &*self.map.as_ptr().add(o.info as usize).cast::<crate::layout::ServiceInfo>() })
    }

    /// The dead-letter info block of a queue with dead letters, or of a dead-letter queue.
    pub(crate) fn dead_letter_info(&self) -> Option<&crate::layout::DeadLetterInfo> {
        let o = self.offsets.dead_letters?;
        // SAFETY: `Offsets::compute_with` put the info block (DEAD_LETTER_INFO_SIZE bytes,
        // 128-byte aligned) inside the mapping, which is `offsets.total` long; all atomics.
        Some(unsafe { &*self.map.as_ptr().add(o.info as usize).cast::<crate::layout::DeadLetterInfo>() })
    }

    /// The service parts of a service segment (`None` for queues and topics).
    pub(crate) fn service(&self) -> Option<crate::mapped_ring::MappedService> {
        let o = self.offsets.service?;
        // SAFETY: the offsets come from `Config::validate` (`Offsets::compute` with this
        // config's participants and max_response), which for a service also checked that the
        // capacity is a whole number of call slots per participant; `ring()` is built from the
        // same map and offsets.
        Some(unsafe {
            crate::mapped_ring::MappedService::new(
                &self.map,
                self.ring(),
                &o,
                self.config.max_participants as u16,
                self.config.max_response as usize,
            )
        })
    }

    /// The participant table.
    pub(crate) fn participants(&self) -> Participants {
        Participants::new(self.map.clone(), self.files.clone(), self.offsets, self.config.max_participants)
    }

    /// Removes the segment's file, if the name still leads to it (mappings stay valid until
    /// dropped). `Ok(false)` if the name is gone or leads to another segment now. Done under
    /// the segment lock (see [`unlink_exact`]).
    pub fn unlink(&self) -> Result<bool> {
        unlink_exact(&self.path, Some(&self.files.probe), REMOVE_WAIT)
    }

    /// Whether the name still leads to this segment.
    pub(crate) fn is_linked(&self) -> Result<bool> {
        self.files.probe.is_at(&self.path)
    }
}

impl File {
    /// Whether this is the file `st` describes.
    fn is_same(&self, st: &os::Stat) -> Result<bool> {
        let me = self.stat()?;
        Ok(me.ino == st.ino && me.dev == st.dev)
    }
}

/// Refuses what is not a regular file, and a file of another user unless its mode lets us in
/// deliberately (group or world read-write): root must not be able to attach, by its power to
/// override modes, to a file another user planted.
fn check_file(st: &os::Stat, path: &Path) -> Result<()> {
    if st.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::Incompatible {
            what: "file type",
            expected: "regular file".into(),
            found: "something else".into(),
        });
    }
    if st.uid != os::euid() {
        let group = os::in_group(st.gid) && st.mode & 0o060 == 0o060;
        let world = st.mode & 0o006 == 0o006;
        if !group && !world {
            return Err(Error::PermissionDenied { path: path.display().to_string() });
        }
    }
    Ok(())
}

/// What an unfinished file under a segment name is: [`Error::Corrupted`] if a process holds an
/// entry lock on it (processes are attached to a segment whose header was overwritten), else
/// [`Error::Stale`]. The segment lock (byte 0: a remover at work) and locks `file` itself holds
/// do not count.
fn unfinished(file: &File, name: &str) -> Error {
    match file.holder_from(lock::SEGMENT + 1) {
        Holder::Free => Error::Stale { name: name.into() },
        Holder::Held | Holder::Unknown => {
            Error::corrupted("the header is not marked ready, yet processes are attached (it was overwritten)")
        }
    }
}

/// Reads and validates the header of an open file of `size` bytes.
fn read_header(file: &File, size: u64, expect: &Expect) -> Result<Found> {
    let mut raw = RawHeader([0; LINE]);
    if size < (CONTROL_OFFSET + CONTROL_SIZE) as u64 || !file.read_at(&mut raw.0, 0)? {
        return Ok(Found::Unfinished);
    }
    let incompatible = |what, expected: String, found: String| Error::Incompatible { what, expected, found };
    let magic = field!(raw, u64, magic);
    if magic == 0 {
        return Ok(Found::Unfinished);
    }
    if magic != MAGIC {
        return Err(incompatible("magic", format!("{MAGIC:#x} (a shmq segment)"), format!("{magic:#x}")));
    }
    // Nothing else in a header is meaningful before its creator marked it ready.
    match field!(raw, u32, init) {
        INIT_READY => {}
        INIT_BUSY => return Ok(Found::Unfinished),
        init => return Err(Error::corrupted(format!("init state {init:#x} is neither busy nor ready"))),
    }
    let version = field!(raw, u32, version);
    if version != VERSION {
        return Err(incompatible("layout version", VERSION.to_string(), version.to_string()));
    }
    let line = field!(raw, u32, line);
    if line != LINE as u32 {
        return Err(incompatible("cache-line alignment", LINE.to_string(), line.to_string()));
    }
    let raw_kind = field!(raw, u32, kind);
    let kind = Kind::from_u32(raw_kind)
        .ok_or_else(|| incompatible("kind", "spsc, mpmc, topic or service".into(), raw_kind.to_string()))?;
    if !expect.kinds.is_empty() && !expect.kinds.contains(&kind) {
        let names: Vec<_> = expect.kinds.iter().map(|k| k.name()).collect();
        return Err(incompatible("kind", names.join(" or "), kind.name().into()));
    }
    let config = Config {
        kind,
        capacity: field!(raw, u64, capacity),
        max_msg: field!(raw, u32, max_msg),
        max_participants: field!(raw, u32, max_participants),
        max_subscribers: field!(raw, u32, max_subscribers),
        max_response: field!(raw, u32, max_response),
        max_deliveries: field!(raw, u32, max_deliveries),
        flags: field!(raw, u32, flags),
        max_groups: field!(raw, u32, max_groups),
    };
    let offsets =
        config.validate().map_err(|e| Error::corrupted(format!("header holds an invalid configuration: {e}")))?;
    if let Some(c) = expect.capacity.filter(|&c| c != config.capacity) {
        return Err(incompatible("capacity", c.to_string(), config.capacity.to_string()));
    }
    if let Some(m) = expect.max_msg.filter(|&m| m != config.max_msg) {
        return Err(incompatible("max message size", m.to_string(), config.max_msg.to_string()));
    }
    if let Some(m) = expect.max_deliveries.filter(|&m| m != config.max_deliveries) {
        return Err(incompatible("max deliveries", m.to_string(), config.max_deliveries.to_string()));
    }
    if let Some(s) = expect.max_subscribers.filter(|&s| s != config.max_subscribers) {
        return Err(incompatible("max subscribers", s.to_string(), config.max_subscribers.to_string()));
    }
    let stored = [
        ("slot stride", offsets.stride, field!(raw, u64, slot_stride)),
        ("participants offset", offsets.participants, field!(raw, u64, participants_offset)),
        ("subscribers offset", offsets.subscribers, field!(raw, u64, subscribers_offset)),
        ("slots offset", offsets.slots, field!(raw, u64, slots_offset)),
        ("total size", offsets.total, field!(raw, u64, total_size)),
    ];
    for (what, expected, found) in stored {
        if expected != found {
            return Err(incompatible(what, expected.to_string(), found.to_string()));
        }
    }
    Ok(Found::Ready {
        config,
        offsets,
        creator: (field!(raw, u32, creator_pid), field!(raw, u64, creator_start)),
        created_unix_ns: field!(raw, u64, created_unix_ns),
    })
}

/// Removes segment `name` from `dir` whoever uses it (`shmq rm`; processes attached keep their
/// mapping). `Ok(false)` if there was none. Done under the segment lock, so a process attaching
/// meanwhile either is attached before or finds the name gone.
pub fn remove(dir: &Path, name: &str) -> Result<bool> {
    unlink_exact(&segment_path(dir, name)?, None, REMOVE_WAIT)
}

/// How long a removal waits for a process that is attaching (holding the segment lock shared).
const REMOVE_WAIT: Duration = Duration::from_secs(2);

/// Removes the file at `path`, if it is the file `expected` is open on (any file if `None`),
/// holding its segment lock exclusive: a process attaching meanwhile either is attached before
/// (and keeps its mapping, as after any removal) or finds the name gone, never attached to a
/// file it believes is named; and the name is checked under the lock, so a newer segment that
/// took the name is never removed in place of this one. Waits up to `wait` for the lock.
fn unlink_exact(path: &Path, expected: Option<&File>, wait: Duration) -> Result<bool> {
    let started = Instant::now();
    let Some(file) = File::open(path)? else { return Ok(false) };
    if let Some(expected) = expected {
        if !file.is_same(&expected.stat()?)? {
            return Ok(false);
        }
    }
    while !file.lock(lock::SEGMENT, Lock::Write)? {
        if started.elapsed() >= wait {
            return Err(Error::Timeout);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    if !file.is_at(path)? {
        return Ok(false);
    }
    os::unlink(path)
}

/// What [`remove_if`] did.
#[derive(Debug)]
pub(crate) enum Removal<T> {
    /// `decide` said yes and the file was removed.
    Removed(T),
    /// `decide` said no (its answer).
    Kept(T),
    /// Another process holds the segment lock (creating, attaching or removing).
    Busy,
    /// There is no such segment (any more).
    Gone,
}

/// Opens the file of segment `name`, takes its segment lock exclusive, and removes exactly that
/// file if `decide` (given the file, and the segment when it is complete) says so. While the
/// lock is held nobody can attach, so a decision on who is attached stays true until the
/// file is gone.
pub(crate) fn remove_if<T>(
    dir: &Path,
    name: &str,
    decide: impl FnOnce(std::result::Result<&Segment, &Error>) -> (bool, T),
) -> Result<Removal<T>> {
    let path = segment_path(dir, name)?;
    let Some(file) = File::open(&path)? else { return Ok(Removal::Gone) };
    if !file.lock(lock::SEGMENT, Lock::Write)? {
        return Ok(Removal::Busy);
    }
    if !file.is_at(&path)? {
        return Ok(Removal::Gone);
    }
    let st = file.stat()?;
    let seg = match check_file(&st, &path).and_then(|()| read_header(&file, st.size, &Expect::default())) {
        Ok(Found::Ready { config, offsets, creator, created_unix_ns }) if st.size == offsets.total => {
            let probe = File::open(&path)?.filter(|p| p.is_same(&st).unwrap_or(false));
            match probe {
                None => return Ok(Removal::Gone),
                Some(probe) => Ok(Segment {
                    name: name.into(),
                    path: path.clone(),
                    config,
                    offsets,
                    creator,
                    created_unix_ns,
                    map: Arc::new(file.map(offsets.total as usize)?),
                    files: Arc::new(Files::new(file, probe)),
                }),
            }
        }
        Ok(Found::Ready { offsets, .. }) => Err(Error::Incompatible {
            what: "file size",
            expected: format!("{} bytes (as its header says)", offsets.total),
            found: format!("{} bytes", st.size),
        }),
        Ok(Found::Unfinished) => Err(unfinished(&file, name)),
        Err(e) => Err(e),
    };
    let (remove, answer) = decide(seg.as_ref());
    if !remove {
        return Ok(Removal::Kept(answer));
    }
    // The lock is ours, so nobody attached since `decide` looked; the name led to this file
    // a moment ago, and only an unconditional `rm` plus a new creation could change that.
    os::unlink(&path)?;
    Ok(Removal::Removed(answer))
}

/// Removes the file under `name` if it is an unfinished segment nobody holds the lock of (see
/// [`Error::Stale`]). Returns whether it removed it.
pub(crate) fn remove_stale(dir: &Path, name: &str) -> Result<bool> {
    Ok(matches!(remove_if(dir, name, |seg| (matches!(seg, Err(Error::Stale { .. })), ()))?, Removal::Removed(())))
}

/// Names of every segment file in `dir` (user names, without the prefix), sorted.
pub fn list_names(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(PREFIX)).map(str::to_string))
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Removes the files of segments whose creators died before naming them (see the module
/// docs); returns their file names. A file whose creator still builds it holds a lock and is
/// kept. With `dry_run`, only names them.
pub fn remove_unfinished(dir: &Path, dry_run: bool) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    let mut removed = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let Some(fname) = e.file_name().to_str().map(str::to_string) else { continue };
        if !fname.starts_with(UNFINISHED_PREFIX) {
            continue;
        }
        let path = dir.join(&fname);
        // Only our own regular files (not a link, a directory, another user's file); an entry
        // that cannot be looked at is passed over, so one bad entry does not stop the rest.
        let Ok(Some(file)) = File::open(&path) else { continue };
        let ours = file.stat().is_ok_and(|st| st.mode & libc::S_IFMT == libc::S_IFREG && st.uid == os::euid());
        // Taking the lock is the verdict: its creator is dead (or has not locked it yet, and
        // will then leave it to us and start another).
        if ours && matches!(file.lock(lock::SEGMENT, Lock::Write), Ok(true)) && matches!(file.is_at(&path), Ok(true)) {
            if !dry_run && os::unlink(&path).is_err() {
                continue;
            }
            removed.push(fname);
        }
    }
    removed.sort();
    Ok(removed)
}
