//! The call slots of a request-response service, free of any OS knowledge.
//!
//! A service has `clients * per_client` call slots: participant `c` owns slots
//! `(c - 1) * per_client ..`, one per call it has in flight. A slot holds the request (its
//! payload and length, as a ring slot does), a response buffer of its own, and a state word
//! `[corr:48 | tag:4 | server:12]` ([`crate::layout::call`]) that decides every race:
//!
//! ```text
//!  FREE --client--> WRITING --client--> REQUESTED --server CAS--> TAKEN(s) --server CAS--> ANSWERED(s)
//!                                        |                         |                         |
//!                         client gives up: FREE     client gives up: CANCELLED(s)    client reads: FREE
//!                                                   --server: FREE
//!                                                   server s died: FAILED (or FREE, by the client)
//! ```
//!
//! `corr` is the client's call number, increasing across its slots (and across processes that
//! take over its participant entry), so a server compares requests by age and a stale word
//! never matches a new call. Servers find requests through the pending bitmap (one bit per
//! client): a server clears a client's bit, then scans its slots, takes the oldest request and
//! sets the bit again if more wait; a client sets the bit after publishing a request. Both
//! changes to the bit are read-modify-writes (AcqRel), so they are ordered: if the server's
//! clear comes after the client's set, it reads from it and sees the request published before
//! it; if it comes before, the bit stays set for the next look. (A client that only looked at
//! the bit and skipped the write when set would need SeqCst on four accesses, a store-buffer
//! pattern: `tests/loom_call.rs` catches that version.)
//!
//! Every exit from a claimed state is a CAS from the exact word, so each call ends exactly
//! once: answered, given up, or failed with its server.

use super::{RingMem, MAX_CLAIM_ROUNDS};
use crate::error::{Error, Result};
use crate::layout::call::{ANSWERED, CANCELLED, FAILED, FREE, REQUESTED, STATUS_DROPPED, STATUS_OK, TAKEN, WRITING};
use crate::layout::slot::{self, pack};
use crate::layout::{Channel, ResponseHeader};
use crate::sync::{
    AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

/// The memory of a service: its call slots (as a ring: `slot(i)` and `payload(i)` are call
/// slot `i`'s state and request), pending bitmap, channels and responses.
///
/// # Safety
/// As for [`RingMem`], and: `capacity() == clients() * per_client()`, `clients()` is at most
/// 4095; `pending(w)` is valid for `w < clients().div_ceil(64)`; `channel(id)` for `id` in
/// `1..=clients()`; `response(i)` for `i < capacity()`, its pointer valid for reads and writes
/// of `max_response()` bytes for as long as `self` lives.
pub unsafe trait CallMem: RingMem {
    /// Participants (each may be a client).
    fn clients(&self) -> u16;
    /// Call slots per client.
    fn per_client(&self) -> u64;
    /// Word `w` of the pending bitmap.
    fn pending(&self, w: usize) -> &AtomicU64;
    /// Participant `id`'s channel (1-based).
    fn channel(&self, id: u16) -> &Channel;
    /// Response `i`: its header and payload.
    fn response(&self, i: u64) -> (&ResponseHeader, *mut u8);
    /// Maximum response payload bytes (trusted copy).
    fn max_response(&self) -> usize;
}

/// A call in flight: call slot `i`, call number `corr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    /// The call slot.
    pub i: u64,
    /// The call number (48 bits).
    pub corr: u64,
}

/// A request a server took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The call.
    pub call: Call,
    /// The client that made it.
    pub client: u16,
    /// Request length (validated: at most the ring's max_msg).
    pub len: usize,
    /// Request kind tag.
    pub kind: u32,
}

/// Where a client's call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// No server has taken it yet.
    Requested,
    /// Server `server` (participant id) handles it.
    Taken {
        /// The server's participant id.
        server: u16,
        /// The state word (to end the call if that server turns out dead).
        word: u64,
    },
    /// The response is there: `len` bytes (validated), and whether the server answered or
    /// dropped the request.
    Answered {
        /// Response length.
        len: usize,
        /// `false` if the server dropped the request without answering.
        ok: bool,
    },
    /// The server died holding it.
    Failed,
}

