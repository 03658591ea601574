//! `ttc summary`: per policy x suite table of a run (`ttc_results::cmd::summary`).

use crate::exit::Outcome;
use crate::results_args::{BootstrapArgs, PartialArg, ResultsDir, SloArgs, TableFormat};
use clap::Args;
use ttc_results::cmd::summary;
use ttc_results::{RunSelection, SummaryOptions};

/// Summarise stored results per policy x suite: latency percentiles, throughput, goodput, quality with
/// 95% CIs, policy internals, and the Pareto-optimal policies.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    #[command(flatten)]
    pub partial: PartialArg,
    /// Run id to summarise (default: the last run).
    #[arg(long, conflicts_with_all = ["last", "all"])]
    pub run: Option<String>,
    /// Summarise the most recently started run (the default).
    #[arg(long, conflicts_with = "all")]
    pub last: bool,
    /// Summarise every run in the directory (grouped by run).
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableFormat,
    /// Split groups by task as well as by suite.
    #[arg(long)]
    pub by_task: bool,
    /// Every column (all latency percentiles, every quality metric, every policy internal); the default view
    /// fits 120 columns.
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub slo: SloArgs,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

impl SummaryArgs {
    pub fn options(self) -> SummaryOptions {
        let selection = match (self.run, self.all) {
            (Some(r), _) => RunSelection::Run(r),
            (None, true) => RunSelection::All,
            (None, false) => RunSelection::Last,
        };
        SummaryOptions {
            results: self.dir.results,
            partial: self.partial.partial,
            selection,
            format: self.format.into(),
            by_task: self.by_task,
            wide: self.wide,
            slo: self.slo.options(),
            bootstrap: self.bootstrap.config(),
        }
    }
}

pub fn run(a: SummaryArgs) -> anyhow::Result<Outcome> {
    let text = summary::execute(&a.options())?;
    ttc_results::cmd::stdout_write(&text)?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    #[test]
    fn defaults_match_the_library_and_run_conflicts_with_all() {
        let a: SummaryArgs = parse_args(&[]).unwrap();
        // TTC_RESULTS may be set where the tests run.
        assert_eq!(SummaryOptions { results: "results".into(), ..a.options() }, SummaryOptions::default());
        assert!(parse_args::<SummaryArgs>(&["--run", "x", "--all"]).is_err());
        let a: SummaryArgs = parse_args(&["--all", "--format", "csv", "--by-task"]).unwrap();
        let o = a.options();
        assert_eq!((o.selection, o.format, o.by_task), (RunSelection::All, ttc_results::cmd::TableFormat::Csv, true));
    }

    #[test]
    fn slo_flags_reject_nan_and_infinity_naming_the_flag() {
        for (flag, value) in [("--slo-e2e", "nan"), ("--slo-ttft", "inf"), ("--slo-tpot", "-1"), ("--correct-min", "nan"), ("--correct-min", "inf")] {
            let arg = format!("{flag}={value}");
            for err in [
                parse_args::<SummaryArgs>(&[&arg]).unwrap_err(),
                parse_args::<crate::cmd_report::ReportArgs>(&[&arg]).unwrap_err(),
            ] {
                assert_eq!(err.exit_code(), 2);
                let msg = err.to_string();
                assert!(msg.contains(&format!("invalid value '{value}' for '{flag}")), "{msg}");
            }
        }
        let ok: SummaryArgs = parse_args(&["--slo-e2e", "1.5", "--correct-min", "0.7"]).unwrap();
        assert_eq!((ok.slo.slo_e2e, ok.slo.correct_min), (Some(1.5), 0.7));
    }
}
