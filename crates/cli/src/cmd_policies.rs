//! `ttc policies`: list the policies of a policies file with their parameters.

use crate::exit::Outcome;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PoliciesArgs {
    /// Policies file.
    #[arg(long, default_value = "configs/policies.yaml")]
    pub config: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PoliciesArgs) -> anyhow::Result<Outcome> {
    let policies = ttc_engine::load_policies(&a.config).map_err(|e| crate::exit::usage(e.to_string()))?;
    if a.json {
        let v: Vec<_> = policies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name, "family": p.family(), "algorithm": p.algorithm_name(),
                    "params": serde_json::from_str::<serde_json::Value>(&p.algorithm.params_json()).unwrap_or_default(),
                    "description": p.description,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Outcome::Done);
    }
    println!("{:<30} {:<24} {:<22} params", "name", "family", "algorithm");
    for p in &policies {
        println!("{:<30} {:<24} {:<22} {}", p.name, p.family(), p.algorithm_name(), p.algorithm.params_json());
    }
    Ok(Outcome::Done)
}