/// What [`cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// No server had taken the request: it will never be handled.
    Withdrawn,
    /// A server is handling it; it will not be delivered (the server frees the slot).
    Abandoned,
    /// It had ended already (answered or failed); the slot is free.
    Ended,
}

const SEQ_MASK: u64 = (1 << 48) - 1;

/// The first call slot of client `client`.
#[inline]
fn first(m: &impl CallMem, client: u16) -> u64 {
    (client as u64 - 1) * m.per_client()
}

/// The pending bitmap word and bit of client `client`.
#[inline]
fn pending_bit(client: u16) -> (usize, u64) {
    let i = client as usize - 1;
    (i / 64, 1u64 << (i % 64))
}

/// `a` is an older call number than `b` (48-bit wrapping).
#[inline]
fn older(a: u64, b: u64) -> bool {
    let d = (a.wrapping_sub(b) & SEQ_MASK) << 16;
    (d as i64) < 0
}

fn bad(what: String) -> Error {
    Error::corrupted(what)
}

/// The highest call number in client `me`'s slots: a client that takes over the entry numbers
/// its calls after it.
pub fn last_corr(m: &impl CallMem, me: u16) -> u64 {
    let base = first(m, me);
    (0..m.per_client()).map(|k| slot::seq(m.slot(base + k).state.load(Acquire))).fold(0, |a, c| {
        if older(a, c) {
            c
        } else {
            a
        }
    })
}

/// Client `me` starts call number `corr` in its slot `k` if the slot is free (the caller keeps
/// its threads apart and numbers calls upwards). The caller then writes the request into
/// `m.payload(call.i)` and [`submit`]s it.
pub fn begin(m: &impl CallMem, me: u16, k: u64, corr: u64) -> Option<Call> {
    let i = first(m, me) + k;
    let s = m.slot(i);
    // Acquire: the server that freed a call we gave up is done with the slot.
    if slot::tag(s.state.load(Acquire)) != FREE {
        return None;
    }
    // A store, not a CAS: only the slot's client moves it out of FREE (servers touch only
    // requested and taken calls; a process that takes over a dead client's entry scrubs it
    // before it can be ours).
    let corr = corr & SEQ_MASK;
    s.state.store(pack(corr, WRITING, me), Relaxed);
    Some(Call { i, corr })
}

/// Client `me` finds its slot `k`, which none of its calls uses, not free: a call a live server
/// is finishing (given up by us, `CANCELLED`, or `TAKEN`) keeps it; anything else (a server that
/// died, or states another process wrote) is freed. Whether it is free now.
pub fn reclaim(m: &impl CallMem, me: u16, k: u64, alive: impl Fn(u16) -> bool) -> bool {
    let s = m.slot(first(m, me) + k);
    let w = s.state.load(Acquire);
    match slot::tag(w) {
        FREE => true,
        TAKEN | CANCELLED if slot::claimer(w) != 0 && alive(slot::claimer(w)) => false,
        _ => s.state.compare_exchange(w, pack(slot::seq(w), FREE, 0), AcqRel, Relaxed).is_ok(),
    }
}

/// Publishes the request written into call slot `call.i`: `len` bytes (at most max_msg, checked
/// by the caller), tagged `kind`.
///
/// # Errors
/// [`Error::ClaimRevoked`] if the slot is no longer ours (a process judged us dead).
pub fn submit(m: &impl CallMem, me: u16, call: Call, len: usize, kind: u32) -> Result<()> {
    let s = m.slot(call.i);
    s.len.store(len as u32, Relaxed);
    s.kind.store(kind, Relaxed);
    // Only we move the slot out of WRITING (see `begin`); a state that is not ours any more
    // means another process wrote it.
    if s.state.load(Relaxed) != pack(call.corr, WRITING, me) {
        return Err(Error::ClaimRevoked);
    }
    // Release: the server's take (Acquire) sees len, kind and payload; then the bit (module docs).
    s.state.store(pack(call.corr, REQUESTED, 0), Release);
    mark_pending(m, me);
    Ok(())
}

