//! One row of the results store: one request (its final attempt) under one policy on one sample.

use crate::{Fidelity, PolicyStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a column is added, removed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

pub use crate::metric::QUALITY_METRICS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Ok,
    Error,
}

/// Where `output_tokens` / `prompt_tokens` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCountSource {
    /// Counted by the embedded engine (exact).
    Engine,
    /// Taken from the server's `usage` object.
    Usage,
    /// Counted with our tokenizer on the received text (approximate for a different model).
    Tokenizer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    // Run identity.
    pub run_id: String,
    /// Run start, RFC 3339 UTC.
    pub run_started_at: String,
    pub config_hash: String,
    pub project_version: String,
    pub host: String,
    // Backend and model.
    pub backend: String,
    /// Base URL of an HTTP backend, never with credentials.
    pub base_url: Option<String>,
    pub model: String,
    /// Weight format of the embedded engine (`q8_0`, `f32`, ...); None for HTTP backends.
    pub weights: Option<String>,
    // What ran.
    pub policy: String,
    pub algorithm: String,
    /// The policy's parameters as JSON text.
    pub params_json: String,
    pub suite: String,
    pub task: Option<String>,
    pub sample_id: String,
    // Outcome.
    pub status: RecordStatus,
    /// Stable error label (`timeout`, `http_429`, `http_5xx`, `connect`, `stream_cut`, `http_4xx`, `engine`, ...).
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
    /// Seconds spent waiting in retry backoff, apart from service time.
    pub backoff_s: f64,
    // Tokens.
    pub prompt_tokens: Option<u32>,
    /// Prompt tokens served from a prefix cache (the engine's, or a server's `prompt_tokens_details.cached_tokens`);
    /// None where the backend reported no usage.
    #[serde(default)]
    pub cached_prompt_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    pub token_count_source: Option<TokenCountSource>,
    // Timings of the final attempt (seconds, monotonic clock).
    /// Seconds from the run's start to this request's (final attempt's) send.
    pub start_offset_s: f64,
    pub ttft_s: Option<f64>,
    pub e2e_s: Option<f64>,
    pub tpot_s: Option<f64>,
    pub itl_mean_s: Option<f64>,
    pub itl_p50_s: Option<f64>,
    pub itl_p99_s: Option<f64>,
    /// Arrival time of each content chunk, seconds since send.
    pub token_times_s: Vec<f64>,
    pub throughput_tok_s: Option<f64>,
    pub finish_reason: Option<String>,
    /// Natural-log probability of each output token as the model scored it, in order; None unless the run asked
    /// for logprobs (`generation.logprobs`) and the backend returned them.
    pub token_logprobs: Option<Vec<f32>>,
    // Text.
    pub prediction: String,
    pub reference: Option<String>,
    // Quality: names from QUALITY_METRICS; others in extra_metrics.
    pub metrics: BTreeMap<String, f64>,
    pub extra_metrics: BTreeMap<String, f64>,
    pub policy_stats: PolicyStats,
    /// Fidelity to the full model and to the baseline's output (columns `fidelity_*`).
    #[serde(default)]
    pub fidelity: Fidelity,
    /// Where the request sits on the load axis (a sweep level or a capacity probe); empty otherwise.
    #[serde(default)]
    pub load: LoadTag,
}

/// The load a request was measured under (issue 16). All fields are None in a run without a load sweep or a
/// capacity search, where requests are sent by the run's `load:` settings alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadTag {
    /// The measured phase: `sweep-NN` or `capacity-NN` (NN = its position in the run). Each phase is one policy
    /// at one load level, alone on the machine.
    pub phase: Option<String>,
    /// Offered arrival rate of an open loop, requests per second.
    pub offered_rate: Option<f64>,
    /// Clients of a closed loop.
    pub concurrency_level: Option<u32>,
    /// Seconds from arrival until the backend took the request (first-come-first-served queue); included in
    /// TTFT and E2E.
    pub queue_s: Option<f64>,
    /// The SLO a capacity probe was judged against, as written (`p95_e2e_s<=2,error_rate<0.01`).
    pub slo: Option<String>,
    /// Why a capacity probe was flagged as saturated (not counted as meeting the SLO), if it was.
    pub saturation: Option<String>,
}

impl LoadTag {
    /// True for the requests of a capacity search.
    pub fn is_capacity(&self) -> bool {
        self.phase.as_deref().is_some_and(|p| p.starts_with("capacity"))
    }

    /// True for the requests of a load sweep.
    pub fn is_sweep(&self) -> bool {
        self.phase.as_deref().is_some_and(|p| p.starts_with("sweep"))
    }

    /// `2 r/s`, `c=4`, or None: the level as shown in tables.
    pub fn level_label(&self) -> Option<String> {
        match (self.offered_rate, self.concurrency_level) {
            (Some(r), _) => Some(format!("{} r/s", fmt_rate(r))),
            (None, Some(c)) => Some(format!("c={c}")),
            _ => None,
        }
    }
}

/// A rate without trailing zeros: 0.5, 2, 1.25.
pub fn fmt_rate(r: f64) -> String {
    let s = format!("{r:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Record {
    /// The key `--resume` uses to know a request was already measured.
    pub fn key(&self) -> (String, String, String) {
        (self.policy.clone(), self.suite.clone(), self.sample_id.clone())
    }
}
