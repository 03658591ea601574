//! `ttc report`: Markdown or HTML performance report of one run, with embedded SVG charts.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::{InputError, SloOptions, DEFAULT_RESULTS_DIR};
use crate::report::{self, ReportOptions};
use ttc_stats::BootstrapConfig;
use crate::store::{LoadedRun, ResultsStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Md,
    Html,
}

/// Write a report of a run: executive summary, settings, results, findings and recommendations derived
/// from the data, trade-off charts (SVG), and KPI status. (Not [`ReportOptions`], the renderer's settings.)
#[derive(Debug, Clone, PartialEq)]
pub struct ReportCommandOptions {
    pub results: PathBuf,
    /// Analyse a sharded run even when a shard is missing or incomplete.
    pub partial: bool,
    /// Run to report on (None: the last run).
    pub run: Option<String>,
    /// None: from the extension of `output`, else Markdown.
    pub format: Option<ReportFormat>,
    /// Output file (None: the text is returned for stdout).
    pub output: Option<PathBuf>,
    /// KPI file for the KPI status section (None: configs/kpis.yaml if present, else built-in defaults).
    pub kpis: Option<PathBuf>,
    /// Policy the others are compared with (None: the policy named `baseline`).
    pub baseline_policy: Option<String>,
    pub slo: SloOptions,
    pub bootstrap: BootstrapConfig,
}

impl Default for ReportCommandOptions {
    fn default() -> Self {
        ReportCommandOptions {
            results: PathBuf::from(DEFAULT_RESULTS_DIR),
            partial: false,
            run: None,
            format: None,
            output: None,
            kpis: None,
            baseline_policy: None,
            slo: SloOptions::default(),
            bootstrap: BootstrapConfig::DEFAULT,
        }
    }
}

fn options(args: &ReportCommandOptions) -> Result<ReportOptions> {
    let (kpis, kpi_source) = crate::kpi::load_kpis(args.kpis.as_deref())?;
    Ok(ReportOptions {
        analysis: args.slo.analysis(&args.bootstrap, false)?,
        kpis,
        kpi_source,
        baseline_policy: args.baseline_policy.clone(),
    })
}

/// Renders the report of `run` in `format`.
pub fn render(run: &LoadedRun, opts: &ReportOptions, format: ReportFormat) -> String {
    let r = report::build(run, opts);
    match format {
        ReportFormat::Md => report::to_markdown(&r),
        ReportFormat::Html => report::to_html(&r),
    }
}

/// End-of-run helper: writes the Markdown report of `run_id` (default settings, KPIs as `ttc check` finds
/// them) as `report-<run_id>.md` beside the runs (in a local directory or under the object-store prefix);
/// returns where.
pub fn write_markdown_report(results_dir: &Path, run_id: &str) -> Result<PathBuf> {
    let store = ResultsStore::open(results_dir)?;
    let run = store.load_run(run_id)?;
    let (kpis, kpi_source) = crate::kpi::load_kpis(None)?;
    let opts = ReportOptions { analysis: Default::default(), kpis, kpi_source, baseline_policy: None };
    store.write_file(&format!("report-{run_id}.md"), render(&run, &opts, ReportFormat::Md).as_bytes())
}

/// The report (or, with `output`, the line saying where it was written).
pub fn execute(args: &ReportCommandOptions) -> Result<String, InputError> {
    build(args).map_err(InputError)
}

fn build(args: &ReportCommandOptions) -> Result<String> {
    let opts = options(args)?;
    let store = ResultsStore::open(&args.results)?;
    let run = match &args.run {
        Some(id) => store.load_run(id)?,
        None => store.load_last()?,
    };
    run.require_complete(args.partial)?;
    super::warn(std::slice::from_ref(&run));
    if run.records.is_empty() {
        anyhow::bail!("run `{}` contains no readable records", run.run_id);
    }
    if let Some(b) = &args.baseline_policy {
        if !run.records.iter().any(|r| &r.policy == b) {
            anyhow::bail!("--baseline-policy `{b}` is not a policy of run `{}`", run.run_id);
        }
    }
    let format = args.format.unwrap_or(match args.output.as_ref().and_then(|p| p.extension()).and_then(|e| e.to_str()) {
        Some("html" | "htm") => ReportFormat::Html,
        _ => ReportFormat::Md,
    });
    let text = render(&run, &opts, format);
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            Ok(format!("wrote {}\n", path.display()))
        }
        None => Ok(text),
    }
}
