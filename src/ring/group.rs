//! Consumer groups on a topic: the consumer half of an MPMC queue laid over the broadcast ring.
//!
//! A group has a word per slot of the topic ring (`[seq:48 | tag:4 | member:12]`, as slot
//! states), a `next` sequence to hand out, and a `position`: the lowest sequence not yet
//! acknowledged, which is the group's cursor in the subscriber table, so a reliable group gates
//! publishers like any reliable subscriber. For the group's sequence `s` (in the topic ring's
//! slot `s % cap`), the word goes through:
//!
//! ```text
//!  ACKED(s-cap) --claim--> CLAIMED(s, m) --ack--> ACKED(s)
//!  (SKIPPED(s-cap))            |    ^
//!       \--skip (no message)-->|    | take (any member)
//!          SKIPPED(s)          v    |
//!                    member m dies or leaves: RETRY(s)
//! ```
//!
//! A member claims by CAS on the word (not on `next`), recording itself as claimer, then
//! advances `next` by CAS; anyone who finds the word at `next` already claimed helps advance it,
//! so a member that dies right after its claim stalls nobody, and its claim is found (its id is
//! on the word). Each message therefore goes to exactly one member at a time, and each member's
//! claims are increasing (per-publisher order within a member; a message taken from `RETRY` is
//! an older one). After an ack, any member moves `position` over every acknowledged (or
//! skipped) word at it, one CAS per step.
//!
//! Orderings: a claim CAS is AcqRel (it sees the previous lap's ack); an ack CAS is Release
//! (the member's reads of the topic slot happen before it), and the position advance loads the
//! word with Acquire and stores the position with Release; publishers load cursors with Acquire
//! before they overwrite slots (see `topic::table::gate`): so a slot is overwritten only after
//! the member that read it acknowledged it. `next` is published with Release (the index CAS)
//! and read with Acquire, as in [`super::mpmc`].

use super::{broadcast, RingMem, MAX_CLAIM_ROUNDS};
use crate::error::{Error, Result};
use crate::layout::slot::{self, pack, ABORTED as SKIPPED, IDLE as ACKED, READING as CLAIMED, RETRY};
use crate::sync::AtomicU64;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};

pub use super::mpmc::retries;

/// A group's shared words: one per slot of the topic ring, its `position` and `next`, and its
/// retry hint (see [`retries`]).
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    /// One word per topic slot (as many as the ring's capacity).
    pub words: &'a [AtomicU64],
    /// Lowest sequence not acknowledged (the group's cursor).
    pub position: &'a AtomicU64,
    /// Next sequence to hand out.
    pub next: &'a AtomicU64,
    /// Messages waiting in RETRY (a hint).
    pub retry: &'a AtomicU64,
}

impl Group<'_> {
    #[inline]
    fn word(&self, seq: u64) -> &AtomicU64 {
        &self.words[(seq as usize) & (self.words.len() - 1)]
    }
}

/// A message claimed for a member: its sequence, and what [`broadcast::read`] found (length,
/// kind, and the topic slot's state word to re-check after a lossy copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The topic sequence.
    pub seq: u64,
    /// Payload length (validated).
    pub len: usize,
    /// Kind tag.
    pub kind: u32,
    /// The topic slot's state word seen.
    pub word: u64,
}

/// What a claim found besides a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A message, now claimed by the caller.
    Message(Claimed),
    /// Nothing to hand out now.
    Empty,
    /// The next message is being written by the publisher in `word` (who may be dead).
    Held {
        /// The topic sequence.
        seq: u64,
        /// The topic slot's state word.
        word: u64,
    },
    /// A lossy group fell a ring behind: `missed` messages were skipped (counted by the caller).
    Lagged {
        /// Messages missed.
        missed: u64,
    },
}

/// Starts a group at sequence `start`: position and next there, every word free for it.
pub fn init(g: &Group<'_>, start: u64) {
    let cap = g.words.len() as u64;
    for i in 0..cap {
        let seq = start.wrapping_add(i);
        g.word(seq).store(pack(seq.wrapping_sub(cap), ACKED, 0), Relaxed);
    }
    g.next.store(start, Relaxed);
    g.position.store(start, Release);
}

