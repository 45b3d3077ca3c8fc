//! A [`Subscriber`] that is a member of a consumer group: its messages come from the group's
//! shared claim (see `ring::group`), each to one member of the group.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::subscriber::{AckMode, Subscriber};
use crate::attach::Deadline;
use crate::error::{Error, Result};
use crate::layout::{slot, MODE_LOSSY};
use crate::ring::group::{self, Claimed, Found, Group};
use crate::ring::{broadcast, RingMem};
use crate::sync::Ordering::{Acquire, Relaxed};
use crate::wait::Step;

/// How often an idle member looks for messages of members that died.
const HOUSEKEEPING: Duration = Duration::from_millis(10);

/// A member's own state (the group's is in shared memory).
#[derive(Debug)]
pub(super) struct Member {
    /// The group does not gate publishers; its members copy messages out (seqlock).
    pub(super) lossy: bool,
    /// The message received last, acknowledged on the next receive, `ack` or drop
    /// ([`AckMode::OnNextReceive`]).
    last: Option<u64>,
    /// Messages received and not yet acknowledged ([`AckMode::Explicit`]): at most a ring's
    /// worth (a reliable group hands out nothing a ring ahead of its position; beyond that, the
    /// oldest was overwritten, in a lossy group, and is forgotten).
    held: VecDeque<u64>,
    /// A message claimed but too large for the caller's buffer: kept for the next receive.
    oversize: Option<Claimed>,
    next_check: Instant,
}

impl Member {
    pub(super) fn new(mode: u32) -> Member {
        Member {
            lossy: mode & MODE_LOSSY != 0,
            last: None,
            held: VecDeque::new(),
            oversize: None,
            next_check: Instant::now(),
        }
    }
}

