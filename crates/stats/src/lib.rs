//! The workspace's one statistics module: every percentile, confidence interval and significance test that
//! `ttc summary`, `ttc report`, `ttc compare`, `ttc check`, `ttc score`, `--until-ci-width` and the dashboard
//! show is computed here.
//!
//! - Percentiles: linear interpolation (numpy's default, R type 7) via [`percentile_sorted`] (the rule lives
//!   in `ttc_types::timing`, where a record's inter-token latencies need it; re-exported here).
//! - Confidence intervals: percentile bootstrap (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993,
//!   ch. 13), seeded (ChaCha8) so a report is reproducible, [`RESAMPLES`] resamples unless told otherwise.
//!   Equivalent to `scipy.stats.bootstrap(..., method="percentile")`. The interval of a metric's mean is
//!   [`metric_mean_ci`]: values in sorted order, seed derived from (seed, metric name), so it depends on the
//!   values alone (not on the order records were stored in, nor on the command that asks). For a mean over more than [`BOOTSTRAP_MAX_N`]
//!   values the normal approximation mean +- z*sd/sqrt(n) is used instead (at that n the two agree closely
//!   and the bootstrap would dominate the run time); paired bootstraps over many pairs use fewer resamples
//!   (at least [`MIN_RESAMPLES`]) to stay within [`PAIRED_WORK_LIMIT`]. Every interval says how it was made.
//! - McNemar's test for paired binary outcomes (McNemar 1947): exact two-sided binomial test on the discordant
//!   pairs when b + c < 25 (statsmodels `mcnemar(exact=True)`), else chi-square with continuity correction
//!   (statsmodels `mcnemar(exact=False, correction=True)`).
//! - Pareto front: points not dominated in (lower latency, higher quality).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
pub use ttc_types::timing::percentile_sorted;

/// Bootstrap resamples per interval, for every command (`--resamples` overrides it).
pub const RESAMPLES: usize = 1000;

/// Means over more values than this get a normal-approximation CI instead of a bootstrap one.
pub const BOOTSTRAP_MAX_N: usize = 5_000;
/// Upper bound on n x resamples for one paired bootstrap; above it the resample count is reduced.
pub const PAIRED_WORK_LIMIT: usize = 50_000_000;
/// Fewest resamples a reduced paired bootstrap uses.
pub const MIN_RESAMPLES: usize = 200;
/// Discordant-pair count below which McNemar uses the exact binomial test.
pub const MCNEMAR_EXACT_BELOW: u64 = 25;

pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The mean summed in sorted order: the same bits whatever order the values come in (records stored by one
/// process or by N shards, in completion order), where a plain sum may differ in the last place.
pub fn order_free_mean(v: &[f64]) -> Option<f64> {
    let mut sorted = v.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    mean(&sorted)
}

/// Sample standard deviation (ddof = 1).
pub fn std_dev(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let m = mean(v)?;
    Some((v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// Sorts a copy (NaN last, then dropped) and takes the numpy-linear percentile `q` in [0, 100].
pub fn percentile(v: &[f64], q: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_unstable_by(f64::total_cmp);
    percentile_sorted(&s, q)
}

/// Percentile without a full sort (two order statistics by selection); `v` is reordered.
pub fn percentile_select(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let h = (v.len() - 1) as f64 * (q / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let (_, lo_v, upper) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_v = *lo_v;
    let hi_v = if h > lo as f64 { upper.iter().copied().min_by(f64::total_cmp).unwrap_or(lo_v) } else { lo_v };
    Some(lo_v + (h - lo as f64) * (hi_v - lo_v))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    pub resamples: usize,
    pub seed: u64,
    /// e.g. 0.95
    pub confidence: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig::DEFAULT
    }
}

impl BootstrapConfig {
    /// [`RESAMPLES`] resamples, seed 0, 95%: the flags' defaults.
    pub const DEFAULT: BootstrapConfig = BootstrapConfig { resamples: RESAMPLES, seed: 0, confidence: 0.95 };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiMethod {
    Bootstrap,
    Normal,
    /// Fewer than two values: the interval is the point itself.
    Degenerate,
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    pub method: CiMethod,
    /// Bootstrap resamples actually used (0 for the normal and degenerate methods).
    pub resamples: usize,
}

impl Estimate {
    /// Whether the interval excludes zero (a significant difference at the configured confidence).
    pub fn excludes_zero(&self) -> bool {
        self.n >= 2 && (self.lo > 0.0 || self.hi < 0.0)
    }
}

/// Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9 after one Newton step with
/// erfc), enough for CI multipliers.
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let x = if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p > 1.0 - 0.02425 {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step on Phi(x) - p, Phi(x) = erfc(-x/sqrt2)/2.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A stable 64-bit seed for one (config seed, label) pair, so a group's CI does not depend on the order in
/// which groups are computed. FNV-1a.
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in label.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn percentile_interval(mut stats: Vec<f64>, confidence: f64) -> (f64, f64) {
    stats.retain(|x| !x.is_nan());
    stats.sort_unstable_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0 * 100.0;
    (
        percentile_sorted(&stats, alpha).unwrap_or(f64::NAN),
        percentile_sorted(&stats, 100.0 - alpha).unwrap_or(f64::NAN),
    )
}

/// Mean with a 95% (configurable) CI: percentile bootstrap, or the normal approximation for very large n.
pub fn mean_ci(values: &[f64], cfg: &BootstrapConfig) -> Option<Estimate> {
    let n = values.len();
    let m = mean(values)?;
    if n < 2 {
        return Some(Estimate { value: m, lo: m, hi: m, n, method: CiMethod::Degenerate, resamples: 0 });
    }
    if n > BOOTSTRAP_MAX_N || cfg.resamples == 0 {
        return mean_ci_normal(values, cfg.confidence);
    }
    let mut r = rng(cfg.seed);
    let stats: Vec<f64> = (0..cfg.resamples)
        .map(|_| (0..n).map(|_| values[r.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    let (lo, hi) = percentile_interval(stats, cfg.confidence);
    Some(Estimate { value: m, lo, hi, n, method: CiMethod::Bootstrap, resamples: cfg.resamples })
}

/// The mean of one metric's values with its interval, as every command shows it: the values summed and
/// resampled in sorted order (so records stored by one process or by N shards, in any order, give the same
/// bits) and the seed derived from (`cfg.seed`, `metric`) with [`derive_seed`] (so adding a metric does not move
/// another's interval). The same values give the same interval in `ttc summary` and `ttc score`. NaN values
/// must be left out by the caller.
pub fn metric_mean_ci(values: &[f64], metric: &str, cfg: &BootstrapConfig) -> Option<Estimate> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    mean_ci(&sorted, &BootstrapConfig { seed: derive_seed(cfg.seed, metric), ..*cfg })
}

/// Mean +- z * sd / sqrt(n) (sd with ddof = 1).
pub fn mean_ci_normal(values: &[f64], confidence: f64) -> Option<Estimate> {
    let (n, m) = (values.len(), mean(values)?);
    let half = normal_quantile(0.5 + confidence / 2.0) * std_dev(values)? / (n as f64).sqrt();
    Some(Estimate { value: m, lo: m - half, hi: m + half, n, method: CiMethod::Normal, resamples: 0 })
}

/// Paired bootstrap of `stat(b) - stat(a)` over pairs (a_i, b_i): each resample draws pair indices with
/// replacement and applies the same indices to both sides (Koehn 2004, "Statistical Significance Tests for
/// Machine Translation Evaluation"). `stat` receives a scratch buffer it may reorder.
pub fn paired_bootstrap_diff(
    a: &[f64],
    b: &[f64],
    cfg: &BootstrapConfig,
    stat: impl Fn(&mut [f64]) -> Option<f64>,
) -> Option<Estimate> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let point = stat(&mut b[..n].to_vec())? - stat(&mut a[..n].to_vec())?;
    if n < 2 {
        return Some(Estimate { value: point, lo: point, hi: point, n, method: CiMethod::Degenerate, resamples: 0 });
    }
    let resamples = cfg.resamples.min((PAIRED_WORK_LIMIT / n).max(MIN_RESAMPLES));
    let mut r = rng(cfg.seed);
    let (mut sa, mut sb) = (vec![0.0; n], vec![0.0; n]);
    let mut stats = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for k in 0..n {
            let i = r.random_range(0..n);
            sa[k] = a[i];
            sb[k] = b[i];
        }
        if let (Some(x), Some(y)) = (stat(&mut sb), stat(&mut sa)) {
            stats.push(x - y);
        }
    }
    let (lo, hi) = percentile_interval(stats, cfg.confidence);
    Some(Estimate { value: point, lo, hi, n, method: CiMethod::Bootstrap, resamples })
}

/// Unpaired bootstrap of `stat(b) - stat(a)` for two independent samples (live A/B traffic, where no request is
/// sent to both arms): each resample draws each side with replacement from itself (Efron & Tibshirani 1993,
/// ch. 16). `stat` receives a scratch buffer it may reorder.
pub fn unpaired_bootstrap_diff(
    a: &[f64],
    b: &[f64],
    cfg: &BootstrapConfig,
    stat: impl Fn(&mut [f64]) -> Option<f64>,
) -> Option<Estimate> {
    let (na, nb) = (a.len(), b.len());
    if na == 0 || nb == 0 {
        return None;
    }
    let point = stat(&mut b.to_vec())? - stat(&mut a.to_vec())?;
    let n = na + nb;
    if na < 2 || nb < 2 {
        return Some(Estimate { value: point, lo: point, hi: point, n, method: CiMethod::Degenerate, resamples: 0 });
    }
    let resamples = cfg.resamples.min((PAIRED_WORK_LIMIT / n).max(MIN_RESAMPLES));
    let mut r = rng(cfg.seed);
    let (mut sa, mut sb) = (vec![0.0; na], vec![0.0; nb]);
    let mut stats = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for x in sa.iter_mut() {
            *x = a[r.random_range(0..na)];
        }
        for x in sb.iter_mut() {
            *x = b[r.random_range(0..nb)];
        }
        if let (Some(x), Some(y)) = (stat(&mut sb), stat(&mut sa)) {
            stats.push(x - y);
        }
    }
    let (lo, hi) = percentile_interval(stats, cfg.confidence);
    Some(Estimate { value: point, lo, hi, n, method: CiMethod::Bootstrap, resamples })
}

/// Mean of a slice, for use as a bootstrap statistic.
pub fn mean_stat(v: &mut [f64]) -> Option<f64> {
    mean(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McNemarMethod {
    /// Exact two-sided binomial test on the discordant pairs (b + c < 25).
    ExactBinomial,
    /// Chi-square with Edwards' continuity correction, 1 degree of freedom.
    ChiSquareCorrected,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Pairs where A is correct and B is not.
    pub a_only: u64,
    /// Pairs where B is correct and A is not.
    pub b_only: u64,
    /// min(b, c) for the exact test, the chi-square statistic otherwise (as statsmodels reports it).
    pub statistic: f64,
    pub p_value: f64,
    pub method: McNemarMethod,
}

/// P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n does not overflow.
fn binom_half_cdf(k: u64, n: u64) -> f64 {
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_c = 0.0; // ln C(n, 0)
    let mut total = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        total += (ln_c + ln_half_n).exp();
    }
    total.min(1.0)
}

/// McNemar's test from the discordant counts. Two-sided.
pub fn mcnemar(a_only: u64, b_only: u64) -> McNemar {
    let n = a_only + b_only;
    if n < MCNEMAR_EXACT_BELOW {
        let k = a_only.min(b_only);
        let p = if n == 0 { 1.0 } else { (2.0 * binom_half_cdf(k, n)).min(1.0) };
        McNemar { a_only, b_only, statistic: k as f64, p_value: p, method: McNemarMethod::ExactBinomial }
    } else {
        let d = (a_only as f64 - b_only as f64).abs() - 1.0;
        let chi2 = d.max(0.0).powi(2) / n as f64;
        // Survival function of chi-square with 1 dof: erfc(sqrt(x / 2)).
        let p = libm::erfc((chi2 / 2.0).sqrt());
        McNemar { a_only, b_only, statistic: chi2, p_value: p, method: McNemarMethod::ChiSquareCorrected }
    }
}

/// Flags the points on the Pareto front of (minimise `cost`, maximise `benefit`): a point is dominated when
/// another is no worse on both and strictly better on one. Points with NaN are never on the front.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(c, q)| {
            !c.is_nan()
                && !q.is_nan()
                && !points.iter().any(|&(c2, q2)| c2 <= c && q2 >= q && (c2 < c || q2 > q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_select_agrees_with_sorting() {
        let v: Vec<f64> = (0..101).map(|i| ((i * 37) % 101) as f64 * 0.5).collect();
        for q in [0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0] {
            assert_eq!(percentile_select(&mut v.clone(), q), percentile(&v, q), "q={q}");
        }
    }

    #[test]
    fn normal_quantile_is_accurate() {
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-9);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.001) + 3.090232306167813).abs() < 1e-9);
    }

    #[test]
    fn mcnemar_hand_computed() {
        // b=2, c=8, n=10: P(X<=2) = (1+10+45)/1024 = 56/1024; two-sided p = 112/1024 = 0.109375.
        let m = mcnemar(2, 8);
        assert_eq!(m.method, McNemarMethod::ExactBinomial);
        assert!((m.p_value - 0.109375).abs() < 1e-12, "{}", m.p_value);
        // b=10, c=30, n=40: chi2 = (|10-30|-1)^2/40 = 361/40 = 9.025; p = erfc(sqrt(4.5125)).
        let m = mcnemar(10, 30);
        assert_eq!(m.method, McNemarMethod::ChiSquareCorrected);
        assert!((m.statistic - 9.025).abs() < 1e-12);
        assert!((m.p_value - 0.002663119).abs() < 1e-8, "{}", m.p_value);
        assert_eq!(mcnemar(0, 0).p_value, 1.0);
        assert_eq!(mcnemar(5, 5).p_value, 1.0);
    }

    #[test]
    fn pareto_front_excludes_dominated_points() {
        let pts = [(1.0, 0.5), (2.0, 0.7), (2.5, 0.6), (1.0, 0.4), (3.0, 0.7), (f64::NAN, 0.9)];
        assert_eq!(pareto_front(&pts), vec![true, true, false, false, false, false]);
        // Ties: identical points do not dominate each other.
        assert_eq!(pareto_front(&[(1.0, 1.0), (1.0, 1.0)]), vec![true, true]);
    }

    #[test]
    fn metric_intervals_bracket_the_mean_and_do_not_depend_on_order() {
        let v: Vec<f64> = (0..50).map(|i| (i % 2) as f64).collect();
        let cfg = BootstrapConfig { seed: 1, ..Default::default() };
        let e = metric_mean_ci(&v, "f1", &cfg).unwrap();
        assert!(e.lo < 0.5 && 0.5 < e.hi, "{e:?}");
        // Normal approximation: 0.5 +- 1.96 * sqrt(0.25/50) = +-0.139; the bootstrap lands close.
        assert!((e.hi - e.lo - 0.277).abs() < 0.06, "width {}", e.hi - e.lo);
        let mut reversed = v.clone();
        reversed.reverse();
        assert_eq!(metric_mean_ci(&reversed, "f1", &cfg), Some(e));
        // Continuous values: another seed, or another metric name, moves the interval.
        let c: Vec<f64> = (0..50).map(|i| ((i * 37) % 101) as f64 / 101.0).collect();
        let other = BootstrapConfig { seed: 2, ..cfg };
        assert_ne!(metric_mean_ci(&c, "f1", &cfg), metric_mean_ci(&c, "f1", &other));
        assert_ne!(metric_mean_ci(&c, "f1", &cfg), metric_mean_ci(&c, "bleu", &cfg));
        let one = metric_mean_ci(&[0.3], "f1", &cfg).unwrap();
        assert_eq!((one.lo, one.hi, one.method), (0.3, 0.3, CiMethod::Degenerate));
        assert_eq!(metric_mean_ci(&[], "f1", &cfg), None);
    }

    #[test]
    fn bootstrap_is_seeded_and_normal_fallback_is_labelled() {
        let v: Vec<f64> = (0..200).map(|i| (i % 7) as f64).collect();
        let cfg = BootstrapConfig::default();
        assert_eq!(mean_ci(&v, &cfg), mean_ci(&v, &cfg));
        let many: Vec<f64> = (0..=BOOTSTRAP_MAX_N).map(|i| (i % 7) as f64).collect();
        assert_eq!(mean_ci(&many, &cfg).unwrap().method, CiMethod::Normal);
        assert_eq!(mean_ci(&v, &cfg).unwrap().resamples, cfg.resamples);
        assert_eq!(mean_ci(&[3.0], &cfg).unwrap().method, CiMethod::Degenerate);
    }
}
