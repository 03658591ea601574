//! The `ttc` subcommands this crate owns (`summary`, `report`, `check`, `compare`, `compact`, `route fit`) as
//! plain option structs and functions; their flags live in `ttc-cli`.
//!
//! Each `execute` returns the text to print. Every problem the user can fix (missing directory, unknown run,
//! malformed KPI file, an option out of range) is an [`InputError`]; `check` reports whether the gate passed.
//! Neither decides an exit code: the CLI does.

pub mod check;
pub mod compact;
pub mod compare;
pub mod route;
pub mod report;
pub mod summary;

use anyhow::Result;
use std::io::Write;

use crate::analysis::{AnalysisConfig, Slo};
use ttc_stats::BootstrapConfig;
use crate::store::LoadedRun;

/// A problem with what a command was given (the library's [`crate::InputError`], named here for the commands).
pub use crate::InputError;

/// The commands' default directory (`--results`, env `TTC_RESULTS` in the CLI).
pub const DEFAULT_RESULTS_DIR: &str = "results";


/// Prints a run's read warnings (corrupt parts skipped, duplicates) to stderr.
pub(crate) fn warn(runs: &[LoadedRun]) {
    for w in runs.iter().flat_map(|r| &r.warnings) {
        eprintln!("warning: {w}");
    }
}

/// Latency SLOs for goodput and the quality bar for correctness. Without any bound: E2E <= 2.0 s (the
/// specification's latency bound).
#[derive(Debug, Clone, PartialEq)]
pub struct SloOptions {
    /// SLO on time to first token, seconds.
    pub slo_ttft: Option<f64>,
    /// SLO on time per output token, seconds.
    pub slo_tpot: Option<f64>,
    /// SLO on end-to-end latency, seconds.
    pub slo_e2e: Option<f64>,
    /// Quality metric used for Pareto fronts and correctness (None: per suite, e.g. rouge_l, f1_graph).
    pub quality_metric: Option<String>,
    /// A request is correct for quality-aware goodput when its quality metric is >= this value.
    pub correct_min: f64,
}

impl Default for SloOptions {
    fn default() -> Self {
        SloOptions { slo_ttft: None, slo_tpot: None, slo_e2e: None, quality_metric: None, correct_min: 0.5 }
    }
}

impl SloOptions {
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

    pub fn analysis(&self, bootstrap: &BootstrapConfig, by_task: bool) -> Result<AnalysisConfig> {
        if let Some(m) = &self.quality_metric {
            crate::metrics::RecordField::parse(m)?;
        }
        Ok(AnalysisConfig {
            bootstrap: *bootstrap,
            slo: self.slo(),
            by_task,
            quality_metric: self.quality_metric.clone(),
            prices: Default::default(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableFormat {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableOrJson {
    #[default]
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
