//! Per policy x suite (x task) aggregates of a set of records: the numbers behind `ttc summary`, the report,
//! the dashboard and the KPI gate.
//!
//! Definitions (docs/results-schema.md, docs/runner.md):
//! - latency distributions (TTFT, E2E, TPOT) use successful requests only; percentiles are numpy-linear;
//! - aggregate output throughput = sum of output tokens / busy span, over successful requests: the busy span is
//!   the wall time during which at least one of the group's requests was in flight (the union of the intervals
//!   [start_offset_s, start_offset_s + e2e_s]). For a group running alone under load it equals AIPerf/GenAI-Perf's
//!   `max(resp) - min(req)`; for policies interleaved one request at a time it is the sum of their E2E, not the
//!   whole run's wall time (which would divide each policy's tokens by every other policy's time too);
//! - goodput = requests meeting every configured latency SLO / the same span (DistServe, Zhong et al. 2024);
//!   quality-aware goodput also requires a correct answer (primary quality metric >= `correct_min`);
//! - quality means carry a seeded 95% bootstrap CI.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use ttc_types::{Record, RecordStatus, QUALITY_METRICS};

use crate::columns::policy_stat_fields;
use ttc_stats::{self as stats, BootstrapConfig, Estimate};

/// Primary quality metric of a suite when none is configured: the first of these present in its records.
pub use ttc_types::PRIMARY_METRIC_PRIORITY;

/// Latency SLOs for goodput (a request meets them when every set bound holds) and the correctness rule of
/// quality-aware goodput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Slo {
    #[serde(deserialize_with = "finite_bound")]
    pub ttft_s: Option<f64>,
    #[serde(deserialize_with = "finite_bound")]
    pub tpot_s: Option<f64>,
    #[serde(deserialize_with = "finite_bound")]
    pub e2e_s: Option<f64>,
    /// Metric that decides correctness; default: the suite's primary quality metric.
    pub correct_metric: Option<String>,
    /// A request is correct when that metric is >= this value.
    #[serde(deserialize_with = "finite")]
    pub correct_min: f64,
}

/// An SLO bound must be finite: NaN compares false with everything (no request would ever meet it) and an
/// infinite one is vacuous. Checked while the number itself is deserialised (in the visitor), so the parser
/// reports the key's path and the value's line and column (serde_yaml: `slo.e2e_s: ... at line 2 column 10`).
fn finite<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Finite::deserialize(d).map(|f| f.0)
}

fn finite_bound<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Finite>::deserialize(d)?.map(|f| f.0))
}

/// A finite f64; accepts what f64 accepts (floats and integers).
struct Finite(f64);

