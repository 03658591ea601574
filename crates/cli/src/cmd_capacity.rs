//! `ttc capacity`: per policy, the highest offered rate whose steady state meets an SLO (issue 16). Same flags as
//! `ttc run` (the run file, policies, suites, backend), plus the SLO and the probe budget.

use crate::cmd_run::{after_run, embedded_backend, outcome, run_options};
use crate::exit::Outcome;
use crate::run_args::{CapacityArgs, RunArgs};
use std::sync::Arc;
use ttc_runner::{Hooks, RunOutcome};

/// `ttc capacity` flags.
#[derive(clap::Args)]
pub struct CliCapacityArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub capacity: CapacityArgs,
}

pub fn run(cli: CliCapacityArgs) -> anyhow::Result<Outcome> {
    let opts = run_options(cli.run);
    let hooks = Hooks { embedded: Some(Arc::new(embedded_backend)), ..Hooks::default() };
    let end = ttc_runner::run_capacity(opts.clone(), cli.capacity.options(), hooks)?;
    if end == RunOutcome::Finished && !opts.dry_run {
        if let Err(e) = after_run(&opts) {
            eprintln!("warning: the search finished and its probes are stored, but the summary failed: {e:#}");
        }
    }
    Ok(outcome(end))
}
