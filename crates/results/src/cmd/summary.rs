//! `ttc summary`: per policy x suite table of a run (or the last, or all runs).

use anyhow::Result;
use std::path::PathBuf;

use super::{InputError, SloOptions, TableFormat, DEFAULT_RESULTS_DIR};
use crate::analysis;
use crate::render;
use ttc_stats::BootstrapConfig;
use crate::store::{ResultsStore, RunSelection};

/// Summarise stored results per policy x suite: latency percentiles, throughput, goodput, quality with
/// 95% CIs, policy internals, and the Pareto-optimal policies.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOptions {
    /// Results directory (one `run_id=<id>/` folder of Parquet parts per run).
    pub results: PathBuf,
    /// Analyse a sharded run even when a shard is missing or incomplete.
    pub partial: bool,
    /// The run, the last run, or every run (grouped by run).
    pub selection: RunSelection,
    pub format: TableFormat,
    /// Split groups by task as well as by suite.
    pub by_task: bool,
    /// Every column; the default view fits 120 columns.
    pub wide: bool,
    pub slo: SloOptions,
    pub bootstrap: BootstrapConfig,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            results: PathBuf::from(DEFAULT_RESULTS_DIR),
            partial: false,
            selection: RunSelection::Last,
            format: TableFormat::Table,
            by_task: false,
            wide: false,
            slo: SloOptions::default(),
            bootstrap: BootstrapConfig::DEFAULT,
        }
    }
}

/// The summary as text in the requested format.
pub fn execute(opts: &SummaryOptions) -> Result<String, InputError> {
    summarize(opts).map_err(InputError)
}

fn summarize(opts: &SummaryOptions) -> Result<String> {
    let mut cfg = opts.slo.analysis(&opts.bootstrap, opts.by_task)?;
    let runs = ResultsStore::open(&opts.results)?.load(&opts.selection)?;
    for r in &runs {
        r.require_complete(opts.partial)?;
    }
    super::warn(&runs);
    cfg.prices = crate::cost::prices_of(&runs);
    let records: Vec<_> = runs.into_iter().flat_map(|r| r.records).collect();
    if records.is_empty() {
        anyhow::bail!("the selected run(s) contain no readable records");
    }
    let summary = analysis::summarize(&records, &cfg);
    let text = match opts.format {
        TableFormat::Table => {
            let mut t = if opts.wide { render::summary_table_wide(&summary) } else { render::summary_table(&summary) };
            for r in crate::recommend::recommend(&summary, &records, None, &cfg.bootstrap) {
                t.push_str(&format!("\nRecommendation: {}\n", r.paragraph.replace("**", "").replace('`', "")));
            }
            t
        }
        TableFormat::Json => serde_json::to_string_pretty(&summary)? + "\n",
        TableFormat::Csv => render::summary_csv(&summary)?,
    };
    Ok(text)
}
