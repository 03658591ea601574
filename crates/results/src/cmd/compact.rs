//! `ttc compact`: merge each run's part files into one (atomically; corrupt parts are set aside).

use anyhow::Result;
use clap::Args;

use super::ResultsDir;

/// Merge the Parquet part files of a run (default: every run) into one file per run.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct CompactArgs {
    #[command(flatten)]
    pub dir: ResultsDir,
    /// Only this run (default: all runs).
    #[arg(long)]
    pub run: Option<String>,
}

pub fn execute(args: &CompactArgs) -> Result<(i32, String)> {
    let store = args.dir.open()?;
    let ids: Vec<String> = match &args.run {
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
    Ok((0, text))
}

pub fn run(args: CompactArgs) -> Result<i32> {
    Ok(super::exit_code(execute(&args).and_then(|(code, text)| {
        super::stdout_write(&text)?;
        Ok(code)
    })))
}
