//! The `ttc` subcommands this crate owns, as clap `Args` structs and `run` functions the CLI wires up:
//! `summary`, `report`, `check`, `compare`, `compact`.
//!
//! Every `run` returns the process exit code and never an error: problems the user can fix (missing
//! directory, unknown run, malformed KPI file) are printed as `error: ...` on stderr and give exit code 2
//! ([`USAGE_ERROR`]). `check` returns 1 when a KPI fails.

pub mod check;
pub mod compact;
pub mod compare;
pub mod route;
pub mod report;
pub mod summary;

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

use crate::analysis::{AnalysisConfig, Slo};
use crate::stats::BootstrapConfig;
use crate::store::{LoadedRun, ResultsStore};

/// Exit code for input and usage errors.
pub const USAGE_ERROR: i32 = 2;

/// Runs a command body; prints its error and maps it to exit code 2.
pub(crate) fn exit_code(result: Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            USAGE_ERROR
        }
    }
}

/// Prints a run's read warnings (corrupt parts skipped, duplicates) to stderr.
pub(crate) fn warn(runs: &[LoadedRun]) {
    for w in runs.iter().flat_map(|r| &r.warnings) {
        eprintln!("warning: {w}");
    }
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ResultsDir {
    /// Results directory (one `run_id=<id>/` folder of Parquet parts per run).
    #[arg(long, env = "TTC_RESULTS", default_value = "results")]
    pub results: PathBuf,
}

impl ResultsDir {
    pub fn open(&self) -> Result<ResultsStore> {
        ResultsStore::open(&self.results)
    }
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
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = parse_confidence)]
    pub confidence: f64,
}

fn parse_confidence(s: &str) -> std::result::Result<f64, String> {
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
fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds >= 0, e.g. 2.0")),
    }
}

fn parse_finite(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a finite number, e.g. 0.5")),
    }
}

impl SloArgs {
    pub fn slo(&self) -> Slo {
        let mut slo = if self.slo_ttft.is_none() && self.slo_tpot.is_none() && self.slo_e2e.is_none() {
            Slo::default()
        } else {
            Slo { ttft_s: self.slo_ttft, tpot_s: self.slo_tpot, e2e_s: self.slo_e2e, ..Slo::default() }
        };
        slo.correct_min = self.correct_min;
        slo.correct_metric = self.quality_metric.clone();
        slo
    }

    pub fn analysis(&self, boot: &BootstrapArgs, by_task: bool) -> Result<AnalysisConfig> {
        if let Some(m) = &self.quality_metric {
            crate::metrics::RecordField::parse(m)?;
        }
        Ok(AnalysisConfig {
            bootstrap: boot.config(),
            slo: self.slo(),
            by_task,
            quality_metric: self.quality_metric.clone(),
            prices: Default::default(),
        })
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Table,
    Json,
    Csv,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOrJson {
    Table,
    Json,
}

/// Writes to stdout, reporting a closed pipe (`ttc summary | head`) as success rather than a panic.
pub fn stdout_write(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
