//! One generation as the HTTP layer sees it: the engine's event stream with stop strings applied, reduced to
//! text pieces and one final step. Dropping a [`Generation`] drops the engine's event stream, and the
//! embedded backend cancels the request within one prefill chunk or at its next token (or skips it, if it is still queued): that is how
//! a client that disconnects (axum drops the response body or the handler) frees the engine for the next
//! request.

use crate::error::ApiError;
use crate::stop::{StopMatcher, StopStep};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use ttc_contract::{BackendError, EventStream, GenEvent};
use ttc_types::TokenLogprob;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A text piece and the logprobs of the tokens it completes (empty unless the request asked for them; text
    /// held back by a stop-string check keeps its tokens' logprobs until it is released).
    Text(String, Vec<TokenLogprob>),
    /// `reason` is the OpenAI label (`stop`, `length`); `completion_tokens` counts every generated token,
    /// the one that completed a stop string included (the engine's rule).
    /// `cached_tokens`: prompt tokens served from the engine's prefix cache (0 when a stop string ended the
    /// generation before the engine reported its usage).
    Done { reason: &'static str, completion_tokens: u32, cached_tokens: u32 },
    Failed(ApiError),
}

/// What `/health` reports about requests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Generations admitted and not over: decoding, or waiting for the engine.
    pub active: AtomicUsize,
    /// Generations that finished (`stop` or `length`).
    pub completed: AtomicU64,
    /// Generations dropped before their end: the client disconnected.
    pub cancelled: AtomicU64,
    /// Generations that failed in the engine.
    pub failed: AtomicU64,
    /// Requests turned away with 429 because the admission queue was full.
    pub rejected: AtomicU64,
}

/// One admitted generation; `active` counts it until the guard drops.
pub struct ActiveGuard(Arc<Counters>);

