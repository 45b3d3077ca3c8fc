//! The parent's side of a child process: spawning it, reading its reports, killing it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::child::{MARK, PARENT_ENV, ROLE_ENV};

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
