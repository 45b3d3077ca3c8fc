//! The subscriber table of a topic: one [`Subscriber`] entry per subscriber, each with its
//! cursor on a line of its own.
//!
//! Entry protocol, as for participants (see `crate::participants`): lock the entry's byte, then
//! FREE -CAS-> BUSY (fill mode, name, pid, cursor) -Release-> ACTIVE; leaving, the state first,
//! then the lock. So an ACTIVE or BUSY entry whose lock nobody holds is a dead process's, and is
//! reclaimed: on a join that finds the table full, in `shmq stat`, in `shmq gc`, and by a
//! publisher blocked on it. A durable subscriber that leaves (or whose process is found dead)
//! becomes DETACHED, holding no lock: it keeps its cursor and keeps gating publishers until it
//! returns (lock, DETACHED -CAS-> BUSY -> ACTIVE) or is removed. A FREE entry's cursor is `u64::MAX`, which the gate ignores (a cursor ahead of
//! `tail` never gates), so a BUSY entry gates exactly when it holds a real cursor.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::{
    entry, lock, GroupHeader, Offsets, RingControl, Subscriber, CONTROL_OFFSET, CONTROL_SIZE, GROUP_HEADER_SIZE,
    MAX_SUBSCRIBER_NAME, MODE_GROUP, MODE_LOSSY, MODE_RELIABLE, SUBSCRIBER_SIZE, SUB_ACTIVE, SUB_BUSY, SUB_DETACHED,
    SUB_FREE,
};
use crate::os::{self, Holder, Mapping};
use crate::participants::Participants;
use crate::ring::group::{self, Group};
use crate::segment::Files;
use crate::sync::{
    fence, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};

/// A view of a topic's subscriber table.
#[derive(Debug)]
pub(crate) struct SubscriberTable {
    map: Arc<Mapping>,
    files: Arc<Files>,
    offsets: Offsets,
    count: usize,
    /// The ring's capacity (validated; a group region holds a word per slot).
    capacity: usize,
    /// Members this process has in each group entry: its bit in the group's member bitmap is
    /// set while there is at least one (several `Subscriber`s of one `Topic` share a
    /// participant id).
    local_members: std::sync::Mutex<Vec<u32>>,
}

/// A snapshot of one subscriber, for `shmq stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// Table index.
    pub index: usize,
    /// Durable name; `None` for an anonymous subscriber.
    pub name: Option<String>,
    /// Lossy (true) or reliable.
    pub lossy: bool,
    /// A consumer group (see [`Topic::groups`](super::Topic::groups) for its members).
    pub group: bool,
    /// Next sequence it reads (a group: the lowest sequence not acknowledged).
    pub cursor: u64,
    /// Messages published that it has not yet read (`tail - cursor`).
    pub lag: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages missed (lossy).
    pub lagged: u64,
    /// Whether its process runs (a DETACHED durable subscriber is not alive).
    pub alive: bool,
    /// Holder's pid (0 when detached).
    pub pid: u32,
    /// Last activity, ns since the Unix epoch.
    pub last_activity_ns: u64,
}

/// A snapshot of one consumer group, for `shmq stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Lossy (true: does not gate publishers) or reliable.
    pub lossy: bool,
    /// Lowest sequence not acknowledged (what gates publishers).
    pub position: u64,
    /// Next sequence to hand out.
    pub next: u64,
    /// Messages published and not acknowledged by the group (`tail - position`).
    pub lag: u64,
    /// Messages delivered to its members (redeliveries included).
    pub delivered: u64,
    /// Messages put back because their member died or left.
    pub redelivered: u64,
    /// Messages missed (lossy).
    pub lagged: u64,
    /// Members, and processes that hold messages of the group.
    pub members: Vec<MemberInfo>,
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Participant id.
    pub id: u16,
    /// Process id (information only).
    pub pid: u32,
    /// Whether the process runs.
    pub alive: bool,
    /// Messages it received and has not acknowledged.
    pub in_flight: u64,
}

/// Checks a durable subscriber name: 1 to 64 bytes of `[A-Za-z0-9._-]`.
pub(crate) fn validate_subscriber_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_SUBSCRIBER_NAME
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::InvalidName {
            name: name.into(),
            reason: "a subscriber name must be 1 to 64 bytes of [A-Za-z0-9._-]",
        });
    }
    Ok(())
}

