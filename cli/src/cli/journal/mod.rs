//! `shmq record`, `shmq replay` and `shmq journal`: a topic's messages on disk.
//!
//! - [`record`](record::record) runs a [`Recorder`](shmq::journal::Recorder): a durable
//!   subscriber of the topic (`journal` unless `--name`; reliable unless `--lossy`) that appends
//!   every message to the topic's journal, `DIR/TOPIC/*.jrnl`, and acknowledges a message once
//!   it is in the journal's file (the page cache: a crash of the recorder cannot lose it;
//!   `--fsync` decides when it reaches the device, so what a crash of the machine may take). It
//!   stops on SIGINT or SIGTERM (a flag set by the handler, looked at between waits of at most
//!   `record::POLL`; the journal is synced, then exit 0), when every publisher has left (exit 0,
//!   saying how many it recorded), or per `--count`/`--timeout` as `sub` does. One `record`
//!   writes a journal at a time: the library's writer holds a lock on `DIR/TOPIC/.writer.lock`,
//!   and a second one is refused. On a terminal, stderr shows a progress line; nothing when
//!   stderr is not a terminal.
//! - [`replay`](replay::replay) prints a journal's messages exactly as `sub` prints messages
//!   (the same [`Format`](super::payload::Format), so `--hex`, `--raw` and `--show-kind` too),
//!   from the start, a sequence number (`--from`) or a time (`--since`). Damage is never printed
//!   as a message: each place is one line on stderr, and the exit status is 1 once everything
//!   readable was printed. A closed stdout ends it quietly (a journal is not consumed by
//!   reading).
//! - [`journals`](report::journals) (`journal DIR`) reports every topic journal under DIR, file
//!   by file, with the damage found (text, or `--json`); exit 1 if there is any.
//!
//! Times are shown as RFC 3339 UTC (`2026-12-01T17:00:00.123Z`), which `replay --since`
//! accepts back, as it does Unix timestamps in seconds.

mod record;
mod replay;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use shmq::journal::format;

pub use record::{record, RecordArgs};
pub use replay::{replay, ReplayArgs};
pub use report::{journals, JournalArgs};

// --- Times --------------------------------------------------------------------------------------

/// `--since`: RFC 3339, or Unix seconds (possibly fractional); ns since the Unix epoch.
pub(super) fn parse_time(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let parsed = if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') { unix_seconds(t) } else { rfc3339(t) };
    parsed.ok_or_else(|| {
        format!(
            "{s:?} is not a time; use RFC 3339 (2026-12-01T17:00:00Z, 2026-12-01T17:00:00.5+01:00) or Unix seconds \
             (1796144400, 1796144400.25), at or after 1970"
        )
    })
}

