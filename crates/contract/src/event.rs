//! The timed event stream of one generation, as every backend hands it to the runner and to `ttc serve`.
//!
//! The engine has its own per-token event (`ttc_types::GenEvent`, sent from inside its decoding loops); the
//! embedded backend turns it into this one, adding the policy's stats to the terminal event once the engine
//! returns them.

use crate::backend::BackendError;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use ttc_types::{FinishReason, PolicyStats, TokenLogprob, Usage};

/// One event of a streaming generation. `at` is taken from the monotonic clock when the event was produced
/// (engine) or received (HTTP client), so latencies are differences of `Instant`s.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// A chunk of generated content. The engine sends one per token; an HTTP server may pack several tokens
    /// into one chunk, in which case `token_ids` is empty.
    Content {
        at: Instant,
        text: String,
        token_ids: Vec<u32>,
        /// Log-probabilities of this chunk's tokens, in order, when the request asked for them (else empty).
        logprobs: Vec<TokenLogprob>,
    },
    /// Reasoning content (`reasoning_content` deltas of some servers); counted as output but kept apart.
    Reasoning { at: Instant, text: String },
    /// The generation finished: the last event of a stream. `usage` is present when the backend knows the exact
    /// counts; `stats` holds the policy's internals (empty for a backend that does not run the policy itself).
    /// Boxed: the stats are large and every other event is small.
    Finished { at: Instant, reason: FinishReason, usage: Option<Usage>, stats: Box<PolicyStats> },
}

impl GenEvent {
    pub fn at(&self) -> Instant {
        match self {
            GenEvent::Content { at, .. } | GenEvent::Reasoning { at, .. } | GenEvent::Finished { at, .. } => *at,
        }
    }

    /// A terminal event without policy stats (HTTP backends, a stop string that ended the request early).
    pub fn finished(at: Instant, reason: FinishReason, usage: Option<Usage>) -> GenEvent {
        GenEvent::Finished { at, reason, usage, stats: Box::default() }
    }

    /// The engine's per-token event as a stream event; its `Finished` gets `stats`.
    pub fn from_engine(ev: ttc_types::GenEvent, stats: PolicyStats) -> GenEvent {
        match ev {
            ttc_types::GenEvent::Content { at, text, token_ids, logprobs } => {
                GenEvent::Content { at, text, token_ids, logprobs }
            }
            ttc_types::GenEvent::Reasoning { at, text } => GenEvent::Reasoning { at, text },
            ttc_types::GenEvent::Finished { at, reason, usage } => {
                GenEvent::Finished { at, reason, usage, stats: Box::new(stats) }
            }
        }
    }
}

pub type EventItem = Result<GenEvent, BackendError>;
pub type EventStream = Pin<Box<dyn Stream<Item = EventItem> + Send>>;

/// The producing half of [`event_channel`]; usable from a plain thread (`blocking_send`) or a task.
pub type EventSender = tokio::sync::mpsc::Sender<EventItem>;

/// A bounded channel whose receiving half is an [`EventStream`]: the simplest way for a backend that runs
/// elsewhere (an engine thread) to hand events to the runner. Dropping the stream closes the channel, which
/// is how the producer learns that the request was cancelled.
pub fn event_channel(capacity: usize) -> (EventSender, EventStream) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (tx, Box::pin(ReceiverStream(rx)))
}

struct ReceiverStream(tokio::sync::mpsc::Receiver<EventItem>);

impl Stream for ReceiverStream {
    type Item = EventItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn event_channel_streams_and_signals_cancellation() {
        use futures_util::StreamExt;
        let (tx, mut stream) = event_channel(4);
        let at = Instant::now();
        tx.send(Ok(GenEvent::Content { at, text: "a".into(), token_ids: vec![1], logprobs: vec![] })).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(matches!(first, GenEvent::Content { ref text, .. } if text == "a"));
        assert!(!tx.is_closed());
        drop(stream);
        assert!(tx.is_closed(), "dropping the stream must tell the producer to stop");
    }

    #[test]
    fn the_engines_finish_gets_the_stats() {
        let at = Instant::now();
        let stats = PolicyStats { batch_steps: Some(3), ..Default::default() };
        let ev = ttc_types::GenEvent::Finished { at, reason: FinishReason::Stop, usage: None };
        let GenEvent::Finished { stats: s, .. } = GenEvent::from_engine(ev, stats.clone()) else { panic!() };
        assert_eq!(*s, stats);
    }
}
