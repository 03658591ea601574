//! `ttc suites`: list the suites, their tasks and item counts (and, with --metrics, the metric registry).

use crate::metrics::REGISTRY;
use crate::suite::{list_suites, DataSource};
use std::path::PathBuf;

/// What `ttc suites` lists.
#[derive(Debug, Clone, Default)]
pub struct SuitesOptions {
    /// Real data directory (crmarena/, crmarena-pro/, worfbench/gold_traj/); None: the bundled samples.
    pub data_dir: Option<PathBuf>,
    /// Also list the quality metrics (name, unit, direction, suites).
    pub metrics: bool,
    /// Print JSON instead of a table.
    pub json: bool,
}

/// Prints the suites (and the metric registry). A missing data directory is an [`crate::EvalError`].
pub fn run(args: SuitesOptions) -> anyhow::Result<()> {
    let source = DataSource { data_dir: args.data_dir.clone() };
    let suites = list_suites(&source)?;
    if args.json {
        let mut v = serde_json::json!({ "suites": suites });
        if args.metrics {
            let mut metrics = Vec::new();
            for m in REGISTRY {
                let mut mv = serde_json::to_value(m)?;
                mv["direction"] = serde_json::to_value(m.direction())?;
                metrics.push(mv);
            }
            v["metrics"] = serde_json::Value::Array(metrics);
        }
        println!("{v}");
        return Ok(());
    }
    for s in &suites {
        println!("{} ({} items, from {})", s.suite, s.items, s.source);
        for (task, n) in &s.tasks {
            println!("  {task:<34} {n:>5}");
        }
    }
    println!("jsonl (your own file: --suite jsonl --suite-file FILE)");
    if args.metrics {
        println!("\n{:<26} {:<9} {:<17} {:<34} description", "metric", "unit", "direction", "suites");
        for m in REGISTRY {
            let suites: Vec<&str> = m.suites.iter().map(|k| k.as_str()).collect();
            let dir = serde_json::to_value(m.direction())?.as_str().unwrap_or_default().to_string();
            println!("{:<26} {:<9} {:<17} {:<34} {}", m.name, m.unit, dir, suites.join(","), m.description);
        }
    }
    Ok(())
}
