//! `shmq gc`: removes segments that no live process uses and nothing in them waits for.
//!
//! The decision for each segment is [`shmq::status::gc_remove`]'s, taken and applied under the
//! segment's lock, so a process attaching meanwhile is never left on a removed segment; this
//! module only says what it did. It also removes the files of segments whose creators died
//! before finishing them.

use std::io::Write;

use shmq::status::{gc_remove, gc_verdict, GcVerdict};

use super::{report, CliError, CliResult, Ctx, Out};

/// Arguments of `shmq gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Only print what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Also remove queues with messages waiting and topics with durable subscribers, when no
    /// live process uses them.
    #[arg(long)]
    force: bool,
}

/// Applies the gc verdict to every segment of the directory; one line per segment.
pub fn gc(ctx: &Ctx, a: &GcArgs, out: &mut Out) -> CliResult {
    let names = shmq::status::list_names(&ctx.dir)?;
    let (mut removed, mut kept, mut failed) = (0u64, 0u64, false);
    for name in &names {
        // The verdict and the removal happen under the segment's lock (see `gc_remove`).
        let verdict = if a.dry_run { gc_verdict(&ctx.dir, name, a.force) } else { gc_remove(&ctx.dir, name, a.force) };
        match verdict {
            GcVerdict::Remove(why) => {
                removed += 1;
                let verb = if a.dry_run { "would remove" } else { "removed" };
                writeln!(out, "{verb} {name}: {why}")?;
            }
            GcVerdict::Keep(why) => {
                kept += 1;
                writeln!(out, "kept {name}: {why}")?;
            }
            GcVerdict::KeepUnlessForced(why) => {
                kept += 1;
                writeln!(out, "kept {name}: {why} (--force removes it anyway)")?;
            }
            GcVerdict::Gone => {} // removed by someone else meanwhile
        }
    }
    // Files of segments whose creators died before they were complete (never named).
    match shmq::status::remove_unfinished(&ctx.dir, a.dry_run) {
        Ok(files) => {
            for file in files {
                removed += 1;
                let verb = if a.dry_run { "would remove" } else { "removed" };
                writeln!(out, "{verb} {file}: an unfinished segment whose creator died")?;
            }
        }
        Err(e) => {
            failed = true;
            out.flush()?;
            report(&format!("cannot remove unfinished segments: {e}"));
        }
    }
    if names.is_empty() && removed == 0 {
        writeln!(out, "no segments in {}", ctx.dir.display())?;
        return Ok(());
    }
    if a.dry_run {
        writeln!(out, "{removed} would be removed, {kept} kept (dry run: nothing removed)")?;
    } else {
        writeln!(out, "{removed} removed, {kept} kept")?;
    }
    if failed {
        return Err(CliError::Reported);
    }
    Ok(())
}
