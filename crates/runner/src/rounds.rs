//! `--until-ci-width W`: sampling rounds until every policy x suite's 95% CI half-width of the watched metric is
//! at most W (docs/runner.md "Enough samples"). Each round adds the same new samples to every policy of a suite,
//! so comparisons between policies stay paired; a suite stops growing once all its policies are narrow enough,
//! its pool (`--max-samples`, else every item) is used up, or the run is interrupted.

use std::collections::BTreeMap;
use ttc_results::analysis::{metric_value, primary_metric};
use ttc_stats::{metric_mean_ci, BootstrapConfig};
use ttc_types::Record;

/// The watched metric of one policy x suite after a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Width {
    pub policy: String,
    pub suite: String,
    pub metric: String,
    /// Requests that carry the metric.
    pub n: usize,
    /// Half-width of the 95% bootstrap CI of the mean (`ttc_stats::metric_mean_ci` at the default seed: the interval
    /// `ttc summary` and the report show); None below 2 values.
    pub half_width: Option<f64>,
}

/// Half-widths of every policy x suite in `records`. `metric` None = each suite's primary metric.
pub fn widths(records: &[Record], metric: Option<&str>) -> Vec<Width> {
    let mut by_suite: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_suite.entry(&r.suite).or_default().push(r);
    }
    let mut out = Vec::new();
    for (suite, rs) in by_suite {
        let Some(metric) = metric.map(str::to_string).or_else(|| primary_metric(&rs, None)) else { continue };
        let mut by_policy: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for r in &rs {
            let values = by_policy.entry(&r.policy).or_default();
            values.extend(metric_value(r, &metric));
        }
        for (policy, values) in by_policy {
            let half_width = (values.len() >= 2)
                .then(|| metric_mean_ci(&values, &metric, &BootstrapConfig::DEFAULT))
                .flatten()
                .map(|e| (e.hi - e.lo) / 2.0);
            out.push(Width { policy: policy.into(), suite: suite.into(), metric: metric.clone(), n: values.len(), half_width });
        }
    }
    out
}

/// Samples each suite should have after the next round; suites that are done are left out (an empty map: stop).
///
/// A CI half-width shrinks like 1/sqrt(n), so a suite whose widest policy is at `h` > W needs about
/// n·(h/W)² samples; the next round aims 10% past that, adds at least one sample, at most doubles `n` (a
/// noisy small-sample width must not draw the whole pool at once), and stops at the pool's size.
pub fn next_sizes(
    widths: &[Width],
    target: f64,
    current: &BTreeMap<String, usize>,
    pool: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (suite, &n) in current {
        let cap = pool.get(suite).copied().unwrap_or(n);
        let ws: Vec<&Width> = widths.iter().filter(|w| &w.suite == suite).collect();
        if ws.is_empty() || n >= cap {
            continue; // nothing measured for it, or nothing left to draw
        }
        // A policy without a width yet (fewer than two values) counts as infinitely wide.
        let widest = ws.iter().map(|w| w.half_width.unwrap_or(f64::INFINITY)).fold(0.0, f64::max);
        if widest <= target {
            continue;
        }
        let wanted = if widest.is_finite() { (n as f64 * (widest / target).powi(2) * 1.1).ceil() as usize } else { 2 * n };
        out.insert(suite.clone(), wanted.clamp(n + 1, (2 * n).max(n + 1)).min(cap));
    }
    out
}

/// One line per policy x suite: achieved width against the target.
pub fn describe(widths: &[Width], target: f64) -> String {
    let mut s = String::new();
    for w in widths {
        let hw = w.half_width.map_or("n/a".to_string(), |h| format!("{h:.4}"));
        let mark = if w.half_width.is_some_and(|h| h <= target) { "ok" } else { "wider" };
        s.push_str(&format!("  {} x {}: {} n={} CI half-width {hw} ({mark})\n", w.policy, w.suite, w.metric, w.n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(policy: &str, suite: &str, hw: Option<f64>) -> Width {
        Width { policy: policy.into(), suite: suite.into(), metric: "m".into(), n: 10, half_width: hw }
    }

    #[test]
    fn next_round_projects_from_the_widest_policy_and_respects_caps() {
        let current: BTreeMap<String, usize> = [("a".into(), 10), ("b".into(), 10), ("c".into(), 40)].into();
        let pool: BTreeMap<String, usize> = [("a".into(), 100), ("b".into(), 100), ("c".into(), 40)].into();
        let ws = vec![w("p", "a", Some(0.06)), w("q", "a", Some(0.02)), w("p", "b", Some(0.04)), w("p", "c", Some(0.5))];
        let next = next_sizes(&ws, 0.05, &current, &pool);
        // a: 10 * (0.06/0.05)^2 * 1.1 = 15.84 -> 16; b is narrow enough; c has used its pool.
        assert_eq!(next, [("a".to_string(), 16)].into());
        // Far too wide: at most double. No width yet: double.
        let next = next_sizes(&[w("p", "a", Some(1.0)), w("p", "b", None)], 0.05, &current, &pool);
        assert_eq!(next, [("a".to_string(), 20), ("b".to_string(), 20)].into());
    }
}
