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
//!
//! The same layout lives in a local directory or under an object-store prefix (`s3://bucket/prefix`): the
//! store reads and writes through [`Storage`] ([`crate::storage`]) and never touches a file itself.

use anyhow::{bail, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ttc_types::Record;

use crate::manifest::{manifest_key, now_rfc3339, read_run_manifest, shard_manifests, RunManifest, RunMeta, RunStatus, MANIFEST_FILE};
use crate::shard::{Shard, ShardGap, ShardInfo};
use crate::parts;
use crate::storage::{self, key, Storage};
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
    /// The run's folder (for an object store, its URL as a path: `s3://bucket/prefix/run_id=<id>`).
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

/// Cheap to clone: clones share one storage (and, for an object store, one client).
#[derive(Clone)]
pub struct ResultsStore {
    storage: Arc<dyn Storage>,
}

/// Run ids become folder names: keep them to a safe alphabet.
pub fn validate_run_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._:+-".contains(c);
    if id.is_empty() || id.len() > 200 || id.starts_with('.') || !id.chars().all(ok_char) {
        bail!("invalid run id `{id}`: use 1-200 characters from A-Z a-z 0-9 . _ : + - (not starting with '.')");
    }
    Ok(())
}

/// A run's folder key: `run_id=<id>`.
fn run_key(run_id: &str) -> String {
    format!("{RUN_DIR_PREFIX}{run_id}")
}

impl ResultsStore {
    /// Opens an existing results location for reading (and writing): a directory, or `s3://bucket/prefix`.
    pub fn open(location: impl AsRef<Path>) -> Result<ResultsStore> {
        Ok(ResultsStore { storage: storage::open(location.as_ref(), false)? })
    }

    /// Opens a results location, creating the directory if needed (for writers).
    pub fn create(location: impl AsRef<Path>) -> Result<ResultsStore> {
        Ok(ResultsStore { storage: storage::open(location.as_ref(), true)? })
    }

    /// A store on any [`Storage`] (tests run the store on object_store's `InMemory` through this).
    pub fn with_storage(storage: Arc<dyn Storage>) -> ResultsStore {
        ResultsStore { storage }
    }

    /// The location as given (`results`, `s3://bucket/prefix`).
    pub fn dir(&self) -> &Path {
        self.storage.root()
    }

