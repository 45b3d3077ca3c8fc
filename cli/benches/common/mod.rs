//! The transports the `queue` bench drives, each with a peer that echoes or drains:
//!
//! - [`ShmqPeer`]: shmq queues to a child process (this bench binary re-executed with
//!   [`CHILD_ENV`] set; [`child_main`] plays the child's part).
//! - [`ThreadPeer`]: two crossbeam `ArrayQueue`s to a thread of this process.
//!
//! Protocol, the same for both: the bench sends a [`Command`] (how many messages, first sequence
//! number, whether to check every byte) on a control channel; the peer answers [`READY`] and then
//! spins on the data queue, echoing each message (round trips) or draining and checking it
//! (throughput), and answers [`DONE_OK`] or [`DONE_BAD`] when the batch is over. Control traffic
//! is outside the timed region except the final answer of a drain, which says the last message
//! arrived. Every message carries its sequence number in its first 8 bytes; the rest of the
//! payload is a pattern checked in full by [`ShmqPeer::verify`] / [`ThreadPeer::verify`] before
//! anything is timed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use shmq::{Consumer, Producer, Queue, QueueKind, QueueOptions, WaitStrategy};

/// Set on a child process: its role (`echo` or `drain`). Args: kind, size, name prefix, parent pid.
pub const CHILD_ENV: &str = "SHMQ_BENCH_CHILD";
/// Slots of every data queue (shmq and `ArrayQueue` alike).
pub const CAPACITY: u64 = 1024;
/// Messages of a verification batch: enough to wrap every ring twice.
const VERIFY: u64 = 2 * CAPACITY + 3;

/// `[count, first sequence number, flags]`; a count of `u64::MAX` tells the peer to exit.
type Command = [u64; 3];
/// Flag: check every byte of every message, not just the sequence number.
const CHECK_ALL: u64 = 1;
const EXIT: u64 = u64::MAX;

/// Answers: `[code, detail]`.
type Answer = [u64; 2];
/// The peer is spinning on the data queue.
pub const READY: u64 = 1;
/// The batch is over and every message was right.
pub const DONE_OK: u64 = 2;
/// The batch is over and message `detail` was wrong.
pub const DONE_BAD: u64 = 3;

/// What the peer does with each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Send it back on the reply queue (round trips).
    Echo,
    /// Check its sequence number and drop it (throughput).
    Drain,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Drain => "drain",
        }
    }
}

/// Writes `seq` into the first 8 bytes (every message is at least 8 bytes).
#[inline(always)]
pub fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number in the first 8 bytes.
#[inline(always)]
pub fn seq_of(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().expect("messages are at least 8 bytes"))
}

/// Stamps `seq` and fills the rest with a pattern that depends on `seq` and the offset.
pub fn fill(buf: &mut [u8], seq: u64) {
    stamp(buf, seq);
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
}

/// Whether `buf` is exactly what [`fill`] wrote for `seq` in a `size`-byte message.
pub fn is_filled(buf: &[u8], size: usize, seq: u64) -> bool {
    let mut want = vec![0; size];
    fill(&mut want, seq);
    buf == want.as_slice()
}

// ---------------------------------------------------------------------------------------------
// Watchdog: a bench that waits for a dead peer would spin forever.

static START: OnceLock<Instant> = OnceLock::new();
static LAST_PROGRESS_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Records that the bench is making progress (call at least every `limit` of the watchdog).
pub fn progress() {
    LAST_PROGRESS_MS.store(now_ms(), Ordering::Relaxed);
}