/// Claims the next message of topic `t` for member `me` (a rejected or orphaned one first).
/// `awaited`: the group is reliable and publishers wait for it (see [`broadcast::read`]);
/// `lossy`: it does not gate, so a message may have been overwritten.
pub fn claim(t: &impl RingMem, g: &Group<'_>, me: u16, awaited: bool, lossy: bool) -> Result<Found> {
    let hint = g.retry.load(Acquire);
    if retries::pending(hint) > 0 {
        if let Some(c) = claim_retry(t, g, me, hint, awaited)? {
            return Ok(Found::Message(c));
        }
    }
    let cap = t.capacity();
    let mut s = g.next.load(Acquire);
    for _ in 0..MAX_CLAIM_ROUNDS {
        let read = broadcast::read(t, s, awaited)?;
        if !matches!(read, broadcast::Read::Ready { .. } | broadcast::Read::Skip) {
            // `s` may be stale: since we loaded it, other members may have claimed and
            // acknowledged it, and a publisher reused its slot. Look again from the new `next`.
            let now = g.next.load(Acquire);
            if now != s {
                s = now;
                continue;
            }
        }
        let (len, kind, tword) = match read {
            broadcast::Read::Ready { len, kind, word } => (len, kind, word),
            broadcast::Read::NotReady => return Ok(Found::Empty),
            broadcast::Read::Held { word } => return Ok(Found::Held { seq: s, word }),
            broadcast::Read::Skip => (0, 0, 0),
            broadcast::Read::Lapped { seq: seen } if lossy => {
                // Resync a ring behind the newest message we know of.
                let tail = t.control().tail.0.load(Acquire);
                let newest = tail.wrapping_sub(s).max(seen.wrapping_add(1).wrapping_sub(s));
                let missed = newest.saturating_sub(cap).max(1);
                if g.next.compare_exchange(s, s.wrapping_add(missed), AcqRel, Acquire).is_ok() {
                    return Ok(Found::Lagged { missed });
                }
                s = g.next.load(Acquire);
                continue;
            }
            // Not handed out yet (`next` is still `s`), and overwritten: impossible while the
            // group gates publishers.
            broadcast::Read::Lapped { .. } => {
                return Err(Error::corrupted(format!(
                    "topic message {s} was overwritten before the reliable group acknowledged it"
                )))
            }
        };
        let w = g.word(s).load(Acquire);
        let free = slot::diff(w, s) == -(cap as i64) && matches!(slot::tag(w), ACKED | SKIPPED);
        // A lossy group's old laps may be anything (claims of messages overwritten since).
        let free = free || (lossy && (slot::diff(w, s) < 0));
        if free {
            let skip = matches!(read, broadcast::Read::Skip);
            let to = if skip { pack(s, SKIPPED, 0) } else { pack(s, CLAIMED, me) };
            if g.word(s).compare_exchange(w, to, AcqRel, Relaxed).is_err() {
                continue;
            }
            let _ = g.next.compare_exchange(s, s.wrapping_add(1), Release, Relaxed);
            if skip {
                advance(g, cap, lossy);
                s = g.next.load(Acquire);
                continue;
            }
            return Ok(Found::Message(Claimed { seq: s, len, kind, word: tword }));
        }
        if slot::diff(w, s) == 0 {
            // Claimed (or skipped) for this sequence already: `next` is stale, help advance it.
            s = match g.next.compare_exchange(s, s.wrapping_add(1), Release, Acquire) {
                Ok(_) => s.wrapping_add(1),
                Err(now) => now,
            };
            continue;
        }
        let now = g.next.load(Acquire);
        if now == s {
            return Err(Error::corrupted(format!("group word {w:#x} is impossible at sequence {s}")));
        }
        s = now;
    }
    Ok(Found::Empty)
}

/// Acknowledges message `seq`, claimed by `me`, and moves the group's position over what is
/// acknowledged.
///
/// # Errors
/// [`Error::ClaimRevoked`] if the claim is no longer ours (a peer judged us dead and put the
/// message back for another member).
pub fn ack(g: &Group<'_>, cap: u64, seq: u64, me: u16, lossy: bool) -> Result<()> {
    // Release: our reads of the topic slot happen before a publisher overwrites it (it loads
    // the position with Acquire, after `advance` loaded this word with Acquire).
    g.word(seq)
        .compare_exchange(pack(seq, CLAIMED, me), pack(seq, ACKED, 0), Release, Relaxed)
        .map_err(|_| Error::ClaimRevoked)?;
    advance(g, cap, lossy);
    Ok(())
}

