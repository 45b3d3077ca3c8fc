//! [`JournalReader`]: reads a journal's records in order, from the start, a sequence number or a
//! time, while a writer may be appending; [`inspect`]: what a journal holds.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::format::{self, FileHeader, Found, FILE_HEADER, RECORD_HEADER};
use super::{list_files, Damage};
use crate::error::{Error, Result};

/// One message read back from a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The topic's sequence number of the message.
    pub seq: u64,
    /// When it was recorded, ns since the Unix epoch.
    pub time_ns: u64,
    /// Its kind tag.
    pub kind: u32,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// Where a replay starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The oldest record kept.
    Start,
    /// The first record with this sequence number or a later one.
    Seq(u64),
    /// The first record recorded at this time (ns since the Unix epoch) or later.
    Time(u64),
}

/// Bytes read from a file at a time.
const CHUNK: usize = 1 << 20;

/// Reads a topic's journal in order. An iterator of records; it ends where the journal ends
/// now (a writer may add more: call `next` again later), and at damage, which it reports in
/// [`damage`](Self::damage) and never returns as a record.
#[derive(Debug)]
pub struct JournalReader {
    dir: PathBuf,
    from: ReplayFrom,
    /// The file being read: its first sequence number, path, handle.
    file: Option<(u64, PathBuf, std::fs::File)>,
    /// Bytes of the file from offset `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    /// Offset of the next record.
    pos: u64,
    damage: Vec<Damage>,
    /// Where the last `next_record` that found nothing stopped, if at a record that does not
    /// check (see `tail`).
    tail: Option<Damage>,
}

impl JournalReader {
    /// A reader of the journal of `topic` under `dir` (the directory given to
    /// `JournalOptions::new`), starting at `from`.
    ///
    /// # Errors
    /// `InvalidName`; I/O errors.
    pub fn open(dir: impl AsRef<Path>, topic: &str, from: ReplayFrom) -> Result<JournalReader> {
        crate::segment::validate_name(topic)?;
        let mut r = JournalReader {
            dir: dir.as_ref().join(topic),
            from,
            file: None,
            buf: Vec::new(),
            buf_at: 0,
            pos: 0,
            damage: Vec::new(),
            tail: None,
        };
        let files = list_files(&r.dir)?;
        // From a sequence number: the last file that starts at or before it.
        let start = match from {
            ReplayFrom::Seq(s) => files.iter().rposition(|(first, _)| *first <= s).unwrap_or(0),
            _ => 0,
        };
        if let Some((first, path)) = files.get(start) {
            r.open_file(*first, path.clone())?;
        }
        Ok(r)
    }

    /// Damage found so far (the reader stopped at each, or skipped to the next file).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// If the last [`next_record`](Self::next_record) ended at a record that does not check, at
    /// the end of the journal: where and why. It is a record torn by a crash, or one a writer is
    /// writing at this moment (then it checks when read again); a reader that does not follow a
    /// writer reports it as damage.
    pub fn tail(&self) -> Option<&Damage> {
        self.tail.as_ref()
    }

