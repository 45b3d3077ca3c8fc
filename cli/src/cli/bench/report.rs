//! The report of `shmq bench`: the header, the table, the ratios, the targets, and the
//! JSON object.

use crate::cli::units::{nanos, si};
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};
use shmq_cli::baseline;

use super::stats::{Summary, PERCENTILES};
use super::worker::Pattern;
use super::{Idle, Plan, IDLE_WINDOW, RTT_CAPACITY};
use crate::cli::{CliResult, Out, WaitArg};

/// One system's results: medians across repetitions.
pub struct Outcome {
    pub name: &'static str,
    pub rtt: Summary,
    pub tput: Option<f64>,
    /// Each repetition's round-trip p50 and p99.9, in order.
    pub reps: Vec<[u64; 2]>,
    /// Each repetition's throughput, in order.
    pub tput_reps: Vec<f64>,
}

/// What the machine was like.
pub struct Machine {
    cpus: usize,
    allowed: Vec<usize>,
    model: Option<String>,
    kernel: Option<String>,
    load: Option<f64>,
}

pub fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        allowed: baseline::allowed_cpus().unwrap_or_default(),
        model: read("/proc/cpuinfo").and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().into())
        }),
        kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().into()),
        load: read("/proc/loadavg").and_then(|s| s.split_whitespace().next().and_then(|w| w.parse().ok())),
    }
}

pub fn header(plan: &Plan, m: &Machine, out: &mut Out) -> CliResult {
    let kind = match plan.pattern {
        Pattern::Spsc => "SPSC queues",
        Pattern::Mpmc => "MPMC queues",
        Pattern::Topic => "topics with one subscriber each",
    };
    let pin = plan.pin.map_or("not pinned (see --pin)".to_string(), |[a, b]| format!("pinned to CPUs {a},{b}"));
    writeln!(
        out,
        "shmq bench: {}, {}-byte messages, {} wait, {} reps, {pin}",
        plan.pattern.name(),
        plan.size,
        plan.wait.name(),
        plan.reps
    )?;
    writeln!(
        out,
        "  round trip: {} per rep (after {} warm-up) between two processes through two {kind} of {RTT_CAPACITY} slots",
        plan.count, plan.warmup
    )?;
    let flow = match plan.pattern {
        Pattern::Topic => format!(
            "1 publisher -> {} subscriber process(es), every one receiving every message; counts messages published",
            plan.receivers
        ),
        _ => format!("{} producer -> {} consumer process(es)", plan.senders, plan.receivers),
    };
    writeln!(out, "  throughput: {} messages per rep, {flow}; ring of {} slots", plan.count, plan.capacity)?;
    if plan.baselines {
        writeln!(
            out,
            "  baselines: floor = two atomics on shared memory, spinning; uds = AF_UNIX SOCK_SEQPACKET pair; \
             pipe = two pipes (blocking reads; throughput 1 writer -> 1 reader)"
        )?;
    }
    let load = m.load.map_or(String::new(), |l| format!(", load average {l:.2} at start"));
    writeln!(
        out,
        "machine: {} CPUs ({} allowed){}{load}{}",
        m.cpus,
        m.allowed.len(),
        m.model.as_deref().map_or(String::new(), |s| format!(", {s}")),
        m.kernel.as_deref().map_or(String::new(), |k| format!(", Linux {k}"))
    )?;
    Ok(())
}

/// Everything the report shows.
pub struct Report<'a> {
    pub plan: &'a Plan,
    pub results: &'a [Outcome],
    /// The bare ring's throughput (median across reps), when baselines ran.
    pub bare: Option<f64>,
    pub idle: Option<Idle>,
    pub machine: &'a Machine,
    pub elapsed: Duration,
}

/// A target, checked against this run.
struct Target {
    what: &'static str,
    value: f64,
    limit: f64,
    met: bool,
    shown: String,
}

