//! Self-checking payloads, and the checks of the order messages arrive in.
//!
//! Every payload is fully determined by the numbers it carries, so that a message torn between
//! two writers, or overwritten while it is read, does not decode:
//! - [`stamp`]: sender and sequence in one word, then a check word (16 bytes);
//! - [`wide`]: the sequence repeated over 64 bytes (a torn read shows as copies that differ);
//! - [`stream`]: the sequence, then bytes derived from it (64 bytes);
//! - [`encode_incarnation`]: sender, incarnation and sequence, 24 to 120 bytes, every byte
//!   depending on all three.

use std::path::Path;

/// SplitMix64's finaliser of `x + golden ratio`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Size of a [`stamp`].
pub const STAMP: usize = 16;

/// Payload of message `seq` of sender `sender` (both below 2^32): both packed in one word, then
/// a check word.
pub fn stamp(sender: u64, seq: u64) -> [u8; STAMP] {
    let w = (sender << 32) | seq;
    let mut b = [0u8; STAMP];
    b[..8].copy_from_slice(&w.to_le_bytes());
    b[8..].copy_from_slice(&mix(w).to_le_bytes());
    b
}

/// `(sender, seq)` of a payload made by [`stamp`].
///
/// # Panics
/// If it is not one (a torn or foreign message).
pub fn unstamp(b: &[u8]) -> (u64, u64) {
    assert_eq!(b.len(), STAMP, "payload length");
    let w = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let check = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
    assert_eq!(check, mix(w), "payload check word of {w:#x} (torn or foreign message)");
    (w >> 32, w & 0xFFFF_FFFF)
}

/// Size of a [`wide`] payload.
pub const WIDE: usize = 64;

/// `seq` repeated over 64 bytes.
pub fn wide(seq: u64) -> [u8; WIDE] {
    let mut b = [0u8; WIDE];
    for c in b.chunks_exact_mut(8) {
        c.copy_from_slice(&seq.to_le_bytes());
    }
    b
}

/// The sequence in a [`wide`] payload.
///
/// # Panics
/// If its copies disagree (a torn read) or its length is wrong.
pub fn unwide(b: &[u8]) -> u64 {
    assert_eq!(b.len(), WIDE, "payload length");
    let words: Vec<u64> = b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    assert!(words.iter().all(|&w| w == words[0]), "torn payload: the copies of the sequence disagree: {words:?}");
    words[0]
}

/// Size of a [`stream`] message.
pub const STREAM: usize = 64;

/// Message `n` of a self-checking stream: `n`, then bytes derived from `n`.
pub fn stream(n: u64) -> [u8; STREAM] {
    let mut b = [0u8; STREAM];
    b[..8].copy_from_slice(&n.to_le_bytes());
    for (i, x) in b[8..].iter_mut().enumerate() {
        *x = (n as u8).wrapping_mul(31).wrapping_add(i as u8).wrapping_add((n >> 8) as u8);
    }
    b
}

/// The `n` of a message made by [`stream`], if it is one.
pub fn unstream(b: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    (b == stream(n)).then_some(n)
}

/// Largest payload [`encode_incarnation`] makes (and room for it).
pub const INCARNATION_MAX: usize = 128;
/// Header of an incarnation payload: sender (u32), incarnation (u32), sequence (u64), check
/// word (u64).
const INCARNATION_HEADER: usize = 24;

fn check_word(id: u32, inc: u32, seq: u64) -> u64 {
    mix(mix((u64::from(id) << 32) | u64::from(inc)) ^ seq)
}

/// Writes the payload of message `seq` of sender `id`, incarnation `inc` (the sender's run:
/// a restarted sender counts its messages from 0 again) into `out`; returns its length (24 to
/// 120 bytes, chosen by the check word). Every byte depends on all three numbers.
pub fn encode_incarnation(id: u32, inc: u32, seq: u64, out: &mut [u8; INCARNATION_MAX]) -> usize {
    let h = check_word(id, inc, seq);
    let len = INCARNATION_HEADER + (h % 97) as usize;
    out[..4].copy_from_slice(&id.to_le_bytes());
    out[4..8].copy_from_slice(&inc.to_le_bytes());
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..24].copy_from_slice(&h.to_le_bytes());
    for (i, b) in out[INCARNATION_HEADER..len].iter_mut().enumerate() {
        *b = (h >> ((i % 8) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
    }
    len
}

/// `(id, incarnation, seq)` of a payload made by [`encode_incarnation`]; `Err` says why it is
/// not one.
pub fn decode_incarnation(b: &[u8]) -> Result<(u32, u32, u64), String> {
    if b.len() < INCARNATION_HEADER || b.len() > INCARNATION_MAX {
        return Err(format!("payload of {} bytes (valid ones have 24 to 120)", b.len()));
    }
    let id = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    let inc = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    let mut want = [0u8; INCARNATION_MAX];
    let len = encode_incarnation(id, inc, seq, &mut want);
    if b != &want[..len] {
        return Err(format!(
            "torn or foreign payload: claims producer {id} incarnation {inc} seq {seq}, but {} bytes differ \
             from that message ({} bytes received, {len} expected)",
            b.iter().zip(&want[..len]).filter(|(x, y)| x != y).count(),
            b.len()
        ));
    }
    Ok((id, inc, seq))
}

/// What a receiver has seen of each of its senders: the next sequence due from each, and how
/// many messages came from each.
#[derive(Clone, Debug)]
pub struct Sequences {
    next: Vec<u64>,
    counts: Vec<u64>,
}

impl Sequences {
    /// Nothing seen yet of `senders` senders, each starting at sequence 0.
    pub fn new(senders: usize) -> Sequences {
        Sequences { next: vec![0; senders], counts: vec![0; senders] }
    }

    fn sender(&self, sender: u64) -> Result<usize, String> {
        let s = sender as usize;
        if s < self.next.len() {
            Ok(s)
        } else {
            Err(format!("message from unknown sender {sender}"))
        }
    }

    /// Counts message `seq` of `sender`, which must be the one due (a stream that is received
    /// whole: nothing lost, repeated or reordered).
    pub fn exactly_next(&mut self, sender: u64, seq: u64) -> Result<(), String> {
        let s = self.sender(sender)?;
        let due = self.next[s];
        if seq != due {
            return Err(format!(
                "sender {sender}'s message {seq} arrived when {due} was due (lost, repeated or reordered)"
            ));
        }
        self.next[s] = seq + 1;
        self.counts[s] += 1;
        Ok(())
    }

    /// Counts message `seq` of `sender`, which must come after every earlier one of that sender
    /// (a share of a stream that other receivers share too: order kept, gaps allowed).
    pub fn in_order(&mut self, sender: u64, seq: u64) -> Result<(), String> {
        let s = self.sender(sender)?;
        if seq < self.next[s] {
            return Err(format!("sender {sender}'s message {seq} came after {}", self.next[s] - 1));
        }
        self.next[s] = seq + 1;
        self.counts[s] += 1;
        Ok(())
    }

    /// How many messages came from each sender.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// [`counts`](Self::counts) as `n,n,...`, for a report line.
    pub fn counts_line(&self) -> String {
        self.counts.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    }
}

/// The little-endian u64 records of the file at `path` (none if it does not exist).
///
/// # Panics
/// If it cannot be read, or ends with a partial record.
pub fn read_records(path: &Path) -> Vec<u64> {
    let v = match std::fs::read(path) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    assert_eq!(v.len() % 8, 0, "{}: a record was torn", path.display());
    v.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}
