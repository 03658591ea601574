//! The results directory: a Hive-style Parquet dataset, one folder per run.
//!
//! ```text
//! results/
//!   run_id=<id>/
//!     _run.json              manifest (RunManifest)
//!     part-00000.parquet     one flush of records
//!     part-00001.parquet
//! ```
//! DuckDB (`read_parquet('results/*/*.parquet', hive_partitioning=true)`), pyarrow and polars read it as is.
//! Readers never fail on one bad part: corrupt or truncated parts are skipped and reported as warnings.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use ttc_types::Record;

use crate::manifest::{now_rfc3339, RunManifest, RunMeta, RunStatus, MANIFEST_FILE};
use crate::parts;
use crate::writer::{RunWriter, WriterOptions};

const RUN_DIR_PREFIX: &str = "run_id=";

/// Which runs a command reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSelection {
    Run(String),
    Last,
    All,
}

#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub dir: PathBuf,
    pub manifest: Option<RunManifest>,
    /// The manifest's `started_at`, else the folder's modification time (RFC 3339); used to order runs.
    pub started_at: String,
}

#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub run_id: String,
    pub manifest: Option<RunManifest>,
    pub records: Vec<Record>,
    /// Problems that did not stop the read (corrupt parts skipped, duplicate keys, leftover temporaries).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CompactReport {
    pub run_id: String,
    pub parts_merged: usize,
    pub records: usize,
    /// The merged part, None when there was nothing to merge.
    pub output: Option<PathBuf>,
    /// Corrupt parts renamed to hidden `.corrupt-*` names (kept, never deleted, but no longer read).
    pub quarantined: Vec<PathBuf>,
}

pub struct ResultsStore {
    dir: PathBuf,
}

/// Run ids become folder names: keep them to a safe alphabet.
pub fn validate_run_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._:+-".contains(c);
    if id.is_empty() || id.len() > 200 || id.starts_with('.') || !id.chars().all(ok_char) {
        bail!("invalid run id `{id}`: use 1-200 characters from A-Z a-z 0-9 . _ : + - (not starting with '.')");
    }
    Ok(())
}

