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
use ttc_results::manifest::MANIFEST_FILE;
use ttc_results::{LoadedRun, ResultsStore};

use crate::model::{trend_points, TrendPoint};
use crate::parts;

/// What identifies the state of a run folder on disk.
pub type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// Lists a run folder's visible files (temporaries start with '.'); an unreadable folder gives an empty list.
pub fn fingerprint(store: &ResultsStore, run_id: &str) -> Fingerprint {
    let Ok(files) = store.run_files(run_id) else { return Vec::new() };
    let mut fp: Fingerprint =
        files.into_iter().filter(|e| !e.name.starts_with('.')).map(|e| (e.name, e.size, e.modified)).collect();
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
        self.summary.get_or_init(|| {
            // The run's price (`cost:` of its run file) gives the cost columns.
            let mut cfg = cfg.clone();
            cfg.prices.extend(ttc_results::cost::prices_of(std::slice::from_ref(&self.run)));
            summarize(&self.run.records, &cfg)
        })
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
    /// The store once opened: opening an object store builds a client and lists the bucket, too much per request.
    store: Mutex<Option<ResultsStore>>,
    runs: Mutex<HashMap<String, Arc<RunData>>>,
    /// One lock per run held while it is read, so concurrent requests wait for one read instead of each
    /// reading the run again.
    reading: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl RunCache {
    pub fn new(dir: PathBuf) -> RunCache {
        RunCache { dir, store: Mutex::new(None), runs: Mutex::new(HashMap::new()), reading: Mutex::new(HashMap::new()) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store, or an error saying the directory is missing (the UI turns that into its empty state).
    pub fn store(&self) -> Result<ResultsStore> {
        let mut opened = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = opened.as_ref() {
            return Ok(store.clone());
        }
        let store = ResultsStore::open(&self.dir)?;
        *opened = Some(store.clone());
        Ok(store)
    }

    /// The run as it is on disk now: from memory when its files did not change, only the new parts read
    /// when parts were appended, else read again (large runs on several threads).
    /// Blocking (Parquet reads): call from `spawn_blocking`.
    pub fn get(&self, run_id: &str) -> Result<Arc<RunData>> {
        let store = self.store()?;
        let fp = fingerprint(&store, run_id);
        let fresh = |d: &&Arc<RunData>| d.fingerprint == fp && !fp.is_empty();
        if let Some(hit) = self.lock().get(run_id).filter(fresh) {
            return Ok(hit.clone());
        }
        let gate = self.reading.lock().unwrap_or_else(|p| p.into_inner()).entry(run_id.to_string()).or_default().clone();
        let _reading = gate.lock().unwrap_or_else(|p| p.into_inner());
        // Another request may have read it while this one waited.
        let cached = self.lock().get(run_id).cloned();
        if let Some(hit) = cached.as_ref().filter(fresh) {
            return Ok(hit.clone());
        }
        let run = match cached.filter(|old| appended_only(&old.fingerprint, &fp)) {
            Some(old) => append(&store, &old, &fp)?,
            None => load_full(&store, run_id, &fp)?,
        };
        let data = Arc::new(RunData::new(run, fp));
        self.lock().insert(run_id.to_string(), data.clone());
        Ok(data)
    }

    /// Reads every run and computes the latest run's summary and KPIs and all trends, so the first page
    /// load finds them ready. Errors are left for the requests to report.
    pub fn warm_up(&self, analysis: &AnalysisConfig, kpis: &KpiFile) {
        let Ok(runs) = self.store().and_then(|s| s.list_runs()) else { return };
        for (i, info) in runs.iter().enumerate().rev() {
            let Ok(d) = self.get(&info.run_id) else { continue };
            if i + 1 == runs.len() {
                d.summary(analysis);
                d.kpis(kpis);
            }
            d.trends();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RunData>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts), so recover it.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs with at least this many parts are read on several threads.
pub const PARALLEL_MIN_PARTS: usize = 32;

/// Whether `new` only adds part files to `old` (and rewrites the manifest): the writer appended.
fn appended_only(old: &Fingerprint, new: &Fingerprint) -> bool {
    let is_part = |n: &str| n.starts_with("part-") && n.ends_with(".parquet");
    if is_sharded(new) {
        return false; // the store's read merges the shards and counts what each lacks
    }
    let kept = old.iter().filter(|e| e.0 != MANIFEST_FILE).all(|e| new.contains(e));
    let added_ok = new.iter().filter(|e| !old.contains(e)).all(|e| is_part(&e.0) || e.0 == MANIFEST_FILE);
    kept && added_ok && !old.is_empty()
}

/// A run written by `ttc run --shard I/N` (shard manifests `_shard-I-of-N.json`).
fn is_sharded(fp: &Fingerprint) -> bool {
    fp.iter().any(|e| ttc_results::Shard::from_manifest_file(&e.0).is_some())
}

/// The old records plus those of the new parts, with the warnings the store would give for the whole run.
fn append(store: &ResultsStore, old: &RunData, fp: &Fingerprint) -> Result<LoadedRun> {
    let run_id = &old.run.run_id;
    let known: Vec<String> = parts::part_names(&old.fingerprint);
    let fresh: Vec<String> = parts::part_names(fp).into_iter().filter(|n| !known.contains(n)).collect();
    let (new_records, new_warnings) = store.load_parts(run_id, &fresh)?;
    let mut warnings: Vec<String> = Vec::new();
    let manifest = store.run_manifest(run_id, &mut warnings);
    let dup_prefix = format!("run {run_id}: ");
    warnings.extend(old.run.warnings.iter().filter(|w| !w.starts_with(&dup_prefix) && !w.contains(MANIFEST_FILE)).cloned());
    warnings.extend(new_warnings.into_iter().filter(|w| !w.starts_with(&dup_prefix)));
    let mut records = old.run.records.clone();
    records.extend(new_records);
    warnings.extend(ttc_results::store::duplicate_warning(run_id, &records));
    Ok(LoadedRun { run_id: run_id.clone(), manifest, records, warnings, shard_gaps: Vec::new() })
}

/// A whole run: on several threads when it has many parts, else (or when parts overlap) the store's read.
fn load_full(store: &ResultsStore, run_id: &str, fp: &Fingerprint) -> Result<LoadedRun> {
    let names = parts::part_names(fp);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if names.len() >= PARALLEL_MIN_PARTS && threads > 1 && !is_sharded(fp) && ttc_results::store::validate_run_id(run_id).is_ok() {
        if let Some((records, part_warnings)) = parts::load_parallel(store, run_id, &names, threads)? {
            let mut warnings = Vec::new();
            let manifest = store.run_manifest(run_id, &mut warnings);
            for entry in store.run_files(run_id)? {
                if entry.name.starts_with(".part-") && entry.name.ends_with(".tmp") {
                    let path = store.run_dir(run_id).join(&entry.name);
                    warnings.push(format!("{}: unfinished part from an interrupted flush, ignored", path.display()));
                }
            }
            warnings.extend(part_warnings);
            return Ok(LoadedRun { run_id: run_id.to_string(), manifest, records, warnings, shard_gaps: Vec::new() });
        }
    }
    store.load_run(run_id)
}
