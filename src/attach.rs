//! A process's attachment to a segment: the mapping, its ring, its participant entry, and the
//! blocking-call machinery that queues and topics share.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{self, Event};
use crate::participants::Participants;
use crate::ring::{MappedRing, RingMem};
use crate::segment::Segment;
use crate::sync::Ordering::Relaxed;
use crate::wait::{self, Step, WaitStrategy};

/// One attachment: detaches (frees its participant entry) on drop.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) seg: Segment,
    pub(crate) ring: MappedRing,
    pub(crate) parts: Participants,
    /// Our participant id: what our claims on slots record.
    pub(crate) id: u16,
    pub(crate) wait: WaitStrategy,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.parts.detach(self.id);
    }
}

/// When a blocking call gives up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Never wait (`try_*`).
    Now,
    /// Wait as long as it takes.
    Forever,
    /// Wait until then (`*_timeout`).
    At(Instant),
}

impl Deadline {
    pub(crate) fn after(t: Duration) -> Deadline {
        Instant::now().checked_add(t).map_or(Deadline::Forever, Deadline::At)
    }
}

impl Attachment {
    /// Attaches to `seg` with a new participant entry; `scrub(dead_id)` recovers the claims of
    /// a dead participant whose entry is taken over.
    pub(crate) fn new(seg: Segment, wait: WaitStrategy, scrub: impl FnMut(&MappedRing, u16)) -> Result<Self> {
        let ring = seg.ring();
        let parts = seg.participants();
        let mut scrub = scrub;
        let id = parts.attach(0, |dead| scrub(&ring, dead))?;
        Ok(Attachment { seg, ring, parts, id, wait })
    }

    /// One attempt, then (unless `deadline` is `Now`, which gives `on_empty`) a wait per the
    /// strategy until `deadline`. Producers (`blocked` set) count the times and the time they
    /// waited; the fast path touches no counter.
    pub(crate) fn run<T>(
        &self,
        ev: &Event,
        deadline: Deadline,
        on_empty: Error,
        blocked: Option<&layout::Stats>,
        mut poll: impl FnMut(bool) -> Result<Step<T>>,
    ) -> Result<T> {
        if let Step::Ready(v) = poll(false)? {
            return Ok(v);
        }
        if let Some(st) = blocked {
            st.full_events.fetch_add(1, Relaxed);
        }
        let until = match deadline {
            Deadline::Now => return Err(on_empty),
            Deadline::Forever => None,
            Deadline::At(t) => Some(t),
        };
        self.parts.touch(self.id);
        let started = Instant::now();
        let r = wait::wait_until(self.wait, until, ev, poll);
        if let Some(st) = blocked {
            st.blocked_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        }
        r
    }

    /// A producer or publisher waits for space.
    pub(crate) fn run_producer<T>(&self, deadline: Deadline, poll: impl FnMut(bool) -> Result<Step<T>>) -> Result<T> {
        let ctl = self.ring.control();
        self.run(&ctl.space.0, deadline, Error::Full, Some(&ctl.stats.0), poll)
    }

    /// A consumer or subscriber waits for data.
    pub(crate) fn run_consumer<T>(&self, deadline: Deadline, poll: impl FnMut(bool) -> Result<Step<T>>) -> Result<T> {
        self.run(&self.ring.control().data.0, deadline, Error::Empty, None, poll)
    }
}
