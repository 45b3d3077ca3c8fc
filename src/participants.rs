//! The participant table: which processes are attached to a segment, and whether they live.
//!
//! Each attached handle takes one [`Participant`] entry; its id (index + 1, so 0 means "none")
//! is what a claim on a slot records. An entry's owner holds the lock on the entry's first byte
//! (see [`crate::layout::lock`]); the kernel drops that lock when the process dies, so an entry
//! that is not FREE and whose lock nobody holds belongs to a dead process. Nothing here reads
//! `/proc` or signals a pid.
//!
//! Entry protocol (state word `[generation | state]`, see [`crate::layout::entry`]):
//! lock the byte -> FREE -CAS-> BUSY (new generation; fill pid, roles) -Release-> ACTIVE; and
//! back: ACTIVE -> FREE, then unlock. Taking the lock comes first, so whoever holds it owns the
//! entry: a taker that gets the lock of an entry that is not FREE knows its owner died, takes it
//! over (BUSY, new generation), releases what the dead owner left (sleeper counts, SPSC roles)
//! and recovers every slot it still claims (the caller's `scrub`), so that no claim under that
//! id outlives its owner. A process killed between its BUSY and its ACTIVE leaves a BUSY entry
//! with no lock: it is taken over like any dead owner's.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::{
    entry, lock, Offsets, Participant, PARTICIPANT_ACTIVE, PARTICIPANT_BUSY, PARTICIPANT_FREE, PARTICIPANT_SIZE,
};
use crate::os::{self, Holder, Mapping};
use crate::segment::Files;
use crate::sync::AtomicU32;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// A view of a segment's participant table.
#[derive(Debug, Clone)]
pub(crate) struct Participants {
    map: Arc<Mapping>,
    files: Arc<Files>,
    offsets: Offsets,
    count: u32,
}

/// A snapshot of one entry, for `shmq stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Participant id (entry index + 1).
    pub id: u16,
    /// Process id, as the participant's pid namespace sees it (information only).
    pub pid: u32,
    /// Role bits (`ROLE_*` in [`crate::status`]).
    pub roles: u32,
    /// Whether its process runs (it holds the entry's lock; true when the kernel could not be
    /// asked).
    pub alive: bool,
    /// True while the entry is being taken (BUSY).
    pub busy: bool,
    /// Last activity, ns since the Unix epoch.
    pub last_activity_ns: u64,
}

impl Participants {
    /// # Panics
    /// If the table does not lie inside the mapping, 64-byte aligned (the segment layer
    /// validates both before constructing this).
    pub(crate) fn new(map: Arc<Mapping>, files: Arc<Files>, offsets: Offsets, count: u32) -> Self {
        let end =
            (count as usize).checked_mul(PARTICIPANT_SIZE).and_then(|n| n.checked_add(offsets.participants as usize));
        assert!(offsets.participants % 64 == 0 && end.is_some_and(|end| end <= map.len()));
        assert!(count <= crate::layout::MAX_PARTICIPANTS);
        Participants { map, files, offsets, count }
    }

    /// The entry of participant `id`, if `id` is in range.
    pub(crate) fn entry(&self, id: u16) -> Option<&Participant> {
        if id == 0 || id as u32 > self.count {
            return None;
        }
        let i = id as usize - 1;
        // SAFETY: i < count and the table lies inside the mapping (checked in `new`); the
        // mapping is page aligned and the offset 64-aligned, so the entry is aligned; it is all
        // atomics, valid for any bit pattern.
        Some(unsafe {
            &*self.map.as_ptr().add(self.offsets.participants as usize + i * PARTICIPANT_SIZE).cast::<Participant>()
        })
    }

    fn lock_byte(&self, id: u16) -> u64 {
        lock::participant(&self.offsets, id)
    }

    /// Takes an entry for this process with `roles`. `scrub(id)` is called when a dead
    /// process's entry is taken over, before the entry becomes ACTIVE again.
    pub(crate) fn attach(&self, roles: u32, mut scrub: impl FnMut(u16)) -> Result<u16> {
        let pid = os::pid();
        let start = os::own_start_time();
        // First pass: free entries. Second pass: entries of dead processes.
        for pass in 0..2 {
            for id in 1..=self.count as u16 {
                let e = self.entry(id).expect("id in range");
                // Pass 0 wants free entries, pass 1 the others (whose owner may have died).
                if (entry::state(e.state.load(Acquire)) == PARTICIPANT_FREE) != (pass == 0) {
                    continue;
                }
                // The lock, taken, makes the entry ours, whatever state it is in: nobody alive
                // owns it. (None: its owner lives, or is between FREE and unlocking.)
                let Some(w) = self.files.take(self.lock_byte(id), &e.state)? else { continue };
                // The CAS only fails if shared memory is being scribbled on.
                let owned = entry::take(w, PARTICIPANT_BUSY);
                if e.state.compare_exchange(w, owned, Acquire, Relaxed).is_err() {
                    self.files.release(self.lock_byte(id));
                    continue;
                }
                e.pid.store(pid, Relaxed);
                e.start_time.store(start, Relaxed);
                e.roles.store(roles, Relaxed);
                let now = os::now_unix_ns();
                e.attached_unix_ns.store(now, Relaxed);
                e.last_activity_ns.store(now, Relaxed);
                if entry::state(w) != PARTICIPANT_FREE {
                    scrub(id);
                }
                // Release: the fields above are visible to whoever sees ACTIVE.
                e.state.store(entry::with(owned, PARTICIPANT_ACTIVE), Release);
                return Ok(id);
            }
        }
        Err(Error::TooManyParticipants { max: self.count as usize })
    }

