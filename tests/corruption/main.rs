//! Corrupted segments: everything shmq reads from shared memory, written by a buggy or hostile
//! peer, must give `Ok` or an error — never a panic, a hang, a crash or a read out of bounds.
//!
//! - [`fuzz`]: proptest loops over arbitrary segment images, mutated real segments and heap
//!   rings with hostile slots, and regressions they reach only rarely;
//! - [`hostile`]: sweeps of random corruptions of live queues (in a child process, so that a
//!   crash names its round), every header field overwritten, lengths rewritten mid-receive;
//! - [`writer`]: a hostile process writing into live segments while worker processes use them.
//!
//! All of them find fields through `shmq_test_support::corrupt`'s tables and write through its
//! `RawMap`; the hostile sweeps and the hostile process share its `Corrupter`. Children are this
//! test binary again (see `shmq_test_support`'s crate docs).

mod fuzz;
mod hostile;
mod writer;

shmq_test_support::children!(hostile::ROLES, writer::ROLES);
