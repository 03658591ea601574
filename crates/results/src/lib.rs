//! ttcbench results: the Parquet store every run writes to, and everything computed from it.
//!
//! - [`store`]: crash-safe, incremental Parquet store (`results/run_id=<id>/part-NNNNN.parquet` + `_run.json`),
//!   [`RecordSink`] / [`RunWriter`] for the runner, readers that skip corrupt parts, `--resume` keys, compaction.
//! - [`storage`]: where the store keeps its files, a local directory or an object store (`s3://bucket/prefix`).
//! - [`columns`]: the one mapping between [`ttc_types::Record`] and Arrow columns (the schema).
//! - [`analysis`]: per policy x suite aggregates (percentiles, throughput, goodput, quality CIs, Pareto);
//!   the statistics are `ttc_stats` (shared with `ttc score`), [`metrics`] is the metric registry (names,
//!   directions).
//! - [`kpi`]: KPI gates; [`compare`]: paired A/B comparison; [`report`] + [`svg`]: the report; [`render`]:
//!   tables, CSV, JSON.
//! - [`cmd`]: `ttc summary | report | check | compare | compact | route fit` as option structs + `execute`
//!   functions (the flags and exit codes live in `ttc-cli`).
//!
//! The column layout is documented in `docs/results-schema.md`.

pub mod analysis;
pub mod capacity;
pub mod cmd;
pub mod columns;
pub mod compare;
pub mod cost;
mod error;
pub mod kpi;
pub mod load_render;
pub mod load_report;
pub mod manifest;
pub mod metrics;
pub mod recommend;
pub mod render;
pub mod route_fit;
pub mod report;
mod parts;
pub mod shard;
pub mod sink;
pub mod storage;
pub mod store;
pub mod svg;
#[doc(hidden)]
pub mod testutil;
pub mod writer;

pub use error::InputError;
pub use manifest::{RunManifest, RunMeta, RunStatus};
pub use sink::RecordSink;
pub use shard::{Shard, ShardGap, ShardInfo};
pub use store::{CompactReport, LoadedRun, ResultsStore, RunInfo, RunSelection};
pub use writer::{RunWriter, WriterOptions};

pub use cmd::check::{check_report_only, CheckOptions};
pub use cmd::compact::CompactOptions;
pub use cmd::compare::CompareOptions;
pub use cmd::route::FitOptions;
pub use cmd::report::{write_markdown_report, ReportCommandOptions};
pub use cmd::summary::SummaryOptions;

