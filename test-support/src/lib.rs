//! Helpers shared by the multi-process and hostile-segment tests: child processes that are
//! killed when a test ends, a watchdog that ends a hung test with a message, and a seeded PRNG.
//!
//! A child process is the test binary itself, run with `--exact <entry test>` and an environment
//! variable ([`ROLE_ENV`]) naming the role it plays; the entry test returns at once when the
//! variable is absent. Children ask the kernel to kill them when the thread that spawned them
//! ends ([`die_with_parent`]), so even an aborted test leaves no process behind.

#![allow(missing_docs)]

pub mod child;
pub mod raw;
pub mod rng;
pub mod spawn;
pub mod watchdog;

pub use child::{die_with_parent, env, env_u64, report, role, sleep_until_killed, MARK, PARENT_ENV, ROLE_ENV};
pub use raw::RawMap;
pub use rng::Rng;
pub use spawn::ChildProc;
pub use watchdog::Watchdog;