/// Sets client `client`'s pending bit (after publishing a request; and on a client's periodic
/// check, in case a server died between clearing it and setting it back).
pub fn mark_pending(m: &impl CallMem, client: u16) {
    let (w, bit) = pending_bit(client);
    // AcqRel, and a read-modify-write even when the bit is set: see the module docs.
    m.pending(w).fetch_or(bit, AcqRel);
}

/// Server `me` takes the oldest waiting request of the first client with one, looking at
/// clients from `*cursor` (0-based) on; `*cursor` moves past that client, so that clients take
/// turns.
///
/// # Errors
/// `Corrupted` if the request's length is impossible (the call is ended as dropped).
pub fn take(m: &impl CallMem, me: u16, cursor: &mut usize) -> Result<Option<Taken>> {
    let clients = m.clients() as usize;
    let words = clients.div_ceil(64);
    let start = *cursor % clients.max(1);
    // Words from the cursor's, the cursor's word twice: first its bits from the cursor on, at
    // the end those before it.
    for n in 0..=words {
        let w = (start / 64 + n) % words;
        let mask = match n {
            0 => !0u64 << (start % 64),
            n if n == words => !(!0u64 << (start % 64)),
            _ => !0,
        };
        let mut v = m.pending(w).load(Acquire) & mask;
        while v != 0 {
            let b = v.trailing_zeros() as usize;
            v &= v - 1;
            let client = w * 64 + b + 1;
            // AcqRel: see the module docs.
            m.pending(w).fetch_and(!(1u64 << b), AcqRel);
            if client > clients {
                continue; // a bit nobody owns (hostile): cleared
            }
            if let Some(t) = take_from(m, me, client as u16)? {
                *cursor = client; // the next client (0-based) goes first next time
                return Ok(Some(t));
            }
        }
    }
    Ok(None)
}

/// Takes client `client`'s oldest waiting request, if any (its pending bit is clear; it is set
/// again if more wait).
fn take_from(m: &impl CallMem, me: u16, client: u16) -> Result<Option<Taken>> {
    let base = first(m, client);
    // Bounded: a process rewriting the states without end makes us give up, not spin.
    for _ in 0..MAX_CLAIM_ROUNDS {
        let mut oldest: Option<(u64, u64)> = None; // (slot, word)
        let mut waiting = 0;
        for k in 0..m.per_client() {
            // Acquire: after the clear of the bit (module docs).
            let w = m.slot(base + k).state.load(Acquire);
            if slot::tag(w) == REQUESTED {
                waiting += 1;
                if oldest.is_none_or(|(_, o)| older(slot::seq(w), slot::seq(o))) {
                    oldest = Some((base + k, w));
                }
            }
        }
        let Some((i, w)) = oldest else { return Ok(None) };
        let corr = slot::seq(w);
        let s = m.slot(i);
        // AcqRel: Acquire pairs with `submit`, so the request is visible; a failed CAS (another
        // server, or the client gave up) looks again.
        if s.state.compare_exchange(w, pack(corr, TAKEN, me), AcqRel, Relaxed).is_err() {
            continue;
        }
        if waiting > 1 {
            mark_pending(m, client);
        }
        let call = Call { i, corr };
        let len = s.len.load(Relaxed) as usize;
        if len > m.max_msg() {
            let _ = answer(m, me, call, 0, STATUS_DROPPED);
            return Err(bad(format!("request length {len} exceeds the maximum {} (request dropped)", m.max_msg())));
        }
        return Ok(Some(Taken { call, client, len, kind: s.kind.load(Relaxed) }));
    }
    mark_pending(m, client); // look again next time
    Ok(None)
}

