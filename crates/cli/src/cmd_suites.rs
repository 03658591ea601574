//! `ttc suites`: the evaluation suites, their tasks and item counts (`ttc_eval::cmd::suites`).

use crate::exit::Outcome;
use clap::Args;
use std::path::PathBuf;
use ttc_eval::cmd::SuitesOptions;

#[derive(Debug, Clone, Args)]
pub struct SuitesArgs {
    /// Real data directory (crmarena/, crmarena-pro/, worfbench/gold_traj/); without it the bundled samples.
    #[arg(long, env = "TTC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also list the quality metrics (name, unit, direction, suites).
    #[arg(long)]
    pub metrics: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: SuitesArgs) -> anyhow::Result<Outcome> {
    ttc_eval::cmd::run_suites(SuitesOptions { data_dir: a.data_dir, metrics: a.metrics, json: a.json })?;
    Ok(Outcome::Done)
}