/// Moves the position over every acknowledged or skipped message at it (at most a ring).
/// A lossy group's position also follows `next` over messages it skipped by lagging.
pub fn advance(g: &Group<'_>, cap: u64, lossy: bool) {
    for _ in 0..cap {
        let p = g.position.load(Acquire);
        let next = g.next.load(Acquire);
        if next.wrapping_sub(p) as i64 <= 0 {
            return;
        }
        if lossy && next.wrapping_sub(p) > cap {
            let _ = g.position.compare_exchange(p, next.wrapping_sub(cap), Release, Relaxed);
            continue;
        }
        let w = g.word(p).load(Acquire);
        if slot::diff(w, p) != 0 || !matches!(slot::tag(w), ACKED | SKIPPED) {
            return;
        }
        // Release: publishers that see the new position see every ack before it.
        let _ = g.position.compare_exchange(p, p.wrapping_add(1), Release, Relaxed);
    }
}

/// Puts message `seq`, claimed by `claimer` (dead, or us leaving), back for any member:
/// `word` must be what the caller saw (CLAIMED(seq, claimer)). Returns whether it did.
pub fn put_back(g: &Group<'_>, seq: u64, word: u64) -> bool {
    if slot::tag(word) != CLAIMED || slot::diff(word, seq) != 0 {
        return false;
    }
    // Release: pairs with the taker's Acquire (nothing of ours to publish but the state).
    if g.word(seq).compare_exchange(word, pack(seq, RETRY, 0), Release, Relaxed).is_ok() {
        retries::mark(g.retry);
        true
    } else {
        false
    }
}

/// Counts the words in RETRY in `[position, next)` and, if there are some while the hint counts
/// none, marks one (a member killed between its put-back and its mark, or a take counted after
/// a reset: see [`retries`]). Returns how many.
pub fn rescan(g: &Group<'_>, cap: u64) -> u64 {
    let p = g.position.load(Acquire);
    let n = g.next.load(Acquire).wrapping_sub(p).min(cap);
    let waiting = (0..n)
        .filter(|&i| {
            let s = p.wrapping_add(i);
            let w = g.word(s).load(Acquire);
            slot::tag(w) == RETRY && slot::diff(w, s) == 0
        })
        .count() as u64;
    if waiting > 0 && retries::pending(g.retry.load(Acquire)) == 0 {
        retries::mark(g.retry);
    }
    waiting
}

/// Every claim in `[position, next)`: (sequence, word), for the caller to check the claimers.
pub fn claims<'a>(g: &Group<'a>, cap: u64) -> impl Iterator<Item = (u64, u64)> + 'a {
    let g = *g;
    let p = g.position.load(Acquire);
    let n = g.next.load(Acquire).wrapping_sub(p).min(cap);
    (0..n).filter_map(move |i| {
        let s = p.wrapping_add(i);
        let w = g.word(s).load(Acquire);
        (slot::tag(w) == CLAIMED && slot::diff(w, s) == 0).then_some((s, w))
    })
}

/// Takes a message waiting in RETRY, if the scan of `[position, next)` finds one; resets the
/// hint (read as `hint`) when it finds none.
fn claim_retry(t: &impl RingMem, g: &Group<'_>, me: u16, hint: u64, awaited: bool) -> Result<Option<Claimed>> {
    let cap = t.capacity();
    let p = g.position.load(Acquire);
    let n = g.next.load(Acquire).wrapping_sub(p).min(cap);
    for i in 0..n {
        let s = p.wrapping_add(i);
        let w = g.word(s).load(Acquire);
        if slot::tag(w) != RETRY || slot::diff(w, s) != 0 {
            continue;
        }
        let (len, kind, tword) = match broadcast::read(t, s, awaited)? {
            broadcast::Read::Ready { len, kind, word } => (len, kind, word),
            // Overwritten (a lossy group): nobody will get it; let the claim path count it.
            _ => continue,
        };
        if g.word(s).compare_exchange(w, pack(s, CLAIMED, me), AcqRel, Relaxed).is_ok() {
            retries::took(g.retry);
            return Ok(Some(Claimed { seq: s, len, kind, word: tword }));
        }
    }
    retries::reset(g.retry, hint);
    Ok(None)
}

/// The heap memory of a group (loom models and unit tests).
#[derive(Debug)]
pub struct HeapGroup {
    words: Box<[AtomicU64]>,
    position: AtomicU64,
    next: AtomicU64,
    retry: AtomicU64,
}

impl HeapGroup {
    /// A group of `cap` words (the topic ring's capacity, a power of two).
    pub fn new(cap: u64) -> Self {
        assert!(cap.is_power_of_two());
        HeapGroup {
            words: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            position: AtomicU64::new(0),
            next: AtomicU64::new(0),
            retry: AtomicU64::new(0),
        }
    }

    /// Its words, as a [`Group`].
    pub fn group(&self) -> Group<'_> {
        Group { words: &self.words, position: &self.position, next: &self.next, retry: &self.retry }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::{HeapRing, Poll};