    /// Gives entry `id` back: FREE, then the lock.
    pub(crate) fn detach(&self, id: u16) {
        if let Some(e) = self.entry(id) {
            e.roles.store(0, Relaxed);
            e.pid.store(0, Relaxed);
            let w = e.state.load(Relaxed);
            e.state.store(entry::with(w, PARTICIPANT_FREE), Release);
            self.files.release(self.lock_byte(id));
        }
    }

    /// Adds role bits to entry `id`, and records in `seen` (the segment's
    /// [`Stats::roles_seen`](crate::layout::Stats)) that the roles were taken.
    pub(crate) fn add_roles(&self, id: u16, roles: u32, seen: &AtomicU32) {
        if let Some(e) = self.entry(id) {
            e.roles.fetch_or(roles, Relaxed);
            // Release: whoever sees the bit in `seen` (Acquire, `any_alive`'s caller) sees our
            // entry's roles too.
            seen.fetch_or(roles, Release);
        }
    }

    /// Removes role bits from entry `id` (its last handle of the roles ended).
    pub(crate) fn remove_roles(&self, id: u16, roles: u32) {
        if let Some(e) = self.entry(id) {
            // Release: a peer that sees the role gone (Acquire in `any_alive`) sees everything
            // we sent before.
            e.roles.fetch_and(!roles, Release);
        }
    }

    /// Whether a participant with any of `roles` is attached and not certainly dead (asks the
    /// kernel only about entries that hold such a role). The roles of a dead participant found
    /// on the way are cleared (holding its entry, see [`with_dead`](Self::with_dead)), so that
    /// the next question about it costs no system call. `me` is the asker's own entry.
    pub(crate) fn any_alive(&self, roles: u32, me: u16) -> bool {
        (1..=self.count as u16).any(|id| {
            let Some(e) = self.entry(id) else { return false };
            // Acquire: pairs with the Release store of FREE in `detach` (a participant that left
            // has cleared its roles first).
            if entry::state(e.state.load(Acquire)) == PARTICIPANT_FREE || e.roles.load(Acquire) & roles == 0 {
                return false;
            }
            // Our own entry (`me`) lives: no need to ask the kernel.
            if id == me {
                return true;
            }
            if self.is_dead(id) {
                self.with_dead(id, || e.roles.store(0, Relaxed));
                return false;
            }
            true
        })
    }

    /// Stamps entry `id` with the current time.
    pub(crate) fn touch(&self, id: u16) {
        if let Some(e) = self.entry(id) {
            e.last_activity_ns.store(os::now_unix_ns(), Relaxed);
        }
    }

    /// Whether participant `id` is certainly gone: out of range, free, or nobody holds its
    /// lock. Our own entries count as alive (the probe is a description of its own). When the
    /// kernel cannot be asked, the answer is "alive".
    pub(crate) fn is_dead(&self, id: u16) -> bool {
        let Some(e) = self.entry(id) else { return true };
        let before = e.state.load(Acquire);
        if entry::state(before) == PARTICIPANT_FREE {
            return true;
        }
        match self.files.holder(self.lock_byte(id)) {
            Holder::Held | Holder::Unknown => false,
            // An owner holds the lock from before its entry leaves FREE until after it is FREE
            // again, so an entry that was not FREE, unchanged across a moment when nobody held
            // its lock, is a dead owner's. (Changed: somebody is at work on it; not dead.)
            Holder::Free => e.state.load(Acquire) == before,
        }
    }

    /// If participant `id` is dead, takes its entry (its lock, then BUSY in a new generation)
    /// so that nobody else can take it meanwhile, runs `f`, and puts it back ACTIVE (still
    /// dead, still listed, and still to be fully recovered by whoever reuses it). False if it
    /// was not dead, or changed.
    pub(crate) fn with_dead(&self, id: u16, f: impl FnOnce()) -> bool {
        let Some(e) = self.entry(id) else { return false };
        let at = self.lock_byte(id);
        let Ok(Some(w)) = self.files.take(at, &e.state) else { return false };
        let done = entry::state(w) != PARTICIPANT_FREE
            && e.state.compare_exchange(w, entry::take(w, PARTICIPANT_BUSY), Acquire, Relaxed).is_ok();
        if done {
            f();
            // A CAS, like every step of an entry's owner: nobody else owns it now (we hold its
            // lock), but shared memory may have been scribbled on.
            let _ = e.state.compare_exchange(
                entry::take(w, PARTICIPANT_BUSY),
                entry::take(w, PARTICIPANT_ACTIVE),
                Release,
                Relaxed,
            );
        }
        self.files.release(at);
        done
    }

    /// Pid of participant `id` (0 if unknown).
    pub(crate) fn pid(&self, id: u16) -> u32 {
        self.entry(id).map(|e| e.pid.load(Relaxed)).unwrap_or(0)
    }

    /// Snapshot of every used entry.
    pub(crate) fn list(&self) -> Vec<ParticipantInfo> {
        (1..=self.count as u16)
            .filter_map(|id| {
                let e = self.entry(id)?;
                let st = entry::state(e.state.load(Acquire));
                if st == PARTICIPANT_FREE {
                    return None;
                }
                Some(ParticipantInfo {
                    id,
                    pid: e.pid.load(Relaxed),
                    roles: e.roles.load(Relaxed),
                    alive: !self.is_dead(id),
                    busy: st == PARTICIPANT_BUSY,
                    last_activity_ns: e.last_activity_ns.load(Relaxed),
                })
            })
            .collect()
    }
}
