//! Peer comparison: shmq against iceoryx2 0.10 publish-subscribe, with the same two-process
//! layout for both, in one run. See README.md for what is measured and how to read it.
//!
//! `cargo run --release -- [--count N] [--tput-count N] [--reps R] [--sizes 8,64,1024]
//!  [--libs floor,shmq-spsc,shmq-topic,iceoryx2,iceoryx2-spin,shmq-spsc-try,shmq-spsc-batch] [--pin] [--timeout SECS]`

#![warn(clippy::undocumented_unsafe_blocks)]

mod ice_side;
mod proto;
mod shmq_side;
mod stats;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use ice_side::{Full, IceChild, IceParent};
use proto::{mono_ns, ParentEnd, Peer};
use shmq_side::{BatchChild, BatchParent, QueueChild, QueueParent, TopicChild, TopicParent, TryChild, TryParent};
use stats::{Latency, QUANTILES};

/// Slots of every ring: shmq queue/topic capacity and iceoryx2's subscriber buffer.
pub const CAPACITY: usize = 1024;

/// Every library, in report order. `iceoryx2-spin` differs from `iceoryx2` only when the
/// subscriber's buffer is full, and `shmq-spsc-batch` only in how it sends and receives many
/// messages, so both are run for throughput only; `floor` is run for round trips only.
const LIBS: [&str; 7] =
    ["floor", "shmq-spsc", "shmq-topic", "iceoryx2", "iceoryx2-spin", "shmq-spsc-try", "shmq-spsc-batch"];
/// Libraries run for throughput only.
const TPUT_ONLY: [&str; 2] = ["iceoryx2-spin", "shmq-spsc-batch"];
/// Run for round trips only: `floor` is `shmq_cli::baseline::Baseline::Floor`, two processes
/// ping-ponging through two atomics on a shared mapping (payload copied in and out), the
/// round trip no queue can beat on this machine.
const RTT_ONLY: [&str; 1] = ["floor"];
const USAGE: &str = "usage: shmq-peers [--count N] [--tput-count N] [--reps R] [--sizes 8,64,1024] \
[--libs floor,shmq-spsc,shmq-topic,iceoryx2,iceoryx2-spin,shmq-spsc-try,shmq-spsc-batch] [--pin] [--timeout SECS]";

/// Runs `$body` with `const $n: usize` set to `$size`, for the supported payload sizes.
macro_rules! with_size {
    ($size:expr, $n:ident => $body:expr) => {
        match $size {
            8 => {
                const $n: usize = 8;
                $body
            }
            64 => {
                const $n: usize = 64;
                $body
            }
            1024 => {
                const $n: usize = 1024;
                $body
            }
            other => panic!("unsupported payload size {other}: use 8, 64 or 1024"),
        }
    };
}

struct Opts {
    count: u64,
    tput_count: u64,
    reps: usize,
    sizes: Vec<usize>,
    libs: Vec<&'static str>,
    pin: bool,
    timeout: Duration,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            count: 1_000_000,
            tput_count: 0,
            reps: 5,
            sizes: vec![8, 64, 1024],
            libs: LIBS.to_vec(),
            pin: false,
            timeout: Duration::from_secs(3600),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
            let num = |v: &String| v.parse::<u64>().map_err(|_| format!("{a}: not a number: {v}"));
            match a.as_str() {
                "--count" => o.count = num(value()?)?,
                "--tput-count" => o.tput_count = num(value()?)?,
                "--reps" => o.reps = num(value()?)? as usize,
                "--timeout" => o.timeout = Duration::from_secs(num(value()?)?),
                "--pin" => o.pin = true,
                "--sizes" => {
                    o.sizes = value()?
                        .split(',')
                        .map(|s| match s.parse() {
                            Ok(n @ (8 | 64 | 1024)) => Ok(n),
                            _ => Err(format!("--sizes: {s} is not one of 8, 64, 1024")),
                        })
                        .collect::<Result<_, _>>()?
                }
                "--libs" => {
                    o.libs = value()?
                        .split(',')
                        .map(|s| LIBS.iter().find(|l| **l == s).copied().ok_or(format!("--libs: unknown {s}")))
                        .collect::<Result<_, _>>()?
                }
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        if o.count == 0 || o.reps == 0 {
            return Err("--count and --reps must be at least 1".into());
        }
        if o.tput_count == 0 {
            o.tput_count = 4 * o.count;
        }
        Ok(o)
    }
}