    /// A run's folder (for an object store, its URL as a path), for messages and local tools.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.dir().join(run_key(run_id))
    }

    /// Whether run `run_id` has a folder in the store.
    pub fn has_run(&self, run_id: &str) -> bool {
        validate_run_id(run_id).is_ok() && self.storage.dir_exists(&run_key(run_id)).unwrap_or(false)
    }

    /// The files in a run's folder (parts, manifests, temporaries), by name.
    pub fn run_files(&self, run_id: &str) -> Result<Vec<storage::Entry>> {
        validate_run_id(run_id)?;
        let mut files = self.storage.list_files(&run_key(run_id))?;
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// A run's manifest (a sharded run's merged from its shards'), None when it has none; an unreadable one
    /// is reported in `warnings`.
    pub fn run_manifest(&self, run_id: &str, warnings: &mut Vec<String>) -> Option<RunManifest> {
        read_run_manifest(self.storage.as_ref(), &run_key(run_id), warnings)
    }

    /// Writes file `name` at the top of the store, beside the run folders (the end-of-run report); returns
    /// its path (an object store's: its URL).
    pub fn write_file(&self, name: &str, data: &[u8]) -> Result<PathBuf> {
        self.storage.put(name, data, false)?;
        Ok(self.dir().join(name))
    }

    /// All runs, oldest first.
    pub fn list_runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs = Vec::new();
        for entry in self.storage.list_dirs()? {
            let Some(run_id) = entry.name.strip_prefix(RUN_DIR_PREFIX) else { continue };
            let manifest = read_run_manifest(self.storage.as_ref(), &entry.name, &mut Vec::new());
            let started_at = match &manifest {
                Some(m) => m.meta.started_at.clone(),
                None => entry.modified.map(|t| humantime::format_rfc3339_seconds(t).to_string()).unwrap_or_default(),
            };
            runs.push(RunInfo { run_id: run_id.to_string(), dir: self.dir().join(&entry.name), manifest, started_at });
        }
        runs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
        Ok(runs)
    }

    fn no_runs_error(&self) -> anyhow::Error {
        anyhow::anyhow!("no runs in results directory `{}` (expected run_id=<id>/ folders)", self.dir().display())
    }

    /// The most recently started run.
    pub fn last_run_id(&self) -> Result<String> {
        self.list_runs()?.pop().map(|r| r.run_id).ok_or_else(|| self.no_runs_error())
    }

    /// The run's folder key; fails with the list of known runs when `run_id` is not in the store.
    fn existing_run(&self, run_id: &str) -> Result<String> {
        validate_run_id(run_id)?;
        let run = run_key(run_id);
        if self.storage.dir_exists(&run)? {
            return Ok(run);
        }
        let runs = self.list_runs()?;
        if runs.is_empty() {
            return Err(self.no_runs_error());
        }
        let names: Vec<&str> = runs.iter().rev().take(10).map(|r| r.run_id.as_str()).collect();
        bail!(
            "run `{run_id}` not found in `{}` (latest runs: {}{})",
            self.dir().display(),
            names.join(", "),
            if runs.len() > 10 { ", ..." } else { "" }
        )
    }

    /// The parts a reader should use (file names): committed, readable footers, not superseded by a compacted
    /// part. With `chosen`, only those part file names are considered (and only among them does one supersede
    /// another).
    fn live_parts(&self, run: &str, chosen: Option<&HashSet<&str>>, warnings: &mut Vec<String>) -> Result<Vec<String>> {
        let st = self.storage.as_ref();
        let all: Vec<String> = parts::list_parts(st, run)?
            .into_iter()
            .map(|p| p.name)
            .filter(|n| chosen.is_none_or(|c| c.contains(n.as_str())))
            .collect();
        let mut superseded = HashSet::new();
        for name in &all {
            // Unreadable footers are reported when the part itself is read.
            if let Ok(s) = parts::read_supersedes(st, run, name) {
                superseded.extend(s);
            }
        }
        if chosen.is_none() {
            for entry in st.list_files(run)? {
                if entry.name.starts_with(".part-") && entry.name.ends_with(".tmp") {
                    let path = self.dir().join(key(run, &entry.name));
                    warnings.push(format!("{}: unfinished part from an interrupted flush, ignored", path.display()));
                }
            }
        }
        Ok(all.into_iter().filter(|n| !superseded.contains(n)).collect())
    }

    /// Reads parts `names` of folder `run` in order; a corrupt part is skipped with a warning. Also counts each
    /// shard's records.
    fn read_parts(&self, run: &str, names: Vec<String>, warnings: &mut Vec<String>) -> (Vec<Record>, HashMap<Shard, u64>) {
        let mut records = Vec::new();
        let mut per_shard: HashMap<Shard, u64> = HashMap::new();
        for name in names {
            match parts::read_part(self.storage.as_ref(), run, &name) {
                Ok(rs) => {
                    if let Some((Some(shard), _)) = parts::parse_part_name(&name) {
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
        let run = self.existing_run(run_id)?;
        let mut warnings = Vec::new();
        let manifest = read_run_manifest(self.storage.as_ref(), &run, &mut warnings);
        let live = self.live_parts(&run, None, &mut warnings)?;
        let (records, per_shard) = self.read_parts(&run, live, &mut warnings);
        let shard_gaps = shard_gaps(self.storage.as_ref(), &run, &per_shard, &mut warnings);
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
        let run = self.existing_run(run_id)?;
        let chosen: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut warnings = Vec::new();
        let live = self.live_parts(&run, Some(&chosen), &mut warnings)?;
        let (records, _) = self.read_parts(&run, live, &mut warnings);
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
        let run = self.existing_run(run_id)?;
        let mut keys = BTreeSet::new();
        for name in self.live_parts(&run, None, &mut Vec::new())? {
            match parts::read_keys(self.storage.as_ref(), &run, &name) {
                Ok(k) => keys.extend(k),
                Err(e) => eprintln!("warning: skipped corrupt part: {e:#}"),
            }
        }
        Ok(keys)
    }

    /// Starts a new run: creates its folder and a `running` manifest.
    pub fn start_run(&self, meta: RunMeta, opts: WriterOptions) -> Result<RunWriter> {
        validate_run_id(&meta.run_id)?;
        let run = run_key(&meta.run_id);
        if self.storage.dir_exists(&run)? {
            bail!("run `{}` already exists in `{}` (resume it instead)", meta.run_id, self.dir().display());
        }
        self.storage.create_dir(&run)?;
        RunWriter::new(self.storage.clone(), run, new_manifest(meta, None), 0, opts)
    }

    /// Why `shard` of run `run_id` with configuration `config_hash` cannot join the run as stored, if it cannot:
    /// the run was written unsharded, or with another shard count or configuration, or (unless `resuming`) this
    /// shard was started already. Checked before anything is loaded or written.
    pub fn shard_conflict(&self, run_id: &str, shard: Shard, config_hash: &str, resuming: bool) -> Option<String> {
        let run = run_key(run_id);
        if self.storage.exists(&key(&run, MANIFEST_FILE)).unwrap_or(false) {
            return Some(format!("run `{run_id}` in `{}` was written without shards; --shard {shard} cannot add to it (choose another --run-id)", self.dir().display()));
        }
        for (other, m) in shard_manifests(self.storage.as_ref(), &run) {
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
        let run = run_key(&meta.run_id);
        let shard = info.shard;
        self.storage.create_dir(&run)?;
        let next_part = parts::next_index(&parts::list_parts(self.storage.as_ref(), &run)?, Some(shard));
        let manifest = match RunManifest::read(self.storage.as_ref(), &manifest_key(&run, Some(shard))) {
            Ok(mut m) if resume => {
                m.status = RunStatus::Running;
                m.resumes += 1;
                m.updated_at = now_rfc3339();
                m
            }
            Ok(_) => bail!("shard {shard} of run `{}` exists already; continue it with --resume", meta.run_id),
            Err(_) => new_manifest(meta, Some(info)),
        };
        RunWriter::new(self.storage.clone(), run, manifest, next_part, opts)
    }

    /// Reopens an existing run for appending (after a crash or interruption). New parts get fresh indexes.
    pub fn resume_run(&self, run_id: &str, opts: WriterOptions) -> Result<RunWriter> {
        let run = self.existing_run(run_id)?;
        let next_part = parts::next_index(&parts::list_parts(self.storage.as_ref(), &run)?, None);
        let mut manifest = match RunManifest::read(self.storage.as_ref(), &key(&run, MANIFEST_FILE)) {
            Ok(m) => m,
            Err(_) => self.manifest_from_records(run_id)?,
        };
        manifest.status = RunStatus::Running;
        manifest.resumes += 1;
        manifest.updated_at = now_rfc3339();
        RunWriter::new(self.storage.clone(), run, manifest, next_part, opts)
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

    /// Merges a run's parts into one. The merged part is committed (a part is never overwritten) before the
    /// old parts are deleted, and names them in its footer, so a crash in between never duplicates rows for
    /// readers. Corrupt parts are moved aside to hidden `.corrupt-<name>` files, not deleted.
    pub fn compact(&self, run_id: &str) -> Result<CompactReport> {
        let st = self.storage.as_ref();
        let run = self.existing_run(run_id)?;
        let path = |name: &str| self.dir().join(key(&run, name));
        let mut report = CompactReport { run_id: run_id.to_string(), ..Default::default() };
        let all = parts::list_parts(st, &run)?;
        let live = self.live_parts(&run, None, &mut Vec::new())?;
        let stale: Vec<&String> = all.iter().map(|p| &p.name).filter(|n| !live.contains(n)).collect();
        // A sharded run is compacted shard by shard, so that each merged part still says which shard wrote it.
        let mut shards: Vec<Option<Shard>> = all.iter().map(|p| p.shard).collect();
        shards.dedup();
        for shard in shards {
            let mine: Vec<&String> = all.iter().filter(|p| p.shard == shard && live.contains(&p.name)).map(|p| &p.name).collect();
            let mut records = Vec::new();
            let mut merged = Vec::new();
            for name in mine {
                match parts::read_part(st, &run, name) {
                    Ok(rs) => {
                        records.extend(rs);
                        merged.push(name.clone());
                    }
                    Err(e) => {
                        let aside = format!(".corrupt-{name}");
                        eprintln!("warning: quarantining corrupt part ({e:#}) as {}", path(&aside).display());
                        st.rename(&key(&run, name), &key(&run, &aside))?;
                        report.quarantined.push(path(&aside));
                    }
                }
            }
            if merged.len() > 1 {
                let next = parts::next_index(&all, shard);
                let (_, out) = parts::write_part(st, &run, shard, next, &records, &merged, true)?;
                for name in &merged {
                    st.delete(&key(&run, name)).map_err(|e| e.context("removing a merged part"))?;
                }
                report.output = Some(path(&out));
                report.parts_merged += merged.len();
            }
            report.records += records.len();
        }
        for name in stale {
            st.delete(&key(&run, name)).map_err(|e| e.context("removing a superseded part"))?;
        }
        Ok(report)
    }
}

/// The warning a read gives when (policy, suite, sample) keys repeat within one phase among `records` of run
/// `run_id` (then parts may supersede others, as after an interrupted compaction, which only a whole-run read
/// resolves). Load sweeps and capacity probes send a sample several times (once per phase, and again within a
/// phase when it has more requests than the suite has samples), so a phased record is told apart by its phase and
/// its send time: only a copy of the same request repeats both.
pub fn duplicate_warning(run_id: &str, records: &[Record]) -> Option<String> {
    let mut seen: HashMap<(&str, &str, &str, &str, Option<u64>), usize> = HashMap::new();
    for r in records {
        let (phase, sent) = match r.load.phase.as_deref() {
            Some(p) => (p, Some(r.start_offset_s.to_bits())),
            None => ("", None),
        };
        *seen.entry((&r.policy, &r.suite, &r.sample_id, phase, sent)).or_default() += 1;
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
fn shard_gaps(storage: &dyn Storage, run: &str, stored: &HashMap<Shard, u64>, warnings: &mut Vec<String>) -> Vec<ShardGap> {
    let manifests: Vec<(Shard, RunManifest)> =
        shard_manifests(storage, run).into_iter().filter_map(|(s, m)| m.ok().map(|m| (s, m))).collect();
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
