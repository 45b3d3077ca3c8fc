//! Running the `shmq` binary as a user would, for the command-line tests: each command gets
//! the test's own segment directory through `SHMQ_DIR`, runs under a watchdog, and its output
//! is checked with the helpers here.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a single command may run before the test fails (a generous watchdog, not a timing check).
pub const WATCHDOG: Duration = Duration::from_secs(120);

pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shmq"));
    c.args(args).env("SHMQ_DIR", dir).env("RUST_BACKTRACE", "1");
    c
}

/// Waits for `child` under the watchdog, collecting its output.
pub fn finish(child: Child, what: &str) -> Output {
    finish_within(child, what, WATCHDOG)
}

/// Waits for `child` at most `limit` (then kills it and fails the test), collecting its output.
pub fn finish_within(mut child: Child, what: &str, limit: Duration) -> Output {
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: `shmq {what}` still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

/// A background `shmq` process; killed and reaped if the test ends before [`finish`](Background::finish) does.
pub struct Background {
    child: Option<Child>,
    what: String,
}

impl Background {
    /// Starts `shmq args...` in segment directory `dir`, stdin empty, stdout and stderr piped.
    pub fn spawn(dir: &Path, args: &[&str]) -> Background {
        let child = command(dir, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmq");
        Background { child: Some(child), what: args.join(" ") }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends signal `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
    }

    /// Waits for the process to exit (under the watchdog) and returns its output.
    pub fn finish(mut self) -> Output {
        finish(self.child.take().expect("running"), &self.what)
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().expect("kill our own child");
        c.wait().expect("reap our own child");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `shmq args...` with `stdin` as its standard input.
pub fn shmq_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmq");
    let mut input = child.stdin.take().expect("stdin piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = finish(child, &args.join(" "));
    writer.join().unwrap();
    out
}

pub fn shmq(dir: &Path, args: &[&str]) -> Output {
    shmq_in(dir, args, b"")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "expected success, got {}; stderr: {}", o.status, stderr(&o));
    stdout(&o)
}

/// Asserts failure with exactly one line `shmq: ...` on stderr and no panic; returns that line.
pub fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure; stdout: {}", stdout(o));
    assert_ne!(o.status.code(), Some(101), "exit code 101 means a panic");
    let err = stderr(o);
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "panic text on stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err:?}");
    assert!(lines[0].starts_with("shmq: "), "error line lacks the `shmq: ` prefix: {err:?}");
    lines[0].to_string()
}

pub fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read temp dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shmq."))
        .collect();
    v.sort();
    v
}

pub fn json(o: Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"))
}

/// Polls `shmq stat NAME --json` until `ready` accepts it (the segment may not exist yet).
pub fn wait_for_stat(dir: &Path, name: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let o = shmq(dir, &["stat", name, "--json"]);
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).expect("stat --json prints JSON");
            if ready(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "watchdog: {what} never happened; last stat: {}", stdout(&o));
        std::thread::sleep(Duration::from_millis(10));
    }
}
