//! ttcbench results: the Parquet store every run writes to, and everything computed from it.
//!
//! - [`store`]: crash-safe, incremental Parquet store (`results/run_id=<id>/part-NNNNN.parquet` + `_run.json`),
//!   [`RecordSink`] / [`RunWriter`] for the runner, readers that skip corrupt parts, `--resume` keys, compaction.
//! - [`columns`]: the one mapping between [`ttc_types::Record`] and Arrow columns (the schema).
//!
//! The column layout is documented in `docs/results-schema.md`.

pub mod analysis;
pub mod columns;
pub mod manifest;
pub mod metrics;
mod parts;
pub mod sink;
pub mod stats;
pub mod store;
#[doc(hidden)]
pub mod testutil;
pub mod writer;

pub use manifest::{RunManifest, RunMeta, RunStatus};
pub use sink::RecordSink;
pub use store::{CompactReport, LoadedRun, ResultsStore, RunInfo, RunSelection};
pub use writer::{RunWriter, WriterOptions};
