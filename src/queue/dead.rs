//! A queue's dead letters: opening its dead-letter queue, rejecting, moving, requeueing, and
//! the housekeeping that finds what dead consumers and dead movers left (see
//! [`crate::deadletter`] for the user's view and `ring::deadletter` for the protocol).

use std::time::{Duration, Instant};

use super::{Queue, QueueOptions};
use crate::attach::Attachment;
use crate::deadletter::{cut_reason, DeadLetter, RejectError, Rejected};
use crate::error::{Error, OpenError, Result};
use crate::layout::{
    entry, slot, DeadLetterInfo, CAUSE_CONSUMER_DIED, CAUSE_DLQ_FULL, CAUSE_REJECTED, FLAG_DEAD_LETTER_QUEUE,
    LETTER_HEADER, PARTICIPANT_FREE, ROLE_CONSUMER,
};
use crate::ring::deadletter::{self as protocol, LetterMeta, Lock, Moved};
use crate::ring::{mpmc, RingMem};
use crate::sync::Ordering::{Acquire, Relaxed};

/// How long a move waits for another live process's move lock.
const LOCK_WAIT: Duration = Duration::from_secs(1);
/// How often a consumer looks for what dead consumers and movers left.
const HOUSEKEEPING: Duration = Duration::from_millis(10);

/// A consumer's link to its queue's dead-letter queue.
#[derive(Debug)]
pub(crate) struct DeadLetters {
    pub(crate) dlq: Queue,
    pub(crate) max: u32,
}

impl DeadLetters {
    /// The link of a consumer of `q`, if `q` has dead letters (opens or creates the dead-letter
    /// queue).
    pub(crate) fn of(q: &Queue) -> Result<Option<Box<DeadLetters>>> {
        let max = q.shared.seg.config.max_deliveries;
        if max == 0 {
            return Ok(None);
        }
        let dlq = q.open_dlq()?;
        Ok(Some(Box::new(DeadLetters { dlq, max })))
    }
}

/// Whether housekeeping is due (at most every 10 ms), moving `next` on if so.
pub(crate) fn due(next: &mut Instant) -> bool {
    let now = Instant::now();
    if now < *next {
        return false;
    }
    *next = now + HOUSEKEEPING;
    true
}

fn info(att: &Attachment) -> &DeadLetterInfo {
    att.seg.dead_letter_info().expect("a queue with dead letters has the info block")
}

/// Takes the queue's move lock (as the word to give back to `protocol::unlock`), waiting up to
/// a second for another live process's; `Err(holder)` if it still holds it.
fn lock(att: &Attachment, info: &DeadLetterInfo) -> std::result::Result<u64, u16> {
    let started = Instant::now();
    loop {
        match protocol::try_lock(info, att.id, |h| att.parts.is_dead(h)) {
            Lock::Taken(w) => return Ok(w),
            Lock::Busy(holder) if started.elapsed() > LOCK_WAIT => return Err(holder),
            Lock::Busy(_) => std::thread::yield_now(),
        }
    }
}

/// The name recorded in an info block, if it is a valid name.
pub(crate) fn recorded_name(info: &DeadLetterInfo) -> Option<String> {
    let n = info.name_len.load(Relaxed) as usize;
    if n == 0 || n > crate::segment::MAX_NAME {
        return None;
    }
    let mut buf = vec![0u8; n];
    protocol::load_bytes(&info.name, &mut buf);
    let name = String::from_utf8(buf).ok()?;
    crate::segment::validate_name(&name).ok()?;
    Some(name)
}

impl Queue {
    /// Deliveries a message gets before it is dead-lettered (`None`: the queue has no dead
    /// letters).
    pub fn max_deliveries(&self) -> Option<u32> {
        Some(self.shared.seg.config.max_deliveries).filter(|&n| n > 0)
    }

    /// Whether this queue is a dead-letter queue (only moves write it).
    pub fn is_dead_letter_queue(&self) -> bool {
        self.shared.seg.config.flags & FLAG_DEAD_LETTER_QUEUE != 0
    }

    /// The name of this queue's dead-letter queue (for a queue with `max_deliveries`), or of the
    /// queue whose dead letters this one holds (for a dead-letter queue).
    pub fn dead_letter_link(&self) -> Option<String> {
        recorded_name(self.shared.seg.dead_letter_info()?)
    }

