//! Types shared by every ttcbench crate.
//!
//! This crate is the contract between the floors of the workspace: the engine and the HTTP backend both
//! produce [`GenEvent`]s, the runner turns them into a [`Record`] with [`timing::Timings`], and the results
//! store persists records. It has no heavy dependencies so every crate can use it.

pub mod event;
pub mod fidelity;
pub mod logprob;
pub mod metric;
pub mod policy_stats;
pub mod record;
pub mod suite;
pub mod timing;
pub mod yaml;

pub use event::{FinishReason, GenEvent, Usage};
pub use fidelity::{fidelity_direction, Fidelity, FIDELITY_METRICS, TEACHER_FORCED_METRICS};
pub use logprob::{Logprob, TokenLogprob, TokenRef, MAX_TOP_LOGPROBS};
pub use metric::{quality_direction, Direction, PRIMARY_METRIC_PRIORITY};
pub use policy_stats::{PolicyStats, Route};
pub use suite::Suite;
pub use record::{LoadTag, Record, RecordStatus, TokenCountSource, QUALITY_METRICS, SCHEMA_VERSION};
pub use timing::Timings;
