//! `shmq bench`: round-trip latency and throughput of shmq between real processes, beside the
//! baselines ([`shmq_cli::baseline`]: floor, Unix socket pair, pipe pair, bare ring) in the same run.
//!
//! Method (each repetition, in this order, so that drifting machine load hits all alike):
//! 1. **Round trip.** This process and an echo process (`shmq bench-worker`, hidden) ping-pong
//!    `--count` messages (after a warm-up) through two rings: two SPSC queues, two MPMC queues,
//!    or two topics with one subscriber each. Every message is really written (a tag at both
//!    ends) and really read (copied out and compared with what was sent, outside the timed
//!    part). Samples go into a pre-touched `Vec<u64>` by index; the histogram is filled
//!    afterwards, so the timed loop makes no syscall, allocation or page fault.
//! 2. **Throughput.** One-way: P producers -> C consumers (mpmc; 1 -> 1 for spsc) or 1
//!    publisher -> S subscribers (topic: every subscriber gets every message; the rate is of
//!    messages published). Every consumer checks every message (tags, order); the parent
//!    checks the counts and tag sums. Time: from the first producer's start to the last
//!    message received.
//! 3. **Baselines**, the same two measurements (throughput: 1 writer -> 1 reader).
//!
//! Each statistic reported is the median across repetitions of that repetition's statistic.
//! With `--wait block`, the first repetition also measures the CPU time the blocked echo uses
//! while idle. Submodules: [`worker`] (the worker processes and the message format), [`procs`]
//! (starting and watching them), [`stats`] (histograms and medians), [`report`] (the table
//! and the JSON), [`plot`] (`--plot`).

mod plot;
mod procs;
mod report;
mod stats;
mod worker;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmq_cli::baseline::{self, Baseline};

use self::procs::{hot, progress, Cleanup, Proc};
use self::report::{header, machine, Outcome, Report};
use self::stats::{median_f64, median_summary, Stats, Summary};
use self::worker::{message, queue_options, stamp, topic_options, Pattern, SEQ_BITS};
pub use self::worker::{worker, WorkerArgs};
use super::{CliError, CliResult, Ctx, Out, WaitArg};
use shmq::{Receiver, Sender};

/// Slots of each ping-pong ring (one message is in flight at a time).
const RTT_CAPACITY: u64 = 64;
/// Largest --size: what a SOCK_SEQPACKET baseline carries in one message everywhere.
const MAX_SIZE: usize = 65536;
/// Largest --count: the samples of one repetition take 8 bytes each.
const MAX_COUNT: u64 = 100_000_000;
/// How long the blocked echo is watched while idle (after a settling pause).
const IDLE_WINDOW: Duration = Duration::from_millis(200);

/// Arguments of `shmq bench`. Values are checked by [`Plan::new`], so that every invalid one
/// gives a one-line error.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// spsc: two SPSC queues; mpmc: MPMC queues; topic: topics (publish/subscribe).
    #[arg(long, value_name = "spsc|mpmc|topic", default_value = "spsc")]
    pattern: String,
    /// Message size in bytes (8 to 65536).
    #[arg(long, value_name = "B", default_value = "64")]
    size: String,
    /// Round trips per repetition, and messages per throughput repetition.
    #[arg(long, value_name = "N", default_value = "1000000")]
    count: String,
    /// Repetitions; each statistic reported is the median across them.
    #[arg(long, value_name = "R", default_value = "5")]
    reps: String,
    /// mpmc: producer processes in the throughput test [default: 1].
    #[arg(long, value_name = "P")]
    producers: Option<String>,
    /// mpmc: consumer processes in the throughput test [default: 1].
    #[arg(long, value_name = "C")]
    consumers: Option<String>,
    /// topic: subscriber processes in the throughput test [default: 1].
    #[arg(long, value_name = "S")]
    subscribers: Option<String>,
    /// How shmq's processes wait: spin (busy-poll), yield, or block (futex; no CPU while idle).
    #[arg(long, value_name = "spin|yield|block", default_value = "spin")]
    wait: String,
    /// Pin the two ping-pong processes (and the baselines' two; and producers, consumers) to
    /// these two CPUs.
    #[arg(long, value_name = "CPU,CPU")]
    pin: Option<String>,
    /// Slots of the throughput ring (1 to 2^24, rounded up to a power of two).
    #[arg(long, value_name = "SLOTS", default_value = "4096")]
    capacity: String,
    /// Print one JSON object instead of the table (and no progress bar).
    #[arg(long)]
    json: bool,
    /// Also write the latency distribution (percentile curves) as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Measure shmq only.
    #[arg(long)]
    no_baselines: bool,
}

