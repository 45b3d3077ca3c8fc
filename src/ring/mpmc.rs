//! Bounded multi-producer multi-consumer ring: Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>), with the
//! claim moved onto the slot so that a participant that dies holding a slot can be found.
//!
//! Every slot has a state word `[seq:48 | tag:4 | claimer:12]` (see [`crate::layout::slot`]).
//! For the producer position `p` that maps to a slot, the slot goes through:
//!
//! ```text
//!  IDLE(p) --claim--> WRITING(p, me) --commit--> IDLE(p+1) --claim--> READING(p+1, c)
//!     |               (LOANED for a loan)                                            |
//!     ^                        \--abort--> ABORTED(p+1) --skip--/            |
//!     |                        \--writer died--> ABANDONED(p+1) --skip--/    |
//!     +------------------------ IDLE(p+cap) <-------release-------------------+
//! ```
//!
//! A producer claims by CAS on the slot's state (not on `tail`), records itself as claimer,
//! then advances `tail` by CAS; anyone who finds the slot at `tail` already claimed helps
//! advance `tail`, so a producer that dies right after its claim stalls nobody. Consumers do
//! the same with `head`. Each message therefore goes to exactly one consumer, and each
//! producer's messages keep their order (it claims increasing positions).
//!
//! Every transition out of a claimed state (`commit`, `abort`, `release`, `recover`) is a CAS
//! from the exact claimed word: a claimer whose claim a peer revoked (judging it dead) learns
//! it from the failed CAS ([`Error::ClaimRevoked`]) and never overwrites the slot's new state.
//!
//! Orderings: `commit` CASes IDLE(p+1) with Release after writing len/kind/payload; a consumer
//! loads the state with Acquire (pairs with it) before reading len and claiming. `release`
//! CASes IDLE(p+cap) with Release after the consumer's last read of the payload; a producer
//! loads the state with Acquire (pairs with it) before claiming the slot and overwriting it.
//! `tail` and `head` are published with Release (the index CASes) and read with Acquire, and
//! a successful claim CAS is AcqRel: whoever sees that position `p` was claimed also sees every
//! claim before `p` and the slot states they saw. With Relaxed here, a thread on a weakly
//! ordered CPU (ARM, POWER) could see a new `tail` beside a slot state from the previous lap
//! and report a healthy ring as corrupted (found by loom, `tests/loom.rs`). On x86 these
//! orderings cost nothing.

use super::{Msg, Poll, RingMem, MAX_CLAIM_ROUNDS};
use crate::error::{Error, Result};
use crate::layout::slot::{self, pack, ABANDONED, ABORTED, IDLE, LOANED, MOVING, READING, RETRY, WRITING};
use crate::layout::CAUSE_CONSUMER_DIED;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Puts every slot in its initial state (slot `i` free for position `i`). Creator only.
pub fn init(m: &impl RingMem) {
    for i in 0..m.capacity() {
        m.slot(i).state.store(pack(i, IDLE, 0), Relaxed);
    }
}

/// Claims the slot at the producer position for participant `me`, to copy a message in.
///
/// `Ready(pos)`: the caller owns slot `pos` and must `commit` or `abort` it.
/// `NotReady`: the ring is full. `Held`: full, and the slot is held by a claimer that might
/// be dead.
pub fn claim_write(m: &impl RingMem, me: u16) -> Result<Poll> {
    claim_write_as(m, me, WRITING)
}

/// [`claim_write`] for a loan (the slot is marked [`LOANED`]); publish it with
/// [`commit_loan`].
pub fn claim_loan(m: &impl RingMem, me: u16) -> Result<Poll> {
    claim_write_as(m, me, LOANED)
}

