//! ttcbench runner: run configuration and plan, the async load generator (arrivals, rate limit,
//! retries), the backend trait with its OpenAI-compatible SSE implementation, and `ttc run`.
//!
//! Data flow: [`config::RunConfig`] -> [`plan::Plan`] -> [`runner::Runner`] (drives a
//! [`backend::Backend`]) -> [`record::build_record`] -> [`collect::Collector`] (scoring, progress, sink).

pub mod backend;
pub mod capacity;
pub mod collect;
pub mod config;
pub mod eval_adapter;
pub mod fidelity;
pub mod load;
pub mod plan;
pub mod progress;
pub mod record;
pub mod rounds;
pub mod run;
pub mod runner;
pub mod shard;
pub mod scoring;
pub mod sink;
pub mod tally;
pub mod tokens;

pub use backend::{Backend, BackendError, BackendInfo, ChatMessage, GenRequest, Generation};
pub use config::{RunConfig, RunOptions};
pub use run::{run, run_capacity, run_with, Hooks, RunOutcome};