/// The validated arguments.
#[derive(Debug)]
struct Plan {
    pattern: Pattern,
    size: usize,
    count: u64,
    reps: u32,
    warmup: u64,
    /// Sending processes in the throughput test (producers, or the one publisher).
    senders: u64,
    /// Receiving processes (consumers or subscribers).
    receivers: u64,
    wait: WaitArg,
    pin: Option<[usize; 2]>,
    capacity: u64,
    json: bool,
    plot: Option<PathBuf>,
    baselines: bool,
}

/// `1000000`, `1_000_000` or `1,000,000`.
fn number(option: &str, s: &str) -> CliResult<u64> {
    let digits: String = s.chars().filter(|&c| c != '_' && c != ',').collect();
    digits.parse::<u64>().map_err(|_| CliError::msg(format!("{option} needs a whole number, not {s:?}")))
}

fn in_range(option: &str, s: &str, lo: u64, hi: u64) -> CliResult<u64> {
    let n = number(option, s)?;
    if n < lo || n > hi {
        return Err(CliError::msg(format!("{option} must be from {lo} to {hi} (got {n})")));
    }
    Ok(n)
}

fn parse_pin(s: &str) -> CliResult<[usize; 2]> {
    let bad = || CliError::msg(format!("--pin needs two CPU numbers like 0,1 (got {s:?})"));
    let cpus: Vec<usize> = s.split(',').map(|c| c.trim().parse().map_err(|_| bad())).collect::<CliResult<_>>()?;
    let [a, b] = cpus[..] else { return Err(bad()) };
    let allowed = baseline::allowed_cpus().map_err(|e| CliError::msg(format!("cannot read the CPU mask: {e}")))?;
    if let Some(c) = [a, b].into_iter().find(|c| !allowed.contains(c)) {
        return Err(CliError::msg(format!("--pin: CPU {c} is not available to this process (allowed: {allowed:?})")));
    }
    Ok([a, b])
}

