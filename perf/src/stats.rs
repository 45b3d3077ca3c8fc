//! What one repetition yields, and the medians across repetitions.
//!
//! - A round-trip repetition records every timed round trip (ns) in an HdrHistogram (3
//!   significant digits) and keeps p50, p99.9, mean and max ([`RttRep`]); the sleeping rows
//!   also count who slept ([`SleepFacts`]).
//! - A throughput repetition is messages per second from the first message received to the
//!   last ([`TputRep`]).
//! - Each reported statistic is the median of that statistic across repetitions ([`median`]).

use std::time::Duration;

use hdrhistogram::Histogram;

/// A histogram for round trips of 1 ns to 100 s, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Who slept in a sleeping row's repetition.
#[derive(Clone, Copy, Debug)]
pub struct SleepFacts {
    /// Timed rounds in which the requester went to sleep waiting for the pong (`getrusage`
    /// voluntary switches between ping and pong).
    pub requester_slept_rounds: u64,
    /// The responder's voluntary context switches over the timed rounds (about one per round
    /// when it sleeps before every ping), from `/proc/PID/status`.
    pub responder_sleeps: u64,
    /// Extra 20 µs waits, over all timed rounds, until the responder showed `S` after the gap.
    pub extra_asleep_checks: u64,
}

/// One round-trip repetition.
#[derive(Clone, Copy, Debug)]
pub struct RttRep {
    pub p50_ns: u64,
    pub p999_ns: u64,
    pub mean_ns: f64,
    pub max_ns: u64,
    pub rounds: u64,
    pub sleeps: Option<SleepFacts>,
}

impl RttRep {
    /// The statistics of `hist`.
    pub fn of(hist: &Histogram<u64>) -> RttRep {
        RttRep {
            p50_ns: hist.value_at_quantile(0.5),
            p999_ns: hist.value_at_quantile(0.999),
            mean_ns: hist.mean(),
            max_ns: hist.max(),
            rounds: hist.len(),
            sleeps: None,
        }
    }
}

/// The record of a sleeping row's repetition: round trips and who slept.
pub struct Sleeps {
    hist: Histogram<u64>,
    facts: SleepFacts,
}

impl Sleeps {
    /// An empty record.
    pub fn new() -> Sleeps {
        Sleeps {
            hist: new_hist(),
            facts: SleepFacts { requester_slept_rounds: 0, responder_sleeps: 0, extra_asleep_checks: 0 },
        }
    }

    /// One timed round trip of `ns`, in which the requester went to sleep `slept` times, after
    /// `extra` extra checks that the responder was asleep.
    pub fn record(&mut self, ns: u64, slept: u64, extra: u32) {
        self.hist.saturating_record(ns);
        self.facts.requester_slept_rounds += u64::from(slept > 0);
        self.facts.extra_asleep_checks += u64::from(extra);
    }

    /// The responder's voluntary switches over the timed rounds.
    pub fn set_responder_sleeps(&mut self, n: u64) {
        self.facts.responder_sleeps = n;
    }

    /// The repetition's statistics.
    pub fn finish(self) -> RttRep {
        RttRep { sleeps: Some(self.facts), ..RttRep::of(&self.hist) }
    }
}

/// The most members of a consumer group row.
pub const MAX_MEMBERS: usize = 4;

/// How a consumer group's repetition shared the messages out.
#[derive(Clone, Copy, Debug)]
pub struct GroupFacts {
    /// Members in the group.
    pub members: usize,
    /// Data messages each member received (the first `members` entries).
    pub received: [u64; MAX_MEMBERS],
}

/// One throughput repetition.
#[derive(Clone, Copy, Debug)]
pub struct TputRep {
    pub msgs_per_sec: f64,
    pub messages: u64,
    pub secs: f64,
    /// For a consumer group row: the messages of each member.
    pub group: Option<GroupFacts>,
}

impl TputRep {
    /// `count` messages received, `elapsed` from the first to the last.
    pub fn new(count: u64, elapsed: Duration) -> TputRep {
        let secs = elapsed.as_secs_f64();
        let msgs_per_sec = if secs > 0.0 { count.saturating_sub(1) as f64 / secs } else { 0.0 };
        TputRep { msgs_per_sec, messages: count, secs, group: None }
    }
}

/// The median of `xs` (the mean of the two middle values for an even count; NaN if empty).
pub fn median(xs: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = new_hist();
        for ns in 1..=1000 {
            h.record(ns).unwrap();
        }
        let r = RttRep::of(&h);
        assert_eq!((r.p50_ns, r.p999_ns, r.max_ns, r.rounds), (500, 999, 1000, 1000));
    }

    #[test]
    fn rate_counts_the_messages_after_the_first() {
        let r = TputRep::new(1_000_001, Duration::from_secs(2));
        assert_eq!(r.msgs_per_sec, 500_000.0);
    }
}
