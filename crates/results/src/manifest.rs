//! `_run.json`: a small manifest beside a run's part files. Tools that read the Parquet dataset ignore it
//! (leading underscore), while `ttc` uses it to order runs, show planned vs done, and know whether a run
//! finished or was interrupted (a `running` manifest with no live writer = crashed, resumable).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::shard::{Shard, ShardInfo};

pub const MANIFEST_FILE: &str = "_run.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A writer is (or was, if it crashed) appending records.
    Running,
    /// The writer finished normally.
    Finished,
}

/// What the runner knows when a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: String,
    /// RFC 3339 UTC (the same string the records carry in `run_started_at`).
    pub started_at: String,
    pub config_hash: String,
    /// Number of requests the plan contains (policy x suite x sample), if known.
    pub planned: Option<u64>,
    pub project_version: String,
    /// Anything else worth keeping about the run (backend, model, policies, arrival process...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Version of the store layout (same as the record schema version).
    pub schema_version: u32,
    #[serde(flatten)]
    pub meta: RunMeta,
    pub status: RunStatus,
    /// Records this run's writers have flushed so far (all sessions, including resumes).
    pub records_written: u64,
    /// RFC 3339 UTC time of the last manifest update.
    pub updated_at: String,
    /// How many times the run was resumed.
    #[serde(default)]
    pub resumes: u32,
    /// Set in a shard's manifest (`_shard-I-of-N.json`): which shard, and the plan's size per shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

impl RunManifest {
    pub fn read(path: &Path) -> Result<RunManifest> {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid run manifest", path.display()))
    }

    /// Written to a temporary name, then renamed: readers see the old or the new manifest, never half.
    /// `sync` also makes it durable against power loss (an fsync): used at start and finish, not for the
    /// progress updates after each flush, which the part files make redundant.
    pub fn write_atomic(&self, path: &Path, sync: bool) -> Result<()> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(MANIFEST_FILE);
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let text = serde_json::to_string_pretty(self)?;
        let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }
}

/// The manifest file of a run (`_run.json`) or of one of its shards (`_shard-I-of-N.json`).
pub fn manifest_path(run_dir: &Path, shard: Option<Shard>) -> PathBuf {
    run_dir.join(shard.map_or_else(|| MANIFEST_FILE.to_string(), |s| s.manifest_file()))
}

/// The shard manifests of a run folder, by shard; unreadable ones as errors.
pub fn shard_manifests(run_dir: &Path) -> Vec<(Shard, Result<RunManifest>)> {
    let mut out: Vec<(Shard, Result<RunManifest>)> = fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let shard = Shard::from_manifest_file(e.file_name().to_str()?)?;
            Some((shard, RunManifest::read(&e.path())))
        })
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out
}

/// The manifest of a run as one: `_run.json`, or for a sharded run the shards' manifests merged (the first
/// shard's metadata, the whole plan's `planned`, the records of all, `finished` once every shard is).
/// None when there is none; unreadable files are reported in `warnings`.
pub fn read_run_manifest(run_dir: &Path, warnings: &mut Vec<String>) -> Option<RunManifest> {
    let single = run_dir.join(MANIFEST_FILE);
    if single.exists() {
        return RunManifest::read(&single).map_err(|e| warnings.push(format!("{e:#}"))).ok();
    }
    let mut shards = Vec::new();
    for (_, m) in shard_manifests(run_dir) {
        match m {
            Ok(m) => shards.push(m),
            Err(e) => warnings.push(format!("{e:#}")),
        }
    }
    let first = shards.first()?.clone();
    let count = first.shard.as_ref().map_or(1, |s| s.shard.count) as usize;
    let all_finished = shards.len() == count && shards.iter().all(|m| m.status == RunStatus::Finished);
    let planned = first.shard.as_ref().map(|s| s.planned_per_shard.iter().sum::<u64>());
    Some(RunManifest {
        meta: RunMeta { planned: planned.or(first.meta.planned), ..first.meta.clone() },
        status: if all_finished { RunStatus::Finished } else { RunStatus::Running },
        records_written: shards.iter().map(|m| m.records_written).sum(),
        updated_at: shards.iter().map(|m| m.updated_at.clone()).max().unwrap_or_default(),
        resumes: shards.iter().map(|m| m.resumes).sum(),
        ..first
    })
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
