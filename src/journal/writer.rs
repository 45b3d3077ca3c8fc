//! [`JournalWriter`]: appends records to a journal's files, rolls them, syncs them per the
//! durability policy and applies retention.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::format::{self, FileHeader, Found, RecordHeader, FILE_HEADER, RECORD_HEADER};
use super::{list_files, Damage, Fsync, JournalOptions};
use crate::error::{Error, Result};
use crate::os::{File, Mapping};

/// The file being written.
struct Current {
    path: PathBuf,
    map: Mapping,
    /// Where the next record goes.
    end: usize,
    /// Bytes up to here are synced.
    synced: usize,
    _file: File,
}

/// Appends a topic's messages to its journal. One writer per journal at a time (the recorder);
/// readers may read at any time.
pub struct JournalWriter {
    dir: PathBuf,
    topic: String,
    opts: JournalOptions,
    current: Option<Current>,
    /// The last sequence number appended, and the last one synced (durable).
    last_seq: Option<u64>,
    durable_seq: Option<u64>,
    last_sync: Instant,
    /// Holds the journal's writer lock (an open-file-description lock on `.writer.lock`).
    _lock: File,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("dir", &self.dir)
            .field("topic", &self.topic)
            .field("last_seq", &self.last_seq)
            .field("durable_seq", &self.durable_seq)
            .finish()
    }
}

impl JournalWriter {
    /// Opens (or starts) the journal of `topic` under `opts.dir`, ready to append after its last
    /// valid record. A torn or damaged tail of the last file (a crash mid-record) is cut off and
    /// returned as [`Damage`], so it can be reported; it is never read as a message.
    ///
    /// # Errors
    /// I/O errors; `Corrupted` if a file in the journal's directory is not a journal file of
    /// this topic.
    pub fn open(opts: &JournalOptions, topic: &str) -> Result<(JournalWriter, Vec<Damage>)> {
        crate::segment::validate_name(topic)?;
        let dir = opts.dir.join(topic);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        // One writer per journal: two would interleave their records.
        let lock_path = dir.join(".writer.lock");
        let lock = match File::create_new(&lock_path, opts.mode)? {
            Some(f) => f,
            None => File::open(&lock_path)?.ok_or_else(|| {
                Error::io(format!("open {}", lock_path.display()), std::io::ErrorKind::NotFound.into())
            })?,
        };
        if !lock.lock(0, crate::os::Lock::Write)? {
            return Err(Error::io(
                format!("journal {} is being written by another process (one writer per journal)", dir.display()),
                std::io::ErrorKind::WouldBlock.into(),
            ));
        }
        let mut w = JournalWriter {
            dir,
            topic: topic.to_string(),
            opts: opts.clone(),
            current: None,
            last_seq: None,
            durable_seq: None,
            last_sync: Instant::now(),
            _lock: lock,
        };
        let mut damage = Vec::new();
        if let Some((first, path)) = list_files(&w.dir)?.pop() {
            let file = File::open(&path)?.ok_or_else(|| Error::corrupted(format!("{} vanished", path.display())))?;
            let size = file.stat()?.size as usize;
            let head = {
                let mut b = [0u8; FILE_HEADER];
                file.read_at(&mut b, 0)?.then_some(b)
            };
            let header =
                head.ok_or_else(|| "shorter than a file header".to_string()).and_then(|b| FileHeader::decode(&b));
            match header {
                Ok(h) if h.first_seq == first && h.topic == topic && h.size as usize == size => {
                    let (current, last, cut) = Self::resume(file, path, size)?;
                    w.last_seq = last;
                    w.current = Some(current);
                    damage.extend(cut);
                }
                Ok(h) if h.first_seq == first && h.topic == topic => {
                    // Truncated (or grown) since it was written: keep what is valid in it, write
                    // no more into it; the next record starts a new file.
                    let what = format!("{size} bytes, its header says {}: cut short", h.size);
                    damage.push(Damage { file: path.clone(), offset: size as u64, what, cut: false });
                    w.last_seq = last_valid(&path)?;
                }
                Ok(h) => {
                    return Err(Error::corrupted(format!(
                        "journal file {} belongs to topic {:?} from sequence {}: not this journal's",
                        path.display(),
                        h.topic,
                        h.first_seq
                    )))
                }
                Err(e) => return Err(Error::corrupted(format!("journal file {}: {e}", path.display()))),
            }
            // An empty last file: the journal goes on from the file before it.
            if w.last_seq.is_none() {
                w.last_seq = list_files(&w.dir)?.iter().rev().skip(1).find_map(|(_, p)| last_valid(p).ok().flatten());
            }
            w.durable_seq = w.last_seq;
        }
        Ok((w, damage))
    }