impl SubscriberTable {
    pub(crate) fn new(map: Arc<Mapping>, files: Arc<Files>, offsets: Offsets, count: usize, capacity: usize) -> Self {
        let end = count.checked_mul(SUBSCRIBER_SIZE).and_then(|n| n.checked_add(offsets.subscribers as usize));
        assert!(offsets.subscribers % 128 == 0 && end.is_some_and(|end| end <= map.len()));
        assert!(map.len() >= CONTROL_OFFSET + CONTROL_SIZE);
        if let Some(g) = offsets.groups {
            let end = (g.count as usize).checked_mul(g.stride as usize).and_then(|n| n.checked_add(g.first as usize));
            assert!(g.first % 128 == 0 && g.stride as usize >= GROUP_HEADER_SIZE + capacity * 8);
            assert!(end.is_some_and(|end| end <= map.len()) && capacity.is_power_of_two());
        }
        let groups = offsets.groups.map_or(0, |g| g.count as usize);
        SubscriberTable { map, files, offsets, count, capacity, local_members: std::sync::Mutex::new(vec![0; groups]) }
    }

    /// The topic's subscriber epoch (`RingControl::head` of a topic segment).
    fn epoch_word(&self) -> &AtomicU64 {
        // SAFETY: the control block lies inside the mapping (checked in `new`), at a 128-byte
        // aligned offset; `head` is an AtomicU64, valid for any bits.
        unsafe { &(*self.map.as_ptr().add(CONTROL_OFFSET).cast::<RingControl>()).head.0 }
    }

