//! The JSON shapes behind the views, computed on the server from the store's records and summaries so the
//! browser only draws (100,000 records must not travel to the page). Pure functions, tested directly.
//!
//! Every statistic comes from `ttc-results` (percentiles, throughput span, Pareto front, KPI metric values),
//! so the dashboard shows the same numbers as `ttc summary`, `ttc report` and `ttc check`.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use ttc_results::analysis::{primary_metric, throughput_span, GroupSummary, Summary};
use ttc_results::kpi::metric_value;
use ttc_results::metrics::MetricRef;
use ttc_stats::pareto_front;
use ttc_results::{LoadedRun, RunStatus};
use ttc_types::timing::percentile_sorted;
use ttc_types::{Record, RecordStatus};

/// One line of the runs view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    /// `running`, `finished`, or `unknown` without a manifest.
    pub status: String,
    pub config_hash: Option<String>,
    pub model: Option<String>,
    pub backend: Option<String>,
    pub weights: Option<String>,
    pub policies: Vec<String>,
    pub suites: Vec<String>,
    pub n_records: usize,
    pub n_errors: usize,
    pub planned: Option<u64>,
    pub warnings: Vec<String>,
}

/// The runs view line of a loaded run: manifest first, the records fill what the manifest lacks.
pub fn run_row(run: &LoadedRun) -> RunRow {
    let first = run.records.first();
    let extra = run.manifest.as_ref().map(|m| &m.meta.extra);
    let extra_str = |k: &str| extra.and_then(|e| e.get(k)).and_then(|v| v.as_str()).map(str::to_string);
    let distinct = |f: fn(&Record) -> &str| -> Vec<String> {
        let set: BTreeSet<&str> = run.records.iter().map(f).collect();
        set.into_iter().map(str::to_string).collect()
    };
    let mut policies = distinct(|r| &r.policy);
    // Planned policies that have no record yet still belong to the run.
    if let Some(planned) = extra.and_then(|e| e.get("policies")).and_then(|v| v.as_array()) {
        for p in planned.iter().filter_map(|v| v.as_str()) {
            if !policies.iter().any(|q| q == p) {
                policies.push(p.to_string());
            }
        }
    }
    RunRow {
        run_id: run.run_id.clone(),
        started_at: run.manifest.as_ref().map(|m| m.meta.started_at.clone()).or_else(|| first.map(|r| r.run_started_at.clone())),
        updated_at: run.manifest.as_ref().map(|m| m.updated_at.clone()),
        status: run_status(run),
        config_hash: run.manifest.as_ref().map(|m| m.meta.config_hash.clone()).or_else(|| first.map(|r| r.config_hash.clone())),
        model: extra_str("model").or_else(|| first.map(|r| r.model.clone())),
        backend: extra_str("backend").or_else(|| first.map(|r| r.backend.clone())),
        weights: extra_str("weights").or_else(|| first.and_then(|r| r.weights.clone())),
        policies,
        suites: distinct(|r| &r.suite),
        n_records: run.records.len(),
        n_errors: run.records.iter().filter(|r| r.status == RecordStatus::Error).count(),
        planned: run.manifest.as_ref().and_then(|m| m.meta.planned),
        warnings: run.warnings.clone(),
    }
}

/// The primary quality metric of each suite of a summary (per run x suite).
pub fn primary_by_suite(summary: &Summary) -> HashMap<(String, String), String> {
    summary
        .groups
        .iter()
        .filter_map(|g| Some(((g.run_id.clone(), g.suite.clone()), g.primary_metric.clone()?)))
        .collect()
}

/// One request in a table: what fits on a line. `id` is the record's position in the run as read
/// (parts in order, rows in order): stable while the run is only appended to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordRow {
    pub id: Option<usize>,
    pub run_id: String,
    pub policy: String,
    pub suite: String,
    pub task: Option<String>,
    pub sample_id: String,
    pub status: RecordStatus,
    pub error_class: Option<String>,
    pub start_offset_s: f64,
    pub ttft_s: Option<f64>,
    pub e2e_s: Option<f64>,
    pub tpot_s: Option<f64>,
    pub output_tokens: Option<u32>,
    pub throughput_tok_s: Option<f64>,
    /// The suite's primary quality metric and its value.
    pub quality_metric: Option<String>,
    pub quality: Option<f64>,
}

