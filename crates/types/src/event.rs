//! The timed event stream every backend produces for one generation request.

use serde::{Deserialize, Serialize};
use crate::logprob::TokenLogprob;
use std::time::Instant;

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Stop,
    /// A configured stop string appeared in the output.
    StopString,
    /// `max_tokens` was reached.
    Length,
    /// The request was cancelled (client went away, run aborted).
    Cancelled,
}

impl FinishReason {
    /// The label OpenAI-compatible APIs use for this reason.
    pub fn openai_label(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::StopString => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens whose KV entries came from a prefix cache (OpenAI's
    /// `usage.prompt_tokens_details.cached_tokens`); 0 when nothing was reused or nobody said.
    #[serde(default)]
    pub cached_prompt_tokens: u32,
}

/// One event of a streaming generation. `at` is taken from the monotonic clock when the event was produced
/// (engine) or received (HTTP client), so latencies are differences of `Instant`s.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// A chunk of generated content. The engine sends one per token; an HTTP server may pack several tokens
    /// into one chunk, in which case `token_ids` is empty and `n_tokens` is unknown (None).
    Content {
        at: Instant,
        text: String,
        token_ids: Vec<u32>,
        /// Log-probabilities of this chunk's tokens, in order, when the request asked for them (else empty).
        logprobs: Vec<TokenLogprob>,
    },
    /// Reasoning content (`reasoning_content` deltas of some servers); counted as output but kept apart.
    Reasoning { at: Instant, text: String },
    /// The generation finished. `usage` is present when the backend knows the exact counts.
    Finished {
        at: Instant,
        reason: FinishReason,
        usage: Option<Usage>,
    },
}

impl GenEvent {
    pub fn at(&self) -> Instant {
        match self {
            GenEvent::Content { at, .. } | GenEvent::Reasoning { at, .. } | GenEvent::Finished { at, .. } => *at,
        }
    }
}
