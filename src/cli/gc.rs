//! `shmq gc`: removes segments that no live process uses and nothing in them waits for.
//!
//! The decision for each segment is [`shmq::status::gc_verdict`]'s; this module only applies
//! it and says what it did. A process that attaches between the verdict and the removal keeps
//! working on its mapping (like after `shmq rm`), but the name is gone.

use std::io::Write;

use shmq::status::{gc_verdict, GcVerdict};

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
    let names = shmq::segment::list_names(&ctx.dir)?;
    if names.is_empty() {
        writeln!(out, "no segments in {}", ctx.dir.display())?;
        return Ok(());
    }
    let (mut removed, mut kept, mut failed) = (0u64, 0u64, false);
    for name in &names {
        match gc_verdict(&ctx.dir, name, a.force) {
            GcVerdict::Keep(why) => {
                kept += 1;
                writeln!(out, "kept {name}: {why}")?;
            }
            GcVerdict::Remove(why) if a.dry_run => {
                removed += 1;
                writeln!(out, "would remove {name}: {why}")?;
            }
            GcVerdict::Remove(why) => match shmq::segment::remove(&ctx.dir, name) {
                // Ok(false): someone else removed it in the meantime; it is gone either way.
                Ok(_) => {
                    removed += 1;
                    writeln!(out, "removed {name}: {why}")?;
                }
                Err(e) => {
                    failed = true;
                    out.flush()?;
                    report(&format!("cannot remove {name:?}: {e}"));
                }
            },
        }
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