    /// This queue's dead-letter queue, opened (created if needed); `None` if the queue has no
    /// `max_deliveries`.
    pub fn dead_letter_queue(&self) -> Result<Option<Queue>, OpenError> {
        if self.max_deliveries().is_none() {
            return Ok(None);
        }
        self.open_dlq().map(Some).map_err(OpenError::from_internal)
    }

    fn open_dlq(&self) -> Result<Queue> {
        let seg = &self.shared.seg;
        let name = self
            .dead_letter_link()
            .ok_or_else(|| Error::corrupted("the queue's dead-letter queue name is not a valid name".to_string()))?;
        let dir = seg.path.parent().map(|p| p.to_path_buf()).unwrap_or_else(crate::os::default_dir);
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&seg.path).map(|m| m.permissions().mode() & 0o777).unwrap_or(crate::options::DEFAULT_MODE)
        };
        let needed = seg.config.max_msg as usize + LETTER_HEADER;
        let mut opts = QueueOptions::new().dir(dir).mode(mode);
        opts.flags = FLAG_DEAD_LETTER_QUEUE;
        opts.origin = Some(seg.name.clone());
        let create = opts.clone().capacity(seg.config.capacity as usize).max_msg_size(needed);
        let dlq = opts.common.open_or_create(&name, || create.create_inner(&name), || opts.open_inner(&name))?;
        if !dlq.is_dead_letter_queue() || dlq.dead_letter_link().as_deref() != Some(seg.name.as_str()) {
            return Err(Error::Incompatible {
                what: "dead-letter queue",
                expected: format!("{name:?} holding the dead letters of {:?}", seg.name),
                found: match dlq.dead_letter_link() {
                    Some(o) if dlq.is_dead_letter_queue() => format!("the dead-letter queue of {o:?}"),
                    _ => "a queue that is not a dead-letter queue".into(),
                },
            });
        }
        if dlq.max_msg_size() < needed || dlq.kind() != super::QueueKind::Mpmc {
            return Err(Error::Incompatible {
                what: "dead-letter queue max message size",
                expected: format!(
                    "at least {needed} bytes (the queue's {} and a {LETTER_HEADER}-byte letter header)",
                    seg.config.max_msg
                ),
                found: format!("{} bytes", dlq.max_msg_size()),
            });
        }
        Ok(dlq)
    }

    /// The dead letters waiting in this queue's dead-letter queue, oldest first, without
    /// consuming them (a snapshot, taken under the queue's move lock so that no move writes the
    /// dead-letter queue meanwhile; letters being received at that moment are left out). Empty
    /// for a queue without `max_deliveries`.
    pub fn dead_letters(&self) -> Result<Vec<crate::deadletter::Letter>> {
        let Some(dlq) = self.dead_letter_queue().map_err(Error::from)? else { return Ok(Vec::new()) };
        let att = &*self.shared;
        let info = info(att);
        let mine = lock(att, info).map_err(|holder| {
            Error::Unsupported(format!(
                "another process (id {holder}) held the dead-letter move lock for over a second; try again"
            ))
        })?;
        let _ = protocol::resolve_locked(&att.ring, info, &dlq.shared.ring, att.id);
        let r = snapshot(&dlq);
        protocol::unlock(info, mine);
        r
    }

    /// Sends the dead letters of this queue back into it (each with its original kind, its
    /// delivery count starting over), at most `max`; returns how many. Each letter is sent and
    /// then consumed: a requeuer killed in between leaves that one in both queues (at least once,
    /// never lost). Waits for space in this queue like `send`.
    pub fn requeue_dead_letters(&self, max: usize) -> Result<usize> {
        let Some(dlq) = self.dead_letter_queue().map_err(Error::from)? else { return Ok(0) };
        let mut tx = self.producer().map_err(Error::from)?;
        let mut rx = dlq.consumer().map_err(Error::from)?;
        let mut n = 0;
        while n < max {
            let m = match rx.try_recv_ref() {
                Ok(m) => m,
                Err(crate::TryRecvError::Empty | crate::TryRecvError::Disconnected) => break,
                Err(e) => return Err(e.into()),
            };
            match DeadLetter::parse(&m) {
                Ok(letter) => tx.send_kind(letter.kind, letter.payload).map_err(Error::from)?,
                // Not a letter (written over): keep it where it is, for a human to see.
                Err(e) => {
                    drop(m);
                    return Err(e);
                }
            }
            drop(m);
            n += 1;
        }
        Ok(n)
    }
}

