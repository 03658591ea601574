//! The live feed a runner can publish into while a run is in progress (`ttc run --dashboard`).
//!
//! The dashboard does not depend on it: every SSE connection also polls the store (see [`crate::events`]),
//! so records appended by any writer show up. The feed only makes updates faster and carries the runner's
//! progress (requests in flight, planned total) that the store cannot know.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use ttc_types::Record;

/// Progress of a run as the runner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerProgress {
    pub run_id: String,
    /// Requests finished (successful or not).
    pub done: u64,
    /// Requests the plan contains, if known.
    pub planned: Option<u64>,
    pub errors: u64,
    pub in_flight: u64,
}

/// One message of the live feed.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    Progress(RunnerProgress),
    /// A record as soon as it is complete, before it reaches a part file.
    Record(Box<Record>),
    /// The run finished (normally or not).
    Finished { run_id: String },
}

impl LiveEvent {
    pub fn run_id(&self) -> &str {
        match self {
            LiveEvent::Progress(p) => &p.run_id,
            LiveEvent::Record(r) => &r.run_id,
            LiveEvent::Finished { run_id } => run_id,
        }
    }
}

/// A cheap-to-clone broadcast of [`LiveEvent`]s. Publishing never blocks and never fails: with no dashboard
/// listening the event is dropped, and a slow listener skips what it missed (it re-reads the store anyway).
#[derive(Debug, Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed::new(1024)
    }
}

impl LiveFeed {
    /// `capacity`: events kept for a lagging listener before it starts skipping.
    pub fn new(capacity: usize) -> LiveFeed {
        let (tx, _) = broadcast::channel(capacity.max(1));
        LiveFeed { tx }
    }

    pub fn publish(&self, event: LiveEvent) {
        // An error only means nobody is listening right now.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}
