//! `POST /v1/completions`, OpenAI's legacy completions API, for raw prompts (no chat template) and prompt
//! log-likelihoods: with `echo: true` and `logprobs: K` the reply scores every prompt token under a
//! teacher-forced forward (entry i = log p(token i | tokens before it), the first `null`) followed by the
//! generated tokens' logprobs. That is what lm-evaluation-harness's `local-completions` model sends for
//! loglikelihood tasks (`echo: true, logprobs: 1, max_tokens: 1, temperature: 0`, prompts as token ids).
//!
//! `prompt` may be a string, a list of strings, a list of token ids or a list of such lists; each prompt is one
//! choice (`index` in order). Strings are tokenized as-is (no chat template, no BOS). Streaming is not offered
//! here (400 naming `stream`); use `/v1/chat/completions` for streamed generation.

use crate::error::ApiError;
use crate::generation::{ActiveGuard, Generation, Step};
use crate::logprobs::Legacy;
use crate::request::{check_sampling, check_top, parse_json, seed_of, StopField, MAX_STOPS};
use crate::served::Endpoint;
use crate::server::{AppState, Refused, Target};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Instant;
use ttc_contract::{BackendError, GenRequest};
use ttc_types::{TokenLogprob, TokenRef};

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: u64 = 16;

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptField,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub stop: Option<StopField>,
    /// Return the prompt before the completion (and, with `logprobs`, its tokens' logprobs).
    #[serde(default)]
    pub echo: Option<bool>,
    /// Logprob alternatives per token, 0..=20; absent: no logprobs.
    #[serde(default)]
    pub logprobs: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub n: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// A checked request: one token list per prompt, and what to return.
struct Checked {
    prompts: Vec<Vec<u32>>,
    request: GenRequest,
    stops: Vec<String>,
    echo: bool,
    logprobs: Option<u32>,
}

fn check(req: CompletionRequest, target: &Target, state: &AppState) -> Result<Checked, ApiError> {
    if req.stream == Some(true) {
        return Err(ApiError::bad_request(
            "stream: /v1/completions answers with one JSON object here; stream with /v1/chat/completions",
            Some("stream"),
        ));
    }
    if let Some(n) = req.n.filter(|&n| n != 1) {
        return Err(ApiError::bad_request(format!("n = {n}: this server generates one choice per prompt"), Some("n")));
    }
    let temperature = check_sampling(req.temperature, req.top_p)?;
    let logprobs = req.logprobs.map(|k| check_top(k, "logprobs")).transpose()?;
    let stops = match req.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stops.len() > MAX_STOPS {
        return Err(ApiError::bad_request(format!("stop: at most {MAX_STOPS} sequences, got {}", stops.len()), Some("stop")));
    }
    let tok = &state.engine().tokenizer;
    let encode = |t: &str| tok.encode(t).map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}"), Some("prompt")));
    let prompts: Vec<Vec<u32>> = match req.prompt {
        PromptField::Text(t) => vec![encode(&t)?],
        PromptField::Texts(ts) => ts.iter().map(|t| encode(t)).collect::<Result<_, _>>()?,
        PromptField::Tokens(ids) => vec![ids],
        PromptField::TokenLists(l) => l,
    };
    if prompts.is_empty() {
        return Err(ApiError::bad_request("prompt: at least one prompt is required", Some("prompt")));
    }
    let vocab = tok.vocab_size();
    let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let context = state.engine().context_length() as u64;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ApiError::bad_request(format!("prompt[{i}] is empty"), Some("prompt")));
        }
        if let Some(bad) = p.iter().find(|&&t| t as usize >= vocab) {
            return Err(ApiError::bad_request(format!("prompt[{i}]: token id {bad} is outside the vocabulary (size {vocab})"), Some("prompt")));
        }
        let len = p.len() as u64;
        if u128::from(len) + u128::from(max_tokens) > u128::from(context) {
            return Err(ApiError::bad_request(
                format!("This model's maximum context length is {context} tokens; you requested {} tokens ({len} in prompt[{i}], {max_tokens} in the completion).", u128::from(len) + u128::from(max_tokens)),
                Some("max_tokens"),
            )
            .with_code("context_length_exceeded"));
        }
    }
    let request = GenRequest {
        messages: Vec::new(),
        policy: target.policy.clone(),
        model: target.model.clone(),
        max_tokens: u32::try_from(max_tokens).unwrap_or(u32::MAX),
        temperature,
        top_p: req.top_p,
        seed: Some(seed_of(req.seed)),
        extra_body: Default::default(),
        logprobs,
        tags: Default::default(),
    };
    Ok(Checked { prompts, request, stops, echo: req.echo.unwrap_or(false), logprobs })
}

