//! `_run.json`: a small manifest beside a run's part files. Tools that read the Parquet dataset ignore it
//! (leading underscore), while `ttc` uses it to order runs, show planned vs done, and know whether a run
//! finished or was interrupted (a `running` manifest with no live writer = crashed, resumable).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;

use crate::shard::{Shard, ShardInfo};
use crate::storage::{key, Blob, Storage};

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
    /// Reads manifest `key` (`run_id=<id>/_run.json`) of `storage`.
    pub fn read(storage: &dyn Storage, key: &str) -> Result<RunManifest> {
        let path = storage.root().join(key);
        let text = read_text(storage, key)?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid run manifest", path.display()))
    }

    /// Written whole ([`Storage::put`]: a temporary file renamed into place, or one PUT): readers see the old
    /// or the new manifest, never half. `sync` also makes it durable against power loss (an fsync): used at
    /// start and finish, not for the progress updates after each flush, which the part files make redundant.
    pub fn write_atomic(&self, storage: &dyn Storage, key: &str, sync: bool) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        storage.put(key, text.as_bytes(), sync)
    }
}

/// The whole file as text (`get` names the file when it cannot be opened).
fn read_text(storage: &dyn Storage, key: &str) -> Result<String> {
    let mut text = String::new();
    match storage.get(key)? {
        Blob::File(mut f) => {
            f.read_to_string(&mut text).with_context(|| format!("reading {}", storage.root().join(key).display()))?;
        }
        Blob::Bytes(b) => {
            text = String::from_utf8(b.to_vec()).with_context(|| format!("{}: not UTF-8 text", storage.root().join(key).display()))?
        }
    }
    Ok(text)
}

/// The manifest key of a run (`run_id=<id>/_run.json`) or of one of its shards (`.../_shard-I-of-N.json`).
pub fn manifest_key(run: &str, shard: Option<Shard>) -> String {
    key(run, &shard.map_or_else(|| MANIFEST_FILE.to_string(), |s| s.manifest_file()))
}

/// The shard manifests of a run folder, by shard; unreadable ones as errors.
pub fn shard_manifests(storage: &dyn Storage, run: &str) -> Vec<(Shard, Result<RunManifest>)> {
    let mut out: Vec<(Shard, Result<RunManifest>)> = storage
        .list_files(run)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let shard = Shard::from_manifest_file(&e.name)?;
            Some((shard, RunManifest::read(storage, &key(run, &e.name))))
        })
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out
}

/// The manifest of a run as one: `_run.json`, or for a sharded run the shards' manifests merged (the first
/// shard's metadata, the whole plan's `planned`, the records of all, `finished` once every shard is).
/// None when there is none; unreadable files are reported in `warnings`.
pub fn read_run_manifest(storage: &dyn Storage, run: &str, warnings: &mut Vec<String>) -> Option<RunManifest> {
    let single = key(run, MANIFEST_FILE);
    if storage.exists(&single).unwrap_or(false) {
        return RunManifest::read(storage, &single).map_err(|e| warnings.push(format!("{e:#}"))).ok();
    }
    let mut shards = Vec::new();
    for (_, m) in shard_manifests(storage, run) {
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
