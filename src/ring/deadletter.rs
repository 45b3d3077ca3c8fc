//! Moving a message from a queue to its dead-letter queue, so that a crash at any point leaves
//! it in exactly one of the two.
//!
//! Moves from one queue are serialized by the queue's move lock (in its [`DeadLetterInfo`]),
//! and only moves write the dead-letter queue (it refuses producers). So the lock's holder is
//! the dead-letter queue's only writer: it writes the letter into the slot at the dead-letter
//! queue's tail `d` *without claiming it*, and the commit (the slot's state from `IDLE(d)` to
//! `IDLE(d+1)`) is the one step that decides where the message is. A slot of the dead-letter
//! queue is never abandoned, so "`d` is committed" can always be told from its state: any state
//! past `IDLE(d)` means committed (consumed or not).
//!
//! ```text
//!  mover (holds the origin's message at p: READING(p+1, me))
//!    1. take the move lock (a dead holder's record is resolved first, see `resolve_locked`)
//!    2. d = dlq tail; slot d must be IDLE(d) (else: full)
//!    3. record {p, d, deliveries, reason}                 REC_MOVING
//!    4. origin p: READING(p+1, me) -> MOVING(p+1, me)
//!    5. write the letter into dlq slot d; IDLE(d) -> IDLE(d+1)   <- the decision
//!    6. dlq tail d -> d+1; origin p: MOVING -> IDLE(p+cap) (freed); record cleared; unlock
//!
//!  the lock's next holder, if the mover died (`resolve_locked`):
//!    dlq slot d past IDLE(d)    -> moved: finish 6
//!    origin p MOVING, d IDLE(d) -> not moved yet: redo 5 and 6 from the record (roll forward)
//!    origin p READING           -> died before 4: nothing moved; the dead reader's recovery
//!                                  delivers it again
//! ```
//!
//! Orderings: the record is written before the origin's MOVING (AcqRel CAS), and the letter
//! before the dead-letter slot's commit (Release), which a consumer of the dead-letter queue
//! reads with Acquire; the lock is taken with AcqRel and given back with Release, so a holder
//! sees everything the previous holder did. A holder that died wrote its last stores before the
//! kernel judged it dead (process exit and the lock query are both full barriers).

use super::RingMem;
use crate::error::{Error, Result};
use crate::layout::slot::{self, pack, IDLE, MOVING, READING};
use crate::layout::{letter, DeadLetterInfo, LETTER_HEADER, LETTER_MAGIC, MAX_REASON, REC_MOVING, REC_NONE};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Lock holder id meaning "free, but a holder's record may need resolving" (its process died
/// and its participant id was taken over).
pub const ORPHANED: u16 = 0xFFFF;

/// The holder of a lock word.
#[inline]
pub fn holder(w: u64) -> u16 {
    (w & 0xFFFF) as u16
}

fn next(w: u64, id: u16) -> u64 {
    ((w >> 16).wrapping_add(1) << 16) | id as u64
}

/// What [`try_lock`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Ours, as this word (give it back with [`unlock`]).
    Taken(u64),
    /// Held by this live participant.
    Busy(u16),
}

/// Takes the move lock for `me` if it is free, orphaned, or held by a participant `is_dead`
/// says is dead. The caller then calls [`resolve_locked`] before anything else.
pub fn try_lock(info: &DeadLetterInfo, me: u16, is_dead: impl Fn(u16) -> bool) -> Lock {
    let w = info.lock.load(Acquire);
    let h = holder(w);
    if h != 0 && h != ORPHANED && (h == me || !is_dead(h)) {
        return Lock::Busy(h);
    }
    let mine = next(w, me);
    // AcqRel: we see the previous holder's record and moves.
    match info.lock.compare_exchange(w, mine, AcqRel, Relaxed) {
        Ok(_) => Lock::Taken(mine),
        Err(now) => Lock::Busy(holder(now)),
    }
}

/// Gives back the lock taken as `mine` (nothing if it changed hands: a peer judged us dead).
pub fn unlock(info: &DeadLetterInfo, mine: u64) {
    // Release: the next holder sees our moves.
    let _ = info.lock.compare_exchange(mine, next(mine, 0), Release, Relaxed);
}

