//! `ttc check`: the KPI gate for CI. The CLI exits 0 when every KPI passes, 1 when any fails, 2 on an
//! [`InputError`] (including a `policies:`/`suites:` filter naming what the run does not have).

use anyhow::Result;
use std::path::{Path, PathBuf};

use super::{InputError, TableOrJson, DEFAULT_RESULTS_DIR};
use crate::kpi::{self, CheckReport};
use crate::render;
use crate::store::{LoadedRun, ResultsStore};

pub use crate::kpi::DEFAULT_KPI_PATH;

/// Check a run against KPI thresholds per policy (and regression limits against a baseline run).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    pub results: PathBuf,
    /// Check a sharded run even when a shard is missing or incomplete.
    pub partial: bool,
    /// KPI file (YAML). None: configs/kpis.yaml if present, else the built-in defaults.
    pub kpis: Option<PathBuf>,
    /// Run to check (None: the last run).
    pub run: Option<String>,
    /// Baseline run for the regression limits of the KPI file.
    pub baseline: Option<String>,
    pub format: TableOrJson,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { results: PathBuf::from(DEFAULT_RESULTS_DIR), partial: false, kpis: None, run: None, baseline: None, format: TableOrJson::Table }
    }
}

/// The gate's verdict and the table (or JSON) that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Every KPI passed (skipped ones do not fail).
    pub passed: bool,
    pub text: String,
}

/// Evaluates KPIs on a loaded run without deciding anything: the end of `ttc run` prints this
/// (report-only mode) and keeps its own exit code.
pub fn check_report_only(run: &LoadedRun, kpis: Option<&Path>) -> Result<(CheckReport, String)> {
    let (file, _) = kpi::load_kpis(kpis)?;
    let report = kpi::evaluate(&file, &run.run_id, &run.records, None);
    let text = render::check_compact(&report);
    Ok((report, text))
}

/// Evaluates the KPIs on the run; a run, KPI file or filter the gate cannot use is an [`InputError`].
pub fn execute(args: &CheckOptions) -> Result<Checked, InputError> {
    check(args).map_err(InputError)
}

fn check(args: &CheckOptions) -> Result<Checked> {
    let (file, source) = kpi::load_kpis(args.kpis.as_deref())?;
    let store = ResultsStore::open(&args.results)?;
    let run = match &args.run {
        Some(id) => store.load_run(id)?,
        None => store.load_last()?,
    };
    let baseline = args.baseline.as_deref().map(|b| store.load_run(b)).transpose()?;
    run.require_complete(args.partial)?;
    super::warn(std::slice::from_ref(&run));
    if let Some(b) = &baseline {
        b.require_complete(args.partial)?;
        super::warn(std::slice::from_ref(b));
    }
    if run.records.is_empty() {
        anyhow::bail!("run `{}` contains no readable records", run.run_id);
    }
    let unmatched = kpi::unmatched_filters(&file, &run.run_id, &run.records);
    if !unmatched.is_empty() {
        let lines: Vec<String> = unmatched.iter().map(|m| format!("{source}: {m}")).collect();
        anyhow::bail!(
            "{}\n(a filter that matches nothing would check nothing; fix it, or set `fail_if_missing: true` on the KPI \
             to fail it instead)",
            lines.join("\n")
        );
    }
    let report = kpi::evaluate(&file, &run.run_id, &run.records, baseline.as_ref().map(|b| (b.run_id.as_str(), b.records.as_slice())));
    let mut text = match args.format {
        TableOrJson::Table => format!("KPIs from {source}\n{}", render::check_table(&report)),
        TableOrJson::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    if baseline.is_none() && !file.regressions.is_empty() && args.format == TableOrJson::Table {
        text.push_str(&format!("({} regression limit(s) not evaluated: no --baseline run)\n", file.regressions.len()));
    }
    Ok(Checked { passed: report.passed(), text })
}
