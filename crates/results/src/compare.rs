//! Paired A/B comparison (`ttc compare`): two policies (or two runs) on the samples both have.
//!
//! Pairing removes between-sample variance, which dominates LLM benchmarks (some prompts are simply longer or
//! harder), so paired tests detect differences unpaired ones miss (Dror et al. 2018, "The Hitchhiker's Guide
//! to Testing Statistical Significance in NLP"). Quality: paired bootstrap CI of mean(B - A) per metric;
//! binary exact match additionally gets McNemar's test. Latency: bootstrap CIs of the p50/p95 differences
//! (resampling pairs); throughput: paired bootstrap of the mean per-request tokens/s.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use ttc_types::{Record, RecordStatus};

use crate::metrics::{Direction, RecordField, Stat};
use ttc_stats::{self as stats, BootstrapConfig, Estimate, McNemar};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B is significantly better than A.
    Better,
    /// B is significantly worse than A.
    Worse,
    NoSignificantDifference,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoSignificantDifference => "no significant difference",
        }
    }

    fn from_ci(diff: &Estimate, direction: Direction) -> Verdict {
        if !diff.excludes_zero() {
            return Verdict::NoSignificantDifference;
        }
        // The difference is B - A; for closer-to-one metrics it is a difference of distances from one.
        match (diff.value > 0.0, direction) {
            (true, Direction::HigherIsBetter) | (false, Direction::LowerIsBetter | Direction::CloserToOne) => {
                Verdict::Better
            }
            _ => Verdict::Worse,
        }
    }
}

/// One metric's paired difference, B - A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDiff {
    /// e.g. `mean rouge_l`, `p95 e2e_s`.
    pub metric: String,
    pub n_pairs: usize,
    pub a: f64,
    pub b: f64,
    pub diff: Estimate,
    /// (B - A) / |A| in percent, None when A is 0.
    pub relative_pct: Option<f64>,
    pub direction: Direction,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactMatchTest {
    pub metric: String,
    pub n_pairs: usize,
    pub a_accuracy: f64,
    pub b_accuracy: f64,
    pub mcnemar: McNemar,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub n_a: usize,
    pub n_b: usize,
    /// Samples present on both sides.
    pub n_common: usize,
    pub quality: Vec<MetricDiff>,
    pub exact_match: Vec<ExactMatchTest>,
    pub performance: Vec<MetricDiff>,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    /// True for live A/B traffic (`ttc serve --ab`): no request went to both sides, so every difference is an
    /// unpaired bootstrap over each side's own records and `n_pairs` counts both sides' values.
    #[serde(default)]
    pub unpaired: bool,
}

/// Whether both sides are served traffic (`backend: serve`), which has no samples to pair on.
pub fn is_served(a: &[Record], b: &[Record]) -> bool {
    !a.is_empty() && !b.is_empty() && a.iter().chain(b).all(|r| r.backend == "serve")
}

