//! Latency statistics: one [`Summary`] per repetition from an HDR histogram, and the median of
//! each statistic across repetitions.

use hdrhistogram::Histogram;

/// Highest round trip the histogram holds exactly (60 s); longer ones are recorded as 60 s.
const HIGHEST_NS: u64 = 60_000_000_000;

/// Spacing of the percentile curve on the "nines" axis (x = -log10(1 - q)).
const CURVE_STEP: f64 = 0.05;

/// The named percentiles, as (JSON key, label, quantile).
pub const PERCENTILES: [(&str, &str, f64); 5] = [
    ("p50", "p50", 0.5),
    ("p90", "p90", 0.9),
    ("p99", "p99", 0.99),
    ("p999", "p99.9", 0.999),
    ("p9999", "p99.99", 0.9999),
];

/// Round-trip statistics of one repetition (or the medians of several), in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The [`PERCENTILES`], in order.
    pub percentiles: [u64; 5],
    /// The longest round trip (exact, not rounded by the histogram).
    pub max: u64,
    /// The percentile curve: (nines, ns) at x = 0, 0.05, 0.1, ... up to log10(samples).
    pub curve: Vec<(f64, u64)>,
}

/// Turns samples into [`Summary`]s. Holds one histogram, allocated once, before any timing.
pub struct Stats {
    hist: Histogram<u64>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats { hist: Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid histogram bounds") }
    }

    /// The statistics of `samples` (nanoseconds; at least one).
    pub fn summarize(&mut self, samples: &[u64]) -> Summary {
        let h = &mut self.hist;
        h.reset();
        for &ns in samples {
            h.saturating_record(ns.max(1));
        }
        let max = samples.iter().copied().max().unwrap_or(0);
        // The histogram reports the top of a value's bucket, which may lie a little above the
        // exact maximum.
        let percentiles = PERCENTILES.map(|(_, _, q)| h.value_at_quantile(q).min(max));
        let top = (samples.len().max(1) as f64).log10();
        let steps = (top / CURVE_STEP).floor() as usize;
        let curve = (0..=steps)
            .map(|i| {
                let x = i as f64 * CURVE_STEP;
                (x, h.value_at_quantile(1.0 - 10f64.powf(-x)).min(max))
            })
            .collect();
        Summary { percentiles, max, curve }
    }
}

/// The median of `values` (the mean of the two middle ones for an even count); 0 if empty.
pub fn median_u64(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    match values.len() {
        0 => 0,
        n if n % 2 == 1 => values[n / 2],
        n => ((values[n / 2 - 1] as u128 + values[n / 2] as u128).div_ceil(2)) as u64,
    }
}

/// The median of `values` (see [`median_u64`]); `None` if empty.
pub fn median_f64(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Each statistic's median across `reps` (all of equal sample counts); `None` if empty.
pub fn median_summary(reps: &[Summary]) -> Option<Summary> {
    let first = reps.first()?;
    let column = |f: &dyn Fn(&Summary) -> u64| median_u64(&mut reps.iter().map(f).collect::<Vec<_>>());
    let percentiles = std::array::from_fn(|i| column(&|s| s.percentiles[i]));
    let max = column(&|s| s.max);
    let points = reps.iter().map(|s| s.curve.len()).min().unwrap_or(0);
    let curve = (0..points).map(|i| (first.curve[i].0, column(&|s| s.curve[i].1))).collect();
    Some(Summary { percentiles, max, curve })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_uniform_run_has_the_expected_percentiles() {
        let samples: Vec<u64> = (1..=10_000).collect();
        let s = Stats::new().summarize(&samples);
        assert_eq!(s.max, 10_000);
        // HDR keeps 3 significant digits.
        for ((_, _, q), v) in PERCENTILES.iter().zip(s.percentiles) {
            let want = q * 10_000.0;
            assert!((v as f64 - want).abs() <= want / 500.0 + 1.0, "q{q}: {v} vs {want}");
        }
        assert_eq!(s.curve.first().map(|p| p.0), Some(0.0));
        assert!(s.curve.last().unwrap().0 <= 4.0 + 1e-9 && s.curve.len() == 81, "{}", s.curve.len());
        assert!(s.curve.windows(2).all(|w| w[0].1 <= w[1].1), "the curve never falls");
    }

    #[test]
    fn median_summary_takes_each_statistic_separately() {
        let mk = |p: u64, max: u64| Summary { percentiles: [p; 5], max, curve: vec![(0.0, p)] };
        let m = median_summary(&[mk(10, 900), mk(30, 100), mk(20, 500)]).unwrap();
        assert_eq!((m.percentiles[0], m.max, m.curve[0].1), (20, 500, 20));
        assert_eq!(median_u64(&mut [4, 1, 3, 2]), 3); // (2 + 3) / 2 rounded up
        assert_eq!(median_f64(&[1.0, 5.0]), Some(3.0));
        assert!(median_summary(&[]).is_none());
    }
}