    fn open_file(&mut self, first: u64, path: PathBuf) -> Result<bool> {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false), // retention
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let mut h = [0u8; FILE_HEADER];
        let header = f.read_exact(&mut h).map_err(|e| e.to_string()).and_then(|()| FileHeader::decode(&h));
        match header {
            Ok(h) if h.first_seq == first => {}
            Ok(h) => {
                let what = format!("names sequence {first} but its header says {}", h.first_seq);
                self.damage.push(Damage { file: path, offset: 0, what, cut: false });
                return Ok(false);
            }
            Err(what) => {
                self.damage.push(Damage { file: path, offset: 0, what, cut: false });
                return Ok(false);
            }
        }
        self.file = Some((first, path, f));
        self.buf.clear();
        self.buf_at = FILE_HEADER as u64;
        self.pos = FILE_HEADER as u64;
        Ok(true)
    }

    /// Makes `buf` hold at least `n` bytes from `pos` (fewer at the end of the file).
    fn fill(&mut self, n: usize) -> Result<()> {
        let Some((_, path, f)) = self.file.as_mut() else { return Ok(()) };
        let have = (self.buf_at + self.buf.len() as u64).saturating_sub(self.pos) as usize;
        if self.pos >= self.buf_at && have >= n {
            return Ok(());
        }
        // Re-read from `pos`: at least a chunk, more for a large record.
        let want = n.max(CHUNK);
        self.buf.resize(want, 0);
        let mut got = 0;
        use std::os::unix::fs::FileExt;
        while got < want {
            match f.read_at(&mut self.buf[got..], self.pos + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
            }
        }
        self.buf.truncate(got);
        self.buf_at = self.pos;
        Ok(())
    }

    /// The next file after the current one, if the journal has one now.
    fn next_file(&mut self) -> Result<Option<(u64, PathBuf)>> {
        let current = self.file.as_ref().map(|(first, _, _)| *first);
        Ok(list_files(&self.dir)?.into_iter().find(|(first, _)| current.is_none_or(|c| *first > c)))
    }

    /// The next record, `Ok(None)` at the end of what is there now.
    ///
    /// # Errors
    /// I/O errors.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if self.file.is_none() {
                match self.next_file()? {
                    Some((first, path)) => {
                        self.open_file(first, path)?;
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            self.fill(RECORD_HEADER)?;
            let off = (self.pos - self.buf_at) as usize;
            let mut found = format::decode_record(&self.buf[off..]);
            if let Found::Bad(_) = found {
                // Perhaps only because the record is larger than what is buffered: read it whole.
                let len = self.buf.get(off + 4..off + 8).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
                if let Some(len) = len.filter(|&l| (l as usize) < (1 << 30)) {
                    self.fill(format::record_size(len as usize))?;
                    found = format::decode_record(&self.buf[(self.pos - self.buf_at) as usize..]);
                }
            }
            match found {
                Found::Record(h) => {
                    self.tail = None;
                    let start = (self.pos - self.buf_at) as usize + RECORD_HEADER;
                    let payload = self.buf[start..start + h.len as usize].to_vec();
                    self.pos += format::record_size(h.len as usize) as u64;
                    let wanted = match self.from {
                        ReplayFrom::Start => true,
                        ReplayFrom::Seq(s) => h.seq >= s,
                        ReplayFrom::Time(t) => h.time_ns >= t,
                    };
                    if wanted {
                        return Ok(Some(Record { seq: h.seq, time_ns: h.time_ns, kind: h.kind, payload }));
                    }
                }
                Found::End | Found::Bad(_) => {
                    // The end of this file's records for now. Only once a later file exists is
                    // this one finished (the writer completes a file before it starts the next):
                    // then look once more (the last record may have been completed in between),
                    // report a bad record as damage, and go on with the next file. Otherwise this
                    // is the journal's end for now (a bad record may be one being written: it is
                    // looked at again next time).
                    let Some((first, path)) = self.next_file()? else {
                        self.tail = match &found {
                            Found::Bad(what) => Some(Damage {
                                file: self.file.as_ref().map(|(_, p, _)| p.clone()).unwrap_or_default(),
                                offset: self.pos,
                                what: what.clone(),
                                cut: false,
                            }),
                            _ => None,
                        };
                        self.buf.clear(); // read again next time: a writer may have appended
                        return Ok(None);
                    };
                    self.buf.clear();
                    self.fill(RECORD_HEADER)?;
                    let off = (self.pos - self.buf_at) as usize;
                    let again = match format::decode_record(&self.buf[off..]) {
                        Found::Bad(_) => {
                            let len = u32::from_le_bytes(self.buf[off + 4..off + 8].try_into().expect("4 bytes"));
                            if (len as usize) < (1 << 30) {
                                self.fill(format::record_size(len as usize))?;
                            }
                            format::decode_record(&self.buf[(self.pos - self.buf_at) as usize..])
                        }
                        other => other,
                    };
                    match again {
                        Found::Record(_) => continue,
                        Found::Bad(what) => {
                            let file = self.file.as_ref().map(|(_, p, _)| p.clone()).unwrap_or_default();
                            self.damage.push(Damage { file, offset: self.pos, what, cut: false });
                        }
                        Found::End => {}
                    }
                    self.file = None;
                    self.open_file(first, path)?;
                }
            }
        }
    }
}

impl Iterator for JournalReader {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record().transpose()
    }
}

/// One file of a journal, as [`inspect`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Bytes of records in it.
    pub used: u64,
    /// Records.
    pub records: u64,
    /// First and last sequence numbers (none if empty).
    pub seqs: Option<(u64, u64)>,
    /// First and last record times.
    pub times: Option<(u64, u64)>,
}

/// What a journal holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalReport {
    /// Its files, oldest first.
    pub files: Vec<FileReport>,
    /// Damage found: torn or damaged records, files that are not journal files.
    pub damage: Vec<Damage>,
}

impl JournalReport {
    /// Records in all files.
    pub fn records(&self) -> u64 {
        self.files.iter().map(|f| f.records).sum()
    }
    /// First and last sequence numbers.
    pub fn seqs(&self) -> Option<(u64, u64)> {
        let first = self.files.iter().find_map(|f| f.seqs)?.0;
        let last = self.files.iter().rev().find_map(|f| f.seqs)?.1;
        Some((first, last))
    }
}

/// Reads every record of the journal of `topic` under `dir`, checking every checksum.
///
/// # Errors
/// `InvalidName`; I/O errors.
pub fn inspect(dir: impl AsRef<Path>, topic: &str) -> Result<JournalReport> {
    crate::segment::validate_name(topic)?;
    let jdir = dir.as_ref().join(topic);
    let mut report = JournalReport::default();
    let files = list_files(&jdir)?;
    for (i, (first, path)) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let mut f =
            FileReport { path: path.clone(), size: bytes.len() as u64, used: 0, records: 0, seqs: None, times: None };
        match FileHeader::decode(&bytes) {
            Ok(h) if h.first_seq == *first => {}
            Ok(h) => {
                let what = format!("names sequence {first} but its header says {}", h.first_seq);
                report.damage.push(Damage { file: path.clone(), offset: 0, what, cut: false });
            }
            Err(what) => report.damage.push(Damage { file: path.clone(), offset: 0, what, cut: false }),
        }
        let mut pos = FILE_HEADER.min(bytes.len());
        loop {
            match format::decode_record(&bytes[pos..]) {
                Found::Record(h) => {
                    f.records += 1;
                    f.seqs = Some((f.seqs.map_or(h.seq, |s| s.0), h.seq));
                    f.times = Some((f.times.map_or(h.time_ns, |t| t.0), h.time_ns));
                    pos += format::record_size(h.len as usize);
                }
                Found::End => break,
                Found::Bad(what) => {
                    let what = if i + 1 == files.len() {
                        format!("{what}; the end of the journal: a record torn by a crash, or being written now")
                    } else {
                        what
                    };
                    report.damage.push(Damage { file: path.clone(), offset: pos as u64, what, cut: false });
                    break;
                }
            }
        }
        f.used = pos as u64;
        report.files.push(f);
    }
    Ok(report)
}