impl Plan {
    fn new(a: &BenchArgs) -> CliResult<Plan> {
        let pattern = Pattern::from_str(&a.pattern, true)
            .map_err(|_| CliError::msg(format!("--pattern must be spsc, mpmc or topic (got {:?})", a.pattern)))?;
        let wait = WaitArg::from_str(&a.wait, true)
            .map_err(|_| CliError::msg(format!("--wait must be spin, yield or block (got {:?})", a.wait)))?;
        let size = in_range("--size", &a.size, 8, MAX_SIZE as u64)? as usize;
        let count = in_range("--count", &a.count, 1, MAX_COUNT)?;
        let reps = in_range("--reps", &a.reps, 1, 1000)? as u32;
        // Rounded up to a power of two, as the library does.
        let capacity = in_range("--capacity", &a.capacity, 1, 1 << 24)?.max(2).next_power_of_two();
        let count_of = |option: &str, v: &Option<String>| v.as_deref().map(|s| in_range(option, s, 1, 64)).transpose();
        let (p, c, s) = (
            count_of("--producers", &a.producers)?,
            count_of("--consumers", &a.consumers)?,
            count_of("--subscribers", &a.subscribers)?,
        );
        let (senders, receivers) = match pattern {
            Pattern::Spsc => {
                if p.unwrap_or(1) != 1 || c.unwrap_or(1) != 1 {
                    return Err(CliError::msg(
                        "spsc has exactly one producer and one consumer; use --pattern mpmc for more",
                    ));
                }
                if s.is_some() {
                    return Err(CliError::msg("--subscribers goes with --pattern topic"));
                }
                (1, 1)
            }
            Pattern::Mpmc => {
                if s.is_some() {
                    return Err(CliError::msg("--subscribers goes with --pattern topic"));
                }
                (p.unwrap_or(1), c.unwrap_or(1))
            }
            Pattern::Topic => {
                if p.is_some() || c.is_some() {
                    return Err(CliError::msg(
                        "a topic bench has one publisher; give --subscribers (use --pattern mpmc for --producers/--consumers)",
                    ));
                }
                (1, s.unwrap_or(1))
            }
        };
        let pin = a.pin.as_deref().map(parse_pin).transpose()?;
        if let Some(path) = &a.plot {
            if path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) != Some("svg".into()) {
                return Err(CliError::msg(format!(
                    "--plot writes SVG: give a file name ending in .svg (got {path:?})"
                )));
            }
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if !parent.is_dir() {
                return Err(CliError::msg(format!("--plot: directory {} does not exist", parent.display())));
            }
        }
        Ok(Plan {
            pattern,
            size,
            count,
            reps,
            warmup: (count / 10).min(10_000),
            senders,
            receivers,
            wait,
            pin,
            capacity,
            json: a.json,
            plot: a.plot.clone(),
            baselines: !a.no_baselines,
        })
    }

    /// Arguments every worker gets.
    fn worker_args(&self, role: &str, queue: &str) -> Vec<String> {
        let mut v: Vec<String> = vec!["--role".into(), role.into(), "--pattern".into(), self.pattern.name().into()];
        v.extend(["--queue".into(), queue.into(), "--size".into(), self.size.to_string()]);
        v.extend(["--wait".into(), self.wait.name().into()]);
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Running

/// What the blocked echo did while idle (`--wait block`).
#[derive(Debug, Clone, Copy)]
struct Idle {
    /// CPU time it used during [`IDLE_WINDOW`].
    cpu: Duration,
    /// The round trip that woke it up afterwards.
    wake_ns: u64,
}

/// One system's measurements across repetitions.
struct Row {
    name: &'static str,
    rtt: Vec<Summary>,
    tput: Vec<f64>,
}

/// Runs the bench (see the module docs).
pub fn bench(ctx: &Ctx, a: &BenchArgs, out: &mut Out) -> CliResult {
    let started = Instant::now();
    let plan = Plan::new(a)?;
    let machine = machine();
    if !plan.json {
        header(&plan, &machine, out)?;
        out.flush()?;
    }
    let mut names = vec!["shmq"];
    if plan.baselines {
        names.extend(Baseline::ALL.map(Baseline::name));
    }
    let mut rows: Vec<Row> = names.iter().map(|&name| Row { name, rtt: Vec::new(), tput: Vec::new() }).collect();
    let phases = if plan.baselines { 8 } else { 2 };
    let bar = progress_bar(&plan, plan.reps as u64 * phases);
    // Allocated and touched before any timing.
    let mut stats = Stats::new();
    let mut samples = std::hint::black_box(vec![u64::MAX; plan.count as usize]);
    let mut idle = None;
    let mut bare = Vec::new();

    for rep in 0..plan.reps {
        let step = |what: &str| bar.set_message(format!("rep {}/{}: {what}", rep + 1, plan.reps));
        step("shmq round trips");
        let measure_idle = rep == 0 && plan.wait == WaitArg::Block;
        let i = shmq_round_trips(ctx, &plan, rep, &mut samples, measure_idle)?;
        idle = idle.or(i);
        rows[0].rtt.push(stats.summarize(&samples));
        bar.inc(1);
        // The floor right after shmq's round trips, so that both see the same machine: on a
        // virtual machine even the floor changes severalfold when the host moves the CPUs.
        if plan.baselines {
            step("floor round trips");
            baseline_rep(Baseline::Floor, &plan, &mut stats, &mut rows[1])?;
            bar.inc(1);
        }
        step("shmq throughput");
        rows[0].tput.push(shmq_throughput(ctx, &plan, rep)?);
        bar.inc(1);
        if plan.baselines {
            // Right after shmq's throughput, for the same reason as the floor.
            step("bare ring throughput");
            let count = plan.count.max(2) as usize;
            let pin = plan.pin;
            let r = baseline::bare_ring_throughput(count, plan.size, pin);
            bare.push(r.map_err(|e| CliError::msg(format!("bare ring baseline: {e}")))?);
            bar.inc(1);
        }
        if plan.baselines {
            for (b, row) in [(Baseline::Uds, 2), (Baseline::Pipe, 3)] {
                step(&format!("{} round trips and throughput", b.name()));
                baseline_rep(b, &plan, &mut stats, &mut rows[row])?;
                bar.inc(2);
            }
        }
    }
    bar.finish_and_clear();

    let results: Vec<Outcome> = rows
        .iter()
        .map(|r| Outcome {
            name: r.name,
            rtt: median_summary(&r.rtt).expect("at least one repetition"),
            tput: median_f64(&r.tput),
            reps: r.rtt.iter().map(|s| [s.percentiles[0], s.percentiles[3]]).collect(),
            tput_reps: r.tput.clone(),
        })
        .collect();
    if let Some(path) = &plan.plot {
        let series: Vec<plot::Series> =
            results.iter().map(|r| plot::Series { name: r.name, points: &r.rtt.curve }).collect();
        let title = format!(
            "shmq bench: {} round trip, {} B, {} wait (median of {} reps)",
            plan.pattern.name(),
            plan.size,
            plan.wait.name(),
            plan.reps
        );
        plot::write(path, &title, &series).map_err(CliError::Msg)?;
    }
    let bare = median_f64(&bare);
    let report = Report { plan: &plan, results: &results, bare, idle, machine: &machine, elapsed: started.elapsed() };
    if plan.json {
        writeln!(out, "{}", report.json())?;
    } else {
        report.text(out)?;
    }
    Ok(())
}

/// One repetition of baseline `b`: round trips, then (except for the floor) throughput.
fn baseline_rep(b: Baseline, plan: &Plan, stats: &mut Stats, row: &mut Row) -> CliResult {
    let err = |e: std::io::Error| CliError::msg(format!("{} baseline: {e}", b.name()));
    let s = b.round_trips((plan.warmup + plan.count) as usize, plan.size, plan.pin).map_err(err)?;
    row.rtt.push(stats.summarize(&s[plan.warmup as usize..]));
    drop(s);
    row.tput.extend(b.throughput(plan.count as usize, plan.size, plan.pin).map_err(err)?);
    Ok(())
}

fn progress_bar(plan: &Plan, total: u64) -> ProgressBar {
    if plan.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}").expect("valid template"),
    );
    // A slow tick: the drawing thread should disturb the timed runs as little as possible.
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// One repetition of the ping-pong, into `samples`; with `idle`, then measures the CPU time the
/// blocked echo uses while nothing arrives.
fn shmq_round_trips(ctx: &Ctx, plan: &Plan, rep: u32, samples: &mut [u64], idle: bool) -> CliResult<Option<Idle>> {
    let mut cleanup = Cleanup::new(ctx);
    let stem = format!("bench-{}-{rep}", std::process::id());
    let total = plan.warmup + samples.len() as u64 + idle as u64;
    if plan.pattern == Pattern::Topic {
        let o = topic_options(ctx, plan.wait, plan.size).capacity(RTT_CAPACITY as usize).max_subscribers(1);
        let (ping, ping_name) = cleanup.create(&format!("{stem}-ping"), |n| Ok(o.create(n)?))?;
        let (pong, pong_name) = cleanup.create(&format!("{stem}-pong"), |n| Ok(o.create(n)?))?;
        let rx = pong.subscriber().build()?;
        let tx = ping.publisher()?;
        let echo = start_echo(ctx, plan, &ping_name, &pong_name, total)?;
        cleanup.remove_all()?;
        ping_pong(plan, tx, rx, echo, samples, idle)
    } else {
        let o = queue_options(ctx, plan.pattern, plan.wait, plan.size).capacity(RTT_CAPACITY as usize);
        let (ping, ping_name) = cleanup.create(&format!("{stem}-ping"), |n| Ok(o.create(n)?))?;
        let (pong, pong_name) = cleanup.create(&format!("{stem}-pong"), |n| Ok(o.create(n)?))?;
        let (tx, rx) = (ping.producer()?, pong.consumer()?);
        let echo = start_echo(ctx, plan, &ping_name, &pong_name, total)?;
        cleanup.remove_all()?;
        ping_pong(plan, tx, rx, echo, samples, idle)
    }
}

