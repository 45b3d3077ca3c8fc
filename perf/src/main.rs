//! `shmq-perf`: shmq measured as a user's application builds it (the default release profile:
//! no LTO, default codegen units), between two processes on two CPUs, beside the baselines
//! that tell what the numbers mean: a floor of two atomics, a bare SPSC ring, a futex
//! ping-pong.
//!
//! `cargo run --release -p shmq-perf -- [--reps N] [--count N] [--rounds N] [--json]
//! [--only ROW,...] [--smoke]`; see perf/README.md.
//!
//! The second process is this binary re-executed (`shmq-perf peer ...`, see [`peer`]). Each
//! repetition of each measurement starts a fresh peer on fresh segments; repetitions are
//! interleaved across measurements (rep 1 of every row, then rep 2, ...), so that a slow
//! moment of the machine does not fall on one row only.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod bare_ring;
mod floor;
mod futex;
mod machine;
mod payload;
mod peer;
mod report;
mod rows;
mod shm;
mod shmq_rows;
mod stats;
mod watch;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

use machine::{Build, Machine};
use report::Results;
use rows::{Plan, RowId, Unit};

/// Errors are messages.
pub type Res<T> = Result<T, String>;

/// shmq measured as users build it: round trips and throughput between two processes.
#[derive(Debug, Parser)]
#[command(name = "shmq-perf", version, about)]
struct Args {
    /// Repetitions of every measurement; each statistic is the median across them [default: 5;
    /// --smoke: 1].
    #[arg(long)]
    reps: Option<usize>,
    /// Messages per throughput repetition [default: 10000000; --smoke: 5000].
    #[arg(long)]
    count: Option<u64>,
    /// Timed round trips per spinning round-trip repetition [default: 100000; --smoke: 2000].
    #[arg(long)]
    rounds: Option<u64>,
    /// Timed round trips per repetition of the sleeping rows (futex, block) [default: 2000;
    /// --smoke: 50].
    #[arg(long)]
    sleep_rounds: Option<u64>,
    /// The requester's sleep before each ping of the sleeping rows, in microseconds (not timed;
    /// it then also waits until the peer shows as asleep).
    #[arg(long, default_value_t = 200)]
    gap_us: u64,
    /// One JSON object on stdout instead of the table (fields in perf/README.md).
    #[arg(long)]
    json: bool,
    /// Only these rows (comma-separated; ratios need their baseline row too). `waitset` (a
    /// WaitSet's wake-up over 1, 8 and 64 streams, against `block`), `call` and `group` (a
    /// consumer group of 1, 2 and 4 member processes, against `topic`) run only when named here.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<RowId>,
    /// A quick correctness run: a few thousand messages, 1 repetition, every payload checked;
    /// exits 0 when all arrived intact. Also allowed in a debug build (numbers meaningless).
    #[arg(long)]
    smoke: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// The second process of a measurement (started by shmq-perf itself).
    #[command(hide = true)]
    Peer(peer::PeerArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Cmd::Peer(p)) = &args.cmd {
        return ExitCode::from(peer::main(p, rows::peer) as u8);
    }
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shmq-perf: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Pins this process to the first allowed CPU and returns `[ours, the peer's]`, if at least
/// two are allowed and pinning works.
fn pin() -> Option<[usize; 2]> {
    let cpus = shmq_cli::baseline::allowed_cpus().ok()?;
    if cpus.len() < 2 {
        eprintln!("shmq-perf: only {} CPU allowed: not pinning; spinning rows will be slow", cpus.len());
        return None;
    }
    match shmq_cli::baseline::pin_thread_forever(cpus[0]) {
        Ok(()) => Some([cpus[0], cpus[1]]),
        Err(e) => {
            eprintln!("shmq-perf: not pinning ({e})");
            None
        }
    }
}

fn run(args: &Args) -> Res<ExitCode> {
    let build = Build::this();
    let machine = Machine::read(); // before pinning: the CPUs the process may use
    if build.debug_assertions && !args.smoke {
        eprintln!(
            "shmq-perf: this is a debug build ({}); its numbers would mean nothing.\n\
             Run `cargo run --release -p shmq-perf`, or `--smoke` for a correctness check only.",
            build.line()
        );
        return Ok(ExitCode::from(2));
    }
    let (count, rounds, sleep_rounds, reps) =
        if args.smoke { (5_000, 2_000, 50, 1) } else { (10_000_000, 100_000, 2_000, 5) };
    let reps = args.reps.unwrap_or(reps).max(1);
    let plan = Plan {
        count: args.count.unwrap_or(count).max(2),
        rounds: args.rounds.unwrap_or(rounds).max(1),
        sleep_rounds: args.sleep_rounds.unwrap_or(sleep_rounds).max(1),
        gap: Duration::from_micros(args.gap_us),
        cpus: None,
        member_cpus: Vec::new(),
    };
    let rows: Vec<RowId> = if args.only.is_empty() {
        RowId::DEFAULT.to_vec()
    } else {
        RowId::all().filter(|r| args.only.contains(r)).collect()
    };
    let units: Vec<Unit> = rows.iter().flat_map(|r| r.units().iter().copied()).collect();
    let cpus = pin();
    // A consumer group's members go on every allowed CPU but the measuring process's.
    let member_cpus = match cpus {
        Some([ours, _]) => machine.cpus_allowed.iter().copied().filter(|&c| c != ours).collect(),
        None => Vec::new(),
    };
    let plan = Plan { cpus, member_cpus, ..plan };

    if !args.json {
        print_header(&machine, &build, &plan, reps, args.smoke);
    }
    let started = Instant::now();
    let mut results = Results::default();
    let progress = std::io::stderr().is_terminal();
    for rep in 0..reps {
        for &unit in &units {
            if progress {
                eprint!("\rrep {}/{reps}: {:<20}", rep + 1, unit.name());
                let _ = std::io::stderr().flush();
            }
            let r = rows::run(&plan, unit, rep).map_err(|e| format!("{} (rep {}): {e}", unit.name(), rep + 1))?;
            results.push(unit, r);
        }
    }
    if progress {
        eprintln!("\rdone in {:.1} s{:<30}", started.elapsed().as_secs_f64(), "");
    }

    let loadavg_end = machine::loadavg();
    if args.json {
        let mut out = serde_json::Map::new();
        out.insert("tool".into(), json!("shmq-perf"));
        out.insert("schema".into(), json!(1));
        out.insert("date_utc".into(), json!(machine.date_utc));
        out.insert("machine".into(), machine.json());
        out.insert("loadavg_end".into(), json!(loadavg_end));
        out.insert("build".into(), build.json());
        out.insert("config".into(), config_json(&plan, reps, args.smoke, &rows));
        out.insert("elapsed_secs".into(), json!(started.elapsed().as_secs_f64()));
        out.extend(results.json());
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!("{}", results.table(&rows));
        println!("load average at the end: {:.2} {:.2} {:.2}", loadavg_end[0], loadavg_end[1], loadavg_end[2]);
        if args.smoke {
            println!("smoke: every payload arrived intact and in order");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_header(m: &Machine, b: &Build, plan: &Plan, reps: usize, smoke: bool) {
    println!("shmq-perf: shmq as users build it (plain release profile), two processes");
    println!("date:    {}", m.date_utc);
    println!(
        "machine: {}, {} CPUs online, allowed {:?}, kernel {}, load average {:.2} {:.2} {:.2}",
        m.cpu_model, m.cpus_online, m.cpus_allowed, m.kernel, m.loadavg[0], m.loadavg[1], m.loadavg[2]
    );
    println!("build:   {}", b.line());
    let pin = match plan.cpus {
        Some([a, b]) => format!("measuring process on CPU {a}, peer on CPU {b}"),
        None => "not pinned".into(),
    };
    println!(
        "plan:    {reps} reps (medians shown); {} messages per throughput rep; {} round trips per RTT rep \
         ({} for futex/block, {} us apart); {pin}{}",
        plan.count,
        plan.rounds,
        plan.sleep_rounds,
        plan.gap.as_micros(),
        if smoke { "; SMOKE run" } else { "" }
    );
    if b.debug_assertions {
        println!("         debug build: a smoke check only, the numbers mean nothing");
    }
    println!();
}

fn config_json(plan: &Plan, reps: usize, smoke: bool, rows: &[RowId]) -> serde_json::Value {
    json!({
        "reps": reps,
        "count": plan.count,
        "rounds": plan.rounds,
        "sleep_rounds": plan.sleep_rounds,
        "warmup_rounds": plan.warmup(Unit::FloorRtt),
        "sleep_warmup_rounds": plan.warmup(Unit::FutexRtt),
        "gap_us": plan.gap.as_micros() as u64,
        "capacity": shmq_rows::CAPACITY,
        "batch": shmq_rows::BATCH,
        "pinned_cpus": plan.cpus,
        "member_cpus": plan.member_cpus,
        "smoke": smoke,
        "rows": rows.iter().map(|r| r.name()).collect::<Vec<_>>(),
    })
}