/// One library at one payload size: the parent's end and the child process.
trait Bench {
    fn lib(&self) -> &'static str;
    /// `n` timed round trips, recorded in `h` (`None`: warm-up).
    fn round_trips(&mut self, n: u64, h: Option<&mut Histogram<u64>>);
    /// Sends `n` messages as fast as possible; messages per second, first send to the child's
    /// receipt of the last one.
    fn throughput(&mut self, n: u64) -> f64;
}

struct Run<P: ParentEnd> {
    // Dropped first: the child exits before the parent's end removes the segments/services.
    peer: Peer,
    end: P,
    lib: &'static str,
    /// Sequence number of the next message (both processes count from 0).
    next: u64,
}

impl<P: ParentEnd> Run<P> {
    fn new(lib: &'static str, size: usize, prefix: &str, mut end: P, pin: Option<usize>) -> Run<P> {
        let peer = Peer::spawn(lib, size, prefix, pin);
        end.connected();
        Run { peer, end, lib, next: 0 }
    }
}

impl<P: ParentEnd> Bench for Run<P> {
    fn lib(&self) -> &'static str {
        self.lib
    }

    fn round_trips(&mut self, n: u64, mut h: Option<&mut Histogram<u64>>) {
        self.peer.start(&format!("echo {n}"));
        for _ in 0..n {
            let seq = self.next;
            let t0 = Instant::now();
            self.end.send(seq);
            let got = self.end.recv();
            let ns = t0.elapsed().as_nanos() as u64;
            assert_eq!(got, seq, "{}: pong {got} answered ping {seq}", self.lib);
            if let Some(h) = h.as_deref_mut() {
                h.saturating_record(ns);
            }
            self.next += 1;
        }
        self.peer.read_ok();
    }

    fn throughput(&mut self, n: u64) -> f64 {
        self.peer.start(&format!("drain {n}"));
        let t0 = mono_ns();
        self.end.send_all(self.next, n);
        self.next += n;
        let t_last = self.peer.read_ok()[0];
        n as f64 * 1e9 / t_last.saturating_sub(t0).max(1) as f64
    }
}

/// The floor: `shmq_cli::baseline`'s two-atomic ping-pong with a forked child, timed the same
/// way (and pinned like the other rows with `--pin`).
struct Floor {
    size: usize,
    /// `[parent cpu, child cpu]` with `--pin`.
    pin: Option<[usize; 2]>,
}

impl Bench for Floor {
    fn lib(&self) -> &'static str {
        "floor"
    }
    fn round_trips(&mut self, n: u64, h: Option<&mut Histogram<u64>>) {
        let samples =
            shmq_cli::baseline::Baseline::Floor.round_trips(n as usize, self.size, self.pin).expect("floor baseline");
        if let Some(h) = h {
            for ns in samples {
                h.saturating_record(ns);
            }
        }
    }
    fn throughput(&mut self, _: u64) -> f64 {
        unreachable!("the floor only ping-pongs")
    }
}

