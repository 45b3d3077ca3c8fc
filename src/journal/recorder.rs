//! [`Recorder`]: a topic's durable subscriber that appends every message to the topic's journal.

use std::time::Duration;

use super::{Damage, JournalOptions, JournalWriter};
use crate::error::{Error, Result};
use crate::topic::{AckMode, Start, Subscriber, SubscriberMode, Topic};
use crate::TryRecvError;

/// The durable subscriber name a recorder uses unless told otherwise.
pub const DEFAULT_RECORDER_NAME: &str = "journal";

/// Messages recorded per turn before the recorder syncs and acknowledges (when its policy says).
const BATCH: usize = 4096;

/// Records a topic into its journal: a durable subscriber of the topic (reliable unless asked
/// otherwise, so it misses nothing and publishers wait for it like for any reliable subscriber;
/// the publishers' path is unchanged) whose messages are appended to the journal's files.
///
/// A message is acknowledged to the topic once it is in the journal's file: written into the
/// file's shared mapping, so in the page cache, which a crash of the recorder process does not
/// lose. A recorder that crashes and restarts under the same name resumes with the first
/// message not acknowledged, and the journal skips the ones it holds already: every message
/// once, none missing. The [`Fsync`](super::Fsync) policy decides when the records reach the
/// device, which is what a crash of the machine may lose (the topic, in shared memory, is lost
/// with the machine anyway).
#[derive(Debug)]
pub struct Recorder {
    sub: Subscriber,
    writer: JournalWriter,
    /// Lossy recorders copy each message out (in-place reads need a reliable subscriber).
    lossy: Option<Vec<u8>>,
    recorded: u64,
    lagged: u64,
}

impl Recorder {
    /// Starts recording `topic` into its journal under `opts`' directory, as the durable
    /// subscriber [`DEFAULT_RECORDER_NAME`], reliable, from the oldest message the topic still
    /// holds the first time. Returns the damage found at the journal's end (cut off).
    ///
    /// # Errors
    /// As for [`JournalWriter::open`]; the subscriber's errors (its name held by a live
    /// recorder: `SubscriberNameTaken`).
    pub fn new(topic: &Topic, opts: &JournalOptions) -> Result<(Recorder, Vec<Damage>)> {
        Self::with(topic, opts, DEFAULT_RECORDER_NAME, SubscriberMode::Reliable)
    }

    /// [`new`](Self::new) with another subscriber name, or lossy (`SubscriberMode::Lossy`: the
    /// recorder never slows publishers, and counts what it missed in [`lagged`](Self::lagged)).
    ///
    /// # Errors
    /// As for [`new`](Self::new).
    pub fn with(
        topic: &Topic,
        opts: &JournalOptions,
        name: &str,
        mode: SubscriberMode,
    ) -> Result<(Recorder, Vec<Damage>)> {
        let (writer, damage) = JournalWriter::open(opts, topic.name())?;
        let sub = topic
            .subscriber()
            .name(name)
            .mode(mode)
            .start(Start::Earliest)
            .ack(AckMode::Explicit)
            .build()
            .map_err(Error::from)?;
        let lossy = (mode == SubscriberMode::Lossy).then(|| vec![0u8; topic.max_msg_size()]);
        Ok((Recorder { sub, writer, lossy, recorded: 0, lagged: 0 }, damage))
    }

    /// The journal being written.
    pub fn writer(&self) -> &JournalWriter {
        &self.writer
    }
    /// Messages recorded by this recorder (skipped ones, already in the journal, not counted).
    pub fn recorded(&self) -> u64 {
        self.recorded
    }
    /// Messages a lossy recorder missed.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    /// Waits up to `timeout` for messages, records what is there (up to a batch), syncs if the
    /// policy says so and acknowledges what is durable. Returns how many it recorded.
    ///
    /// # Errors
    /// `Disconnected` once every publisher left and everything was recorded; I/O errors of the
    /// journal; `Corrupted`.
    pub fn record_for(&mut self, timeout: Duration) -> Result<u64> {
        let before = self.recorded;
        // Not longer than until the next sync is due, so that an idle journal is synced on time.
        let wait = self.writer.sync_due_in().map_or(timeout, |due| due.min(timeout));
        match self.sub.wait_ready(Some(wait)) {
            Ok(()) => {}
            Err(e) if e.is_timeout() => {
                self.settle()?;
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        }
        let mut disconnected = false;
        for _ in 0..BATCH {
            let got = match self.lossy.as_mut() {
                // A lossy subscriber's copy is checked against overwriting; its sequence number
                // is the one before its position once received.
                Some(buf) => self.sub.try_recv(buf).map(|m| {
                    let seq = self.sub.position() - 1;
                    self.writer.append(seq, crate::os::now_unix_ns(), m.kind, &buf[..m.len])
                }),
                None => self.sub.try_recv_ref().map(|m| {
                    let (seq, kind) = (m.sequence(), m.kind());
                    self.writer.append(seq, crate::os::now_unix_ns(), kind, &m)
                }),
            };
            match got {
                Ok(appended) => {
                    if appended? {
                        self.recorded += 1;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => self.lagged += n,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if disconnected && self.recorded == before {
            self.flush()?;
            return Err(Error::Disconnected);
        }
        self.settle()?;
        Ok(self.recorded - before)
    }

    /// Acknowledges to the topic what the journal's file holds, and syncs per the policy
    /// (with `Every`, the sync comes first: what is acknowledged is on the device).
    fn settle(&mut self) -> Result<()> {
        if self.writer.policy() == super::Fsync::Every {
            self.writer.tick()?;
            self.sub.ack();
            return Ok(());
        }
        self.sub.ack();
        self.writer.tick()
    }

    /// Syncs everything recorded and acknowledges it (also done on drop).
    ///
    /// # Errors
    /// I/O errors.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.sync()?;
        self.sub.ack();
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
