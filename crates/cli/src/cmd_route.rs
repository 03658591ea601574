//! `ttc route fit`: a router learned from a stored run (`ttc_results::cmd::route`).

use crate::exit::Outcome;
use crate::results_args::ResultsDir;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use ttc_results::FitOptions;

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

impl FitArgs {
    pub fn options(self) -> FitOptions {
        FitOptions {
            results: self.dir.results,
            run: self.run,
            slo: self.slo,
            min_fidelity: self.min_fidelity,
            fidelity: self.fidelity,
            seed: self.seed,
            holdout: self.holdout,
            depth: self.depth,
            name: self.name,
            out: self.out,
        }
    }
}

pub fn run(a: RouteArgs) -> anyhow::Result<Outcome> {
    let RouteCommand::Fit(fit) = a.command;
    ttc_results::cmd::route::execute_fit(&fit.options())?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    #[test]
    fn fit_defaults_match_the_library() {
        let a: FitArgs = parse_args(&[]).unwrap();
        assert_eq!(FitOptions { results: "results".into(), ..a.options() }, FitOptions::default());
    }
}
