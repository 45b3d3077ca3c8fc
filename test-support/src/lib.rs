//! Helpers shared by the multi-process and hostile-segment tests: child processes that are
//! killed when a test ends, a watchdog that ends a hung test with a message, and a seeded PRNG.
//!
//! A child process is the test binary itself, run with `--exact <entry test>` and an environment
//! variable ([`ROLE_ENV`]) naming the role it plays; the entry test returns at once when the
//! variable is absent. Children ask the kernel to kill them when the thread that spawned them
//! ends ([`die_with_parent`]), so even an aborted test leaves no process behind.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
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

/// A child process playing a role. Killed (SIGKILL) and reaped on drop unless it already ended.
pub struct ChildProc {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

impl ChildProc {
    /// Runs test `entry` of this test binary as a child playing `role`, with `envs` added.
    pub fn spawn(entry: &str, role: &str, envs: &[(&str, String)]) -> ChildProc {
        Self::spawn_under(&[], entry, role, envs).unwrap_or_else(|e| panic!("spawn child {role}: {e}"))
    }

    /// [`spawn`](Self::spawn) through a wrapper command (`wrapper` then the test binary and its
    /// arguments, e.g. `unshare --pid --fork ...`). The wrapper gets the parent-death signal, so
    /// it must pass it on to the child (`unshare --kill-child` does); the child skips the
    /// parent check of [`die_with_parent`] only if the wrapper is its parent, so it should not
    /// call it.
    pub fn spawn_under(
        wrapper: &[&str],
        entry: &str,
        role: &str,
        envs: &[(&str, String)],
    ) -> std::io::Result<ChildProc> {
        let exe = std::env::current_exe().expect("path of the test binary");
        let mut cmd = match wrapper.split_first() {
            None => Command::new(exe),
            Some((first, rest)) => {
                use std::os::unix::process::CommandExt;
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                unsafe {
                    c.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                        Ok(())
                    });
                }
                c
            }
        };
        cmd.args(["--exact", entry, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(PARENT_ENV, std::process::id().to_string())
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let what = format!("child {role} (pid {})", child.id());
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(ChildProc { what, child, lines, stdout: Vec::new(), stderr: Some(stderr), status: None })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Description for failure messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Waits until the child prints a marked line starting with `prefix`; returns the rest of it.
    ///
    /// # Panics
    /// If the child ends first or `deadline` passes (with what the child printed).
    pub fn wait_line(&mut self, prefix: &str, deadline: Instant) -> String {
        self.try_wait_line(prefix, deadline).unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`wait_line`](Self::wait_line), with `Err(why, transcript included)` where it panics.
    pub fn try_wait_line(&mut self, prefix: &str, deadline: Instant) -> Result<String, String> {
        let want = format!("{MARK}{prefix}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.find(&want).map(|at| line[at + want.len()..].trim().to_string());
                    self.stdout.push(line);
                    if let Some(rest) = found {
                        return Ok(rest);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    let t = self.transcript();
                    return Err(format!("{} did not print {prefix:?} in time{t}", self.what));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.reap();
                    let t = self.transcript();
                    return Err(format!("{} ended without printing {prefix:?}{t}", self.what));
                }
            }
        }
    }

    /// Waits for the child to exit, polling until `deadline`.
    ///
    /// # Panics
    /// If `deadline` passes: the child is killed and the panic names it.
    pub fn wait(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            if let Some(st) = self.status {
                return st;
            }
            match self.child.try_wait().expect("try_wait") {
                Some(st) => {
                    self.status = Some(st);
                    self.drain_stdout();
                }
                None if Instant::now() >= deadline => {
                    self.kill();
                    let t = self.transcript();
                    panic!("watchdog: {} still running at its deadline; killed it{t}", self.what);
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Waits for the child to exit successfully; returns the rest of each of its marked lines.
    ///
    /// # Panics
    /// If it fails, or runs past `deadline`.
    pub fn expect_success(&mut self, deadline: Instant) -> Vec<String> {
        let st = self.wait(deadline);
        if !st.success() {
            let t = self.transcript();
            panic!("{} failed with {st}{t}", self.what);
        }
        self.marked()
    }

    /// The rest of every marked line printed so far.
    pub fn marked(&self) -> Vec<String> {
        self.stdout.iter().filter_map(|l| l.find(MARK).map(|at| l[at + MARK.len()..].trim().to_string())).collect()
    }

    /// SIGKILLs the child and reaps it (no-op if it already ended).
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.reap();
        }
    }

    /// Sends SIGKILL without reaping: the child stays a zombie until [`reap`](Self::reap).
    pub fn kill_no_reap(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the (killed or exiting) child without a deadline.
    pub fn reap(&mut self) -> ExitStatus {
        if let Some(st) = self.status {
            return st;
        }
        let st = self.child.wait().expect("wait for child");
        self.status = Some(st);
        self.drain_stdout();
        st
    }

    fn drain_stdout(&mut self) {
        // The reader thread ends at EOF, which follows the exit (unless a grandchild kept the pipe).
        let end = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
            self.stdout.push(line);
        }
    }

    /// Everything the child printed, for failure messages (stderr only once it has ended).
    pub fn transcript(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.stdout.push(line);
        }
        let stderr = match (self.status, self.stderr.take()) {
            (Some(_), Some(h)) => h.join().unwrap_or_default(),
            _ => String::from("(still running)"),
        };
        format!(
            "\n--- stdout of {} ---\n{}\n--- stderr ---\n{}",
            self.what,
            tail(&self.stdout.join("\n")),
            tail(&stderr)
        )
    }
}

/// The last 40 lines of `s`.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill();
    }
}

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