impl<'de> Deserialize<'de> for Finite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Finite;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("f64")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Finite, E> {
                if v.is_finite() {
                    Ok(Finite(v))
                } else {
                    Err(E::custom(format!("must be a finite number, got {v}")))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Finite, E> {
                Ok(Finite(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Finite, E> {
                Ok(Finite(v as f64))
            }
        }
        d.deserialize_f64(Visitor)
    }
}

impl Default for Slo {
    /// The original specification's latency bound (2 s end to end); correct = primary metric >= 0.5.
    fn default() -> Self {
        Slo { ttft_s: None, tpot_s: None, e2e_s: Some(2.0), correct_metric: None, correct_min: 0.5 }
    }
}

impl Slo {
    /// Whether a successful request meets every set bound. TPOT is 0 for one-token outputs (vLLM's rule).
    pub fn met_by(&self, r: &Record) -> bool {
        if r.status != RecordStatus::Ok {
            return false;
        }
        let within = |bound: Option<f64>, v: Option<f64>| match bound {
            None => true,
            Some(b) => v.is_some_and(|v| v <= b),
        };
        within(self.ttft_s, r.ttft_s) && within(self.tpot_s, Some(r.tpot_s.unwrap_or(0.0))) && within(self.e2e_s, r.e2e_s)
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.ttft_s {
            parts.push(format!("TTFT <= {v} s"));
        }
        if let Some(v) = self.tpot_s {
            parts.push(format!("TPOT <= {v} s"));
        }
        if let Some(v) = self.e2e_s {
            parts.push(format!("E2E <= {v} s"));
        }
        if parts.is_empty() {
            "no latency SLO".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisConfig {
    pub bootstrap: BootstrapConfig,
    pub slo: Slo,
    /// Split groups by task as well as suite.
    pub by_task: bool,
    /// Quality metric for Pareto fronts and correctness; default: per suite from [`PRIMARY_METRIC_PRIORITY`].
    pub quality_metric: Option<String>,
    /// Each run's price (run id -> `cost:` of its run file), for the cost columns.
    #[serde(default)]
    pub prices: BTreeMap<String, crate::cost::Price>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            bootstrap: BootstrapConfig::DEFAULT,
            slo: Slo::default(),
            by_task: false,
            quality_metric: None,
            prices: BTreeMap::new(),
        }
    }
}

/// Summary of one latency distribution (seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub n: usize,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Dist {
    pub fn of(mut values: Vec<f64>) -> Dist {
        values.retain(|v| !v.is_nan());
        values.sort_unstable_by(f64::total_cmp);
        let p = |q| ttc_types::timing::percentile_sorted(&values, q);
        Dist { n: values.len(), mean: stats::mean(&values), p50: p(50.0), p95: p(95.0), p99: p(99.0) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub run_id: String,
    pub policy: String,
    pub algorithm: String,
    pub suite: String,
    pub task: Option<String>,
    pub n: usize,
    pub n_ok: usize,
    pub n_error: usize,
    pub error_rate: f64,
    pub errors_by_class: BTreeMap<String, usize>,
    pub ttft_s: Dist,
    pub e2e_s: Dist,
    pub tpot_s: Dist,
    pub output_tokens: u64,
    /// Last end - first start of successful requests, seconds.
    pub span_s: Option<f64>,
    /// Aggregate output throughput: output_tokens / span_s.
    pub output_tok_s: Option<f64>,
    /// Mean of per-request N / E2E.
    pub output_tok_s_per_request: Option<f64>,
    pub request_rate: Option<f64>,
    /// Requests meeting every latency SLO, per second of span.
    pub goodput: Option<f64>,
    /// ... and correct.
    pub quality_goodput: Option<f64>,
    /// Share of all requests meeting every latency SLO.
    pub slo_attainment: f64,
    /// Mean with CI, per quality metric present (QUALITY_METRICS names, then `extra.<name>`).
    pub quality: BTreeMap<String, Estimate>,
    pub primary_metric: Option<String>,
    /// Means of the numeric policy internals present.
    pub internals: BTreeMap<String, f64>,
    pub pareto_optimal: bool,
    /// The metric that decided correctness ([`correct_metric`]) and how many successful answers were correct.
    #[serde(default)]
    pub correct_metric: Option<String>,
    #[serde(default)]
    pub n_correct: Option<usize>,
    /// Output tokens spent per correct answer: all successful requests' output tokens / correct answers.
    #[serde(default)]
    pub output_tokens_per_correct: Option<f64>,
    /// Costs from the run's price (`cost:` in the run file), when it set one.
    #[serde(default)]
    pub cost: Option<crate::cost::Cost>,
    /// The load level of a sweep group (`2 r/s`, `c=4`), or `capacity probes` for a run that only searched
    /// capacity; None for requests sent by the run's own `load:` settings.
    #[serde(default)]
    pub load: Option<String>,
    #[serde(default)]
    pub offered_rate: Option<f64>,
    #[serde(default)]
    pub concurrency_level: Option<u32>,
}

impl GroupSummary {
    pub fn primary_quality(&self) -> Option<f64> {
        self.primary_metric.as_ref().and_then(|m| self.quality.get(m)).map(|e| e.value)
    }

    /// The primary quality turned higher-is-better by its direction (−|x − 1| for closer-to-one metrics), the
    /// axis Pareto fronts and "best quality" rank on.
    pub fn primary_goodness(&self) -> Option<f64> {
        let metric = self.primary_metric.as_deref()?;
        let direction = crate::metrics::RecordField::parse(metric)
            .map(|f| f.direction())
            .unwrap_or(ttc_types::Direction::HigherIsBetter);
        self.primary_quality().map(|q| -direction.badness(q))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoSet {
    pub run_id: String,
    pub suite: String,
    pub task: Option<String>,
    /// Quality axis (maximised); latency axis is p95 E2E (minimised).
    pub metric: Option<String>,
    pub policies: Vec<String>,
    /// The load level the front is at (sweeps).
    #[serde(default)]
    pub load: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub run_ids: Vec<String>,
    pub n_records: usize,
    pub groups: Vec<GroupSummary>,
    pub pareto: Vec<ParetoSet>,
    pub config: AnalysisConfig,
    /// Each policy's capacity at the SLO its capacity search used (runs with a capacity search).
    #[serde(default)]
    pub capacity: Vec<crate::capacity::Capacity>,
    /// A router's (or adaptive policy's) requests broken down by the policy they were routed to.
    #[serde(default)]
    pub routes: Vec<RouteGroup>,
    /// Each policy's fidelity to the full model pooled over the run's suites (one row per run x policy).
    #[serde(default)]
    pub fidelity: Vec<PooledFidelity>,
}

/// A policy's `fidelity_*` means over every request of a run that carries them, whatever its suite, with 95%
/// bootstrap CIs. Fidelity measures the policy against the same model's own full computation, so requests of
/// different suites are samples of one quantity; pooling them narrows the interval that decides whether a lossy
/// policy is faithful (a policy x suite cell of 12 requests gives half-widths of 0.05 to 0.08).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PooledFidelity {
    pub run_id: String,
    pub policy: String,
    /// The suites pooled, sorted.
    pub suites: Vec<String>,
    /// Requests with at least one fidelity value.
    pub n: usize,
    pub metrics: BTreeMap<String, Estimate>,
}

/// [`PooledFidelity`] of every run x policy whose records carry fidelity (capacity probes left out: a search
/// measures load, not quality), sorted by run and policy like the per-suite tables.
pub fn pooled_fidelity(records: &[Record], cfg: &BootstrapConfig) -> Vec<PooledFidelity> {
    /// Suites seen (sorted, distinct), requests counted, and each fidelity metric's values.
    type Pool = (BTreeSet<String>, usize, BTreeMap<&'static str, Vec<f64>>);
    let mut by: BTreeMap<(&str, &str), Pool> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.load.is_capacity()) {
        let values = r.fidelity.values();
        if values.is_empty() {
            continue;
        }
        let (suites, n, pooled) = by.entry((r.run_id.as_str(), r.policy.as_str())).or_default();
        suites.insert(r.suite.clone());
        *n += 1;
        for (k, v) in values.into_iter().filter(|(_, v)| !v.is_nan()) {
            pooled.entry(k).or_default().push(v);
        }
    }
    by.into_iter()
        .map(|((run_id, policy), (suites, n, values))| {
            let metrics = values.into_iter().filter_map(|(k, v)| stats::metric_mean_ci(&v, k, cfg).map(|e| (k.to_string(), e))).collect();
            PooledFidelity { run_id: run_id.to_string(), policy: policy.to_string(), suites: suites.into_iter().collect(), n, metrics }
        })
        .collect()
}

/// The requests of one router on one suite that went to one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteGroup {
    pub run_id: String,
    /// The router.
    pub policy: String,
    pub suite: String,
    /// The policy these requests were routed to.
    pub routed_policy: String,
    /// What chose it (`rules[0]`, `default`, ...), each with its count, sorted.
    pub rules: BTreeMap<String, usize>,
    pub n: usize,
    /// Share of the router's requests on this suite.
    pub share: f64,
    pub e2e_s: Dist,
    pub ttft_s: Dist,
    pub primary_metric: Option<String>,
    /// Mean of the primary metric over these requests.
    pub primary_quality: Option<f64>,
    pub error_rate: f64,
}

/// Breaks every router's records down by route (records without a route are not a router's).
pub fn route_groups(records: &[Record], primaries: &HashMap<(&str, &str), Option<String>>) -> Vec<RouteGroup> {
    let mut by: BTreeMap<(&str, &str, &str, &str), Vec<&Record>> = BTreeMap::new();
    let mut totals: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for r in records {
        let Some(route) = &r.policy_stats.route else { continue };
        by.entry((&r.run_id, &r.policy, &r.suite, &route.policy)).or_default().push(r);
        *totals.entry((&r.run_id, &r.policy, &r.suite)).or_default() += 1;
    }
    by.into_iter()
        .map(|((run, policy, suite, routed), rs)| {
            let ok: Vec<&Record> = rs.iter().copied().filter(|r| r.status == RecordStatus::Ok).collect();
            let mut rules = BTreeMap::new();
            for r in &rs {
                let rule = r.policy_stats.route.as_ref().map(|x| x.rule.clone()).unwrap_or_default();
                *rules.entry(rule).or_insert(0) += 1;
            }
            let primary = primaries.get(&(run, suite)).cloned().flatten();
            let quality: Vec<f64> =
                primary.as_deref().map(|m| ok.iter().filter_map(|r| metric_value(r, m)).collect()).unwrap_or_default();
            RouteGroup {
                run_id: run.to_string(),
                policy: policy.to_string(),
                suite: suite.to_string(),
                routed_policy: routed.to_string(),
                rules,
                n: rs.len(),
                share: rs.len() as f64 / totals[&(run, policy, suite)] as f64,
                e2e_s: Dist::of(ok.iter().filter_map(|r| r.e2e_s).collect()),
                ttft_s: Dist::of(ok.iter().filter_map(|r| r.ttft_s).collect()),
                primary_quality: stats::mean(&quality),
                primary_metric: primary,
                error_rate: error_rate(&rs),
            }
        })
        .collect()
}

/// Output tokens, request count and busy span (seconds with at least one request in flight) of the successful
/// requests.
pub fn throughput_span(records: &[&Record]) -> (u64, usize, Option<f64>) {
    let mut tokens = 0u64;
    let mut intervals = Vec::new();
    for r in records.iter().filter(|r| r.status == RecordStatus::Ok) {
        let Some(e2e) = r.e2e_s else { continue };
        tokens += r.output_tokens.unwrap_or(0) as u64;
        intervals.push((r.start_offset_s, r.start_offset_s + e2e.max(0.0)));
    }
    let count = intervals.len();
    let span = busy_span(&mut intervals);
    (tokens, count, (span > 0.0).then_some(span))
}

/// Length of the union of `[start, end]` intervals.
pub fn busy_span(intervals: &mut [(f64, f64)]) -> f64 {
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for &(s, e) in intervals.iter() {
        match current {
            Some((cs, ce)) if s <= ce => current = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                current = Some((s, e));
            }
            None => current = Some((s, e)),
        }
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

pub fn error_rate(records: &[&Record]) -> f64 {
    if records.is_empty() {
        return 0.0;
    }
    records.iter().filter(|r| r.status == RecordStatus::Error).count() as f64 / records.len() as f64
}

/// A record's value of a quality metric, `extra.<name>` scorer output or `fidelity_*` column, by name.
pub fn metric_value(r: &Record, name: &str) -> Option<f64> {
    let v = match name.strip_prefix("extra.") {
        Some(e) => r.extra_metrics.get(e).copied(),
        None => r.metrics.get(name).or_else(|| r.extra_metrics.get(name)).copied().or_else(|| r.fidelity.get(name)),
    };
    v.filter(|x| !x.is_nan())
}

/// Whether a record's answer counts as correct for quality-aware goodput.
pub fn is_correct(r: &Record, metric: Option<&str>, min: f64) -> bool {
    metric.and_then(|m| r.metrics.get(m).or_else(|| r.extra_metrics.get(m))).is_some_and(|v| *v >= min)
}

/// The metric that decides whether an answer is correct (quality-aware goodput, cost per correct answer):
/// `configured` (`--quality-metric`) when set, else per suite (docs/metrics.md "Correct answers"):
/// - CRMArena, CRMArena-Pro: `exact_match_normalized`, CRMArena's own `em` (the normalised answer equals the
///   gold; for the ID, month and state answers of its exact-match tasks this is the official reward up to case
///   and punctuation);
/// - WorfBench and any other suite: the primary quality metric (e.g. `f1_graph`, `rouge_l`).
///
/// An answer is correct when the metric is >= `correct_min` (0.5 by default; a 0/1 match counts when it is 1).
/// Falls back to the primary metric when the records lack the suite's metric (a restricted `scoring.metrics`).
pub fn correct_metric(records: &[&Record], primary: Option<&str>, configured: Option<&str>) -> Option<String> {
    if let Some(c) = configured {
        return Some(c.to_string());
    }
    let by_suite = records.first().and_then(|r| ttc_types::Suite::of_record(&r.suite)).and_then(|s| s.correct_metric());
    by_suite
        .filter(|m| records.iter().any(|r| r.metrics.contains_key(*m)))
        .map(str::to_string)
        .or_else(|| primary.map(str::to_string))
}

/// (goodput, quality goodput, SLO attainment) of a group.
pub fn goodput(records: &[&Record], slo: &Slo, correct_metric: Option<&str>) -> (Option<f64>, Option<f64>, f64) {
    let (_, _, span) = throughput_span(records);
    let good: Vec<&&Record> = records.iter().filter(|r| slo.met_by(r)).collect();
    let correct = good.iter().filter(|r| is_correct(r, correct_metric, slo.correct_min)).count();
    let attainment = if records.is_empty() { 0.0 } else { good.len() as f64 / records.len() as f64 };
    let metric_present = correct_metric.is_some();
    (
        span.map(|s| good.len() as f64 / s),
        span.filter(|_| metric_present).map(|s| correct as f64 / s),
        attainment,
    )
}

/// The suite's primary quality metric: the configured one if records carry it, else by priority, else any.
pub fn primary_metric(records: &[&Record], configured: Option<&str>) -> Option<String> {
    let mut present: HashSet<&str> = HashSet::new();
    for k in records.iter().flat_map(|r| r.metrics.keys()) {
        if !present.contains(k.as_str()) {
            present.insert(k);
        }
    }
    if let Some(c) = configured {
        if present.contains(c) || records.iter().any(|r| r.extra_metrics.contains_key(c)) {
            return Some(c.to_string());
        }
    }
    PRIMARY_METRIC_PRIORITY
        .iter()
        .find(|m| present.contains(**m))
        .map(|m| m.to_string())
        .or_else(|| QUALITY_METRICS.iter().find(|m| present.contains(**m)).map(|m| m.to_string()))
}

fn quality_estimates(records: &[&Record], cfg: &BootstrapConfig) -> BTreeMap<String, Estimate> {
    let mut by_metric: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut by_extra: HashMap<&str, Vec<f64>> = HashMap::new();
    for r in records {
        for (k, v) in r.metrics.iter().filter(|(_, v)| !v.is_nan()) {
            by_metric.entry(k).or_default().push(*v);
        }
        for (k, v) in r.extra_metrics.iter().filter(|(_, v)| !v.is_nan()) {
            by_extra.entry(k).or_default().push(*v);
        }
        for (k, v) in r.fidelity.values() {
            by_metric.entry(k).or_default().push(v);
        }
    }
    let named = by_metric.into_iter().map(|(k, v)| (k.to_string(), v));
    let extra = by_extra.into_iter().map(|(k, v)| (format!("extra.{k}"), v));
    // The one interval rule (`ttc score` uses it too): it depends on the values, not on the order the records
    // were stored in (one process or N shards, in completion order).
    named.chain(extra).filter_map(|(k, v)| stats::metric_mean_ci(&v, &k, cfg).map(|e| (k, e))).collect()
}

fn internals(records: &[&Record]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<&'static str, (f64, usize)> = BTreeMap::new();
    for r in records {
        for (k, v) in r.policy_stats.numeric_fields() {
            let e = sums.entry(k).or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    // Keep the registry's column order out of the map ordering concerns: names are the PolicyStats fields.
    debug_assert!(sums.keys().all(|k| policy_stat_fields().any(|f| f == *k)));
    sums.into_iter().map(|(k, (s, n))| (k.to_string(), s / n as f64)).collect()
}

type GroupKey<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<String>);

/// Summarises one group of records (all with the same run, policy, suite, task).
pub fn summarize_group(records: &[&Record], primary: Option<String>, cfg: &AnalysisConfig) -> GroupSummary {
    let first = records.first().copied();
    let get = |f: fn(&Record) -> &str| first.map(f).unwrap_or_default().to_string();
    let ok: Vec<&Record> = records.iter().copied().filter(|r| r.status == RecordStatus::Ok).collect();
    let n_error = records.len() - ok.len();
    let mut errors_by_class = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == RecordStatus::Error) {
        *errors_by_class.entry(r.error_class.clone().unwrap_or_else(|| "unknown".into())).or_insert(0) += 1;
    }
    let dist = |f: fn(&Record) -> Option<f64>| Dist::of(ok.iter().filter_map(|r| f(r)).collect());
    let (tokens, count, span) = throughput_span(records);
    let correct_metric = correct_metric(records, primary.as_deref(), cfg.slo.correct_metric.as_deref());
    let (goodput, quality_goodput, slo_attainment) = goodput(records, &cfg.slo, correct_metric.as_deref());
    let n_correct = correct_metric
        .as_deref()
        .map(|m| ok.iter().filter(|r| is_correct(r, Some(m), cfg.slo.correct_min)).count());
    let run_id = get(|r| &r.run_id);
    let cost = cfg.prices.get(&run_id).and_then(|p| crate::cost::cost(records, p, tokens, n_correct));
    GroupSummary {
        run_id: get(|r| &r.run_id),
        policy: get(|r| &r.policy),
        algorithm: get(|r| &r.algorithm),
        suite: get(|r| &r.suite),
        task: if cfg.by_task { first.and_then(|r| r.task.clone()) } else { None },
        n: records.len(),
        n_ok: ok.len(),
        n_error,
        error_rate: error_rate(records),
        errors_by_class,
        ttft_s: dist(|r| r.ttft_s),
        e2e_s: dist(|r| r.e2e_s),
        tpot_s: dist(|r| r.tpot_s),
        output_tokens: tokens,
        span_s: span,
        output_tok_s: span.map(|s| tokens as f64 / s),
        output_tok_s_per_request: stats::mean(&ok.iter().filter_map(|r| r.throughput_tok_s).collect::<Vec<_>>()),
        request_rate: span.map(|s| count as f64 / s),
        goodput,
        quality_goodput,
        slo_attainment,
        quality: quality_estimates(records, &cfg.bootstrap),
        primary_metric: primary,
        internals: internals(records),
        pareto_optimal: false,
        output_tokens_per_correct: n_correct.filter(|&n| n > 0).map(|n| tokens as f64 / n as f64),
        correct_metric,
        n_correct,
        cost,
        load: None,
        offered_rate: None,
        concurrency_level: None,
    }
}

/// The group a record's latency belongs to on the load axis: its sweep level, `capacity probes` when its run has
/// nothing but capacity probes, else None. Capacity probes of a run that has other requests are left out of the
/// groups (they are summarised as capacities), as their latency mixes every probed rate.
fn load_group(r: &Record, capacity_only_runs: &HashSet<&str>) -> Option<Option<String>> {
    if r.load.is_capacity() {
        return capacity_only_runs.contains(r.run_id.as_str()).then(|| Some("capacity probes".to_string()));
    }
    Some(r.load.level_label())
}

/// The full summary of a set of records (one run or several).
pub fn summarize(records: &[Record], cfg: &AnalysisConfig) -> Summary {
    let mut groups: HashMap<GroupKey, Vec<&Record>> = HashMap::new();
    let mut by_suite: HashMap<(&str, &str, Option<&str>), Vec<&Record>> = HashMap::new();
    let with_other: HashSet<&str> = records.iter().filter(|r| !r.load.is_capacity()).map(|r| r.run_id.as_str()).collect();
    let capacity_only: HashSet<&str> =
        records.iter().map(|r| r.run_id.as_str()).filter(|id| !with_other.contains(id)).collect();
    for r in records {
        let task = if cfg.by_task { r.task.as_deref() } else { None };
        by_suite.entry((&r.run_id, &r.suite, task)).or_default().push(r);
        let Some(level) = load_group(r, &capacity_only) else { continue };
        groups.entry((&r.run_id, &r.suite, &r.policy, task, level)).or_default().push(r);
    }
    let primaries: HashMap<(&str, &str, Option<&str>), Option<String>> =
        by_suite.iter().map(|(k, rs)| (*k, primary_metric(rs, cfg.quality_metric.as_deref()))).collect();

    let mut groups: Vec<(GroupKey, Vec<&Record>)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Within a policy, load levels in increasing order.
    groups.sort_by(|a, b| {
        let level = |g: &(GroupKey, Vec<&Record>)| {
            let r = g.1[0];
            (r.load.offered_rate.unwrap_or(-1.0), r.load.concurrency_level.unwrap_or(0))
        };
        (a.0 .0, a.0 .1, a.0 .2, a.0 .3)
            .cmp(&(b.0 .0, b.0 .1, b.0 .2, b.0 .3))
            .then(level(a).0.total_cmp(&level(b).0))
            .then(level(a).1.cmp(&level(b).1))
    });
    let mut out: Vec<GroupSummary> = groups
        .iter()
        .map(|((run, suite, _, task, level), rs)| {
            let mut g = summarize_group(rs, primaries[&(*run, *suite, *task)].clone(), cfg);
            g.load = level.clone();
            if level.is_some() && !rs[0].load.is_capacity() {
                g.offered_rate = rs[0].load.offered_rate;
                g.concurrency_level = rs[0].load.concurrency_level;
            }
            g
        })
        .collect();

    // Pareto fronts over (p95 E2E, primary quality) among the policies of one run x suite (x task).
    let mut pareto = Vec::new();
    // Policies are compared at the same load: one front per load level.
    type FrontKey = (String, String, Option<String>, Option<String>);
    let mut idx_by_suite: BTreeMap<FrontKey, Vec<usize>> = BTreeMap::new();
    for (i, g) in out.iter().enumerate() {
        idx_by_suite.entry((g.run_id.clone(), g.suite.clone(), g.task.clone(), g.load.clone())).or_default().push(i);
    }
    for ((run_id, suite, task, load), idx) in idx_by_suite {
        let pts: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| (out[i].e2e_s.p95.unwrap_or(f64::NAN), out[i].primary_goodness().unwrap_or(f64::NAN)))
            .collect();
        let front = stats::pareto_front(&pts);
        let mut policies = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            out[i].pareto_optimal = front[k];
            if front[k] {
                policies.push(out[i].policy.clone());
            }
        }
        let metric = idx.first().and_then(|&i| out[i].primary_metric.clone());
        pareto.push(ParetoSet { run_id, suite, task, metric, policies, load });
    }

    let run_ids: BTreeSet<&str> = records.iter().map(|r| r.run_id.as_str()).collect();
    let suite_primaries: HashMap<(&str, &str), Option<String>> =
        primaries.iter().filter(|((_, _, task), _)| task.is_none()).map(|((run, suite, _), m)| ((*run, *suite), m.clone())).collect();
    let suite_primaries = if suite_primaries.is_empty() {
        // Grouped by task: a suite's metric is the one of any of its tasks (every task of a suite shares it).
        primaries.iter().map(|((run, suite, _), m)| ((*run, *suite), m.clone())).collect()
    } else {
        suite_primaries
    };
    Summary {
        run_ids: run_ids.into_iter().map(str::to_string).collect(),
        n_records: records.len(),
        groups: out,
        pareto,
        config: cfg.clone(),
        capacity: crate::capacity::capacities(records, None),
        routes: route_groups(records, &suite_primaries),
        fidelity: pooled_fidelity(records, &cfg.bootstrap),
    }
}