fn bench(lib: &'static str, size: usize, pin: Option<usize>) -> Box<dyn Bench> {
    if lib == "floor" {
        // The parent runs on cpu 0 when the child is pinned (see `main`).
        return Box::new(Floor { size, pin: pin.map(|child| [0, child]) });
    }
    // SAFETY: getpid has no preconditions and cannot fail.
    let prefix = format!("peers-{}-{lib}-{size}", unsafe { libc::getpid() });
    with_size!(size, N => match lib {
        "shmq-spsc" => Box::new(Run::new(lib, size, &prefix, QueueParent::<N>::create(&prefix), pin)),
        "shmq-topic" => Box::new(Run::new(lib, size, &prefix, TopicParent::<N>::create(&prefix), pin)),
        "shmq-spsc-try" => Box::new(Run::new(lib, size, &prefix, TryParent(QueueParent::<N>::create(&prefix)), pin)),
        "shmq-spsc-batch" => Box::new(Run::new(lib, size, &prefix, BatchParent::<N>::create(&prefix), pin)),
        "iceoryx2" => Box::new(Run::new(lib, size, &prefix, IceParent::<N>::create(&prefix, Full::Retry), pin)),
        "iceoryx2-spin" => Box::new(Run::new(lib, size, &prefix, IceParent::<N>::create(&prefix, Full::Spin), pin)),
        other => panic!("unknown library {other}"),
    })
}

