//! Broadcast ring for topics: one write per message, every subscriber reads it through its
//! own cursor (the LMAX Disruptor shape, with per-slot sequence numbers so that several
//! publishers can claim concurrently and lossy readers can detect being overwritten).
//!
//! `tail` is published with Release and read with Acquire, and a claim CAS is (at least) AcqRel, as in
//! [`super::mpmc`] (so a weakly ordered CPU never pairs a new `tail` with a stale slot state).
//! A reader may still see a slot state a whole number of laps old (its cursor came from
//! elsewhere); that reads as "not yet written", never as corruption.
//!
//! Slot states for message sequence `s` (see [`crate::layout::slot`]):
//!
//! ```text
//!  IDLE(s-cap) --claim--> WRITING(s, me) --commit--> IDLE(s)        (readable as message s)
//!  (or ABANDONED/ABORTED(s-cap))     \--abort--> ABORTED(s)         (skipped by readers)
//!                                    \--writer died--> ABANDONED(s) (skipped by readers)
//! ```
//!
//! A publisher may claim sequence `s` only when `s - gate < capacity`, where `gate` is at most
//! the minimum cursor of the reliable subscribers, so a reliable subscriber's unread slot is
//! never overwritten. Lossy subscribers do not gate: they read like a seqlock reader (load the
//! state, copy, fence, re-load the state) and report a lap instead of returning torn data.
//!
//! `commit` and `abort` are CASes from the exact claimed word, as in [`super::mpmc`]: a publisher
//! whose claim was revoked gets [`Error::ClaimRevoked`] and leaves the slot as the peer set it.
//!
//! The claim CAS is SeqCst: a subscriber that joins bumps the subscriber epoch (SeqCst) and
//! then issues a SeqCst fence before it reads any slot, and a publisher loads the epoch again
//! (SeqCst) right after its claim (see `topic::publisher`). Either the publisher sees the new
//! epoch, and then waits for the joiner before it writes, or the joiner's reads see the claim,
//! and then read the slot as overwritten rather than as the old message. (On x86 a SeqCst CAS
//! and load cost what AcqRel and Acquire do.)
//!
//! Orderings: `commit` CASes the state with Release after writing len/kind/payload; readers
//! load it with Acquire (pairs with it). A reliable subscriber stores its cursor with Release
//! after its last read of a slot; publishers load cursors with Acquire when computing the
//! gate (pairs with it), before claiming and overwriting. The claim CAS and the `tail` hint
//! are Relaxed: the slot state is validated against the position on every step.

use super::{Poll, RingMem, MAX_CLAIM_ROUNDS};
use crate::error::{Error, Result};
use crate::layout::slot::{self, pack, ABANDONED, ABORTED, IDLE, LOANED, PENDING, WRITING};
use crate::sync::{
    fence,
    Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst},
};

/// Puts every slot in its initial state: slot `i` holds the (nonexistent) message `i - cap`.
pub fn init(m: &impl RingMem) {
    let cap = m.capacity();
    for i in 0..cap {
        m.slot(i).state.store(pack(i.wrapping_sub(cap), IDLE, 0), Relaxed);
    }
}

/// Claims the next sequence for publisher `me`, if `seq - gate < capacity`.
///
/// `Ready(seq)`: commit or abort it. `NotReady`: the gate is a full ring behind (the caller
/// re-computes the gate and tries again, or waits). `Held`: the previous lap's writer of this
/// slot has not committed (it may be dead).
pub fn claim(m: &impl RingMem, me: u16, gate: u64) -> Result<Poll> {
    claim_as(m, me, gate, WRITING)
}

/// [`claim`] for a loan (the slot is marked [`LOANED`]); publish it with [`commit_loan`].
pub fn claim_loan(m: &impl RingMem, me: u16, gate: u64) -> Result<Poll> {
    claim_as(m, me, gate, LOANED)
}