/// Aborts the process (removing `dir` first) if [`progress`] is not called for `limit`. Children
/// die with it (`PR_SET_PDEATHSIG`).
pub fn start_watchdog(dir: PathBuf, limit: Duration) {
    progress();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let idle = now_ms().saturating_sub(LAST_PROGRESS_MS.load(Ordering::Relaxed));
        if idle > limit.as_millis() as u64 {
            eprintln!("queue bench: no progress for {idle} ms: a peer is stuck or dead; aborting");
            let _ = std::fs::remove_dir_all(&dir);
            std::process::abort();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// shmq across processes.

fn data_options(kind: QueueKind, size: usize) -> QueueOptions {
    QueueOptions::new().kind(kind).capacity(CAPACITY as usize).max_msg_size(size).wait(WaitStrategy::Spin)
}

fn control_options(wait: WaitStrategy) -> QueueOptions {
    QueueOptions::new().spsc().capacity(4).max_msg_size(std::mem::size_of::<Command>()).wait(wait)
}

fn kind_name(kind: QueueKind) -> &'static str {
    match kind {
        QueueKind::Spsc => "spsc",
        QueueKind::Mpmc => "mpmc",
    }
}

/// The bench's side of a shmq transport to a child process.
pub struct ShmqPeer {
    child: Child,
    queues: Vec<Queue>,
    ctl: Producer,
    ack: Consumer,
    tx: Producer,
    rx: Option<Consumer>,
    mode: Mode,
    size: usize,
    seq: u64,
    out: Vec<u8>,
    back: Vec<u8>,
}

impl ShmqPeer {
    /// Creates the queues in `dir`, starts the child and checks the transport with
    /// [`verify`](Self::verify).
    pub fn start(dir: &Path, kind: QueueKind, mode: Mode, size: usize) -> ShmqPeer {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        progress();
        let prefix = format!("{}-{}-{size}-{}", mode.name(), kind_name(kind), NEXT.fetch_add(1, Ordering::Relaxed));
        let create = |o: QueueOptions, what: &str| {
            o.dir(dir).create(&format!("{prefix}-{what}")).unwrap_or_else(|e| panic!("create {prefix}-{what}: {e}"))
        };
        let ctl_q = create(control_options(WaitStrategy::Spin), "ctl");
        let ack_q = create(control_options(WaitStrategy::Spin), "ack");
        let data_q = create(data_options(kind, size), "data");
        let reply_q = (mode == Mode::Echo).then(|| create(data_options(kind, size), "reply"));
        let child = Process::new(std::env::current_exe().expect("current_exe"))
            .env(CHILD_ENV, mode.name())
            .env("SHMQ_DIR", dir)
            .args([kind_name(kind), &size.to_string(), &prefix, &std::process::id().to_string()])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the bench child");
        let mut peer = ShmqPeer {
            child,
            ctl: ctl_q.producer().expect("ctl producer"),
            ack: ack_q.consumer().expect("ack consumer"),
            tx: data_q.producer().expect("data producer"),
            rx: reply_q.as_ref().map(|q| q.consumer().expect("reply consumer")),
            queues: [Some(ctl_q), Some(ack_q), Some(data_q), reply_q].into_iter().flatten().collect(),
            mode,
            size,
            seq: 0,
            out: vec![0; size],
            back: vec![0; size],
        };
        peer.verify();
        peer
    }

    fn command(&mut self, n: u64, flags: u64) {
        progress();
        self.ctl.send_value::<Command>(&[n, self.seq, flags]).expect("send a command");
        let a: Answer = self.ack.recv_value().expect("receive READY");
        assert_eq!(a[0], READY, "child answered {a:?} instead of READY");
    }

    fn finish(&mut self) {
        let a: Answer = self.ack.recv_value().expect("receive DONE");
        assert!(a[0] == DONE_OK, "child answered {a:?}: message {} was wrong", a[1]);
        progress();
    }

    /// Sends messages with every byte patterned and checks every byte that comes back (echo) or
    /// lets the child check them (drain).
    pub fn verify(&mut self) {
        self.command(VERIFY, CHECK_ALL);
        let size = self.size;
        for _ in 0..VERIFY {
            fill(&mut self.out, self.seq);
            self.tx.send(&self.out).expect("send");
            if let Some(rx) = &mut self.rx {
                let m = rx.recv_into(&mut self.back).expect("receive");
                assert!(m.len == size && is_filled(&self.back, size, self.seq), "echo of {} is wrong", self.seq);
            }
            self.seq += 1;
        }
        self.finish();
    }

    /// `n` round trips (echo mode); the total time.
    pub fn round_trips(&mut self, n: u64) -> Duration {
        self.command(n, 0);
        let Self { tx, rx, out, back, seq, size, .. } = self;
        let rx = rx.as_mut().expect("round trips need an echo peer");
        let t = Instant::now();
        for _ in 0..n {
            stamp(out, *seq);
            tx.send(out).expect("send");
            let m = rx.recv_into(back).expect("receive");
            assert!(m.len == *size && seq_of(back) == *seq, "echo of {seq} is wrong");
            *seq += 1;
        }
        let elapsed = t.elapsed();
        self.finish();
        elapsed
    }

    /// `n` round trips (echo mode), each timed: nanoseconds per round trip.
    pub fn round_trip_samples(&mut self, n: u64) -> Vec<u64> {
        self.command(n, 0);
        let Self { tx, rx, out, back, seq, .. } = self;
        let rx = rx.as_mut().expect("round trips need an echo peer");
        let mut samples = Vec::with_capacity(n as usize);
        fill(out, *seq);
        for _ in 0..n {
            stamp(out, *seq);
            let t = Instant::now();
            tx.send(out).expect("send");
            rx.recv_into(back).expect("receive");
            samples.push(t.elapsed().as_nanos() as u64);
            assert!(back == out, "echo of {seq} is wrong");
            *seq += 1;
        }
        self.finish();
        samples
    }

    /// Streams `n` messages to a draining child; the time until the child has read the last.
    pub fn stream(&mut self, n: u64) -> Duration {
        assert_eq!(self.mode, Mode::Drain, "streams need a draining peer");
        self.command(n, 0);
        let t = Instant::now();
        for _ in 0..n {
            stamp(&mut self.out, self.seq);
            self.tx.send(&self.out).expect("send");
            self.seq += 1;
        }
        self.finish();
        t.elapsed()
    }
}

impl Drop for ShmqPeer {
    fn drop(&mut self) {
        let exited = !std::thread::panicking() && self.ctl.send_value::<Command>(&[EXIT, 0, 0]).is_ok();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if exited && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        for q in &self.queues {
            let _ = q.unlink();
        }
        if !std::thread::panicking() && !status.is_some_and(|s| s.success()) {
            panic!("bench child did not exit cleanly: {status:?}");
        }
    }
}

/// The child's side: `role` is the value of [`CHILD_ENV`]. Returns the exit code.
pub fn child_main(role: &str) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // SAFETY: PR_SET_PDEATHSIG only sets a flag of this process: die with the bench.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: getppid has no preconditions.
    if args.get(3).and_then(|p| p.parse::<i32>().ok()) != Some(unsafe { libc::getppid() }) {
        eprintln!("bench child: the bench process is gone (or bad args {args:?})");
        return 3;
    }
    match run_child(role, &args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench child ({role} {args:?}): {e}");
            2
        }
    }
}

