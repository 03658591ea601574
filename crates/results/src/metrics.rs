//! Metric registry: every quantity a KPI, a comparison or a chart can name, with its unit and direction
//! (after AIPerf's `aiperf/metrics` registry: tag, unit, larger-or-smaller-is-better).
//!
//! Two kinds:
//! - per-record fields ([`RecordField`]): distributions, summarised with a [`Stat`] (mean, pNN, min, max);
//! - per-group quantities ([`GroupMetric`]) that only exist over a set of records (error rate, aggregate
//!   throughput, goodput).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use ttc_types::{Record, RecordStatus, QUALITY_METRICS};

use crate::columns::policy_stat_fields;
use ttc_stats as stats;

/// One direction table for quality metrics (`ttc_types::metric`); timings and group quantities below.
pub use ttc_types::Direction;

/// A numeric per-request value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordField {
    TtftS,
    E2eS,
    TpotS,
    ItlMeanS,
    ItlP50S,
    ItlP99S,
    ThroughputTokS,
    OutputTokens,
    PromptTokens,
    BackoffS,
    Attempts,
    /// A name from `QUALITY_METRICS`.
    Quality(String),
    /// A numeric `PolicyStats` field.
    PolicyStat(&'static str),
    /// A scorer output outside `QUALITY_METRICS` (`extra.<name>`).
    Extra(String),
    /// A `fidelity_*` column (`ttc_types::FIDELITY_METRICS`).
    Fidelity(&'static str),
}

const TIMING_FIELDS: &[(&str, RecordField)] = &[
    ("ttft_s", RecordField::TtftS),
    ("e2e_s", RecordField::E2eS),
    ("tpot_s", RecordField::TpotS),
    ("itl_mean_s", RecordField::ItlMeanS),
    ("itl_p50_s", RecordField::ItlP50S),
    ("itl_p99_s", RecordField::ItlP99S),
    ("throughput_tok_s", RecordField::ThroughputTokS),
    ("output_tokens", RecordField::OutputTokens),
    ("prompt_tokens", RecordField::PromptTokens),
    ("backoff_s", RecordField::BackoffS),
    ("attempts", RecordField::Attempts),
];

impl RecordField {
    /// Accepts the column names of the store: `ttft_s`, `rouge_l` or `metric_rouge_l`, `acceptance_rate`
    /// or `ps_acceptance_rate`, `extra.<name>`; also `latency` as an alias of `e2e_s`, `ttft` of `ttft_s`.
    pub fn parse(name: &str) -> Result<RecordField> {
        let alias = match name {
            "latency" | "e2e" => "e2e_s",
            "ttft" => "ttft_s",
            "tpot" => "tpot_s",
            other => other,
        };
        if let Some((_, f)) = TIMING_FIELDS.iter().find(|(n, _)| *n == alias) {
            return Ok(f.clone());
        }
        let q = alias.strip_prefix(crate::columns::METRIC_PREFIX).unwrap_or(alias);
        if let Some(m) = QUALITY_METRICS.iter().find(|m| **m == q) {
            return Ok(RecordField::Quality(m.to_string()));
        }
        if let Some((f, _)) = ttc_types::FIDELITY_METRICS.iter().find(|(f, _)| *f == alias) {
            return Ok(RecordField::Fidelity(f));
        }
        let p = alias.strip_prefix(crate::columns::PS_PREFIX).unwrap_or(alias);
        if let Some(f) = policy_stat_fields().find(|f| *f == p) {
            return Ok(RecordField::PolicyStat(f));
        }
        if let Some(extra) = alias.strip_prefix("extra.") {
            if !extra.is_empty() {
                return Ok(RecordField::Extra(extra.to_string()));
            }
        }
        bail!(
            "unknown metric `{name}` (use a timing field like ttft_s/e2e_s/tpot_s/throughput_tok_s, a quality metric \
             like rouge_l, a fidelity metric like fidelity_top1, a policy internal like acceptance_rate, extra.<name>, or a \
             group metric: {})",
            GroupMetric::NAMES.join(", ")
        )
    }

    pub fn name(&self) -> String {
        match self {
            RecordField::Quality(m) => m.clone(),
            RecordField::PolicyStat(f) => f.to_string(),
            RecordField::Extra(e) => format!("extra.{e}"),
            RecordField::Fidelity(f) => f.to_string(),
            other => TIMING_FIELDS.iter().find(|(_, f)| f == other).map_or("?", |(n, _)| n).to_string(),
        }
    }

    pub fn direction(&self) -> Direction {
        match self {
            RecordField::ThroughputTokS => Direction::HigherIsBetter,
            RecordField::Quality(m) => ttc_types::quality_direction(m).unwrap_or(Direction::HigherIsBetter),
            RecordField::Extra(_) => Direction::HigherIsBetter,
            RecordField::Fidelity(f) => ttc_types::fidelity_direction(f).unwrap_or(Direction::HigherIsBetter),
            RecordField::PolicyStat(
                "acceptance_rate" | "mean_accepted_per_step" | "layers_skipped_share" | "accepted_tokens",
            ) => Direction::HigherIsBetter,
            _ => Direction::LowerIsBetter,
        }
    }

    pub fn is_quality(&self) -> bool {
        matches!(self, RecordField::Quality(_) | RecordField::Extra(_) | RecordField::Fidelity(_))
    }

    /// The value of one record. Timings and tokens are only meaningful for successful requests, so errored
    /// records yield None for them; quality is taken as scored.
    pub fn value(&self, r: &Record) -> Option<f64> {
        let ok = r.status == RecordStatus::Ok;
        let v = match self {
            RecordField::TtftS => r.ttft_s.filter(|_| ok),
            RecordField::E2eS => r.e2e_s.filter(|_| ok),
            RecordField::TpotS => r.tpot_s.filter(|_| ok),
            RecordField::ItlMeanS => r.itl_mean_s.filter(|_| ok),
            RecordField::ItlP50S => r.itl_p50_s.filter(|_| ok),
            RecordField::ItlP99S => r.itl_p99_s.filter(|_| ok),
            RecordField::ThroughputTokS => r.throughput_tok_s.filter(|_| ok),
            RecordField::OutputTokens => r.output_tokens.filter(|_| ok).map(f64::from),
            RecordField::PromptTokens => r.prompt_tokens.map(f64::from),
            RecordField::BackoffS => Some(r.backoff_s),
            RecordField::Attempts => Some(r.attempts as f64),
            RecordField::Quality(m) => r.metrics.get(m).copied(),
            RecordField::PolicyStat(f) => {
                r.policy_stats.numeric_fields().into_iter().find(|(n, _)| n == f).map(|(_, v)| v)
            }
            RecordField::Extra(e) => r.extra_metrics.get(e).copied(),
            RecordField::Fidelity(f) => r.fidelity.get(f),
        };
        v.filter(|x| !x.is_nan())
    }
}

/// How a distribution of per-record values is reduced to one number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Stat {
    Mean,
    Min,
    Max,
    /// Percentile in [0, 100], numpy linear.
    Percentile(f64),
}

