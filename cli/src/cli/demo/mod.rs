//! `shmq demo`: a self-contained check and benchmark between real processes.
//!
//! 1. **Delivery and throughput.** A queue `demo-<pid>` is created; a consumer and a producer
//!    process are started by re-executing this binary (`shmq demo-worker`, hidden). Once both
//!    have attached, the queue's name is removed (the mappings stay), so an interrupted demo
//!    leaves nothing behind; a [`Cleanup`] guard removes names on every other path. The
//!    producer sends `--count` messages; message `i` carries `i` and a checksum (see [`fill`]).
//!    The consumer checks every one (sequence and checksum: exactly once, in order, intact)
//!    and reports the time from its first to its last message.
//! 2. **Latency.** This process and an echo process ping-pong through two SPSC queues; each
//!    round trip goes into an HdrHistogram.
//! 3. **Baseline.** The same two measurements over a Unix domain socket pair
//!    ([`shmq_cli::baseline`]), in the same run, on the same machine.
//! 4. **Topic.** A topic `demo-<pid>-topic` with one publisher process and three subscriber
//!    processes: two reliable ones, which must receive every message exactly once, in order,
//!    intact; and a lossy one slowed down on purpose, which misses messages and must be told
//!    exactly how many (`Lagged(n)`: the next message it receives is the one `n` after the
//!    last). Up to [`TOPIC_MAX`] of the `--count` messages, so that the demo stays short.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmq::{Error, QueueKind, QueueOptions, TopicOptions};

mod worker;

pub use worker::worker;

use super::door::count;
use super::units::{nanos, si};
use super::{CliError, CliResult, Ctx, Out, WaitArg};

/// Most round trips of the latency test (unless --rounds says otherwise).
const MAX_ROUNDS: u64 = 100_000;
/// A worker that waits this long for its peer gives up: the peer is stuck or gone.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages of the topic test (four processes share the machine; keep it short).
const TOPIC_MAX: u64 = 1_000_000;
/// Slots of the demo topic: small enough that the slowed-down lossy subscriber is lapped.
const TOPIC_CAPACITY: u64 = 1024;
/// The lossy subscriber pauses this long after every [`LOSSY_PAUSE_EVERY`] messages.
const LOSSY_PAUSE: Duration = Duration::from_micros(200);
/// See [`LOSSY_PAUSE`].
const LOSSY_PAUSE_EVERY: u64 = 32;

/// Arguments of `shmq demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Messages in the throughput test; the latency test makes min(N, 100000) round trips.
    #[arg(long, value_name = "N", default_value = "1000000", value_parser = parse_count)]
    count: u64,
    /// Message size in bytes: sequence number, filler, checksum.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    #[arg(value_parser = clap::value_parser!(u32).range(16..=1 << 20))]
    size: u32,
    /// Round trips of the latency test [default: min(count, 100000)].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    rounds: Option<u64>,
    /// How both sides wait for each other.
    #[arg(long, value_enum, default_value_t = WaitArg::Spin)]
    wait: WaitArg,
    /// Slots of the throughput queue (1 to 2^30, rounded up to a power of two).
    #[arg(long, value_name = "SLOTS", default_value_t = 4096, value_parser = super::door::parse_capacity)]
    capacity: u64,
    /// Use an MPMC queue for the throughput test (default: SPSC).
    #[arg(long)]
    mpmc: bool,
    /// Send and receive in batches of up to this many messages (try_send_batch /
    /// try_recv_batch); 1 sends and receives one message per call.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    batch: u32,
}

/// What a demo worker process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Sends `count` numbered messages once told "go" on stdin.
    Producer,
    /// Receives and checks `count` messages; prints `done <count> <ns>`.
    Consumer,
    /// Sends every message of `queue` back on `reply`, `count` times.
    Echo,
    /// Publishes `count` numbered messages to topic `queue` once told "go" on stdin.
    Publisher,
    /// Subscribes to topic `queue` and checks messages until it has received or been told it
    /// missed `count`; prints `done <received> <missed> <ns>`.
    Subscriber,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Echo => "echo",
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
        }
    }
}

/// Arguments of the hidden `shmq demo-worker` (one process of the demo). It prints `ready`
/// once attached, then `done ...` when finished; errors go to stderr, with a non-zero exit.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    role: Role,
    /// The queue to send to (producer) or receive from (consumer, echo).
    #[arg(long)]
    queue: String,
    /// Echo: the queue to answer on.
    #[arg(long)]
    reply: Option<String>,
    #[arg(long)]
    count: u64,
    #[arg(long)]
    size: usize,
    #[arg(long, value_enum)]
    wait: WaitArg,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Subscriber: subscribe in lossy mode.
    #[arg(long)]
    lossy: bool,
    /// Subscriber: pause briefly after every N messages (to be lapped on purpose); 0 never.
    #[arg(long, default_value_t = 0)]
    pause_every: u64,
}