/// Marks the lock orphaned if participant `dead` holds it (its entry is being taken over, so
/// its id will soon look alive again); the record stays for the next holder to resolve.
pub fn orphan(info: &DeadLetterInfo, dead: u16) {
    let w = info.lock.load(Acquire);
    if holder(w) == dead && dead != 0 {
        let _ = info.lock.compare_exchange(w, next(w, ORPHANED), AcqRel, Relaxed);
    }
}

/// What a dead letter says besides its payload.
#[derive(Clone, Copy, Debug)]
pub struct LetterMeta<'a> {
    /// Deliveries the message had.
    pub deliveries: u32,
    /// When its first delivery failed.
    pub first_failed_ns: u64,
    /// Why it is dead (at most [`MAX_REASON`] bytes are kept).
    pub reason: &'a [u8],
    /// Now.
    pub now_ns: u64,
}

/// How a move ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// In the dead-letter queue, at this position.
    To(u64),
    /// The dead-letter queue is full: nothing changed (the caller still holds the message).
    Full,
}

/// Holding the lock, moves the message at `pos` of `origin` (claimed by `me`: READING) into
/// `dlq` (see the module docs).
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours (nothing moved); [`Error::Corrupted`]
/// if a state read from either queue is impossible (the record stays for the next holder).
pub fn move_locked(
    origin: &impl RingMem,
    info: &DeadLetterInfo,
    dlq: &impl RingMem,
    me: u16,
    pos: u64,
    meta: &LetterMeta<'_>,
) -> Result<Moved> {
    move_steps(origin, info, dlq, me, pos, meta, Step::All)
}

/// Where [`move_steps`] stops: a mover that dies there (tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    AfterRecord,
    AfterMoving,
    AfterLetter,
    AfterCommit,
    All,
}

fn move_steps(
    origin: &impl RingMem,
    info: &DeadLetterInfo,
    dlq: &impl RingMem,
    me: u16,
    pos: u64,
    meta: &LetterMeta<'_>,
    stop: Step,
) -> Result<Moved> {
    let Some(d) = free_dlq_slot(dlq)? else { return Ok(Moved::Full) };
    let o = origin.slot(pos);
    let (len, kind) = letter_of(origin, dlq, pos)?;
    // 3. The record, then 4. MOVING (AcqRel: the record is visible to whoever sees MOVING).
    let reason = &meta.reason[..meta.reason.len().min(MAX_REASON)];
    info.rec_pos.store(pos, Relaxed);
    info.rec_dlq_pos.store(d, Relaxed);
    info.rec_deliveries.store(meta.deliveries, Relaxed);
    info.rec_first_failed_ns.store(meta.first_failed_ns, Relaxed);
    store_bytes(&info.rec_reason, reason);
    info.rec_reason_len.store(reason.len() as u32, Relaxed);
    info.rec_state.store(REC_MOVING, Release);
    if stop == Step::AfterRecord {
        return Ok(Moved::To(d));
    }
    let seq = pos.wrapping_add(1);
    if o.state.compare_exchange(pack(seq, READING, me), pack(seq, MOVING, me), AcqRel, Relaxed).is_err() {
        info.rec_state.store(REC_NONE, Release);
        return Err(Error::ClaimRevoked);
    }
    if stop == Step::AfterMoving {
        return Ok(Moved::To(d));
    }
    finish(origin, info, dlq, pos, d, me, len, kind, meta, stop)?;
    Ok(Moved::To(d))
}

/// Holding the lock just taken, resolves the move its previous holder recorded and did not
/// finish (see the module docs). Returns whether a message was moved by this call (rolled
/// forward) or found moved.
///
/// # Errors
/// [`Error::Corrupted`] if the record or a state is impossible (the record is cleared: a
/// hostile record must not stop every later move).
pub fn resolve_locked(origin: &impl RingMem, info: &DeadLetterInfo, dlq: &impl RingMem, me: u16) -> Result<bool> {
    if info.rec_state.load(Acquire) != REC_MOVING {
        return Ok(false);
    }
    let r = resolve_record(origin, info, dlq, me);
    info.rec_state.store(REC_NONE, Release);
    r
}

