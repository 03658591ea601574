//! Where finished records go. Same shape as the results crate's `RecordSink` (push as records complete,
//! flush to make them durable), which the store's `RunWriter` implements.

use std::sync::{Arc, Mutex};
use ttc_types::Record;

pub trait RecordSink: Send {
    fn push(&mut self, record: Record) -> anyhow::Result<()>;
    fn flush(&mut self) -> anyhow::Result<()>;
    /// The run is over: make everything durable and mark the run complete.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush()
    }
}

/// Keeps records in memory behind a shared handle (tests, benchmarks, dry runs).
#[derive(Clone, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<Record>>>);

impl MemorySink {
    pub fn records(&self) -> Vec<Record> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl RecordSink for MemorySink {
    fn push(&mut self, record: Record) -> anyhow::Result<()> {
        self.0.lock().map_err(|_| anyhow::anyhow!("memory sink poisoned"))?.push(record);
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