fn claim_write_as(m: &impl RingMem, me: u16, tag: u64) -> Result<Poll> {
    let ctl = m.control();
    let cap = m.capacity() as i64;
    let mut pos = ctl.tail.0.load(Acquire);
    for _ in 0..MAX_CLAIM_ROUNDS {
        let s = m.slot(pos);
        // Acquire: pairs with the Release store in `release` (or `recover`), so the previous
        // reader of this slot is done with it before we write.
        let w = s.state.load(Acquire);
        let d = slot::diff(w, pos);
        match (d, slot::tag(w)) {
            (0, IDLE) => {
                if s.state.compare_exchange_weak(w, pack(pos, tag, me), AcqRel, Relaxed).is_ok() {
                    // Help-style advance: if someone already moved tail on, that is fine.
                    let _ = ctl.tail.0.compare_exchange(pos, pos.wrapping_add(1), Release, Relaxed);
                    return Ok(Poll::Ready(pos));
                }
                continue;
            }
            // Claimed (or further along) for this position: tail is stale, help advance it.
            (0, WRITING | LOANED) | (1, _) => {
                pos = advance(&ctl.tail.0, pos);
                continue;
            }
            // Last lap's message not yet consumed: full.
            (d, IDLE | ABORTED | ABANDONED) if d == 1 - cap => return Ok(Poll::NotReady),
            // Last lap's message rejected, waiting to be delivered again: full; and make sure
            // consumers know it waits (the hint may count too few).
            (d, RETRY) if d == 1 - cap => {
                if retries::pending(ctl.stats.0.retry_pending.load(Acquire)) == 0 {
                    retries::mark(&ctl.stats.0.retry_pending);
                }
                return Ok(Poll::NotReady);
            }
            // Last lap's message being moved to the dead-letter queue: full, and the mover could
            // be dead (then the move lock's next holder finishes the move).
            (d, MOVING) if d == 1 - cap => return Ok(Poll::Held { pos, word: w }),
            // Last lap's message being read, or last lap's writer still writing: full, and the
            // holder could be dead.
            (d, READING) if d == 1 - cap => return Ok(Poll::Held { pos, word: w }),
            (d, WRITING | LOANED) if d == -cap => return Ok(Poll::Held { pos, word: w }),
            _ => {}
        }
        // Any other state only makes sense if `pos` is stale.
        let now = ctl.tail.0.load(Acquire);
        if now == pos {
            if d >= cap {
                // Consumed and freed for a later lap, tail a lap behind: help.
                pos = advance(&ctl.tail.0, pos);
                if d > cap + 1 {
                    return Err(bad_state(w, pos, "producer"));
                }
                continue;
            }
            return Err(bad_state(w, pos, "producer"));
        }
        pos = now;
    }
    Ok(Poll::NotReady)
}

/// Publishes the message written into slot `pos` (claimed by `claim_write` for `me`).
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours (a peer judged us dead and marked the
/// slot abandoned): nothing is published, the slot's state is left as the peer set it.
#[inline]
pub fn commit(m: &impl RingMem, pos: u64, me: u16, len: usize, kind: u32) -> Result<()> {
    commit_as(m, pos, pack(pos, WRITING, me), len, kind)
}

/// [`commit`] of a slot claimed with [`claim_loan`].
///
/// # Errors
/// As for [`commit`].
#[inline]
pub fn commit_loan(m: &impl RingMem, pos: u64, me: u16, len: usize, kind: u32) -> Result<()> {
    commit_as(m, pos, pack(pos, LOANED, me), len, kind)
}

#[inline]
fn commit_as(m: &impl RingMem, pos: u64, claimed: u64, len: usize, kind: u32) -> Result<()> {
    let s = m.slot(pos);
    s.len.store(len as u32, Relaxed);
    s.kind.store(kind, Relaxed);
    // Release: pairs with the consumer's Acquire load in `claim_read`: len, kind and payload
    // are visible before the slot reads as committed.
    transition(s, claimed, pack(pos.wrapping_add(1), IDLE, 0))
}

/// Gives back slot `pos` (claimed by `claim_write` for `me`) without a message; consumers skip
/// it.
///
/// # Errors
/// [`Error::ClaimRevoked`] as for [`commit`] (then nothing is counted: the peer counted it).
pub fn abort(m: &impl RingMem, pos: u64, me: u16) -> Result<()> {
    let s = m.slot(pos);
    let to = pack(pos.wrapping_add(1), ABORTED, 0);
    transition(s, pack(pos, WRITING, me), to).or_else(|_| transition(s, pack(pos, LOANED, me), to))?;
    m.control().stats.0.aborted.fetch_add(1, Relaxed);
    Ok(())
}

/// Moves a slot out of the claimed state `from` (Release), or reports that the claim was
/// revoked.
#[inline]
fn transition(s: &crate::layout::SlotHeader, from: u64, to: u64) -> Result<()> {
    match s.state.compare_exchange(from, to, Release, Relaxed) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::ClaimRevoked),
    }
}