impl Report<'_> {
    fn get(&self, name: &str) -> Option<&Outcome> {
        self.results.iter().find(|r| r.name == name)
    }

    /// `a`'s percentile `i` over `b`'s (index 5: max).
    fn ratio(&self, a: &str, b: &str, i: usize) -> Option<f64> {
        let pick = |o: &Outcome| if i < 5 { o.rtt.percentiles[i] } else { o.rtt.max };
        Some(pick(self.get(a)?) as f64 / pick(self.get(b)?).max(1) as f64)
    }

    /// shmq's round-trip p50 over the floor's, in each repetition (measured back to back).
    fn floor_ratio_per_rep(&self) -> Option<Vec<f64>> {
        let (s, f) = (self.get("shmq")?, self.get("floor")?);
        Some(s.reps.iter().zip(&f.reps).map(|(s, f)| s[0] as f64 / f[0].max(1) as f64).collect())
    }

    fn ratios(&self) -> Vec<(&'static str, Option<f64>)> {
        let tput = match (self.get("shmq").and_then(|o| o.tput), self.get("uds").and_then(|o| o.tput)) {
            (Some(s), Some(u)) => Some(s / u),
            _ => None,
        };
        vec![
            ("shmq_over_floor_p50", self.ratio("shmq", "floor", 0)),
            ("shmq_over_floor_p999", self.ratio("shmq", "floor", 3)),
            ("uds_over_shmq_p50", self.ratio("uds", "shmq", 0)),
            ("pipe_over_shmq_p50", self.ratio("pipe", "shmq", 0)),
            ("throughput_shmq_over_uds", tput),
            ("throughput_shmq_over_bare_ring", self.over_bare()),
        ]
    }

    /// shmq's throughput over the bare ring's.
    fn over_bare(&self) -> Option<f64> {
        Some(self.get("shmq")?.tput? / self.bare.filter(|&b| b > 0.0)?)
    }

    /// The performance targets that apply to this run (with baselines): the same ratios as
    /// `shmq-perf` (`perf/`), measured by this binary's harness. Round trips need a spinning
    /// wait; throughput targets hold for one sender and one receiver.
    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        if !self.plan.baselines {
            return t;
        }
        let r = |a, b, i| self.ratio(a, b, i).unwrap_or(f64::NAN);
        let x = |v: f64| format!("{v:.2}x");
        let at_most = |what, v: f64, limit| Target { what, value: v, limit, met: v <= limit, shown: x(v) };
        let at_least = |what, v: f64, limit| Target { what, value: v, limit, met: v >= limit, shown: x(v) };
        let (pattern, small) = (self.plan.pattern, self.plan.size <= 8);
        if self.plan.wait == WaitArg::Block {
            if pattern == Pattern::Spsc {
                let v = r("shmq", "uds", 0);
                t.push(Target {
                    what: "block: round trip p50 no worse than the Unix socket pair",
                    value: v,
                    limit: 1.0,
                    met: v <= 1.0,
                    shown: format!("shmq/uds {}", x(v)),
                });
            }
            if let Some(idle) = self.idle {
                let ms = idle.cpu.as_secs_f64() * 1e3;
                t.push(Target {
                    what: "block: no CPU used while idle",
                    value: ms,
                    limit: 0.0,
                    met: idle.cpu.is_zero(),
                    shown: format!("{ms:.0} ms of CPU in {} ms", IDLE_WINDOW.as_millis()),
                });
            }
            return t;
        }
        let (p50, p999) = (r("shmq", "floor", 0), r("shmq", "floor", 3));
        match pattern {
            Pattern::Spsc if small => t.push(at_most("SPSC round trip p50 within 1.3x of the floor (8 B)", p50, 1.3)),
            Pattern::Spsc => t.push(at_most("SPSC round trip p50 within 1.5x of the floor (64 B)", p50, 1.5)),
            Pattern::Topic => t.push(at_most("topic round trip p50 within 1.5x of the floor", p50, 1.5)),
            Pattern::Mpmc => {}
        }
        if pattern != Pattern::Mpmc {
            t.push(at_most("round trip p99.9 within 2.5x of the floor's p99.9", p999, 2.5));
            t.push(at_least("round trip p50 at least 30x lower than the Unix socket pair", r("uds", "shmq", 0), 30.0));
        }
        let one_to_one = self.plan.senders == 1 && self.plan.receivers == 1;
        if let (Some(v), true) = (self.over_bare(), one_to_one) {
            t.push(match pattern {
                Pattern::Spsc => at_least("SPSC throughput at least 0.9x the bare ring", v, 0.9),
                Pattern::Mpmc => at_least("MPMC 1P1C throughput at least 0.6x the bare ring", v, 0.6),
                Pattern::Topic => at_least("topic (1 subscriber) throughput at least 0.6x the bare ring", v, 0.6),
            });
        }
        t
    }

    pub fn text(&self, out: &mut Out) -> CliResult {
        writeln!(out)?;
        write!(out, "{:<18}", "round trip")?;
        for r in self.results {
            write!(out, "{:>12}", r.name)?;
        }
        writeln!(out)?;
        for (i, (_, label, _)) in PERCENTILES.iter().enumerate() {
            write!(out, "  {label:<16}")?;
            for r in self.results {
                write!(out, "{:>12}", nanos(r.rtt.percentiles[i]))?;
            }
            writeln!(out)?;
        }
        write!(out, "  {:<16}", "max")?;
        for r in self.results {
            write!(out, "{:>12}", nanos(r.rtt.max))?;
        }
        writeln!(out)?;
        write!(out, "{:<18}", "throughput msg/s")?;
        for r in self.results {
            write!(out, "{:>12}", r.tput.map_or("-".to_string(), si))?;
        }
        writeln!(out)?;
        writeln!(out)?;
        if self.plan.baselines {
            let r = self.ratios();
            let f = |i: usize| r[i].1.map_or("-".into(), |v| format!("{v:.2}x"));
            if let Some(b) = self.bare {
                writeln!(out, "bare ring (a minimal shared-memory SPSC ring, throughput only): {} msg/s", si(b))?;
            }
            writeln!(
                out,
                "ratios: shmq/floor p50 {}, p99.9 {}; uds/shmq p50 {}; pipe/shmq p50 {}; throughput shmq/uds {}, shmq/bare ring {}",
                f(0),
                f(1),
                f(2),
                f(3),
                f(4),
                f(5)
            )?;
        }
        write!(out, "per rep, round trip p50:")?;
        for r in self.results {
            let v: Vec<String> = r.reps.iter().map(|p| p[0].to_string()).collect();
            write!(out, " {} {} ns;", r.name, v.join(" "))?;
        }
        if let Some(v) = self.floor_ratio_per_rep() {
            let v: Vec<String> = v.iter().map(|x| format!("{x:.2}x")).collect();
            write!(out, " shmq/floor {}", v.join(" "))?;
        }
        writeln!(out)?;
        if let Some(idle) = self.idle {
            writeln!(
                out,
                "idle: the blocked echo process used {:.0} ms of CPU in {} ms without messages \
                 (/proc utime+stime, clock-tick resolution); the round trip that woke it took {}",
                idle.cpu.as_secs_f64() * 1e3,
                IDLE_WINDOW.as_millis(),
                nanos(idle.wake_ns)
            )?;
        }
        writeln!(
            out,
            "method: each percentile is the median across {} reps of that rep's percentile (HDR histogram, \
             3 significant digits); max and throughput are medians across reps too",
            self.plan.reps
        )?;
        let targets = self.targets();
        if !targets.is_empty() {
            writeln!(out, "targets (this run; shmq-perf checks them as users build):")?;
            for t in &targets {
                writeln!(out, "  [{}] {}: {}", if t.met { "met" } else { "NOT met" }, t.what, t.shown)?;
            }
        }
        if let Some(p) = &self.plan.plot {
            writeln!(out, "plot: {}", p.display())?;
        }
        writeln!(out, "done in {:.1} s", self.elapsed.as_secs_f64())?;
        Ok(())
    }

    pub fn json(&self) -> Value {
        let results: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let mut rtt = serde_json::Map::new();
                for (i, (key, _, _)) in PERCENTILES.iter().enumerate() {
                    rtt.insert((*key).into(), json!(r.rtt.percentiles[i]));
                }
                rtt.insert("max".into(), json!(r.rtt.max));
                json!({"name": r.name, "rtt_ns": rtt, "throughput_msgs_per_s": r.tput})
            })
            .collect();
        let p = self.plan;
        let ratios: serde_json::Map<String, Value> = if p.baselines {
            self.ratios().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
        } else {
            serde_json::Map::new()
        };
        let targets: Vec<Value> = self
            .targets()
            .iter()
            .map(|t| json!({"target": t.what, "value": t.value, "limit": t.limit, "met": t.met}))
            .collect();
        let m = self.machine;
        json!({
            "pattern": p.pattern.name(),
            "size": p.size,
            "count": p.count,
            "warmup": p.warmup,
            "reps": p.reps,
            "wait": p.wait.name(),
            "pin": p.pin,
            "producers": (p.pattern != Pattern::Topic).then_some(p.senders),
            "consumers": (p.pattern != Pattern::Topic).then_some(p.receivers),
            "subscribers": (p.pattern == Pattern::Topic).then_some(p.receivers),
            "statistic": "median across reps of each rep's value",
            "results": results,
            "bare_ring_throughput_msgs_per_s": self.bare,
            "ratios": if p.baselines { Value::Object(ratios) } else { Value::Null },
            "shmq_over_floor_p50_per_rep": self.floor_ratio_per_rep(),
            "per_rep": self.results.iter().map(|r| (r.name.to_string(), json!({
                "rtt_p50_ns": r.reps.iter().map(|p| p[0]).collect::<Vec<_>>(),
                "rtt_p999_ns": r.reps.iter().map(|p| p[1]).collect::<Vec<_>>(),
                "throughput_msgs_per_s": r.tput_reps,
            }))).collect::<serde_json::Map<_, _>>(),
            "idle_cpu": self.idle.map(|i| json!({
                "process": "echo",
                "window_ms": IDLE_WINDOW.as_millis() as u64,
                "cpu_ms": i.cpu.as_secs_f64() * 1e3,
                "wake_rtt_ns": i.wake_ns,
            })),
            "targets": targets,
            "plot": p.plot.as_ref().map(|f| f.display().to_string()),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "machine": {
                "cpus": m.cpus,
                "allowed_cpus": m.allowed,
                "model": m.model,
                "kernel": m.kernel,
                "load_avg_1m": m.load,
            },
        })
    }
}
