//! What both libraries share: the two ends of a transport, the payload stamp, the clock, and the
//! control channel between the parent (process A) and its re-executed child (process B).
//!
//! Control traffic goes over the child's stdin/stdout pipes and is never inside a timed region
//! except the final answer of a throughput batch, which carries the child's own clock reading of
//! the last message (so the pipe's latency is not counted either).
//!
//! ```text
//!  parent (A)                                child (B)
//!  spawn `<exe> --child LIB SIZE PREFIX`  -> opens the services, prints `ready`
//!  `echo N`                              -> prints `go`, then busy-polls "ping"
//!  N x (send ping, spin on pong)            re-publishes each ping on "pong", then prints `ok`
//!  `drain N`                             -> prints `go`, then busy-polls "ping"
//!  N x send ping                            checks each ping, then prints `ok T_LAST_NS`
//!  `exit`                                    exits 0
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Process A's end: publishes on "ping", busy-polls "pong".
pub trait ParentEnd {
    /// Called once the child answered `ready` (its ports exist).
    fn connected(&mut self) {}
    /// Publishes a payload stamped with `seq` on "ping", spinning while the ring is full.
    fn send(&mut self, seq: u64);
    /// Busy-polls "pong" for the next message and returns its (checked) sequence number.
    fn recv(&mut self) -> u64;
    /// Publishes `n` messages stamped `first`, `first + 1`, ... (one-way throughput).
    fn send_all(&mut self, first: u64, n: u64) {
        for seq in first..first + n {
            self.send(seq);
        }
    }
}

/// Process B's end: busy-polls "ping", publishes on "pong".
pub trait ChildEnd {
    /// Busy-polls "ping", re-publishes the payload on "pong"; returns its sequence number.
    fn echo(&mut self) -> u64;
    /// Busy-polls "ping" and reads the payload; returns its sequence number.
    fn drain(&mut self) -> u64;
    /// Receives `n` messages, checking they carry `first`, `first + 1`, ... in order.
    fn drain_all(&mut self, first: u64, n: u64) {
        for want in first..first + n {
            check_seq(self.drain(), want);
        }
    }
}

/// Writes `seq` into the first and the last 8 bytes of the payload (the same bytes if it is 8
/// long), so a reader that sees both equal saw the whole write.
#[inline(always)]
pub fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number of a stamped payload.
///
/// # Panics
/// If the payload is shorter than 8 bytes or its first and last stamps differ (a torn or
/// foreign message): the benchmark is wrong and must stop.
#[inline(always)]
pub fn seq_of(buf: &[u8]) -> u64 {
    let n = buf.len();
    let first = u64::from_le_bytes(buf[..8].try_into().expect("payloads are at least 8 bytes"));
    let last = u64::from_le_bytes(buf[n - 8..].try_into().expect("payloads are at least 8 bytes"));
    if first != last {
        bad_payload(first, last);
    }
    first
}

#[cold]
#[inline(never)]
fn bad_payload(first: u64, last: u64) -> ! {
    panic!("torn payload: first stamp {first}, last stamp {last}")
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for both processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling thread to `cpu` (best effort: a failure is reported, not fatal).
pub fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    assert!(cpu < libc::CPU_SETSIZE as usize, "cpu {cpu} is out of range");
    // SAFETY: `cpu` < CPU_SETSIZE (asserted), so CPU_SET writes inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        eprintln!("warning: could not pin to cpu {cpu}: {}", std::io::Error::last_os_error());
    }
}

/// The parent's handle on a child: its pipes, and a kill on drop.
pub struct Peer {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    what: String,
}

