//! Percentiles of one repetition, and medians across repetitions.

use hdrhistogram::Histogram;

/// The percentiles reported, with their column names.
pub const QUANTILES: [(&str, f64); 5] =
    [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)];

/// Round-trip latencies of one repetition, in nanoseconds: [`QUANTILES`] then the maximum.
pub type Latency = [u64; QUANTILES.len() + 1];

/// A histogram from 1 ns to 10 s with 3 significant digits (0.1% resolution).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds")
}

/// The reported latencies of one repetition.
pub fn latency(h: &Histogram<u64>) -> Latency {
    let mut out = [0; QUANTILES.len() + 1];
    for (o, (_, q)) in out.iter_mut().zip(QUANTILES) {
        *o = h.value_at_quantile(q);
    }
    out[QUANTILES.len()] = h.max();
    out
}

/// The median of each column across repetitions (for an even count, the lower middle one:
/// a value that was actually measured).
pub fn median_latency(reps: &[Latency]) -> Latency {
    let mut out = [0; QUANTILES.len() + 1];
    for (i, o) in out.iter_mut().enumerate() {
        let mut col: Vec<u64> = reps.iter().map(|r| r[i]).collect();
        *o = median(&mut col);
    }
    out
}

/// The median (lower middle for an even count) of `v`, which it sorts.
pub fn median<T: PartialOrd + Copy>(v: &mut [T]) -> T {
    assert!(!v.is_empty(), "median of no values");
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[(v.len() - 1) / 2]
}