/// `SECS[.FRACTION]` as ns (digits past the ninth are dropped).
fn unix_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || (s.contains('.') && frac.is_empty()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    let ns = frac.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0, |ns, d| ns * 10 + u64::from(d - b'0'));
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.F...](Z|z|+HH:MM|-HH:MM)` as ns since the Unix epoch.
///
/// `humantime` parses the date and time, in UTC only: the zone is taken off first (an offset is
/// applied after), and the shape is checked here, as `humantime` lets a few things by (no zone,
/// a point without digits, bytes after the `Z`).
fn rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (local, offset_secs): (&[u8], i64) = match b {
        [rest @ .., b'Z' | b'z'] => (rest, 0),
        [rest @ .., sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let (hh, mm) = (i64::from((h1 - b'0') * 10 + (h2 - b'0')), i64::from((m1 - b'0') * 10 + (m2 - b'0')));
            if hh > 23 || mm > 59 {
                return None;
            }
            (rest, if *sign == b'+' { hh * 3600 + mm * 60 } else { -(hh * 3600 + mm * 60) })
        }
        _ => return None,
    };
    // `YYYY-MM-DDTHH:MM:SS`, then nothing or a point and at least one digit.
    let fraction = local.get(19..)?;
    if !(fraction.is_empty()
        || fraction.len() >= 2 && fraction[0] == b'.' && fraction[1..].iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    let mut utc = local.to_vec();
    if matches!(utc[10], b't' | b' ') {
        utc[10] = b'T';
    }
    utc.push(b'Z');
    let t = humantime::parse_rfc3339(std::str::from_utf8(&utc).ok()?).ok()?;
    let ns = u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()?;
    let offset_ns = offset_secs.unsigned_abs() * 1_000_000_000;
    if offset_secs >= 0 {
        ns.checked_sub(offset_ns)
    } else {
        ns.checked_add(offset_ns)
    }
}

/// ns since the Unix epoch as RFC 3339 UTC with milliseconds: `2026-12-01T17:00:00.123Z`
/// (what `replay --since` reads back; cut, not rounded, so it is at or before the time).
pub(super) fn utc(ns: u64) -> String {
    // u64 ns end in 2554, well before the year 10000 `humantime` cannot print.
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

// --- Journal files ------------------------------------------------------------------------------

/// The journal files in `jdir` (none if it is not a directory).
fn journal_files(jdir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(jdir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().and_then(format::parse_file_name).is_some())
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_both_forms_and_print_back() {
        // 2026-12-01T17:00:00Z is 1796144400 (date -u -d 2026-12-01T17:00:00Z +%s).
        let t = 1_796_144_400 * 1_000_000_000u64;
        assert_eq!(parse_time("2026-12-01T17:00:00Z"), Ok(t));
        assert_eq!(parse_time("2026-12-01t17:00:00z"), Ok(t));
        assert_eq!(parse_time("2026-12-01 17:00:00Z"), Ok(t));
        assert_eq!(parse_time("2026-12-01T18:00:00+01:00"), Ok(t));
        assert_eq!(parse_time("2026-12-01T16:30:00-00:30"), Ok(t));
        assert_eq!(parse_time("2026-12-01T17:00:00.25Z"), Ok(t + 250_000_000));
        assert_eq!(parse_time("2026-12-01T17:00:00.1234567891Z"), Ok(t + 123_456_789));
        assert_eq!(parse_time("2026-12-01T17:00:00.25+00:00"), Ok(t + 250_000_000));
        assert_eq!(parse_time(" 2026-12-01T17:00:00Z\n"), Ok(t));
        assert_eq!(parse_time("1796144400"), Ok(t));
        assert_eq!(parse_time("1796144400.25"), Ok(t + 250_000_000));
        assert_eq!(parse_time("1796144400.1234567891"), Ok(t + 123_456_789));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400 * 1_000_000_000));
        for bad in [
            "",
            "tomorrow",
            "2026-12-01",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T17:00:00",
            "2026-12-01T17:00:00.Z",
            "2026-12-01T17:00:00ZZ",
            "2026-12-01T17:00:00Zabc",
            "2026-12-01T17:00:00.5+01:00Z",
            "2026-12-01T17:00:00.5x",
            "2026-12-01X17:00:00Z",
            "2026-12-01T17:00:00+24:00",
            "2026-12-01T17:00:00é+01:00",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "1.",
            ".5",
            "1.2.3",
            "1.2x",
            "-5",
            "2026-12-01T17:00:00+1:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(utc(t + 123_999_999), "2026-12-01T17:00:00.123Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_868_799 * 1_000_000_000), "2000-02-29T23:59:59.000Z");
        assert_eq!(utc(u64::MAX), "2554-07-21T23:34:33.709Z");
        // Every day for 300 years round-trips, a day after the other.
        for day in 0..(300 * 366) {
            let ns = day as u64 * 86_400 * 1_000_000_000;
            assert_eq!(parse_time(&utc(ns)), Ok(ns), "{}", utc(ns));
            assert_eq!(parse_time(&utc(ns + 86_399_999_999_999)), Ok(ns + 86_399_999_000_000));
        }
    }
}
