//! Builds the stored [`Record`] of one request from its final attempt's events. The same function serves
//! every backend and `ttc serve`'s served requests, so the embedded engine and HTTP endpoints get identical
//! definitions (timings from `ttc_types::Timings::from_token_times`).
//!
//! Token counts, in order of preference: the `usage` of the `Finished` event (source `engine` for the
//! embedded backend, `usage` for a server); token ids carried by every content event (`engine`); the
//! configured [`TokenCounter`] (`tokenizer`); else the number of content chunks, with a null source.

use crate::tokens::TokenCounter;
use crate::{BackendError, BackendInfo, ChatMessage, GenEvent};
use rand::Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use ttc_policy::Policy;
use ttc_types::{Record, RecordStatus, Timings, TokenCountSource, SCHEMA_VERSION};

/// One sample of a suite, as the runner plans it and a record names it (`ttc serve` makes one per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub suite: String,
    pub task: Option<String>,
    /// Unique within its suite.
    pub sample_id: String,
    pub messages: Vec<ChatMessage>,
    pub reference: Option<String>,
}

/// Run-wide identity copied into every record.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    pub run_started_at: String,
    pub config_hash: String,
    pub project_version: String,
    pub host: String,
    pub backend: BackendInfo,
}

/// What the runner knows about a request once it is over.
#[derive(Debug)]
pub struct Outcome {
    /// Send time of the final attempt.
    pub sent: Instant,
    /// Seconds from the run's start to `sent`.
    pub start_offset_s: f64,
    /// Events of the final attempt (possibly partial when it failed).
    pub events: Vec<GenEvent>,
    pub error: Option<BackendError>,
    pub attempts: u32,
    pub backoff: Duration,
}

/// Host description stored with each record: name, OS, architecture, logical CPUs.
pub fn host_info() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{name} ({} {}, {cpus} cpus)", std::env::consts::OS, std::env::consts::ARCH)
}

/// A new run id: UTC time plus 4 random hex digits, e.g. `20250102T030405Z-1a2b`.
pub fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{compact}-{:04x}", rand::rng().random::<u16>())
}