impl Subscriber {
    fn group_view(&self) -> Group<'_> {
        self.shared.table.group(self.index).expect("a group member's entry has a group region")
    }

    fn member(&mut self) -> &mut Member {
        self.member.as_mut().expect("a group member")
    }

    /// Waits for the group's next message for this member, of at most `max_len` bytes:
    /// (sequence, length, kind, topic slot word). Acknowledges the previous one first
    /// ([`AckMode::OnNextReceive`]).
    pub(super) fn member_wait_next(&mut self, max_len: usize, deadline: Deadline) -> Result<(u64, usize, u32, u64)> {
        if self.ack == AckMode::OnNextReceive {
            self.member_ack_last();
        }
        if let Some(c) = self.member().oversize {
            if c.len > max_len {
                return Err(Error::BufferTooSmall { len: max_len, needed: c.len });
            }
            self.member().oversize = None;
            return Ok((c.seq, c.len, c.kind, c.word));
        }
        let shared = self.shared.clone();
        let s = &*shared;
        let ring = &s.att.ring;
        let me = s.att.id;
        let cap = ring.capacity();
        let lossy = self.member().lossy;
        s.att.run_consumer(deadline, |check| {
            let g = s.table.group(self.index).expect("group region");
            for _ in 0..crate::ring::MAX_CLAIM_ROUNDS {
                match group::claim(ring, &g, me, !lossy, lossy)? {
                    Found::Message(c) => {
                        if c.len > max_len {
                            self.member.as_mut().expect("member").oversize = Some(c);
                            return Err(Error::BufferTooSmall { len: max_len, needed: c.len });
                        }
                        return Ok(Step::Ready((c.seq, c.len, c.kind, c.word)));
                    }
                    Found::Empty => {
                        let m = self.member.as_mut().expect("member");
                        let now = Instant::now();
                        if check || now >= m.next_check {
                            m.next_check = now + HOUSEKEEPING;
                            if s.table.recover_group(self.index, &|id| id != me && s.att.parts.is_dead(id)) > 0 {
                                continue;
                            }
                        }
                        return Ok(Step::Wait);
                    }
                    Found::Held { seq, word } => {
                        if check && s.att.parts.is_dead(slot::claimer(word)) && broadcast::recover(ring, seq, word) {
                            s.att.notify_data();
                            continue;
                        }
                        return Ok(Step::held_by(word));
                    }
                    Found::Lagged { missed } => {
                        s.table.entry(self.index).lagged.fetch_add(missed, Relaxed);
                        group::advance(&g, cap, lossy);
                        return Err(Error::Lagged(missed));
                    }
                }
            }
            Ok(Step::Wait)
        })
    }

    /// After a lossy member copied message `seq`: whether the copy is intact; if not, the
    /// message counts as missed (acknowledged, `Lagged(1)`).
    pub(super) fn member_check_copy(&mut self, seq: u64, word: u64) -> Result<()> {
        let lossy = self.member().lossy;
        let ring = &self.shared.att.ring;
        if !lossy || broadcast::still_intact(ring, seq, word) {
            return Ok(());
        }
        let (me, cap) = (self.shared.att.id, ring.capacity());
        let _ = group::ack(&self.group_view(), cap, seq, me, true);
        self.shared.table.entry(self.index).lagged.fetch_add(1, Relaxed);
        Err(Error::Lagged(1))
    }

    /// Message `seq` was delivered: acknowledged later, per the mode.
    pub(super) fn member_consumed(&mut self, seq: u64) {
        self.unfinished = false;
        self.delivered = self.delivered.wrapping_add(1);
        self.shared.table.entry(self.index).delivered.fetch_add(1, Relaxed);
        match self.ack {
            AckMode::OnNextReceive => self.member().last = Some(seq),
            AckMode::Explicit => {
                let cap = self.shared.att.ring.capacity() as usize;
                let held = &mut self.member().held;
                if held.len() >= cap {
                    held.pop_front();
                }
                held.push_back(seq);
            }
        }
    }

    /// Consumes the message kept for being too large (a typed receive's size mismatch).
    pub(super) fn member_take_oversize(&mut self) {
        if let Some(c) = self.member().oversize.take() {
            self.member_ack(c.seq);
        }
    }

    fn member_ack_last(&mut self) {
        if let Some(seq) = self.member().last.take() {
            self.member_ack(seq);
        }
    }

    fn member_ack(&mut self, seq: u64) {
        let (me, cap, lossy) = (self.shared.att.id, self.shared.att.ring.capacity(), self.member().lossy);
        // A claim taken back (we were judged dead: never for a live process) is the group's now.
        let _ = group::ack(&self.group_view(), cap, seq, me, lossy);
        if !lossy {
            self.shared.att.notify_space();
        }
    }

    /// [`Subscriber::ack`] of a member: everything it received.
    pub(super) fn member_ack_all(&mut self) {
        self.member_ack_last();
        let held = std::mem::take(&mut self.member().held);
        for seq in held {
            self.member_ack(seq);
        }
    }

    /// The member leaves: what it received is acknowledged if it was processed (the default
    /// mode, not while a panic unwinds), else put back for the other members.
    pub(super) fn member_leave(&mut self) {
        if self.ack == AckMode::OnNextReceive && !std::thread::panicking() && !self.unfinished {
            self.member_ack_last();
        }
        let me = self.shared.att.id;
        let m = self.member();
        let mut back: Vec<u64> = m.last.take().into_iter().chain(m.held.drain(..)).collect();
        back.extend(m.oversize.take().map(|c| c.seq));
        let g = self.group_view();
        let mut n = 0;
        for seq in back {
            if group::put_back(&g, seq, slot::pack(seq, slot::READING, me)) {
                n += 1;
            }
        }
        if n > 0 {
            self.shared.table.entry(self.index).group_redelivered.fetch_add(n, Relaxed);
            self.shared.att.notify_data();
        }
        self.shared.table.remove_member(self.index, me);
        self.shared.att.notify_space();
    }

    /// Whether a message is probably ready for this member.
    pub(super) fn member_probe(&mut self, check: bool) -> Result<Step<()>> {
        let s = &*self.shared;
        if check {
            // Messages held by dead members, put back, are ready for us.
            let me = s.att.id;
            s.table.recover_group(self.index, &|id| id != me && s.att.parts.is_dead(id));
        }
        let g = self.group_view();
        if self.member.as_ref().is_some_and(|m| m.oversize.is_some())
            || group::retries::pending(g.retry.load(Acquire)) > 0
        {
            return Ok(Step::Ready(()));
        }
        let ring = &s.att.ring;
        let next = g.next.load(Acquire);
        Ok(match broadcast::read(ring, next, !self.member.as_ref().is_some_and(|m| m.lossy)) {
            Ok(broadcast::Read::NotReady) => Step::Wait,
            Ok(broadcast::Read::Held { word }) => {
                if check && s.att.parts.is_dead(slot::claimer(word)) && broadcast::recover(ring, next, word) {
                    s.att.notify_data();
                }
                Step::held_by(word)
            }
            _ => Step::Ready(()),
        })
    }

    /// The group's position (lowest sequence not acknowledged).
    pub(super) fn member_position(&self) -> u64 {
        self.group_view().position.load(Acquire)
    }

    /// Messages published that the group has not handed out yet.
    pub(super) fn member_lag(&self) -> u64 {
        let tail = self.shared.att.ring.control().tail.0.load(Relaxed);
        tail.saturating_sub(self.group_view().next.load(Relaxed))
    }
}