/// Process B: `--child LIB SIZE PREFIX [--pin-child CPU]`.
fn child_main(args: &[String]) {
    let [lib, size, prefix, rest @ ..] = args else { panic!("child: expected LIB SIZE PREFIX, got {args:?}") };
    proto::exit_with_parent();
    if let [flag, cpu] = rest {
        assert_eq!(flag, "--pin-child");
        proto::pin_to(cpu.parse().expect("a cpu number"));
    }
    let size: usize = size.parse().expect("a payload size");
    with_size!(size, N => match lib.as_str() {
        "shmq-spsc" => proto::serve(&mut QueueChild::open(prefix, N)),
        "shmq-topic" => proto::serve(&mut TopicChild::open(prefix, N)),
        "shmq-spsc-try" => proto::serve(&mut TryChild(QueueChild::open(prefix, N))),
        "shmq-spsc-batch" => proto::serve(&mut BatchChild(QueueChild::open(prefix, N))),
        "iceoryx2" => proto::serve(&mut IceChild::<N>::open(prefix, Full::Retry)),
        "iceoryx2-spin" => proto::serve(&mut IceChild::<N>::open(prefix, Full::Spin)),
        other => panic!("child: unknown library {other}"),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child_main(&args[1..]);
    }
    let o = Opts::parse(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    proto::watchdog(o.timeout);
    let child_cpu = if o.pin {
        proto::pin_to(0);
        Some(1)
    } else {
        None
    };
    print_machine(&args);
    let load_before = read_trim("/proc/loadavg");

    let mut rtt: Vec<(usize, &str, Latency)> = Vec::new();
    let mut tput: Vec<(usize, &str, [f64; 3])> = Vec::new();
    for &size in &o.sizes {
        let mut benches: Vec<Box<dyn Bench>> = o.libs.iter().map(|lib| bench(lib, size, child_cpu)).collect();
        let warm = (o.count / 10).clamp(1, 100_000);
        let timed: Vec<usize> = (0..benches.len()).filter(|&i| !TPUT_ONLY.contains(&benches[i].lib())).collect();

        // Round trips: repetitions interleaved across libraries, so drift hits all alike.
        let mut reps: Vec<Vec<Latency>> = vec![Vec::new(); benches.len()];
        for &i in &timed {
            benches[i].round_trips(warm, None);
        }
        for rep in 0..o.reps {
            for &i in &timed {
                let mut h = stats::histogram();
                benches[i].round_trips(o.count, Some(&mut h));
                let l = stats::latency(&h);
                eprintln!(
                    "  {size:>4} B  {:<15} rep {}  rtt p50 {} ns  max {} ns",
                    benches[i].lib(),
                    rep + 1,
                    l[0],
                    l[5]
                );
                reps[i].push(l);
            }
        }
        for &i in &timed {
            rtt.push((size, benches[i].lib(), stats::median_latency(&reps[i])));
        }

        // Throughput, interleaved the same way.
        let flowing: Vec<usize> = (0..benches.len()).filter(|&i| !RTT_ONLY.contains(&benches[i].lib())).collect();
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); benches.len()];
        for &i in &flowing {
            benches[i].throughput(o.tput_count.min(200_000));
        }
        for rep in 0..o.reps {
            for &i in &flowing {
                let r = benches[i].throughput(o.tput_count);
                eprintln!("  {size:>4} B  {:<15} rep {}  {:.2} M msg/s", benches[i].lib(), rep + 1, r / 1e6);
                rates[i].push(r);
            }
        }
        for &i in &flowing {
            let r = &mut rates[i];
            let min = r.iter().copied().fold(f64::INFINITY, f64::min);
            let max = r.iter().copied().fold(0.0, f64::max);
            tput.push((size, benches[i].lib(), [stats::median(r), min, max]));
        }
    }
    print_report(&o, &rtt, &tput, &load_before);
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

fn print_machine(args: &[String]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    // Cost of the two clock reads around each round trip (included in every round trip).
    let t = Instant::now();
    let mut x = t;
    for _ in 0..1_000_000 {
        x = std::hint::black_box(Instant::now());
    }
    let clock_ns = x.duration_since(t).as_nanos() as f64 / 1e6;
    println!("# shmq vs iceoryx2 0.10: peer comparison");
    println!();
    println!("- command: `cargo run --release -- {}`", args.join(" "));
    println!("- cpu: {cpu}, {cores} cores; kernel {}", read_trim("/proc/sys/kernel/osrelease"));
    println!("- clocksource: {}", read_trim("/sys/devices/system/clocksource/clocksource0/current_clocksource"));
    println!("- one clock read: {clock_ns:.1} ns (each round trip includes two)");
}

fn print_report(o: &Opts, rtt: &[(usize, &str, Latency)], tput: &[(usize, &str, [f64; 3])], load_before: &str) {
    println!("- load average before: {load_before}; after: {}", read_trim("/proc/loadavg"));
    println!("- pinned: {}", if o.pin { "parent cpu 0, child cpu 1" } else { "no" });
    println!();
    println!("## Round trip (ns), median of {} repetitions x {} round trips", o.reps, o.count);
    println!();
    let cols: Vec<&str> = QUANTILES.iter().map(|(n, _)| *n).chain(["max"]).collect();
    println!("| payload | library | {} |", cols.join(" | "));
    println!("|---|---|{}", "---:|".repeat(cols.len()));
    for (size, lib, l) in rtt {
        let vals: Vec<String> = l.iter().map(|v| v.to_string()).collect();
        println!("| {size} B | {lib} | {} |", vals.join(" | "));
    }
    println!();
    println!("## One-way throughput (M msg/s), median of {} repetitions x {} messages", o.reps, o.tput_count);
    println!();
    println!("| payload | library | median | min | max |");
    println!("|---|---|---:|---:|---:|");
    for (size, lib, [med, min, max]) in tput {
        println!("| {size} B | {lib} | {:.2} | {:.2} | {:.2} |", med / 1e6, min / 1e6, max / 1e6);
    }
    println!();
    println!("## Ratios (same run): targets p50 iceoryx2/shmq >= 4, throughput shmq/iceoryx2 >= 20");
    println!();
    println!("| payload | shmq | p50 iceoryx2 / shmq | p50 shmq / floor | throughput shmq / iceoryx2 | shmq / iceoryx2-spin |");
    println!("|---|---|---:|---:|---:|---:|");
    let p50 = |s: usize, lib: &str| rtt.iter().find(|r| r.0 == s && r.1 == lib).map(|r| r.2[0] as f64);
    let rate = |s: usize, lib: &str| tput.iter().find(|r| r.0 == s && r.1 == lib).map(|r| r.2[0]);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    for &size in &o.sizes {
        for lib in ["shmq-spsc", "shmq-topic", "shmq-spsc-try", "shmq-spsc-batch"] {
            if !o.libs.contains(&lib) {
                continue;
            }
            println!(
                "| {size} B | {lib} | {} | {} | {} | {} |",
                ratio(p50(size, "iceoryx2"), p50(size, lib)),
                ratio(p50(size, lib), p50(size, "floor")),
                ratio(rate(size, lib), rate(size, "iceoryx2")),
                ratio(rate(size, lib), rate(size, "iceoryx2-spin")),
            );
        }
    }
}
