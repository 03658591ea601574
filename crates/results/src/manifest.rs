//! `_run.json`: a small manifest beside a run's part files. Tools that read the Parquet dataset ignore it
//! (leading underscore), while `ttc` uses it to order runs, show planned vs done, and know whether a run
//! finished or was interrupted (a `running` manifest with no live writer = crashed, resumable).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::Path;

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
        let tmp = path.with_file_name(format!(".{MANIFEST_FILE}.tmp"));
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

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