fn claim_as(m: &impl RingMem, me: u16, gate: u64, tag: u64) -> Result<Poll> {
    let ctl = m.control();
    let cap = m.capacity() as i64;
    let mut pos = ctl.tail.0.load(Acquire);
    for _ in 0..MAX_CLAIM_ROUNDS {
        // A gate ahead of `pos` (a subscriber that joined at a newer tail) does not block.
        if pos.wrapping_sub(gate) as i64 >= cap {
            return Ok(Poll::NotReady);
        }
        let s = m.slot(pos);
        // Acquire: the previous writer's commit of this slot is visible before we claim it.
        let w = s.state.load(Acquire);
        match (slot::diff(w, pos), slot::tag(w)) {
            (d, IDLE | ABANDONED | ABORTED) if d == -cap => {
                if s.state.compare_exchange_weak(w, pack(pos, tag, me), SeqCst, Relaxed).is_ok() {
                    // Seqlock writer: the Release fence orders the WRITING state before every
                    // len/kind/payload write that follows; it pairs with the Acquire fence in
                    // `still_intact`, so a lossy reader that read any of our new bytes sees at
                    // least WRITING when it re-checks (found by loom, tests/loom_topic.rs).
                    fence(Release);
                    let _ = ctl.tail.0.compare_exchange(pos, pos.wrapping_add(1), Release, Relaxed);
                    return Ok(Poll::Ready(pos));
                }
                continue;
            }
            (d, WRITING | LOANED | PENDING) if d == -cap => return Ok(Poll::Held { pos, word: w }),
            // Already claimed for this sequence: tail is stale, help advance it.
            (0, _) => {
                pos = match ctl.tail.0.compare_exchange(pos, pos.wrapping_add(1), Release, Acquire) {
                    Ok(_) => pos.wrapping_add(1),
                    Err(now) => now,
                };
                continue;
            }
            _ => {}
        }
        let now = ctl.tail.0.load(Acquire);
        if now == pos {
            return Err(Error::corrupted(format!(
                "topic slot state {w:#x} is impossible for the publisher at sequence {pos}"
            )));
        }
        pos = now;
    }
    Ok(Poll::NotReady)
}

/// Publishes message `seq` (claimed by `claim` for `me`).
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours (a peer judged us dead and marked the
/// message abandoned): nothing is published.
#[inline]
pub fn commit(m: &impl RingMem, seq: u64, me: u16, len: usize, kind: u32) -> Result<()> {
    commit_as(m, seq, me, len, kind, WRITING)
}

/// [`commit`] of a sequence claimed with [`claim_loan`].
///
/// # Errors
/// As for [`commit`].
#[inline]
pub fn commit_loan(m: &impl RingMem, seq: u64, me: u16, len: usize, kind: u32) -> Result<()> {
    commit_as(m, seq, me, len, kind, LOANED)
}

#[inline]
fn commit_as(m: &impl RingMem, seq: u64, me: u16, len: usize, kind: u32, tag: u64) -> Result<()> {
    let s = m.slot(seq);
    s.len.store(len as u32, Relaxed);
    s.kind.store(kind, Relaxed);
    // Release: pairs with the readers' Acquire load in `read`.
    match s.state.compare_exchange(pack(seq, tag, me), pack(seq, IDLE, 0), Release, Relaxed) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::ClaimRevoked),
    }
}

/// Gives back claimed sequence `seq` (claimed for `me`) without a message; readers skip it.
///
/// # Errors
/// [`Error::ClaimRevoked`] as for [`commit`] (then nothing is counted: the peer counted it).
pub fn abort(m: &impl RingMem, seq: u64, me: u16) -> Result<()> {
    let s = m.slot(seq);
    let to = pack(seq, ABORTED, 0);
    let r = [WRITING, LOANED, PENDING]
        .into_iter()
        .find_map(|tag| s.state.compare_exchange(pack(seq, tag, me), to, Release, Relaxed).ok());
    match r {
        Some(_) => {
            m.control().stats.0.aborted.fetch_add(1, Relaxed);
            Ok(())
        }
        None => Err(Error::ClaimRevoked),
    }
}

