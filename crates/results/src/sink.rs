//! Where the runner sends finished records. The store's [`crate::RunWriter`] implements it; tests can use a
//! `Vec<Record>`.

use anyhow::Result;
use ttc_types::Record;

pub trait RecordSink {
    /// Accepts one finished record (its final attempt). May write to disk when a flush is due.
    fn push(&mut self, record: Record) -> Result<()>;
    /// Makes every record pushed so far durable.
    fn flush(&mut self) -> Result<()>;
}

/// In-memory sink, for tests and dry runs.
impl RecordSink for Vec<Record> {
    fn push(&mut self, record: Record) -> Result<()> {
        Vec::push(self, record);
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<S: RecordSink + ?Sized> RecordSink for Box<S> {
    fn push(&mut self, record: Record) -> Result<()> {
        (**self).push(record)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}
