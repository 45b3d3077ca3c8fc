//! The adversarial parts of the chaos test: children that check their peers' liveness with no
//! free file descriptor, and children that run as pid 1 of a pid namespace of their own.
//!
//! Both used to fool shmq's liveness checks when they read `/proc/PID/stat` and called
//! `kill(pid, 0)`: a checker out of descriptors could not open `/proc` and judged live peers
//! dead, and a pid from another namespace means nothing (or another process) to the checker.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// What an out-of-descriptors child prints once it has no free descriptor, before its role
/// begins (the parent looks for it).
pub const EMFILE_START: &str = "chaos child: out of file descriptors before its role:";
/// What it prints when its role ended normally, after checking once more.
pub const EMFILE_END: &str = "chaos child: still out of file descriptors at the end:";
/// What a child in a pid namespace of its own prints first.
pub const PIDNS_START: &str = "chaos child: pid 1 of its own pid namespace";

/// Descriptors held open so that this process has none left.
pub struct Exhausted {
    held: Vec<File>,
    limit: u64,
}

/// How many descriptors this process has open.
fn open_fds() -> u64 {
    let dir = std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd");
    // The listing's own descriptor is among them; it is closed by the time this returns.
    dir.count() as u64 - 1
}

/// Takes every free descriptor: lowers the soft `RLIMIT_NOFILE` to a few above the number of
/// descriptors open (a new descriptor gets the lowest free number, which must be below the
/// limit; open ones above it stay valid), then opens `/dev/null` until `open` fails, which must
/// be with EMFILE. Prints [`EMFILE_START`] with the numbers once [`check_out_of_fds`] agrees.
pub fn exhaust_fds() -> Exhausted {
    let open = open_fds();
    let limit = open + 4;
    // SAFETY: an all-zero rlimit is a valid value; getrlimit fills it.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `rl` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0, "getrlimit(RLIMIT_NOFILE)");
    rl.rlim_cur = limit.min(rl.rlim_max);
    // SAFETY: `rl` is a valid rlimit; lowering the soft limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0, "setrlimit(RLIMIT_NOFILE)");
    let mut held = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open /dev/null while taking every descriptor failed with {e}, not EMFILE"),
        }
        assert!(held.len() < 10_000, "opened 10000 descriptors under a limit of {limit} without EMFILE");
    }
    let ex = Exhausted { held, limit: rl.rlim_cur };
    let why = check_out_of_fds();
    println!(
        "{EMFILE_START} {open} descriptors open, RLIMIT_NOFILE lowered to {}, {} more taken, {why}",
        ex.limit,
        ex.held.len()
    );
    ex
}

/// Panics unless this process has no free descriptor: `open`, `dup` and `socket` must all fail
/// with EMFILE. Returns what it checked, for the child's output.
pub fn check_out_of_fds() -> String {
    let open = File::open("/dev/null").map(drop);
    // SAFETY: dup of stdout (always open); a descriptor it returned is closed at once.
    let dup = unsafe { libc::dup(1) };
    let dup_err = io::Error::last_os_error();
    // SAFETY: socket takes plain integers; a descriptor it returned is closed at once.
    let sock = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    let sock_err = io::Error::last_os_error();
    for fd in [dup, sock] {
        if fd >= 0 {
            // SAFETY: fd was just returned to us and is closed once.
            unsafe { libc::close(fd) };
        }
    }
    let ok = matches!(&open, Err(e) if e.raw_os_error() == Some(libc::EMFILE))
        && dup < 0
        && dup_err.raw_os_error() == Some(libc::EMFILE)
        && sock < 0
        && sock_err.raw_os_error() == Some(libc::EMFILE);
    assert!(
        ok,
        "a descriptor was free in a child that must have none: open {open:?}, dup {dup} ({dup_err}), socket {sock} \
         ({sock_err})"
    );
    "open, dup and socket fail with EMFILE".to_string()
}

impl Exhausted {
    /// Checks that no descriptor is free and prints [`EMFILE_END`] with `what` the child did.
    pub fn finish(&self, what: &str) {
        let why = check_out_of_fds();
        println!("{EMFILE_END} {why} (RLIMIT_NOFILE {}, {} taken); {what}", self.limit, self.held.len());
    }
}

