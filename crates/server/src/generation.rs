//! One generation as the HTTP layer sees it: the engine's event stream with stop strings applied, reduced to
//! text pieces and one final step. Dropping a [`Generation`] drops the engine's event stream, and the
//! embedded backend cancels the request at its next token: that is how a client that disconnects (axum
//! drops the response body or the handler) frees the engine for the next request.

use crate::error::ApiError;
use crate::stop::{StopMatcher, StopStep};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use ttc_bench::backend::EventStream;
use ttc_types::GenEvent;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Text(String),
    /// `reason` is the OpenAI label (`stop`, `length`); `completion_tokens` counts every generated token,
    /// the one that completed a stop string included (the engine's rule).
    Done { reason: &'static str, completion_tokens: u32 },
    Failed(ApiError),
}

/// Counts generations in progress (reported by `/health`); the guard decrements on drop.
pub struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    pub fn new(counter: Arc<AtomicUsize>) -> ActiveGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(counter)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Generation {
    events: Option<EventStream>,
    stop: StopMatcher,
    tokens: u32,
    queue: VecDeque<Step>,
    _active: ActiveGuard,
}

impl Generation {
    pub fn new(events: EventStream, stops: Vec<String>, active: ActiveGuard) -> Generation {
        Generation { events: Some(events), stop: StopMatcher::new(stops), tokens: 0, queue: VecDeque::new(), _active: active }
    }

    /// The next non-empty text piece or the final step; None after the final step.
    pub async fn next(&mut self) -> Option<Step> {
        loop {
            if let Some(step) = self.queue.pop_front() {
                return Some(step);
            }
            let events = self.events.as_mut()?;
            match events.next().await {
                Some(Ok(GenEvent::Content { text, token_ids, .. })) => {
                    self.tokens += token_ids.len() as u32;
                    match self.stop.push(&text) {
                        StopStep::Emit(t) => self.push_text(t),
                        StopStep::Stopped(t) => {
                            // Dropping the stream cancels the rest of the generation in the engine.
                            self.events = None;
                            self.push_text(t);
                            self.queue.push_back(Step::Done { reason: "stop", completion_tokens: self.tokens });
                        }
                    }
                }
                // The engine has no separate reasoning channel; kept for other backends' sake.
                Some(Ok(GenEvent::Reasoning { .. })) => {}
                Some(Ok(GenEvent::Finished { reason, usage, .. })) => {
                    self.events = None;
                    let tail = self.stop.flush();
                    self.push_text(tail);
                    let completion_tokens = usage.map(|u| u.completion_tokens).unwrap_or(self.tokens);
                    self.queue.push_back(Step::Done { reason: reason.openai_label(), completion_tokens });
                }
                Some(Err(e)) => {
                    self.events = None;
                    self.queue.push_back(Step::Failed(ApiError::from_backend(&e)));
                }
                None => {
                    self.events = None;
                    self.queue.push_back(Step::Failed(ApiError::server("the engine ended the generation without finishing it")));
                }
            }
        }
    }

    fn push_text(&mut self, t: String) {
        if !t.is_empty() {
            self.queue.push_back(Step::Text(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use ttc_bench::backend::event_channel;
    use ttc_types::{FinishReason, Usage};

    fn content(text: &str) -> ttc_bench::backend::EventItem {
        Ok(GenEvent::Content { at: Instant::now(), text: text.into(), token_ids: vec![7] })
    }

    #[tokio::test]
    async fn stop_string_ends_and_cancels_the_engine_stream() {
        let (tx, events) = event_channel(16);
        let active = Arc::new(AtomicUsize::new(0));
        let mut g = Generation::new(events, vec!["\n".into()], ActiveGuard::new(active.clone()));
        for t in ["Hi", "", " there\nmore"] {
            tx.send(content(t)).await.unwrap();
        }
        assert_eq!(g.next().await, Some(Step::Text("Hi".into())));
        assert_eq!(g.next().await, Some(Step::Text(" there".into())));
        assert_eq!(g.next().await, Some(Step::Done { reason: "stop", completion_tokens: 3 }));
        assert_eq!(g.next().await, None);
        assert!(tx.is_closed(), "the engine must see the request cancelled");
        assert_eq!(active.load(Ordering::SeqCst), 1);
        drop(g);
        assert_eq!(active.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn finish_uses_engine_usage_and_flushes_held_text() {
        let (tx, events) = event_channel(16);
        let mut g = Generation::new(events, vec!["END".into()], ActiveGuard::new(Arc::new(AtomicUsize::new(0))));
        tx.send(content("a E")).await.unwrap();
        let usage = Some(Usage { prompt_tokens: 5, completion_tokens: 1 });
        tx.send(Ok(GenEvent::Finished { at: Instant::now(), reason: FinishReason::Length, usage })).await.unwrap();
        assert_eq!(g.next().await, Some(Step::Text("a ".into())));
        assert_eq!(g.next().await, Some(Step::Text("E".into())));
        assert_eq!(g.next().await, Some(Step::Done { reason: "length", completion_tokens: 1 }));
    }

    #[tokio::test]
    async fn a_cut_stream_is_a_server_error() {
        let (tx, events) = event_channel(16);
        let mut g = Generation::new(events, vec![], ActiveGuard::new(Arc::new(AtomicUsize::new(0))));
        tx.send(content("x")).await.unwrap();
        drop(tx);
        assert_eq!(g.next().await, Some(Step::Text("x".into())));
        assert!(matches!(g.next().await, Some(Step::Failed(e)) if e.status == 500));
    }
}