/// The record of `item` served by `policy` (the policy the plan chose: an adaptive policy's route is in the
/// stats of its `Finished`).
pub fn build_record(
    ctx: &RunContext,
    policy: &Policy,
    item: &WorkItem,
    model: &str,
    outcome: Outcome,
    counter: Option<&dyn TokenCounter>,
) -> Record {
    let mut prediction = String::new();
    let mut reasoning = String::new();
    let (mut chunks, mut ids, mut all_have_ids) = (0u32, 0u32, true);
    let mut finished = None;
    let mut stats = None;
    let mut times = Vec::new();
    let mut logprobs: Vec<f32> = Vec::new();
    for ev in &outcome.events {
        match ev {
            GenEvent::Content { at, text, token_ids, logprobs: lps } => {
                times.push(*at);
                logprobs.extend(lps.iter().map(|l| l.chosen.logprob));
                prediction.push_str(text);
                chunks += 1;
                ids += token_ids.len() as u32;
                all_have_ids &= !token_ids.is_empty();
            }
            GenEvent::Reasoning { at, text } => {
                times.push(*at);
                reasoning.push_str(text);
                chunks += 1;
                all_have_ids = false;
            }
            GenEvent::Finished { reason, usage, stats: s, .. } => {
                finished = Some((*reason, *usage));
                stats = Some(s);
            }
        }
    }
    let usage = finished.and_then(|(_, u)| u);
    let (prompt_tokens, output_tokens, source) = if let Some(u) = usage {
        let src = if ctx.backend.usage_is_engine { TokenCountSource::Engine } else { TokenCountSource::Usage };
        (Some(u.prompt_tokens), Some(u.completion_tokens), Some(src))
    } else if chunks > 0 && all_have_ids {
        (None, Some(ids), Some(TokenCountSource::Engine))
    } else if chunks == 0 && outcome.error.is_some() {
        (None, None, None)
    } else if let Some(c) = counter {
        let out = c.count_text(&reasoning) + c.count_text(&prediction);
        (c.count_prompt(&item.messages), Some(out), Some(TokenCountSource::Tokenizer))
    } else {
        (None, Some(chunks), None)
    };
    let t = Timings::from_token_times(outcome.sent, &times, output_tokens);
    Record {
        schema_version: SCHEMA_VERSION,
        run_id: ctx.run_id.clone(),
        run_started_at: ctx.run_started_at.clone(),
        config_hash: ctx.config_hash.clone(),
        project_version: ctx.project_version.clone(),
        host: ctx.host.clone(),
        backend: ctx.backend.kind.clone(),
        base_url: ctx.backend.base_url.clone(),
        model: model.to_string(),
        weights: ctx.backend.weights.clone(),
        policy: policy.name.clone(),
        algorithm: policy.algorithm_name().to_string(),
        params_json: policy.params_json(),
        suite: item.suite.clone(),
        task: item.task.clone(),
        sample_id: item.sample_id.clone(),
        status: if outcome.error.is_none() { RecordStatus::Ok } else { RecordStatus::Error },
        error_class: outcome.error.as_ref().map(|e| e.class().to_string()),
        error_message: outcome.error.as_ref().map(|e| e.to_string()),
        attempts: outcome.attempts,
        backoff_s: outcome.backoff.as_secs_f64(),
        prompt_tokens,
        cached_prompt_tokens: usage.map(|u| u.cached_prompt_tokens),
        output_tokens,
        token_count_source: source,
        start_offset_s: outcome.start_offset_s,
        ttft_s: t.ttft_s,
        e2e_s: t.e2e_s,
        tpot_s: t.tpot_s,
        itl_mean_s: t.itl_mean_s,
        itl_p50_s: t.itl_p50_s,
        itl_p99_s: t.itl_p99_s,
        token_times_s: t.token_times_s,
        throughput_tok_s: t.throughput_tok_s,
        finish_reason: finished.map(|(r, _)| r.openai_label().to_string()),
        token_logprobs: (!logprobs.is_empty()).then_some(logprobs),
        prediction,
        reference: item.reference.clone(),
        metrics: BTreeMap::new(),
        extra_metrics: BTreeMap::new(),
        policy_stats: stats.map(|s| (**s).clone()).unwrap_or_default(),
        fidelity: Default::default(),
        load: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::WordCounter;
    use ttc_types::{FinishReason, PolicyStats, Usage};

    fn ctx(usage_is_engine: bool) -> RunContext {
        RunContext {
            run_id: "r1".into(),
            run_started_at: "2025-01-01T00:00:00Z".into(),
            config_hash: "abc".into(),
            project_version: "0.1.0".into(),
            host: "h".into(),
            backend: BackendInfo {
                kind: "openai".into(),
                base_url: Some("http://x/v1".into()),
                model: "m".into(),
                weights: None,
                usage_is_engine,
            },
        }
    }

    fn item() -> WorkItem {
        WorkItem {
            suite: "s".into(),
            task: Some("t".into()),
            sample_id: "7".into(),
            messages: vec![ChatMessage::new("user", "one two three")],
            reference: Some("ref".into()),
        }
    }

    fn build(ctx: &RunContext, outcome: Outcome, counter: Option<&dyn TokenCounter>) -> Record {
        build_record(ctx, &Policy::baseline(), &item(), "m", outcome, counter)
    }

    fn outcome(t0: Instant, events: Vec<GenEvent>, error: Option<BackendError>) -> Outcome {
        Outcome {
            sent: t0,
            start_offset_s: 1.5,
            events,
            error,
            attempts: 2,
            backoff: Duration::from_millis(250),
        }
    }

    fn content(t0: Instant, ms: u64, text: &str, ids: Vec<u32>) -> GenEvent {
        GenEvent::Content { at: t0 + Duration::from_millis(ms), text: text.into(), token_ids: ids, logprobs: vec![] }
    }

    #[test]
    fn usage_counts_and_timings() {
        let t0 = Instant::now();
        let ev = vec![
            content(t0, 100, "Hello", vec![]),
            content(t0, 200, " big", vec![]),
            content(t0, 400, " world", vec![]),
            GenEvent::Finished {
                at: t0 + Duration::from_millis(450),
                reason: FinishReason::Length,
                usage: Some(Usage { prompt_tokens: 12, completion_tokens: 5, ..Usage::default() }),
                stats: Box::new(PolicyStats { batch_steps: Some(4), ..Default::default() }),
            },
        ];
        let r = build(&ctx(false), outcome(t0, ev, None), Some(&WordCounter));
        assert_eq!(r.status, RecordStatus::Ok);
        assert_eq!(r.prediction, "Hello big world");
        assert_eq!((r.prompt_tokens, r.output_tokens), (Some(12), Some(5)));
        assert_eq!(r.token_count_source, Some(TokenCountSource::Usage));
        assert!((r.ttft_s.unwrap() - 0.1).abs() < 1e-9);
        assert!((r.e2e_s.unwrap() - 0.4).abs() < 1e-9);
        // TPOT uses N from usage: (0.4 - 0.1) / (5 - 1).
        assert!((r.tpot_s.unwrap() - 0.075).abs() < 1e-9);
        assert!((r.itl_mean_s.unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        assert_eq!((r.attempts, r.backoff_s, r.start_offset_s), (2, 0.25, 1.5));
        assert_eq!((r.policy.as_str(), r.algorithm.as_str(), r.params_json.as_str()), ("baseline", "baseline", "{}"));
        assert_eq!((r.suite.as_str(), r.task.as_deref(), r.sample_id.as_str()), ("s", Some("t"), "7"));
        assert_eq!(r.reference.as_deref(), Some("ref"));
        assert_eq!(r.base_url.as_deref(), Some("http://x/v1"));
        assert_eq!(r.policy_stats.batch_steps, Some(4), "the stats ride on Finished");
    }

    #[test]
    fn engine_usage_and_engine_token_ids() {
        let t0 = Instant::now();
        let fin = |usage| GenEvent::finished(t0, FinishReason::Stop, usage);
        let ev = vec![content(t0, 1, "a", vec![5]), fin(Some(Usage { prompt_tokens: 3, completion_tokens: 1, ..Usage::default() }))];
        let r = build(&ctx(true), outcome(t0, ev, None), None);
        assert_eq!(r.token_count_source, Some(TokenCountSource::Engine));
        let ev = vec![content(t0, 1, "ab", vec![5, 6]), content(t0, 2, "c", vec![7]), fin(None)];
        let r = build(&ctx(false), outcome(t0, ev, None), None);
        assert_eq!((r.output_tokens, r.token_count_source), (Some(3), Some(TokenCountSource::Engine)));
    }

    #[test]
    fn tokenizer_then_chunk_fallback() {
        let t0 = Instant::now();
        let ev = || {
            vec![
                GenEvent::Reasoning { at: t0, text: "let me think".into() },
                content(t0, 1, "the answer", vec![]),
                GenEvent::finished(t0, FinishReason::Stop, None),
            ]
        };
        let r = build(&ctx(false), outcome(t0, ev(), None), Some(&WordCounter));
        assert_eq!((r.prompt_tokens, r.output_tokens), (Some(3), Some(5)));
        assert_eq!(r.token_count_source, Some(TokenCountSource::Tokenizer));
        assert_eq!(r.prediction, "the answer", "reasoning is not part of the prediction");
        let r = build(&ctx(false), outcome(t0, ev(), None), None);
        assert_eq!((r.prompt_tokens, r.output_tokens, r.token_count_source), (None, Some(2), None));
    }

    #[test]
    fn failed_request_keeps_class_message_and_partial_output() {
        let t0 = Instant::now();
        let err = BackendError::StreamCut("eof".into());
        let r = build(&ctx(false), outcome(t0, vec![content(t0, 50, "par", vec![])], Some(err)), None);
        assert_eq!(r.status, RecordStatus::Error);
        assert_eq!(r.error_class.as_deref(), Some("stream_cut"));
        assert!(r.error_message.as_deref().unwrap().contains("eof"));
        assert_eq!(r.prediction, "par");
        assert!((r.ttft_s.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(r.finish_reason, None);
        let err = BackendError::Http { status: 400, url: "u".into(), message: "bad".into(), retry_after: None };
        let r = build(&ctx(false), outcome(t0, vec![], Some(err)), None);
        assert_eq!((r.output_tokens, r.ttft_s, r.error_class.as_deref()), (None, None, Some("http_4xx")));
    }
}