/// The committed letters of dead-letter queue `dlq`, head to tail. The caller holds the
/// origin's move lock: nothing writes the dead-letter queue's payloads meanwhile (consumers only
/// read them).
fn snapshot(dlq: &Queue) -> Result<Vec<crate::deadletter::Letter>> {
    let ring = &dlq.shared.ring;
    let c = ring.control();
    let head = c.head.0.load(Acquire);
    let tail = c.tail.0.load(Acquire);
    let n = tail.wrapping_sub(head).min(ring.capacity());
    let mut out = Vec::new();
    for i in 0..n {
        let pos = head.wrapping_add(i);
        let s = ring.slot(pos);
        // Acquire: pairs with the commit's Release: the letter is visible.
        let w = s.state.load(Acquire);
        if slot::diff(w, pos) != 1 || slot::tag(w) != slot::IDLE {
            continue; // being received, or already gone
        }
        let len = (s.len.load(Relaxed) as usize).min(ring.max_msg());
        let mut bytes = vec![0u8; len];
        // SAFETY: the slot holds a committed letter of len <= max_msg bytes; under the move
        // lock no mover writes the dead-letter queue, and consumers never write payloads, so
        // the bytes do not change while we copy them.
        unsafe { std::ptr::copy_nonoverlapping(ring.payload(pos), bytes.as_mut_ptr(), len) };
        let l = DeadLetter::parse(&bytes)?;
        out.push(crate::deadletter::Letter {
            position: pos,
            payload: l.payload.to_vec(),
            kind: l.kind,
            reason: l.reason.to_string(),
            deliveries: l.deliveries,
            first_failed_ns: l.first_failed_ns,
            dead_lettered_ns: l.dead_lettered_ns,
            origin_position: l.origin_position,
        });
    }
    Ok(out)
}

/// Why a message is dead, from its delivery entry (a dead consumer's last delivery).
fn reason_of(ring: &impl RingMem, pos: u64, failed: u32) -> String {
    let Some(e) = ring.delivery(pos) else { return String::new() };
    match e.cause.load(Relaxed) {
        CAUSE_CONSUMER_DIED => format!("its consumer died holding it (delivery {failed})"),
        CAUSE_DLQ_FULL => format!("failed {failed} deliveries; the dead-letter queue was full when it was due"),
        CAUSE_REJECTED => format!("rejected {failed} times"),
        _ => format!("failed {failed} deliveries"),
    }
}

/// Moves the message at `pos` (claimed by this attachment) to the dead-letter queue, or puts
/// it back if it cannot go now.
pub(crate) fn move_message(
    att: &Attachment,
    dl: &DeadLetters,
    pos: u64,
    failed: u32,
    reason: &str,
) -> Result<Rejected, RejectError> {
    let ring = &att.ring;
    let info = info(att);
    let dlq = &dl.dlq.shared;
    let first_failed_ns = ring.delivery(pos).map_or(0, |e| e.first_failed_ns.load(Relaxed));
    let mine = match lock(att, info) {
        Ok(mine) => mine,
        Err(holder) => {
            put_back(att, pos).map_err(RejectError::from_internal)?;
            return Err(RejectError::LockBusy { holder });
        }
    };
    let _ = protocol::resolve_locked(ring, info, &dlq.ring, att.id);
    let meta = LetterMeta {
        deliveries: failed,
        first_failed_ns,
        reason: cut_reason(reason).as_bytes(),
        now_ns: crate::os::now_unix_ns(),
    };
    let r = protocol::move_locked(ring, info, &dlq.ring, att.id, pos, &meta);
    protocol::unlock(info, mine);
    match r.map_err(RejectError::from_internal)? {
        Moved::To(position) => {
            dlq.notify_data();
            att.notify_space();
            Ok(Rejected::DeadLettered { position })
        }
        Moved::Full => {
            if let Some(e) = ring.delivery(pos) {
                e.cause.store(CAUSE_DLQ_FULL, Relaxed);
            }
            put_back(att, pos).map_err(RejectError::from_internal)?;
            Err(RejectError::DeadLetterQueueFull { name: dl.dlq.name().to_string(), origin: att.seg.name.clone() })
        }
    }
}

