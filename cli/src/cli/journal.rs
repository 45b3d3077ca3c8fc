//! `shmq record`, `shmq replay` and `shmq journal`: a topic's messages on disk.
//!
//! - `record` runs a [`Recorder`]: a durable subscriber of the topic (`journal` unless
//!   `--name`; reliable unless `--lossy`) that appends every message to the topic's journal,
//!   `DIR/TOPIC/*.jrnl`, and acknowledges a message once it is in the journal's file (a crash of
//!   the recorder cannot lose it; `--fsync` decides when it reaches the device). It stops on SIGINT or SIGTERM (a flag set by the handler, looked at between
//!   waits of at most [`POLL`]; the journal is synced, then exit 0), when every publisher has
//!   left (exit 0, saying how many it recorded), or per `--count`/`--timeout` as `sub` does.
//!   One `record` writes a journal at a time: it holds an `flock` on the journal's directory.
//!   On a terminal, stderr shows a progress line; nothing when stderr is not a terminal.
//! - `replay` prints a journal's messages exactly as `sub` prints messages (the same
//!   [`Format`](super::payload::Format), so `--hex`, `--raw` and `--show-kind` too), from the
//!   start, a sequence number (`--from`) or a time (`--since`). Damage is never printed as a
//!   message: each place is one line on stderr, and the exit status is 1 once everything
//!   readable was printed. A closed stdout ends it quietly (a journal is not consumed by reading).
//! - `journal DIR` reports every topic journal under DIR, file by file, with the damage found
//!   (text, or `--json`); exit 1 if there is any.
//!
//! Times are shown as RFC 3339 UTC (`2026-12-01T17:00:00.123Z`), which `replay --since`
//! accepts back, as it does Unix timestamps in seconds.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shmq::journal::{self, format, Damage, Fsync, JournalOptions, JournalReader, JournalReport, Recorder, ReplayFrom};
use shmq::{Error, SubscriberMode, TopicOptions};

use super::door::{self, count, Target, Want};
use super::inspect::bytes;
use super::io::OutputArgs;
use super::{report, CliError, CliResult, Ctx, Out};

/// Arguments of `shmq record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Topic name.
    topic: String,
    /// Directory of journals: the topic's is DIR/TOPIC/ (created if needed).
    #[arg(long, value_name = "DIR")]
    journal: PathBuf,
    /// When records are synced to the device: `never` (the kernel writes them back in its own
    /// time: a crash of the machine may lose the last ones), `every` (each batch taken off the
    /// topic is synced before it is acknowledged), or `interval:MS` (at most MS after a message)
    /// [default: interval:100]. A crash of the recorder loses nothing whatever the policy: a
    /// message is acknowledged to the topic once it is in the journal's file.
    #[arg(long, value_name = "POLICY", value_parser = parse_fsync)]
    fsync: Option<Fsync>,
    /// Size of each journal file, at least 65536 [default: 67108864, 64 MiB]. A file is
    /// reserved whole when it is started; the topic's largest message must fit in one.
    #[arg(long, value_name = "BYTES", value_parser = parse_file_size)]
    file_size: Option<u64>,
    /// Remove the oldest files while the journal holds more than this many bytes (whole files;
    /// the file being written is kept) [default: keep everything].
    #[arg(long, value_name = "BYTES", value_parser = parse_positive)]
    retain_bytes: Option<u64>,
    /// Remove files whose records are all older than this many seconds [default: keep
    /// everything].
    #[arg(long, value_name = "SECS", value_parser = parse_positive)]
    retain_age: Option<u64>,
    /// Durable subscriber name of the recorder (1 to 64 bytes of [A-Za-z0-9._-]) [default:
    /// journal]. A recorder that comes back under its name goes on with the first message its
    /// journal does not hold yet: every message once, none missing.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Never slow publishers down; messages missed are not in the journal and are reported on
    /// stderr at the end (`shmq: missed N messages`).
    #[arg(long)]
    lossy: bool,
    /// Exit 0 once this many messages were recorded (it records in batches: a few more may be
    /// in the journal by then).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Longest wait for a new message. With --count: exit 1 when it passes; without: exit 0
    /// [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
}

