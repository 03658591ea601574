//! `/api/events`: the live view's server-sent events.
//!
//! Each connection gets a task that re-reads the followed run whenever its files change (checked every
//! `poll`, ~1 s), so a record appended by any writer (this process's runner, another `ttc run`, a resumed
//! run) reaches the page without a reload. When the runner shares a [`LiveFeed`](crate::LiveFeed), its
//! records and progress are forwarded as they happen, before they are flushed to a part file; records are
//! de-duplicated by their (policy, suite, sample) key so each appears once.
//!
//! Events (each `data:` is JSON):
//! - `run`: `{run_id}`, the run now followed (the latest one unless `?run=` pins it); the page resets;
//! - `records`: `{run_id, initial, rows: [RecordRow]}`, records not sent before (`initial`: the first batch);
//! - `progress`: [`Progress`](crate::model::Progress) from the store (done, planned, errors, throughput);
//! - `summary`: `{run_id, groups: [GroupSummary]}` after every change (the comparison table filling in);
//! - `runner`: [`RunnerProgress`](crate::live::RunnerProgress) from the live feed;
//! - `warning`: `{run_id, warnings}` read problems (corrupt part skipped);
//! - `empty`: `{message}` while there is no run to follow.

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

use crate::api::{blocking, resolve_runs, ApiError, AppState, RunQuery};
use crate::query::ApiQuery;
use crate::cache::{fingerprint, Fingerprint, RunData};
use crate::live::LiveEvent;
use crate::model;

/// Rows sent in the first `records` batch of a connection (the most recent ones); older rows stay
/// reachable through /api/records.
pub const INITIAL_ROWS: usize = 200;

type Key = (String, String, String);

