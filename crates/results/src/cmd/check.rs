//! `ttc check`: the KPI gate for CI. Exit 0 when every KPI passes, 1 when any fails, 2 on a usage error
//! (including a `policies:`/`suites:` filter naming what the run does not have).

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};

use super::{PartialArg, ResultsDir, TableOrJson};
use crate::kpi::{self, CheckReport, KpiFile};
use crate::render;
use crate::store::LoadedRun;

/// Where `ttc check` looks for KPIs when --kpis is not given; built-in defaults apply if it is absent.
pub const DEFAULT_KPI_PATH: &str = "configs/kpis.yaml";

/// Check a run against KPI thresholds per policy (and regression limits against a baseline run).
/// Exit code 0: all KPIs pass; 1: a KPI fails; 2: usage or input error.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct CheckArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    #[command(flatten)]
    pub partial: PartialArg,
    /// KPI file (YAML). Default: configs/kpis.yaml if present, else the built-in defaults (p95 latency < 2 s,
    /// throughput > 300 tok/s, ROUGE-L > 0.1, error rate < 1%).
    #[arg(long)]
    pub kpis: Option<PathBuf>,
    /// Run to check (default: the last run).
    #[arg(long)]
    pub run: Option<String>,
    /// Use the most recently started run (the default; conflicts with --run).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Baseline run for the regression limits of the KPI file.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

/// Loads the KPI file: an explicit path must exist; otherwise configs/kpis.yaml, else built-in defaults.
/// Returns the KPIs and a description of their source.
pub fn load_kpis(explicit: Option<&Path>) -> Result<(KpiFile, String)> {
    match explicit {
        Some(p) => Ok((KpiFile::load(p)?, p.display().to_string())),
        None if Path::new(DEFAULT_KPI_PATH).is_file() => {
            Ok((KpiFile::load(Path::new(DEFAULT_KPI_PATH))?, DEFAULT_KPI_PATH.to_string()))
        }
        None => Ok((KpiFile::defaults(), "built-in defaults".to_string())),
    }
}

/// Evaluates KPIs on a loaded run without deciding anything: the end of `ttc run` prints this
/// (report-only mode) and keeps its own exit code.
pub fn check_report_only(run: &LoadedRun, kpis: Option<&Path>) -> Result<(CheckReport, String)> {
    let (file, _) = load_kpis(kpis)?;
    let report = kpi::evaluate(&file, &run.run_id, &run.records, None);
    let text = render::check_compact(&report);
    Ok((report, text))
}

pub fn execute(args: &CheckArgs) -> Result<(i32, String)> {
    let (file, source) = load_kpis(args.kpis.as_deref())?;
    let store = args.dir.open()?;
    let run = match &args.run {
        Some(id) => store.load_run(id)?,
        None => store.load_last()?,
    };
    let baseline = args.baseline.as_deref().map(|b| store.load_run(b)).transpose()?;
    run.require_complete(args.partial.partial)?;
    super::warn(std::slice::from_ref(&run));
    if let Some(b) = &baseline {
        b.require_complete(args.partial.partial)?;
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
    Ok((report.exit_code(), text))
}

pub fn run(args: CheckArgs) -> Result<i32> {
    Ok(super::exit_code(execute(&args).and_then(|(code, text)| {
        super::stdout_write(&text)?;
        Ok(code)
    })))
}
