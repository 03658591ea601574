//! Where finished records go: the runner's collector and `ttc serve` push them, the store's `RunWriter`
//! implements it (one trait for both sides, so the store needs no adapter of its own).

use std::sync::{Arc, Mutex};
use ttc_types::Record;

pub trait RecordSink: Send {
    /// Accepts one finished record (its final attempt). May write to disk when a flush is due.
    fn push(&mut self, record: Record) -> anyhow::Result<()>;
    /// Makes every record pushed so far durable.
    fn flush(&mut self) -> anyhow::Result<()>;
    /// The run is over: make everything durable and mark the run complete.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush()
    }
}

/// In-memory sink, for tests and dry runs.
impl RecordSink for Vec<Record> {
    fn push(&mut self, record: Record) -> anyhow::Result<()> {
        Vec::push(self, record);
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl<S: RecordSink + ?Sized> RecordSink for Box<S> {
    fn push(&mut self, record: Record) -> anyhow::Result<()> {
        (**self).push(record)
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        (**self).flush()
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        (**self).finish()
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