impl Peer {
    /// Re-executes this binary as the child end of `lib` with `size`-byte payloads on the
    /// services named after `prefix`, and waits for its `ready`.
    pub fn spawn(lib: &str, size: usize, prefix: &str, pin: Option<usize>) -> Peer {
        let exe = std::env::current_exe().expect("the path of this executable");
        let mut cmd = Command::new(exe);
        cmd.args(["--child", lib, &size.to_string(), prefix]);
        if let Some(cpu) = pin {
            cmd.args(["--pin-child", &cpu.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the child process");
        let to = child.stdin.take().expect("child stdin is piped");
        let from = BufReader::new(child.stdout.take().expect("child stdout is piped"));
        let mut peer = Peer { child, to, from, what: format!("{lib} child ({size} B)") };
        let line = peer.read_line();
        assert_eq!(line, "ready", "{}: expected `ready`, got {line:?}", peer.what);
        peer
    }

    /// Sends one command line.
    pub fn command(&mut self, line: &str) {
        writeln!(self.to, "{line}").and_then(|_| self.to.flush()).unwrap_or_else(|e| {
            panic!("{}: could not send {line:?}: {e} (did it die? see its message above)", self.what)
        });
    }

    /// Sends `echo N` or `drain N` and waits for the child's `go`: from then on it busy-polls,
    /// so the first timed message does not wait for it to wake up.
    pub fn start(&mut self, line: &str) {
        self.command(line);
        let answer = self.read_line();
        assert_eq!(answer, "go", "{}: expected `go` after {line:?}, got {answer:?}", self.what);
    }

    /// Reads one answer line; `ok ...` is expected, anything else stops the benchmark.
    pub fn read_ok(&mut self) -> Vec<u64> {
        let line = self.read_line();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("ok"), "{}: expected `ok`, got {line:?}", self.what);
        words.map(|w| w.parse().expect("numbers after `ok`")).collect()
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(0) => panic!("{} exited early (its message, if any, is above)", self.what),
            Ok(_) => line.trim().to_string(),
            Err(e) => panic!("{}: reading its answer failed: {e}", self.what),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.to, "exit").and_then(|_| self.to.flush());
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's main loop: serves commands from stdin until `exit` or end of input.
pub fn serve(end: &mut impl ChildEnd) {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|_| out.flush()).expect("writing to the parent");
    let mut next: u64 = 0; // the sequence number the next ping must carry
    for line in stdin.lock().lines() {
        let line = line.expect("reading a command from the parent");
        let mut words = line.split_whitespace();
        let (cmd, n) = (words.next().unwrap_or(""), words.next().and_then(|w| w.parse::<u64>().ok()));
        if n.is_some() {
            writeln!(out, "go").and_then(|_| out.flush()).expect("writing to the parent");
        }
        match (cmd, n) {
            ("echo", Some(n)) => {
                for _ in 0..n {
                    let seq = end.echo();
                    check_seq(seq, next);
                    next += 1;
                }
                writeln!(out, "ok")
            }
            ("drain", Some(n)) => {
                end.drain_all(next, n);
                next += n;
                let t_last = mono_ns();
                writeln!(out, "ok {t_last}")
            }
            ("exit", _) => return,
            _ => panic!("child: unknown command {line:?}"),
        }
        .and_then(|_| out.flush())
        .expect("writing to the parent");
    }
}

/// Stops the benchmark if message `got` arrived where `want` was due.
#[inline(always)]
pub fn check_seq(got: u64, want: u64) {
    if got != want {
        wrong_seq(got, want);
    }
}

#[cold]
#[inline(never)]
fn wrong_seq(got: u64, want: u64) -> ! {
    panic!("child: received sequence {got}, expected {want} (a message was lost, duplicated or reordered)")
}

/// Exits the child if its parent goes away (re-parenting changes `getppid`), so a crashed
/// parent never leaves a process spinning.
pub fn exit_with_parent() {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            eprintln!("child: parent {parent} went away, exiting");
            std::process::exit(2);
        }
    });
}

/// Aborts the whole run after `limit`, so a lost message never hangs it forever.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("watchdog: the run took more than {limit:?}; stopping (use --timeout to allow more)");
        std::process::exit(3);
    });
}
