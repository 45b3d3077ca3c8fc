//! Watchdogs of last resort: [`Watchdog`] for a whole test, [`CaseWatch`] for each case of a
//! loop. Each test's own waits have earlier deadlines and fail more gracefully; these end a
//! hang in the test process itself, by aborting the test binary after printing what hung (its
//! children die with it, see [`die_with_parent`](crate::die_with_parent)).

use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Ends a test that runs past `limit`: prints what hung, removes the test's directory and aborts
/// the test binary.
pub struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching test `what` (its name, and a seed or whatever replays it); `dir` is
    /// removed if the watchdog fires.
    pub fn start(what: &str, limit: Duration, dir: Option<&Path>) -> Watchdog {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let what = what.to_string();
        let dir: Option<PathBuf> = dir.map(Path::to_path_buf);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*stop2;
            let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopped, _) = cv.wait_timeout_while(guard, limit, |s| !*s).unwrap_or_else(PoisonError::into_inner);
            if !*stopped {
                eprintln!(
                    "watchdog: test {what} still running after {limit:?}: something hung; aborting the test binary"
                );
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
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a [`CaseWatch`] knows: when the current case started, its input, and whether the loop
/// is done.
#[derive(Default)]
struct Watched {
    started: Option<Instant>,
    input: String,
    done: bool,
}

/// Aborts the test binary, printing the case's input, if one case of a loop (a property test's
/// case, say) runs longer than its limit.
pub struct CaseWatch {
    state: Arc<(Mutex<Watched>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl CaseWatch {
    /// Starts watching the cases of `test`, each allowed `limit`; `dir` is removed if it fires.
    pub fn start(test: &'static str, limit: Duration, dir: Option<PathBuf>) -> CaseWatch {
        let state = Arc::new((Mutex::new(Watched::default()), Condvar::new()));
        let s = state.clone();
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*s;
            let mut w = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !w.done {
                if let Some(t) = w.started {
                    if t.elapsed() > limit {
                        // Straight to stderr: the test harness's capture of `eprintln!` is lost on
                        // abort.
                        let _ = writeln!(
                            std::io::stderr(),
                            "{test}: one case ran for more than {limit:?} (a hang); input:\n{}",
                            w.input
                        );
                        if let Some(d) = &dir {
                            let _ = std::fs::remove_dir_all(d);
                        }
                        std::process::abort();
                    }
                }
                w = cv.wait_timeout(w, Duration::from_millis(200)).unwrap_or_else(PoisonError::into_inner).0;
            }
        });
        CaseWatch { state, thread: Some(thread) }
    }

    /// A case with `input` begins.
    pub fn begin(&self, input: &dyn Debug) {
        let mut w = self.state.0.lock().unwrap_or_else(PoisonError::into_inner);
        w.started = Some(Instant::now());
        w.input = format!("{input:#?}");
    }

    /// The case ended.
    pub fn end(&self) {
        self.state.0.lock().unwrap_or_else(PoisonError::into_inner).started = None;
    }
}

impl Drop for CaseWatch {
    fn drop(&mut self) {
        self.state.0.lock().unwrap_or_else(PoisonError::into_inner).done = true;
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
