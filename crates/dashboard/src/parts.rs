//! Reading a subset of a run's part files through the store's public API (`ResultsStore::load_parts`).
//!
//! `ResultsStore::load_run` reads a whole run on one thread. The dashboard needs two things more: reading only
//! the parts added since the last read (the live view of a 100,000-record run must not re-read everything every
//! second) and reading a large run on several threads. Both ask the store for chosen parts, so decoding,
//! validation, supersession and corrupt-part warnings stay the store's.

use anyhow::Result;
use ttc_results::ResultsStore;
use ttc_types::Record;

/// Part files of a run folder (`part-*.parquet`), in the store's order (by index, which is by name).
pub fn part_names(fingerprint: &crate::cache::Fingerprint) -> Vec<String> {
    let mut names: Vec<String> =
        fingerprint.iter().map(|(n, ..)| n.clone()).filter(|n| n.starts_with("part-") && n.ends_with(".parquet")).collect();
    names.sort();
    names
}

/// Reads parts on `threads` threads, in order. Returns None when the result has duplicate keys: then parts
/// may supersede others (an interrupted compaction), which only a whole-run read resolves.
pub fn load_parallel(store: &ResultsStore, run_id: &str, parts: &[String], threads: usize) -> Result<Option<(Vec<Record>, Vec<String>)>> {
    let chunk = parts.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<(Vec<Record>, Vec<String>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts.chunks(chunk).map(|c| s.spawn(move || store.load_parts(run_id, c))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("part reader panicked")))).collect()
    });
    let (mut records, mut warnings) = (Vec::new(), Vec::new());
    for r in results {
        let (rs, ws) = r?;
        records.extend(rs);
        warnings.extend(ws);
    }
    if ttc_results::store::duplicate_warning(run_id, &records).is_some() {
        return Ok(None);
    }
    Ok(Some((records, warnings)))
}