/// Claims the next message for participant `me`, if its length is at most `max_len`.
///
/// `Ready(msg)`: the caller owns the message in slot `msg.pos` and must `release` it; `msg.len`
/// (validated) is the only length to use.
/// `NotReady`: empty. `Held`: empty, and a writer that might be dead holds the next slot.
/// `Err(BufferTooSmall)`: the next message is longer than `max_len` (not consumed).
/// `Err(Corrupted)`: the next slot held an impossible length; it was skipped.
///
/// `freed` counts the slots this call freed for producers by skipping them (aborted or
/// abandoned): the caller wakes sleeping producers if it is not zero, whatever the result.
pub fn claim_read(m: &impl RingMem, me: u16, max_len: usize, freed: &mut u32) -> Result<Poll<Msg>> {
    let ctl = m.control();
    // Acquire: pairs with the Release mark in `reject` (and `recover`), which comes after the
    // slot's move to RETRY: a scan that follows sees that slot.
    let hint = ctl.stats.0.retry_pending.load(Acquire);
    if retries::pending(hint) > 0 {
        if let Some(msg) = claim_retry(m, me, max_len, hint)? {
            return Ok(Poll::Ready(msg));
        }
    }
    let cap = m.capacity() as i64;
    let mut pos = ctl.head.0.load(Acquire);
    for _ in 0..MAX_CLAIM_ROUNDS {
        let s = m.slot(pos);
        // Acquire: pairs with the Release store in `commit`, so len/kind/payload are visible.
        let w = s.state.load(Acquire);
        let d = slot::diff(w, pos);
        match (d, slot::tag(w)) {
            // Nothing to deliver (aborted, or its writer died): free it for the next lap in one
            // step (so no reader ever holds it) and look at the next position.
            (1, ABORTED | ABANDONED) => {
                if s.state
                    .compare_exchange_weak(w, pack(pos.wrapping_add(m.capacity()), IDLE, 0), AcqRel, Relaxed)
                    .is_ok()
                {
                    *freed += 1;
                    pos = advance(&ctl.head.0, pos);
                }
                continue;
            }
            (1, IDLE) => {
                let len = s.len.load(Relaxed) as usize;
                let kind = s.kind.load(Relaxed);
                if len <= m.max_msg() && len > max_len {
                    return Err(Error::BufferTooSmall { len: max_len, needed: len });
                }
                if s.state.compare_exchange_weak(w, pack(pos.wrapping_add(1), READING, me), AcqRel, Relaxed).is_err() {
                    continue;
                }
                let _ = ctl.head.0.compare_exchange(pos, pos.wrapping_add(1), Release, Relaxed);
                if len > m.max_msg() {
                    if release(m, pos, me).is_ok() {
                        *freed += 1;
                    }
                    return Err(Error::corrupted(format!(
                        "message length {len} exceeds the maximum {} (message skipped)",
                        m.max_msg()
                    )));
                }
                return Ok(Poll::Ready(Msg { pos, len, kind }));
            }
            // Empty.
            (0, IDLE) => return Ok(Poll::NotReady),
            // A producer is writing the next message: empty for now, the writer might be dead.
            (0, WRITING | LOANED) => return Ok(Poll::Held { pos, word: w }),
            // Another consumer claimed it (and may have rejected it, or be moving it to the
            // dead-letter queue): help advance head.
            (1, READING | RETRY | MOVING) => {
                pos = advance(&ctl.head.0, pos);
                continue;
            }
            // The previous lap's reader still holds the slot, so nothing new can be in it.
            (d, READING) if d == 1 - cap => return Ok(Poll::Held { pos, word: w }),
            // The previous lap's message waits to be delivered again (found by the retry scan)
            // or is being moved: nothing new here yet.
            (d, RETRY | MOVING) if d == 1 - cap => return Ok(Poll::NotReady),
            _ => {}
        }
        let now = ctl.head.0.load(Acquire);
        if now == pos {
            if (cap..=cap + 1).contains(&d) {
                // Already consumed and freed for the next lap: head is stale, help.
                pos = advance(&ctl.head.0, pos);
                continue;
            }
            return Err(bad_state(w, pos, "consumer"));
        }
        pos = now;
    }
    Ok(Poll::NotReady)
}

