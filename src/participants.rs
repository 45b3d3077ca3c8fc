//! The participant table: which processes are attached to a segment, and whether they live.
//!
//! Each attached handle takes one [`Participant`] entry; its id (index + 1, so 0 means "none")
//! is what a claim on a slot records. Liveness is pid plus process start time, so a reused pid
//! is not mistaken for life.
//!
//! Entry protocol (state word `[generation | state]`, see [`crate::layout::entry`]):
//! FREE -CAS-> BUSY (new generation; we fill pid, start time, roles) -store Release-> ACTIVE.
//! An ACTIVE entry whose process is dead may be taken by CAS of the word read *before* the
//! liveness check to BUSY of a new generation, so the CAS fails if anyone took the entry in
//! between. The taker first releases what the dead owner left (sleeper counts, SPSC roles)
//! and recovers every slot it still claims (the caller's `scrub`), so that no claim under
//! that id outlives its owner. A process killed inside the few instructions between BUSY and
//! ACTIVE leaks its entry (shown as busy in `shmq stat`), which is bounded by the table.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::{entry, Participant, PARTICIPANT_ACTIVE, PARTICIPANT_BUSY, PARTICIPANT_FREE, PARTICIPANT_SIZE};
use crate::os::{self, Mapping};
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// A view of a segment's participant table.
#[derive(Debug, Clone)]
pub(crate) struct Participants {
    map: Arc<Mapping>,
    offset: usize,
    count: u32,
}

/// A snapshot of one entry, for `shmq stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Participant id (entry index + 1).
    pub id: u16,
    /// Process id.
    pub pid: u32,
    /// Role bits (`ROLE_*` in [`crate::layout`]).
    pub roles: u32,
    /// Whether the process is running.
    pub alive: bool,
    /// True while the entry is being taken (BUSY).
    pub busy: bool,
    /// Last activity, ns since the Unix epoch.
    pub last_activity_ns: u64,
}

impl Participants {
    /// # Safety-relevant contract
    /// `offset + count * PARTICIPANT_SIZE <= map.len()` and `offset` is 64-byte aligned; the
    /// segment layer validates both before constructing this.
    pub(crate) fn new(map: Arc<Mapping>, offset: usize, count: u32) -> Self {
        assert!(offset % 64 == 0 && offset + count as usize * PARTICIPANT_SIZE <= map.len());
        Participants { map, offset, count }
    }

    /// The entry of participant `id`, if `id` is in range.
    pub(crate) fn entry(&self, id: u16) -> Option<&Participant> {
        if id == 0 || id as u32 > self.count {
            return None;
        }
        let i = id as usize - 1;
        // SAFETY: i < count and the table lies inside the mapping (checked in `new`); the
        // mapping is page aligned and offset 64-aligned, so the entry is aligned; it is all
        // atomics, valid for any bit pattern.
        Some(unsafe { &*self.map.as_ptr().add(self.offset + i * PARTICIPANT_SIZE).cast::<Participant>() })
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
                let w = e.state.load(Acquire);
                let takeable = if pass == 0 {
                    entry::state(w) == PARTICIPANT_FREE
                } else {
                    entry::state(w) == PARTICIPANT_ACTIVE
                        && !os::process_alive(e.pid.load(Relaxed), e.start_time.load(Relaxed))
                };
                // The CAS is of the word read before the liveness check: it fails if the entry
                // changed hands since.
                if !takeable || e.state.compare_exchange(w, entry::take(w, PARTICIPANT_BUSY), Acquire, Relaxed).is_err()
                {
                    continue;
                }
                let owned = entry::take(w, PARTICIPANT_BUSY);
                e.pid.store(pid, Relaxed);
                e.start_time.store(start, Relaxed);
                e.roles.store(roles, Relaxed);
                let now = os::now_unix_ns();
                e.attached_unix_ns.store(now, Relaxed);
                e.last_activity_ns.store(now, Relaxed);
                if pass == 1 {
                    scrub(id);
                }
                // Release: the fields above are visible to whoever sees ACTIVE.
                e.state.store(entry::with(owned, PARTICIPANT_ACTIVE), Release);
                return Ok(id);
            }
        }
        Err(Error::TooManyParticipants { max: self.count as usize })
    }

    /// Gives entry `id` back.
    pub(crate) fn detach(&self, id: u16) {
        if let Some(e) = self.entry(id) {
            e.roles.store(0, Relaxed);
            e.pid.store(0, Relaxed);
            let w = e.state.load(Relaxed);
            e.state.store(entry::with(w, PARTICIPANT_FREE), Release);
        }
    }

    /// Adds role bits to entry `id`.
    pub(crate) fn add_roles(&self, id: u16, roles: u32) {
        if let Some(e) = self.entry(id) {
            e.roles.fetch_or(roles, Relaxed);
        }
    }

    /// Stamps entry `id` with the current time.
    pub(crate) fn touch(&self, id: u16) {
        if let Some(e) = self.entry(id) {
            e.last_activity_ns.store(os::now_unix_ns(), Relaxed);
        }
    }

    /// Whether participant `id` is certainly gone: out of range, free, or its process died.
    /// A BUSY entry is being taken by a live process, so it counts as alive.
    pub(crate) fn is_dead(&self, id: u16) -> bool {
        let Some(e) = self.entry(id) else { return true };
        match entry::state(e.state.load(Acquire)) {
            PARTICIPANT_ACTIVE => !os::process_alive(e.pid.load(Relaxed), e.start_time.load(Relaxed)),
            PARTICIPANT_BUSY => false,
            _ => true,
        }
    }

    /// If participant `id` is dead, takes its entry (BUSY, new generation) so that nobody else
    /// can take it meanwhile, runs `f`, and puts it back ACTIVE (still dead, still listed, and
    /// still to be fully recovered by whoever reuses it). False if it was not dead, or changed.
    pub(crate) fn with_dead(&self, id: u16, f: impl FnOnce()) -> bool {
        let Some(e) = self.entry(id) else { return false };
        let w = e.state.load(Acquire);
        if entry::state(w) != PARTICIPANT_ACTIVE
            || os::process_alive(e.pid.load(Relaxed), e.start_time.load(Relaxed))
            || e.state.compare_exchange(w, entry::take(w, PARTICIPANT_BUSY), Acquire, Relaxed).is_err()
        {
            return false;
        }
        f();
        e.state.store(entry::take(w, PARTICIPANT_ACTIVE), Release);
        true
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
                let pid = e.pid.load(Relaxed);
                Some(ParticipantInfo {
                    id,
                    pid,
                    roles: e.roles.load(Relaxed),
                    alive: os::process_alive(pid, e.start_time.load(Relaxed)),
                    busy: st == PARTICIPANT_BUSY,
                    last_activity_ns: e.last_activity_ns.load(Relaxed),
                })
            })
            .collect()
    }
}
