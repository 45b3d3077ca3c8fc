//! `shmq record`: a topic's messages into its journal, until stopped.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmq::journal::{self, format, Fsync, JournalOptions, Recorder};
use shmq::{Error, SubscriberMode, TopicOptions};

use super::super::door::{self, count, Target, Want};
use super::super::inspect::bytes;
use super::super::{report, CliError, CliResult, Ctx};

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
    /// Exit 0 once every publisher has left and everything they published was recorded
    /// (otherwise `record` outlives its publishers, recording whoever publishes next, until it
    /// is stopped).
    #[arg(long)]
    until_publishers_leave: bool,
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
    // The library creates it too; here for the message. One writer per journal is the
    // library's: a second one gets `WouldBlock` (see `journal_error`).
    std::fs::create_dir_all(&jdir)
        .map_err(|e| CliError::msg(format!("cannot create journal directory {}: {e}", jdir.display())))?;
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
    let (mut rec, damage) = Recorder::with(&topic, &opts, name, mode).map_err(|e| journal_error(e, &t, name, &jdir))?;
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
            Err(Error::Disconnected) if a.until_publishers_leave => break Stop::PublishersGone,
            // No publisher now: the next one may come at any time (a restart); look again.
            Err(Error::Disconnected) => std::thread::sleep(wait),
            Err(e) => {
                progress.clear();
                return Err(journal_error(e, &t, name, &jdir));
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
    rec.flush().map_err(|e| journal_error(e, &t, name, &jdir))?;
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

/// An error of the recorder: the journal's (files, space, damage, its writer lock held by
/// another writer) in its own words; the topic's (its subscriber) with the advice of `door`.
fn journal_error(e: Error, t: &Target<'_>, name: &str, jdir: &Path) -> CliError {
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
        // The journal's writer lock (DIR/TOPIC/.writer.lock) is held by another writer.
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::WouldBlock => CliError::msg(format!(
            "another `shmq record` is writing the journal in {} (one writer per journal); stop it, or record into \
             another --journal",
            jdir.display()
        )),
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
