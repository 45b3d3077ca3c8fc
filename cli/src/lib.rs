//! Support for the `shmq` command line and the criterion benches: the baselines every
//! measurement is compared against (Unix sockets, pipes, and the two-atomics floor).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

pub mod baseline;
