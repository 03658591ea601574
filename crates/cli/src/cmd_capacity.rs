//! `ttc capacity`: per policy, the highest offered rate whose steady state meets an SLO (issue 16). Same flags as
//! `ttc run` (the run file, policies, suites, backend), plus the SLO and the probe budget.

use crate::cmd_run::{after_run, embedded_backend, DEFAULT_RUN_FILE};
use crate::exit::Outcome;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ttc_bench::config::sweep::CapacityArgs;
use ttc_bench::{Hooks, RunArgs};

/// `ttc capacity` flags.
#[derive(clap::Args)]
pub struct CliCapacityArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub capacity: CapacityArgs,
}

pub fn run(cli: CliCapacityArgs) -> anyhow::Result<Outcome> {
    let mut args = cli.run;
    if args.config.is_none() && Path::new(DEFAULT_RUN_FILE).exists() {
        args.config = Some(PathBuf::from(DEFAULT_RUN_FILE));
    }
    let hooks = Hooks { embedded: Some(Arc::new(embedded_backend)), ..Hooks::default() };
    let code = ttc_bench::run_capacity(args.clone(), cli.capacity, hooks)?;
    if code != 0 || args.dry_run {
        return Ok(Outcome::LibraryCode(code));
    }
    if let Err(e) = after_run(&args) {
        eprintln!("warning: the search finished and its probes are stored, but the summary failed: {e:#}");
    }
    Ok(Outcome::Done)
}