fn run_child(role: &str, args: &[String]) -> shmq::Result<()> {
    let kind = if args[0] == "spsc" { QueueKind::Spsc } else { QueueKind::Mpmc };
    let size: usize = args[1].parse().expect("size");
    let prefix = &args[2];
    let echo = match role {
        "echo" => true,
        "drain" => false,
        _ => panic!("unknown role {role}"),
    };
    // The dir comes from SHMQ_DIR. Between batches the child sleeps on the control queue.
    let mut ctl = control_options(WaitStrategy::Block).open(&format!("{prefix}-ctl"))?.consumer()?;
    let mut ack = control_options(WaitStrategy::Spin).open(&format!("{prefix}-ack"))?.producer()?;
    let mut rx = data_options(kind, size).open(&format!("{prefix}-data"))?.consumer()?;
    let mut tx = match echo {
        true => Some(data_options(kind, size).open(&format!("{prefix}-reply"))?.producer()?),
        false => None,
    };
    let mut buf = vec![0u8; size];
    loop {
        let [n, first, flags]: Command = ctl.recv_value()?;
        if n == EXIT {
            return Ok(());
        }
        ack.send_value::<Answer>(&[READY, 0])?;
        let mut bad = None;
        for seq in first..first + n {
            let m = rx.recv_into(&mut buf)?;
            match &mut tx {
                Some(tx) => tx.send(&buf[..m.len])?,
                None => {
                    let ok = m.len == size
                        && seq_of(&buf) == seq
                        && (flags & CHECK_ALL == 0 || is_filled(&buf[..m.len], size, seq));
                    if !ok && bad.is_none() {
                        bad = Some(seq);
                    }
                }
            }
        }
        ack.send_value::<Answer>(&match bad {
            None => [DONE_OK, 0],
            Some(seq) => [DONE_BAD, seq],
        })?;
    }
}

// ---------------------------------------------------------------------------------------------
// crossbeam's ArrayQueue between two threads of this process.

fn push_spin<T>(q: &ArrayQueue<T>, mut v: T) {
    while let Err(back) = q.push(v) {
        v = back;
        std::hint::spin_loop();
    }
}

