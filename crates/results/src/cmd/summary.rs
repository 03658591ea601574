//! `ttc summary`: per policy x suite table of a run (or the last, or all runs).

use anyhow::Result;
use clap::Args;

use super::{BootstrapArgs, PartialArg, ResultsDir, SloArgs, TableFormat};
use crate::analysis;
use crate::render;
use crate::store::RunSelection;

/// Summarise stored results per policy x suite: latency percentiles, throughput, goodput, quality with
/// 95% CIs, policy internals, and the Pareto-optimal policies.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    #[command(flatten)]
    pub partial: PartialArg,
    /// Run id to summarise (default: the last run).
    #[arg(long, conflicts_with_all = ["last", "all"])]
    pub run: Option<String>,
    /// Summarise the most recently started run (the default).
    #[arg(long, conflicts_with = "all")]
    pub last: bool,
    /// Summarise every run in the directory (grouped by run).
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableFormat,
    /// Split groups by task as well as by suite.
    #[arg(long)]
    pub by_task: bool,
    /// Every column (all latency percentiles, every quality metric, every policy internal); the default view
    /// fits 120 columns.
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub slo: SloArgs,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

impl SummaryArgs {
    pub fn selection(&self) -> RunSelection {
        match (&self.run, self.all) {
            (Some(r), _) => RunSelection::Run(r.clone()),
            (None, true) => RunSelection::All,
            (None, false) => RunSelection::Last,
        }
    }
}

/// The summary as text in the requested format, and the exit code.
pub fn execute(args: &SummaryArgs) -> Result<(i32, String)> {
    let mut cfg = args.slo.analysis(&args.bootstrap, args.by_task)?;
    let runs = args.dir.open()?.load(&args.selection())?;
    for r in &runs {
        r.require_complete(args.partial.partial)?;
    }
    super::warn(&runs);
    cfg.prices = crate::cost::prices_of(&runs);
    let records: Vec<_> = runs.into_iter().flat_map(|r| r.records).collect();
    if records.is_empty() {
        anyhow::bail!("the selected run(s) contain no readable records");
    }
    let summary = analysis::summarize(&records, &cfg);
    let text = match args.format {
        TableFormat::Table => {
            let mut t = if args.wide { render::summary_table_wide(&summary) } else { render::summary_table(&summary) };
            for r in crate::recommend::recommend(&summary, &records, None, &cfg.bootstrap) {
                t.push_str(&format!("\nRecommendation: {}\n", r.paragraph.replace("**", "").replace('`', "")));
            }
            t
        }
        TableFormat::Json => serde_json::to_string_pretty(&summary)? + "\n",
        TableFormat::Csv => render::summary_csv(&summary)?,
    };
    Ok((0, text))
}

pub fn run(args: SummaryArgs) -> Result<i32> {
    Ok(super::exit_code(execute(&args).and_then(|(code, text)| {
        super::stdout_write(&text)?;
        Ok(code)
    })))
}