/// Handles one `/v1/completions` body: the policy that served it (an A/B arm for the base model, with `ab_key`
/// the sticky key) and the reply. Each prompt is one generation and, with a recorder, one record.
pub(crate) async fn handle(state: &AppState, body: &[u8], ab_key: Option<&[u8]>) -> Result<(Target, Value), Refused> {
    let req: CompletionRequest = parse_json(body).map_err(|e| Refused::at(e, &state.target_of_body(body, ab_key)))?;
    let target = state.target(&req.model, ab_key);
    let Some(t) = target.clone() else {
        return Err(Refused::at(ApiError::unknown_model(&req.model, &state.catalog().ids()), &None));
    };
    let c = check(req, &t, state).map_err(|e| Refused::at(e, &target))?;
    let Some(active) = ActiveGuard::admit(state.counters().clone(), state.queue_limit()) else {
        state.counters().rejected.fetch_add(1, Ordering::SeqCst);
        return Err(Refused::at(ApiError::queue_full(state.max_queue()), &target));
    };
    // Failed while generating: the generation's record tells of it.
    let failed = |error: ApiError| Refused { error, target: target.clone(), recorded: true };
    let tok = &state.engine().tokenizer;
    let mut choices = Vec::with_capacity(c.prompts.len());
    let (mut prompt_tokens, mut completion_tokens, mut cached_tokens) = (0u64, 0u64, 0u64);
    let mut guard = Some(active);
    for (index, prompt) in c.prompts.iter().enumerate() {
        let score = c.logprobs.filter(|_| c.echo).map(|k| k as usize);
        let sent = Instant::now();
        let (gen, scores) = state
            .backend()
            .generate_tokens(prompt.clone(), &c.request, score)
            .map_err(|e| Refused::at(ApiError::from_backend(&e), &target))?;
        // One admission covers the whole request; each prompt's generation holds it in turn.
        let active = guard.take().unwrap_or_else(|| ActiveGuard::admit(state.counters().clone(), usize::MAX).expect("unbounded"));
        let tap = state.recorder().map(|r| r.begin(t.policy.clone(), t.model.clone(), Endpoint::Completions, sent));
        let mut gen = Generation::new(gen, c.stops.clone(), active).with_record(tap);
        let scored: Option<Vec<Option<TokenLogprob>>> = match scores {
            Some(rx) => {
                let r = rx.await.unwrap_or_else(|_| Err(BackendError::Engine("the engine stopped before scoring the prompt".into())));
                match r {
                    Ok(s) => Some(s),
                    Err(e) => {
                        gen.fail(e.clone());
                        return Err(failed(ApiError::from_backend(&e)));
                    }
                }
            }
            None => None,
        };
        let (mut text, mut lps, mut reason, mut n_out) = (String::new(), Vec::new(), "length", 0u32);
        while let Some(step) = gen.next().await {
            match step {
                Step::Text(piece, l) => {
                    text.push_str(&piece);
                    lps.extend(l);
                }
                Step::Failed(e) => return Err(failed(e)),
                Step::Done { reason: r, completion_tokens, cached_tokens: cached } => {
                    reason = r;
                    n_out = completion_tokens;
                    cached_tokens += u64::from(cached);
                }
            }
        }
        prompt_tokens += prompt.len() as u64;
        completion_tokens += u64::from(n_out);
        let mut logprobs = Value::Null;
        if c.logprobs.is_some() {
            let mut legacy = Legacy::default();
            if let Some(scored) = &scored {
                for (&t, s) in prompt.iter().zip(scored) {
                    legacy.push(tok, &TokenRef::Id(t), s.as_ref());
                }
            }
            for l in &lps {
                legacy.push(tok, &l.chosen.token, Some(l));
            }
            logprobs = legacy.to_json();
        }
        let full = if c.echo { tok.decode(prompt, false) + &text } else { text };
        choices.push(json!({ "text": full, "index": index, "logprobs": logprobs, "finish_reason": reason }));
    }
    let reply = json!({
        "id": format!("cmpl-{:024x}", rand::random::<u128>() >> 32),
        "object": "text_completion",
        "created": crate::server::unix_now(),
        "model": c.request.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": { "cached_tokens": cached_tokens },
        },
    });
    Ok((t, reply))
}
