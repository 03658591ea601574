//! `ttc compare --a X --b Y`: paired comparison of two policies or runs (`ttc_results::cmd::compare`).

use crate::exit::Outcome;
use crate::results_args::{BootstrapArgs, PartialArg, ResultsDir, TableOrJson};
use clap::Args;
use ttc_results::cmd::compare;
use ttc_results::CompareOptions;

/// Compare B against A on their common samples: paired bootstrap CIs of quality differences, McNemar's test
/// for exact match, p50/p95 latency and throughput differences with CIs, and a verdict per metric.
/// A and B are policy names (of --run, default the last run), run ids, or RUN/POLICY.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct CompareArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    #[command(flatten)]
    pub partial: PartialArg,
    /// Side A (the reference): POLICY, RUN_ID, or RUN_ID/POLICY.
    #[arg(long)]
    pub a: String,
    /// Side B (the candidate): POLICY, RUN_ID, or RUN_ID/POLICY.
    #[arg(long)]
    pub b: String,
    /// Run that plain policy names refer to (default: the last run).
    #[arg(long)]
    pub run: Option<String>,
    /// Use the most recently started run (the default; conflicts with --run).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

impl CompareArgs {
    pub fn options(self) -> CompareOptions {
        CompareOptions {
            results: self.dir.results,
            partial: self.partial.partial,
            a: self.a,
            b: self.b,
            run: self.run,
            format: self.format.into(),
            bootstrap: self.bootstrap.config(),
        }
    }
}

pub fn run(a: CompareArgs) -> anyhow::Result<Outcome> {
    let text = compare::execute(&a.options())?;
    ttc_results::cmd::stdout_write(&text)?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    #[test]
    fn defaults_match_the_library_and_bad_flags_are_refused() {
        let a: CompareArgs = parse_args(&["--a", "x", "--b", "y"]).unwrap();
        assert_eq!(CompareOptions { results: "results".into(), ..a.options() }, CompareOptions::new("x", "y"));
        assert!(parse_args::<CompareArgs>(&["--a", "x", "--b", "y", "--confidence", "1.5"]).is_err());
        assert!(parse_args::<CompareArgs>(&["--a", "x", "--b", "y", "--run", "r1", "--last"]).is_err());
        assert!(parse_args::<CompareArgs>(&["--a", "x"]).is_err(), "--b is required");
    }
}
