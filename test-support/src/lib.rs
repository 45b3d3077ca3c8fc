//! Helpers shared by shmq's tests (and the command line's): child processes and their roles, a
//! watchdog, a seeded PRNG, self-checking payloads, raw segment access and corruption, and the
//! scene (directory, watchdog, deadline) each test sets up. One module per concern; this file
//! only declares and re-exports.
//!
//! # How child processes run
//!
//! A multi-process test starts children that are the test binary itself
//! ([`std::env::current_exe`]), with the environment variable [`ROLE_ENV`] naming the role
//! each plays ([`Spawn`], [`ChildProc`]). The binary lists its roles once with [`children!`],
//! which puts a dispatcher ([`child::run_if_child`]) into the binary's `.init_array`: the C
//! runtime runs it before `main`, so in a child it runs the role and exits before the test
//! harness starts, and in the parent it returns at once. So there are no do-nothing "entry"
//! tests, and children never see libtest.
//!
//! Why this and not a separate child binary:
//! - A `[[bin]]` target cannot use dev-dependencies (this crate, `tempfile`), so the children's
//!   side of every helper (payloads, reports, the death signal, descriptor exhaustion, the
//!   corrupter) would need a second home; it would also be a second binary in the package that
//!   users could build.
//! - A `harness = false` test target would need a test runner of its own (libtest-mimic or a
//!   hand-made one), in place of libtest's filters, parallelism and output capture; and a
//!   separate one cannot be found reliably from another test binary (its file name carries a
//!   hash), nor is it built by `cargo test --test <name>`.
//! - The cost: the role runs before `main`. On Linux the standard library works there (the
//!   environment, threads, I/O, unwinding); the dispatcher catches a panicking role and exits
//!   with 101, as a failed test would, and the role never returns into `main`.
//!
//! Children ask the kernel to kill them when the thread that spawned them ends
//! ([`die_with_parent`]), so even an aborted test leaves no process behind.
//!
//! Built with `--cfg loom` too (the loom models are test targets of the same package): nothing
//! here needs more of shmq than its layout constants, which loom builds have.

#![allow(missing_docs)]

pub mod child;
pub mod corrupt;
pub mod fds;
pub mod payload;
pub mod procfs;
pub mod raw;
pub mod rng;
pub mod scene;
pub mod spawn;
pub mod watchdog;

pub use child::{
    die_with_parent, env, env_opt, env_u64, is_namespace_init, report, role, sleep_until_killed, Role, MARK,
    PARENT_ENV, PIDNS_ENV, PIDNS_START, ROLE_ENV,
};
pub use corrupt::{flip_byte, Corrupter, Field, Geometry, Hit, Weights};
pub use fds::{check_out_of_fds, exhaust_fds, Exhausted};
pub use procfs::{children_of, is_dead, processes_with_env, thread_cpu, wait_zombie};
pub use raw::RawMap;
pub use rng::Rng;
pub use scene::{heavy, poll_until, wait_for, Scene};
pub use spawn::{field, num, pid_namespaces, result_line, ChildProc, Spawn, UNSHARE};
pub use watchdog::{CaseWatch, Watchdog};