/// A small seeded PRNG (SplitMix64): reproducible corruption from a printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A second, raw read-write mapping of a segment file, as a peer (buggy, hostile, or one that
/// judged us dead) has: it reads and writes words anywhere, through atomics.
pub struct RawMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, accessed only through atomics (`u64_at` and friends).
unsafe impl Send for RawMap {}
// SAFETY: as above.
unsafe impl Sync for RawMap {}

impl RawMap {
    /// Maps all of `file` (open read-write).
    pub fn new(file: &std::fs::File) -> RawMap {
        use std::os::fd::AsRawFd;
        let len = file.metadata().expect("segment size").len() as usize;
        // SAFETY: mapping an open file shared and read-write; the kernel checks fd and length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
        RawMap { ptr: ptr.cast(), len }
    }

    /// Maps the segment file at `path`.
    pub fn open(path: &Path) -> RawMap {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open the segment file");
        RawMap::new(&file)
    }

    /// Bytes mapped (the file's size when it was mapped).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self, offset: u64, width: usize) -> usize {
        let at = offset as usize;
        assert!(at % width == 0 && at + width <= self.len, "{width} bytes at {at} outside the mapping");
        at
    }

    /// The 64-bit word at `offset`.
    pub fn u64_at(&self, offset: u64) -> &std::sync::atomic::AtomicU64 {
        let at = self.check(offset, 8);
        // SAFETY: in bounds and 8-aligned (checked; the mapping is page aligned); an AtomicU64
        // is valid for any bits; the reference does not outlive `self`, which keeps the mapping.
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU64>() }
    }

    /// The 32-bit word at `offset`.
    pub fn u32_at(&self, offset: u64) -> &std::sync::atomic::AtomicU32 {
        let at = self.check(offset, 4);
        // SAFETY: as in `u64_at`, 4-aligned.
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU32>() }
    }

    /// The byte at `offset`.
    pub fn u8_at(&self, offset: u64) -> &std::sync::atomic::AtomicU8 {
        let at = self.check(offset, 1);
        // SAFETY: as in `u64_at`; any byte is aligned for AtomicU8.
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU8>() }
    }

    /// The current value of a field of `width` bytes (8, 4 or 1).
    pub fn load(&self, offset: u64, width: usize) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        match width {
            8 => self.u64_at(offset).load(Relaxed),
            4 => self.u32_at(offset).load(Relaxed) as u64,
            _ => self.u8_at(offset).load(Relaxed) as u64,
        }
    }

    /// Stores the low `width` bytes of `value` (one atomic store, as a peer's write would be).
    pub fn store(&self, offset: u64, width: usize, value: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match width {
            8 => self.u64_at(offset).store(value, Relaxed),
            4 => self.u32_at(offset).store(value as u32, Relaxed),
            _ => self.u8_at(offset).store(value as u8, Relaxed),
        }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
