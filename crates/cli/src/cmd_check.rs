//! `ttc check`: the KPI gate for CI (`ttc_results::cmd::check`): exit 0 when every KPI passes, 1 when any
//! fails, 2 on a usage or input error.

use crate::exit::Outcome;
use crate::results_args::{PartialArg, ResultsDir, TableOrJson};
use clap::Args;
use std::path::PathBuf;
use ttc_results::cmd::check;
use ttc_results::CheckOptions;

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

impl CheckArgs {
    pub fn options(self) -> CheckOptions {
        CheckOptions {
            results: self.dir.results,
            partial: self.partial.partial,
            kpis: self.kpis,
            run: self.run,
            baseline: self.baseline,
            format: self.format.into(),
        }
    }
}

pub fn run(a: CheckArgs) -> anyhow::Result<Outcome> {
    let checked = check::execute(&a.options())?;
    ttc_results::cmd::stdout_write(&checked.text)?;
    Ok(if checked.passed { Outcome::Done } else { Outcome::GateFailed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    #[test]
    fn defaults_match_the_library_and_last_conflicts_with_run() {
        let a: CheckArgs = parse_args(&[]).unwrap();
        assert_eq!(CheckOptions { results: "results".into(), ..a.options() }, CheckOptions::default());
        assert!(parse_args::<CheckArgs>(&["--run", "r1", "--last"]).is_err());
    }
}