pub fn record_row(id: Option<usize>, r: &Record, primary: Option<&str>) -> RecordRow {
    let quality_metric = primary
        .map(str::to_string)
        .or_else(|| primary_metric(&[r], None));
    let quality = quality_metric.as_deref().and_then(|m| r.metrics.get(m).or_else(|| r.extra_metrics.get(m)).copied());
    RecordRow {
        id,
        run_id: r.run_id.clone(),
        policy: r.policy.clone(),
        suite: r.suite.clone(),
        task: r.task.clone(),
        sample_id: r.sample_id.clone(),
        status: r.status,
        error_class: r.error_class.clone(),
        start_offset_s: r.start_offset_s,
        ttft_s: r.ttft_s,
        e2e_s: r.e2e_s,
        tpot_s: r.tpot_s,
        output_tokens: r.output_tokens,
        throughput_tok_s: r.throughput_tok_s,
        quality_metric,
        quality,
    }
}

/// Filters of the records view.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub policy: Option<String>,
    pub suite: Option<String>,
    /// `ok` or `error`.
    pub status: Option<RecordStatus>,
}

impl RecordFilter {
    pub fn matches(&self, r: &Record) -> bool {
        self.policy.as_ref().is_none_or(|p| &r.policy == p)
            && self.suite.as_ref().is_none_or(|s| &r.suite == s)
            && self.status.is_none_or(|s| r.status == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPage {
    /// Records matching the filter.
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<RecordRow>,
}

pub fn record_page(run: &LoadedRun, summary: &Summary, filter: &RecordFilter, offset: usize, limit: usize) -> RecordPage {
    let primaries = primary_by_suite(summary);
    let matching = run.records.iter().enumerate().filter(|(_, r)| filter.matches(r));
    let mut total = 0;
    let mut rows = Vec::new();
    for (i, r) in matching {
        if total >= offset && rows.len() < limit {
            let p = primaries.get(&(r.run_id.clone(), r.suite.clone())).map(String::as_str);
            rows.push(record_row(Some(i), r, p));
        }
        total += 1;
    }
    RecordPage { total, offset, rows }
}

/// Latency axis of the trade-off view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyAxis {
    TtftP50,
    TtftP95,
    E2eP50,
    E2eP95,
    TpotP50,
    TpotP95,
}

impl LatencyAxis {
    pub const NAMES: &'static [&'static str] = &["ttft_p50", "ttft_p95", "e2e_p50", "e2e_p95", "tpot_p50", "tpot_p95"];

    pub fn parse(s: &str) -> anyhow::Result<LatencyAxis> {
        Ok(match s {
            "ttft_p50" => LatencyAxis::TtftP50,
            "ttft_p95" => LatencyAxis::TtftP95,
            "e2e_p50" => LatencyAxis::E2eP50,
            "e2e_p95" => LatencyAxis::E2eP95,
            "tpot_p50" => LatencyAxis::TpotP50,
            "tpot_p95" => LatencyAxis::TpotP95,
            _ => anyhow::bail!("unknown latency axis `{s}` (use one of {})", Self::NAMES.join(", ")),
        })
    }

    pub fn of(self, g: &GroupSummary) -> Option<f64> {
        match self {
            LatencyAxis::TtftP50 => g.ttft_s.p50,
            LatencyAxis::TtftP95 => g.ttft_s.p95,
            LatencyAxis::E2eP50 => g.e2e_s.p50,
            LatencyAxis::E2eP95 => g.e2e_s.p95,
            LatencyAxis::TpotP50 => g.tpot_s.p50,
            LatencyAxis::TpotP95 => g.tpot_s.p95,
        }
    }
}

/// One policy (x suite x run) on the latency-quality plane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeoffPoint {
    pub run_id: String,
    pub policy: String,
    pub suite: String,
    pub n: usize,
    pub latency_s: f64,
    pub quality: f64,
    pub quality_lo: f64,
    pub quality_hi: f64,
    pub metric: String,
    /// Not dominated by another policy of the same run and suite (lower latency, higher quality).
    pub pareto: bool,
}

