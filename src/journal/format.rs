//! The bytes of a journal file.
//!
//! A journal is a directory of files, `<first sequence, 20 digits>.jrnl`, each a fixed size
//! (reserved when it is created, so a full disk fails at the roll, not mid-write):
//!
//! ```text
//!  offset  what
//!       0  file header (256 B): magic "SHMQJRNL", version, header size, first sequence,
//!          creation time, file size, topic name (length + up to 200 bytes), header CRC
//!     256  records, each 8-byte aligned:
//!            +0  crc    u32  CRC-32 of bytes 4.. of the record (header and payload)
//!            +4  len    u32  payload length
//!            +8  kind   u32  the message's kind tag
//!           +12  mark   u32  "REC1": a record starts here
//!           +16  seq    u64  the topic's sequence number of the message
//!           +24  time   u64  ns since the Unix epoch (see `Record::time_ns`)
//!           +32  payload, len bytes, then zeros to the next multiple of 8
//!          after the last record: zeros (the reserved, never written part), or a torn record
//! ```
//!
//! A record is valid only whole: its mark, a length that fits the file, and its CRC. The writer
//! writes the payload and the header's fields first and the CRC last; a crash (of the process
//! or of the machine) mid-record leaves a record whose CRC does not match, which readers report
//! and never deliver, and which the next writer cuts off (zeroes) before it appends.

/// `"SHMQJRNL"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMQJRNL");
/// Journal format version.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const FILE_HEADER: usize = 256;
/// Size of a record header.
pub const RECORD_HEADER: usize = 32;
/// `"REC1"` as a little-endian u32: a record starts here.
pub const MARK: u32 = u32::from_le_bytes(*b"REC1");
/// Longest topic name a journal records (the names' own limit).
pub const MAX_TOPIC: usize = 200;
/// File name suffix.
pub const SUFFIX: &str = ".jrnl";

/// A journal file's header, as read back (validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Sequence number of the file's first record (the file's name).
    pub first_seq: u64,
    /// When the file was created, ns since the Unix epoch.
    pub created_ns: u64,
    /// The file's size.
    pub size: u64,
    /// The topic recorded.
    pub topic: String,
}

impl FileHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; FILE_HEADER] {
        let mut b = [0u8; FILE_HEADER];
        b[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(FILE_HEADER as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_ns.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        let name = self.topic.as_bytes();
        let n = name.len().min(MAX_TOPIC);
        b[40..44].copy_from_slice(&(n as u32).to_le_bytes());
        b[44..44 + n].copy_from_slice(&name[..n]);
        let crc = crc32fast::hash(&b[..FILE_HEADER - 4]);
        b[FILE_HEADER - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a header; `Err` says what is wrong with it.
    pub fn decode(b: &[u8]) -> Result<FileHeader, String> {
        if b.len() < FILE_HEADER {
            return Err(format!("{} bytes, shorter than a journal file header ({FILE_HEADER})", b.len()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if u64_at(0) != MAGIC {
            return Err("not a shmq journal file (bad magic)".into());
        }
        if u32_at(8) != VERSION {
            return Err(format!("journal format version {}, this shmq reads version {VERSION}", u32_at(8)));
        }
        if crc32fast::hash(&b[..FILE_HEADER - 4]) != u32_at(FILE_HEADER - 4) {
            return Err("file header checksum mismatch".into());
        }
        let n = u32_at(40) as usize;
        if n > MAX_TOPIC || u32_at(12) as usize != FILE_HEADER {
            return Err("impossible file header fields".into());
        }
        Ok(FileHeader {
            first_seq: u64_at(16),
            created_ns: u64_at(24),
            size: u64_at(32),
            topic: String::from_utf8_lossy(&b[44..44 + n]).into_owned(),
        })
    }
}

/// One record's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length.
    pub len: u32,
    /// Kind tag.
    pub kind: u32,
    /// Sequence number.
    pub seq: u64,
    /// Time, ns since the Unix epoch.
    pub time_ns: u64,
}

/// Bytes a record of `len` payload bytes takes.
pub const fn record_size(len: usize) -> usize {
    (RECORD_HEADER + len + 7) & !7
}

/// Writes record `h` with `payload` into `out` (at least `record_size(payload.len())` bytes):
/// everything but the CRC, then the CRC.
pub fn encode_record(out: &mut [u8], h: &RecordHeader, payload: &[u8]) {
    let end = RECORD_HEADER + payload.len();
    out[4..8].copy_from_slice(&h.len.to_le_bytes());
    out[8..12].copy_from_slice(&h.kind.to_le_bytes());
    out[12..16].copy_from_slice(&MARK.to_le_bytes());
    out[16..24].copy_from_slice(&h.seq.to_le_bytes());
    out[24..32].copy_from_slice(&h.time_ns.to_le_bytes());
    out[RECORD_HEADER..end].copy_from_slice(payload);
    out[end..record_size(payload.len())].fill(0);
    let crc = crc32fast::hash(&out[4..end]);
    out[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at the start of `b` are.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A valid record (its header; the payload is `b[RECORD_HEADER..][..len]`).
    Record(RecordHeader),
    /// Zeros: the end of what was written.
    End,
    /// Neither: a torn or damaged record, and what is wrong with it.
    Bad(String),
}

/// Reads the record at the start of `b` (the rest of the file's bytes).
pub fn decode_record(b: &[u8]) -> Found {
    if b.len() < RECORD_HEADER {
        return if b.iter().all(|&x| x == 0) { Found::End } else { Found::Bad("a partial record header".into()) };
    }
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if b[..RECORD_HEADER].iter().all(|&x| x == 0) {
        return Found::End;
    }
    if u32_at(12) != MARK {
        return Found::Bad("no record mark".into());
    }
    let len = u32_at(4) as usize;
    if RECORD_HEADER + len > b.len() {
        return Found::Bad(format!("a record of {len} bytes runs past the end of the file"));
    }
    if crc32fast::hash(&b[4..RECORD_HEADER + len]) != u32_at(0) {
        return Found::Bad("record checksum mismatch (torn or damaged)".into());
    }
    Found::Record(RecordHeader { len: len as u32, kind: u32_at(8), seq: u64_at(16), time_ns: u64_at(24) })
}

/// The file name of a journal file whose first record is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The first sequence number a journal file's name says, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_flipped_bit_is_caught() {
        let h = RecordHeader { len: 5, kind: 7, seq: 42, time_ns: 123 };
        let mut buf = vec![0u8; 64];
        encode_record(&mut buf, &h, b"hello");
        assert_eq!(decode_record(&buf), Found::Record(h));
        assert_eq!(&buf[RECORD_HEADER..RECORD_HEADER + 5], b"hello");
        for bit in 0..(record_size(5) - 3) * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(decode_record(&b), Found::Bad(_)), "bit {bit} flipped went unnoticed");
        }
        assert_eq!(decode_record(&[0u8; 40]), Found::End);
        assert!(matches!(decode_record(&buf[..20]), Found::Bad(_)));
    }

    #[test]
    fn file_headers_and_names_round_trip() {
        let h = FileHeader { first_seq: 9, created_ns: 5, size: 1 << 20, topic: "prices.eu".into() };
        assert_eq!(FileHeader::decode(&h.encode()), Ok(h.clone()));
        let mut b = h.encode();
        b[50] ^= 1;
        assert!(FileHeader::decode(&b).is_err());
        assert_eq!(parse_file_name(&file_name(12345)), Some(12345));
        assert_eq!(parse_file_name("123.jrnl"), None);
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
    }
}