/// Whether children can be started in pid namespaces of their own (`unshare --pid --fork
/// --mount-proc`): `Err` says why not.
pub fn pid_namespaces() -> Result<(), String> {
    match Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child", "true"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`unshare --pid --fork --mount-proc --kill-child true` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run unshare: {e}")),
    }
}

/// A command that runs `exe args` as pid 1 of a new pid namespace (with its own `/proc`):
/// `unshare --pid --fork --mount-proc --kill-child exe args`. `unshare` forks the namespace's
/// first process and waits for it, and exits with its exit code; `--kill-child` makes the kernel
/// SIGKILL that process if `unshare` dies. `unshare` itself gets the parent-death signal of
/// the spawning thread (as the direct children give it themselves), so an aborted test leaves
/// nothing behind.
pub fn in_pid_namespace(exe: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"]).arg(exe).args(args);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only prctl and
    // getppid, which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd
}

/// Whether this process is pid 1 of a pid namespace whose parent lives outside it (then
/// `getppid()` is 0).
pub fn is_namespace_init() -> bool {
    // SAFETY: getpid and getppid have no arguments and cannot fail.
    unsafe { libc::getpid() == 1 && libc::getppid() == 0 }
}

/// Every process whose parent is `pid` (from `/proc/*/stat`; this kernel has no
/// `/proc/PID/task/TID/children`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read(format!("/proc/{child}/stat")).ok()?;
        // After the command name (in parentheses, which may contain anything) come the state
        // and the parent pid.
        let close = stat.iter().rposition(|&b| b == b')')?;
        let ppid: u32 = std::str::from_utf8(&stat[close + 1..]).ok()?.split_ascii_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    })
    .collect()
}

/// Every process (pid, command line) whose environment holds `key=value`: what a test leaves
/// behind.
pub fn processes_with_env(key: &str, value: &str) -> Vec<(u32, String)> {
    let want = format!("{key}={value}").into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        if !env.split(|&b| b == 0).any(|v| v == want.as_slice()) {
            return None;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        Some((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
    })
    .collect()
}

/// What the adversarial children did, as their output shows.
#[derive(Default, Debug)]
pub struct AdversaryReport {
    /// Incarnations told to take every free descriptor.
    pub emfile: usize,
    /// ... of which confirmed, before their role began, that none was left.
    pub emfile_confirmed: usize,
    /// ... of which ran to the end and confirmed it again there.
    pub emfile_to_the_end: usize,
    /// Incarnations started in a pid namespace of their own.
    pub pidns: usize,
    /// ... of which confirmed that they were pid 1 there.
    pub pidns_confirmed: usize,
    /// ... of which ran to the end.
    pub pidns_to_the_end: usize,
}

/// Checks the adversarial children's own confirmations: every one that ran to the end (was not
/// killed) must have printed them (a killed one may have died before it did).
pub fn check_adversaries(runs: &[super::Run], failures: &mut Vec<String>) -> AdversaryReport {
    let mut rep = AdversaryReport::default();
    for run in runs.iter().filter(|r| r.emfile || r.pidns) {
        let what = format!("{} {} incarnation {}", run.role.name(), run.index, run.inc);
        let out = std::fs::read_to_string(&run.out).unwrap_or_default();
        if run.emfile {
            rep.emfile += 1;
            let (start, end) = (out.contains(EMFILE_START), out.contains(EMFILE_END));
            let both = start && end;
            rep.emfile_confirmed += usize::from(start);
            rep.emfile_to_the_end += usize::from(!run.killed && both);
            if !run.killed && !both {
                failures.push(format!(
                    "{what} was to run out of file descriptors but did not confirm it (before its role: {start}, \
                     at the end: {end})"
                ));
            }
        }
        if run.pidns {
            rep.pidns += 1;
            let start = out.contains(PIDNS_START);
            rep.pidns_confirmed += usize::from(start);
            rep.pidns_to_the_end += usize::from(!run.killed && start);
            if !run.killed && !start {
                failures.push(format!("{what} was to run as pid 1 of its own pid namespace but did not confirm it"));
            }
        }
    }
    rep
}