/// Points for the chosen axes; `metric` None = each suite's primary metric. Groups without a value on
/// either axis are left out. The front is the store's `pareto_front`, per run x suite.
pub fn tradeoffs(summary: &Summary, axis: LatencyAxis, metric: Option<&str>) -> Vec<TradeoffPoint> {
    let mut points: Vec<TradeoffPoint> = summary
        .groups
        .iter()
        .filter_map(|g| {
            let m = metric.map(str::to_string).or_else(|| g.primary_metric.clone())?;
            let est = g.quality.get(&m)?;
            Some(TradeoffPoint {
                run_id: g.run_id.clone(),
                policy: g.policy.clone(),
                suite: g.suite.clone(),
                n: g.n,
                latency_s: axis.of(g)?,
                quality: est.value,
                quality_lo: est.lo,
                quality_hi: est.hi,
                metric: m,
                pareto: false,
            })
        })
        .collect();
    let mut by_front: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        by_front.entry((p.run_id.clone(), p.suite.clone())).or_default().push(i);
    }
    for idx in by_front.values() {
        let xy: Vec<(f64, f64)> = idx.iter().map(|&i| (points[i].latency_s, points[i].quality)).collect();
        for (k, on_front) in pareto_front(&xy).into_iter().enumerate() {
            points[idx[k]].pareto = on_front;
        }
    }
    points
}

/// Quality metric names present in a summary (for the metric selector).
pub fn quality_metrics(summary: &Summary) -> Vec<String> {
    let set: BTreeSet<&String> = summary.groups.iter().flat_map(|g| g.quality.keys()).collect();
    set.into_iter().cloned().collect()
}

/// Number of points of each CDF sent to the browser (quantiles 0, 1/(n-1), ..., 1).
pub const CDF_POINTS: usize = 51;

/// Empirical CDF of a latency, sampled at evenly spaced quantiles (numpy-linear percentiles).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cdf {
    pub n: usize,
    /// (value, cumulative fraction) pairs, ascending.
    pub points: Vec<(f64, f64)>,
}

pub fn cdf(mut values: Vec<f64>) -> Cdf {
    values.retain(|v| !v.is_nan());
    values.sort_unstable_by(f64::total_cmp);
    let points = if values.is_empty() {
        Vec::new()
    } else {
        (0..CDF_POINTS)
            .filter_map(|i| {
                let q = i as f64 / (CDF_POINTS - 1) as f64;
                percentile_sorted(&values, q * 100.0).map(|v| (v, q))
            })
            .collect()
    };
    Cdf { n: values.len(), points }
}

/// Five-number summary for a box plot (p5, p25, p50, p75, p95: whiskers at p5/p95).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxStats {
    pub n: usize,
    pub p5: Option<f64>,
    pub p25: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p95: Option<f64>,
}

pub fn box_stats(mut values: Vec<f64>) -> BoxStats {
    values.retain(|v| !v.is_nan());
    values.sort_unstable_by(f64::total_cmp);
    let p = |q| percentile_sorted(&values, q);
    BoxStats { n: values.len(), p5: p(5.0), p25: p(25.0), p50: p(50.0), p75: p(75.0), p95: p(95.0) }
}

/// Latency and throughput distributions of one policy (successful requests).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDistribution {
    pub run_id: String,
    pub policy: String,
    pub ttft_s: Cdf,
    pub e2e_s: Cdf,
    /// Per-request output tokens / E2E.
    pub throughput_tok_s: BoxStats,
    /// Aggregate output throughput (sum of tokens / span), as in the summary.
    pub output_tok_s: Option<f64>,
}

/// Per run x policy distributions, over all suites or only `suite`.
pub fn distributions(runs: &[&LoadedRun], suite: Option<&str>) -> Vec<PolicyDistribution> {
    let mut out = Vec::new();
    for run in runs {
        let mut by_policy: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in run.records.iter().filter(|r| suite.is_none_or(|s| r.suite == s)) {
            by_policy.entry(&r.policy).or_default().push(r);
        }
        for (policy, recs) in by_policy {
            let ok = || recs.iter().filter(|r| r.status == RecordStatus::Ok);
            let (tokens, _, span) = throughput_span(&recs);
            out.push(PolicyDistribution {
                run_id: run.run_id.clone(),
                policy: policy.to_string(),
                ttft_s: cdf(ok().filter_map(|r| r.ttft_s).collect()),
                e2e_s: cdf(ok().filter_map(|r| r.e2e_s).collect()),
                throughput_tok_s: box_stats(ok().filter_map(|r| r.throughput_tok_s).collect()),
                output_tok_s: span.map(|s| tokens as f64 / s),
            });
        }
    }
    out
}