/// Server `me` ends the call it took: the response (`len` bytes, written into
/// `m.response(call.i)`) is delivered, or with `status` [`STATUS_DROPPED`] the client learns
/// that the request was dropped. `Ok(true)`: delivered, the caller wakes the client; `Ok(false)`:
/// the client gave up meanwhile and the slot is free again.
///
/// # Errors
/// [`Error::ClaimRevoked`] if the call is no longer ours (judged dead).
pub fn answer(m: &impl CallMem, me: u16, call: Call, len: usize, status: u32) -> Result<bool> {
    let (h, _) = m.response(call.i);
    h.len.store(len as u32, Relaxed);
    h.status.store(status, Relaxed);
    let s = m.slot(call.i);
    // Release: the client's Acquire in `progress` sees the response.
    match s.state.compare_exchange(pack(call.corr, TAKEN, me), pack(call.corr, ANSWERED, me), Release, Relaxed) {
        Ok(_) => Ok(true),
        Err(w) if w == pack(call.corr, CANCELLED, me) => {
            // Release: the client's next `begin` (Acquire) finds us done with the slot.
            let _ = s.state.compare_exchange(w, pack(call.corr, FREE, 0), Release, Relaxed);
            Ok(false)
        }
        Err(_) => Err(Error::ClaimRevoked),
    }
}

/// Where client call `call` stands.
///
/// # Errors
/// `Corrupted` if the slot holds another call or an impossible state or length.
pub fn progress(m: &impl CallMem, call: Call) -> Result<Progress> {
    // Acquire: pairs with the Release in `answer`.
    let w = m.slot(call.i).state.load(Acquire);
    if slot::seq(w) != call.corr {
        return Err(bad(format!("call slot {} holds call {}, expected call {}", call.i, slot::seq(w), call.corr)));
    }
    Ok(match slot::tag(w) {
        REQUESTED => Progress::Requested,
        TAKEN => Progress::Taken { server: slot::claimer(w), word: w },
        ANSWERED => {
            let (h, _) = m.response(call.i);
            let len = h.len.load(Relaxed) as usize;
            if len > m.max_response() {
                return Err(bad(format!("response length {len} exceeds the maximum {}", m.max_response())));
            }
            match h.status.load(Relaxed) {
                STATUS_OK => Progress::Answered { len, ok: true },
                STATUS_DROPPED => Progress::Answered { len: 0, ok: false },
                st => return Err(bad(format!("response status {st} is neither ok nor dropped"))),
            }
        }
        FAILED => Progress::Failed,
        t => return Err(bad(format!("call slot {} in state {t} while its client waits", call.i))),
    })
}

/// The client is done with an answered or failed call (after reading the response): the slot
/// is free.
pub fn finish(m: &impl CallMem, call: Call) {
    // Release: orders our reads of the response before the slot's reuse.
    m.slot(call.i).state.store(pack(call.corr, FREE, 0), Release);
}

/// The client gives up call `call` (a timeout, or the handle dropped).
pub fn cancel(m: &impl CallMem, call: Call) -> Cancelled {
    let s = m.slot(call.i);
    for _ in 0..MAX_CLAIM_ROUNDS {
        let w = s.state.load(Acquire);
        if slot::seq(w) != call.corr {
            return Cancelled::Ended; // not ours any more (scrubbed)
        }
        let (to, result) = match slot::tag(w) {
            REQUESTED | WRITING => (pack(call.corr, FREE, 0), Cancelled::Withdrawn),
            TAKEN => (pack(call.corr, CANCELLED, slot::claimer(w)), Cancelled::Abandoned),
            ANSWERED | FAILED => (pack(call.corr, FREE, 0), Cancelled::Ended),
            _ => return Cancelled::Ended,
        };
        if s.state.compare_exchange(w, to, AcqRel, Relaxed).is_ok() {
            return result;
        }
    }
    Cancelled::Ended // rewritten without end by another process: not ours to manage any more
}

