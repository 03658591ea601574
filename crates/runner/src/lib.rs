//! ttcbench runner: run configuration and plan, the async load generator (arrivals, rate limit,
//! retries), the backend trait with its OpenAI-compatible SSE implementation, and `ttc run`.
//!
//! Data flow: [`config::RunConfig`] -> [`plan::Plan`] -> [`loadgen::Runner`] (drives a
//! [`backend::Backend`]) -> [`ttc_contract::build_record`] -> [`collect::Collector`] (scoring, progress, sink).

pub mod backend;
pub mod capacity;
pub mod collect;
pub mod config;
pub mod eval_adapter;
pub mod fidelity;
pub mod load;
pub mod plan;
pub mod progress;
pub mod rounds;
pub mod run;
pub mod loadgen;
pub mod shard;
pub mod scoring;
pub mod tally;

// The record builder, the sink and token counting moved to `ttc-contract` (`ttc serve` shares them); the old
// paths stay.
pub use ttc_contract::{record, sink, tokens};

pub use backend::{Backend, BackendError, BackendInfo, ChatMessage, GenRequest};
pub use config::{RunConfig, RunOptions};
pub use run::{run, run_capacity, run_with, Hooks, RunOutcome};