/// The metrics the trends view follows, as (label, metric, statistic) for `ttc_results::kpi::metric_value`.
pub const TREND_METRICS: &[(&str, &str, Option<&str>)] = &[
    ("p50 ttft_s", "ttft_s", Some("p50")),
    ("p95 e2e_s", "e2e_s", Some("p95")),
    ("p50 tpot_s", "tpot_s", Some("p50")),
    ("output_tok_s", "output_tok_s", None),
    ("error_rate", "error_rate", None),
];

/// Label of the quality entry of a trend point (the run's primary metric, named in `quality_metric`).
pub const TREND_QUALITY: &str = "quality";

/// One policy's key metrics in one run (over all its suites).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub started_at: Option<String>,
    pub policy: String,
    pub n: usize,
    pub values: BTreeMap<String, f64>,
    pub quality_metric: Option<String>,
}

/// Trend points of one run, one per policy. Values are the KPI gate's definitions over the policy's records.
pub fn trend_points(run: &LoadedRun) -> Vec<TrendPoint> {
    let all: Vec<&Record> = run.records.iter().collect();
    let quality = primary_metric(&all, None);
    let slo = ttc_results::analysis::Slo::default();
    let mut by_policy: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &all {
        by_policy.entry(&r.policy).or_default().push(r);
    }
    let metrics: Vec<(&str, MetricRef)> = TREND_METRICS
        .iter()
        .filter_map(|(label, m, s)| Some((*label, MetricRef::parse(m, *s).ok()?)))
        .chain(quality.as_deref().and_then(|q| Some((TREND_QUALITY, MetricRef::parse(q, Some("mean")).ok()?))))
        .collect();
    by_policy
        .into_iter()
        .map(|(policy, recs)| TrendPoint {
            run_id: run.run_id.clone(),
            started_at: run.manifest.as_ref().map(|m| m.meta.started_at.clone()).or_else(|| recs.first().map(|r| r.run_started_at.clone())),
            policy: policy.to_string(),
            n: recs.len(),
            values: metrics.iter().filter_map(|(label, m)| Some((label.to_string(), metric_value(&recs, m, &slo)?))).collect(),
            quality_metric: quality.clone(),
        })
        .collect()
}

/// How a run is doing: what the live view's counters show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub run_id: String,
    pub status: String,
    pub done: usize,
    pub planned: Option<u64>,
    pub errors: usize,
    /// Aggregate output throughput so far (tokens / span of successful requests).
    pub output_tok_s: Option<f64>,
    /// Output throughput over the last [`RECENT_WINDOW_S`] seconds of the run's timeline.
    pub recent_tok_s: Option<f64>,
    /// Requests in flight, known only from the runner's live feed.
    pub in_flight: Option<u64>,
}

/// Window of "current" throughput, seconds of run time before the latest completion.
pub const RECENT_WINDOW_S: f64 = 10.0;

pub fn progress(run: &LoadedRun) -> Progress {
    let all: Vec<&Record> = run.records.iter().collect();
    let (tokens, _, span) = throughput_span(&all);
    let end = |r: &Record| r.e2e_s.map(|e| r.start_offset_s + e);
    let ok = || all.iter().filter(|r| r.status == RecordStatus::Ok);
    let recent_tok_s = ok().filter_map(|r| end(r)).max_by(f64::total_cmp).and_then(|last| {
        let from = last - RECENT_WINDOW_S;
        let first_start = ok().map(|r| r.start_offset_s).min_by(f64::total_cmp)?;
        let window = last - from.max(first_start);
        let recent: u64 = ok()
            .filter(|r| end(r).is_some_and(|e| e > from))
            .map(|r| r.output_tokens.unwrap_or(0) as u64)
            .sum();
        (window > 0.0).then(|| recent as f64 / window)
    });
    Progress {
        run_id: run.run_id.clone(),
        status: run_status(run),
        done: all.len(),
        planned: run.manifest.as_ref().and_then(|m| m.meta.planned),
        errors: all.iter().filter(|r| r.status == RecordStatus::Error).count(),
        output_tok_s: span.map(|s| tokens as f64 / s),
        recent_tok_s,
        in_flight: None,
    }
}

/// `running`, `finished` (from the manifest) or `unknown` (no readable manifest).
pub fn run_status(run: &LoadedRun) -> String {
    match run.manifest.as_ref().map(|m| m.status) {
        Some(RunStatus::Running) => "running".into(),
        Some(RunStatus::Finished) => "finished".into(),
        None => "unknown".into(),
    }
}