    fn topic(cap: u64) -> HeapRing {
        let t = HeapRing::new(cap, 8);
        broadcast::init(&t);
        t
    }

    fn publish(t: &HeapRing, gate: u64, kind: u32) -> bool {
        match broadcast::claim(t, 1, gate).unwrap() {
            Poll::Ready(s) => {
                broadcast::commit(t, s, 1, 0, kind).unwrap();
                true
            }
            _ => false,
        }
    }

    fn take(t: &HeapRing, g: &Group<'_>, me: u16) -> Option<Claimed> {
        match claim(t, g, me, false, false).unwrap() {
            Found::Message(c) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn members_share_messages_and_the_position_waits_for_every_ack() {
        let t = topic(4);
        let h = HeapGroup::new(4);
        let g = h.group();
        init(&g, 0);
        for k in 0..4 {
            assert!(publish(&t, g.position.load(Acquire), k));
        }
        assert!(!publish(&t, g.position.load(Acquire), 9), "the group gates at its position");
        let a = take(&t, &g, 1).unwrap();
        let b = take(&t, &g, 2).unwrap();
        assert_eq!((a.seq, a.kind, b.seq, b.kind), (0, 0, 1, 1));
        ack(&g, 4, b.seq, 2, false).unwrap();
        assert_eq!(g.position.load(Acquire), 0, "message 0 is not acknowledged yet");
        ack(&g, 4, a.seq, 1, false).unwrap();
        assert_eq!(g.position.load(Acquire), 2);
        assert!(matches!(ack(&g, 4, a.seq, 1, false), Err(Error::ClaimRevoked)), "twice");
        assert!(publish(&t, 2, 4) && publish(&t, 2, 5));
        let seqs: Vec<u64> = std::iter::from_fn(|| take(&t, &g, 1)).map(|c| c.seq).collect();
        assert_eq!(seqs, [2, 3, 4, 5]);
    }

    #[test]
    fn a_dead_members_claim_goes_to_another_member() {
        let t = topic(4);
        let h = HeapGroup::new(4);
        let g = h.group();
        init(&g, 0);
        assert!(publish(&t, 0, 7) && publish(&t, 0, 8));
        let a = take(&t, &g, 1).unwrap(); // member 1 dies holding it
        let found: Vec<_> = claims(&g, 4).collect();
        assert_eq!(found.len(), 1);
        assert!(put_back(&g, found[0].0, found[0].1));
        assert!(matches!(ack(&g, 4, a.seq, 1, false), Err(Error::ClaimRevoked)), "the revoked member is told");
        let again = take(&t, &g, 2).unwrap();
        assert_eq!((again.seq, again.kind), (0, 7), "the orphaned message first");
        let next = take(&t, &g, 2).unwrap();
        assert_eq!(next.seq, 1);
        ack(&g, 4, 0, 2, false).unwrap();
        ack(&g, 4, 1, 2, false).unwrap();
        assert_eq!(g.position.load(Acquire), 2);
    }

    #[test]
    fn aborted_messages_are_skipped_and_count_as_acknowledged() {
        let t = topic(4);
        let h = HeapGroup::new(4);
        let g = h.group();
        init(&g, 0);
        let Poll::Ready(s) = broadcast::claim(&t, 1, 0).unwrap() else { panic!() };
        broadcast::abort(&t, s, 1).unwrap();
        assert!(publish(&t, 0, 3));
        let c = take(&t, &g, 1).unwrap();
        assert_eq!((c.seq, c.kind), (1, 3));
        ack(&g, 4, 1, 1, false).unwrap();
        assert_eq!(g.position.load(Acquire), 2);
    }

    #[test]
    fn a_lossy_group_reports_what_it_missed() {
        let t = topic(2);
        let h = HeapGroup::new(2);
        let g = h.group();
        init(&g, 0);
        for k in 0..5 {
            assert!(publish(&t, 100, k)); // nothing gates
        }
        assert_eq!(claim(&t, &g, 1, false, true).unwrap(), Found::Lagged { missed: 3 });
        let c = match claim(&t, &g, 1, false, true).unwrap() {
            Found::Message(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!((c.seq, c.kind), (3, 3));
    }

    #[test]
    fn hostile_words_are_errors_not_loops() {
        let t = topic(4);
        let h = HeapGroup::new(4);
        let g = h.group();
        init(&g, 0);
        assert!(publish(&t, 0, 1));
        g.words[0].store(pack(77, 9, 3), Release);
        assert!(matches!(claim(&t, &g, 1, false, false), Err(Error::Corrupted(_))));
    }
}