impl ActiveGuard {
    /// Admits a generation unless `limit` are already active (checked and counted in one step, so
    /// concurrent requests cannot overshoot).
    pub fn admit(counters: Arc<Counters>, limit: usize) -> Option<ActiveGuard> {
        counters.active.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(ActiveGuard(counters))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Generation {
    events: Option<EventStream>,
    stop: StopMatcher,
    tokens: u32,
    queue: VecDeque<Step>,
    /// Logprobs of tokens whose text has not been handed out yet.
    pending: Vec<TokenLogprob>,
    /// Whether the final step was handed out (else dropping this is a cancellation).
    over: bool,
    active: ActiveGuard,
    /// Where this request's record goes (`--ab` / `--record`), if anywhere.
    record: Option<crate::served::RecordTap>,
}

impl Generation {
    pub fn new(events: EventStream, stops: Vec<String>, active: ActiveGuard) -> Generation {
        Generation { events: Some(events), stop: StopMatcher::new(stops), tokens: 0, queue: VecDeque::new(), pending: Vec::new(), over: false, active, record: None }
    }

    /// Records this request when it ends (written before its final step is handed out).
    pub fn with_record(mut self, tap: Option<crate::served::RecordTap>) -> Generation {
        self.record = tap;
        self
    }

    /// Fails this generation before it is read (e.g. its prompt could not be scored): recorded with `error`,
    /// counted as failed, and cancelled in the engine.
    pub fn fail(&mut self, error: BackendError) {
        self.events = None;
        self.record_end(Some(error));
        if !std::mem::replace(&mut self.over, true) {
            self.active.0.failed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn record_event(&mut self, ev: &GenEvent) {
        if let Some(t) = &mut self.record {
            t.observe(ev);
        }
    }

    fn record_end(&mut self, error: Option<BackendError>) {
        if let Some(t) = &mut self.record {
            t.end(error);
        }
    }

    /// The next non-empty text piece or the final step; None after the final step.
    pub async fn next(&mut self) -> Option<Step> {
        loop {
            if let Some(step) = self.queue.pop_front() {
                let counter = match step {
                    Step::Text(..) => None,
                    Step::Done { .. } => Some(&self.active.0.completed),
                    Step::Failed(_) => Some(&self.active.0.failed),
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::SeqCst);
                    self.over = true;
                }
                return Some(step);
            }
            let events = self.events.as_mut()?;
            let item = events.next().await;
            if let Some(Ok(ev)) = &item {
                self.record_event(ev);
            }
            match item {
                Some(Ok(GenEvent::Content { text, token_ids, logprobs, .. })) => {
                    self.tokens += token_ids.len() as u32;
                    self.pending.extend(logprobs);
                    match self.stop.push(&text) {
                        StopStep::Emit(t) => self.push_text(t),
                        StopStep::Stopped(t) => {
                            // Dropping the stream cancels the rest of the generation in the engine.
                            self.events = None;
                            self.push_text(t);
                            self.flush_logprobs();
                            let at = std::time::Instant::now();
                            self.record_event(&GenEvent::finished(at, ttc_types::FinishReason::StopString, None));
                            self.record_end(None);
                            self.queue.push_back(Step::Done { reason: "stop", completion_tokens: self.tokens, cached_tokens: 0 });
                        }
                    }
                }
                // The engine has no separate reasoning channel; kept for other backends' sake.
                Some(Ok(GenEvent::Reasoning { .. })) => {}
                Some(Ok(GenEvent::Finished { reason, usage, .. })) => {
                    self.events = None;
                    let tail = self.stop.flush();
                    self.push_text(tail);
                    self.flush_logprobs();
                    let completion_tokens = usage.map(|u| u.completion_tokens).unwrap_or(self.tokens);
                    let cached_tokens = usage.map(|u| u.cached_prompt_tokens).unwrap_or(0);
                    self.record_end(None);
                    self.queue.push_back(Step::Done { reason: reason.openai_label(), completion_tokens, cached_tokens });
                }
                Some(Err(e)) => {
                    self.events = None;
                    self.record_end(Some(e.clone()));
                    self.queue.push_back(Step::Failed(ApiError::from_backend(&e)));
                }
                None => {
                    self.events = None;
                    self.record_end(Some(BackendError::StreamCut("the engine ended the stream".into())));
                    self.queue.push_back(Step::Failed(ApiError::server("the engine ended the generation without finishing it")));
                }
            }
        }
    }

    fn push_text(&mut self, t: String) {
        if !t.is_empty() {
            let lps = std::mem::take(&mut self.pending);
            self.queue.push_back(Step::Text(t, lps));
        }
    }

    /// At the end: logprobs of tokens whose text was never released (e.g. the tokens that completed a stop
    /// string, which the stop-string rule still counts as generated) go out on an empty piece.
    fn flush_logprobs(&mut self) {
        if !self.pending.is_empty() {
            let lps = std::mem::take(&mut self.pending);
            self.queue.push_back(Step::Text(String::new(), lps));
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.over {
            self.active.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use ttc_contract::{event_channel, EventItem};
    use ttc_types::{FinishReason, Usage};

    fn content(text: &str) -> EventItem {
        Ok(GenEvent::Content { at: Instant::now(), text: text.into(), token_ids: vec![7], logprobs: vec![] })
    }

    #[tokio::test]
    async fn stop_string_ends_and_cancels_the_engine_stream() {
        let (tx, events) = event_channel(16);
        let counters = Arc::new(Counters::default());
        let mut g = Generation::new(events, vec!["\n".into()], guard(&counters));
        for t in ["Hi", "", " there\nmore"] {
            tx.send(content(t)).await.unwrap();
        }
        assert_eq!(g.next().await, Some(Step::Text("Hi".into(), vec![])));
        assert_eq!(g.next().await, Some(Step::Text(" there".into(), vec![])));
        assert_eq!(g.next().await, Some(Step::Done { reason: "stop", completion_tokens: 3, cached_tokens: 0 }));
        assert_eq!(g.next().await, None);
        assert!(tx.is_closed(), "the engine must see the request cancelled");
        assert_eq!(counters.active.load(Ordering::SeqCst), 1);
        drop(g);
        assert_eq!(counters.active.load(Ordering::SeqCst), 0);
        assert_eq!((counters.completed.load(Ordering::SeqCst), counters.cancelled.load(Ordering::SeqCst)), (1, 0));
    }

    #[tokio::test]
    async fn dropping_before_the_end_counts_a_cancellation() {
        let (tx, events) = event_channel(16);
        let counters = Arc::new(Counters::default());
        let mut g = Generation::new(events, vec![], guard(&counters));
        tx.send(content("x")).await.unwrap();
        assert_eq!(g.next().await, Some(Step::Text("x".into(), vec![])));
        drop(g);
        assert!(tx.is_closed());
        let c = &counters;
        assert_eq!((c.active.load(Ordering::SeqCst), c.completed.load(Ordering::SeqCst), c.cancelled.load(Ordering::SeqCst)), (0, 0, 1));
    }

    #[test]
    fn admission_stops_at_the_limit_and_frees_on_drop() {
        let counters = Arc::new(Counters::default());
        let a = ActiveGuard::admit(counters.clone(), 2).unwrap();
        let _b = ActiveGuard::admit(counters.clone(), 2).unwrap();
        assert!(ActiveGuard::admit(counters.clone(), 2).is_none());
        assert_eq!(counters.active.load(Ordering::SeqCst), 2, "a refused request must not be counted");
        drop(a);
        assert!(ActiveGuard::admit(counters.clone(), 2).is_some());
    }

    fn guard(c: &Arc<Counters>) -> ActiveGuard {
        ActiveGuard::admit(c.clone(), usize::MAX).unwrap()
    }

    #[tokio::test]
    async fn finish_uses_engine_usage_and_flushes_held_text() {
        let (tx, events) = event_channel(16);
        let mut g = Generation::new(events, vec!["END".into()], guard(&Arc::default()));
        tx.send(content("a E")).await.unwrap();
        let usage = Some(Usage { prompt_tokens: 5, completion_tokens: 1, ..Usage::default() });
        tx.send(Ok(GenEvent::finished(Instant::now(), FinishReason::Length, usage))).await.unwrap();
        assert_eq!(g.next().await, Some(Step::Text("a ".into(), vec![])));
        assert_eq!(g.next().await, Some(Step::Text("E".into(), vec![])));
        assert_eq!(g.next().await, Some(Step::Done { reason: "length", completion_tokens: 1, cached_tokens: 0 }));
    }

    #[tokio::test]
    async fn a_cut_stream_is_a_server_error() {
        let (tx, events) = event_channel(16);
        let mut g = Generation::new(events, vec![], guard(&Arc::default()));
        tx.send(content("x")).await.unwrap();
        drop(tx);
        assert_eq!(g.next().await, Some(Step::Text("x".into(), vec![])));
        assert!(matches!(g.next().await, Some(Step::Failed(e)) if e.status == 500));
    }
}
