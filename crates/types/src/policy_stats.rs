//! Per-request internals reported by TTC policies. One flat struct of optional fields so that every
//! family maps to nullable columns in the results store; a policy fills only the fields it knows.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyStats {
    // Speculative decoding.
    /// Draft tokens proposed to the verifier.
    pub drafted_tokens: Option<u64>,
    /// Draft tokens the verifier accepted.
    pub accepted_tokens: Option<u64>,
    /// accepted / drafted.
    pub acceptance_rate: Option<f64>,
    /// (accepted + corrections) / verification steps: tokens emitted per target forward (EAGLE's tau).
    pub mean_accepted_per_step: Option<f64>,
    /// Target forwards that verified a draft.
    pub verification_steps: Option<u64>,

    // Early exit.
    /// Mean number of layers run per generated token (1-based layer count).
    pub mean_exit_layer: Option<f64>,
    /// Share of the model's layers skipped, averaged over generated tokens.
    pub layers_skipped_share: Option<f64>,
    /// Tokens that exited after each layer count: index i = tokens that ran i+1 layers.
    pub exit_layer_histogram: Option<Vec<u32>>,

    // Dynamic token pruning.
    /// Mean size of the candidate set left after pruning.
    pub mean_candidates: Option<f64>,
    /// Mean entropy (nats) of the next-token distribution.
    pub mean_entropy: Option<f64>,
    /// Time spent in the sampler per token, microseconds.
    pub sampler_us_per_token: Option<f64>,

    // Adaptive KV-cache shrinking.
    pub kv_peak_bytes: Option<u64>,
    pub kv_final_bytes: Option<u64>,
    /// What the cache would hold without shrinking.
    pub kv_baseline_bytes: Option<u64>,
    pub kv_evicted_entries: Option<u64>,

    // Batching.
    /// Mean number of active sequences in the engine steps this request took part in.
    pub mean_batch_occupancy: Option<f64>,
    /// Time the request waited in the engine queue before its prefill, seconds.
    pub queue_wait_s: Option<f64>,
    /// Engine steps this request took part in.
    pub batch_steps: Option<u64>,

    // Routing (router and adaptive policies).
    /// The policy a router chose and the features it chose on; None for every other policy.
    pub route: Option<Route>,
}

impl PolicyStats {
    /// The set fields as (name, value) pairs, for tables; lists are skipped.
    pub fn numeric_fields(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        macro_rules! push {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { out.push((stringify!($f), v as f64)); } )* };
        }
        push!(
            drafted_tokens, accepted_tokens, acceptance_rate, mean_accepted_per_step, verification_steps,
            mean_exit_layer, layers_skipped_share, mean_candidates, mean_entropy, sampler_us_per_token,
            kv_peak_bytes, kv_final_bytes, kv_baseline_bytes, kv_evicted_entries, mean_batch_occupancy,
            queue_wait_s, batch_steps
        );
        out
    }
}

/// Which policy a router (or an adaptive policy) ran for one request, and the request features it decided on
/// (columns `routed_policy`, `route_rule`, `route_*`; docs/policies.md "router").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// The policy that decoded the request.
    pub policy: String,
    /// What chose it: `rules[i]` (the first rule that held), `default`, or an adaptive policy's mode.
    pub rule: String,
    /// Prompt tokens after the chat template.
    pub prompt_tokens: Option<u32>,
    /// Share of the prompt's token trigrams seen earlier in the prompt (a predictor of n-gram drafting).
    pub ngram_repetition: Option<f64>,
    /// Entropy (nats) of the full model's first next-token distribution; only computed when a rule reads it.
    pub first_entropy: Option<f64>,
    /// Requests waiting or running when an adaptive policy decided (its load signal).
    pub load: Option<f64>,
}
