//! The payloads: every message is written whole and checked on the other side.
//!
//! A message of `size` (8 or 64) bytes holds its sequence number, little endian, in its first
//! 8 bytes and, from 16 bytes on, in its last 8 bytes too; the bytes between are a fixed
//! filler. The receiver checks the length and both copies: the whole message was copied, in
//! order, none lost or repeated.

/// A message buffer of `size` (at least 8) bytes with the filler written.
pub fn message(size: usize) -> Vec<u8> {
    assert!(size >= 8, "messages carry an 8-byte sequence number");
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
}

/// Writes `seq` into `msg` (see the module docs).
#[inline(always)]
pub fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    if n >= 16 {
        msg[n - 8..].copy_from_slice(&seq.to_le_bytes());
    }
}

/// Whether `msg` is a whole message of `size` bytes stamped with `seq`.
#[inline(always)]
pub fn is(msg: &[u8], size: usize, seq: u64) -> bool {
    if msg.len() != size || size < 8 {
        return false;
    }
    let first = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    let last = u64::from_le_bytes(msg[size - 8..].try_into().expect("8 bytes"));
    first == seq && last == seq
}

/// The error for a message that is not the one expected.
#[cold]
pub fn wrong(what: &str, msg: &[u8], size: usize, seq: u64) -> String {
    let head = msg.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    format!("{what}: expected message {seq} of {size} bytes, got {} bytes starting with {head:?}", msg.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_catch_damage() {
        for size in [8, 16, 64] {
            let mut m = message(size);
            stamp(&mut m, 42);
            assert!(is(&m, size, 42));
            assert!(!is(&m, size, 41));
            assert!(!is(&m[..size - 1], size, 42));
            if size >= 16 {
                m[size - 1] ^= 1;
                assert!(!is(&m, size, 42));
            }
        }
    }
}
