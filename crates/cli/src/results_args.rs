//! Flag groups shared by the results commands (`summary`, `report`, `check`, `compare`, `compact`, `route fit`),
//! and the output formats they choose from.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use ttc_results::cmd::SloOptions;
use ttc_stats::BootstrapConfig;

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ResultsDir {
    /// Results directory (one `run_id=<id>/` folder of Parquet parts per run), or an object store:
    /// `s3://bucket/prefix` (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP; see docs/scale-out.md).
    #[arg(long, env = "TTC_RESULTS", default_value = "results")]
    pub results: PathBuf,
}

/// Whether an incomplete sharded run may be analysed.
#[derive(Args, Debug, Clone, PartialEq, Default)]
pub struct PartialArg {
    /// Analyse a sharded run even when a shard is missing or incomplete (by default that is an error naming
    /// the shard and the records it lacks).
    #[arg(long)]
    pub partial: bool,
}

/// Bootstrap settings for confidence intervals.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct BootstrapArgs {
    /// Seed of the bootstrap resampling (same seed, same intervals).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Bootstrap resamples per interval.
    #[arg(long, default_value_t = ttc_stats::RESAMPLES)]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = parse_confidence)]
    pub confidence: f64,
}

fn parse_confidence(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("`{s}` is not a confidence level in (0, 1), e.g. 0.95")),
    }
}

impl BootstrapArgs {
    pub fn config(&self) -> BootstrapConfig {
        BootstrapConfig { resamples: self.resamples, seed: self.seed, confidence: self.confidence }
    }
}

/// Latency SLOs for goodput. Without any flag: E2E <= 2.0 s (the specification's latency bound).
#[derive(Args, Debug, Clone, PartialEq, Default)]
pub struct SloArgs {
    /// SLO on time to first token, seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub slo_ttft: Option<f64>,
    /// SLO on time per output token, seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub slo_tpot: Option<f64>,
    /// SLO on end-to-end latency, seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub slo_e2e: Option<f64>,
    /// Quality metric used for Pareto fronts and correctness (default: per suite, e.g. rouge_l, f1_graph).
    #[arg(long, value_name = "METRIC")]
    pub quality_metric: Option<String>,
    /// A request is correct for quality-aware goodput when its quality metric is >= this value.
    #[arg(long, default_value_t = 0.5, value_parser = parse_finite)]
    pub correct_min: f64,
}

/// An SLO bound: NaN would fail every request silently (nothing compares <= NaN), inf would pass all.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds >= 0, e.g. 2.0")),
    }
}

fn parse_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a finite number, e.g. 0.5")),
    }
}

impl SloArgs {
    pub fn options(self) -> SloOptions {
        SloOptions {
            slo_ttft: self.slo_ttft,
            slo_tpot: self.slo_tpot,
            slo_e2e: self.slo_e2e,
            quality_metric: self.quality_metric,
            correct_min: self.correct_min,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Table,
    Json,
    Csv,
}

impl From<TableFormat> for ttc_results::cmd::TableFormat {
    fn from(f: TableFormat) -> Self {
        match f {
            TableFormat::Table => Self::Table,
            TableFormat::Json => Self::Json,
            TableFormat::Csv => Self::Csv,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOrJson {
    Table,
    Json,
}

impl From<TableOrJson> for ttc_results::cmd::TableOrJson {
    fn from(f: TableOrJson) -> Self {
        match f {
            TableOrJson::Table => Self::Table,
            TableOrJson::Json => Self::Json,
        }
    }
}
