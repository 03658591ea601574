//! The results directory: a Hive-style Parquet dataset, one folder per run.
//!
//! ```text
//! results/
//!   run_id=<id>/
//!     _run.json              manifest (RunManifest)
//!     part-00000.parquet     one flush of records
//!     part-00001.parquet
//! ```
//! A sharded run (`ttc run --shard I/N`) has one `_shard-I-of-N.json` per shard instead of `_run.json` and
//! shard-named parts (`part-shardIofN-NNNNN.parquet`, see [`crate::shard`]); readers merge the shards.
//!
//! DuckDB (`read_parquet('results/*/*.parquet', hive_partitioning=true)`), pyarrow and polars read it as is.
//! Readers never fail on one bad part: corrupt or truncated parts are skipped and reported as warnings.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use ttc_types::Record;

use crate::manifest::{manifest_path, now_rfc3339, read_run_manifest, shard_manifests, RunManifest, RunMeta, RunStatus, MANIFEST_FILE};
use crate::shard::{Shard, ShardGap, ShardInfo};
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
    /// Shards of a sharded run that have not stored their whole part of the plan (also in `warnings`).
    pub shard_gaps: Vec<ShardGap>,
}

impl LoadedRun {
    /// The analysis commands refuse a run with a missing or incomplete shard unless `partial` is set: a
    /// partial run summarised silently would read as the whole answer.
    pub fn require_complete(&self, partial: bool) -> Result<()> {
        if partial || self.shard_gaps.is_empty() {
            return Ok(());
        }
        let gaps: Vec<String> = self.shard_gaps.iter().map(|g| g.to_string()).collect();
        let missing: u64 = self.shard_gaps.iter().map(ShardGap::missing).sum();
        bail!(
            "run {} is incomplete ({missing} records missing): {}. Wait for it, rerun it with the run's flags and `--shard {} --resume {}`, or pass --partial to analyse the records that are there",
            self.run_id,
            gaps.join("; "),
            self.shard_gaps[0].shard,
            self.run_id
        )
    }
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
            let manifest = read_run_manifest(&dir, &mut Vec::new());
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

    /// The parts a reader should use: committed, readable footers, not superseded by a compacted part. With
    /// `chosen`, only those part file names are considered (and only among them does one supersede another).
    fn live_parts(&self, run_dir: &Path, chosen: Option<&HashSet<&str>>, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>> {
        let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let all: Vec<_> = parts::list_parts(run_dir)?
            .into_iter()
            .filter(|p| chosen.is_none_or(|c| c.contains(name(&p.path).as_str())))
            .collect();
        let mut superseded = HashSet::new();
        for path in all.iter().map(|p| &p.path) {
            // Unreadable footers are reported when the part itself is read.
            if let Ok(s) = parts::read_supersedes(path) {
                superseded.extend(s);
            }
        }
        if chosen.is_none() {
            for entry in fs::read_dir(run_dir)?.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with(".part-") && name.ends_with(".tmp") {
                    warnings.push(format!("{}: unfinished part from an interrupted flush, ignored", entry.path().display()));
                }
            }
        }
        Ok(all.into_iter().filter(|p| !superseded.contains(&name(&p.path))).map(|p| p.path).collect())
    }

    /// Reads `paths` in order; a corrupt part is skipped with a warning. Also counts each shard's records.
    fn read_parts(paths: Vec<PathBuf>, warnings: &mut Vec<String>) -> (Vec<Record>, HashMap<Shard, u64>) {
        let mut records = Vec::new();
        let mut per_shard: HashMap<Shard, u64> = HashMap::new();
        for path in paths {
            match parts::read_part(&path) {
                Ok(rs) => {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    if let Some((Some(shard), _)) = parts::parse_part_name(name) {
                        *per_shard.entry(shard).or_default() += rs.len() as u64;
                    }
                    records.extend(rs)
                }
                Err(e) => warnings.push(format!("skipped corrupt part: {e:#}")),
            }
        }
        (records, per_shard)
    }

    pub fn load_run(&self, run_id: &str) -> Result<LoadedRun> {
        let run_dir = self.existing_run_dir(run_id)?;
        let mut warnings = Vec::new();
        let manifest = read_run_manifest(&run_dir, &mut warnings);
        let live = self.live_parts(&run_dir, None, &mut warnings)?;
        let (records, per_shard) = Self::read_parts(live, &mut warnings);
        let shard_gaps = shard_gaps(&run_dir, &per_shard, &mut warnings);
        warnings.extend(duplicate_warning(run_id, &records));
        Ok(LoadedRun { run_id: run_id.to_string(), manifest, records, warnings, shard_gaps })
    }

