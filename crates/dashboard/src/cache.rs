//! Loaded runs and their summaries, kept in memory until the run's files change.
//!
//! Reading 100,000 records from Parquet and summarising them takes a noticeable fraction of a second, and
//! every view asks for the same run; so each run is read once and re-read only when its folder's
//! fingerprint (names, sizes and modification times of its files) changes. Computing the fingerprint is a
//! directory listing, cheap enough to do on every request.

use anyhow::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;
use ttc_results::analysis::{summarize, AnalysisConfig, Summary};
use ttc_results::kpi::{self, CheckReport, KpiFile};
use ttc_results::{LoadedRun, ResultsStore};

use crate::model::{trend_points, TrendPoint};

/// What identifies the state of a run folder on disk.
pub type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// Lists a run folder's visible files (temporaries start with '.'); an unreadable folder gives an empty list.
pub fn fingerprint(run_dir: &Path) -> Fingerprint {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return Vec::new() };
    let mut fp: Fingerprint = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if name.starts_with('.') {
                return None;
            }
            let meta = e.metadata().ok()?;
            Some((name, meta.len(), meta.modified().ok()))
        })
        .collect();
    fp.sort();
    fp
}

/// One run as read from disk, with what is derived from it computed on first use.
pub struct RunData {
    pub run: LoadedRun,
    pub fingerprint: Fingerprint,
    summary: OnceLock<Summary>,
    kpis: OnceLock<CheckReport>,
    trends: OnceLock<Vec<TrendPoint>>,
}

impl RunData {
    pub fn new(run: LoadedRun, fingerprint: Fingerprint) -> RunData {
        RunData { run, fingerprint, summary: OnceLock::new(), kpis: OnceLock::new(), trends: OnceLock::new() }
    }

    pub fn summary(&self, cfg: &AnalysisConfig) -> &Summary {
        self.summary.get_or_init(|| summarize(&self.run.records, cfg))
    }

    pub fn kpis(&self, file: &KpiFile) -> &CheckReport {
        self.kpis.get_or_init(|| kpi::evaluate(file, &self.run.run_id, &self.run.records, None))
    }

    pub fn trends(&self) -> &[TrendPoint] {
        self.trends.get_or_init(|| trend_points(&self.run))
    }
}

/// The results directory plus the runs read from it so far.
pub struct RunCache {
    dir: PathBuf,
    runs: Mutex<HashMap<String, Arc<RunData>>>,
}

impl RunCache {
    pub fn new(dir: PathBuf) -> RunCache {
        RunCache { dir, runs: Mutex::new(HashMap::new()) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store, or an error saying the directory is missing (the UI turns that into its empty state).
    pub fn store(&self) -> Result<ResultsStore> {
        ResultsStore::open(&self.dir)
    }

    /// The run as it is on disk now: from memory when its files did not change, else read again.
    /// Blocking (Parquet reads): call from `spawn_blocking`.
    pub fn get(&self, run_id: &str) -> Result<Arc<RunData>> {
        let store = self.store()?;
        let fp = fingerprint(&store.run_dir(run_id));
        if let Some(hit) = self.lock().get(run_id).filter(|d| d.fingerprint == fp && !fp.is_empty()) {
            return Ok(hit.clone());
        }
        let run = store.load_run(run_id)?;
        let data = Arc::new(RunData::new(run, fp));
        self.lock().insert(run_id.to_string(), data.clone());
        Ok(data)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RunData>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts), so recover it.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
