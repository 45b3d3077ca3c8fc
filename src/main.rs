//! The `shmq` command: create, feed, drain, inspect and benchmark shared-memory queues.
//!
//! All of the command line lives in [`cli`]: one module per command group.

#[cfg(not(loom))]
mod cli;

#[cfg(not(loom))]
fn main() {
    std::process::exit(cli::main());
}

/// Under `--cfg loom` only the ring algorithms exist (for the model checks); the command line
/// is not built.
#[cfg(loom)]
fn main() {}
