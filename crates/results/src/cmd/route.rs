//! `ttc route fit`: a router learned from a stored run (`crate::route_fit`), written as router YAML.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

use super::ResultsDir;
use crate::capacity::SloSpec;
use crate::route_fit::{fit, FitConfig};

/// Routers learned from stored runs.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RouteArgs {
    #[command(subcommand)]
    pub command: RouteCommand,
}

#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum RouteCommand {
    /// Fit a router on a run: per suite x prompt-length bucket (a small tree), the fastest policy whose mean fidelity reaches
    /// --min-fidelity (SLO-meeting policies first); evaluated on held-out samples; written as router YAML.
    Fit(FitArgs),
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct FitArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    /// The run to learn from (default: the last run).
    #[arg(long)]
    pub run: Option<String>,
    /// Use the most recently started run (the default; conflicts with --run).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// The SLO policies are preferred for meeting, e.g. "p95_e2e_s<=2".
    #[arg(long, default_value = "p95_e2e_s<=2")]
    pub slo: String,
    /// Least mean fidelity (of --fidelity) a picked policy must reach.
    #[arg(long, default_value_t = 0.95)]
    pub min_fidelity: f64,
    /// The fidelity or quality column --min-fidelity applies to.
    #[arg(long, default_value = "fidelity_top1")]
    pub fidelity: String,
    /// Seed of the train / held-out split (same run and seed, same router).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of samples held out for the evaluation.
    #[arg(long, default_value_t = 0.3)]
    pub holdout: f64,
    /// Depth of the prompt-length tree per suite (at most 2^depth buckets; 0 = one bucket per suite).
    #[arg(long, default_value_t = 2)]
    pub depth: usize,
    /// Name of the fitted router policy.
    #[arg(long, default_value = "fitted_router")]
    pub name: String,
    /// Write the YAML here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: RouteArgs) -> Result<i32> {
    let RouteCommand::Fit(a) = args.command;
    Ok(super::exit_code(execute_fit(&a)))
}

fn execute_fit(a: &FitArgs) -> Result<i32> {
    anyhow::ensure!(a.holdout > 0.0 && a.holdout < 1.0, "--holdout: must be in (0, 1), got {}", a.holdout);
    anyhow::ensure!((0.0..=1.0).contains(&a.min_fidelity), "--min-fidelity: must be in [0, 1], got {}", a.min_fidelity);
    let slo = SloSpec::parse(&a.slo).context("--slo")?;
    let store = a.dir.open()?;
    let run_id = match &a.run {
        Some(r) => r.clone(),
        None => store.last_run_id()?,
    };
    let loaded = store.load_run(&run_id)?;
    super::warn(std::slice::from_ref(&loaded));
    let cfg = FitConfig {
        slo,
        min_fidelity: a.min_fidelity,
        fidelity: a.fidelity.clone(),
        seed: a.seed,
        holdout: a.holdout,
        depth: a.depth,
    };
    let f = fit(&loaded.records, &cfg).with_context(|| format!("run {run_id}"))?;
    let evaluation = f.evaluation(&cfg);
    let header = format!(
        "Fitted by `ttc route fit --run {run_id} --slo \"{}\" --min-fidelity {} --fidelity {} --seed {}` on {} training samples.\n{}",
        cfg.slo, cfg.min_fidelity, cfg.fidelity, cfg.seed, f.n_train, evaluation.trim_end()
    );
    let yaml = f.to_yaml(&a.name, &header);
    match &a.out {
        Some(p) => std::fs::write(p, &yaml).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{yaml}"),
    }
    eprint!("{evaluation}");
    Ok(0)
}