    /// The records of some of a run's parts (`names`: part file names in its folder, `part-*.parquet`), read
    /// like [`ResultsStore::load_run`] reads them: in the store's order, a corrupt part skipped with a warning, a
    /// part superseded by another chosen part (a compaction) left out, a warning when keys repeat. The manifest
    /// and the shard manifests are not read. For a reader that keeps what it read before (the dashboard's live
    /// view reads only the parts added since) or splits a large run over threads.
    pub fn load_parts(&self, run_id: &str, names: &[String]) -> Result<(Vec<Record>, Vec<String>)> {
        if names.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let run_dir = self.existing_run_dir(run_id)?;
        let chosen: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut warnings = Vec::new();
        let live = self.live_parts(&run_dir, Some(&chosen), &mut warnings)?;
        let (records, _) = Self::read_parts(live, &mut warnings);
        warnings.extend(duplicate_warning(run_id, &records));
        Ok((records, warnings))
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
        for path in self.live_parts(&run_dir, None, &mut Vec::new())? {
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
        RunWriter::new(run_dir, new_manifest(meta, None), 0, opts)
    }

    /// Why `shard` of run `run_id` with configuration `config_hash` cannot join the run as stored, if it cannot:
    /// the run was written unsharded, or with another shard count or configuration, or (unless `resuming`) this
    /// shard was started already. Checked before anything is loaded or written.
    pub fn shard_conflict(&self, run_id: &str, shard: Shard, config_hash: &str, resuming: bool) -> Option<String> {
        let run_dir = self.run_dir(run_id);
        if run_dir.join(MANIFEST_FILE).exists() {
            return Some(format!("run `{run_id}` in `{}` was written without shards; --shard {shard} cannot add to it (choose another --run-id)", self.dir.display()));
        }
        for (other, m) in shard_manifests(&run_dir) {
            if other.count != shard.count {
                return Some(format!(
                    "shard count mismatch: run `{run_id}` was started as {} shards (shard {other} exists), this is --shard {shard}",
                    other.count
                ));
            }
            let Ok(m) = m else { continue };
            if m.meta.config_hash != config_hash {
                return Some(format!(
                    "config hash mismatch: shard {shard} has config hash {config_hash}, shard {other} of run `{run_id}` has {} (every shard must run the same run file, flags and policies)",
                    m.meta.config_hash
                ));
            }
            if other == shard && !resuming {
                return Some(format!("shard {shard} of run `{run_id}` exists already; continue it with --resume {run_id}"));
            }
        }
        None
    }

    /// Starts shard `info.shard` of a run (other shards may have created the folder already), or with `resume`
    /// continues it if it has a manifest. Call [`ResultsStore::shard_conflict`] first.
    pub fn start_shard(&self, meta: RunMeta, info: ShardInfo, resume: bool, opts: WriterOptions) -> Result<RunWriter> {
        validate_run_id(&meta.run_id)?;
        let run_dir = self.run_dir(&meta.run_id);
        let shard = info.shard;
        fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        let path = manifest_path(&run_dir, Some(shard));
        let next_part = parts::next_index(&parts::list_parts(&run_dir)?, Some(shard));
        let manifest = match RunManifest::read(&path) {
            Ok(mut m) if resume => {
                m.status = RunStatus::Running;
                m.resumes += 1;
                m.updated_at = now_rfc3339();
                m
            }
            Ok(_) => bail!("shard {shard} of run `{}` exists already; continue it with --resume", meta.run_id),
            Err(_) => new_manifest(meta, Some(info)),
        };
        RunWriter::new(run_dir, manifest, next_part, opts)
    }

    /// Reopens an existing run for appending (after a crash or interruption). New parts get fresh indexes.
    pub fn resume_run(&self, run_id: &str, opts: WriterOptions) -> Result<RunWriter> {
        let run_dir = self.existing_run_dir(run_id)?;
        let next_part = parts::next_index(&parts::list_parts(&run_dir)?, None);
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
            shard: None,
        })
    }

    /// Merges a run's parts into one. The merged part is committed (atomic link) before the old parts are
    /// deleted, and names them in its footer, so a crash in between never duplicates rows for readers.
    /// Corrupt parts are moved aside to hidden `.corrupt-<name>` files, not deleted.
    pub fn compact(&self, run_id: &str) -> Result<CompactReport> {
        let run_dir = self.existing_run_dir(run_id)?;
        let mut report = CompactReport { run_id: run_id.to_string(), ..Default::default() };
        let all = parts::list_parts(&run_dir)?;
        let live = self.live_parts(&run_dir, None, &mut Vec::new())?;
        let stale: Vec<&PathBuf> = all.iter().map(|p| &p.path).filter(|p| !live.contains(p)).collect();
        // A sharded run is compacted shard by shard, so that each merged part still says which shard wrote it.
        let mut shards: Vec<Option<Shard>> = all.iter().map(|p| p.shard).collect();
        shards.dedup();
        for shard in shards {
            let mine: Vec<&PathBuf> =
                all.iter().filter(|p| p.shard == shard && live.contains(&p.path)).map(|p| &p.path).collect();
            let mut records = Vec::new();
            let mut merged = Vec::new();
            for path in mine {
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
                let next = parts::next_index(&all, shard);
                let (_, out) = parts::write_part(&run_dir, shard, next, &records, &names, true)?;
                for p in &merged {
                    fs::remove_file(p).with_context(|| format!("removing merged part {}", p.display()))?;
                }
                report.output = Some(out);
                report.parts_merged += merged.len();
            }
            report.records += records.len();
        }
        for p in stale {
            fs::remove_file(p).with_context(|| format!("removing superseded part {}", p.display()))?;
        }
        Ok(report)
    }
}