/// Marks sequence `seq`, claimed by `me` with `tag` ([`WRITING`] or [`LOANED`]) and not yet
/// touched, [`PENDING`]: a reader a lap behind may read the message the slot still holds.
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours.
pub fn pend(m: &impl RingMem, seq: u64, me: u16, tag: u64) -> Result<()> {
    let s = m.slot(seq);
    // Relaxed suffices: nothing of ours is published by this state (readers of the old message
    // got it through its commit); a reader that sees PENDING reads the old message, and we do
    // not touch the slot before `resume`, which follows their cursors' Release stores.
    match s.state.compare_exchange(pack(seq, tag, me), pack(seq, PENDING, me), Relaxed, Relaxed) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::ClaimRevoked),
    }
}

/// Takes sequence `seq` back from [`PENDING`] to `tag`, once no reader needs what the slot held.
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours.
pub fn resume(m: &impl RingMem, seq: u64, me: u16, tag: u64) -> Result<()> {
    let s = m.slot(seq);
    // AcqRel: as the claim CAS (see `claim`): a lossy reader that reads any byte we write next
    // sees at least this state when it re-checks.
    match s.state.compare_exchange(pack(seq, PENDING, me), pack(seq, tag, me), AcqRel, Relaxed) {
        Ok(_) => {
            fence(Release);
            Ok(())
        }
        Err(_) => Err(Error::ClaimRevoked),
    }
}

/// What a reader found at its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Message `cursor` is committed: its length (validated), kind and the state word to
    /// re-check after copying (lossy readers).
    Ready {
        /// Payload length, at most max_msg.
        len: usize,
        /// Kind tag.
        kind: u32,
        /// The state word seen.
        word: u64,
    },
    /// No message at this sequence (aborted, or its writer died): move on.
    Skip,
    /// Not yet written.
    NotReady,
    /// Being written by the claimer in `word` (who may be dead).
    Held {
        /// The state word seen.
        word: u64,
    },
    /// Overwritten: the slot now holds a later message `seq`.
    Lapped {
        /// The sequence the slot holds now.
        seq: u64,
    },
}

/// Looks at message `cursor`.
///
/// `awaited`: whether publishers wait for this reader before they write a slot it may be
/// reading (a reliable subscriber reading its history, see `topic::publisher`). Such a reader
/// finds its message in a slot claimed a lap later but [`PENDING`] (the publisher waits for it,
/// the message is intact): `Ready`; and in a slot claimed a lap later and maybe being written:
/// `Held` (either the publisher writes, and then the message is lapped, or it turns the claim
/// PENDING; the reader waits to see which). Any other reader finds both lapped.
#[inline]
pub fn read(m: &impl RingMem, cursor: u64, awaited: bool) -> Result<Read> {
    let s = m.slot(cursor);
    let cap = m.capacity() as i64;
    // Acquire: pairs with the Release store in `commit`.
    let w = s.state.load(Acquire);
    let d = slot::diff(w, cursor);
    Ok(match (d, slot::tag(w)) {
        (0, IDLE) => {
            let len = s.len.load(Relaxed) as usize;
            let kind = s.kind.load(Relaxed);
            if len > m.max_msg() {
                // A lossy reader may see a half-written length of a slot being reused; a
                // re-check tells that apart from corruption.
                if s.state.load(Acquire) != w {
                    return Ok(Read::Lapped { seq: cursor.wrapping_add(cap as u64) });
                }
                return Err(Error::corrupted(format!(
                    "message length {len} exceeds the maximum {} at sequence {cursor}",
                    m.max_msg()
                )));
            }
            Read::Ready { len, kind, word: w }
        }
        (0, ABANDONED | ABORTED) => Read::Skip,
        (0, WRITING | LOANED | PENDING) => Read::Held { word: w },
        (d, PENDING) if d == cap && awaited => {
            let len = s.len.load(Relaxed) as usize;
            if len > m.max_msg() {
                return Err(Error::corrupted(format!(
                    "message length {len} exceeds the maximum {} at sequence {cursor}",
                    m.max_msg()
                )));
            }
            Read::Ready { len, kind: s.kind.load(Relaxed), word: w }
        }
        (d, WRITING | LOANED) if d == cap && awaited => Read::Held { word: w },
        (d, _) if d < 0 && d >= -cap => Read::NotReady,
        // A state whole laps old: a write we do not see yet (weakly ordered CPUs).
        (d, _) if d < 0 && d % cap == 0 => Read::NotReady,
        (d, _) if d > 0 && d % cap == 0 => Read::Lapped { seq: cursor.wrapping_add(d as u64) },
        // Between laps a slot may be claimed for a later sequence that is not a whole number
        // of laps away only if memory is corrupted.
        _ => {
            return Err(Error::corrupted(format!(
                "topic slot state {w:#x} is impossible for the reader at sequence {cursor}"
            )))
        }
    })
}