/// Arguments of `shmq replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Topic name.
    topic: String,
    /// Directory of journals (what `record --journal` was given): reads DIR/TOPIC/*.jrnl.
    #[arg(long, value_name = "DIR")]
    journal: PathBuf,
    /// Start at the message of this sequence number, or the first one after it the journal
    /// holds [default: the oldest message kept].
    #[arg(long, value_name = "SEQ", conflicts_with = "since")]
    from: Option<u64>,
    /// Start at the first message recorded at this time or later: RFC 3339
    /// (2026-12-01T17:00:00Z; fractions of a second and offsets like +01:00 allowed), or a Unix
    /// timestamp in seconds (1796144400, or 1796144400.25). `shmq journal` shows the times.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<u64>,
    /// Print at most this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Print each message as `<kind><TAB><payload>`.
    #[arg(long, conflicts_with = "raw")]
    show_kind: bool,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `shmq journal`.
#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    /// Directory of journals (what `record --journal` was given); a topic's own journal
    /// directory (DIR/TOPIC) is shown alone.
    dir: PathBuf,
    /// Print one JSON object: `dir`, and `topics`, each {topic, files: [{path, size, used,
    /// records, first_seq, last_seq, first_time_ns, last_time_ns}], records, damage: [{file,
    /// offset, what}]} (sequences and times null for a file without records; times in ns since
    /// the Unix epoch).
    #[arg(long)]
    json: bool,
}

// --- Parsers ------------------------------------------------------------------------------------

/// `--fsync`: `never`, `every` or `interval:MS`.
fn parse_fsync(s: &str) -> Result<Fsync, String> {
    s.parse::<Fsync>()
}

/// Smallest journal file (the library's minimum).
const MIN_FILE_SIZE: u64 = 64 << 10;
/// Largest journal file: 1 TiB (a file is mapped whole).
const MAX_FILE_SIZE: u64 = 1 << 40;

/// `--file-size`: 64 KiB to 1 TiB.
fn parse_file_size(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(MIN_FILE_SIZE..=MAX_FILE_SIZE).contains(&n) {
        return Err(format!("must be from {MIN_FILE_SIZE} (64 KiB) to {MAX_FILE_SIZE} (1 TiB) bytes"));
    }
    Ok(n)
}

/// A count above zero.
fn parse_positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

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

/// `SECS[.FRACTION]` as ns.
fn unix_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(fraction_ns(frac)?)
}

