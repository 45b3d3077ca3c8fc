//! The results: medians across repetitions, the ratios to the baselines, the targets, and the
//! two outputs (the human table, and `--json`; its fields are documented in perf/README.md).
//!
//! A ratio is the row's median over the baseline's median. Repetitions are interleaved across
//! rows, so rep `i` of a row and rep `i` of its baseline ran moments apart; `--json` also gives
//! those per-repetition ratios (`ratios_per_rep`), which this VM's changes of speed between
//! repetitions affect less.

use serde_json::{json, Map, Value};

use crate::rows::{Rep, RowId, Unit};
use crate::stats::{median, RttRep, TputRep};

/// Every repetition of every measurement that ran, in table order.
#[derive(Default)]
pub struct Results {
    units: Vec<(Unit, Vec<Rep>)>,
}

/// A ratio of a measurement's median to a baseline's.
#[derive(Clone, Copy)]
struct Ratio {
    unit: Unit,
    /// `p50`, `p999` or `tput`.
    stat: &'static str,
    base: Unit,
}

impl Ratio {
    fn name(&self) -> String {
        let base = match self.base {
            Unit::FloorRtt => "floor",
            Unit::FutexRtt => "futex",
            Unit::BlockRtt8 => "block",
            Unit::SpscRtt8 => "spsc_rtt_8",
            Unit::SpscRtt64 => "spsc_rtt_64",
            Unit::TopicTput64 => "topic_tput_64",
            _ => "bare_ring",
        };
        match self.stat {
            "tput" => format!("{}_vs_{base}", self.unit.name()),
            s => format!("{}_{s}_vs_{base}", self.unit.name()),
        }
    }
}

const fn ratio(unit: Unit, stat: &'static str, base: Unit) -> Ratio {
    Ratio { unit, stat, base }
}

/// Every ratio the table shows.
const RATIOS: [Ratio; 26] = [
    ratio(Unit::SpscRtt8, "p50", Unit::FloorRtt),
    ratio(Unit::SpscRtt8, "p999", Unit::FloorRtt),
    ratio(Unit::SpscRtt64, "p50", Unit::FloorRtt),
    ratio(Unit::SpscRtt64, "p999", Unit::FloorRtt),
    ratio(Unit::TopicRtt8, "p50", Unit::FloorRtt),
    ratio(Unit::TopicRtt8, "p999", Unit::FloorRtt),
    ratio(Unit::TopicRtt64, "p50", Unit::FloorRtt),
    ratio(Unit::TopicRtt64, "p999", Unit::FloorRtt),
    ratio(Unit::SpscTput64, "tput", Unit::BareTput64),
    ratio(Unit::TopicTput64, "tput", Unit::BareTput64),
    ratio(Unit::MpmcTput64, "tput", Unit::BareTput64),
    ratio(Unit::BatchTput64, "tput", Unit::BareTput64),
    ratio(Unit::BlockRtt8, "p50", Unit::FutexRtt),
    ratio(Unit::BlockRtt8, "p999", Unit::FutexRtt),
    ratio(Unit::WaitRtt1, "p50", Unit::BlockRtt8),
    ratio(Unit::WaitRtt8, "p50", Unit::BlockRtt8),
    ratio(Unit::WaitRtt64, "p50", Unit::BlockRtt8),
    ratio(Unit::CallRtt8, "p50", Unit::SpscRtt8),
    ratio(Unit::CallRtt8, "p999", Unit::SpscRtt8),
    ratio(Unit::CallRtt64, "p50", Unit::SpscRtt64),
    ratio(Unit::CallRtt64, "p999", Unit::SpscRtt64),
    ratio(Unit::CallRtt8, "p50", Unit::FloorRtt),
    ratio(Unit::CallRtt64, "p50", Unit::FloorRtt),
    ratio(Unit::GroupTput1, "tput", Unit::TopicTput64),
    ratio(Unit::GroupTput2, "tput", Unit::TopicTput64),
    ratio(Unit::GroupTput4, "tput", Unit::TopicTput64),
];

