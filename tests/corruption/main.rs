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

/// Reads every byte of a received message (so that a bad length or pointer would fault).
fn touch(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a ^ x)
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}
