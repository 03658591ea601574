//! Appends one run's records as small part files: every `flush_records` records or `flush_interval`,
//! whichever comes first. A crash loses at most the unflushed buffer.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ttc_types::Record;

use crate::manifest::{manifest_key, now_rfc3339, RunManifest, RunStatus};
use crate::shard::Shard;
use crate::parts;
use crate::sink::RecordSink;
use crate::storage::Storage;

#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Flush when this many records are buffered.
    pub flush_records: usize,
    /// Flush on the next push (or `flush_if_due`) once this much time has passed since the last flush.
    pub flush_interval: Duration,
    /// fsync each part (and its directory entry) so flushed records also survive power loss or an OS crash.
    /// A process crash (kill -9) loses nothing flushed either way; turning this off only trades durability
    /// against machine failure for speed (each fsync costs milliseconds). Object stores ignore it: a PUT is
    /// durable once it returns.
    pub fsync: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { flush_records: 64, flush_interval: Duration::from_secs(5), fsync: true }
    }
}

pub struct RunWriter {
    storage: Arc<dyn Storage>,
    /// The run's folder key, `run_id=<id>`.
    run: String,
    /// The same as a path, for messages (an object store's is its URL: `s3://bucket/prefix/run_id=<id>`).
    run_dir: PathBuf,
    manifest: RunManifest,
    buffer: Vec<Record>,
    next_part: u32,
    last_flush: Instant,
    opts: WriterOptions,
    finished: bool,
}

impl RunWriter {
    pub(crate) fn new(storage: Arc<dyn Storage>, run: String, manifest: RunManifest, next_part: u32, opts: WriterOptions) -> Result<Self> {
        manifest.write_atomic(storage.as_ref(), &manifest_key(&run, manifest.shard.as_ref().map(|s| s.shard)), true)?;
        let run_dir = storage.root().join(&run);
        Ok(RunWriter { storage, run, run_dir, manifest, buffer: Vec::new(), next_part, last_flush: Instant::now(), opts, finished: false })
    }

    pub fn run_id(&self) -> &str {
        &self.manifest.meta.run_id
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Records pushed but not yet on disk.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    pub fn manifest(&self) -> &RunManifest {
        &self.manifest
    }

    /// The shard this writer writes (None: an unsharded run).
    pub fn shard(&self) -> Option<Shard> {
        self.manifest.shard.as_ref().map(|s| s.shard)
    }

    fn write_manifest(&self, sync: bool) -> Result<()> {
        self.manifest.write_atomic(self.storage.as_ref(), &manifest_key(&self.run, self.shard()), sync)
    }

    /// Flushes if the size or time threshold is reached; a runner with long gaps between records can call
    /// this from a timer. Returns whether it flushed.
    pub fn flush_if_due(&mut self) -> Result<bool> {
        let due = self.buffer.len() >= self.opts.flush_records.max(1)
            || (!self.buffer.is_empty() && self.last_flush.elapsed() >= self.opts.flush_interval);
        if due {
            self.flush_buffer()?;
        }
        Ok(due)
    }

    fn flush_buffer(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.buffer.is_empty() {
            return Ok(());
        }
        let (index, _) =
            parts::write_part(self.storage.as_ref(), &self.run, self.shard(), self.next_part, &self.buffer, &[], self.opts.fsync)?;
        self.next_part = index + 1;
        self.manifest.records_written += self.buffer.len() as u64;
        self.manifest.updated_at = now_rfc3339();
        self.buffer.clear();
        self.write_manifest(false)
    }

    /// Flushes what is left and marks the run finished in its manifest.
    pub fn finish(mut self) -> Result<RunManifest> {
        self.flush_buffer()?;
        self.manifest.status = RunStatus::Finished;
        self.manifest.updated_at = now_rfc3339();
        self.write_manifest(true)?;
        self.finished = true;
        Ok(self.manifest.clone())
    }
}

impl RecordSink for RunWriter {
    fn push(&mut self, record: Record) -> Result<()> {
        if record.run_id != self.manifest.meta.run_id {
            bail!(
                "record for run `{}` pushed to the writer of run `{}` (policy {}, sample {})",
                record.run_id,
                self.manifest.meta.run_id,
                record.policy,
                record.sample_id
            );
        }
        self.buffer.push(record);
        self.flush_if_due()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.flush_buffer()
    }
}

impl Drop for RunWriter {
    /// Dropped without `finish` (error path, panic): keep what was measured; the manifest stays `running`,
    /// which is how a later `--resume` knows the run is incomplete.
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.flush_buffer() {
                eprintln!("warning: run {}: could not flush {} records: {e:#}", self.run_id(), self.buffer.len());
            }
        }
    }
}