/// Decimal digits after the point as ns (digits past the ninth are dropped).
fn fraction_ns(digits: &str) -> Option<u64> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ns = 0u64;
    for i in 0..9 {
        ns = ns * 10 + digits.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    Some(ns)
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.F...](Z|z|+HH:MM|-HH:MM)` as ns since the Unix epoch.
fn rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ns = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        ns = fraction_ns(&r[..digits])?;
        rest = &r[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hh: i64 = std::str::from_utf8(&[*h1, *h2]).ok()?.parse().ok()?;
            let mm: i64 = std::str::from_utf8(&[*m1, *m2]).ok()?.parse().ok()?;
            if hh > 23 || mm > 59 || ![*h1, *h2, *m1, *m2].iter().all(u8::is_ascii_digit) {
                return None;
            }
            let o = hh * 3600 + mm * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?.checked_add(ns)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// ns since the Unix epoch as RFC 3339 UTC with milliseconds: `2026-12-01T17:00:00.123Z`
/// (what `replay --since` reads back; cut, not rounded, so it is at or before the time).
pub(super) fn utc(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let ms = ns % 1_000_000_000 / 1_000_000;
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", s / 3600, s % 3600 / 60, s % 60)
}

// --- record -------------------------------------------------------------------------------------

/// Longest wait of `record` between looks at the stop flag and the progress line.
const POLL: Duration = Duration::from_millis(100);
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Set by the SIGINT/SIGTERM handler of `record`.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM set [`STOP`] instead of ending the process, once: a second one acts as
/// usual (`SA_RESETHAND`), should the sync hang.
fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic, which is
        // async-signal-safe; the pointers passed are valid for the calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Why `record` stopped.
enum Stop {
    Signal,
    Count,
    Timeout,
    PublishersGone,
}

/// Records a topic into its journal until stopped.
pub fn record(ctx: &Ctx, a: &RecordArgs) -> CliResult {
    let name = a.name.as_deref().unwrap_or(journal::DEFAULT_RECORDER_NAME);
    door::check_subscriber_name(name)?;
    let t = Target { cmd: "record", name: &a.topic, dir: &ctx.dir, want: Want::Topic };
    let o = TopicOptions::new().dir(&ctx.dir);
    let topic_name = a.topic.as_str();
    let (topic, made) = door::open_or_create(
        &t,
        || o.open(topic_name),
        || Ok(()),
        || o.create(topic_name),
        || o.open_or_create(topic_name),
    )?;
    if let Some(notice) = made.notice("topic", topic_name, &ctx.dir) {
        report(&notice);
    }
    let file_size = a.file_size.unwrap_or(journal::DEFAULT_FILE_SIZE);
    let need = (format::FILE_HEADER + format::record_size(topic.max_msg_size())) as u64;
    if need > file_size {
        return Err(CliError::msg(format!(
            "topic {topic_name:?} takes messages of up to {}, which do not fit a journal file of {file_size} bytes; \
             use --file-size {} or more",
            count(topic.max_msg_size() as u64, "byte"),
            need.max(MIN_FILE_SIZE)
        )));
    }
    let jdir = a.journal.join(topic_name);
    let _lock = lock_journal(&jdir)?;
    let mut opts = JournalOptions::new(&a.journal).file_size(file_size);
    if let Some(f) = a.fsync {
        opts = opts.fsync(f);
    }
    if let Some(b) = a.retain_bytes {
        opts = opts.retain_bytes(b);
    }
    if let Some(s) = a.retain_age {
        opts = opts.retain_age(Duration::from_secs(s));
    }
    let mode = if a.lossy { SubscriberMode::Lossy } else { SubscriberMode::Reliable };
    let (mut rec, damage) = Recorder::with(&topic, &opts, name, mode).map_err(|e| journal_error(e, &t, name))?;
    for d in &damage {
        report(&format!("damage in the journal of topic {topic_name:?}, found on opening it: {d}"));
    }
    catch_stop_signals();
    let timeout = a.timeout.map(Duration::from_millis);
    let mut progress = Progress::new(topic_name);
    let mut last_new = Instant::now();
    let stop = loop {
        if STOP.load(Ordering::SeqCst) {
            break Stop::Signal;
        }
        let wait = timeout.map_or(POLL, |t| t.saturating_sub(last_new.elapsed()).min(POLL));
        match rec.record_for(wait) {
            Ok(0) => {}
            Ok(_) => last_new = Instant::now(),
            Err(Error::Disconnected) => break Stop::PublishersGone,
            Err(e) => {
                progress.clear();
                return Err(journal_error(e, &t, name));
            }
        }
        if a.count.is_some_and(|n| rec.recorded() >= n) {
            break Stop::Count;
        }
        if timeout.is_some_and(|t| last_new.elapsed() >= t) {
            break Stop::Timeout;
        }
        progress.show(&rec);
    };
    progress.clear();
    rec.flush().map_err(|e| journal_error(e, &t, name))?;
    if rec.lagged() > 0 {
        report(&format!("missed {} (--lossy: publishers lapped the recorder)", count(rec.lagged(), "message")));
    }
    let recorded = format!(
        "{} into {}{}",
        count(rec.recorded(), "message"),
        jdir.display(),
        rec.writer().last_seq().map_or(String::new(), |s| format!(" (last sequence {s})"))
    );
    match (stop, a.count) {
        (Stop::Signal, _) => {
            report(&format!("stopped by a signal: recorded {recorded}, synced"));
            Ok(())
        }
        (Stop::Count, _) | (Stop::Timeout, None) => Ok(()),
        (Stop::Timeout, Some(n)) => Err(CliError::msg(format!(
            "timed out after {} ms waiting for a message on topic {topic_name:?} ({} of {n} recorded); is anyone \
             publishing? (see `shmq stat {topic_name}`)",
            a.timeout.unwrap_or(0),
            rec.recorded()
        ))),
        (Stop::PublishersGone, None) => {
            report(&format!(
                "every publisher of topic {topic_name:?} has left and all its messages were recorded: {recorded}"
            ));
            Ok(())
        }
        (Stop::PublishersGone, Some(n)) => Err(CliError::msg(format!(
            "every publisher of topic {topic_name:?} has left and all its messages were recorded: {recorded}, {} of \
             the {n} asked for",
            rec.recorded()
        ))),
    }
}

/// Creates the journal's directory and takes an exclusive `flock` on it, held while the
/// returned handle lives: a second `shmq record` into the same journal (under another --name)
/// would interleave its records with ours.
fn lock_journal(jdir: &Path) -> CliResult<std::fs::File> {
    let d = jdir.display();
    std::fs::create_dir_all(jdir).map_err(|e| CliError::msg(format!("cannot create journal directory {d}: {e}")))?;
    let f = std::fs::File::open(jdir).map_err(|e| CliError::msg(format!("cannot open journal directory {d}: {e}")))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; it only sets a lock.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(CliError::msg(if e.kind() == std::io::ErrorKind::WouldBlock {
            format!(
                "another `shmq record` is writing the journal in {d} (one writer per journal); stop it, or record into \
                 another --journal"
            )
        } else {
            format!("cannot lock journal directory {d}: {e}")
        }));
    }
    Ok(f)
}

/// An error of the recorder: the journal's (files, space, damage) in its own words; the topic's
/// (its subscriber) with the advice of `door`.
fn journal_error(e: Error, t: &Target<'_>, name: &str) -> CliError {
    match e {
        Error::NoSpace { dir, bytes: b } => CliError::msg(format!(
            "not enough space in {dir} for a journal file of {}; free space there, use a smaller --file-size, or keep \
             less with --retain-bytes or --retain-age",
            count(b, "byte")
        )),
        Error::PermissionDenied { path } => {
            CliError::msg(format!("permission denied on {path}; use a --journal directory you can write"))
        }
        Error::Corrupted(what) => CliError::msg(format!(
            "cannot write the journal: {what}; move that file away (`shmq journal` shows the journal), or record into \
             another --journal"
        )),
        Error::InvalidConfig(what) => CliError::msg(what),
        Error::Io { .. } => CliError::msg(e.to_string()),
        Error::SubscriberNameTaken { pid, .. } => CliError::msg(format!(
            "subscriber {name:?} of topic {:?} is held by live process {pid} (another `shmq record`?); stop it, or \
             record under another --name into another --journal",
            t.name
        )),
        e => t.error(e),
    }
}

/// The progress line of `record` on a terminal (redrawn at most every [`PROGRESS_EVERY`]);
/// nothing when stderr is not a terminal.
struct Progress<'a> {
    on: bool,
    topic: &'a str,
    drawn: Option<Instant>,
}

impl<'a> Progress<'a> {
    fn new(topic: &'a str) -> Progress<'a> {
        Progress { on: std::io::stderr().is_terminal(), topic, drawn: None }
    }

    fn show(&mut self, rec: &Recorder) {
        if !self.on || self.drawn.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        let last = rec.writer().last_seq().map_or("-".into(), |s| s.to_string());
        let on_disk: u64 = std::fs::read_dir(rec.writer().dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_str().and_then(format::parse_file_name).is_some())
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let lagged = if rec.lagged() > 0 { format!(", {} missed", rec.lagged()) } else { String::new() };
        let _ = write!(
            std::io::stderr().lock(),
            "\r\x1b[2Kshmq: recording {:?}: {}, last sequence {last}, journal {}{lagged}",
            self.topic,
            count(rec.recorded(), "message"),
            bytes(on_disk)
        );
    }

    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

// --- replay -------------------------------------------------------------------------------------

/// Prints a journal's messages as `sub` prints messages.
pub fn replay(a: &ReplayArgs, out: &mut Out) -> CliResult {
    let from = match (a.from, a.since) {
        (Some(s), _) => ReplayFrom::Seq(s),
        (None, Some(t)) => ReplayFrom::Time(t),
        (None, None) => ReplayFrom::Start,
    };
    let t = Target { cmd: "replay", name: &a.topic, dir: &a.journal, want: Want::Topic };
    let mut reader = JournalReader::open(&a.journal, &a.topic, from).map_err(|e| read_error(e, &t))?;
    require_journal(&a.journal, &a.topic)?;
    let format = a.output.format(a.show_kind);
    let mut printed: u64 = 0;
    let mut to_the_end = true;
    loop {
        if a.count.is_some_and(|n| printed >= n) {
            to_the_end = false;
            break;
        }
        match reader.next_record() {
            Ok(Some(r)) => {
                format.write(out, r.kind, &r.payload)?;
                printed += 1;
            }
            Ok(None) => break,
            Err(e) => {
                out.flush()?;
                return Err(read_error(e, &t));
            }
        }
    }
    out.flush()?;
    let mut damage = reader.damage().to_vec();
    if to_the_end {
        damage.extend(damage_at_the_end(&a.journal, &a.topic, from, &damage));
    }
    for d in &damage {
        report(&format!("damage in the journal of topic {:?}, not replayed: {d}", a.topic));
    }
    if damage.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// Damage a reader that reached the end met without reporting it (not yet in `known`): a
/// reader stops at a bad record in the journal's last file without a word (it may be a record
/// being written), so the journal is checked: damage in the files the reader read (from the
/// file it started in) that is still there a moment later is damage, not a record being
/// written.
fn damage_at_the_end(dir: &Path, topic: &str, from: ReplayFrom, known: &[Damage]) -> Vec<Damage> {
    let unknown = |report: JournalReport| -> Vec<Damage> {
        let firsts: Vec<u64> = report.files.iter().filter_map(|f| first_seq_of(&f.path)).collect();
        // The reader starts in the last file that starts at or before the sequence asked for.
        let start = match from {
            ReplayFrom::Seq(s) => firsts.iter().copied().filter(|&f| f <= s).max(),
            _ => None,
        };
        report
            .damage
            .into_iter()
            .filter(|d| !known.iter().any(|k| k.file == d.file && k.offset == d.offset))
            .filter(|d| start.is_none_or(|s| first_seq_of(&d.file).is_none_or(|f| f >= s)))
            .collect()
    };
    let Ok(found) = journal::inspect(dir, topic).map(unknown) else { return Vec::new() };
    if found.is_empty() {
        return found;
    }
    std::thread::sleep(Duration::from_millis(50));
    let Ok(again) = journal::inspect(dir, topic).map(unknown) else { return found };
    found.into_iter().filter(|d| again.iter().any(|a| a.file == d.file && a.offset == d.offset)).collect()
}

/// The first sequence number a journal file's name says.
fn first_seq_of(path: &Path) -> Option<u64> {
    format::parse_file_name(path.file_name()?.to_str()?)
}

/// Fails, naming where it looked, unless `dir` holds a journal of `topic`.
fn require_journal(dir: &Path, topic: &str) -> CliResult {
    let jdir = dir.join(topic);
    if !dir.is_dir() {
        return Err(CliError::msg(format!(
            "no journal directory {}; give the directory `shmq record {topic} --journal DIR` records into",
            dir.display()
        )));
    }
    if journal_files(&jdir).is_empty() {
        return Err(CliError::msg(format!(
            "no journal of topic {topic:?} in {} (no *.jrnl files in {}); `shmq journal {}` lists the journals there",
            dir.display(),
            jdir.display(),
            dir.display()
        )));
    }
    Ok(())
}

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

/// An error reading a journal.
fn read_error(e: Error, t: &Target<'_>) -> CliError {
    match e {
        Error::InvalidName { .. } => t.error(e),
        e => CliError::msg(format!("cannot read the journal of topic {:?}: {e}", t.name)),
    }
}

// --- journal ------------------------------------------------------------------------------------

/// Reports every topic journal under a directory.
pub fn journals(a: &JournalArgs, out: &mut Out) -> CliResult {
    let d = a.dir.display();
    let entries = match std::fs::read_dir(&a.dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::msg(format!(
                "no journal directory {d}; give the directory `shmq record TOPIC --journal DIR` records into"
            )))
        }
        Err(e) => return Err(CliError::msg(format!("cannot read journal directory {d}: {e}"))),
    };
    // (journal root, topic) of each journal: DIR's subdirectories holding journal files, or
    // DIR itself if it is one.
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    if !journal_files(&a.dir).is_empty() {
        // "DIR/TOPIC" as given, or made absolute if it has no last component ("." or "..").
        let full = match a.dir.file_name() {
            Some(_) => a.dir.clone(),
            None => std::fs::canonicalize(&a.dir).unwrap_or_else(|_| a.dir.clone()),
        };
        if let (Some(parent), Some(name)) = (full.parent(), full.file_name().and_then(|n| n.to_str())) {
            found.push((parent.to_path_buf(), name.to_string()));
        }
    }
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !journal_files(p).is_empty())
        .collect();
    subdirs.sort();
    for p in subdirs {
        match p.file_name().and_then(|n| n.to_str()) {
            Some(name) => found.push((a.dir.clone(), name.to_string())),
            None => report(&format!("skipped {}: not a topic name", p.display())),
        }
    }
    let mut reports = Vec::new();
    for (root, topic) in found {
        match journal::inspect(&root, &topic) {
            Ok(r) => reports.push((topic.clone(), root.join(&topic), r)),
            Err(Error::InvalidName { .. }) => {
                report(&format!("skipped {}: {topic:?} is not a topic name", root.join(&topic).display()))
            }
            Err(e) => {
                return Err(CliError::msg(format!("cannot read the journal in {}: {e}", root.join(&topic).display())))
            }
        }
    }
    if a.json {
        let topics: Vec<Value> = reports.iter().map(|(topic, _, r)| topic_json(topic, r)).collect();
        writeln!(out, "{}", json!({ "dir": a.dir.to_string_lossy(), "topics": topics }))?;
    } else if reports.is_empty() {
        writeln!(out, "no journals in {d}")?;
    } else {
        for (i, (topic, jdir, r)) in reports.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            topic_text(out, topic, jdir, r)?;
        }
    }
    let damaged: Vec<&str> =
        reports.iter().filter(|(_, _, r)| !r.damage.is_empty()).map(|(t, _, _)| t.as_str()).collect();
    if damaged.is_empty() {
        return Ok(());
    }
    out.flush()?;
    let places: u64 = reports.iter().map(|(_, _, r)| r.damage.len() as u64).sum();
    Err(CliError::msg(format!(
        "corruption found: {} in the journal{} of {}",
        count(places, "damaged place"),
        if damaged.len() == 1 { "" } else { "s" },
        damaged.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
    )))
}

/// One topic's journal, as text.
fn topic_text(out: &mut Out, topic: &str, jdir: &Path, r: &JournalReport) -> std::io::Result<()> {
    let seqs = r.seqs().map_or(String::new(), |(a, b)| format!(", sequences {a} to {b}"));
    let first_time = r.files.iter().find_map(|f| f.times).map(|t| t.0);
    let last_time = r.files.iter().rev().find_map(|f| f.times).map(|t| t.1);
    let times = match (first_time, last_time) {
        (Some(a), Some(b)) => format!(", recorded {} to {}", utc(a), utc(b)),
        _ => String::new(),
    };
    let used: u64 = r.files.iter().map(|f| f.used).sum();
    let size: u64 = r.files.iter().map(|f| f.size).sum();
    writeln!(
        out,
        "topic {topic:?} in {}: {}, {}{seqs}{times}, {} used of {}",
        jdir.display(),
        count(r.files.len() as u64, "file"),
        count(r.records(), "record"),
        bytes(used),
        bytes(size)
    )?;
    let mut rows = vec![["FILE", "RECORDS", "FIRST_SEQ", "LAST_SEQ", "FIRST_TIME", "LAST_TIME", "USED / SIZE"]
        .map(String::from)
        .to_vec()];
    for f in &r.files {
        let name = f.path.file_name().map_or_else(|| f.path.display().to_string(), |n| n.to_string_lossy().into());
        let seq = |s: Option<u64>| s.map_or("-".into(), |s| s.to_string());
        let time = |t: Option<u64>| t.map_or("-".into(), utc);
        rows.push(vec![
            name,
            f.records.to_string(),
            seq(f.seqs.map(|s| s.0)),
            seq(f.seqs.map(|s| s.1)),
            time(f.times.map(|t| t.0)),
            time(f.times.map(|t| t.1)),
            format!("{} / {}", bytes(f.used), bytes(f.size)),
        ]);
    }
    table(out, &rows)?;
    if r.damage.is_empty() {
        writeln!(out, "  no corruption found")?;
    }
    for d in &r.damage {
        writeln!(out, "  corruption found: {d}")?;
    }
    Ok(())
}

/// Rows in aligned columns, indented by two spaces.
fn table(out: &mut Out, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| if i + 1 < r.len() { format!("{c:<w$}", w = widths[i]) } else { c.clone() })
            .collect();
        writeln!(out, "  {}", cells.join("  "))?;
    }
    Ok(())
}

/// One topic's journal, as JSON.
fn topic_json(topic: &str, r: &JournalReport) -> Value {
    let files: Vec<Value> = r
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path.to_string_lossy(),
                "size": f.size,
                "used": f.used,
                "records": f.records,
                "first_seq": f.seqs.map(|s| s.0),
                "last_seq": f.seqs.map(|s| s.1),
                "first_time_ns": f.times.map(|t| t.0),
                "last_time_ns": f.times.map(|t| t.1),
            })
        })
        .collect();
    let damage: Vec<Value> = r
        .damage
        .iter()
        .map(|d| json!({ "file": d.file.to_string_lossy(), "offset": d.offset, "what": d.what }))
        .collect();
    json!({ "topic": topic, "files": files, "records": r.records(), "damage": damage })
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
        assert_eq!(parse_time("1796144400"), Ok(t));
        assert_eq!(parse_time("1796144400.25"), Ok(t + 250_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
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
            "1969-12-31T23:59:59Z",
            "1.",
            ".5",
            "1.2.3",
            "-5",
            "2026-12-01T17:00:00+1:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(utc(t + 123_999_999), "2026-12-01T17:00:00.123Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_868_799 * 1_000_000_000), "2000-02-29T23:59:59.000Z");
        // Every day for 300 years round-trips.
        for day in 0..(300 * 366) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            let ns = day as u64 * 86_400 * 1_000_000_000;
            assert_eq!(parse_time(&utc(ns)), Ok(ns), "{}", utc(ns));
        }
    }
}