impl Stat {
    /// `mean`, `min`, `max`, `median`, `p50`, `p95`, `p99.9`, ...
    pub fn parse(s: &str) -> Result<Stat> {
        match s {
            "mean" | "avg" => return Ok(Stat::Mean),
            "min" => return Ok(Stat::Min),
            "max" => return Ok(Stat::Max),
            "median" => return Ok(Stat::Percentile(50.0)),
            _ => {}
        }
        match s.strip_prefix('p').and_then(|q| q.parse::<f64>().ok()) {
            Some(q) if (0.0..=100.0).contains(&q) => Ok(Stat::Percentile(q)),
            _ => bail!("unknown statistic `{s}` (use mean, min, max, median or pNN with NN in 0..100, e.g. p95)"),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Stat::Mean => "mean".into(),
            Stat::Min => "min".into(),
            Stat::Max => "max".into(),
            Stat::Percentile(q) => format!("p{q}"),
        }
    }

    pub fn apply(&self, values: &[f64]) -> Option<f64> {
        match self {
            Stat::Mean => stats::order_free_mean(values),
            Stat::Min => values.iter().copied().min_by(f64::total_cmp),
            Stat::Max => values.iter().copied().max_by(f64::total_cmp),
            Stat::Percentile(q) => stats::percentile(values, *q),
        }
    }

    /// In-place variant for bootstrap resamples (may reorder).
    pub fn apply_mut(&self, values: &mut [f64]) -> Option<f64> {
        match self {
            Stat::Percentile(q) => stats::percentile_select(values, *q),
            // A resample's order is random already: no need to sort it.
            Stat::Mean => stats::mean(values),
            other => other.apply(values),
        }
    }
}

