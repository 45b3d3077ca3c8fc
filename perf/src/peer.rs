//! The second process: this binary, re-executed as `shmq-perf peer ...` for one repetition of
//! one measurement.
//!
//! Protocol on its stdin and stdout: the peer attaches (maps the memfd, opens the segments),
//! prints `ready`, waits for a `go` line, runs its side, prints `done` and exits 0. On any error
//! it prints the reason on stderr and exits non-zero. It dies with the parent
//! (`PR_SET_PDEATHSIG`), so a killed run never leaves a spinning process behind.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::Res;

/// What the parent tells a peer (the hidden `peer` subcommand).
#[derive(Clone, Debug, clap::Args)]
pub struct PeerArgs {
    /// The measurement (see `Unit::name`).
    #[arg(long)]
    pub unit: String,
    /// Messages or round trips in all, warm-up included.
    #[arg(long)]
    pub n: u64,
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// The parent's pid (the peer exits if it is not its parent any more).
    #[arg(long)]
    pub parent: u32,
    /// The inherited memfd of the baselines' shared memory.
    #[arg(long)]
    pub fd: Option<i32>,
    /// Segment names: the one the parent sends on, then the one it receives from.
    #[arg(long)]
    pub name: Vec<String>,
    /// A consumer group row's member: its index (its slot in the shared tally).
    #[arg(long)]
    pub member: Option<usize>,
}

impl PeerArgs {
    fn argv(&self) -> Vec<String> {
        let mut v = vec!["peer".into(), "--unit".into(), self.unit.clone(), "--n".into(), self.n.to_string()];
        v.extend(["--parent".into(), self.parent.to_string()]);
        if let Some(c) = self.cpu {
            v.extend(["--cpu".into(), c.to_string()]);
        }
        if let Some(fd) = self.fd {
            v.extend(["--fd".into(), fd.to_string()]);
        }
        for n in &self.name {
            v.extend(["--name".into(), n.clone()]);
        }
        if let Some(j) = self.member {
            v.extend(["--member".into(), j.to_string()]);
        }
        v
    }
}

/// The parent's handle on a running peer. Dropping it kills the peer if it still runs.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
    unit: String,
}

impl Peer {
    /// Starts the peer (it inherits any fd without `CLOEXEC`, such as a baseline's memfd).
    pub fn spawn(args: &PeerArgs) -> Res<Peer> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let mut child = Command::new(&exe)
            .args(args.argv())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the peer {}: {e}", exe.display()))?;
        let out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Peer { stdin: child.stdin.take(), child, out, unit: args.unit.clone() })
    }

    /// The peer's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect(&mut self, word: &str) -> Res<()> {
        let mut line = String::new();
        let n = self.out.read_line(&mut line).map_err(|e| format!("peer {}: {e}", self.unit))?;
        if n == 0 {
            let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            return Err(format!("the peer of {} stopped before {word:?} ({status})", self.unit));
        }
        if line.trim_end() != word {
            return Err(format!("the peer of {} said {line:?}, expected {word:?}", self.unit));
        }
        Ok(())
    }

    /// Waits until the peer has attached.
    pub fn ready(&mut self) -> Res<()> {
        self.expect("ready")
    }

    /// Tells the peer to start.
    pub fn go(&mut self) -> Res<()> {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(b"go\n").and_then(|()| stdin.flush()).map_err(|e| format!("peer {}: {e}", self.unit))
    }

    /// Waits for the peer's `done` and its successful exit.
    pub fn finish(mut self) -> Res<()> {
        self.expect("done")?;
        self.stdin.take();
        let status = self.child.wait().map_err(|e| format!("peer {}: {e}", self.unit))?;
        if !status.success() {
            return Err(format!("the peer of {} failed ({status})", self.unit));
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The peer's side of the protocol.
pub struct Handshake(());

impl Handshake {
    /// Prints `ready` and waits for `go`.
    pub fn ready(&mut self) -> Res<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(b"ready\n").and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("stdin: {e}"))?;
        if line.trim_end() != "go" {
            return Err(format!("the parent said {line:?}, expected \"go\""));
        }
        Ok(())
    }
}

/// Runs the peer: dies with the parent, pins itself, runs `side`, reports. Returns the exit
/// code.
pub fn main(args: &PeerArgs, side: impl FnOnce(&PeerArgs, &mut Handshake) -> Res<()>) -> i32 {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != args.parent {
        return 2; // the parent is already gone
    }
    if let Some(cpu) = args.cpu {
        if let Err(e) = shmq_cli::baseline::pin_thread_forever(cpu) {
            eprintln!("shmq-perf peer ({}): {e}", args.unit);
            return 3;
        }
    }
    match side(args, &mut Handshake(())) {
        Ok(()) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(b"done\n").and_then(|()| out.flush()).is_err() {
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("shmq-perf peer ({}): {e}", args.unit);
            1
        }
    }
}