pub async fn events(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(follow(st, q.run.filter(|r| !r.is_empty()), tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default().event(name).data(serde_json::to_string(data).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// What one connection has sent so far.
struct Follower {
    st: AppState,
    /// Pinned run, or None to follow the latest.
    pinned: Option<String>,
    run_id: Option<String>,
    fingerprint: Option<Fingerprint>,
    seen: HashSet<Key>,
    warned: usize,
    /// The last `empty` message sent (sent again only when it changes).
    empty_sent: Option<String>,
    tx: mpsc::Sender<Event>,
}

/// Sends an event; Err when the page has gone away (the task then ends).
async fn send(tx: &mpsc::Sender<Event>, e: Event) -> Result<(), ()> {
    tx.send(e).await.map_err(|_| ())
}

async fn follow(st: AppState, pinned: Option<String>, tx: mpsc::Sender<Event>) {
    let mut feed = st.live.as_ref().map(|f| f.subscribe());
    let mut tick = tokio::time::interval(st.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut f = Follower { st, pinned, run_id: None, fingerprint: None, seen: HashSet::new(), warned: 0, empty_sent: None, tx };
    loop {
        let step = tokio::select! {
            _ = tick.tick() => f.poll().await,
            ev = next_feed_event(&mut feed) => f.on_feed(ev).await,
        };
        if step.is_err() {
            return;
        }
    }
}

/// The next live-feed event; never resolves without a feed (or once it closed).
async fn next_feed_event(feed: &mut Option<broadcast::Receiver<LiveEvent>>) -> Option<LiveEvent> {
    loop {
        let Some(rx) = feed.as_mut() else { return std::future::pending().await };
        match rx.recv().await {
            Ok(ev) => return Some(ev),
            // Missed events are recovered from the store on the next poll.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => *feed = None,
        }
    }
}

impl Follower {
    async fn poll(&mut self) -> Result<(), ()> {
        let cache = self.st.cache.clone();
        let pinned = self.pinned.clone();
        let target = blocking(move || resolve_runs(&cache, pinned.as_deref())).await;
        let run_id = match target {
            Ok(ids) => ids.into_iter().next().unwrap_or_default(),
            Err(e) => return self.empty(e).await,
        };
        self.empty_sent = None;
        if self.run_id.as_deref() != Some(run_id.as_str()) {
            self.run_id = Some(run_id.clone());
            self.fingerprint = None;
            self.seen.clear();
            self.warned = 0;
            send(&self.tx, event("run", &serde_json::json!({ "run_id": run_id }))).await?;
        }
        let store = self.st.cache.store().ok();
        let id = run_id.clone();
        let fp = tokio::task::spawn_blocking(move || store.map(|s| fingerprint(&s, &id)).unwrap_or_default()).await.unwrap_or_default();
        if self.fingerprint.as_ref() == Some(&fp) {
            // Nothing changed on disk; keep the connection alive with the keep-alive comments.
            return if self.tx.is_closed() { Err(()) } else { Ok(()) };
        }
        let cache = self.st.cache.clone();
        let analysis = self.st.analysis.clone();
        let id = run_id.clone();
        let data = blocking(move || {
            let d = cache.get(&id).map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
            d.summary(&analysis);
            Ok(d)
        })
        .await;
        let data = match data {
            Ok(d) => d,
            Err(e) => return self.empty(e).await,
        };
        self.fingerprint = Some(data.fingerprint.clone());
        self.push_update(&data).await
    }

    /// Sends the records not sent yet, then the run's progress and summary.
    async fn push_update(&mut self, data: &Arc<RunData>) -> Result<(), ()> {
        let run = &data.run;
        let summary = data.summary(&self.st.analysis);
        let primaries = model::primary_by_suite(summary);
        let initial = self.seen.is_empty();
        let mut fresh: Vec<(usize, &ttc_types::Record)> =
            run.records.iter().enumerate().filter(|(_, r)| !self.seen.contains(&r.key())).collect();
        for (_, r) in &fresh {
            self.seen.insert(r.key());
        }
        if initial && fresh.len() > INITIAL_ROWS {
            fresh.drain(..fresh.len() - INITIAL_ROWS);
        }
        if !fresh.is_empty() {
            let rows: Vec<model::RecordRow> = fresh
                .iter()
                .map(|(i, r)| model::record_row(Some(*i), r, primaries.get(&(r.run_id.clone(), r.suite.clone())).map(String::as_str)))
                .collect();
            let body = serde_json::json!({ "run_id": run.run_id, "initial": initial, "rows": rows });
            send(&self.tx, event("records", &body)).await?;
        }
        if run.warnings.len() != self.warned {
            self.warned = run.warnings.len();
            send(&self.tx, event("warning", &serde_json::json!({ "run_id": run.run_id, "warnings": run.warnings }))).await?;
        }
        send(&self.tx, event("progress", &model::progress(run))).await?;
        send(&self.tx, event("summary", &serde_json::json!({ "run_id": run.run_id, "groups": summary.groups }))).await
    }

    async fn on_feed(&mut self, ev: Option<LiveEvent>) -> Result<(), ()> {
        let Some(ev) = ev else { return Ok(()) };
        let following = self.run_id.as_deref() == Some(ev.run_id());
        match ev {
            LiveEvent::Record(r) if following && !self.seen.contains(&r.key()) => {
                self.seen.insert(r.key());
                let row = model::record_row(None, &r, None);
                let body = serde_json::json!({ "run_id": r.run_id, "initial": false, "rows": [row] });
                send(&self.tx, event("records", &body)).await
            }
            LiveEvent::Progress(p) if following => send(&self.tx, event("runner", &p)).await,
            // A new run started (not followed yet) or this one finished: look at the store now.
            LiveEvent::Progress(_) | LiveEvent::Finished { .. } => self.poll().await,
            LiveEvent::Record(_) => Ok(()),
        }
    }

    async fn empty(&mut self, e: ApiError) -> Result<(), ()> {
        self.run_id = None;
        self.fingerprint = None;
        self.seen.clear();
        if self.empty_sent.as_ref() == Some(&e.message) {
            return if self.tx.is_closed() { Err(()) } else { Ok(()) };
        }
        self.empty_sent = Some(e.message.clone());
        send(&self.tx, event("empty", &serde_json::json!({ "message": e.message }))).await
    }
}