fn resolve_record(origin: &impl RingMem, info: &DeadLetterInfo, dlq: &impl RingMem, me: u16) -> Result<bool> {
    let (pos, d) = (info.rec_pos.load(Relaxed), info.rec_dlq_pos.load(Relaxed));
    let seq = pos.wrapping_add(1);
    let o = origin.slot(pos);
    let w = o.state.load(Acquire);
    let moving = slot::tag(w) == MOVING && slot::diff(w, seq) == 0;
    // Only lock holders move the dead-letter queue's tail, so for a true record it is `d` (not
    // committed, or committed and not advanced) or `d + 1`. Anything else: the record was
    // written over, and the message (if still MOVING) is moved anew below.
    let tail = dlq.control().tail.0.load(Acquire);
    let true_record = tail == d || tail == d.wrapping_add(1);
    let dw = dlq.slot(d).state.load(Acquire);
    let dd = if true_record { slot::diff(dw, d) } else { 0 };
    if dd >= 1 {
        // Committed (5 done): finish 6.
        let _ = dlq.control().tail.0.compare_exchange(d, d.wrapping_add(1), Release, Relaxed);
        if moving && free_origin(origin, pos, w) {
            origin.control().stats.0.dead_lettered.fetch_add(1, Relaxed);
        }
        return Ok(moving);
    }
    if true_record && (dd != 0 || slot::tag(dw) != IDLE) {
        return Err(Error::corrupted(format!("dead-letter slot state {dw:#x} is impossible for position {d}")));
    }
    if !moving {
        // Died before 4 (the message is a dead reader's, delivered again by its recovery), or
        // the record is stale.
        return Ok(false);
    }
    // Not committed, the message is MOVING: roll forward, as its mover would have.
    let mine = pack(seq, MOVING, me);
    if o.state.compare_exchange(w, mine, AcqRel, Relaxed).is_err() {
        return Ok(false);
    }
    // Only lock holders move the tail, so a true record's `d` is the tail still; a record that
    // says otherwise was written over: use the tail's slot, or, if the dead-letter queue is
    // full, give the message back to be delivered again.
    let d = match free_dlq_slot(dlq)? {
        Some(t) => t,
        None => {
            let reading = pack(seq, READING, me);
            let _ = o.state.compare_exchange(mine, reading, AcqRel, Relaxed);
            super::mpmc::reject(origin, pos, me)?;
            return Ok(false);
        }
    };
    let (len, kind) = letter_of(origin, dlq, pos)?;
    let n = (info.rec_reason_len.load(Relaxed) as usize).min(MAX_REASON);
    let mut reason = [0u8; MAX_REASON];
    load_bytes(&info.rec_reason, &mut reason[..n]);
    let meta = LetterMeta {
        deliveries: info.rec_deliveries.load(Relaxed),
        first_failed_ns: info.rec_first_failed_ns.load(Relaxed),
        reason: &reason[..n],
        now_ns: super::now_unix_ns(),
    };
    finish(origin, info, dlq, pos, d, me, len, kind, &meta, Step::All)?;
    Ok(true)
}

/// The length and kind of the message at `pos` of `origin` (held by the caller), its length
/// checked against both queues (a letter holds a header and the payload).
fn letter_of(origin: &impl RingMem, dlq: &impl RingMem, pos: u64) -> Result<(usize, u32)> {
    let o = origin.slot(pos);
    let (len, kind) = (o.len.load(Relaxed) as usize, o.kind.load(Relaxed));
    if len > origin.max_msg() || LETTER_HEADER + len > dlq.max_msg() {
        return Err(Error::corrupted(format!("message length {len} at position {pos} is impossible")));
    }
    Ok((len, kind))
}