/// Compares side B against side A without pairing (live A/B traffic): unpaired bootstrap CIs of the latency
/// percentiles and of the mean of every quality or fidelity metric present on both sides.
pub fn compare_unpaired(a_label: &str, a: &[Record], b_label: &str, b: &[Record], cfg: &BootstrapConfig) -> Comparison {
    let names = |rs: &[Record]| -> BTreeSet<String> {
        rs.iter()
            .flat_map(|r| {
                r.metrics
                    .keys()
                    .cloned()
                    .chain(r.extra_metrics.keys().map(|k| format!("extra.{k}")))
                    .chain(r.fidelity.values().into_iter().map(|(k, _)| k.to_string()))
            })
            .collect()
    };
    let both: Vec<String> = names(a).intersection(&names(b)).cloned().collect();
    let values = |rs: &[Record], f: &RecordField, ok_only: bool| -> Vec<f64> {
        rs.iter().filter(|r| !ok_only || r.status == RecordStatus::Ok).filter_map(|r| f.value(r)).collect()
    };
    let diff = |name: String, va: Vec<f64>, vb: Vec<f64>, stat: Stat, direction: Direction| -> Option<MetricDiff> {
        let (name, va, vb) = if direction == Direction::CloserToOne {
            let d = |v: Vec<f64>| v.into_iter().map(|x| direction.badness(x)).collect::<Vec<_>>();
            let name = match name.split_once(' ') {
                Some((s, m)) => format!("{s} |{m}-1|"),
                None => format!("|{name}-1|"),
            };
            (name, d(va), d(vb))
        } else {
            (name, va, vb)
        };
        let c = BootstrapConfig { seed: stats::derive_seed(cfg.seed, &name), ..*cfg };
        let d = stats::unpaired_bootstrap_diff(&va, &vb, &c, |s| stat.apply_mut(s))?;
        let (av, bv) = (stat.apply(&va)?, stat.apply(&vb)?);
        Some(MetricDiff {
            metric: name,
            n_pairs: va.len() + vb.len(),
            a: av,
            b: bv,
            relative_pct: (av != 0.0).then(|| (bv - av) / av.abs() * 100.0),
            direction,
            verdict: Verdict::from_ci(&d, direction),
            diff: d,
        })
    };
    let mut quality = Vec::new();
    for name in both {
        let Ok(field) = RecordField::parse(&name) else { continue };
        let d = diff(format!("mean {name}"), values(a, &field, false), values(b, &field, false), Stat::Mean, field.direction());
        quality.extend(d);
    }
    let mut performance = Vec::new();
    for (field, stat) in PERFORMANCE {
        let name = format!("{} {}", stat.label(), field.name());
        performance.extend(diff(name, values(a, &field, true), values(b, &field, true), stat, field.direction()));
    }
    // Served traffic includes refusals (400, 429, ...) that `ttc serve` records as errors: the error rates get an
    // unpaired CI too (the mean of a 0/1 indicator per request), since an arm that fails more is worse whatever
    // its latency on the requests it did serve.
    let errors = |rs: &[Record]| rs.iter().map(|r| if r.status == RecordStatus::Ok { 0.0 } else { 1.0 }).collect();
    performance.extend(diff("error_rate".into(), errors(a), errors(b), Stat::Mean, Direction::LowerIsBetter));
    Comparison {
        a: a_label.to_string(),
        b: b_label.to_string(),
        n_a: a.len(),
        n_b: b.len(),
        n_common: 0,
        quality,
        exact_match: Vec::new(),
        performance,
        confidence: cfg.confidence,
        resamples: cfg.resamples,
        seed: cfg.seed,
        unpaired: true,
    }
}

/// The latency and throughput statistics every comparison reports.
const PERFORMANCE: [(RecordField, Stat); 6] = [
    (RecordField::E2eS, Stat::Percentile(50.0)),
    (RecordField::E2eS, Stat::Percentile(95.0)),
    (RecordField::TtftS, Stat::Percentile(50.0)),
    (RecordField::TtftS, Stat::Percentile(95.0)),
    (RecordField::TpotS, Stat::Mean),
    (RecordField::ThroughputTokS, Stat::Mean),
];

/// Metrics with binary values that get McNemar's test.
const BINARY_METRICS: &[&str] = &["exact_match", "exact_match_normalized"];

/// The pairing key of a record: (policy, suite, sample) when comparing runs, (suite, sample) otherwise.
fn key(r: &Record, with_policy: bool) -> (String, String, String) {
    (if with_policy { r.policy.clone() } else { String::new() }, r.suite.clone(), r.sample_id.clone())
}

fn diff_of(
    name: String,
    pairs: &[(f64, f64)],
    cfg: &BootstrapConfig,
    stat: Stat,
    direction: Direction,
) -> Option<MetricDiff> {
    if pairs.is_empty() {
        return None;
    }
    // A closer-to-one metric is compared on its distance from one (`mean |length_ratio-1|`), so "better"
    // means closer, the same order the KPIs, Pareto fronts and reports use.
    let (name, pairs): (String, Vec<(f64, f64)>) = if direction == Direction::CloserToOne {
        let d = |x: f64| direction.badness(x);
        let name = match name.split_once(' ') {
            Some((stat, metric)) => format!("{stat} |{metric}-1|"),
            None => format!("|{name}-1|"),
        };
        (name, pairs.iter().map(|&(a, b)| (d(a), d(b))).collect())
    } else {
        (name, pairs.to_vec())
    };
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let c = BootstrapConfig { seed: stats::derive_seed(cfg.seed, &name), ..*cfg };
    let diff = stats::paired_bootstrap_diff(&a, &b, &c, |s| stat.apply_mut(s))?;
    let (av, bv) = (stat.apply(&a)?, stat.apply(&b)?);
    Some(MetricDiff {
        metric: name,
        n_pairs: pairs.len(),
        a: av,
        b: bv,
        relative_pct: (av != 0.0).then(|| (bv - av) / av.abs() * 100.0),
        direction,
        verdict: Verdict::from_ci(&diff, direction),
        diff,
    })
}