/// Rejects the message at `pos` (ours) so that it is delivered again.
pub(crate) fn put_back(att: &Attachment, pos: u64) -> Result<()> {
    mpmc::reject(&att.ring, pos, att.id)?;
    att.notify_data();
    Ok(())
}

/// Counts a rejection of the message at `pos` (ours); returns its failed deliveries so far.
pub(crate) fn count_rejection(att: &Attachment, pos: u64) -> u32 {
    att.ring.control().stats.0.rejected.fetch_add(1, Relaxed);
    match att.ring.delivery(pos) {
        Some(e) => {
            mpmc::count_failure(e, pos, CAUSE_REJECTED, crate::os::pid(), crate::os::now_unix_ns());
            e.count.load(Relaxed)
        }
        None => 0,
    }
}

/// A message just claimed at `pos` that already failed `max` deliveries (its consumers died,
/// or the dead-letter queue was full when it was due) goes to the dead-letter queue instead of
/// to the caller. Returns whether it was taken away (moved, or put back because it could not
/// go).
pub(crate) fn screen(att: &Attachment, dl: &DeadLetters, pos: u64) -> bool {
    let failed = mpmc::failed_deliveries(&att.ring, pos).unwrap_or(0);
    if failed < dl.max {
        return false;
    }
    let reason = reason_of(&att.ring, pos, failed);
    // Full or busy: it was put back; a revoked claim: it is the peer's. Either way, not ours.
    let _ = move_message(att, dl, pos, failed, &reason);
    true
}

/// What dead consumers and dead movers left: a move lock held by a dead process (finished or
/// undone), and messages held by dead consumers (delivered again). Called by consumers at most
/// every 10 ms while they find nothing.
pub(crate) fn housekeeping(att: &Attachment, dl: &DeadLetters) {
    let info = info(att);
    let h = protocol::holder(info.lock.load(Acquire));
    if h != 0 && (h == protocol::ORPHANED || (h != att.id && att.parts.is_dead(h))) {
        if let Lock::Taken(mine) = protocol::try_lock(info, att.id, |h| att.parts.is_dead(h)) {
            if protocol::resolve_locked(&att.ring, info, &dl.dlq.shared.ring, att.id).unwrap_or(false) {
                dl.dlq.shared.notify_data();
                att.notify_space();
            }
            protocol::unlock(info, mine);
        }
    }
    sweep_dead_consumers(att);
}

/// Delivers again the messages held by consumers that died (each such participant once: its
/// consumer role is cleared after).
pub(crate) fn sweep_dead_consumers(att: &Attachment) {
    for id in 1..=att.seg.config.max_participants as u16 {
        let Some(e) = att.parts.entry(id) else { break };
        if id == att.id
            || entry::state(e.state.load(Acquire)) == PARTICIPANT_FREE
            || e.roles.load(Acquire) & ROLE_CONSUMER == 0
            || !att.parts.is_dead(id)
        {
            continue;
        }
        att.parts.with_dead(id, || {
            if redeliver_claims_of(att, id) > 0 {
                att.notify_data();
            }
            if let Some(info) = att.seg.dead_letter_info() {
                protocol::orphan(info, id);
            }
            e.roles.fetch_and(!ROLE_CONSUMER, Relaxed);
        });
    }
}

/// Recovers every message participant `dead` holds for reading (delivered again in a queue
/// that counts deliveries); returns how many.
pub(crate) fn redeliver_claims_of(att: &Attachment, dead: u16) -> usize {
    let ring = &att.ring;
    let mut n = 0;
    for i in 0..ring.capacity() {
        let w = ring.slot(i).state.load(Acquire);
        if slot::claimer(w) == dead && slot::tag(w) == slot::READING && mpmc::recover(ring, i, w, att.id) {
            n += 1;
        }
    }
    n
}