fn start_echo(ctx: &Ctx, plan: &Plan, ping: &str, pong: &str, total: u64) -> CliResult<Proc> {
    let mut args = plan.worker_args("echo", ping);
    args.extend(["--reply".into(), pong.into(), "--count".into(), total.to_string()]);
    if let Some([_, cpu]) = plan.pin {
        args.extend(["--cpu".into(), cpu.to_string()]);
    }
    let mut echo = Proc::spawn(ctx, "echo".into(), &args)?;
    echo.ready()?;
    Ok(echo)
}

/// One round trip of message `i`: returns its nanoseconds and whether it came back intact
/// (checked after the clock stops).
#[inline(always)]
fn round_trip(
    tx: &mut impl Sender,
    rx: &mut impl Receiver,
    msg: &mut [u8],
    back: &mut [u8],
    i: u64,
) -> CliResult<(u64, bool)> {
    stamp(msg, i);
    let t = Instant::now();
    tx.send_kind(0, msg)?;
    let m = rx.recv_into(back)?;
    let ns = t.elapsed().as_nanos() as u64;
    Ok((ns, m.len == msg.len() && back == msg))
}

fn ping_pong(
    plan: &Plan,
    mut tx: impl Sender,
    mut rx: impl Receiver,
    echo: Proc,
    samples: &mut [u64],
    idle: bool,
) -> CliResult<Option<Idle>> {
    let mut msg = message(plan.size);
    let mut back = vec![0u8; plan.size];
    let mut bad = None;
    let mut i = 0u64;
    let measured = {
        let _pin =
            plan.pin.map(|[me, _]| baseline::pin_thread(me)).transpose().map_err(|e| CliError::msg(e.to_string()))?;
        let _hot = hot(&[&echo])?;
        while i < plan.warmup {
            let (_, ok) = round_trip(&mut tx, &mut rx, &mut msg, &mut back, i)?;
            if !ok {
                bad = bad.or(Some(i));
            }
            i += 1;
        }
        for s in samples.iter_mut() {
            let (ns, ok) = round_trip(&mut tx, &mut rx, &mut msg, &mut back, i)?;
            *s = ns;
            if !ok {
                bad = bad.or(Some(i));
            }
            if i & 1023 == 0 {
                progress(i);
            }
            i += 1;
        }
        if idle {
            // Let the echo go through its spins and yields to the futex, then watch it.
            std::thread::sleep(Duration::from_millis(50));
            let cpu_time = |pid| baseline::process_cpu_time(pid).map_err(|e| CliError::msg(format!("idle CPU: {e}")));
            let before = cpu_time(echo.pid())?;
            std::thread::sleep(IDLE_WINDOW);
            let cpu = cpu_time(echo.pid())?.saturating_sub(before);
            let (wake_ns, ok) = round_trip(&mut tx, &mut rx, &mut msg, &mut back, i)?;
            if !ok {
                bad = bad.or(Some(i));
            }
            Some(Idle { cpu, wake_ns })
        } else {
            None
        }
    };
    let mut echo = echo;
    let line = echo.line()?;
    Proc::done_numbers(echo.what(), &line, 1)?;
    echo.finish()?;
    if let Some(i) = bad {
        return Err(CliError::msg(format!("round trip {i}: the echo returned different bytes than were sent")));
    }
    Ok(measured)
}

