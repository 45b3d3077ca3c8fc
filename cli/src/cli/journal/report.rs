//! `shmq journal DIR`: what each topic journal under a directory holds, and its damage.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use shmq::journal::{self, JournalReport};
use shmq::Error;

use super::super::door::count;
use super::super::inspect::bytes;
use super::super::{report, CliError, CliResult, Out};
use super::{journal_files, utc};

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