/// A target: `ratio <= limit` (`at_most`) or `ratio >= limit`.
struct Target {
    ratio: Ratio,
    at_most: bool,
    limit: f64,
}

const fn at_most(ratio: Ratio, limit: f64) -> Target {
    Target { ratio, at_most: true, limit }
}

const fn at_least(ratio: Ratio, limit: f64) -> Target {
    Target { ratio, at_most: false, limit }
}

/// The targets.
const TARGETS: [Target; 15] = [
    at_most(RATIOS[0], 1.3),
    at_most(RATIOS[2], 1.5),
    at_most(RATIOS[4], 1.5),
    at_most(RATIOS[6], 1.5),
    at_most(RATIOS[1], 2.5),
    at_most(RATIOS[3], 2.5),
    at_most(RATIOS[5], 2.5),
    at_most(RATIOS[7], 2.5),
    at_least(RATIOS[8], 0.9),
    at_least(RATIOS[10], 0.6),
    at_least(RATIOS[9], 0.6),
    at_least(RATIOS[11], 1.5),
    at_most(RATIOS[12], 1.2),
    at_most(RATIOS[17], 1.5),
    at_most(RATIOS[19], 1.5),
];

impl Results {
    /// Adds one repetition of `unit`.
    pub fn push(&mut self, unit: Unit, rep: Rep) {
        match self.units.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, reps)) => reps.push(rep),
            None => self.units.push((unit, vec![rep])),
        }
    }

    fn rtts(&self, unit: Unit) -> Vec<RttRep> {
        self.reps(unit).filter_map(|r| if let Rep::Rtt(r) = r { Some(*r) } else { None }).collect()
    }

    fn tputs(&self, unit: Unit) -> Vec<TputRep> {
        self.reps(unit).filter_map(|r| if let Rep::Tput(r) = r { Some(*r) } else { None }).collect()
    }

    fn reps(&self, unit: Unit) -> impl Iterator<Item = &Rep> {
        self.units.iter().filter(move |(u, _)| *u == unit).flat_map(|(_, r)| r)
    }

    /// The median of statistic `stat` (`p50`, `p999`, `tput`) of `unit`, if it ran.
    fn stat(&self, unit: Unit, stat: &str) -> Option<f64> {
        Some(median(self.per_rep(unit, stat))).filter(|v| !v.is_nan())
    }

    /// Statistic `stat` of each repetition of `unit`.
    fn per_rep(&self, unit: Unit, stat: &str) -> Vec<f64> {
        match stat {
            "p50" => self.rtts(unit).iter().map(|r| r.p50_ns as f64).collect(),
            "p999" => self.rtts(unit).iter().map(|r| r.p999_ns as f64).collect(),
            _ => self.tputs(unit).iter().map(|r| r.msgs_per_sec).collect(),
        }
    }

    /// The ratio within each repetition (rep `i` of the row over rep `i` of its baseline, run
    /// moments apart), if both ran.
    fn ratio_per_rep(&self, r: Ratio) -> Option<Vec<f64>> {
        let (a, b) = (self.per_rep(r.unit, r.stat), self.per_rep(r.base, r.stat));
        (!a.is_empty() && a.len() == b.len()).then(|| a.iter().zip(&b).map(|(x, y)| x / y).collect())
    }

    fn ratio(&self, r: Ratio) -> Option<f64> {
        Some(self.stat(r.unit, r.stat)? / self.stat(r.base, r.stat)?)
    }

    /// `(name, ratio, op, limit, met)` of every target whose two sides ran.
    fn targets(&self) -> Vec<(String, f64, &'static str, f64, bool)> {
        TARGETS
            .iter()
            .filter_map(|t| {
                let v = self.ratio(t.ratio)?;
                let met = if t.at_most { v <= t.limit } else { v >= t.limit };
                Some((t.ratio.name(), v, if t.at_most { "<=" } else { ">=" }, t.limit, met))
            })
            .collect()
    }

    /// Names of the targets missed.
    pub fn missed(&self) -> Vec<String> {
        self.targets().into_iter().filter(|t| !t.4).map(|t| t.0).collect()
    }

    // -----------------------------------------------------------------------------------------
    // The human table

    fn rtt_cell(&self, units: &[Unit], stat: &str) -> String {
        let vals: Vec<String> = units.iter().filter_map(|&u| self.stat(u, stat)).map(ns).collect();
        if vals.is_empty() {
            return "-".into();
        }
        let ratios: Vec<String> = units
            .iter()
            .filter_map(|&u| RATIOS.iter().find(|r| r.unit == u && r.stat == stat))
            .filter_map(|&r| self.ratio(r))
            .map(|x| format!("{x:.2}x"))
            .collect();
        if ratios.is_empty() {
            vals.join(" / ")
        } else {
            format!("{} ({})", vals.join(" / "), ratios.join(" / "))
        }
    }

    /// The row's throughputs (`a / b / c M/s`, for the group row), with their ratios.
    fn tput_cell(&self, units: &[Unit]) -> String {
        let units: Vec<Unit> = units.iter().copied().filter(|u| !u.is_rtt()).collect();
        let vals: Vec<String> =
            units.iter().filter_map(|&u| self.stat(u, "tput")).map(|v| format!("{:.1}", v / 1e6)).collect();
        if vals.is_empty() {
            return "-".into();
        }
        let ratios: Vec<String> = units
            .iter()
            .filter_map(|&u| RATIOS.iter().find(|r| r.unit == u && r.stat == "tput"))
            .filter_map(|&r| self.ratio(r))
            .map(|x| format!("{x:.2}x"))
            .collect();
        if ratios.is_empty() {
            format!("{} M/s", vals.join(" / "))
        } else {
            format!("{} M/s ({})", vals.join(" / "), ratios.join(" / "))
        }
    }

    /// The table, the targets and the sleeping rows' facts.
    pub fn table(&self, rows: &[RowId]) -> String {
        let mut lines =
            vec![["row".to_string(), "RTT p50".to_string(), "RTT p99.9".to_string(), "one-way throughput".to_string()]];
        for &row in rows {
            let rtt: Vec<Unit> = row.units().iter().copied().filter(|u| u.is_rtt()).collect();
            lines.push([
                row.label().to_string(),
                self.rtt_cell(&rtt, "p50"),
                self.rtt_cell(&rtt, "p999"),
                self.tput_cell(row.units()),
            ]);
        }
        let w: Vec<usize> = (0..4).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l.iter().zip(&w).map(|(c, w)| format!("{c:<w$}")).collect();
            out += cells.join(" | ").trim_end();
            out += "\n";
            if i == 0 {
                out += &w.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-|-");
                out += "\n";
            }
        }
        out += "\nRTT ratios: to the floor (futex ping-pong for the Block row, a blocked recv for the WaitSet, the SPSC round trip of the same size for calls); throughput ratios: to the bare ring.\n";
        if rows.contains(&RowId::Group) {
            out += "Group throughput: messages per second received by all the members together; ratios to the topic row's throughput (one reliable subscriber, 64 B).\n";
        }
        let targets = self.targets();
        if !targets.is_empty() {
            out += "\ntargets:\n";
            for (name, v, op, limit, met) in targets {
                out += &format!("  {:<4} {name:<36} {v:>6.2}x {op} {limit}x\n", if met { "ok" } else { "MISS" });
            }
        }
        for unit in [Unit::GroupTput2, Unit::GroupTput4] {
            let shares: Vec<f64> = self
                .tputs(unit)
                .iter()
                .filter_map(|r| r.group)
                .flat_map(|g| {
                    g.received
                        .into_iter()
                        .take(g.members)
                        .map(move |n| n as f64 / g.received.iter().sum::<u64>().max(1) as f64)
                })
                .collect();
            if !shares.is_empty() {
                let (lo, hi) = shares.iter().fold((f64::MAX, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
                out += &format!(
                    "\n{}: each message to exactly one member (checked); members' shares {:.0}% to {:.0}% (all reps)",
                    unit.name(),
                    lo * 100.0,
                    hi * 100.0
                );
            }
        }
        for unit in [Unit::FutexRtt, Unit::BlockRtt8, Unit::WaitRtt1, Unit::WaitRtt8, Unit::WaitRtt64] {
            let reps = self.rtts(unit);
            let facts: Vec<_> = reps.iter().filter_map(|r| r.sleeps.map(|s| (r.rounds, s))).collect();
            if facts.is_empty() {
                continue;
            }
            let req = median(facts.iter().map(|(n, s)| s.requester_slept_rounds as f64 / *n as f64));
            let resp = median(facts.iter().map(|(n, s)| s.responder_sleeps as f64 / *n as f64));
            let extra = median(facts.iter().map(|(n, s)| s.extra_asleep_checks as f64 / *n as f64));
            out += &format!(
                "\n{}: responder asleep before every ping; its sleeps per round {resp:.2}; requester slept \
                 waiting for the pong in {:.0}% of rounds; extra 20 us checks per round {extra:.2}",
                unit.name(),
                req * 100.0
            );
        }
        out.push('\n');
        out
    }

    // -----------------------------------------------------------------------------------------
    // JSON

    /// The `measurements`, `ratios`, `targets` and `targets_missed` fields.
    pub fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (unit, reps) in &self.units {
            let per_rep: Vec<Value> = reps.iter().map(rep_json).collect();
            let mut v = json!({
                "row": unit.row().name(),
                "kind": if unit.is_rtt() { "rtt" } else { "throughput" },
                "size": unit.size(),
                "reps": per_rep,
            });
            let o = v.as_object_mut().expect("object");
            if unit.is_rtt() {
                o.insert("p50_ns".into(), json!(self.stat(*unit, "p50")));
                o.insert("p999_ns".into(), json!(self.stat(*unit, "p999")));
            } else {
                o.insert("msgs_per_sec".into(), json!(self.stat(*unit, "tput")));
            }
            m.insert(unit.name().into(), v);
        }
        let ratios: Map<String, Value> =
            RATIOS.iter().filter_map(|&r| Some((r.name(), json!(self.ratio(r)?)))).collect();
        let per_rep: Map<String, Value> =
            RATIOS.iter().filter_map(|&r| Some((r.name(), json!(self.ratio_per_rep(r)?)))).collect();
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|(name, v, op, limit, met)| json!({"ratio": name, "value": v, "op": op, "limit": limit, "met": met}))
            .collect();
        let mut out = Map::new();
        out.insert("measurements".into(), Value::Object(m));
        out.insert("ratios".into(), Value::Object(ratios));
        out.insert("ratios_per_rep".into(), Value::Object(per_rep));
        out.insert("targets".into(), Value::Array(targets));
        out.insert("targets_missed".into(), json!(self.missed()));
        out
    }
}

fn rep_json(r: &Rep) -> Value {
    match r {
        Rep::Rtt(r) => {
            let mut v = json!({
                "p50_ns": r.p50_ns, "p999_ns": r.p999_ns, "mean_ns": r.mean_ns, "max_ns": r.max_ns, "rounds": r.rounds,
            });
            if let Some(s) = r.sleeps {
                let o = v.as_object_mut().expect("object");
                o.insert("requester_slept_rounds".into(), json!(s.requester_slept_rounds));
                o.insert("responder_sleeps".into(), json!(s.responder_sleeps));
                o.insert("extra_asleep_checks".into(), json!(s.extra_asleep_checks));
            }
            v
        }
        Rep::Tput(t) => {
            let mut v = json!({"msgs_per_sec": t.msgs_per_sec, "messages": t.messages, "secs": t.secs});
            if let Some(g) = t.group {
                let o = v.as_object_mut().expect("object");
                o.insert("per_member".into(), json!(&g.received[..g.members]));
            }
            v
        }
    }
}

/// A duration in nanoseconds, for the table.
fn ns(v: f64) -> String {
    if v < 10_000.0 {
        format!("{v:.0} ns")
    } else {
        format!("{:.1} us", v / 1000.0)
    }
}
