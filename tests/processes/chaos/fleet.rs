//! The chaos test's parent side: the fleet of children, started, killed (directly, or inside
//! their pid namespace) and restarted, every run recorded for the checks.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shmq_test_support::{children_of, Rng, Spawn};

use super::{
    kills, Role, Run, DIR_ENV, EMFILE_ENV, ID_ENV, INC_ENV, LIMIT_ENV, LOG_ENV, PRODUCER_ID_BASE, PUBLISHER_ID_BASE,
    SEED_ENV,
};

/// One of the 13 participants, restarted after each kill.
struct Member {
    role: Role,
    index: usize,
    child: Option<Child>,
    /// Index of its current incarnation in `Fleet::runs`.
    current: usize,
    incarnations: u32,
}

/// The participants and every run of each.
pub struct Fleet {
    seed: u64,
    dir: PathBuf,
    limit: Duration,
    /// Whether children may be started in pid namespaces of their own.
    pidns: bool,
    members: Vec<Member>,
    /// Every incarnation of every participant, in the order they started.
    pub runs: Vec<Run>,
}

impl Fleet {
    /// A fleet working in `dir` (segments in `seg`, logs in `logs`, children's output in `out`),
    /// each child given `limit` to live.
    pub fn new(dir: &Path, limit: Duration, seed: u64, pidns: bool) -> Fleet {
        for sub in ["seg", "logs", "out"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create a test directory");
        }
        Fleet { seed, dir: dir.to_path_buf(), limit, pidns, members: Vec::new(), runs: Vec::new() }
    }

    /// How many participants it has.
    pub fn participants(&self) -> usize {
        self.members.len()
    }

    /// Adds a participant and starts its first incarnation; returns its index.
    pub fn add(&mut self, role: Role, index: usize) -> usize {
        self.members.push(Member { role, index, child: None, current: 0, incarnations: 0 });
        let m = self.members.len() - 1;
        self.spawn(m);
        m
    }

