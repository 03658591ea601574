//! `ttc compact`: merge each run's part files into one (`ttc_results::cmd::compact`).

use crate::exit::Outcome;
use crate::results_args::ResultsDir;
use clap::Args;
use ttc_results::cmd::compact;
use ttc_results::CompactOptions;

/// Merge the Parquet part files of a run (default: every run) into one file per run.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct CompactArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    /// Only this run (default: all runs).
    #[arg(long)]
    pub run: Option<String>,
}

pub fn run(a: CompactArgs) -> anyhow::Result<Outcome> {
    let text = compact::execute(&CompactOptions { results: a.dir.results, run: a.run })?;
    ttc_results::cmd::stdout_write(&text)?;
    Ok(Outcome::Done)
}
