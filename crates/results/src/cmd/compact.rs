//! `ttc compact`: merge each run's part files into one (atomically; corrupt parts are set aside).

use anyhow::Result;
use std::path::PathBuf;

use super::{InputError, DEFAULT_RESULTS_DIR};
use crate::store::ResultsStore;

/// Merge the Parquet part files of a run (default: every run) into one file per run.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactOptions {
    pub results: PathBuf,
    /// Only this run (None: all runs).
    pub run: Option<String>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions { results: PathBuf::from(DEFAULT_RESULTS_DIR), run: None }
    }
}

/// What was merged (and set aside), one line per run.
pub fn execute(opts: &CompactOptions) -> Result<String, InputError> {
    compact(opts).map_err(InputError)
}

fn compact(opts: &CompactOptions) -> Result<String> {
    let store = ResultsStore::open(&opts.results)?;
    let ids: Vec<String> = match &opts.run {
        Some(id) => vec![id.clone()],
        None => store.list_runs()?.into_iter().map(|r| r.run_id).collect(),
    };
    if ids.is_empty() {
        anyhow::bail!("no runs in results directory `{}`", store.dir().display());
    }
    let mut text = String::new();
    for id in ids {
        let r = store.compact(&id)?;
        match &r.output {
            Some(out) => text.push_str(&format!("{id}: merged {} parts ({} records) into {}\n", r.parts_merged, r.records, out.display())),
            None => text.push_str(&format!("{id}: nothing to merge ({} records)\n", r.records)),
        }
        for q in &r.quarantined {
            text.push_str(&format!("{id}: corrupt part set aside as {}\n", q.display()));
        }
    }
    Ok(text)
}
