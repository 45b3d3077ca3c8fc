//! What a child process does first: its role, its environment, and reports to its parent.

use std::time::{Duration, Instant};

/// Names the role a child process plays; absent in the parent.
pub const ROLE_ENV: &str = "SHMQ_TEST_ROLE";
/// Pid of the process that spawned the child, so that the child can tell if it was orphaned.
pub const PARENT_ENV: &str = "SHMQ_TEST_PARENT";
/// Lines a child prints for its parent start with this marker (libtest may print on the same line).
pub const MARK: &str = "@@shmq ";

/// The role this process plays, if it is a child spawned by [`ChildProc::spawn`].
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
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

/// Prints a line for the parent (marked, flushed at once).
pub fn report(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A leading newline keeps the marker at the start of a line even after libtest's "test x ... ".
    writeln!(out, "\n{MARK}{line}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Makes the kernel SIGKILL this (child) process when the thread that spawned it ends, and exits
/// at once if that already happened.
pub fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process; its arguments are plain
    // integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl(PR_SET_PDEATHSIG) failed");
    if let Ok(parent) = std::env::var(PARENT_ENV) {
        // SAFETY: getppid has no arguments and cannot fail.
        let ppid = unsafe { libc::getppid() };
        if parent != ppid.to_string() {
            // The parent died before the flag was set: nobody waits for us.
            std::process::exit(3);
        }
    }
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
