//! `shmq replay`: a journal's messages, printed as `sub` prints messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shmq::journal::{Damage, JournalReader, ReplayFrom};
use shmq::Error;

use super::super::door::{Target, Want};
use super::super::io::OutputArgs;
use super::super::{report, CliError, CliResult, Out};
use super::{journal_files, parse_time};

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
    // A record that does not check at the journal's end (`JournalReader::tail`): the place it was
    // first met, and how many times the reader looked again since.
    let mut tail: Option<(Damage, u32)> = None;
    let damaged_tail = loop {
        if a.count.is_some_and(|n| printed >= n) {
            break None;
        }
        match reader.next_record() {
            Ok(Some(r)) => {
                format.write(out, r.kind, &r.payload)?;
                printed += 1;
            }
            Ok(None) => match (reader.tail(), tail.take()) {
                (None, _) => break None,
                // Still there a moment later: damage, not a record being written.
                (Some(now), Some((before, _))) if same_place(now, &before) => break Some(before),
                // A `record` is writing on (a new place each time): not damage.
                (Some(_), Some((_, looks))) if looks >= TAIL_LOOKS => break None,
                (Some(now), before) => {
                    tail = Some((now.clone(), before.map_or(1, |(_, looks)| looks + 1)));
                    out.flush()?;
                    std::thread::sleep(TAIL_WAIT);
                }
            },
            Err(e) => {
                out.flush()?;
                return Err(read_error(e, &t));
            }
        }
    };
    out.flush()?;
    let damage: Vec<Damage> = reader.damage().iter().cloned().chain(damaged_tail).collect();
    for d in &damage {
        report(&format!("damage in the journal of topic {:?}, not replayed: {d}", a.topic));
    }
    if damage.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// How long `replay` waits before it looks again at a record that does not check at the end
/// of the journal: one a `record` is writing checks by then; damage is still there.
const TAIL_WAIT: Duration = Duration::from_millis(50);
/// How many times `replay` looks again at the end while each look finds a bad record at a new
/// place (a `record` writing on), before it takes what it printed as the end.
const TAIL_LOOKS: u32 = 20;

fn same_place(a: &Damage, b: &Damage) -> bool {
    a.file == b.file && a.offset == b.offset
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

/// An error reading a journal.
fn read_error(e: Error, t: &Target<'_>) -> CliError {
    match e {
        Error::InvalidName { .. } => t.error(e),
        e => CliError::msg(format!("cannot read the journal of topic {:?}: {e}", t.name)),
    }
}