/// One repetition of the one-way test: messages per second.
fn shmq_throughput(ctx: &Ctx, plan: &Plan, rep: u32) -> CliResult<f64> {
    let mut cleanup = Cleanup::new(ctx);
    let stem = format!("bench-{}-{rep}-stream", std::process::id());
    let topic = plan.pattern == Pattern::Topic;
    // Something that moves while messages flow: the stall watchdog watches it.
    let (moved, name): (Box<dyn Fn() -> u64>, String) = if topic {
        let o = topic_options(ctx, plan.wait, plan.size)
            .capacity(plan.capacity as usize)
            .max_subscribers(plan.receivers as u32);
        let (t, name) = cleanup.create(&stem, |n| Ok(o.create(n)?))?;
        (Box::new(move || t.published()), name)
    } else {
        let o = queue_options(ctx, plan.pattern, plan.wait, plan.size).capacity(plan.capacity as usize);
        let (q, name) = cleanup.create(&stem, |n| Ok(o.create(n)?))?;
        (Box::new(move || q.counters().head.wrapping_add(q.counters().tail)), name)
    };
    let cpu = |side: usize| plan.pin.map(|p| vec!["--cpu".to_string(), p[side].to_string()]).unwrap_or_default();
    let (sender, receiver) = if topic { ("publisher", "subscriber") } else { ("producer", "consumer") };

    let mut receivers = Vec::new();
    for i in 0..plan.receivers {
        let mut args = plan.worker_args("consumer", &name);
        args.extend(["--count".into(), "0".into(), "--peers".into(), plan.senders.to_string()]);
        if topic || plan.receivers == 1 {
            args.push("--alone".into());
        }
        args.extend(cpu(1));
        receivers.push(Proc::spawn(ctx, format!("{receiver} {}", i + 1), &args)?);
    }
    for r in &mut receivers {
        r.ready()?;
    }
    // Message shares: as even as possible.
    let shares: Vec<u64> =
        (0..plan.senders).map(|i| plan.count / plan.senders + u64::from(i < plan.count % plan.senders)).collect();
    let mut senders = Vec::new();
    for (i, &share) in shares.iter().enumerate() {
        let mut args = plan.worker_args("producer", &name);
        let stops = if topic { 1 } else { plan.receivers };
        args.extend(["--count".into(), share.to_string(), "--index".into(), i.to_string()]);
        args.extend(["--peers".into(), stops.to_string()]);
        args.extend(cpu(0));
        senders.push(Proc::spawn(ctx, format!("{sender} {}", i + 1), &args)?);
    }
    for s in &mut senders {
        s.ready()?;
    }
    cleanup.remove_all()?;

    let all: Vec<&Proc> = receivers.iter().chain(&senders).collect();
    let hot = hot(&all)?;
    let t0 = Instant::now();
    for s in &mut senders {
        s.go()?;
    }
    let mut lines = Vec::new();
    for p in receivers.iter_mut().chain(&mut senders) {
        let line = loop {
            match p.line_within(Duration::from_secs(1))? {
                Some(l) => break l,
                None => progress(moved()),
            }
        };
        lines.push((p.what().to_string(), line));
    }
    let wall = t0.elapsed();
    drop(hot);
    for p in receivers.into_iter().chain(senders) {
        p.finish()?;
    }

    // Check what arrived and find the time from the first start to the last message.
    let (rl, sl) = lines.split_at(plan.receivers as usize);
    let expected_sum = shares.iter().enumerate().fold(0u64, |acc, (i, &n)| {
        // sum over seq < n of (i << SEQ_BITS | seq)
        acc.wrapping_add(((i as u64) << SEQ_BITS).wrapping_mul(n)).wrapping_add(n.wrapping_mul(n.wrapping_sub(1)) / 2)
    });
    let (mut got, mut sum, mut end) = (0u64, 0u64, 0u64);
    for (what, line) in rl {
        let v = Proc::done_numbers(what, line, 3)?;
        if topic && (v[0] != plan.count || v[1] != expected_sum) {
            return Err(CliError::msg(format!("{what} received {} of {} messages (or wrong ones)", v[0], plan.count)));
        }
        got += v[0];
        sum = sum.wrapping_add(v[1]);
        end = end.max(v[2]);
    }
    if !topic && (got != plan.count || sum != expected_sum) {
        return Err(CliError::msg(format!("the consumers received {got} of {} messages (or wrong ones)", plan.count)));
    }
    let mut start = u64::MAX;
    for (what, line) in sl {
        start = start.min(Proc::done_numbers(what, line, 2)?[1]);
    }
    // Both stamps are wall-clock nanoseconds; if the clock stepped, fall back to our own timing.
    let ns = match end.checked_sub(start) {
        Some(ns) if ns > 0 && ns <= wall.as_nanos() as u64 => ns,
        _ => wall.as_nanos() as u64,
    };
    Ok(plan.count as f64 / (ns.max(1) as f64 / 1e9))
}
