//! The parent's side of the worker processes: starting them, talking to them, and making sure
//! that neither a dead worker nor a stuck one can hang the bench.
//!
//! - Each [`Proc`] has a thread that forwards its stdout lines. Outside timed runs a worker
//!   that stops early is an error like any other (the [`Cleanup`] guard removes the segments).
//! - During a timed run ([`hot`]) the parent spins in the library's blocking calls and cannot
//!   look at anything else, so the reader thread of a worker that stops without its `done`
//!   line reports it and exits the process, and a watchdog thread exits it when the run makes
//!   no [`progress`] for [`STALL`]. Timed runs start only after the segment names are removed,
//!   so such an exit leaves nothing behind; the other workers see their stdin close and exit.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::super::{report, CliError, CliResult, Ctx};

/// A timed run that makes no progress for this long is abandoned.
pub const STALL: Duration = Duration::from_secs(30);

/// Whether a timed run is going on (see the module docs).
static HOT: AtomicBool = AtomicBool::new(false);
/// Progress of the timed run (any number that changes while it moves).
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Records progress of the timed run (one relaxed store; no syscall).
#[inline]
pub fn progress(n: u64) {
    PROGRESS.store(n, Ordering::Relaxed);
}

/// Removes the bench's segment names on every path out (they are normally removed as soon as
/// every process has attached; removing again is harmless).
pub struct Cleanup {
    dir: PathBuf,
    names: Vec<String>,
}

impl Cleanup {
    pub fn new(ctx: &Ctx) -> Cleanup {
        Cleanup { dir: ctx.dir.clone(), names: Vec::new() }
    }

    /// Creates a segment with `create(name)` under the first free name `stem`, `stem-2`, ...;
    /// records the name for removal.
    pub fn create<T>(&mut self, stem: &str, create: impl Fn(&str) -> shmq::Result<T>) -> CliResult<(T, String)> {
        for i in 1..=16 {
            let name = if i == 1 { stem.to_string() } else { format!("{stem}-{i}") };
            match create(&name) {
                Ok(v) => {
                    self.names.push(name.clone());
                    return Ok((v, name));
                }
                Err(shmq::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CliError::msg(format!("cannot find a free segment name starting with {stem:?}")))
    }

    /// Removes every recorded name now.
    pub fn remove_all(&mut self) -> CliResult {
        for n in self.names.drain(..) {
            shmq::status::remove(&self.dir, &n)?;
        }
        Ok(())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = shmq::status::remove(&self.dir, n);
        }
    }
}

/// A worker process. Dropping it kills the process if it still runs, and reaps it.
pub struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Set by the reader thread when stdout closed before a `done` line.
    died: Arc<AtomicBool>,
}

impl Proc {
    /// Starts `shmq bench-worker ARGS` (called `what` in messages).
    pub fn spawn(ctx: &Ctx, what: String, args: &[String]) -> CliResult<Proc> {
        let exe =
            std::env::current_exe().map_err(|e| CliError::msg(format!("cannot find the shmq executable: {e}")))?;
        let mut child = Command::new(&exe)
            .arg("--dir")
            .arg(&ctx.dir)
            .arg("bench-worker")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::msg(format!("cannot start the bench {what} ({}): {e}", exe.display())))?;
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let (tx, lines) = mpsc::channel();
        let died = Arc::new(AtomicBool::new(false));
        let (d, w) = (died.clone(), what.clone());
        std::thread::spawn(move || {
            let mut finished = false;
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                finished |= line.starts_with("done");
                let _ = tx.send(line);
            }
            if !finished {
                // SeqCst pairs with `hot`: either we see HOT, or `hot` sees `died`.
                d.store(true, Ordering::SeqCst);
                if HOT.load(Ordering::SeqCst) {
                    report(&format!("the bench {w} process stopped during a timed run"));
                    std::process::exit(1);
                }
            }
        });
        Ok(Proc { what, stdin: child.stdin.take(), child, lines, died })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the worker prints, waiting at most `timeout` (`Ok(None)` then); an error
    /// if it stops first.
    pub fn line_within(&mut self, timeout: Duration) -> CliResult<Option<String>> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Ok(Some(l)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                Err(CliError::msg(format!("the bench {} process stopped ({status})", self.what)))
            }
        }
    }

    /// The next line, waiting as long as the worker runs.
    pub fn line(&mut self) -> CliResult<String> {
        loop {
            if let Some(l) = self.line_within(Duration::from_secs(3600))? {
                return Ok(l);
            }
        }
    }

    /// Waits for the worker's `ready` (it has attached).
    pub fn ready(&mut self) -> CliResult {
        match self.line()?.as_str() {
            "ready" => Ok(()),
            other => Err(CliError::msg(format!("the bench {} process said {other:?}", self.what))),
        }
    }

    /// Tells a producer to start.
    pub fn go(&mut self) -> CliResult {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| CliError::msg(format!("cannot start the bench {}: {e}", self.what)))
    }

    /// Parses the worker's `done` line into its numbers (at least `n`).
    pub fn done_numbers(what: &str, line: &str, n: usize) -> CliResult<Vec<u64>> {
        let mut words = line.split_whitespace();
        let nums: Option<Vec<u64>> =
            if words.next() == Some("done") { words.map(|w| w.parse().ok()).collect() } else { None };
        match nums {
            Some(v) if v.len() >= n => Ok(v),
            _ => {
                Err(CliError::msg(format!("the bench {what} process said {line:?}, expected \"done\" and {n} numbers")))
            }
        }
    }

    /// Waits for the worker to exit successfully after its `done` line (already read).
    pub fn finish(mut self) -> CliResult {
        self.stdin.take(); // end-of-file tells the worker's stdin watcher that we are done too
        let status = self.child.wait().map_err(|e| CliError::msg(format!("wait for the bench {}: {e}", self.what)))?;
        if !status.success() {
            return Err(CliError::msg(format!("the bench {} process failed ({status})", self.what)));
        }
        Ok(())
    }

    /// The name used in messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A timed run in progress: see the module docs. Ends when dropped.
pub struct Hot {
    stop: Arc<AtomicBool>,
    watchdog: Option<std::thread::JoinHandle<()>>,
}

/// Starts a timed run with `procs` as the workers involved.
///
/// # Errors
/// If one of them has already stopped.
pub fn hot(procs: &[&Proc]) -> CliResult<Hot> {
    // SeqCst pairs with the reader thread: either it sees HOT, or we see `died`.
    HOT.store(true, Ordering::SeqCst);
    if let Some(p) = procs.iter().find(|p| p.died.load(Ordering::SeqCst)) {
        HOT.store(false, Ordering::SeqCst);
        return Err(CliError::msg(format!("the bench {} process stopped", p.what)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let watchdog = std::thread::spawn(move || {
        let mut seen = PROGRESS.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while !s.load(Ordering::SeqCst) {
            std::thread::park_timeout(Duration::from_secs(1));
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= STALL && !s.load(Ordering::SeqCst) {
                report(&format!(
                    "no progress for {} s during a timed run (a lost message or a stuck process?); stopping",
                    STALL.as_secs()
                ));
                std::process::exit(1);
            }
        }
    });
    Ok(Hot { stop, watchdog: Some(watchdog) })
}

impl Drop for Hot {
    fn drop(&mut self) {
        HOT.store(false, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.watchdog.take() {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}
