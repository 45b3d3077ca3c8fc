//! shmq queues across processes, against their baselines, all in one run so ratios mean something.
//!
//! - `round_trip/<transport>/<bytes>`: a message to a peer and its echo back; time per round trip.
//! - `throughput/<transport>/<bytes>`: one-way messages to a draining peer; messages per second.
//!
//! Transports: `shmq_spsc` and `shmq_mpmc` (1 producer, 1 consumer) to a child process, both sides
//! spinning ([`WaitStrategy::Spin`](shmq::WaitStrategy::Spin)); `floor` (two atomics on shared
//! memory: no queue can beat it), `uds` (Unix socket pair), `pipe` (pipe pair), all to a forked
//! child ([`shmq_cli::baseline`]); `arrayqueue`: crossbeam's `ArrayQueue` to a thread of this process;
//! in the summary also `rtrb`'s SPSC ring between two threads (throughput).
//! Payloads are really written and read: a sequence number is stamped into each message and
//! checked at the other end, and every transport is checked byte by byte before it is timed.
//!
//! After criterion's groups a summary goes to stderr: round-trip percentiles from 200,000 timed
//! round trips per transport at 64 bytes, and the ratios shmq aims for.
//!
//! ```text
//! cargo bench --bench queue                            # everything (a few minutes)
//! cargo bench --bench queue -- round_trip/shmq_spsc    # criterion's usual filter
//! SHMQ_BENCH_SUMMARY=only cargo bench --bench queue    # just the summary (or =skip: no summary)
//! ```
//!
//! Caveats: the baselines' criterion round trips include one `fork` per sample (well under 1% of
//! a sample); the summary's per-round-trip samples include two clock reads (the same for every
//! transport). Segments live in a temporary directory under /dev/shm, removed at the end.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{child_main, progress, start_watchdog, Mode, ShmqPeer, ThreadPeer, CHILD_ENV};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use shmq::QueueKind;
use shmq_cli::baseline::{
    floor_round_trips, percentile, pipe_round_trips, pipe_throughput, uds_round_trips, uds_throughput,
};

const SIZES: [usize; 3] = [8, 64, 1024];
const SHMQ: [(&str, QueueKind); 2] = [("shmq_spsc", QueueKind::Spsc), ("shmq_mpmc", QueueKind::Mpmc)];

fn main() {
    // A child process re-executed by `ShmqPeer::start`: play the peer's part and nothing else.
    if let Ok(role) = std::env::var(CHILD_ENV) {
        std::process::exit(child_main(&role));
    }
    let dir = tempfile::Builder::new()
        .prefix("shmq-bench-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("create a temporary segment directory");
    start_watchdog(dir.path().to_path_buf(), Duration::from_secs(120));
    // A panic can turn into an abort (criterion prints from destructors, and a closed stdout makes
    // that panic again), which skips `dir`'s destructor: remove the directory on the first panic.
    let default_hook = std::panic::take_hook();
    let hook_dir = dir.path().to_path_buf();
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::fs::remove_dir_all(&hook_dir);
        default_hook(info);
    }));
    let args: Vec<String> = std::env::args().collect();
    let summary_env = std::env::var("SHMQ_BENCH_SUMMARY").unwrap_or_default();
    if summary_env != "only" {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(10)
            .configure_from_args();
        round_trip_group(&mut c, dir.path());
        throughput_group(&mut c, dir.path());
        c.final_summary();
    }
    if summary_env != "skip" && !args.iter().any(|a| a == "--list") {
        // `--test` (cargo test --benches) only smoke-tests the summary.
        summary(dir.path(), args.iter().any(|a| a == "--test"));
    }
}

/// Times `f`, which must succeed.
fn timed<T, E: std::fmt::Debug>(f: impl FnOnce() -> Result<T, E>) -> Duration {
    progress();
    let t = Instant::now();
    f().expect("baseline failed");
    t.elapsed()
}