impl ResultsStore {
    /// Opens an existing results directory for reading (and writing).
    pub fn open(dir: impl AsRef<Path>) -> Result<ResultsStore> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            bail!(
                "results directory `{}` does not exist or is not a directory (set --results DIR or TTC_RESULTS)",
                dir.display()
            );
        }
        Ok(ResultsStore { dir })
    }

    /// Opens a results directory, creating it if needed (for writers).
    pub fn create(dir: impl AsRef<Path>) -> Result<ResultsStore> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).with_context(|| format!("creating results directory {}", dir.display()))?;
        Ok(ResultsStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{RUN_DIR_PREFIX}{run_id}"))
    }

    /// All runs, oldest first.
    pub fn list_runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs = Vec::new();
        for entry in fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(run_id) = name.to_str().and_then(|n| n.strip_prefix(RUN_DIR_PREFIX)) else { continue };
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let dir = entry.path();
            let manifest = RunManifest::read(&dir.join(MANIFEST_FILE)).ok();
            let started_at = match &manifest {
                Some(m) => m.meta.started_at.clone(),
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default(),
            };
            runs.push(RunInfo { run_id: run_id.to_string(), dir, manifest, started_at });
        }
        runs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
        Ok(runs)
    }

    fn no_runs_error(&self) -> anyhow::Error {
        anyhow::anyhow!("no runs in results directory `{}` (expected run_id=<id>/ folders)", self.dir.display())
    }

    /// The most recently started run.
    pub fn last_run_id(&self) -> Result<String> {
        self.list_runs()?.pop().map(|r| r.run_id).ok_or_else(|| self.no_runs_error())
    }

    /// Fails with the list of known runs when `run_id` is not in the store.
    fn existing_run_dir(&self, run_id: &str) -> Result<PathBuf> {
        validate_run_id(run_id)?;
        let dir = self.run_dir(run_id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let runs = self.list_runs()?;
        if runs.is_empty() {
            return Err(self.no_runs_error());
        }
        let names: Vec<&str> = runs.iter().rev().take(10).map(|r| r.run_id.as_str()).collect();
        bail!(
            "run `{run_id}` not found in `{}` (latest runs: {}{})",
            self.dir.display(),
            names.join(", "),
            if runs.len() > 10 { ", ..." } else { "" }
        )
    }

    /// The parts a reader should use: committed, readable footers, not superseded by a compacted part.
    fn live_parts(&self, run_dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>> {
        let all = parts::list_parts(run_dir)?;
        let mut superseded = HashSet::new();
        for (_, path) in &all {
            // Unreadable footers are reported when the part itself is read.
            if let Ok(s) = parts::read_supersedes(path) {
                superseded.extend(s);
            }
        }
        for entry in fs::read_dir(run_dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".part-") && name.ends_with(".tmp") {
                warnings.push(format!("{}: unfinished part from an interrupted flush, ignored", entry.path().display()));
            }
        }
        Ok(all
            .into_iter()
            .filter(|(_, p)| !superseded.contains(p.file_name().and_then(|n| n.to_str()).unwrap_or_default()))
            .map(|(_, p)| p)
            .collect())
    }

    pub fn load_run(&self, run_id: &str) -> Result<LoadedRun> {
        let run_dir = self.existing_run_dir(run_id)?;
        let mut warnings = Vec::new();
        let manifest = match RunManifest::read(&run_dir.join(MANIFEST_FILE)) {
            Ok(m) => Some(m),
            Err(e) if run_dir.join(MANIFEST_FILE).exists() => {
                warnings.push(format!("{e:#}"));
                None
            }
            Err(_) => None,
        };
        let mut records = Vec::new();
        for path in self.live_parts(&run_dir, &mut warnings)? {
            match parts::read_part(&path) {
                Ok(rs) => records.extend(rs),
                Err(e) => warnings.push(format!("skipped corrupt part: {e:#}")),
            }
        }
        let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for r in &records {
            *seen.entry((&r.policy, &r.suite, &r.sample_id)).or_default() += 1;
        }
        let dups = seen.values().filter(|&&n| n > 1).count();
        if dups > 0 {
            warnings.push(format!("run {run_id}: {dups} (policy, suite, sample) keys appear more than once"));
        }
        Ok(LoadedRun { run_id: run_id.to_string(), manifest, records, warnings })
    }

    pub fn load_last(&self) -> Result<LoadedRun> {
        self.load_run(&self.last_run_id()?)
    }

    pub fn load_all(&self) -> Result<Vec<LoadedRun>> {
        let runs = self.list_runs()?;
        if runs.is_empty() {
            return Err(self.no_runs_error());
        }
        runs.iter().map(|r| self.load_run(&r.run_id)).collect()
    }

    pub fn load(&self, selection: &RunSelection) -> Result<Vec<LoadedRun>> {
        match selection {
            RunSelection::Run(id) => Ok(vec![self.load_run(id)?]),
            RunSelection::Last => Ok(vec![self.load_last()?]),
            RunSelection::All => self.load_all(),
        }
    }

    /// The (policy, suite, sample_id) keys already stored for a run: what `--resume` skips.
    pub fn existing_keys(&self, run_id: &str) -> Result<BTreeSet<(String, String, String)>> {
        let run_dir = self.existing_run_dir(run_id)?;
        let mut keys = BTreeSet::new();
        for path in self.live_parts(&run_dir, &mut Vec::new())? {
            match parts::read_keys(&path) {
                Ok(k) => keys.extend(k),
                Err(e) => eprintln!("warning: skipped corrupt part: {e:#}"),
            }
        }
        Ok(keys)
    }

    /// Starts a new run: creates its folder and a `running` manifest.
    pub fn start_run(&self, meta: RunMeta, opts: WriterOptions) -> Result<RunWriter> {
        validate_run_id(&meta.run_id)?;
        let run_dir = self.run_dir(&meta.run_id);
        if run_dir.exists() {
            bail!("run `{}` already exists in `{}` (resume it instead)", meta.run_id, self.dir.display());
        }
        fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        let manifest = RunManifest {
            schema_version: ttc_types::SCHEMA_VERSION,
            meta,
            status: RunStatus::Running,
            records_written: 0,
            updated_at: now_rfc3339(),
            resumes: 0,
        };
        RunWriter::new(run_dir, manifest, 0, opts)
    }

    /// Reopens an existing run for appending (after a crash or interruption). New parts get fresh indexes.
    pub fn resume_run(&self, run_id: &str, opts: WriterOptions) -> Result<RunWriter> {
        let run_dir = self.existing_run_dir(run_id)?;
        let existing = parts::list_parts(&run_dir)?;
        let next_part = existing.last().map_or(0, |(i, _)| i + 1);
        let mut manifest = match RunManifest::read(&run_dir.join(MANIFEST_FILE)) {
            Ok(m) => m,
            Err(_) => self.manifest_from_records(run_id)?,
        };
        manifest.status = RunStatus::Running;
        manifest.resumes += 1;
        manifest.updated_at = now_rfc3339();
        RunWriter::new(run_dir, manifest, next_part, opts)
    }

    /// Rebuilds a lost manifest from the first stored record.
    fn manifest_from_records(&self, run_id: &str) -> Result<RunManifest> {
        let run = self.load_run(run_id)?;
        let Some(r) = run.records.first() else {
            bail!("run `{run_id}` has neither a readable manifest nor readable records; cannot resume it");
        };
        Ok(RunManifest {
            schema_version: ttc_types::SCHEMA_VERSION,
            meta: RunMeta {
                run_id: run_id.to_string(),
                started_at: r.run_started_at.clone(),
                config_hash: r.config_hash.clone(),
                planned: None,
                project_version: r.project_version.clone(),
                extra: serde_json::Value::Null,
            },
            status: RunStatus::Running,
            records_written: run.records.len() as u64,
            updated_at: now_rfc3339(),
            resumes: 0,
        })
    }

    /// Merges a run's parts into one. The merged part is committed (atomic link) before the old parts are
    /// deleted, and names them in its footer, so a crash in between never duplicates rows for readers.
    /// Corrupt parts are moved aside to hidden `.corrupt-<name>` files, not deleted.
    pub fn compact(&self, run_id: &str) -> Result<CompactReport> {
        let run_dir = self.existing_run_dir(run_id)?;
        let mut report = CompactReport { run_id: run_id.to_string(), ..Default::default() };
        let all = parts::list_parts(&run_dir)?;
        let live = self.live_parts(&run_dir, &mut Vec::new())?;
        let stale: Vec<&PathBuf> = all.iter().map(|(_, p)| p).filter(|p| !live.contains(p)).collect();

        let mut records = Vec::new();
        let mut merged = Vec::new();
        for path in &live {
            match parts::read_part(path) {
                Ok(rs) => {
                    records.extend(rs);
                    merged.push(path.clone());
                }
                Err(e) => {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("part");
                    let aside = run_dir.join(format!(".corrupt-{name}"));
                    eprintln!("warning: quarantining corrupt part ({e:#}) as {}", aside.display());
                    fs::rename(path, &aside)?;
                    report.quarantined.push(aside);
                }
            }
        }
        if merged.len() > 1 {
            let names: Vec<String> =
                merged.iter().filter_map(|p| p.file_name()?.to_str().map(str::to_string)).collect();
            let next = all.last().map_or(0, |(i, _)| i + 1);
            let (_, out) = parts::write_part(&run_dir, next, &records, &names, true)?;
            for p in &merged {
                fs::remove_file(p).with_context(|| format!("removing merged part {}", p.display()))?;
            }
            report.output = Some(out);
            report.parts_merged = merged.len();
        }
        for p in stale {
            fs::remove_file(p).with_context(|| format!("removing superseded part {}", p.display()))?;
        }
        report.records = records.len();
        Ok(report)
    }
}