/// After copying message `cursor` read with state `word`: whether the copy is intact (the slot
/// was not reclaimed meanwhile). Needed by lossy readers only.
#[inline]
pub fn still_intact(m: &impl RingMem, cursor: u64, word: u64) -> bool {
    // Acquire fence: orders our payload reads before the re-load (seqlock reader).
    fence(Acquire);
    m.slot(cursor).state.load(Relaxed) == word
}

/// Marks message `seq`, held by a dead writer (`word` from `Read::Held` or `Poll::Held`), as
/// abandoned. Returns whether this call did it.
pub fn recover(m: &impl RingMem, seq: u64, word: u64) -> bool {
    if !slot::is_write_claim(slot::tag(word)) {
        return false;
    }
    let new = pack(word >> 16, ABANDONED, 0);
    if m.slot(seq).state.compare_exchange(word, new, Release, Relaxed).is_ok() {
        m.control().stats.0.abandoned.fetch_add(1, Relaxed);
        true
    } else {
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::HeapRing;

    fn publish(m: &HeapRing, gate: u64, kind: u32) -> Option<u64> {
        match claim(m, 1, gate).unwrap() {
            Poll::Ready(s) => {
                commit(m, s, 1, 0, kind).unwrap();
                Some(s)
            }
            _ => None,
        }
    }

    #[test]
    fn reliable_gate_stops_publisher_a_full_ring_ahead() {
        let m = HeapRing::new(4, 8);
        init(&m);
        for i in 0..4 {
            assert_eq!(publish(&m, 0, i), Some(i as u64));
        }
        assert_eq!(publish(&m, 0, 9), None);
        assert_eq!(read(&m, 0, false).unwrap(), Read::Ready { len: 0, kind: 0, word: pack(0, IDLE, 0) });
        assert_eq!(publish(&m, 1, 4), Some(4));
        assert_eq!(read(&m, 5, false).unwrap(), Read::NotReady);
    }

    #[test]
    fn lossy_reader_sees_lap_and_abandoned_slots_are_skipped() {
        let m = HeapRing::new(2, 8);
        init(&m);
        for i in 0..5u64 {
            publish(&m, i, 0);
        }
        // Slot 0 holds message 4 now: a reader at 0 or 2 was lapped.
        assert_eq!(read(&m, 0, false).unwrap(), Read::Lapped { seq: 4 });
        assert_eq!(read(&m, 2, false).unwrap(), Read::Lapped { seq: 4 });
        let Poll::Ready(s) = claim(&m, 3, 5).unwrap() else { panic!() };
        let Read::Held { word } = read(&m, s, false).unwrap() else { panic!() };
        assert!(recover(&m, s, word));
        assert!(matches!(commit(&m, s, 3, 1, 0), Err(Error::ClaimRevoked)), "the revoked writer is told");
        assert_eq!(read(&m, s, false).unwrap(), Read::Skip);
        assert_eq!(publish(&m, 6, 0), Some(6));
        assert_eq!(publish(&m, 7, 0), Some(7)); // slot of the abandoned message is reusable
    }

    #[test]
    fn impossible_states_are_errors() {
        let m = HeapRing::new(4, 8);
        init(&m);
        m.slot(1).state.store(pack(3, IDLE, 0), Release);
        assert!(matches!(read(&m, 1, false), Err(Error::Corrupted(_))));
        m.slot(0).state.store(pack(0, IDLE, 0), Release);
        m.slot(0).len.store(99, Release);
        assert!(matches!(read(&m, 0, false), Err(Error::Corrupted(_))));
    }
}
