//! A last-resort watchdog for a whole test.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Ends a test that runs past `limit`: prints what hung, removes the test's directory and aborts
/// the test binary (its children die with it, see [`die_with_parent`]). Each test's own waits
/// have earlier deadlines and fail more gracefully; this is the last resort for a hang in the
/// test process itself.
pub struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching test `what`; `dir` is removed if the watchdog fires.
    pub fn start(what: &str, limit: Duration, dir: Option<&Path>) -> Watchdog {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let what = what.to_string();
        let dir: Option<PathBuf> = dir.map(Path::to_path_buf);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*stop2;
            let guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (stopped, _) =
                cv.wait_timeout_while(guard, limit, |s| !*s).unwrap_or_else(std::sync::PoisonError::into_inner);
            if !*stopped {
                eprintln!("watchdog: test {what} still running after {limit:?}; aborting the test binary");
                if let Some(d) = dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                std::process::abort();
            }
        });
        Watchdog { stop, thread: Some(thread) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
