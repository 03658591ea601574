//! The one trait every backend implements: a request in, a stream of timed [`GenEvent`](crate::GenEvent)s out (the shape of
//! text-generation-inference's `router/src/infer/mod.rs` `Backend::schedule`). The runner and `ttc serve` build
//! the record from these events with the same code for every backend ([`crate::record`]).
//!
//! Implementing a backend:
//! - `generate` returns `Err` for failures before any output (HTTP status, connect error, engine refusal);
//! - the stream yields `Ok(GenEvent::Content/Reasoning)` as output arrives, with `at` taken when the
//!   token was produced (engine) or received (HTTP), and ends with exactly one `Ok(GenEvent::Finished)`, which
//!   carries the usage and the policy's internals (`PolicyStats`) of the request;
//! - a stream that ends without `Finished` is a cut stream (retried); an `Err` item ends the attempt;
//! - when the runner drops the stream (timeout, abort), the backend must stop work for that request: with
//!   [`crate::event_channel`] the producer sees `EventSender::is_closed()` / a failed send.

use crate::event::EventStream;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use ttc_policy::Policy;
use ttc_types::{Fidelity, MAX_TOP_LOGPROBS};

/// One chat message of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// Everything a backend needs for one generation. Sampling values are already resolved (run defaults,
/// then the policy's `remote` overrides); [`GenRequest::validate`] checks what every backend relies on.
///
/// Not the engine's `ttc_engine::GenRequest`: that one is the engine's internal job (prompt token ids, a
/// `Cancel`), which the embedded backend builds from this one.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub messages: Vec<ChatMessage>,
    /// The policy to apply: the embedded engine runs `algorithm` with `params`; HTTP backends use
    /// `remote` (model name, sampling values, `extra_body`).
    pub policy: Arc<Policy>,
    /// Model name sent to an HTTP backend (policy's `remote.model`, else the backend's model).
    pub model: String,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    /// Extra top-level JSON fields for an HTTP request body (policy `remote.extra_body`).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Ask for each output token's logprob and this many alternatives (`generation.logprobs`); None: don't.
    pub logprobs: Option<u32>,
    /// The sample's suite and task, which a router's rules may test (empty for served traffic).
    pub tags: ttc_policy::RouteTags,
}

impl GenRequest {
    /// The values every backend relies on: a finite temperature (<= 0 is greedy), `top_p` in (0, 1], at most
    /// [`MAX_TOP_LOGPROBS`] logprob alternatives. The runner's config and the server's request parser reject
    /// such values first with their own messages; this is the backends' last line.
    pub fn validate(&self) -> Result<(), BackendError> {
        let bad = |m: String| Err(BackendError::InvalidRequest(m));
        if !self.temperature.is_finite() {
            return bad(format!("temperature must be a finite number, got {}", self.temperature));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad(format!("top_p must be in (0, 1], got {p}"));
            }
        }
        if let Some(k) = self.logprobs {
            if k as usize > MAX_TOP_LOGPROBS {
                return bad(format!("at most {MAX_TOP_LOGPROBS} logprob alternatives, got {k}"));
            }
        }
        Ok(())
    }
}

/// What a backend says about itself, copied into every record.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    /// `embedded`, `openai`, `groq`, `scripted`, ...
    pub kind: String,
    /// HTTP base URL, redacted (`ttc_runner::backend::endpoint::redact`): no userinfo or query values.
    pub base_url: Option<String>,
    /// The model every request uses unless a policy names another.
    pub model: String,
    /// Weight format of an embedded engine.
    pub weights: Option<String>,
    /// True when `Finished.usage` is counted by our own engine (TokenCountSource::Engine), false when it
    /// comes from a server's `usage` object.
    pub usage_is_engine: bool,
}

/// A failed attempt. `class()` is the stable label stored in `Record::error_class`.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BackendError {
    #[error("HTTP {status} from {url}: {message}")]
    Http { status: u16, url: String, message: String, retry_after: Option<Duration> },
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("transport error talking to {url}: {message}")]
    Transport { url: String, message: String },
    #[error("stream ended before the generation finished ({0})")]
    StreamCut(String),
    #[error("server reported an error mid-stream: {0}")]
    StreamError(String),
    #[error("no complete answer within the {0:?} request timeout")]
    Timeout(Duration),
    #[error("malformed response: {0}")]
    Protocol(String),
    #[error("engine error: {0}")]
    Engine(String),
    #[error("bad request: {0}")]
    InvalidRequest(String),
    /// A capacity probe gave up on a request that waited in the queue past its limit (the probe is saturated).
    #[error("not served: waited in the queue longer than {0:?} (saturated load phase)")]
    Abandoned(Duration),
}