/// `1000000`, `1_000_000` or `1,000,000`; at least 1.
fn parse_count(s: &str) -> Result<u64, String> {
    let digits: String = s.chars().filter(|&c| c != '_' && c != ',').collect();
    match digits.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Payload

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// Message `seq` of `buf.len()` (>= 16) bytes: `seq` (u64 LE), filler derived from `seq`, then
/// the [`checksum`] of everything before it (u64 LE).
fn fill(buf: &mut [u8], seq: u64) {
    let body = buf.len() - 8;
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let mut w = seq.wrapping_mul(MIX);
    for chunk in buf[8..body].chunks_mut(8) {
        w = w.rotate_left(7) ^ seq;
        chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
    }
    let sum = checksum(&buf[..body]);
    buf[body..].copy_from_slice(&sum.to_le_bytes());
}

/// A cheap multiplicative hash of `data`, eight bytes at a time.
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = data.len() as u64;
    for chunk in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(MIX).rotate_left(29);
    }
    h
}

/// Checks that `msg` is message `expected` of `size` bytes, intact.
fn check(msg: &[u8], expected: u64, size: usize) -> CliResult {
    if msg.len() != size {
        return Err(CliError::msg(format!("message {expected}: {} bytes, expected {size}", msg.len())));
    }
    let seq = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    if seq != expected {
        let what = if seq < expected { "duplicate or out of order" } else { "messages lost" };
        return Err(CliError::msg(format!("expected message {expected}, received message {seq} ({what})")));
    }
    let body = size - 8;
    let stored = u64::from_le_bytes(msg[body..].try_into().expect("8 bytes"));
    if stored != checksum(&msg[..body]) {
        return Err(CliError::msg(format!("message {expected}: payload checksum mismatch (corrupted in transit)")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent

/// Removes the demo's segment names on every path out of [`demo`] (they are normally unlinked
/// as soon as the workers have attached; removing again is harmless).
struct Cleanup {
    dir: PathBuf,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = shmq::status::remove(&self.dir, n);
        }
    }
}

/// A worker process. Dropping it kills the process if it still runs, and reaps it.
struct Worker {
    role: Role,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stdin: Option<ChildStdin>,
}

impl Worker {
    fn spawn(ctx: &Ctx, role: Role, args: &[String]) -> CliResult<Worker> {
        let exe =
            std::env::current_exe().map_err(|e| CliError::msg(format!("cannot find the shmq executable: {e}")))?;
        let mut child = Command::new(&exe)
            .arg("--dir")
            .arg(&ctx.dir)
            .arg("demo-worker")
            .args(["--role", role.name()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::msg(format!("cannot start the demo {} ({}): {e}", role.name(), exe.display())))?;
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stdin = child.stdin.take();
        Ok(Worker { role, child, stdout, stdin })
    }

    /// The next line the worker prints; an error if it exits first.
    fn line(&mut self, what: &str) -> CliResult<String> {
        let mut s = String::new();
        match self.stdout.read_line(&mut s) {
            Ok(n) if n > 0 => Ok(s.trim_end().to_string()),
            _ => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                Err(CliError::msg(format!("the demo {} process stopped ({status}) before {what}", self.role.name())))
            }
        }
    }

    fn ready(&mut self) -> CliResult {
        match self.line("attaching")?.as_str() {
            "ready" => Ok(()),
            other => Err(CliError::msg(format!("the demo {} process said {other:?}", self.role.name()))),
        }
    }

    fn go(&mut self) -> CliResult {
        let stdin = self.stdin.as_mut().expect("go is sent once");
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| CliError::msg(format!("cannot start the demo {}: {e}", self.role.name())))
    }

    fn failed(&self, status: ExitStatus) -> CliError {
        CliError::msg(format!("the demo {} process failed ({status})", self.role.name()))
    }

    /// Waits for the worker to exit successfully; returns its last line.
    fn finish(mut self) -> CliResult<String> {
        let line = self.line("finishing")?;
        let status = self.child.wait().map_err(|e| CliError::msg(format!("wait for the demo worker: {e}")))?;
        if !status.success() {
            return Err(self.failed(status));
        }
        Ok(line)
    }

    fn poll(&mut self) -> CliResult<Option<ExitStatus>> {
        self.child.try_wait().map_err(|e| CliError::msg(format!("wait for the demo {}: {e}", self.role.name())))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Creates a queue named `stem` (or `stem-2`, ... if taken); records it in `cleanup`.
fn create_unique(opts: &QueueOptions, stem: &str, cleanup: &mut Cleanup) -> CliResult<(shmq::Queue, String)> {
    for i in 1..=16 {
        let name = if i == 1 { stem.to_string() } else { format!("{stem}-{i}") };
        match opts.create(&name) {
            Ok(q) => {
                cleanup.names.push(name.clone());
                return Ok((q, name));
            }
            Err(shmq::OpenError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::msg(format!("cannot find a free demo queue name starting with {stem:?}")))
}

struct Latency {
    p50: u64,
    p99: u64,
    p999: u64,
}

impl Latency {
    fn of(samples: impl IntoIterator<Item = u64>) -> Latency {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        for ns in samples {
            h.saturating_record(ns.max(1));
        }
        Latency { p50: h.value_at_quantile(0.5), p99: h.value_at_quantile(0.99), p999: h.value_at_quantile(0.999) }
    }
}

/// Runs the demo (see the module docs).
pub fn demo(ctx: &Ctx, a: &DemoArgs, out: &mut Out) -> CliResult {
    let started = Instant::now();
    let size = a.size as usize;
    let rounds = a.rounds.unwrap_or(a.count.min(MAX_ROUNDS));
    let warmup = (rounds / 10).min(10_000);
    let kind = if a.mpmc { QueueKind::Mpmc } else { QueueKind::Spsc };
    let mut cleanup = Cleanup { dir: ctx.dir.clone(), names: Vec::new() };
    let opts = QueueOptions::new().dir(&ctx.dir).wait(a.wait.into()).max_msg_size(size);
    let stem = format!("demo-{}", std::process::id());

    writeln!(
        out,
        "shmq demo: {} of {size} bytes through an {} queue of {} slots, {} wait, batch {}",
        count(a.count, "message"),
        if a.mpmc { "MPMC" } else { "SPSC" },
        a.capacity.max(2).next_power_of_two(),
        a.wait.name(),
        a.batch
    )?;
    out.flush()?;

    // 1. Delivery and throughput.
    let (q, name) = create_unique(&opts.clone().kind(kind).capacity(a.capacity as usize), &stem, &mut cleanup)?;
    let common = |count: u64| {
        vec![
            "--count".to_string(),
            count.to_string(),
            "--size".into(),
            size.to_string(),
            "--wait".into(),
            a.wait.name().into(),
            "--batch".into(),
            a.batch.to_string(),
        ]
    };
    let mut args = vec!["--queue".to_string(), name.clone()];
    args.extend(common(a.count));
    let mut consumer = Worker::spawn(ctx, Role::Consumer, &args)?;
    let mut producer = Worker::spawn(ctx, Role::Producer, &args)?;
    consumer.ready()?;
    producer.ready()?;
    q.unlink()?; // both are attached: from here on nothing can be left behind
    producer.go()?;
    let report = loop {
        if let Some(status) = producer.poll()? {
            if !status.success() {
                return Err(producer.failed(status));
            }
        }
        if consumer.poll()?.is_some() {
            break consumer.finish()?;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    producer.finish()?;
    let elapsed_ns = parse_done(&report, a.count)?;
    let c = q.counters();
    if c.head != a.count || c.tail != a.count {
        return Err(CliError::msg(format!(
            "the queue saw {} messages sent and {} received, expected {} of each",
            c.tail, c.head, a.count
        )));
    }
    drop(q);
    let secs = (elapsed_ns.max(1)) as f64 / 1e9;
    let shmq_rate = a.count as f64 / secs;
    writeln!(
        out,
        "delivery: {} arrived exactly once, in order, with intact payloads ({:.3} s)",
        if a.count == 1 { "the 1 message".to_string() } else { format!("all {} messages", a.count) },
        secs
    )?;
    out.flush()?;

    // 2. Latency: this process pings, an echo process answers.
    let phase = Instant::now();
    let lat_opts = opts.clone().kind(QueueKind::Spsc).capacity(64);
    let (ping, ping_name) = create_unique(&lat_opts, &format!("{name}-ping"), &mut cleanup)?;
    let (pong, pong_name) = create_unique(&lat_opts, &format!("{name}-pong"), &mut cleanup)?;
    let mut tx = ping.producer()?;
    let mut rx = pong.consumer()?;
    let mut args = vec!["--queue".to_string(), ping_name, "--reply".into(), pong_name];
    args.extend(common(rounds + warmup));
    let mut echo = Worker::spawn(ctx, Role::Echo, &args)?;
    echo.ready()?;
    ping.unlink()?;
    pong.unlink()?;
    let mut msg = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..rounds + warmup {
        fill(&mut msg, i);
        let t = Instant::now();
        tx.send_timeout(&msg, PEER_TIMEOUT).map_err(|e| peer_gone(e, "echo"))?;
        let m = rx.recv_timeout(&mut back, PEER_TIMEOUT).map_err(|e| peer_gone(e, "echo"))?;
        let ns = t.elapsed().as_nanos() as u64;
        check(&back[..m.len], i, size)?;
        if i >= warmup {
            samples.push(ns);
        }
    }
    echo.finish()?;
    let shmq_lat = Latency::of(samples);
    writeln!(
        out,
        "latency: {rounds} round trips (after {warmup} warm-up) between two processes through two SPSC queues ({:.3} s)",
        phase.elapsed().as_secs_f64()
    )?;
    out.flush()?;

    // 3. The same over a Unix socket pair.
    let phase = Instant::now();
    let baseline = |e: std::io::Error| CliError::msg(format!("Unix socket baseline: {e}"));
    let uds_rate = shmq_cli::baseline::uds_throughput(a.count as usize, size).map_err(baseline)?;
    let uds_samples = shmq_cli::baseline::uds_round_trips((rounds + warmup) as usize, size).map_err(baseline)?;
    let uds_lat = Latency::of(uds_samples.into_iter().skip(warmup as usize));
    writeln!(
        out,
        "baseline: the same over an AF_UNIX SOCK_SEQPACKET socket pair, blocking reads ({:.3} s)",
        phase.elapsed().as_secs_f64()
    )?;

    writeln!(out)?;
    let mb = |rate: f64| format!("{:.0} MB/s", rate * size as f64 / 1e6);
    let rows = [
        ["".to_string(), "shmq".into(), "unix socket".into(), "ratio".into()],
        [
            "throughput".into(),
            format!("{} msg/s", si(shmq_rate)),
            format!("{} msg/s", si(uds_rate)),
            ratio(shmq_rate, uds_rate, "higher", "lower"),
        ],
        ["".into(), mb(shmq_rate), mb(uds_rate), "".into()],
        lat_row("round trip p50", shmq_lat.p50, uds_lat.p50),
        lat_row("round trip p99", shmq_lat.p99, uds_lat.p99),
        lat_row("round trip p99.9", shmq_lat.p999, uds_lat.p999),
    ];
    for r in &rows {
        writeln!(out, "  {:<18}{:>15}{:>15}    {}", r[0], r[1], r[2], r[3])?;
    }
    out.flush()?;

    // 4. A topic: one publisher, two reliable subscribers and a slow lossy one.
    writeln!(out)?;
    topic(ctx, a, &format!("{name}-topic"), &mut cleanup, out)?;
    writeln!(out)?;
    writeln!(out, "done in {:.1} s; demo queues and topic removed", started.elapsed().as_secs_f64())?;
    Ok(())
}

/// Section 4 of the demo (see the module docs).
fn topic(ctx: &Ctx, a: &DemoArgs, stem: &str, cleanup: &mut Cleanup, out: &mut Out) -> CliResult {
    let size = a.size as usize;
    let n = a.count.min(TOPIC_MAX);
    // Four processes on what may be two cores: waiting threads must give the CPU back.
    let wait = WaitArg::Block;
    let capped = if n < a.count { format!(" (--count capped at {TOPIC_MAX} for the topic)") } else { String::new() };
    writeln!(
        out,
        "topic: {}{capped} of {size} bytes from 1 publisher process to 3 subscriber processes \
         (2 reliable, 1 lossy and slowed down) through a topic of {TOPIC_CAPACITY} slots, {} wait",
        count(n, "message"),
        wait.name()
    )?;
    out.flush()?;
    let opts = TopicOptions::new()
        .dir(&ctx.dir)
        .wait(wait.into())
        .capacity(TOPIC_CAPACITY as usize)
        .max_msg_size(size)
        .max_subscribers(4);
    let mut created = None;
    for i in 1..=16 {
        let name = if i == 1 { stem.to_string() } else { format!("{stem}-{i}") };
        match opts.create(&name) {
            Ok(t) => {
                cleanup.names.push(name.clone());
                created = Some((t, name));
                break;
            }
            Err(shmq::OpenError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let (topic, name) =
        created.ok_or_else(|| CliError::msg(format!("cannot find a free demo topic name starting with {stem:?}")))?;
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--queue".to_string(),
            name.clone(),
            "--count".into(),
            n.to_string(),
            "--size".into(),
            size.to_string(),
            "--wait".into(),
            wait.name().into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let labels = ["reliable 1", "reliable 2", "lossy, slowed"];
    let pause = LOSSY_PAUSE_EVERY.to_string();
    let mut subs = vec![
        Worker::spawn(ctx, Role::Subscriber, &args(&[]))?,
        Worker::spawn(ctx, Role::Subscriber, &args(&[]))?,
        Worker::spawn(ctx, Role::Subscriber, &args(&["--lossy", "--pause-every", &pause]))?,
    ];
    for s in &mut subs {
        s.ready()?;
    }
    let mut publisher = Worker::spawn(ctx, Role::Publisher, &args(&[]))?;
    publisher.ready()?;
    topic.unlink()?; // everyone is attached: from here on nothing can be left behind
    let phase = Instant::now();
    publisher.go()?;
    let mut reports: Vec<Option<String>> = vec![None; subs.len()];
    while reports.iter().any(Option::is_none) {
        if let Some(status) = publisher.poll()? {
            if !status.success() {
                return Err(publisher.failed(status));
            }
        }
        for (i, s) in subs.iter_mut().enumerate() {
            if reports[i].is_none() {
                if let Some(status) = s.poll()? {
                    if !status.success() {
                        return Err(s.failed(status));
                    }
                    reports[i] = Some(s.line("finishing")?);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    publisher.finish()?;
    let elapsed = phase.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut reliable_ns: u64 = 0;
    for (i, report) in reports.into_iter().enumerate() {
        let report = report.expect("every subscriber reported");
        let (received, missed, ns) = parse_sub_done(&report)?;
        let lossy = i == 2;
        if received + missed != n || (!lossy && missed != 0) {
            return Err(CliError::msg(format!(
                "the {} subscriber received {received} and missed {missed} of {n} messages",
                labels[i]
            )));
        }
        if !lossy {
            reliable_ns = reliable_ns.max(ns);
        }
        rows.push((labels[i], received, missed));
    }
    let c = topic.counters();
    if c.tail != n {
        return Err(CliError::msg(format!("the topic saw {} messages published, expected {n}", c.tail)));
    }
    drop(topic);
    let secs = reliable_ns.max(1) as f64 / 1e9;
    writeln!(
        out,
        "topic delivery: both reliable subscribers received all {n} messages exactly once, in order, with intact \
         payloads ({} msg/s); the lossy one was told exactly what it missed ({elapsed:.3} s)",
        si(n as f64 / secs)
    )?;
    writeln!(out)?;
    writeln!(out, "  {:<18}{:>12}{:>12}", "subscriber", "received", "missed")?;
    for (label, received, missed) in rows {
        writeln!(out, "  {label:<18}{received:>12}{missed:>12}")?;
    }
    Ok(())
}

/// A subscriber's `done <received> <missed> <ns>` line.
fn parse_sub_done(line: &str) -> CliResult<(u64, u64, u64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        ["done", r, m, ns] => match (r.parse(), m.parse(), ns.parse()) {
            (Ok(r), Ok(m), Ok(ns)) => Ok((r, m, ns)),
            _ => Err(CliError::msg(format!("the demo subscriber reported {line:?}"))),
        },
        _ => Err(CliError::msg(format!(
            "the demo subscriber reported {line:?}, expected \"done <received> <missed> <ns>\""
        ))),
    }
}

fn lat_row(label: &str, shmq: u64, uds: u64) -> [String; 4] {
    [label.into(), nanos(shmq), nanos(uds), ratio(uds as f64, shmq as f64, "lower", "higher")]
}

/// `a / b` as "N.Nx <better>", or "N.Nx <worse>" when `a < b`.
fn ratio(a: f64, b: f64, better: &str, worse: &str) -> String {
    let (a, b) = (a.max(f64::MIN_POSITIVE), b.max(f64::MIN_POSITIVE));
    if a >= b {
        format!("{:.1}x {better}", a / b)
    } else {
        format!("{:.1}x {worse}", b / a)
    }
}

/// The consumer's `done <count> <ns>` line: returns the nanoseconds.
fn parse_done(line: &str, count: u64) -> CliResult<u64> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|w| w.parse::<u64>().ok()), words.next().and_then(|w| w.parse().ok())) {
        (Some("done"), Some(n), Some(ns)) if n == count => Ok(ns),
        _ => Err(CliError::msg(format!("the demo consumer reported {line:?}, expected \"done {count} <ns>\""))),
    }
}

fn peer_gone(e: impl Into<Error>, peer: &str) -> CliError {
    match e.into() {
        Error::Timeout => {
            CliError::msg(format!("the demo {peer} process did not answer for {} s", PEER_TIMEOUT.as_secs()))
        }
        e => e.into(),
    }
}