/// Steps 5 and 6 for the message at `pos` (MOVING, held by `me`) into free dead-letter slot `d`.
#[allow(clippy::too_many_arguments)]
fn finish(
    origin: &impl RingMem,
    info: &DeadLetterInfo,
    dlq: &impl RingMem,
    pos: u64,
    d: u64,
    me: u16,
    len: usize,
    kind: u32,
    meta: &LetterMeta<'_>,
    stop: Step,
) -> Result<()> {
    let reason = &meta.reason[..meta.reason.len().min(MAX_REASON)];
    let mut head = [0u8; LETTER_HEADER];
    head[letter::MAGIC..][..8].copy_from_slice(&LETTER_MAGIC.to_le_bytes());
    head[letter::ORIGIN_POS..][..8].copy_from_slice(&pos.to_le_bytes());
    head[letter::FIRST_FAILED..][..8].copy_from_slice(&meta.first_failed_ns.to_le_bytes());
    head[letter::DEAD..][..8].copy_from_slice(&meta.now_ns.to_le_bytes());
    head[letter::DELIVERIES..][..4].copy_from_slice(&meta.deliveries.to_le_bytes());
    head[letter::KIND..][..4].copy_from_slice(&kind.to_le_bytes());
    head[letter::LEN..][..4].copy_from_slice(&(len as u32).to_le_bytes());
    head[letter::REASON_LEN..][..4].copy_from_slice(&(reason.len() as u32).to_le_bytes());
    head[letter::REASON..][..reason.len()].copy_from_slice(reason);
    let out = dlq.payload(d);
    // SAFETY: the dead-letter slot `d` is IDLE(d) (checked by the caller under the move lock):
    // no consumer reads it, and only the lock's holder (us) writes the dead-letter queue; its
    // payload holds max_msg >= LETTER_HEADER + len bytes (checked by the caller). The origin
    // slot is ours (MOVING, `me`), so no producer writes it, and len <= its max_msg.
    unsafe {
        std::ptr::copy_nonoverlapping(head.as_ptr(), out, LETTER_HEADER);
        std::ptr::copy_nonoverlapping(origin.payload(pos), out.add(LETTER_HEADER), len);
    }
    let ds = dlq.slot(d);
    ds.len.store((LETTER_HEADER + len) as u32, Relaxed);
    ds.kind.store(kind, Relaxed);
    if stop == Step::AfterLetter {
        return Ok(());
    }
    // 5. Release: the letter is visible before the slot reads as committed.
    if ds.state.compare_exchange(pack(d, IDLE, 0), pack(d.wrapping_add(1), IDLE, 0), Release, Relaxed).is_err() {
        return Err(Error::corrupted(format!("dead-letter slot {d} changed under the move lock")));
    }
    if stop == Step::AfterCommit {
        return Ok(());
    }
    // 6.
    let _ = dlq.control().tail.0.compare_exchange(d, d.wrapping_add(1), Release, Relaxed);
    let seq = pos.wrapping_add(1);
    if free_origin(origin, pos, pack(seq, MOVING, me)) {
        origin.control().stats.0.dead_lettered.fetch_add(1, Relaxed);
    }
    info.rec_state.store(REC_NONE, Release);
    Ok(())
}

/// Frees origin slot `pos` from state `w` (MOVING) for the next lap.
fn free_origin(origin: &impl RingMem, pos: u64, w: u64) -> bool {
    let free = pack(pos.wrapping_add(origin.capacity()), IDLE, 0);
    // Release: our reads of the payload happen before a producer's writes (its Acquire).
    origin.slot(pos).state.compare_exchange(w, free, Release, Relaxed).is_ok()
}

/// The dead-letter queue's next position if its slot is free; `None` if the queue is full.
/// Only the lock's holder calls this (the only writer): a committed slot at the tail is a
/// previous holder's move that did not advance the tail, which this call does.
fn free_dlq_slot(dlq: &impl RingMem) -> Result<Option<u64>> {
    let cap = dlq.capacity() as i64;
    let tail = &dlq.control().tail.0;
    for _ in 0..4 {
        let d = tail.load(Acquire);
        let w = dlq.slot(d).state.load(Acquire);
        match (slot::diff(w, d), slot::tag(w)) {
            (0, IDLE) => return Ok(Some(d)),
            (1, _) => {
                let _ = tail.compare_exchange(d, d.wrapping_add(1), Release, Relaxed);
            }
            (dd, _) if dd == 1 - cap => return Ok(None),
            _ => {
                return Err(Error::corrupted(format!(
                    "dead-letter queue slot state {w:#x} is impossible at its tail {d}"
                )))
            }
        }
    }
    Ok(None)
}

fn store_bytes(to: &[crate::sync::AtomicU64], from: &[u8]) {
    for (i, chunk) in from.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        to[i].store(u64::from_le_bytes(w), Relaxed);
    }
}