impl BackendError {
    /// Stable label for `Record::error_class`.
    pub fn class(&self) -> &'static str {
        match self {
            BackendError::Http { status: 429, .. } => "http_429",
            BackendError::Http { status, .. } if *status >= 500 => "http_5xx",
            BackendError::Http { status, .. } if *status >= 400 => "http_4xx",
            BackendError::Http { .. } => "http_other",
            BackendError::Connect { .. } => "connect",
            BackendError::Transport { .. } => "transport",
            BackendError::StreamCut(_) => "stream_cut",
            BackendError::StreamError(_) => "stream_error",
            BackendError::Timeout(_) => "timeout",
            BackendError::Protocol(_) => "protocol",
            BackendError::Engine(_) => "engine",
            BackendError::InvalidRequest(_) => "invalid_request",
            BackendError::Abandoned(_) => "abandoned",
        }
    }

    /// Transient failures worth another attempt: 429, 5xx, connect and transport errors, timeouts, a
    /// stream cut before its finish, an error the server sent mid-stream. Other 4xx, malformed
    /// responses and engine errors would fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Http { status, .. } => *status == 429 || *status >= 500,
            BackendError::Connect { .. }
            | BackendError::Transport { .. }
            | BackendError::StreamCut(_)
            | BackendError::StreamError(_)
            | BackendError::Timeout(_) => true,
            BackendError::Protocol(_)
            | BackendError::Engine(_)
            | BackendError::InvalidRequest(_)
            | BackendError::Abandoned(_) => false,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[async_trait]
pub trait Backend: Send + Sync {
    fn info(&self) -> BackendInfo;
    /// Starts one attempt. See the module docs for the stream contract.
    async fn generate(&self, request: &GenRequest) -> Result<EventStream, BackendError>;

    /// Requests of `policy` this backend serves at the same time, if limited (an engine with N slots). The runner
    /// caps its concurrency to it, so requests do not sit in the backend's queue while their timeout runs.
    fn max_concurrency(&self, _policy: &Policy) -> Option<usize> {
        None
    }

    /// Teacher-forced fidelity of the request's policy to the full model (docs/metrics.md "Fidelity"), for a
    /// backend that runs the model itself; None when it cannot (HTTP backends). Called outside any measured
    /// request, so it may take the engine for as long as it needs.
    async fn fidelity(&self, _request: &GenRequest) -> Option<Result<Fidelity, BackendError>> {
        None
    }

    /// Switch on this backend's own prompt-prefix cache, holding at most `budget_bytes`, for the requests that
    /// follow (a capacity search after a cold plan, docs/load.md). Ok(true) when this call switched it on;
    /// Ok(false) when it was on already or the backend has none to switch (an HTTP server caches on its own terms).
    fn start_prefix_cache(&self, _budget_bytes: usize) -> Result<bool, BackendError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes_and_retryability() {
        let http = |status| BackendError::Http { status, url: "u".into(), message: "m".into(), retry_after: None };
        let cases: Vec<(BackendError, &str, bool)> = vec![
            (http(429), "http_429", true),
            (http(500), "http_5xx", true),
            (http(503), "http_5xx", true),
            (http(400), "http_4xx", false),
            (http(401), "http_4xx", false),
            (http(404), "http_4xx", false),
            (BackendError::Connect { url: "u".into(), message: "refused".into() }, "connect", true),
            (BackendError::StreamCut("eof".into()), "stream_cut", true),
            (BackendError::Timeout(Duration::from_secs(1)), "timeout", true),
            (BackendError::Protocol("bad json".into()), "protocol", false),
            (BackendError::Engine("oom".into()), "engine", false),
        ];
        for (e, class, retry) in cases {
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(e.is_retryable(), retry, "{e}");
        }
    }
}