    /// Starts the next incarnation of member `m`.
    pub fn spawn(&mut self, m: usize) {
        let (role, index, inc) = {
            let mb = &self.members[m];
            (mb.role, mb.index, mb.incarnations)
        };
        let stem = format!("{}-{index}-{inc}", role.name());
        let log = self.dir.join("logs").join(format!("{stem}.log"));
        let out = self.dir.join("out").join(format!("{stem}.txt"));
        let out_file = File::create(&out).expect("create a child output file");
        let err_file = out_file.try_clone().expect("clone a file handle");
        let id = match role {
            Role::Producer => PRODUCER_ID_BASE + index as u32,
            Role::Publisher => PUBLISHER_ID_BASE + index as u32,
            _ => index as u32,
        };
        // Which adversarial parts this incarnation plays, each one time in two (from the seed,
        // without touching the kill schedule's generator).
        let mut dice = Rng::new(self.seed.rotate_left(29) ^ (m as u64) << 40 ^ u64::from(inc) ^ 0xAD5E);
        let emfile = dice.range(0, 1) == 0;
        let pidns = dice.range(0, 1) == 0 && self.pidns;
        let mut spawn = Spawn::new(&role.child_role())
            .in_pid_namespace(pidns)
            .env(DIR_ENV, &self.dir)
            .env(ID_ENV, id.to_string())
            .env(INC_ENV, inc.to_string())
            .env(LOG_ENV, &log)
            .env(LIMIT_ENV, self.limit.as_secs().to_string())
            .env(SEED_ENV, Rng::new(self.seed ^ (m as u64) << 32 ^ u64::from(inc)).next_u64().to_string());
        if emfile {
            spawn = spawn.env(EMFILE_ENV, "1");
        }
        let child = spawn
            .command()
            .stdout(Stdio::from(out_file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {stem}: {e}"));
        self.runs.push(Run { role, index, inc, log, out, killed: false, emfile, pidns });
        let mb = &mut self.members[m];
        mb.child = Some(child);
        mb.current = self.runs.len() - 1;
        mb.incarnations += 1;
    }

    fn describe(&self, m: usize) -> String {
        let run = &self.runs[self.members[m].current];
        format!("{} {} incarnation {}", run.role.name(), run.index, run.inc)
    }

    /// What incarnation `run` printed (its last lines).
    fn output(&self, run: usize) -> String {
        let text = std::fs::read_to_string(&self.runs[run].out).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    fn died_by_itself(&self, m: usize, st: ExitStatus) -> String {
        format!(
            "{} exited by itself with {st}; its output:\n{}",
            self.describe(m),
            self.output(self.members[m].current)
        )
    }

    /// SIGKILLs member `m` and reaps it. `Err` if it had already ended by itself.
    pub fn kill(&mut self, m: usize) -> Result<(), String> {
        let cur = self.members[m].current;
        let mut child = self.members[m].child.take().expect("a running child");
        if self.runs[cur].pidns {
            return self.kill_namespaced(m, child);
        }
        let _ = child.kill();
        let st = child.wait().expect("reap a child");
        if st.signal() != Some(libc::SIGKILL) {
            return Err(self.died_by_itself(m, st));
        }
        self.runs[cur].killed = true;
        Ok(())
    }

    /// Kills member `m`, which runs in a pid namespace of its own: SIGKILLs the process that
    /// plays the role (pid 1 of the namespace, the child of `unshare`; its pid here is found in
    /// `/proc`), not `unshare`, and reaps `unshare`, which reaps that process first: so when
    /// this returns the role's process is gone (its locks released, as after a direct kill),
    /// and no orphan can be left. Killing `unshare` instead would rely on `--kill-child`, whose
    /// SIGKILL arrives after `unshare` is reaped (the old incarnation could still run while the
    /// new one starts: the durable subscriber's name would be taken), and which `unshare` sets
    /// only after it forked (a kill in between would leave an orphan).
    ///
    /// `unshare` reports its child's exit code, and when that child was killed by a signal it
    /// dies of the same signal; for SIGKILL util-linux 2.38 fails to and exits 1 instead, after
    /// printing `unshare: sigprocmask unblock failed`. Both count as the kill; any other status
    /// is the child's own (our children exit 0, 3 or 101, or die of another signal).
    fn kill_namespaced(&mut self, m: usize, mut child: Child) -> Result<(), String> {
        let cur = self.members[m].current;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                // It ended before the kill was sent: whatever its status, by itself.
                return Err(self.died_by_itself(m, st));
            }
            match children_of(child.id())[..] {
                [g] => {
                    // SAFETY: kill takes plain integers.
                    unsafe { libc::kill(g as libc::pid_t, libc::SIGKILL) };
                    break;
                }
                [] if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                ref found => {
                    let _ = child.kill();
                    let st = child.wait().expect("reap unshare");
                    return Err(format!(
                        "{}: unshare (pid {}) had the children {found:?} (one expected) after 10 s, ended with {st}; \
                         its output:\n{}",
                        self.describe(m),
                        child.id(),
                        self.output(cur)
                    ));
                }
            }
        }
        let st = child.wait().expect("reap unshare");
        let out = std::fs::read_to_string(&self.runs[cur].out).unwrap_or_default();
        // (unshare's message may follow, on the same line, the child's unfinished "test ... ".)
        let unshare_said = out.lines().rev().find(|l| !l.trim().is_empty()).is_some_and(|l| l.contains("unshare: "));
        if st.signal() != Some(libc::SIGKILL) && !(st.code() == Some(1) && unshare_said) {
            return Err(self.died_by_itself(m, st));
        }
        self.runs[cur].killed = true;
        Ok(())
    }

    /// `Err` if any child ended (none may end before it is told to).
    pub fn check_running(&mut self) -> Result<(), String> {
        for m in 0..self.members.len() {
            let st = self.members[m].child.as_mut().and_then(|c| c.try_wait().expect("try_wait"));
            if let Some(st) = st {
                self.members[m].child = None;
                return Err(self.died_by_itself(m, st));
            }
        }
        Ok(())
    }

    /// Waits until the log of member `m` holds a record (a subscriber's Start record: it joined).
    pub fn wait_joined(&mut self, m: usize, deadline: Instant) -> Result<(), String> {
        let log = self.runs[self.members[m].current].log.clone();
        while std::fs::metadata(&log).map_or(true, |md| md.len() == 0) {
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(format!("{} did not join the topic in time", self.describe(m)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Waits until every member for which `which` holds has exited successfully.
    pub fn wait_exit(&mut self, which: impl Fn(Role) -> bool, deadline: Instant) -> Result<(), String> {
        loop {
            let mut running = Vec::new();
            for m in 0..self.members.len() {
                if !which(self.members[m].role) {
                    continue;
                }
                let Some(child) = self.members[m].child.as_mut() else { continue };
                match child.try_wait().expect("try_wait") {
                    Some(st) => {
                        self.members[m].child = None;
                        if !st.success() {
                            return Err(format!(
                                "{} failed with {st}; its output:\n{}",
                                self.describe(m),
                                self.output(self.members[m].current)
                            ));
                        }
                    }
                    None => running.push(m),
                }
            }
            if running.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut msg = String::from("hang: still running at the deadline:");
                for m in running {
                    msg += &format!("\n{}; its output:\n{}", self.describe(m), self.output(self.members[m].current));
                }
                return Err(msg);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kills(&self, role: Role) -> usize {
        kills(&self.runs, role)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                // A child under unshare: its process first (unshare's death would kill it too,
                // through --kill-child, but later).
                if self.runs[m.current].pidns {
                    for g in children_of(c.id()) {
                        // SAFETY: kill takes plain integers.
                        unsafe { libc::kill(g as libc::pid_t, libc::SIGKILL) };
                    }
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