fn round_trip_group(c: &mut Criterion, dir: &Path) {
    let mut g = c.benchmark_group("round_trip");
    for size in SIZES {
        for (name, kind) in SHMQ {
            // Started on first use, so a filtered-out benchmark starts no child.
            let mut peer = None;
            g.bench_function(BenchmarkId::new(name, size), |b| {
                let p = peer.get_or_insert_with(|| ShmqPeer::start(dir, kind, Mode::Echo, size));
                b.iter_custom(|n| p.round_trips(n))
            });
        }
        g.bench_function(BenchmarkId::new("floor", size), |b| {
            b.iter_custom(|n| timed(|| floor_round_trips(n as usize, size)))
        });
        g.bench_function(BenchmarkId::new("uds", size), |b| {
            b.iter_custom(|n| timed(|| uds_round_trips(n as usize, size)))
        });
        g.bench_function(BenchmarkId::new("pipe", size), |b| {
            b.iter_custom(|n| timed(|| pipe_round_trips(n as usize, size)))
        });
        match size {
            8 => array_queue_round_trip::<8>(&mut g),
            64 => array_queue_round_trip::<64>(&mut g),
            1024 => array_queue_round_trip::<1024>(&mut g),
            _ => unreachable!("add the ArrayQueue message type for {size} bytes"),
        }
    }
    g.finish();
}

fn array_queue_round_trip<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let mut peer = None;
    g.bench_function(BenchmarkId::new("arrayqueue", N), |b| {
        let p = peer.get_or_insert_with(|| ThreadPeer::<N>::start(Mode::Echo));
        b.iter_custom(|n| p.round_trips(n))
    });
}

/// The time `n` messages take at `rate` messages per second.
fn at_rate(n: u64, rate: std::io::Result<f64>) -> Duration {
    progress();
    Duration::from_secs_f64(n as f64 / rate.expect("baseline failed"))
}

fn throughput_group(c: &mut Criterion, dir: &Path) {
    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Elements(1));
    for size in SIZES {
        for (name, kind) in SHMQ {
            let mut peer = None;
            g.bench_function(BenchmarkId::new(name, size), |b| {
                let p = peer.get_or_insert_with(|| ShmqPeer::start(dir, kind, Mode::Drain, size));
                b.iter_custom(|n| p.stream(n))
            });
        }
        g.bench_function(BenchmarkId::new("uds", size), |b| {
            b.iter_custom(|n| at_rate(n, uds_throughput(n as usize, size)))
        });
        g.bench_function(BenchmarkId::new("pipe", size), |b| {
            b.iter_custom(|n| at_rate(n, pipe_throughput(n as usize, size)))
        });
        match size {
            8 => array_queue_stream::<8>(&mut g),
            64 => array_queue_stream::<64>(&mut g),
            1024 => array_queue_stream::<1024>(&mut g),
            _ => unreachable!("add the ArrayQueue message type for {size} bytes"),
        }
    }
    g.finish();
}

fn array_queue_stream<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let mut peer = None;
    g.bench_function(BenchmarkId::new("arrayqueue", N), |b| {
        let p = peer.get_or_insert_with(|| ThreadPeer::<N>::start(Mode::Drain));
        b.iter_custom(|n| p.stream(n))
    });
}

/// Message size of the summary.
const SUMMARY_SIZE: usize = 64;

/// p50, p99, p99.9 in nanoseconds.
fn percentiles(mut samples: Vec<u64>) -> [u64; 3] {
    progress();
    [50.0, 99.0, 99.9].map(|p| percentile(&mut samples, p))
}

/// The median of three runs of `f` (messages per second).
fn median_of_3(mut f: impl FnMut() -> f64) -> f64 {
    let mut runs = [f(), f(), f()];
    runs.sort_by(f64::total_cmp);
    runs[1]
}

