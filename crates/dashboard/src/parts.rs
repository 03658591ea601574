//! Reading a subset of a run's part files through the store's public API.
//!
//! `ResultsStore::load_run` reads a whole run on one thread. The dashboard needs two things it does not
//! offer: reading only the parts added since the last read (the live view of a 100,000-record run must not
//! re-read everything every second) and reading a large run on several threads. Both go through the
//! store itself: the chosen parts are symlinked into a scratch `run_id=<id>/` folder and that is loaded, so
//! decoding, validation and corrupt-part warnings stay the store's.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use ttc_results::ResultsStore;
use ttc_types::Record;

/// Part files of a run folder (`part-*.parquet`), in the store's order (by index, which is by name).
pub fn part_names(fingerprint: &crate::cache::Fingerprint) -> Vec<String> {
    let mut names: Vec<String> =
        fingerprint.iter().map(|(n, ..)| n.clone()).filter(|n| n.starts_with("part-") && n.ends_with(".parquet")).collect();
    names.sort();
    names
}

/// Loads the records of `parts` (file names in `run_dir`) with the store's reader. Warnings name the real
/// files. The manifest is not read.
pub fn load_parts(run_dir: &Path, run_id: &str, parts: &[String]) -> Result<(Vec<Record>, Vec<String>)> {
    if parts.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let scratch = tempfile::Builder::new().prefix("ttc-dashboard-").tempdir().context("creating a scratch folder")?;
    let view = scratch.path().join(format!("run_id={run_id}"));
    std::fs::create_dir(&view)?;
    let real_dir = std::fs::canonicalize(run_dir).with_context(|| format!("resolving {}", run_dir.display()))?;
    for name in parts {
        symlink(&real_dir.join(name), &view.join(name))?;
    }
    let run = ResultsStore::open(scratch.path())?.load_run(run_id)?;
    let shown = view.display().to_string();
    let warnings = run.warnings.iter().map(|w| w.replace(&shown, &run_dir.display().to_string())).collect();
    Ok((run.records, warnings))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).with_context(|| format!("linking {}", target.display()))
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::fs::copy(target, link).map(|_| ()).with_context(|| format!("copying {}", target.display()))
}

/// The store's duplicate-key warning, for records assembled from several reads.
pub fn duplicate_warning(run_id: &str, records: &[Record]) -> Option<String> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for r in records {
        *seen.entry((&r.policy, &r.suite, &r.sample_id)).or_default() += 1;
    }
    let dups = seen.values().filter(|&&n| n > 1).count();
    (dups > 0).then(|| format!("run {run_id}: {dups} (policy, suite, sample) keys appear more than once"))
}

/// Reads parts on `threads` threads, in order. Returns None when the result has duplicate keys: then parts
/// may supersede others (an interrupted compaction), which only a whole-run read resolves.
pub fn load_parallel(run_dir: &Path, run_id: &str, parts: &[String], threads: usize) -> Result<Option<(Vec<Record>, Vec<String>)>> {
    let chunk = parts.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<(Vec<Record>, Vec<String>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts.chunks(chunk).map(|c| s.spawn(move || load_parts(run_dir, run_id, c))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("part reader panicked")))).collect()
    });
    let (mut records, mut warnings) = (Vec::new(), Vec::new());
    for r in results {
        let (rs, ws) = r?;
        records.extend(rs);
        warnings.extend(ws);
    }
    if duplicate_warning(run_id, &records).is_some() {
        return Ok(None);
    }
    Ok(Some((records, warnings)))
}

