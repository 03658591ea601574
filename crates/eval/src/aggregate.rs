//! Aggregates over records: the mean of each metric with a seeded 95% percentile-bootstrap interval
//! (Efron & Tibshirani 1993, ch. 13; 1,000 resamples), percentiles interpolated like numpy's default.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

pub const BOOTSTRAP_RESAMPLES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub metric: String,
    /// Records that carry the metric.
    pub n: usize,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// 95% percentile-bootstrap interval of the mean; a single value (or identical values) gives a zero-width
/// interval. Deterministic for a given seed.
pub fn bootstrap_mean_ci(values: &[f64], seed: u64, resamples: usize) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let pick = |q| ttc_types::timing::percentile_sorted(&means, q).unwrap_or(f64::NAN);
    (pick(2.5), pick(97.5))
}

/// Stable per-metric seed so adding a metric does not change the others' intervals.
fn metric_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Mean and CI of every metric present in `rows` (non-finite values are skipped), by metric name.
pub fn aggregate(rows: &[BTreeMap<String, f64>], seed: u64) -> Vec<Aggregate> {
    let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        for (k, v) in row {
            if v.is_finite() {
                by_metric.entry(k.as_str()).or_default().push(*v);
            }
        }
    }
    by_metric
        .into_iter()
        .map(|(name, values)| {
            let (ci_low, ci_high) = bootstrap_mean_ci(&values, metric_seed(seed, name), BOOTSTRAP_RESAMPLES);
            Aggregate { metric: name.to_string(), n: values.len(), mean: mean(&values), ci_low, ci_high }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_bracket_the_mean_and_are_seeded() {
        let v: Vec<f64> = (0..50).map(|i| (i % 2) as f64).collect();
        let (lo, hi) = bootstrap_mean_ci(&v, 1, 1000);
        assert!(lo < 0.5 && 0.5 < hi, "{lo} {hi}");
        // Normal approximation: 0.5 +- 1.96 * sqrt(0.25/50) = +-0.139; the bootstrap lands close.
        assert!((hi - lo - 0.277).abs() < 0.06, "width {}", hi - lo);
        assert_eq!((lo, hi), bootstrap_mean_ci(&v, 1, 1000));
        // Continuous values: another seed moves the interval.
        let c: Vec<f64> = (0..50).map(|i| ((i * 37) % 101) as f64 / 101.0).collect();
        assert_ne!(bootstrap_mean_ci(&c, 1, 1000), bootstrap_mean_ci(&c, 2, 1000));
        assert_eq!(bootstrap_mean_ci(&[0.3], 1, 100), (0.3, 0.3));
    }

    #[test]
    fn aggregates_skip_missing_and_non_finite_values() {
        let rows = vec![
            BTreeMap::from([("f1".to_string(), 1.0), ("bleu".to_string(), f64::NAN)]),
            BTreeMap::from([("f1".to_string(), 0.0)]),
        ];
        let a = aggregate(&rows, 0);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].metric.as_str(), a[0].n, a[0].mean), ("f1", 2, 0.5));
    }
}