/// What a consumer would find at the head now, without claiming anything: `Ready` if a
/// message is there (or a slot to skip, or anything a claim would have to look at more
/// closely: spurious readiness is allowed), `NotReady` if the queue is empty, `Held` if the
/// next message is being written by the claimer in `word` (who may be dead).
pub fn peek(m: &impl RingMem) -> Poll<()> {
    if retries::pending(m.control().stats.0.retry_pending.load(Acquire)) > 0 {
        return Poll::Ready(());
    }
    let pos = m.control().head.0.load(Acquire);
    let w = m.slot(pos).state.load(Acquire);
    let d = slot::diff(w, pos);
    match (d, slot::tag(w)) {
        (0, IDLE) => Poll::NotReady,
        (0, WRITING | LOANED) => Poll::Held { pos, word: w },
        (d, READING | RETRY | MOVING) if d == 1 - m.capacity() as i64 => Poll::NotReady,
        _ => Poll::Ready(()),
    }
}

/// Frees slot `pos` (claimed by `claim_read` for `me`) for the producer one lap later.
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours (a peer judged us dead and freed the
/// slot, counting the message lost): a producer may be writing the slot now, so whatever was
/// read from it since the claim must be discarded.
#[inline]
pub fn release(m: &impl RingMem, pos: u64, me: u16) -> Result<()> {
    // Release: pairs with the producer's Acquire load in `claim_write`: our payload reads
    // happen before its writes.
    transition(m.slot(pos), pack(pos.wrapping_add(1), READING, me), pack(pos.wrapping_add(m.capacity()), IDLE, 0))
}

/// Frees a slot held by a dead claimer (`word` as returned in `Poll::Held`), for participant
/// `me`. A dead writer's slot becomes ABANDONED (skipped by consumers). A dead reader's message
/// is, in a queue that counts deliveries (one with dead letters), delivered again: `me` takes
/// the claim over, counts the failed delivery and rejects it (RETRY); elsewhere it is counted as
/// lost and its slot freed. A message being moved (MOVING) is left to the move lock's holder.
/// Returns whether this call did it (false if the state moved on).
pub fn recover(m: &impl RingMem, pos: u64, word: u64, me: u16) -> bool {
    let s = m.slot(pos);
    let seq = word >> 16;
    match slot::tag(word) {
        WRITING | LOANED => {
            // Release: the freed slot is published like a commit.
            let new = pack(seq.wrapping_add(1), ABANDONED, 0);
            let ok = s.state.compare_exchange(word, new, Release, Relaxed).is_ok();
            if ok {
                m.control().stats.0.abandoned.fetch_add(1, Relaxed);
            }
            ok
        }
        READING => {
            let at = seq.wrapping_sub(1);
            if let Some(e) = m.delivery(at) {
                // Take the claim over first (AcqRel: we see what the dead reader's claim saw),
                // so that only one recoverer counts the failed delivery.
                let mine = pack(seq, READING, me);
                if s.state.compare_exchange(word, mine, AcqRel, Relaxed).is_err() {
                    return false;
                }
                count_failure(e, at, CAUSE_CONSUMER_DIED, 0, super::now_unix_ns());
                m.control().stats.0.redelivered_after_crash.fetch_add(1, Relaxed);
                return reject(m, at, me).is_ok();
            }
            // Release: pairs with the producer's Acquire before it overwrites the slot.
            let new = pack(seq.wrapping_sub(1).wrapping_add(m.capacity()), IDLE, 0);
            let ok = s.state.compare_exchange(word, new, Release, Relaxed).is_ok();
            if ok {
                m.control().stats.0.lost_by_crash.fetch_add(1, Relaxed);
            }
            ok
        }
        _ => false,
    }
}

/// Rejects the message claimed at `pos` by `me`: it stays in its slot, in state RETRY, until a
/// consumer's retry scan claims it again (producers treat it as unconsumed).
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours.
pub fn reject(m: &impl RingMem, pos: u64, me: u16) -> Result<()> {
    let seq = pos.wrapping_add(1);
    // Release: the delivery count written before is visible to whoever claims the retry.
    transition(m.slot(pos), pack(seq, READING, me), pack(seq, RETRY, 0))?;
    // After the slot's move: a consumer that sees the mark (Acquire) finds the slot.
    retries::mark(&m.control().stats.0.retry_pending);
    Ok(())
}

/// The failed deliveries of the message at `pos` so far (0 for a message never rejected;
/// `None` in a queue that counts none). The caller holds the message's claim.
pub fn failed_deliveries(m: &impl RingMem, pos: u64) -> Option<u32> {
    let e = m.delivery(pos)?;
    Some(if e.key.load(Relaxed) == pos.wrapping_add(1) { e.count.load(Relaxed) } else { 0 })
}

/// Counts one more failed delivery of the message at `pos` (claimed by the caller).
pub fn count_failure(e: &crate::layout::DeliveryEntry, pos: u64, cause: u32, pid: u32, now_ns: u64) {
    let key = pos.wrapping_add(1);
    if e.key.load(Relaxed) == key {
        e.count.store(e.count.load(Relaxed).saturating_add(1), Relaxed);
    } else {
        e.key.store(key, Relaxed);
        e.count.store(1, Relaxed);
        e.first_failed_ns.store(now_ns, Relaxed);
    }
    e.cause.store(cause, Relaxed);
    e.last_pid.store(pid, Relaxed);
}

/// Claims a rejected message waiting in state RETRY, if the scan finds one; `hint` is the
/// [`retries`] word read before, reset (if unchanged) when the scan finds none.
pub fn claim_retry(m: &impl RingMem, me: u16, max_len: usize, hint: u64) -> Result<Option<Msg>> {
    let ctl = m.control();
    let cap = m.capacity();
    let head = ctl.head.0.load(Acquire);
    for i in 0..cap {
        let s = m.slot(i);
        // Acquire: pairs with the Release of `reject`: the length, kind and count are visible.
        let w = s.state.load(Acquire);
        if slot::tag(w) != RETRY {
            continue;
        }
        // A rejected message's position lies in [head - cap, head] (its slot is not reused
        // while it waits, and head passed it), and in slot i; anything else is not one.
        let d = slot::diff(w, head);
        if !(1 - cap as i64..=1).contains(&d) {
            continue;
        }
        let pos = head.wrapping_add(d as u64).wrapping_sub(1);
        if pos & (cap - 1) != i {
            continue;
        }
        let len = s.len.load(Relaxed) as usize;
        let kind = s.kind.load(Relaxed);
        if len <= m.max_msg() && len > max_len {
            return Err(Error::BufferTooSmall { len: max_len, needed: len });
        }
        if s.state.compare_exchange(w, pack(pos.wrapping_add(1), READING, me), AcqRel, Relaxed).is_err() {
            continue;
        }
        retries::took(&ctl.stats.0.retry_pending);
        if len > m.max_msg() {
            let _ = release(m, pos, me);
            return Err(Error::corrupted(format!(
                "message length {len} exceeds the maximum {} (message skipped)",
                m.max_msg()
            )));
        }
        return Ok(Some(Msg { pos, len, kind }));
    }
    // None waits: the hint counts too many (a taker died before counting its take, or the word
    // was written over). Reset it, unless it moved meanwhile.
    retries::reset(&ctl.stats.0.retry_pending, hint);
    Ok(None)
}

/// Counts the slots waiting in state RETRY (a look at every slot) and, if there are some while
/// the hint counts none, marks one so that consumers look: the safety net for a hint that
/// counts too few (a rejecter killed between its RETRY and its mark, or a take counted after a
/// reset). Consumers call it at most every 10 ms while they find nothing; a producer calls it
/// when the slot it needs holds a rejected message.
pub fn rescan_retries(m: &impl RingMem) -> u64 {
    let n = (0..m.capacity()).filter(|&i| slot::tag(m.slot(i).state.load(Acquire)) == RETRY).count() as u64;
    let hint = &m.control().stats.0.retry_pending;
    if n > 0 && retries::pending(hint.load(Acquire)) == 0 {
        retries::mark(hint);
    }
    n
}

/// The retry hint (`Stats::retry_pending`): two counters in one word, `[marks:32 | takes:32]`,
/// so that a reset (takes := marks, after a scan that found nothing) fails if anything was
/// marked or taken since the word was read, however the two moved (no ABA).
pub mod retries {
    use crate::sync::AtomicU64;
    use crate::sync::Ordering::{Relaxed, Release};

    /// Rejected messages waiting, as far as the hint knows.
    #[inline]
    pub fn pending(w: u64) -> u32 {
        let (marks, takes) = ((w >> 32) as u32, w as u32);
        (marks.wrapping_sub(takes) as i32).max(0) as u32
    }

    /// A message was put in state RETRY (Release: after its slot's move).
    pub fn mark(h: &AtomicU64) {
        h.fetch_add(1 << 32, Release);
    }

    /// A waiting message was taken.
    pub fn took(h: &AtomicU64) {
        let _ = h.fetch_update(Relaxed, Relaxed, |w| Some((w & !0xFFFF_FFFF) | (w as u32).wrapping_add(1) as u64));
    }

    /// After a scan that found nothing: takes := marks, if the word is still `seen`.
    pub fn reset(h: &AtomicU64, seen: u64) {
        let marks = seen >> 32;
        let _ = h.compare_exchange(seen, (marks << 32) | marks, Relaxed, Relaxed);
    }
}

/// Moves `index` from `pos` to `pos + 1` unless someone already moved it; returns its new value.
fn advance(index: &crate::sync::AtomicU64, pos: u64) -> u64 {
    match index.compare_exchange(pos, pos.wrapping_add(1), Release, Acquire) {
        Ok(_) => pos.wrapping_add(1),
        Err(now) => now,
    }
}

fn bad_state(w: u64, pos: u64, side: &str) -> Error {
    Error::corrupted(format!(
        "slot state {w:#x} (tag {}, seq offset {}) is impossible for the {side} at position {pos}",
        slot::tag(w),
        slot::diff(w, pos)
    ))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::HeapRing;

    fn ring(cap: u64) -> HeapRing {
        let m = HeapRing::new(cap, 8);
        init(&m);
        m
    }

    #[test]
    fn fills_drains_and_wraps() {
        let m = ring(4);
        for lap in 0..5u64 {
            for i in 0..4 {
                let Poll::Ready(p) = claim_write(&m, 1).unwrap() else { panic!("not ready") };
                assert_eq!(p, lap * 4 + i);
                commit(&m, p, 1, 1, i as u32).unwrap();
            }
            assert_eq!(claim_write(&m, 1).unwrap(), Poll::NotReady);
            for i in 0..4 {
                let Poll::Ready(msg) = claim_read(&m, 2, 8, &mut 0).unwrap() else { panic!("empty") };
                assert_eq!((msg.len, msg.kind), (1, i as u32));
                release(&m, msg.pos, 2).unwrap();
            }
            assert_eq!(claim_read(&m, 2, 8, &mut 0).unwrap(), Poll::NotReady);
        }
    }

    #[test]
    fn aborted_and_dead_writers_are_skipped() {
        let m = ring(4);
        let Poll::Ready(a) = claim_write(&m, 1).unwrap() else { panic!() };
        let Poll::Ready(b) = claim_write(&m, 2).unwrap() else { panic!() };
        let Poll::Ready(c) = claim_write(&m, 3).unwrap() else { panic!() };
        abort(&m, a, 1).unwrap();
        commit(&m, c, 3, 0, 7).unwrap();
        // b's writer "dies": the consumer sees it held.
        let mut freed = 0;
        let Poll::Held { pos, word } = claim_read(&m, 9, 8, &mut freed).unwrap() else { panic!() };
        assert_eq!((pos, slot::claimer(word), freed), (b, 2, 1), "the aborted slot was freed");
        assert!(recover(&m, pos, word, 9));
        // b's writer was not dead after all: its commit must not overwrite the recovery.
        assert!(matches!(commit(&m, b, 2, 1, 1), Err(Error::ClaimRevoked)));
        let Poll::Ready(msg) = claim_read(&m, 9, 8, &mut freed).unwrap() else { panic!() };
        assert_eq!((msg.len, msg.kind, freed), (0, 7, 2));
        release(&m, msg.pos, 9).unwrap();
        assert_eq!(m.control().stats.0.abandoned.load(Relaxed), 1);
        assert_eq!(m.control().stats.0.aborted.load(Relaxed), 1);
    }

    #[test]
    fn too_small_buffer_leaves_the_message() {
        let m = ring(2);
        let Poll::Ready(p) = claim_write(&m, 1).unwrap() else { panic!() };
        commit(&m, p, 1, 5, 0).unwrap();
        assert!(matches!(claim_read(&m, 2, 4, &mut 0), Err(Error::BufferTooSmall { len: 4, needed: 5 })));
        assert!(matches!(claim_read(&m, 2, 5, &mut 0).unwrap(), Poll::Ready(Msg { pos: 0, len: 5, .. })));
    }

    #[test]
    fn hostile_states_are_errors_not_loops() {
        let m = ring(4);
        m.slot(0).state.store(pack(77, 9, 0), Release);
        assert!(matches!(claim_read(&m, 1, 8, &mut 0), Err(Error::Corrupted(_))));
        assert!(matches!(claim_write(&m, 1), Err(Error::Corrupted(_))));
        let m = ring(4);
        let Poll::Ready(p) = claim_write(&m, 1).unwrap() else { panic!() };
        commit(&m, p, 1, 0, 0).unwrap();
        m.slot(0).len.store(1000, Release);
        assert!(matches!(claim_read(&m, 1, 8, &mut 0), Err(Error::Corrupted(_))));
        // The bad message was skipped, the ring goes on.
        assert_eq!(claim_read(&m, 1, 8, &mut 0).unwrap(), Poll::NotReady);
    }

    #[test]
    fn a_revoked_read_claim_is_reported_and_the_recovered_slot_kept() {
        let m = ring(2);
        let Poll::Ready(p) = claim_write(&m, 1).unwrap() else { panic!() };
        commit(&m, p, 1, 3, 0).unwrap();
        let Poll::Ready(msg) = claim_read(&m, 2, 8, &mut 0).unwrap() else { panic!() };
        let w = m.slot(msg.pos).state.load(Acquire);
        assert!(recover(&m, msg.pos, w, 3), "a peer judges the reader dead");
        assert!(matches!(release(&m, msg.pos, 2), Err(Error::ClaimRevoked)));
        assert_eq!(m.slot(msg.pos).state.load(Acquire), pack(msg.pos + 2, IDLE, 0), "left as recovered");
        assert!(matches!(abort(&m, 5, 1), Err(Error::ClaimRevoked)), "an abort of nothing claimed");
        assert_eq!(m.control().stats.0.aborted.load(Relaxed), 0);
    }
}
