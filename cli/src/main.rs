//! The `shmq` command: create, feed, drain, inspect and benchmark shared-memory queues.
//!
//! All of the command line lives in [`cli`]: one module per command group.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
