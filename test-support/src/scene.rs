//! What a test sets up around itself: a private segment directory, a watchdog and a deadline;
//! a lock for the CPU-heavy tests of a binary; and polling for a condition.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::watchdog::Watchdog;

/// A test's private temporary directory (segments, logs, result files), a [`Watchdog`] that
/// removes it and aborts the binary if the test hangs, and a deadline for the test's own waits.
/// Dropped: the watchdog stops, then the directory is removed.
pub struct Scene {
    name: String,
    deadline: Instant,
    // Field order is drop order: stop the watchdog, then remove the directory.
    _dog: Watchdog,
    dir: tempfile::TempDir,
}

impl Scene {
    /// A scene for test `name` (also the name of its segment, if it has one) in a new temporary
    /// directory: its waits end `limit` from now, its watchdog fires `watchdog` from now.
    pub fn new(name: &str, limit: Duration, watchdog: Duration) -> Scene {
        Self::in_dir(tempfile::tempdir().expect("temporary directory"), name, limit, watchdog)
    }

    /// [`new`](Self::new) in `dir` (a temporary directory made elsewhere, on tmpfs say).
    pub fn in_dir(dir: tempfile::TempDir, name: &str, limit: Duration, watchdog: Duration) -> Scene {
        let dog = Watchdog::start(name, watchdog, Some(dir.path()));
        Scene { name: name.to_string(), deadline: Instant::now() + limit, _dog: dog, dir }
    }

    /// The test's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `file` in the directory.
    pub fn join(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// When the test's own waits give up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

static HEAVY: Mutex<()> = Mutex::new(());

/// The CPU-heavy tests of a test binary take this lock, so that they run one at a time (the
/// machines this runs on have two cores). Light tests run beside them.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `cond` every millisecond until it holds (`true`) or `limit` passes (`false`).
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls `cond` every millisecond until it holds.
///
/// # Panics
/// With `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(poll_until(limit, cond), "timed out after {limit:?} waiting for {what}");
}
