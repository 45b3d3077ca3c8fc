//! Inside a child process: which role it plays, its environment, its reports to the parent, and
//! the dispatcher that runs the role before the test harness starts.
//!
//! A test binary names its roles once, at its root:
//!
//! ```text
//! shmq_test_support::children!(queue::ROLES, topic::ROLES);
//! ```
//!
//! where each `ROLES` is a `&[Role]` (a name and the function a child playing it runs). The
//! macro puts [`run_if_child`] into the binary's `.init_array`, so that it runs before `main`:
//! in a child (the binary started by [`Spawn`](crate::Spawn) with [`ROLE_ENV`] set) it runs the
//! role and exits, and the test harness never starts; in the parent it returns at once.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Names the role a child process plays; absent in the parent.
pub const ROLE_ENV: &str = "SHMQ_TEST_ROLE";
/// Pid of the process that spawned the child, so that the child can tell if it was orphaned.
pub const PARENT_ENV: &str = "SHMQ_TEST_PARENT";
/// Set (to 1) in a child started as pid 1 of a pid namespace of its own (see
/// [`Spawn::in_pid_namespace`](crate::Spawn::in_pid_namespace)).
pub const PIDNS_ENV: &str = "SHMQ_TEST_PIDNS";
/// Lines a child prints for its parent start with this marker.
pub const MARK: &str = "@@shmq ";
/// What a child in a pid namespace of its own prints first, once it has checked that it is
/// pid 1 there.
pub const PIDNS_START: &str = "child: pid 1 of its own pid namespace";

/// A role a child process can play: its name, and what the child runs.
pub type Role = (&'static str, fn());

/// Declares the child roles of a test binary: `children!(a::ROLES, b::ROLES)`, each a
/// `&[Role]`. Once per binary, at its root (a second use does not compile).
///
/// It adds a function to the binary's `.init_array`, which the C runtime calls before `main`
/// (before the test harness): [`run_if_child`](crate::child::run_if_child), which runs the role
/// named by [`ROLE_ENV`](crate::child::ROLE_ENV) and exits, or returns at once in the parent.
/// See the crate docs for why children are started this way.
#[macro_export]
macro_rules! children {
    ($($roles:expr),+ $(,)?) => {
        // SAFETY: `.init_array` holds `extern "C" fn()`s that the C runtime calls before
        // `main`; this one only reads an environment variable in the parent.
        #[used]
        #[unsafe(link_section = ".init_array")]
        static SHMQ_TEST_CHILDREN: extern "C" fn() = {
            extern "C" fn dispatch() {
                $crate::child::run_if_child(&[$($roles),+]);
            }
            dispatch
        };
    };
}

/// The role this process plays, if it is a child (see [`ROLE_ENV`]).
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// In a child, runs the role named by [`ROLE_ENV`] from `tables` and exits: with 0 if it
/// returned, 101 if it panicked (the panic message goes to stderr, as a failed test's does).
/// Before the role it calls [`die_with_parent`]. In the parent it returns at once.
///
/// Called by [`children!`] before `main`. The standard library works there on Linux (the
/// arguments are not needed, the environment, threads, I/O and unwinding all work); the role
/// ends with [`std::process::exit`], which flushes stdout, so `main` never runs in a child.
pub fn run_if_child(tables: &[&[Role]]) {
    let Some(name) = role() else { return };
    let code = match catch_unwind(AssertUnwindSafe(|| {
        die_with_parent();
        let mut found = tables.iter().flat_map(|t| t.iter()).filter(|(n, _)| *n == name);
        let (_, run) = found.next().unwrap_or_else(|| panic!("unknown child role {name:?}"));
        assert!(found.next().is_none(), "child role {name:?} is declared twice");
        run();
    })) {
        Ok(()) => 0,
        Err(_) => 101,
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// A required environment variable of a child role.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child role needs the environment variable {name}"))
}

/// A required numeric environment variable of a child role.
pub fn env_u64(name: &str) -> u64 {
    let v = env(name);
    v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
}

/// An optional numeric environment variable of a child role.
pub fn env_opt(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// Prints a line for the parent (marked with [`MARK`], flushed at once).
pub fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Makes the kernel SIGKILL this (child) process when the thread that spawned it ends, and exits
/// at once (with 3) if that already happened.
///
/// A child in a pid namespace of its own ([`PIDNS_ENV`]) is pid 1 there, and its parent
/// (`unshare`) is outside it, so `getppid()` is 0 and says nothing about the test: it checks
/// that it is such a process instead, prints [`PIDNS_START`], and relies on `unshare
/// --kill-child`, which gave it the parent-death signal of `unshare` (which has the one of the
/// spawning thread, see [`Spawn::in_pid_namespace`](crate::Spawn::in_pid_namespace)).
pub fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process; its arguments are plain
    // integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl(PR_SET_PDEATHSIG) failed");
    if std::env::var_os(PIDNS_ENV).is_some() {
        assert!(
            is_namespace_init(),
            "a child started in a pid namespace of its own is not pid 1 there (pid {}, parent {})",
            std::process::id(),
            // SAFETY: getppid has no arguments and cannot fail.
            unsafe { libc::getppid() }
        );
        println!("{PIDNS_START}");
        return;
    }
    if let Ok(parent) = std::env::var(PARENT_ENV) {
        // SAFETY: getppid has no arguments and cannot fail.
        let ppid = unsafe { libc::getppid() };
        if parent != ppid.to_string() {
            // The parent died before the flag was set: nobody waits for us.
            std::process::exit(3);
        }
    }
}

/// Whether this process is pid 1 of a pid namespace whose parent lives outside it (then
/// `getppid()` is 0).
pub fn is_namespace_init() -> bool {
    // SAFETY: getpid and getppid have no arguments and cannot fail.
    unsafe { libc::getpid() == 1 && libc::getppid() == 0 }
}

/// Sleeps until killed; gives up (and fails the child) after `limit`, so that a child whose
/// parent forgot it does not live forever.
pub fn sleep_until_killed(limit: Duration) -> ! {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("child was not killed within {limit:?}");
}