fn pop_spin<T>(q: &ArrayQueue<T>) -> T {
    loop {
        if let Some(v) = q.pop() {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// The bench's side of two `ArrayQueue<[u8; N]>`s (data and reply) to a peer thread.
pub struct ThreadPeer<const N: usize> {
    data: Arc<ArrayQueue<[u8; N]>>,
    reply: Arc<ArrayQueue<[u8; N]>>,
    cmd: Option<mpsc::Sender<Command>>,
    ready: mpsc::Receiver<()>,
    /// Batches finished by the peer.
    done: Arc<AtomicU64>,
    /// Set by the peer when a message was wrong.
    bad: Arc<AtomicBool>,
    batches: u64,
    thread: Option<JoinHandle<()>>,
    mode: Mode,
    seq: u64,
}

impl<const N: usize> ThreadPeer<N> {
    /// Starts the peer thread and checks the transport with [`verify`](Self::verify).
    pub fn start(mode: Mode) -> ThreadPeer<N> {
        progress();
        let data = Arc::new(ArrayQueue::new(CAPACITY as usize));
        let reply = Arc::new(ArrayQueue::new(CAPACITY as usize));
        let (cmd, cmd_rx) = mpsc::channel::<Command>();
        let (ready_tx, ready) = mpsc::channel();
        let done = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicBool::new(false));
        let thread = {
            let (data, reply, done, bad) = (data.clone(), reply.clone(), done.clone(), bad.clone());
            std::thread::spawn(move || {
                for [n, first, flags] in cmd_rx {
                    ready_tx.send(()).expect("bench gone");
                    for seq in first..first + n {
                        let m: [u8; N] = pop_spin(&data);
                        match mode {
                            Mode::Echo => push_spin(&reply, m),
                            Mode::Drain => {
                                if seq_of(&m) != seq || (flags & CHECK_ALL != 0 && !is_filled(&m, N, seq)) {
                                    bad.store(true, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    // Release: pairs with the Acquire load in `finish`; `bad` is visible with it.
                    done.fetch_add(1, Ordering::Release);
                }
            })
        };
        let mut peer = ThreadPeer {
            data,
            reply,
            cmd: Some(cmd),
            ready,
            done,
            bad,
            batches: 0,
            thread: Some(thread),
            mode,
            seq: 0,
        };
        peer.verify();
        peer
    }

    fn command(&mut self, n: u64, flags: u64) {
        progress();
        self.cmd.as_ref().expect("peer running").send([n, self.seq, flags]).expect("peer thread died");
        self.ready.recv().expect("peer thread died");
        self.batches += 1;
    }

    fn finish(&mut self) {
        while self.done.load(Ordering::Acquire) != self.batches {
            std::hint::spin_loop();
        }
        assert!(!self.bad.load(Ordering::Relaxed), "the ArrayQueue peer received a wrong message");
        progress();
    }

    /// As [`ShmqPeer::verify`].
    pub fn verify(&mut self) {
        self.command(VERIFY, CHECK_ALL);
        let mut out = [0u8; N];
        for _ in 0..VERIFY {
            fill(&mut out, self.seq);
            push_spin(&self.data, out);
            if self.mode == Mode::Echo {
                let back = pop_spin(&self.reply);
                assert!(is_filled(&back, N, self.seq), "ArrayQueue echo of {} is wrong", self.seq);
            }
            self.seq += 1;
        }
        self.finish();
    }

    /// `n` round trips (echo mode); the total time.
    pub fn round_trips(&mut self, n: u64) -> Duration {
        self.command(n, 0);
        let mut out = [0u8; N];
        let t = Instant::now();
        for _ in 0..n {
            stamp(&mut out, self.seq);
            push_spin(&self.data, out);
            let back = pop_spin(&self.reply);
            assert!(seq_of(&back) == self.seq, "ArrayQueue echo of {} is wrong", self.seq);
            self.seq += 1;
        }
        let elapsed = t.elapsed();
        self.finish();
        elapsed
    }

    /// `n` round trips (echo mode), each timed: nanoseconds per round trip.
    pub fn round_trip_samples(&mut self, n: u64) -> Vec<u64> {
        self.command(n, 0);
        let mut out = [0u8; N];
        fill(&mut out, self.seq);
        let mut samples = Vec::with_capacity(n as usize);
        for _ in 0..n {
            stamp(&mut out, self.seq);
            let t = Instant::now();
            push_spin(&self.data, out);
            let back = pop_spin(&self.reply);
            samples.push(t.elapsed().as_nanos() as u64);
            assert!(back == out, "ArrayQueue echo of {} is wrong", self.seq);
            self.seq += 1;
        }
        self.finish();
        samples
    }

    /// Streams `n` messages to a draining thread; the time until it has read the last.
    pub fn stream(&mut self, n: u64) -> Duration {
        assert_eq!(self.mode, Mode::Drain, "streams need a draining peer");
        self.command(n, 0);
        let mut out = [0u8; N];
        let t = Instant::now();
        for _ in 0..n {
            stamp(&mut out, self.seq);
            push_spin(&self.data, out);
            self.seq += 1;
        }
        self.finish();
        t.elapsed()
    }
}

impl<const N: usize> Drop for ThreadPeer<N> {
    fn drop(&mut self) {
        self.cmd = None; // ends the peer's command loop
        if let Some(t) = self.thread.take() {
            if !std::thread::panicking() {
                t.join().expect("ArrayQueue peer thread panicked");
            }
        }
    }
}