/// Compares side B against side A on their common samples. `pair_by_policy` is true when the sides are
/// runs (each policy's sample pairs with the same policy's sample).
pub fn compare(
    a_label: &str,
    a: &[Record],
    b_label: &str,
    b: &[Record],
    pair_by_policy: bool,
    cfg: &BootstrapConfig,
) -> Comparison {
    let b_index: HashMap<(String, String, String), &Record> = b.iter().map(|r| (key(r, pair_by_policy), r)).collect();
    let mut pairs: Vec<(&Record, &Record)> =
        a.iter().filter_map(|ra| b_index.get(&key(ra, pair_by_policy)).map(|rb| (ra, *rb))).collect();
    // Pairs in one order whatever order the records were stored in (one process or N shards), so the seeded
    // bootstrap gives the same interval for the same pairs.
    pairs.sort_by_cached_key(|(ra, _)| (ra.policy.clone(), key(ra, true)));

    let quality_names: BTreeSet<String> = pairs
        .iter()
        .flat_map(|(ra, _)| {
            ra.metrics
                .keys()
                .cloned()
                .chain(ra.extra_metrics.keys().map(|k| format!("extra.{k}")))
                .chain(ra.fidelity.values().into_iter().map(|(k, _)| k.to_string()))
        })
        .collect();
    let mut quality = Vec::new();
    let mut exact_match = Vec::new();
    for name in quality_names {
        let Ok(field) = RecordField::parse(&name) else { continue };
        let vals: Vec<(f64, f64)> =
            pairs.iter().filter_map(|(ra, rb)| Some((field.value(ra)?, field.value(rb)?))).collect();
        if let Some(d) = diff_of(format!("mean {name}"), &vals, cfg, Stat::Mean, field.direction()) {
            quality.push(d);
        }
        let binary = vals.iter().all(|(x, y)| (*x == 0.0 || *x == 1.0) && (*y == 0.0 || *y == 1.0));
        if BINARY_METRICS.contains(&name.as_str()) && binary && !vals.is_empty() {
            let a_only = vals.iter().filter(|(x, y)| *x == 1.0 && *y == 0.0).count() as u64;
            let b_only = vals.iter().filter(|(x, y)| *x == 0.0 && *y == 1.0).count() as u64;
            let m = stats::mcnemar(a_only, b_only);
            let significant = m.p_value < 1.0 - cfg.confidence;
            let verdict = match (significant, b_only > a_only) {
                (false, _) => Verdict::NoSignificantDifference,
                (true, true) => Verdict::Better,
                (true, false) => Verdict::Worse,
            };
            let n = vals.len() as f64;
            exact_match.push(ExactMatchTest {
                metric: name.clone(),
                n_pairs: vals.len(),
                a_accuracy: vals.iter().map(|v| v.0).sum::<f64>() / n,
                b_accuracy: vals.iter().map(|v| v.1).sum::<f64>() / n,
                mcnemar: m,
                verdict,
            });
        }
    }

    let ok_pairs: Vec<(&Record, &Record)> = pairs
        .iter()
        .copied()
        .filter(|(ra, rb)| ra.status == RecordStatus::Ok && rb.status == RecordStatus::Ok)
        .collect();
    let mut performance = Vec::new();
    for (field, stat) in PERFORMANCE {
        let vals: Vec<(f64, f64)> =
            ok_pairs.iter().filter_map(|(ra, rb)| Some((field.value(ra)?, field.value(rb)?))).collect();
        let name = format!("{} {}", stat.label(), field.name());
        if let Some(d) = diff_of(name, &vals, cfg, stat, field.direction()) {
            performance.push(d);
        }
    }

    Comparison {
        a: a_label.to_string(),
        b: b_label.to_string(),
        n_a: a.len(),
        n_b: b.len(),
        n_common: pairs.len(),
        quality,
        exact_match,
        performance,
        confidence: cfg.confidence,
        resamples: cfg.resamples,
        seed: cfg.seed,
        unpaired: false,
    }
}
