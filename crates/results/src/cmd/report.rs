//! `ttc report`: Markdown or HTML performance report of one run, with embedded SVG charts.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

use super::{BootstrapArgs, PartialArg, ResultsDir, SloArgs};
use crate::report::{self, ReportOptions};
use crate::store::{LoadedRun, ResultsStore};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Md,
    Html,
}

/// Write a report of a run: executive summary, settings, results, findings and recommendations derived
/// from the data, trade-off charts (SVG), and KPI status.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ReportArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    #[command(flatten)]
    pub partial: PartialArg,
    /// Run to report on (default: the last run).
    #[arg(long)]
    pub run: Option<String>,
    /// Use the most recently started run (the default; conflicts with --run).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Output format (default: from the -o extension, else md).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Output file (default: stdout).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// KPI file for the KPI status section (default: configs/kpis.yaml if present, else built-in defaults).
    #[arg(long)]
    pub kpis: Option<PathBuf>,
    /// Policy the others are compared with (default: the policy named `baseline`).
    #[arg(long)]
    pub baseline_policy: Option<String>,
    #[command(flatten)]
    pub slo: SloArgs,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

fn options(args: &ReportArgs) -> Result<ReportOptions> {
    let (kpis, kpi_source) = super::check::load_kpis(args.kpis.as_deref())?;
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
/// them) to `path`.
pub fn write_markdown_report(results_dir: &Path, run_id: &str, path: &Path) -> Result<()> {
    let run = ResultsStore::open(results_dir)?.load_run(run_id)?;
    let (kpis, kpi_source) = super::check::load_kpis(None)?;
    let opts = ReportOptions { analysis: Default::default(), kpis, kpi_source, baseline_policy: None };
    std::fs::write(path, render(&run, &opts, ReportFormat::Md)).with_context(|| format!("writing {}", path.display()))
}

pub fn execute(args: &ReportArgs) -> Result<(i32, String)> {
    let opts = options(args)?;
    let store = args.dir.open()?;
    let run = match &args.run {
        Some(id) => store.load_run(id)?,
        None => store.load_last()?,
    };
    run.require_complete(args.partial.partial)?;
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
            Ok((0, format!("wrote {}\n", path.display())))
        }
        None => Ok((0, text)),
    }
}

pub fn run(args: ReportArgs) -> Result<i32> {
    Ok(super::exit_code(execute(&args).and_then(|(code, text)| {
        super::stdout_write(&text)?;
        Ok(code)
    })))
}
