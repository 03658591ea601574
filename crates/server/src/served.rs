//! Served requests as records (`ttc serve --ab ...` or `--record`): every chat completion the server answers is
//! appended to the results store as a [`Record`](ttc_types::Record) (backend `serve`, policy = the arm that
//! served it), built by the contract's `build_record` (the one `ttc run` uses) from the request's events, its
//! policy stats from their `Finished`, and written through the store's `RunWriter`, the sink `ttc run` uses. Each record is flushed to its part file before the response's last chunk leaves, so a
//! `kill -9` loses no request whose client saw it finish.
//!
//! Privacy by default: no request content is stored (prediction empty, no logprobs; prompts are never
//! records' columns) unless `--store-content` is given. Counts, timings, the arm and a router's route are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use ttc_contract::{build_record, host_info, BackendError, BackendInfo, GenEvent, Outcome, RecordSink, RunContext, WorkItem};
use ttc_engine::Policy;
use ttc_results::{ResultsStore, RunMeta, RunWriter, WriterOptions};

/// The `suite` column of served records.
pub const SERVED_SUITE: &str = "serve";

/// Appends served requests to one run of the store.
pub struct ServedRecorder {
    writer: Mutex<Option<RunWriter>>,
    ctx: RunContext,
    store_content: bool,
    next_id: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for ServedRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "ServedRecorder({})", self.ctx.run_id)
    }
}

impl ServedRecorder {
    /// Starts a new run `run_id` in `results`. `extra` goes to the run's manifest (arms, weights, ...).
    pub fn start(
        results: &std::path::Path,
        run_id: String,
        model: &str,
        store_content: bool,
        extra: serde_json::Value,
    ) -> anyhow::Result<ServedRecorder> {
        let store = ResultsStore::create(results)?;
        let started_at = humantime_now();
        let meta = RunMeta {
            run_id: run_id.clone(),
            started_at: started_at.clone(),
            config_hash: "serve".into(),
            planned: None,
            project_version: env!("CARGO_PKG_VERSION").into(),
            extra,
        };
        // One record per part: a record is durable as soon as its request finishes (kill -9 safe).
        let opts = WriterOptions { flush_records: 1, flush_interval: Duration::from_secs(1), fsync: true };
        let writer = store.start_run(meta, opts)?;
        let ctx = RunContext {
            run_id,
            run_started_at: started_at,
            config_hash: "serve".into(),
            project_version: env!("CARGO_PKG_VERSION").into(),
            host: host_info(),
            backend: BackendInfo {
                kind: "serve".into(),
                base_url: None,
                model: model.to_string(),
                weights: None,
                usage_is_engine: true,
            },
        };
        Ok(ServedRecorder { writer: Mutex::new(Some(writer)), ctx, store_content, next_id: AtomicU64::new(0), started: Instant::now() })
    }

    pub fn run_id(&self) -> &str {
        &self.ctx.run_id
    }

    /// Starts recording one request served by `policy`, sent at `sent`.
    pub fn begin(self: &Arc<Self>, policy: Arc<Policy>, model: String, sent: Instant) -> RecordTap {
        RecordTap { recorder: self.clone(), policy, model, sent, events: Vec::new(), done: false }
    }

    fn write(&self, record: ttc_types::Record) {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = w.as_mut() else { return };
        let r = w.push(record).and_then(|_| w.flush());
        if let Err(e) = r {
            eprintln!("warning: could not store a served request's record: {e:#}");
        }
    }

    /// Marks the run complete (graceful shutdown).
    pub fn finish(&self) -> anyhow::Result<()> {
        match self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(w) => w.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}

fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Collects one request's events; [`RecordTap::end`] writes its record (once).
pub struct RecordTap {
    recorder: Arc<ServedRecorder>,
    policy: Arc<Policy>,
    model: String,
    sent: Instant,
    events: Vec<GenEvent>,
    done: bool,
}

impl RecordTap {
    pub fn observe(&mut self, ev: &GenEvent) {
        self.events.push(ev.clone());
    }

    /// The request is over: `error` None = it finished (add a `Finished` event first if the server ended it,
    /// e.g. on a stop string).
    pub fn end(&mut self, error: Option<BackendError>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let r = &self.recorder;
        let id = r.next_id.fetch_add(1, Ordering::SeqCst);
        let item = WorkItem {
            suite: SERVED_SUITE.into(),
            task: None,
            sample_id: format!("req-{id:08}"),
            messages: Vec::new(),
            reference: None,
        };
        let outcome = Outcome {
            sent: self.sent,
            start_offset_s: self.sent.saturating_duration_since(r.started).as_secs_f64(),
            events: std::mem::take(&mut self.events),
            error,
            attempts: 1,
            backoff: Duration::ZERO,
        };
        let mut record = build_record(&r.ctx, &self.policy, &item, &self.model, outcome, None);
        if !r.store_content {
            record.prediction.clear();
            record.token_logprobs = None;
        }
        r.write(record);
    }
}

impl Drop for RecordTap {
    /// A request dropped before its end (the client went away): recorded as cut.
    fn drop(&mut self) {
        if !self.done {
            self.end(Some(BackendError::StreamCut("the client disconnected".into())));
        }
    }
}
