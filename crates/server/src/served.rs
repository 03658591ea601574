//! Served requests as records (`ttc serve --ab ...` or `--record`): every chat completion and completion the server
//! answers is appended to the results store as a [`Record`](ttc_types::Record) (backend `serve`, policy = the arm
//! that served it, task = the endpoint), built by the contract's `build_record` (the one `ttc run` uses) from the
//! request's events, its policy stats from their `Finished`, and written through the store's `RunWriter`, the
//! sink `ttc run` uses. Each served record is flushed to its part file before the response's last chunk leaves,
//! so a `kill -9` loses no request whose client saw it finish.
//!
//! Requests refused before they generate (400, 404, 413, 429, ...) are records too, with `status: error` and the
//! error as `ttc run` records an HTTP error (`error_class` `http_4xx` / `http_429` / `http_5xx`), so error rates
//! over served traffic count them. They are buffered and flushed with the next served record or within
//! [`REFUSAL_FLUSH`], whichever comes first: a flood of 429s (answered at once, by design) must not cost one
//! fsynced part file each.
//!
//! Privacy by default: no request content is stored (prediction empty, no logprobs, a refusal's message
//! reduced to its type, code and field; prompts are never records' columns) unless `--store-content` is given.
//! Counts, timings, the arm and a router's route are.

use crate::error::ApiError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use ttc_contract::{build_record, host_info, BackendError, BackendInfo, GenEvent, Outcome, RecordSink, RunContext, WorkItem};
use ttc_engine::Policy;
use ttc_results::{ResultsStore, RunMeta, RunWriter, WriterOptions};

/// The `suite` column of served records.
pub const SERVED_SUITE: &str = "serve";
/// The `policy` column of a refused request that named no served model (or whose body could not be read): it
/// ran no policy, and a name the client made up is not stored.
pub const UNRESOLVED_POLICY: &str = "unresolved";
/// Longest a refused request's record waits in memory before it is written (kill -9 may lose this much).
pub const REFUSAL_FLUSH: Duration = Duration::from_secs(1);

/// The endpoint a request came to: its record's `task` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn task(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

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
    /// Starts a new run `run_id` in `results`. `extra` goes to the run's manifest (arms, weights, ...). A
    /// background thread writes buffered refusals within [`REFUSAL_FLUSH`] until [`ServedRecorder::finish`].
    pub fn start(
        results: &std::path::Path,
        run_id: String,
        model: &str,
        store_content: bool,
        extra: serde_json::Value,
    ) -> anyhow::Result<Arc<ServedRecorder>> {
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
        // Served records are flushed one by one (`write`); refusals wait at most REFUSAL_FLUSH.
        let opts = WriterOptions { flush_records: usize::MAX, flush_interval: REFUSAL_FLUSH, fsync: true };
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
        let r = Arc::new(ServedRecorder {
            writer: Mutex::new(Some(writer)),
            ctx,
            store_content,
            next_id: AtomicU64::new(0),
            started: Instant::now(),
        });
        let weak = Arc::downgrade(&r);
        std::thread::Builder::new().name("ttc-serve-records".into()).spawn(move || flush_refusals(weak))?;
        Ok(r)
    }

    pub fn run_id(&self) -> &str {
        &self.ctx.run_id
    }

    /// Starts recording one request to `endpoint` served by `policy`, sent at `sent`.
    pub fn begin(self: &Arc<Self>, policy: Arc<Policy>, model: String, endpoint: Endpoint, sent: Instant) -> RecordTap {
        RecordTap { recorder: self.clone(), policy, model, endpoint, sent, events: Vec::new(), done: false }
    }

    /// Records a request refused before it generated (`arrived`: when its handler started). `policy`: the arm
    /// or policy it was to run, None when it named no served model. Buffered (see [`REFUSAL_FLUSH`]).
    pub fn refuse(&self, policy: Option<(&Policy, &str)>, endpoint: Endpoint, arrived: Instant, error: &ApiError) {
        let message = if self.store_content { error.message.clone() } else { error.summary() };
        let e = BackendError::Http {
            status: error.status.as_u16(),
            url: endpoint.path().into(),
            message,
            retry_after: error.retry_after.map(Duration::from_secs),
        };
        let unresolved = Policy::baseline();
        let (p, model) = policy.unwrap_or((&unresolved, ""));
        let mut record = self.record(p, model, endpoint, arrived, Vec::new(), Some(e));
        if policy.is_none() {
            record.policy = UNRESOLVED_POLICY.into();
            record.algorithm = "none".into();
            record.params_json = "{}".into();
        }
        self.write(record, false);
    }

    fn record(
        &self,
        policy: &Policy,
        model: &str,
        endpoint: Endpoint,
        sent: Instant,
        events: Vec<GenEvent>,
        error: Option<BackendError>,
    ) -> ttc_types::Record {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let item = WorkItem {
            suite: SERVED_SUITE.into(),
            task: Some(endpoint.task().into()),
            sample_id: format!("req-{id:08}"),
            messages: Vec::new(),
            reference: None,
        };
        let outcome = Outcome {
            sent,
            start_offset_s: sent.saturating_duration_since(self.started).as_secs_f64(),
            events,
            error,
            attempts: 1,
            backoff: Duration::ZERO,
        };
        let mut record = build_record(&self.ctx, policy, &item, model, outcome, None);
        if !self.store_content {
            record.prediction.clear();
            record.token_logprobs = None;
        }
        record
    }

    /// Pushes a record; `flush`: write it (and any buffered refusals) to disk before returning.
    fn write(&self, record: ttc_types::Record, flush: bool) {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = w.as_mut() else { return };
        let r = w.push(record).and_then(|_| if flush { w.flush() } else { Ok(()) });
        if let Err(e) = r {
            eprintln!("warning: could not store a served request's record: {e:#}");
        }
    }

    /// Marks the run complete (graceful shutdown), writing what is buffered.
    pub fn finish(&self) -> anyhow::Result<()> {
        match self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(w) => w.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}

/// Writes buffered refusals once they are [`REFUSAL_FLUSH`] old, until the recorder is finished or gone.
fn flush_refusals(recorder: Weak<ServedRecorder>) {
    loop {
        std::thread::sleep(REFUSAL_FLUSH / 4);
        let Some(r) = recorder.upgrade() else { return };
        let mut w = r.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = w.as_mut() else { return };
        if let Err(e) = w.flush_if_due() {
            eprintln!("warning: could not store refused requests' records: {e:#}");
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
    endpoint: Endpoint,
    sent: Instant,
    events: Vec<GenEvent>,
    done: bool,
}

impl RecordTap {
    pub fn observe(&mut self, ev: &GenEvent) {
        self.events.push(ev.clone());
    }

    /// The request is over: `error` None = it finished (add a `Finished` event first if the server ended it,
    /// e.g. on a stop string). The record is on disk when this returns.
    pub fn end(&mut self, error: Option<BackendError>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let r = &self.recorder;
        let record = r.record(&self.policy, &self.model, self.endpoint, self.sent, events, error);
        r.write(record, true);
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
