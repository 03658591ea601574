//! `ttc report`: Markdown or HTML report of one run (`ttc_results::cmd::report`).

use crate::exit::Outcome;
use crate::results_args::{BootstrapArgs, PartialArg, ResultsDir, SloArgs};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use ttc_results::cmd::report;
use ttc_results::ReportCommandOptions;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Md,
    Html,
}

impl From<ReportFormat> for report::ReportFormat {
    fn from(f: ReportFormat) -> Self {
        match f {
            ReportFormat::Md => Self::Md,
            ReportFormat::Html => Self::Html,
        }
    }
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

impl ReportArgs {
    pub fn options(self) -> ReportCommandOptions {
        ReportCommandOptions {
            results: self.dir.results,
            partial: self.partial.partial,
            run: self.run,
            format: self.format.map(Into::into),
            output: self.output,
            kpis: self.kpis,
            baseline_policy: self.baseline_policy,
            slo: self.slo.options(),
            bootstrap: self.bootstrap.config(),
        }
    }
}

pub fn run(a: ReportArgs) -> anyhow::Result<Outcome> {
    let text = report::execute(&a.options())?;
    ttc_results::cmd::stdout_write(&text)?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    #[test]
    fn defaults_match_the_library_and_last_conflicts_with_run() {
        let a: ReportArgs = parse_args(&[]).unwrap();
        assert_eq!(ReportCommandOptions { results: "results".into(), ..a.options() }, ReportCommandOptions::default());
        assert!(parse_args::<ReportArgs>(&["--run", "r1", "--last"]).is_err());
        let a: ReportArgs = parse_args(&["-o", "r.html", "--format", "md"]).unwrap();
        assert_eq!((a.output.as_deref(), a.format), (Some(std::path::Path::new("r.html")), Some(ReportFormat::Md)));
    }
}
