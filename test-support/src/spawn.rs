//! The parent's side of a child process: starting it (directly, as another user, or as pid 1
//! of a pid namespace of its own), reading its reports, waiting for it and killing it.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::child::{MARK, PARENT_ENV, PIDNS_ENV, ROLE_ENV};

/// The wrapper that runs a child as pid 1 of a new pid namespace, with its own `/proc`.
/// `unshare` forks the namespace's first process, waits for it and exits with its exit code;
/// `--kill-child` makes the kernel SIGKILL that process if `unshare` dies.
pub const UNSHARE: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

/// Whether children can be started in pid namespaces of their own ([`UNSHARE`]; it needs root,
/// or user namespaces): `Err` says why not.
pub fn pid_namespaces() -> Result<(), String> {
    match Command::new(UNSHARE[0]).args(&UNSHARE[1..]).arg("true").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{} true` failed with {}: {}",
            UNSHARE.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run unshare: {e}")),
    }
}

/// How to start a child process: this test binary (or a copy of it) with [`ROLE_ENV`] naming
/// the role it plays, [`PARENT_ENV`] the parent's pid, `RUST_BACKTRACE=0`, no standard input,
/// and the environment given.
#[derive(Clone, Debug)]
pub struct Spawn {
    role: String,
    envs: Vec<(String, OsString)>,
    exe: Option<PathBuf>,
    user: Option<(u32, u32)>,
    pid_namespace: bool,
}

impl Spawn {
    /// A child playing `role`.
    pub fn new(role: &str) -> Spawn {
        Spawn { role: role.to_string(), envs: Vec::new(), exe: None, user: None, pid_namespace: false }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Spawn {
        self.envs.push((key.to_string(), value.as_ref().to_os_string()));
        self
    }

    /// Adds environment variables.
    pub fn envs(mut self, envs: &[(&str, String)]) -> Spawn {
        for (k, v) in envs {
            self = self.env(k, v);
        }
        self
    }

    /// Runs `exe` (a copy of this test binary) instead of this test binary.
    pub fn exe(mut self, exe: &Path) -> Spawn {
        self.exe = Some(exe.to_path_buf());
        self
    }

    /// Runs the child as user `uid`, group `gid`.
    pub fn user(mut self, uid: u32, gid: u32) -> Spawn {
        self.user = Some((uid, gid));
        self
    }

    /// With `yes`, runs the child as pid 1 of a pid namespace of its own, under [`UNSHARE`],
    /// with [`PIDNS_ENV`] set (the child checks that it is pid 1 there, see
    /// [`die_with_parent`](crate::die_with_parent)). `unshare` gets the parent-death signal of
    /// the spawning thread (as direct children give it themselves) and passes it on
    /// (`--kill-child`), so an aborted test leaves nothing behind. Killing the child means
    /// killing the process `unshare` forked, not `unshare` (see
    /// [`children_of`](crate::children_of)); `unshare` then exits.
    pub fn in_pid_namespace(mut self, yes: bool) -> Spawn {
        self.pid_namespace = yes;
        self
    }

    /// The command; standard output and error are left to the caller.
    pub fn command(&self) -> Command {
        let exe = match &self.exe {
            Some(e) => e.clone(),
            None => std::env::current_exe().expect("path of the test binary"),
        };
        let parent = std::process::id();
        let mut cmd = if self.pid_namespace {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(UNSHARE[0]);
            cmd.args(&UNSHARE[1..]).arg(exe).env(PIDNS_ENV, "1");
            let parent = parent as libc::pid_t;
            // SAFETY: the closure runs in the forked child before exec and calls only prctl and
            // getppid, which are async-signal-safe; it allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
            cmd
        } else {
            Command::new(exe)
        };
        cmd.env(ROLE_ENV, &self.role)
            .env(PARENT_ENV, parent.to_string())
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Starts the child with its standard output and error piped to a [`ChildProc`].
    pub fn start(self) -> std::io::Result<ChildProc> {
        let mut child = self.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let what = format!("child {} (pid {})", self.role, child.id());
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
}

/// A child process playing a role, its output piped to the parent. Killed (SIGKILL) and reaped
/// on drop unless it already ended.
pub struct ChildProc {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

impl ChildProc {
    /// Starts this test binary as a child playing `role`, with `envs` added.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn spawn(role: &str, envs: &[(&str, String)]) -> ChildProc {
        Spawn::new(role).envs(envs).start().unwrap_or_else(|e| panic!("spawn child {role}: {e}"))
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

/// The first marked line of `lines` (see [`ChildProc::marked`]) that starts with `result `,
/// without that word.
///
/// # Panics
/// If there is none (`who` printed no result).
pub fn result_line(lines: &[String], who: &str) -> String {
    lines.iter().find_map(|l| l.strip_prefix("result ")).unwrap_or_else(|| panic!("{who} printed no result")).into()
}

/// The value of `key=` in a line of `key=value` words.
///
/// # Panics
/// If the line has no such word.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The number after `key=` in a line of `key=value` words.
///
/// # Panics
/// If the line has no such word, or its value is not a number.
pub fn num(line: &str, key: &str) -> u64 {
    let v = field(line, key);
    v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number"))
}
