//! What `/proc` (and the kernel's clocks) say about processes: their state, their children,
//! their environment, the CPU time a thread used.

use std::time::{Duration, Instant};

/// The state letter of process `pid` (`R`, `S`, `Z`, ...), or `None` if it is gone.
pub fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, which may contain anything) comes the state.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Whether process `pid` is gone, or a zombie (dead and waiting to be reaped).
pub fn is_dead(pid: u32) -> bool {
    state(pid).is_none_or(|s| s == "Z")
}

/// Waits until process `pid` (a child of ours, not yet reaped) is a zombie with only its leader
/// left: every thread has exited. The leader turns `Z` before the other threads of its group
/// have closed their files, so the state alone does not say the kernel has dropped the
/// process's locks.
///
/// # Panics
/// If that does not happen before `deadline`.
pub fn wait_zombie(pid: u32, deadline: Instant) {
    loop {
        let state = state(pid);
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(usize::MAX);
        if state.as_deref() == Some("Z") && threads == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not die (state {state:?}, {threads} threads)");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every process whose parent is `pid` (from `/proc/*/stat`, which every kernel has, unlike
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

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer for the call.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