    /// Maps the last file, finds its end and cuts off a torn or damaged tail.
    fn resume(file: File, path: PathBuf, size: usize) -> Result<(Current, Option<u64>, Option<Damage>)> {
        let map = file.map_lazily(size)?;
        // SAFETY: the mapping is `size` bytes long and stays mapped while `map` lives; we are the
        // journal's only writer, so nothing writes it meanwhile.
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), size) };
        let (mut end, mut last, mut cut) = (FILE_HEADER, None, None);
        loop {
            match format::decode_record(&bytes[end..]) {
                Found::Record(h) => {
                    last = Some(h.seq);
                    end += format::record_size(h.len as usize);
                }
                Found::End => break,
                Found::Bad(what) => {
                    // Zero from here to the end of what was ever written.
                    let dirty = bytes[end..].iter().rposition(|&b| b != 0).map_or(end, |p| end + p + 1);
                    // SAFETY: end..dirty lies in the mapping; we are its only writer.
                    unsafe { std::ptr::write_bytes(map.as_ptr().add(end), 0, dirty - end) };
                    map.sync(end, dirty)?;
                    cut = Some(Damage { file: path.clone(), offset: end as u64, what, cut: true });
                    break;
                }
            }
        }
        Ok((Current { path, map, end, synced: end, _file: file }, last, cut))
    }

    /// How long until `tick` syncs what is appended but not yet synced (`None`: nothing waits,
    /// or the policy never syncs).
    pub fn sync_due_in(&self) -> Option<Duration> {
        match self.opts.fsync {
            Fsync::Interval(t) if self.durable_seq != self.last_seq => Some(t.saturating_sub(self.last_sync.elapsed())),
            _ => None,
        }
    }

    /// The durability policy.
    pub fn policy(&self) -> Fsync {
        self.opts.fsync
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The sequence number of the last record appended.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }
    /// The sequence number of the last record synced to the device (per the policy): what a
    /// crash of the machine does not lose.
    pub fn durable_seq(&self) -> Option<u64> {
        self.durable_seq
    }

    /// Appends one message. Sequence numbers must grow: a message at or below the last one
    /// appended is skipped (`Ok(false)`), so that a recorder that restarts from an older position
    /// writes nothing twice.
    ///
    /// # Errors
    /// I/O errors (`NoSpace` when a new file cannot be reserved); `InvalidConfig` if the message
    /// cannot fit a file of the configured size.
    pub fn append(&mut self, seq: u64, time_ns: u64, kind: u32, payload: &[u8]) -> Result<bool> {
        if self.last_seq.is_some_and(|l| seq <= l) {
            return Ok(false);
        }
        let need = format::record_size(payload.len());
        if FILE_HEADER + need > self.opts.file_size as usize {
            return Err(Error::InvalidConfig(format!(
                "a message of {} bytes does not fit a journal file of {} bytes; use a larger file size",
                payload.len(),
                self.opts.file_size
            )));
        }
        if self.current.as_ref().is_none_or(|c| c.end + need > c.map.len()) {
            self.roll(seq)?;
        }
        let c = self.current.as_mut().expect("a current file");
        // SAFETY: end + need <= the mapping's length (checked above, or a new file); we are the
        // only writer, so this range is ours.
        let out = unsafe { std::slice::from_raw_parts_mut(c.map.as_ptr().add(c.end), need) };
        format::encode_record(out, &RecordHeader { len: payload.len() as u32, kind, seq, time_ns }, payload);
        c.end += need;
        self.last_seq = Some(seq);
        if let Fsync::Interval(t) = self.opts.fsync {
            if self.last_sync.elapsed() >= t {
                self.sync()?;
            }
        }
        Ok(true)
    }

    /// Syncs what was appended so far to the device (whatever the policy).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            if c.synced < c.end {
                c.map.sync(c.synced, c.end)?;
                c.synced = c.end;
            }
        }
        self.durable_seq = self.last_seq;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Syncs what the policy says is due: with `Every`, everything appended (group commit: a
    /// recorder calls it after each batch, before it acknowledges the batch); with `Interval`,
    /// everything, once the interval has passed (a recorder calls it while idle too, so that the
    /// last records do not wait for the next one); with `Never`, nothing.
    ///
    /// # Errors
    /// I/O errors.
    pub fn tick(&mut self) -> Result<()> {
        match self.opts.fsync {
            Fsync::Every if self.durable_seq != self.last_seq => self.sync(),
            Fsync::Interval(t) if self.last_sync.elapsed() >= t => self.sync(),
            _ => Ok(()),
        }
    }

    /// Finishes the current file (synced) and starts one whose first record is `first_seq`;
    /// then applies retention.
    fn roll(&mut self, first_seq: u64) -> Result<()> {
        if self.current.is_some() {
            self.sync()?;
        }
        let path = self.dir.join(format::file_name(first_seq));
        let tmp = self.dir.join(format!(".{}.new", format::file_name(first_seq)));
        let _ = std::fs::remove_file(&tmp);
        let file = File::create_new(&tmp, self.opts.mode)?
            .ok_or_else(|| Error::io(format!("create {}", tmp.display()), std::io::ErrorKind::AlreadyExists.into()))?;
        let size = self.opts.file_size;
        file.reserve(size, &self.dir)?;
        let map = file.map_lazily(size as usize)?;
        let header = FileHeader { first_seq, created_ns: crate::os::now_unix_ns(), size, topic: self.topic.clone() };
        // SAFETY: the mapping is `size` >= FILE_HEADER bytes (checked in JournalOptions) and ours.
        unsafe { std::ptr::copy_nonoverlapping(header.encode().as_ptr(), map.as_ptr(), FILE_HEADER) };
        map.sync(0, FILE_HEADER)?;
        // Named only once its header is there: a reader never finds a file without one.
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(format!("rename {}", tmp.display()), e))?;
        self.current = Some(Current { path, map, end: FILE_HEADER, synced: FILE_HEADER, _file: file });
        self.retain()
    }

    /// Removes the oldest files (never the current one) while the journal is over its byte
    /// budget, or their newest record is older than the age limit.
    fn retain(&mut self) -> Result<()> {
        if self.opts.retain_bytes.is_none() && self.opts.retain_age.is_none() {
            return Ok(());
        }
        let files = list_files(&self.dir)?;
        let current = self.current.as_ref().map(|c| c.path.clone());
        let mut total: u64 = files.iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
        let now = crate::os::now_unix_ns();
        for (i, (_, path)) in files.iter().enumerate() {
            if Some(path) == current.as_ref() {
                break;
            }
            let over_bytes = self.opts.retain_bytes.is_some_and(|b| total > b);
            // A file's newest record is older than the next file's creation.
            let next_created = files.get(i + 1).and_then(|(_, p)| created_ns(p)).unwrap_or(now);
            let too_old =
                self.opts.retain_age.is_some_and(|age| now.saturating_sub(next_created) > age.as_nanos() as u64);
            if !(over_bytes || too_old) {
                break;
            }
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            std::fs::remove_file(path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            total = total.saturating_sub(len);
        }
        Ok(())
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// The sequence number of the last valid record of a journal file (read, not mapped: it may be
/// shorter than its header says).
fn last_valid(path: &Path) -> Result<Option<u64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let (mut pos, mut last) = (FILE_HEADER.min(bytes.len()), None);
    while let Found::Record(h) = format::decode_record(&bytes[pos..]) {
        last = Some(h.seq);
        pos += format::record_size(h.len as usize);
    }
    Ok(last)
}

/// A journal file's creation time (from its header).
fn created_ns(path: &Path) -> Option<u64> {
    let mut b = [0u8; FILE_HEADER];
    use std::io::Read;
    std::fs::File::open(path).ok()?.read_exact(&mut b).ok()?;
    FileHeader::decode(&b).ok().map(|h| h.created_ns)
}

/// Default size of a journal file.
pub const DEFAULT_FILE_SIZE: u64 = 64 << 20;
/// Default sync interval.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

#[allow(dead_code)]
const _: () = assert!(RECORD_HEADER == 32);
