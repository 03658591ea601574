//! `ttc route fit`: a router learned from a stored run (`crate::route_fit`), written as router YAML.

use anyhow::{Context, Result};
use std::path::PathBuf;

use super::{InputError, DEFAULT_RESULTS_DIR};
use crate::capacity::SloSpec;
use crate::route_fit::{fit, FitConfig};
use crate::store::ResultsStore;

/// Fit a router on a run: per suite x prompt-length bucket (a small tree), the fastest policy whose mean
/// fidelity reaches `min_fidelity` (SLO-meeting policies first); evaluated on held-out samples.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    pub results: PathBuf,
    /// The run to learn from (None: the last run).
    pub run: Option<String>,
    /// The SLO policies are preferred for meeting, e.g. "p95_e2e_s<=2".
    pub slo: String,
    /// Least mean fidelity (of `fidelity`) a picked policy must reach, in [0, 1].
    pub min_fidelity: f64,
    /// The fidelity or quality column `min_fidelity` applies to.
    pub fidelity: String,
    /// Seed of the train / held-out split (same run and seed, same router).
    pub seed: u64,
    /// Share of samples held out for the evaluation, in (0, 1).
    pub holdout: f64,
    /// Depth of the prompt-length tree per suite (at most 2^depth buckets; 0 = one bucket per suite).
    pub depth: usize,
    /// Name of the fitted router policy.
    pub name: String,
    /// Write the YAML here (None: stdout).
    pub out: Option<PathBuf>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            results: PathBuf::from(DEFAULT_RESULTS_DIR),
            run: None,
            slo: "p95_e2e_s<=2".into(),
            min_fidelity: 0.95,
            fidelity: "fidelity_top1".into(),
            seed: 0,
            holdout: 0.3,
            depth: 2,
            name: "fitted_router".into(),
            out: None,
        }
    }
}

/// Fits the router and writes its YAML (to `out` or stdout) and its evaluation (to stderr).
pub fn execute_fit(opts: &FitOptions) -> Result<(), InputError> {
    fit_router(opts).map_err(InputError)
}

fn fit_router(a: &FitOptions) -> Result<()> {
    anyhow::ensure!(a.holdout > 0.0 && a.holdout < 1.0, "--holdout: must be in (0, 1), got {}", a.holdout);
    anyhow::ensure!((0.0..=1.0).contains(&a.min_fidelity), "--min-fidelity: must be in [0, 1], got {}", a.min_fidelity);
    let slo = SloSpec::parse(&a.slo).context("--slo")?;
    let store = ResultsStore::open(&a.results)?;
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
    Ok(())
}