/// Copies `to.len()` bytes (at most the words' bytes) out of `from`.
pub(crate) fn load_bytes(from: &[crate::sync::AtomicU64], to: &mut [u8]) {
    let n = to.len().min(from.len() * 8);
    for (i, chunk) in to[..n].chunks_mut(8).enumerate() {
        let w = from[i].load(Relaxed).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Writes `name` into the info block (creator only, before the segment is ready).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn store_name(info: &DeadLetterInfo, name: &str) {
    store_bytes(&info.name, name.as_bytes());
    info.name_len.store(name.len() as u32, Relaxed);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::DeadLetterInfo;
    use crate::ring::{mpmc, HeapRing, Poll};

    fn info() -> DeadLetterInfo {
        DeadLetterInfo::new()
    }

    /// An origin with messages 0..n (payload [i; 3]) and a claim by `me` on message 0.
    fn setup(n: u8) -> (HeapRing, HeapRing, DeadLetterInfo, u64) {
        let origin = HeapRing::with_deliveries(4, 16);
        let dlq = HeapRing::new(4, 16 + LETTER_HEADER);
        mpmc::init(&origin);
        mpmc::init(&dlq);
        for i in 0..n {
            let Poll::Ready(p) = mpmc::claim_write(&origin, 1).unwrap() else { panic!() };
            // SAFETY: we claimed slot p; 3 <= max_msg.
            unsafe { std::ptr::write_bytes(origin.payload(p), i, 3) };
            mpmc::commit(&origin, p, 1, 3, 40 + i as u32).unwrap();
        }
        let Poll::Ready(msg) = mpmc::claim_read(&origin, 2, 16, &mut 0).unwrap() else { panic!() };
        (origin, dlq, info(), msg.pos)
    }

    fn meta() -> LetterMeta<'static> {
        LetterMeta { deliveries: 3, first_failed_ns: 5, reason: b"bad input", now_ns: 6 }
    }

    /// Where message 0 is: (in the origin, to be delivered again or waiting; letters in the DLQ).
    fn places(origin: &HeapRing, dlq: &HeapRing) -> (bool, Vec<Vec<u8>>) {
        let mut letters = Vec::new();
        while let Poll::Ready(m) = mpmc::claim_read(dlq, 7, usize::MAX, &mut 0).unwrap() {
            // SAFETY: we claimed it; len validated.
            let b = unsafe { std::slice::from_raw_parts(dlq.payload(m.pos), m.len) }.to_vec();
            mpmc::release(dlq, m.pos, 7).unwrap();
            letters.push(b);
        }
        let w = origin.slot(0).state.load(Acquire);
        let in_origin = slot::seq(w) == 1; // READING, RETRY or MOVING of position 0
        (in_origin, letters)
    }

    #[test]
    fn a_whole_move_leaves_the_letter_only() {
        let (origin, dlq, info, pos) = setup(2);
        let Lock::Taken(l) = try_lock(&info, 2, |_| false) else { panic!() };
        assert_eq!(move_locked(&origin, &info, &dlq, 2, pos, &meta()).unwrap(), Moved::To(0));
        unlock(&info, l);
        let (in_origin, letters) = places(&origin, &dlq);
        assert!(!in_origin);
        assert_eq!(letters.len(), 1);
        let l = crate::deadletter::DeadLetter::parse(&letters[0]).unwrap();
        assert_eq!((l.payload, l.kind, l.reason, l.deliveries), (&[0u8; 3][..], 40, "bad input", 3));
        // The next message is still there for consumers.
        let Poll::Ready(m) = mpmc::claim_read(&origin, 2, 16, &mut 0).unwrap() else { panic!() };
        assert_eq!(m.kind, 41);
    }

    /// A mover that dies at each step: the lock's next holder leaves the message in exactly one
    /// of the two queues, and a dead reader's recovery never doubles it.
    #[test]
    fn a_mover_dying_at_any_step_leaves_the_message_in_exactly_one_place() {
        for stop in [Step::AfterRecord, Step::AfterMoving, Step::AfterLetter, Step::AfterCommit] {
            let (origin, dlq, info, pos) = setup(1);
            let Lock::Taken(_) = try_lock(&info, 2, |_| false) else { panic!() };
            move_steps(&origin, &info, &dlq, 2, pos, &meta(), stop).unwrap();
            // Participant 2 dies. A consumer (3) recovers dead readers: only a READING claim is
            // taken over (delivered again); a MOVING one is left to the lock.
            let w = origin.slot(pos).state.load(Acquire);
            let recovered = mpmc::recover(&origin, pos, w, 3);
            assert_eq!(recovered, stop == Step::AfterRecord, "{stop:?}");
            // The next lock holder (3) resolves the record.
            let Lock::Taken(l) = try_lock(&info, 3, |id| id == 2) else { panic!("{stop:?}: the dead holder's lock") };
            let moved = resolve_locked(&origin, &info, &dlq, 3).unwrap();
            unlock(&info, l);
            assert_eq!(moved, stop != Step::AfterRecord, "{stop:?}");
            let (in_origin, letters) = places(&origin, &dlq);
            assert_eq!(
                in_origin as usize + letters.len(),
                1,
                "{stop:?}: in the origin {in_origin}, {} letters",
                letters.len()
            );
            if stop == Step::AfterRecord {
                // Delivered again, counted.
                let Poll::Ready(m) = mpmc::claim_read(&origin, 4, 16, &mut 0).unwrap() else { panic!() };
                assert_eq!((m.pos, mpmc::failed_deliveries(&origin, m.pos)), (pos, Some(1)));
            } else {
                let l = crate::deadletter::DeadLetter::parse(&letters[0]).unwrap();
                assert_eq!((l.payload, l.reason, l.deliveries), (&[0u8; 3][..], "bad input", 3), "{stop:?}");
            }
            assert_eq!(info.rec_state.load(Acquire), REC_NONE);
        }
    }

    #[test]
    fn a_record_written_over_never_loses_the_message() {
        // A dead mover's record whose DLQ position was written over: the letter goes to the tail.
        let (origin, dlq, info, pos) = setup(1);
        let Lock::Taken(_) = try_lock(&info, 2, |_| false) else { panic!() };
        move_steps(&origin, &info, &dlq, 2, pos, &meta(), Step::AfterMoving).unwrap();
        info.rec_dlq_pos.store(12345, Release);
        let Lock::Taken(_) = try_lock(&info, 3, |id| id == 2) else { panic!() };
        assert!(resolve_locked(&origin, &info, &dlq, 3).unwrap());
        let (in_origin, letters) = places(&origin, &dlq);
        assert_eq!((in_origin, letters.len()), (false, 1));
        // The same with a full dead-letter queue: the message goes back to be delivered again.
        let (origin, dlq, info, pos) = setup(1);
        let Lock::Taken(_) = try_lock(&info, 2, |_| false) else { panic!() };
        move_steps(&origin, &info, &dlq, 2, pos, &meta(), Step::AfterMoving).unwrap();
        info.rec_dlq_pos.store(12345, Release);
        for d in 0..4 {
            dlq.slot(d).state.store(pack(d + 1, IDLE, 0), Release);
        }
        dlq.control().tail.0.store(4, Release);
        let Lock::Taken(_) = try_lock(&info, 3, |id| id == 2) else { panic!() };
        assert!(!resolve_locked(&origin, &info, &dlq, 3).unwrap());
        let Poll::Ready(m) = mpmc::claim_read(&origin, 4, 16, &mut 0).unwrap() else { panic!("delivered again") };
        assert_eq!(m.pos, pos);
    }

    #[test]
    fn a_full_dead_letter_queue_changes_nothing() {
        let (origin, dlq, info, pos) = setup(1);
        for _ in 0..4 {
            let d = free_dlq_slot(&dlq).unwrap().unwrap();
            dlq.slot(d).state.store(pack(d + 1, IDLE, 0), Release);
            dlq.control().tail.0.store(d + 1, Release);
        }
        let Lock::Taken(_) = try_lock(&info, 2, |_| false) else { panic!() };
        assert_eq!(move_locked(&origin, &info, &dlq, 2, pos, &meta()).unwrap(), Moved::Full);
        assert_eq!(origin.slot(pos).state.load(Acquire), pack(pos + 1, READING, 2));
        assert_eq!(info.rec_state.load(Acquire), REC_NONE);
    }

    #[test]
    fn the_lock_is_taken_from_the_dead_and_the_orphaned_only() {
        let info = info();
        let Lock::Taken(a) = try_lock(&info, 2, |_| false) else { panic!() };
        assert_eq!(try_lock(&info, 3, |_| false), Lock::Busy(2));
        assert_eq!(try_lock(&info, 2, |_| true), Lock::Busy(2), "our own id is never dead");
        orphan(&info, 2);
        let Lock::Taken(b) = try_lock(&info, 3, |_| false) else { panic!("orphaned") };
        unlock(&info, a); // a stale word: nothing happens
        assert_eq!(holder(info.lock.load(Acquire)), 3);
        unlock(&info, b);
        assert_eq!(holder(info.lock.load(Acquire)), 0);
    }
}