/// The client found the server of `call` dead (state `word`, as `progress` gave it): the call
/// fails and the slot is free. `false` if the state moved meanwhile (look again).
pub fn server_died(m: &impl CallMem, call: Call, word: u64) -> bool {
    m.slot(call.i).state.compare_exchange(word, pack(call.corr, FREE, 0), AcqRel, Relaxed).is_ok()
}

/// Whether client `client` has requests no server has taken yet.
pub fn has_requests(m: &impl CallMem, client: u16) -> bool {
    let base = first(m, client);
    (0..m.per_client()).any(|k| slot::tag(m.slot(base + k).state.load(Acquire)) == REQUESTED)
}

/// Counts of client `client`'s calls: (waiting for a server, taken by one).
pub fn in_flight(m: &impl CallMem, client: u16) -> (u64, u64) {
    let base = first(m, client);
    (0..m.per_client()).fold((0, 0), |(r, t), k| match slot::tag(m.slot(base + k).state.load(Relaxed)) {
        REQUESTED | WRITING => (r + 1, t),
        TAKEN => (r, t + 1),
        _ => (r, t),
    })
}

/// Cleans up after participant `dead` before its entry is reused (the caller owns the entry):
/// as a client, its calls end (a call a live server handles is marked given up, and that
/// server frees it); as a server, the calls it held fail, and those given up are freed.
pub fn scrub(m: &impl CallMem, dead: u16) {
    let base = first(m, dead);
    for i in 0..m.capacity() {
        let s = m.slot(i);
        let w = s.state.load(Acquire);
        let (corr, tag, who) = (slot::seq(w), slot::tag(w), slot::claimer(w));
        let mine = (base..base + m.per_client()).contains(&i);
        let to = match tag {
            TAKEN if who == dead && mine => pack(corr, FREE, 0), // it called itself
            TAKEN if who == dead => pack(corr, FAILED, 0),
            CANCELLED if who == dead => pack(corr, FREE, 0),
            TAKEN if mine => pack(corr, CANCELLED, who),
            WRITING | REQUESTED | ANSWERED | FAILED if mine => pack(corr, FREE, 0),
            _ => continue,
        };
        let _ = s.state.compare_exchange(w, to, AcqRel, Relaxed);
    }
    let (w, bit) = pending_bit(dead);
    m.pending(w).fetch_and(!bit, AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::mem::HeapService;

    fn svc() -> HeapService {
        HeapService::new(4, 4, 16, 16)
    }

    fn request(m: &HeapService, me: u16, k: u64, corr: u64, body: &[u8]) -> Call {
        let c = begin(m, me, k, corr).expect("free slot");
        // SAFETY: the slot is ours (WRITING) and max_msg >= body.len().
        unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), m.payload(c.i), body.len()) };
        submit(m, me, c, body.len(), 7).unwrap();
        c
    }

    #[test]
    fn a_call_goes_to_one_server_and_its_answer_to_its_client() {
        let m = svc();
        let c = request(&m, 2, 0, 1, b"ping");
        assert_eq!(progress(&m, c).unwrap(), Progress::Requested);
        let mut cur = 0;
        let t = take(&m, 3, &mut cur).unwrap().expect("a request");
        assert_eq!((t.call, t.client, t.len, t.kind), (c, 2, 4, 7));
        assert_eq!(take(&m, 4, &mut cur).unwrap(), None, "taken once");
        assert!(matches!(progress(&m, c).unwrap(), Progress::Taken { server: 3, .. }));
        let (_, out) = m.response(c.i);
        // SAFETY: the call is ours (TAKEN by 3), max_response >= 4.
        unsafe { std::ptr::copy_nonoverlapping(b"pong".as_ptr(), out, 4) };
        assert!(answer(&m, 3, c, 4, STATUS_OK).unwrap());
        assert_eq!(progress(&m, c).unwrap(), Progress::Answered { len: 4, ok: true });
        finish(&m, c);
        assert!(begin(&m, 2, 0, 2).is_some(), "the slot is free again");
    }

    #[test]
    fn servers_take_the_oldest_request_first_and_clients_take_turns() {
        let m = svc();
        let a = request(&m, 1, 2, 5, b"a5");
        let b = request(&m, 1, 0, 6, b"a6");
        let c = request(&m, 2, 1, 1, b"b1");
        let mut cur = 0;
        assert_eq!(take(&m, 4, &mut cur).unwrap().unwrap().call, a);
        assert_eq!(take(&m, 4, &mut cur).unwrap().unwrap().call, c, "client 2's turn");
        assert_eq!(take(&m, 4, &mut cur).unwrap().unwrap().call, b);
        assert_eq!(take(&m, 4, &mut cur).unwrap(), None);
    }

    #[test]
    fn a_cancelled_call_is_never_delivered_and_its_slot_comes_back() {
        let m = svc();
        let c = request(&m, 1, 0, 1, b"x");
        assert_eq!(cancel(&m, c), Cancelled::Withdrawn);
        assert_eq!(take(&m, 2, &mut 0).unwrap(), None, "withdrawn before any server took it");
        let c = request(&m, 1, 0, 2, b"y");
        let t = take(&m, 2, &mut 0).unwrap().unwrap();
        assert_eq!(cancel(&m, c), Cancelled::Abandoned);
        assert!(begin(&m, 1, 0, 3).is_none(), "the server still holds it");
        assert!(!answer(&m, 2, t.call, 0, STATUS_OK).unwrap(), "not delivered");
        assert!(begin(&m, 1, 0, 3).is_some(), "freed by the server");
    }

    #[test]
    fn a_dead_servers_calls_fail_and_a_dead_clients_calls_end() {
        let m = svc();
        let c = request(&m, 1, 0, 1, b"x");
        let t = take(&m, 3, &mut 0).unwrap().unwrap();
        scrub(&m, 3);
        assert_eq!(progress(&m, c).unwrap(), Progress::Failed);
        assert!(matches!(answer(&m, 3, t.call, 0, STATUS_OK), Err(Error::ClaimRevoked)));
        finish(&m, c);
        // A dead client: its waiting call ends, the one a server holds is given up.
        let c1 = request(&m, 2, 0, 1, b"a");
        let c2 = request(&m, 2, 1, 2, b"b");
        let t = take(&m, 3, &mut 0).unwrap().unwrap();
        assert_eq!(t.call, c1);
        scrub(&m, 2);
        assert_eq!(take(&m, 3, &mut 0).unwrap(), None, "c2 withdrawn");
        assert!(!answer(&m, 3, t.call, 0, STATUS_OK).unwrap(), "c1 given up");
        assert!(last_corr(&m, 2) >= c2.corr);
        assert!(begin(&m, 2, 0, 3).is_some() && begin(&m, 2, 1, 4).is_some());
    }

    #[test]
    fn impossible_states_and_lengths_are_errors() {
        let m = svc();
        let c = request(&m, 1, 0, 1, b"x");
        m.slot(c.i).len.store(1000, Relaxed);
        assert!(matches!(take(&m, 2, &mut 0), Err(Error::Corrupted(_))));
        assert_eq!(progress(&m, c).unwrap(), Progress::Answered { len: 0, ok: false }, "dropped");
        finish(&m, c);
        let c = request(&m, 1, 0, 2, b"x");
        m.slot(c.i).state.store(pack(2, 15, 0), Relaxed);
        assert!(matches!(progress(&m, c), Err(Error::Corrupted(_))));
        m.slot(c.i).state.store(pack(9, REQUESTED, 0), Relaxed);
        assert!(matches!(progress(&m, c), Err(Error::Corrupted(_))));
        m.slot(c.i).state.store(pack(9, FREE, 0), Relaxed);
        m.pending(0).store(u64::MAX, Relaxed); // bits of clients that do not exist
        assert_eq!(take(&m, 2, &mut 0).unwrap(), None);
        assert_eq!(m.pending(0).load(Relaxed) & !0xF, 0, "cleared");
    }
}
