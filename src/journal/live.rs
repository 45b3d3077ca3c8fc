//! [`ReplayThenLive`]: a topic's journal from any point, then the live topic, with no gap and no
//! duplicate.

use std::path::Path;

use super::{JournalReader, ReplayFrom};
use crate::error::{Error, RecvError, TryRecvError};
use crate::topic::{Start, Subscriber, Topic};

/// One message delivered by a [`ReplayThenLive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Its sequence number in the topic.
    pub seq: u64,
    /// Its kind tag.
    pub kind: u32,
    /// Its length (the first `len` bytes of the buffer).
    pub len: usize,
    /// Whether it came from the journal (else from the live topic).
    pub from_journal: bool,
}

/// Reads a topic's journal from a point, then goes on with the live topic: every message once,
/// in sequence order, none missing (the thing Chronicle does natively and Aeron does with
/// replay-merge).
///
/// How: it subscribes to the topic first (reliable, from the oldest message the topic still
/// holds, sequence `P`), then replays the journal's records before `P`, then delivers the live
/// messages from `P` on. Nothing falls between the two as long as a reliable recorder records
/// the topic: the topic keeps every message its recorder has not acknowledged, and the recorder
/// acknowledges only what the journal holds, so the journal holds everything before `P`. If it
/// does not (no recorder, a lossy one, or retention removed the start), the messages missing
/// between the journal and the topic are reported once as [`TryRecvError::Lagged`], like a
/// lossy subscriber's.
#[derive(Debug)]
pub struct ReplayThenLive {
    sub: Subscriber,
    journal: Option<JournalReader>,
    /// The first sequence number the subscriber sees.
    live_from: u64,
    /// Deliver nothing below this (a replay from a sequence number past the journal).
    from_seq: u64,
    /// The last sequence number delivered.
    last: Option<u64>,
    /// The highest sequence number read from the journal (delivered or not), and whether the
    /// replay is from a time (before which the journal's records are not even read).
    seen: Option<u64>,
    by_time: bool,
    /// A gap to report before the first live message.
    gap: Option<u64>,
}

impl ReplayThenLive {
    /// Replays the journal of `topic` under `journal_dir` (the directory given to
    /// `JournalOptions::new`) from `from`, then the live topic.
    ///
    /// # Errors
    /// The subscriber's errors (a full subscriber table); the journal's I/O errors.
    pub fn new(topic: &Topic, journal_dir: impl AsRef<Path>, from: ReplayFrom) -> crate::Result<ReplayThenLive> {
        // Subscribe first: from here on the topic keeps everything for us.
        let sub = topic.subscriber().start(Start::Earliest).build().map_err(Error::from)?;
        let live_from = sub.position();
        let journal = JournalReader::open(journal_dir, topic.name(), from)?;
        let from_seq = match from {
            ReplayFrom::Seq(s) => s,
            _ => 0,
        };
        let by_time = matches!(from, ReplayFrom::Time(_));
        Ok(ReplayThenLive {
            sub,
            journal: Some(journal),
            live_from,
            from_seq,
            last: None,
            seen: None,
            by_time,
            gap: None,
        })
    }

    /// The live subscriber (for its position, lag, or a `WaitSet`).
    pub fn subscriber(&mut self) -> &mut Subscriber {
        &mut self.sub
    }

    /// Damage the journal reader met (its records were skipped, never delivered).
    pub fn journal_damage(&self) -> Vec<super::Damage> {
        self.journal.as_ref().map(|j| j.damage().to_vec()).unwrap_or_default()
    }

    /// The next message from the journal, if the journal phase is not over.
    fn next_from_journal(&mut self, buf: &mut [u8]) -> Result<Option<Replayed>, TryRecvError> {
        let Some(j) = self.journal.as_mut() else { return Ok(None) };
        loop {
            let rec = j.next_record().map_err(TryRecvError::from_internal)?;
            if let Some(r) = &rec {
                self.seen = Some(self.seen.map_or(r.seq, |s| s.max(r.seq)));
            }
            match rec {
                Some(r) if r.seq >= self.live_from => break,
                Some(r) if self.last.is_some_and(|l| r.seq <= l) || r.seq < self.from_seq => continue,
                Some(r) => {
                    if r.payload.len() > buf.len() {
                        return Err(TryRecvError::BufferTooSmall { len: buf.len(), needed: r.payload.len() });
                    }
                    buf[..r.payload.len()].copy_from_slice(&r.payload);
                    self.last = Some(r.seq);
                    return Ok(Some(Replayed { seq: r.seq, kind: r.kind, len: r.payload.len(), from_journal: true }));
                }
                None => break,
            }
        }
        // The journal phase is over: what lies between it and the live topic is missing.
        self.journal = None;
        let next = match self.seen {
            Some(s) => Some((s + 1).max(self.from_seq)),
            None if !self.by_time => Some(self.from_seq),
            None => None, // from a time, and nothing recorded since: nothing known to be missing
        };
        if let Some(n) = next.filter(|&n| n < self.live_from) {
            self.gap = Some(self.live_from - n);
        }
        Ok(None)
    }

    /// The next message without waiting: the journal's, then the live topic's.
    ///
    /// # Errors
    /// `Empty`; `Lagged(n)` once, if `n` messages are in neither the journal nor the topic;
    /// `BufferTooSmall` (nothing consumed); the subscriber's errors.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Replayed, TryRecvError> {
        if let Some(r) = self.next_from_journal(buf)? {
            return Ok(r);
        }
        if let Some(n) = self.gap.take() {
            return Err(TryRecvError::Lagged(n));
        }
        loop {
            // `try_recv` leaves a message too large for `buf` in place (BufferTooSmall).
            let got = self.sub.try_recv(buf)?;
            // A reliable subscriber without kind filters: the message's sequence number is the
            // one before its position now.
            let seq = self.sub.position() - 1;
            if self.last.is_some_and(|l| seq <= l) || seq < self.from_seq {
                continue; // delivered from the journal already, or before the start asked for
            }
            self.last = Some(seq);
            return Ok(Replayed { seq, kind: got.kind, len: got.len, from_journal: false });
        }
    }

    /// The next message, waiting for the live topic once the journal is read.
    ///
    /// # Errors
    /// As for [`try_recv`](Self::try_recv), `Disconnected` instead of `Empty` once every
    /// publisher left and everything was delivered.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<Replayed, RecvError> {
        loop {
            match self.try_recv(buf) {
                Err(TryRecvError::Empty) => {}
                Ok(r) => return Ok(r),
                Err(e) => return Err(RecvError::from_internal(Error::from(e))),
            }
            self.sub.wait_ready(None).map_err(|e| RecvError::from_internal(Error::from(e)))?;
        }
    }
}
