//! Journals: a topic's messages on disk, to replay from any point.
//!
//! A journal is a directory (`DIR/TOPIC/`) of fixed-size files of checksummed records (see
//! [`format`](mod@format) for the bytes). [`JournalWriter`] appends (a recorder does: a subscriber of the
//! topic like any other), syncs per the [`Fsync`] policy and removes old files per the retention
//! limits; [`JournalReader`] reads from the start, from a sequence number or from a time, while a
//! writer appends. A record torn by a crash is found by its checksum: readers report it
//! ([`Damage`]) and stop there, never delivering it; the next writer cuts it off.

pub mod format;
mod live;
mod reader;
mod recorder;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

pub use live::{ReplayThenLive, Replayed};
pub use reader::{inspect, FileReport, JournalReader, JournalReport, Record, ReplayFrom};
pub use recorder::{Recorder, DEFAULT_RECORDER_NAME};
pub use writer::{JournalWriter, DEFAULT_FILE_SIZE, DEFAULT_SYNC_INTERVAL};

/// When appended records are synced to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Never (the kernel writes them back in its own time; a crash of the process loses
    /// nothing, a crash of the machine may lose what was not written back).
    Never,
    /// At most this long after a record was appended (the default: 100 ms).
    Interval(Duration),
    /// Before a record is acknowledged: a recorder syncs each batch it took off the topic
    /// before it acknowledges the batch (group commit); a `JournalWriter` used directly syncs on
    /// `tick` or `sync`.
    Every,
}

impl Default for Fsync {
    fn default() -> Self {
        Fsync::Interval(DEFAULT_SYNC_INTERVAL)
    }
}

impl std::str::FromStr for Fsync {
    type Err = String;
    /// `never`, `every`, or `interval:MS`.
    fn from_str(s: &str) -> std::result::Result<Fsync, String> {
        match s {
            "never" => Ok(Fsync::Never),
            "every" => Ok(Fsync::Every),
            _ => match s.strip_prefix("interval:").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(Fsync::Interval(Duration::from_millis(ms))),
                _ => Err(format!("{s:?}: use never, every or interval:MS (MS >= 1)")),
            },
        }
    }
}

/// Where a journal lives and how it is written.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub(crate) dir: PathBuf,
    pub(crate) file_size: u64,
    pub(crate) fsync: Fsync,
    pub(crate) retain_bytes: Option<u64>,
    pub(crate) retain_age: Option<Duration>,
    pub(crate) mode: u32,
}

impl JournalOptions {
    /// Journals under `dir` (each topic's in `dir/TOPIC/`): files of 64 MiB, synced every
    /// 100 ms, kept forever, owner-only.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalOptions {
            dir: dir.into(),
            file_size: DEFAULT_FILE_SIZE,
            fsync: Fsync::default(),
            retain_bytes: None,
            retain_age: None,
            mode: crate::options::DEFAULT_MODE,
        }
    }
    /// Size of each file, at least 64 KiB (a file is reserved whole when it is started; a
    /// message must fit in one).
    pub fn file_size(mut self, bytes: u64) -> Self {
        self.file_size = bytes.max(64 << 10);
        self
    }
    /// The durability policy.
    pub fn fsync(mut self, policy: Fsync) -> Self {
        self.fsync = policy;
        self
    }
    /// Remove the oldest files while the journal holds more than this many bytes (the file
    /// being written is never removed).
    pub fn retain_bytes(mut self, bytes: u64) -> Self {
        self.retain_bytes = Some(bytes);
        self
    }
    /// Remove files whose records are all older than this.
    pub fn retain_age(mut self, age: Duration) -> Self {
        self.retain_age = Some(age);
        self
    }
    /// Permission bits of new files (default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }
}

/// A damaged place found in a journal: a torn record at the end of the last file (a crash
/// mid-write), or damage elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The file.
    pub file: PathBuf,
    /// Where in it.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
    /// Whether it was cut off (zeroed) by a writer opening the journal.
    pub cut: bool,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.file.display(), self.offset, self.what)?;
        if self.cut {
            write!(f, " (cut off)")?;
        }
        Ok(())
    }
}

/// The journal files of directory `dir`, oldest first: `(first sequence, path)`.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
    };
    let mut files: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((format::parse_file_name(e.file_name().to_str()?)?, e.path())))
        .collect();
    files.sort();
    Ok(files)
}