/// The warning a read gives when (policy, suite, sample) keys repeat among `records` of run `run_id` (then parts
/// may supersede others, as after an interrupted compaction, which only a whole-run read resolves).
pub fn duplicate_warning(run_id: &str, records: &[Record]) -> Option<String> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for r in records {
        *seen.entry((&r.policy, &r.suite, &r.sample_id)).or_default() += 1;
    }
    let dups = seen.values().filter(|&&n| n > 1).count();
    (dups > 0).then(|| format!("run {run_id}: {dups} (policy, suite, sample) keys appear more than once"))
}

fn new_manifest(meta: RunMeta, shard: Option<ShardInfo>) -> RunManifest {
    RunManifest {
        schema_version: ttc_types::SCHEMA_VERSION,
        meta,
        status: RunStatus::Running,
        records_written: 0,
        updated_at: now_rfc3339(),
        resumes: 0,
        shard,
    }
}

/// The shards of a sharded run that lack records, from the shard manifests (count, planned per shard, status)
/// and the records each shard's parts hold. Config hashes that differ between shards are warnings.
fn shard_gaps(run_dir: &Path, stored: &HashMap<Shard, u64>, warnings: &mut Vec<String>) -> Vec<ShardGap> {
    let manifests: Vec<(Shard, RunManifest)> =
        shard_manifests(run_dir).into_iter().filter_map(|(s, m)| m.ok().map(|m| (s, m))).collect();
    let Some(info) = manifests.iter().find_map(|(_, m)| m.shard.clone()) else { return Vec::new() };
    let hash = &manifests[0].1.meta.config_hash;
    for (s, m) in manifests.iter().filter(|(_, m)| &m.meta.config_hash != hash) {
        warnings.push(format!(
            "shard {s} ran with config hash {}, shard {} with {hash}: the shards measured different configurations",
            m.meta.config_hash, manifests[0].0
        ));
    }
    let mut gaps = Vec::new();
    for index in 0..info.shard.count {
        let shard = Shard { index, count: info.shard.count };
        let planned = info.planned_per_shard.get(index as usize).copied().unwrap_or(0);
        let have = stored.get(&shard).copied().unwrap_or(0);
        let state = match manifests.iter().find(|(s, _)| *s == shard).map(|(_, m)| m.status) {
            None if planned == 0 => continue,
            None => "missing (no manifest: never started, or its results are elsewhere)",
            Some(_) if have >= planned => continue,
            Some(RunStatus::Running) => "running or interrupted",
            Some(RunStatus::Finished) => "finished early (interrupted)",
        };
        let gap = ShardGap { shard, planned, stored: have, state: state.to_string() };
        warnings.push(gap.to_string());
        gaps.push(gap);
    }
    gaps
}
