//! Log-probabilities of generated tokens, as the model scored them when it chose them.
//!
//! The engine knows tokens by id; an OpenAI-compatible server names them by their text, so a token is either.
//! Values are natural logarithms of the softmax of the raw logits row the token was chosen from (before any
//! temperature or pruning), the convention of OpenAI's `logprobs` and vLLM's default `logprobs_mode`.

use serde::{Deserialize, Serialize};

/// Most alternatives a request may ask for (OpenAI's `top_logprobs` limit, vLLM's default `max_logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A token as its producer names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRef {
    /// A vocabulary id (the embedded engine).
    Id(u32),
    /// The token's text (a remote server's `token` field).
    Text(String),
}

/// One token and its log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logprob {
    pub token: TokenRef,
    pub logprob: f32,
}

/// The chosen token's log-probability and the `top` most likely tokens of the same row, most likely first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub chosen: Logprob,
    pub top: Vec<Logprob>,
}