    /// The subscriber epoch: changes whenever a subscriber joins or leaves.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch_word().load(Acquire)
    }

    /// The subscriber epoch, loaded SeqCst: a publisher's look right after its claim (see
    /// `ring::broadcast` on why it must be SeqCst).
    pub(crate) fn epoch_after_claim(&self) -> u64 {
        self.epoch_word().load(SeqCst)
    }

    fn bump_epoch(&self) {
        self.epoch_word().fetch_add(1, SeqCst);
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn entry(&self, i: usize) -> &Subscriber {
        assert!(i < self.count);
        // SAFETY: i < count and the table lies inside the mapping (checked in `new`), 128-byte
        // aligned; the entry is all atomics (plain u64 padding included), valid for any bits.
        unsafe { &*self.map.as_ptr().add(self.offsets.subscribers as usize + i * SUBSCRIBER_SIZE).cast::<Subscriber>() }
    }

    fn lock_byte(&self, i: usize) -> u64 {
        lock::subscriber(&self.offsets, i)
    }

    fn name_of(e: &Subscriber) -> Option<String> {
        let len = (e.name_len.load(Relaxed) as usize).min(MAX_SUBSCRIBER_NAME);
        if len == 0 {
            return None;
        }
        let mut bytes = [0u8; MAX_SUBSCRIBER_NAME];
        for (i, w) in e.name.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        Some(String::from_utf8_lossy(&bytes[..len]).into_owned())
    }

    fn set_name(e: &Subscriber, name: Option<&str>) {
        let mut bytes = [0u8; MAX_SUBSCRIBER_NAME];
        let n = name.map_or(0, |n| n.len());
        if let Some(name) = name {
            bytes[..n].copy_from_slice(name.as_bytes());
        }
        for (i, w) in e.name.iter().enumerate() {
            w.store(u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes")), Relaxed);
        }
        e.name_len.store(n as u32, Relaxed);
    }

    /// Whether entry `i` is held by a live process: ACTIVE or BUSY, and its lock held (or the
    /// kernel could not be asked).
    fn alive(&self, i: usize) -> bool {
        let st = entry::state(self.entry(i).state.load(Acquire));
        matches!(st, SUB_ACTIVE | SUB_BUSY) && self.files.holder(self.lock_byte(i)) != Holder::Free
    }

    /// Joins as a subscriber. A durable `name` resumes its entry (and cursor) if it exists.
    /// `start` gives the cursor of a new entry from the current tail; it is called again after
    /// the entry is visible (see the module docs of `topic`). Returns (index, cursor, resumed).
    ///
    /// When no entry is free, entries of dead subscribers are reclaimed first (see
    /// [`reap`](Self::reap)).
    pub(crate) fn join(
        &self,
        name: Option<&str>,
        lossy: bool,
        mut start: impl FnMut() -> u64,
    ) -> Result<(usize, u64, bool)> {
        let mode = if lossy { MODE_LOSSY } else { MODE_RELIABLE };
        for attempt in 0..8 {
            if let Some(name) = name {
                if let Some(i) = self.find(name) {
                    if self.is_group(i) {
                        return Err(Error::Incompatible {
                            what: "subscriber name",
                            expected: format!("durable subscriber {name:?}"),
                            found: "a consumer group of that name (join it with .group(name), or choose another name)"
                                .into(),
                        });
                    }
                    let e = self.entry(i);
                    let at = self.lock_byte(i);
                    let Some(w) = self.files.take(at, &e.state)? else {
                        if self.alive(i) {
                            return Err(Error::SubscriberNameTaken { name: name.into(), pid: e.pid.load(Relaxed) });
                        }
                        continue; // it changed meanwhile: look again
                    };
                    // The lock is ours, so the entry is: DETACHED, or ACTIVE/BUSY of a process
                    // that died. The CAS fails only if shared memory is scribbled on.
                    let owned = entry::take(w, SUB_BUSY);
                    if entry::state(w) == SUB_FREE
                        || !self.is_named(i, name)
                        || e.state.compare_exchange(w, owned, Acquire, Relaxed).is_err()
                    {
                        self.files.release(at);
                        continue;
                    }
                    self.fill(e, mode);
                    e.state.store(entry::with(owned, SUB_ACTIVE), Release);
                    self.bump_epoch();
                    // As for a new entry (below): the resumed one may have turned reliable.
                    fence(SeqCst);
                    return Ok((i, e.cursor.load(Acquire), true));
                }
            }
            let Some((i, owned)) = self.take_free()? else {
                if attempt == 0 && self.reap()? > 0 {
                    continue;
                }
                return Err(Error::TooManySubscribers { max: self.count });
            };
            let e = self.entry(i);
            Self::set_name(e, name);
            self.fill(e, mode);
            e.delivered.store(0, Relaxed);
            e.lagged.store(0, Relaxed);
            // A provisional cursor, so that the entry gates as soon as it exists...
            e.cursor.store(start(), Release);
            e.state.store(entry::with(owned, SUB_ACTIVE), Release);
            self.bump_epoch();
            // ...then, with the entry visible (SeqCst fence, pairs with the one in `gate`, and
            // orders the epoch bump before our reads of slots, see `ring::broadcast`), the
            // final one: any publisher whose gate missed us gated at a tail we now see.
            fence(SeqCst);
            let cursor = start();
            e.cursor.store(cursor, Release);
            // Two processes that raced to create the same durable name: the later entry yields.
            if let Some(name) = name {
                if (0..self.count).any(|j| j != i && self.is_named(j, name)) {
                    self.free(i);
                    self.files.release(self.lock_byte(i));
                    continue;
                }
            }
            return Ok((i, cursor, false));
        }
        Err(Error::SubscriberNameTaken { name: name.unwrap_or_default().into(), pid: 0 })
    }

    /// Takes a FREE entry (its lock, then BUSY in a new generation); `None` if none is free.
    /// Entries that can hold a group come last.
    fn take_free(&self) -> Result<Option<(usize, u32)>> {
        let groups = self.offsets.groups.map_or(0, |g| g.count as usize).min(self.count);
        if let Some(t) = self.take_free_in(groups..self.count)? {
            return Ok(Some(t));
        }
        self.take_free_in(0..groups)
    }

    /// [`take_free`](Self::take_free) among entries `range`.
    fn take_free_in(&self, range: std::ops::Range<usize>) -> Result<Option<(usize, u32)>> {
        for i in range {
            let e = self.entry(i);
            if entry::state(e.state.load(Relaxed)) != SUB_FREE {
                continue;
            }
            let at = self.lock_byte(i);
            // None: being taken, or its last owner is between FREE and unlocking.
            let Some(w) = self.files.take(at, &e.state)? else { continue };
            let owned = entry::take(w, SUB_BUSY);
            if entry::state(w) == SUB_FREE && e.state.compare_exchange(w, owned, Acquire, Relaxed).is_ok() {
                return Ok(Some((i, owned)));
            }
            self.files.release(at);
        }
        Ok(None)
    }

    fn fill(&self, e: &Subscriber, mode: u32) {
        e.mode.store(mode, Relaxed);
        e.pid.store(os::pid(), Relaxed);
        e.start_time.store(os::own_start_time(), Relaxed);
        e.last_activity_ns.store(os::now_unix_ns(), Relaxed);
    }

    fn is_named(&self, i: usize, name: &str) -> bool {
        let e = self.entry(i);
        matches!(entry::state(e.state.load(Acquire)), SUB_ACTIVE | SUB_DETACHED | SUB_BUSY)
            && e.name_len.load(Relaxed) as usize == name.len()
            && Self::name_of(e).as_deref() == Some(name)
    }

    fn find(&self, name: &str) -> Option<usize> {
        (0..self.count).find(|&i| self.is_named(i, name))
    }

    /// Frees entry `i`; only its owner (the holder of its lock) calls this, and unlocks after.
    fn free(&self, i: usize) {
        let e = self.entry(i);
        e.cursor.store(u64::MAX, Release);
        e.name_len.store(0, Relaxed);
        e.pid.store(0, Relaxed);
        let w = e.state.load(Relaxed);
        e.state.store(entry::with(w, SUB_FREE), Release);
        self.bump_epoch();
    }

    /// Leaves: an anonymous entry is freed, a durable one detached (it keeps its cursor); then
    /// the entry's lock is given back.
    pub(crate) fn leave(&self, i: usize, durable: bool) {
        let e = self.entry(i);
        if durable {
            e.pid.store(0, Relaxed);
            let w = e.state.load(Relaxed);
            e.state.store(entry::with(w, SUB_DETACHED), Release);
        } else {
            self.free(i);
        }
        self.files.release(self.lock_byte(i));
    }

    /// The lowest cursor of every reliable subscriber, at most `tail`; `tail` if none.
    pub(crate) fn gate(&self, tail: u64) -> u64 {
        // SeqCst fence: pairs with the one in `join` (a joining subscriber either is seen here
        // or sees our tail).
        fence(SeqCst);
        let mut gate = tail;
        for i in 0..self.count {
            let e = self.entry(i);
            if entry::state(e.state.load(Acquire)) == SUB_FREE || e.mode.load(Relaxed) & MODE_LOSSY != 0 {
                continue;
            }
            // Acquire: pairs with the subscriber's Release store of its cursor, so its reads of
            // the slots before the cursor happen before we overwrite them.
            let c = e.cursor.load(Acquire);
            // A cursor ahead of tail (free entry, or corrupted) does not gate.
            if tail.wrapping_sub(c) as i64 >= 0 && c < gate {
                gate = c;
            }
        }
        gate
    }

    /// Reclaims entry `i` if its process died (ACTIVE or BUSY, and its lock free): an anonymous
    /// entry is freed, a durable one detached (it keeps its cursor and keeps gating). Returns
    /// whether it was freed.
    fn reclaim(&self, i: usize) -> Result<bool> {
        let e = self.entry(i);
        if !matches!(entry::state(e.state.load(Acquire)), SUB_ACTIVE | SUB_BUSY) {
            return Ok(false);
        }
        let at = self.lock_byte(i);
        let Some(w) = self.files.take(at, &e.state)? else { return Ok(false) }; // alive
                                                                                // The lock is ours: an ACTIVE or BUSY entry now is a dead process's.
        let mut freed = false;
        if matches!(entry::state(w), SUB_ACTIVE | SUB_BUSY) {
            if e.name_len.load(Relaxed) == 0 {
                if e.state.compare_exchange(w, entry::take(w, SUB_BUSY), Acquire, Relaxed).is_ok() {
                    self.free(i);
                    freed = true;
                }
            } else if e.state.compare_exchange(w, entry::take(w, SUB_DETACHED), Release, Relaxed).is_ok() {
                e.pid.store(0, Relaxed);
            }
        }
        self.files.release(at);
        Ok(freed)
    }

    /// For reliable entries at `gate` (the ones a blocked publisher waits for): reclaims those
    /// of dead processes, and puts back the messages dead members of a group hold. Returns
    /// whether something changed.
    pub(crate) fn reap_dead(&self, gate: u64, is_dead: impl Fn(u16) -> bool) -> bool {
        let mut freed = false;
        for i in 0..self.count {
            let e = self.entry(i);
            let mode = e.mode.load(Relaxed);
            if mode & MODE_LOSSY != 0 || e.cursor.load(Acquire) != gate {
                continue;
            }
            if mode & MODE_GROUP != 0 {
                freed |= self.recover_group(i, &is_dead) > 0;
            } else {
                freed |= self.reclaim(i).unwrap_or(false);
            }
        }
        freed
    }

    /// The words of the consumer group in entry `i` (`None` if the entry cannot hold one).
    pub(crate) fn group(&self, i: usize) -> Option<Group<'_>> {
        let g = self.offsets.groups?;
        if i >= g.count as usize || i >= self.count {
            return None;
        }
        let cap = self.capacity;
        let at = g.first as usize + i * g.stride as usize + GROUP_HEADER_SIZE;
        // SAFETY: `count` regions of `stride` >= a header line and `capacity` 8-byte words each
        // lie inside the mapping from a 128-byte aligned `first` (checked in `new`), and i <
        // count; the words are atomics, valid for any bits.
        let words = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at).cast::<AtomicU64>(), cap) };
        let e = self.entry(i);
        Some(Group { words, position: &e.cursor, next: &e.group_next, retry: &e.group_retry })
    }

    /// The member bitmap of the group region of entry `i`.
    pub(crate) fn group_header(&self, i: usize) -> Option<&GroupHeader> {
        let g = self.offsets.groups?;
        if i >= g.count as usize {
            return None;
        }
        // SAFETY: as in `group` (checked in `new`): region i's first line, inside the mapping,
        // 128-byte aligned; all atomics.
        Some(unsafe { &*self.map.as_ptr().add(g.first as usize + i * g.stride as usize).cast::<GroupHeader>() })
    }

    /// Whether entry `i` is a consumer group.
    pub(crate) fn is_group(&self, i: usize) -> bool {
        let e = self.entry(i);
        entry::state(e.state.load(Acquire)) != SUB_FREE && e.mode.load(Relaxed) & MODE_GROUP != 0
    }

    /// Puts back every message that a dead member of the group in entry `i` holds, and forgets
    /// dead members. Returns how many messages
    /// wait to be taken again (put back now or before).
    pub(crate) fn recover_group(&self, i: usize, is_dead: &impl Fn(u16) -> bool) -> usize {
        let (Some(g), Some(h)) = (self.group(i), self.group_header(i)) else { return 0 };
        let cap = g.words.len() as u64;
        let mut n = 0;
        for (seq, w) in group::claims(&g, cap) {
            let m = crate::layout::slot::claimer(w);
            if is_dead(m) && group::put_back(&g, seq, w) {
                n += 1;
            }
        }
        if n > 0 {
            self.entry(i).group_redelivered.fetch_add(n as u64, Relaxed);
        }
        let waiting = group::rescan(&g, cap) as usize;
        for (wi, word) in h.members.iter().enumerate() {
            let bits = word.load(Relaxed);
            for b in 0..64 {
                let id = (wi * 64 + b + 1) as u16;
                if bits & (1 << b) != 0 && is_dead(id) {
                    word.fetch_and(!(1 << b), Relaxed);
                }
            }
        }
        n.max(waiting)
    }

    /// Joins (creating it if needed) the consumer group `name`, as participant `me`. A new group
    /// starts at `start()` (called again once the entry is visible, as in [`join`](Self::join))
    /// and is `lossy` or reliable; an existing one keeps its mode. Returns the entry's index.
    pub(crate) fn join_group(&self, name: &str, lossy: bool, me: u16, mut start: impl FnMut() -> u64) -> Result<usize> {
        let Some(g) = self.offsets.groups else { return Err(Error::TooManyGroups { max: 0 }) };
        for attempt in 0..100 {
            if attempt > 0 {
                // Somebody is at work on the entry (creating, removing or joining it), for
                // microseconds: look again in a moment.
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            if let Some(i) = self.find(name) {
                let e = self.entry(i);
                if !self.is_group(i) {
                    let st = entry::state(e.state.load(Acquire));
                    if st == SUB_BUSY || st == SUB_FREE || !self.is_named(i, name) {
                        continue; // being created, or removed since we found it
                    }
                    return Err(Error::Incompatible {
                        what: "subscriber name",
                        expected: format!("consumer group {name:?}"),
                        found: "a durable subscriber of that name (remove it, or choose another group name)".into(),
                    });
                }
                // Under the entry's lock, which its creator and `remove` hold while they decide
                // whether it has members: the group cannot be freed between our look and our
                // member bit.
                let at = self.lock_byte(i);
                let Some(w) = self.files.take(at, &e.state)? else { continue };
                let here = entry::state(w) == SUB_DETACHED && self.is_group(i) && self.is_named(i, name);
                if here {
                    self.add_member(i, me);
                }
                self.files.release(at);
                if here {
                    return Ok(i);
                }
                continue;
            }
            let Some((i, owned)) = self.take_free_in(0..(g.count as usize).min(self.count))? else {
                if self.reap()? > 0 {
                    continue;
                }
                return Err(Error::TooManyGroups { max: g.count as usize });
            };
            let e = self.entry(i);
            Self::set_name(e, Some(name));
            self.fill(e, if lossy { MODE_LOSSY } else { MODE_RELIABLE });
            e.pid.store(0, Relaxed);
            e.delivered.store(0, Relaxed);
            e.lagged.store(0, Relaxed);
            e.group_redelivered.store(0, Relaxed);
            e.cursor.store(start(), Release);
            e.state.store(entry::with(owned, SUB_BUSY), Release);
            self.bump_epoch();
            fence(SeqCst);
            let cursor = start();
            let grp = self.group(i).expect("a group region for entries below max_groups");
            e.group_retry.store(0, Relaxed);
            group::init(&grp, cursor);
            if let Some(h) = self.group_header(i) {
                for w in &h.members {
                    w.store(0, Relaxed);
                }
            }
            // The group bit last: an entry whose creator died before it is a durable subscriber.
            e.mode.fetch_or(MODE_GROUP, Release);
            e.state.store(entry::with(owned, SUB_DETACHED), Release);
            self.bump_epoch();
            // Two processes that raced to create the same group: the later entry yields. We
            // still hold its lock, so nobody joined it.
            if (0..self.count).any(|j| j != i && self.is_named(j, name)) {
                self.free(i);
                self.files.release(self.lock_byte(i));
                continue;
            }
            self.add_member(i, me);
            self.files.release(self.lock_byte(i));
            return Ok(i);
        }
        Err(Error::SubscriberNameTaken { name: name.into(), pid: 0 })
    }

    /// One more member of the group in entry `i` in this process (participant `me`).
    fn add_member(&self, i: usize, me: u16) {
        let mut local = self.local_members.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = local.get_mut(i) {
            *n += 1;
        }
        if let (Some(h), Some(b)) = (self.group_header(i), (me as usize).checked_sub(1)) {
            h.members[(b / 64) % h.members.len()].fetch_or(1 << (b % 64), Relaxed);
        }
    }

    /// A member of the group in entry `i` in this process (participant `me`) leaves; the
    /// process leaves the group with its last one.
    pub(crate) fn remove_member(&self, i: usize, me: u16) {
        let mut local = self.local_members.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = local.get_mut(i) {
            *n = n.saturating_sub(1);
            if *n > 0 {
                return;
            }
        }
        if let (Some(h), Some(b)) = (self.group_header(i), (me as usize).checked_sub(1)) {
            h.members[(b / 64) % h.members.len()].fetch_and(!(1 << (b % 64)), Relaxed);
        }
    }

    /// Snapshot of every consumer group; `parts` tells pids and liveness.
    pub(crate) fn groups(&self, tail: u64, parts: &Participants) -> Vec<GroupInfo> {
        (0..self.count)
            .filter(|&i| self.is_group(i))
            .filter_map(|i| {
                let e = self.entry(i);
                let g = self.group(i)?;
                let mut members: Vec<MemberInfo> = self
                    .members(i)
                    .into_iter()
                    .map(|id| MemberInfo { id, pid: parts.pid(id), alive: !parts.is_dead(id), in_flight: 0 })
                    .collect();
                for (_, w) in group::claims(&g, self.capacity as u64) {
                    let id = crate::layout::slot::claimer(w);
                    match members.iter_mut().find(|m| m.id == id) {
                        Some(m) => m.in_flight += 1,
                        None => {
                            members.push(MemberInfo { id, pid: parts.pid(id), alive: !parts.is_dead(id), in_flight: 1 })
                        }
                    }
                }
                let position = g.position.load(Acquire);
                Some(GroupInfo {
                    name: Self::name_of(e)?,
                    lossy: e.mode.load(Relaxed) & MODE_LOSSY != 0,
                    position,
                    next: g.next.load(Acquire),
                    lag: tail.saturating_sub(position),
                    delivered: e.delivered.load(Relaxed),
                    redelivered: e.group_redelivered.load(Relaxed),
                    lagged: e.lagged.load(Relaxed),
                    members,
                })
            })
            .collect()
    }

    /// The members of the group in entry `i` (participant ids).
    pub(crate) fn members(&self, i: usize) -> Vec<u16> {
        let Some(h) = self.group_header(i) else { return Vec::new() };
        let mut ids = Vec::new();
        for (wi, word) in h.members.iter().enumerate() {
            let bits = word.load(Relaxed);
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    ids.push((wi * 64 + b + 1) as u16);
                }
            }
        }
        ids
    }

    /// Reclaims the entries of every dead subscriber, lossy and reliable (on a join that finds
    /// the table full, in `shmq stat` and `shmq gc`). Returns how many entries were freed.
    pub(crate) fn reap(&self) -> Result<usize> {
        let mut freed = 0;
        for i in 0..self.count {
            if self.reclaim(i)? {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Removes durable subscriber `name` (it must not be held by a live process), or consumer
    /// group `name` (it must have no live member: `parts` tells).
    pub(crate) fn remove(&self, name: &str, parts: &Participants) -> Result<bool> {
        let Some(i) = self.find(name) else { return Ok(false) };
        let e = self.entry(i);
        let at = self.lock_byte(i);
        let Some(w) = self.files.take(at, &e.state)? else {
            return Err(Error::SubscriberNameTaken { name: name.into(), pid: e.pid.load(Relaxed) });
        };
        // A group's members join under this lock (see `join_group`), so none joins meanwhile.
        if self.is_group(i) {
            self.recover_group(i, &|id| parts.is_dead(id));
            if let Some(&m) = self.members(i).first() {
                self.files.release(at);
                return Err(Error::SubscriberNameTaken { name: name.into(), pid: parts.pid(m) });
            }
        }
        let removed = entry::state(w) != SUB_FREE
            && self.is_named(i, name)
            && e.state.compare_exchange(w, entry::take(w, SUB_BUSY), Acquire, Relaxed).is_ok();
        if removed {
            self.free(i);
        }
        self.files.release(at);
        Ok(removed)
    }

    /// Entries in use (ACTIVE, BUSY or DETACHED).
    pub(crate) fn count(&self) -> usize {
        (0..self.count).filter(|&i| entry::state(self.entry(i).state.load(Acquire)) != SUB_FREE).count()
    }

    /// Snapshot of every entry in use.
    pub(crate) fn list(&self, tail: u64) -> Vec<SubscriberInfo> {
        (0..self.count)
            .filter_map(|i| {
                let e = self.entry(i);
                let st = entry::state(e.state.load(Acquire));
                if st == SUB_FREE {
                    return None;
                }
                let cursor = e.cursor.load(Acquire);
                Some(SubscriberInfo {
                    index: i,
                    name: Self::name_of(e),
                    lossy: e.mode.load(Relaxed) & MODE_LOSSY != 0,
                    group: e.mode.load(Relaxed) & MODE_GROUP != 0,
                    cursor,
                    lag: tail.saturating_sub(cursor),
                    delivered: e.delivered.load(Relaxed),
                    lagged: e.lagged.load(Relaxed),
                    alive: self.alive(i),
                    pid: e.pid.load(Relaxed),
                    last_activity_ns: e.last_activity_ns.load(Relaxed),
                })
            })
            .collect()
    }
}