/// Quantities defined over a group of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMetric {
    /// Errored requests / all requests.
    ErrorRate,
    /// Sum of output tokens / busy time (union of the requests' [start, end] intervals), successful requests.
    OutputTokS,
    /// Successful requests per second over the same span.
    RequestRate,
    /// Requests per second meeting every latency SLO.
    Goodput,
    /// Requests per second meeting every latency SLO and answered correctly.
    QualityGoodput,
    /// Share of requests meeting every latency SLO.
    SloAttainment,
    /// Number of requests.
    Count,
    /// Highest offered rate meeting an SLO in a steady state (from a capacity search's probes).
    CapacityRps,
}

impl GroupMetric {
    pub const NAMES: &'static [&'static str] =
        &["error_rate", "output_tok_s", "request_rate", "goodput", "quality_goodput", "slo_attainment", "n", "capacity_rps"];

    pub fn parse(name: &str) -> Option<GroupMetric> {
        Some(match name {
            "error_rate" => GroupMetric::ErrorRate,
            "output_tok_s" | "throughput" | "output_throughput" => GroupMetric::OutputTokS,
            "request_rate" => GroupMetric::RequestRate,
            "goodput" => GroupMetric::Goodput,
            "quality_goodput" => GroupMetric::QualityGoodput,
            "slo_attainment" => GroupMetric::SloAttainment,
            "n" | "count" => GroupMetric::Count,
            "capacity_rps" | "capacity" => GroupMetric::CapacityRps,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            GroupMetric::ErrorRate => "error_rate",
            GroupMetric::OutputTokS => "output_tok_s",
            GroupMetric::RequestRate => "request_rate",
            GroupMetric::Goodput => "goodput",
            GroupMetric::QualityGoodput => "quality_goodput",
            GroupMetric::SloAttainment => "slo_attainment",
            GroupMetric::Count => "n",
            GroupMetric::CapacityRps => "capacity_rps",
        }
    }

    pub fn direction(&self) -> Direction {
        match self {
            GroupMetric::ErrorRate => Direction::LowerIsBetter,
            _ => Direction::HigherIsBetter,
        }
    }
}

/// A metric a KPI or comparison can name: a group quantity or a statistic of a per-record field.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRef {
    Group(GroupMetric),
    Field(RecordField, Stat),
}

impl MetricRef {
    /// `stat` is required for per-record fields (default `mean`) and must be absent for group metrics.
    pub fn parse(metric: &str, stat: Option<&str>) -> Result<MetricRef> {
        if let Some(g) = GroupMetric::parse(metric) {
            if let Some(s) = stat {
                bail!("metric `{metric}` is a per-group quantity and takes no statistic (got `{s}`)");
            }
            return Ok(MetricRef::Group(g));
        }
        let field = RecordField::parse(metric)?;
        let stat = Stat::parse(stat.unwrap_or("mean"))?;
        Ok(MetricRef::Field(field, stat))
    }

    pub fn label(&self) -> String {
        match self {
            MetricRef::Group(g) => g.name().to_string(),
            MetricRef::Field(f, s) => format!("{} {}", s.label(), f.name()),
        }
    }

    pub fn direction(&self) -> Direction {
        match self {
            MetricRef::Group(g) => g.direction(),
            MetricRef::Field(f, _) => f.direction(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!(RecordField::parse("metric_rouge_l").unwrap(), RecordField::Quality("rouge_l".into()));
        assert_eq!(RecordField::parse("rouge_l").unwrap(), RecordField::Quality("rouge_l".into()));
        assert_eq!(RecordField::parse("latency").unwrap(), RecordField::E2eS);
        assert_eq!(RecordField::parse("ps_acceptance_rate").unwrap(), RecordField::PolicyStat("acceptance_rate"));
        assert_eq!(RecordField::parse("extra.judge").unwrap(), RecordField::Extra("judge".into()));
        assert!(RecordField::parse("rouge_x").unwrap_err().to_string().contains("unknown metric `rouge_x`"));
        assert_eq!(Stat::parse("p99.9").unwrap(), Stat::Percentile(99.9));
        assert!(Stat::parse("p101").is_err());
        assert!(MetricRef::parse("error_rate", Some("p95")).is_err());
        assert_eq!(MetricRef::parse("e2e_s", None).unwrap(), MetricRef::Field(RecordField::E2eS, Stat::Mean));
    }

    #[test]
    fn errored_records_have_no_latency_but_keep_quality() {
        let mut r = crate::testutil::record("p", "s", "1");
        r.status = RecordStatus::Error;
        assert_eq!(RecordField::E2eS.value(&r), None);
        assert_eq!(RecordField::Quality("rouge_l".into()).value(&r), Some(0.5));
    }
}