fn summary(dir: &Path, quick: bool) {
    let (rounds, msgs, fd_msgs): (u64, u64, u64) =
        if quick { (2_000, 20_000, 5_000) } else { (200_000, 2_000_000, 500_000) };
    const S: usize = SUMMARY_SIZE;
    eprintln!("\nsummary ({S}-byte messages; {rounds} timed round trips per transport; throughput: median of 3 runs)");

    let shmq_samples = |kind| {
        let mut p = ShmqPeer::start(dir, kind, Mode::Echo, S);
        p.round_trips(rounds / 10); // warm-up
        percentiles(p.round_trip_samples(rounds))
    };
    let spsc = shmq_samples(QueueKind::Spsc);
    let mpmc = shmq_samples(QueueKind::Mpmc);
    let floor = percentiles(floor_round_trips(rounds as usize, S).expect("floor"));
    let uds = percentiles(uds_round_trips(rounds as usize, S).expect("uds"));
    let pipe = percentiles(pipe_round_trips(rounds as usize, S).expect("pipe"));
    let array_queue = {
        let mut p = ThreadPeer::<S>::start(Mode::Echo);
        p.round_trips(rounds / 10);
        percentiles(p.round_trip_samples(rounds))
    };

    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let shmq_rate = |kind| {
        let mut p = ShmqPeer::start(dir, kind, Mode::Drain, S);
        p.stream(msgs / 10);
        median_of_3(|| rate(msgs, p.stream(msgs)))
    };
    let spsc_tp = shmq_rate(QueueKind::Spsc);
    let mpmc_tp = shmq_rate(QueueKind::Mpmc);
    let array_queue_tp = {
        let mut p = ThreadPeer::<S>::start(Mode::Drain);
        p.stream(msgs / 10);
        median_of_3(|| rate(msgs, p.stream(msgs)))
    };
    let rtrb_tp = median_of_3(|| rate(msgs, rtrb_stream::<S>(msgs)));
    let uds_tp = median_of_3(|| uds_throughput(fd_msgs as usize, S).expect("uds throughput"));
    let pipe_tp = median_of_3(|| pipe_throughput(fd_msgs as usize, S).expect("pipe throughput"));
    progress();

    eprintln!("{:<28} {:>9} {:>9} {:>9} {:>14}", "transport", "rt p50", "rt p99", "rt p99.9", "throughput");
    let rows = [
        ("shmq spsc (2 processes)", spsc, Some(spsc_tp)),
        ("shmq mpmc 1P1C (2 processes)", mpmc, Some(mpmc_tp)),
        ("floor (2 atomics, 2 procs)", floor, None),
        ("unix socket pair", uds, Some(uds_tp)),
        ("pipe pair", pipe, Some(pipe_tp)),
        ("crossbeam ArrayQueue (2 thr)", array_queue, Some(array_queue_tp)),
    ];
    let rtrb_row = ("rtrb SPSC (2 thr)", Some(rtrb_tp));
    for (name, [p50, p99, p999], tp) in rows {
        let tp = tp.map_or("-".to_string(), |r| format!("{:.2} M/s", r / 1e6));
        eprintln!("{name:<28} {p50:>6} ns {p99:>6} ns {p999:>6} ns {tp:>14}");
    }
    eprintln!("{:<28} {:>9} {:>9} {:>9} {:>14}", rtrb_row.0, "-", "-", "-", format!("{:.2} M/s", rtrb_tp / 1e6));
    let check = |name: &str, value: f64, target: &str, ok: bool| {
        eprintln!("{name:<44} {value:>7.2}  (target {target}: {})", if ok { "met" } else { "MISSED" });
    };
    let spsc_over_floor = spsc[0] as f64 / floor[0] as f64;
    let uds_over_spsc = uds[0] as f64 / spsc[0] as f64;
    let mpmc_over_array_queue = mpmc_tp / array_queue_tp;
    check("shmq spsc round-trip p50 / floor p50", spsc_over_floor, "<= 1.5", spsc_over_floor <= 1.5);
    check("uds round-trip p50 / shmq spsc p50", uds_over_spsc, ">= 20", uds_over_spsc >= 20.0);
    check("shmq mpmc 1P1C throughput / ArrayQueue", mpmc_over_array_queue, ">= 1", mpmc_over_array_queue >= 1.0);
    let spsc_over_rtrb = spsc_tp / rtrb_tp;
    check("shmq spsc throughput / rtrb (in one process)", spsc_over_rtrb, ">= 1", spsc_over_rtrb >= 1.0);
}

/// One-way throughput of `rtrb`'s SPSC ring between two threads of this process: `n` messages
/// of `S` bytes, each stamped with its sequence number and checked by the consumer; both spin.
fn rtrb_stream<const S: usize>(n: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; S]>::new(1024);
    let consumer = std::thread::spawn(move || {
        for seq in 0..n {
            let m = loop {
                match rx.pop() {
                    Ok(m) => break m,
                    Err(_) => std::hint::spin_loop(),
                }
            };
            assert_eq!(common::seq_of(&m), seq, "rtrb delivered message {seq} wrong");
        }
    });
    let start = Instant::now();
    for seq in 0..n {
        let mut m = [0u8; S];
        common::stamp(&mut m, seq);
        while let Err(rtrb::PushError::Full(back)) = tx.push(m) {
            m = back;
            std::hint::spin_loop();
        }
    }
    consumer.join().expect("rtrb consumer");
    start.elapsed()
}
