//! The engine's request scheduler: concurrent requests share the model, and their weight matmuls are batched.
//!
//! A [`Scheduler`] owns an `Arc<Engine>` and runs on its own thread. Each engine *step* is one
//! `LlamaModel::forward_batch`: the current token of every active sequence, plus a chunk of the prompt of each newly
//! admitted one, stacked into one matrix for the weight matmuls, with attention per sequence against its own KV
//! cache (Orca's iteration-level scheduling and selective batching, Yu et al. 2022). Three modes:
//! - [`BatchMode::Elastic`] (continuous batching): after every step finished sequences leave at once and waiting
//!   ones (FCFS) join while fewer than `max_batch_size` are active.
//! - [`BatchMode::Static`]: a batch is formed from the waiting queue only when no batch is running, and runs until
//!   its longest member finishes. Members that finish early return at once and stop using compute, but their slots
//!   stay empty.
//! - [`BatchMode::OneAtATime`]: one sequence at a time (non-batching policies), numerically the same as
//!   `Engine::generate_plain`.
//!
//! Usage (blocking; an async caller hands the scheduler a closure sink that forwards to its own channel, e.g.
//! tokio's `UnboundedSender::send`, which never blocks):
//! ```no_run
//! # use std::sync::{mpsc, Arc};
//! # use ttc_engine::{Engine, GenRequest, WeightFormat};
//! # use ttc_engine::scheduler::{greedy, Scheduler, SchedulerConfig, StreamItem};
//! # fn main() -> ttc_engine::Result<()> {
//! let engine = Arc::new(Engine::load("model.gguf".as_ref(), WeightFormat::Auto)?);
//! let scheduler = Scheduler::new(engine, SchedulerConfig::elastic(8))?;
//! let (tx, rx) = mpsc::channel();
//! let req = GenRequest { prompt: vec![1, 2, 3], max_tokens: 32, stop: vec![], ..Default::default() };
//! let handle = scheduler.submit(req, greedy(), tx)?;
//! for item in rx {
//!     match item {
//!         StreamItem::Event(ev) => { /* GenEvent::Content per token, then GenEvent::Finished */ }
//!         StreamItem::Done(result) => { let done = result?; println!("{}", done.output.text); break; }
//!     }
//! }
//! # let _ = handle; Ok(()) }
//! ```
//! Every request gets its events (one `Content` per token, then `Finished`, exactly as `generate_plain` emits them)
//! and then exactly one `StreamItem::Done`. Cancel with [`RequestHandle::cancel`] or the request's own
//! `GenRequest::cancel` (both are polled before every step, so a cancelled prompt stops within one chunk), or drop
//! the receiver (noticed at the request's next token).
//!
//! Chunked prefill: a step has a token budget (`SchedulerConfig::max_step_tokens`). Decoding sequences take one
//! token each; admitted prompts are fed in chunks from the rest, in admission order, so a long prompt no longer
//! stalls the running sequences for its whole prefill (Sarathi-Serve's stall-free batching, Agrawal et al. 2024).
//! Rows are computed independently, so chunking does not change any logits.
//! TTFT counts from `submit`, so it includes the queue wait.
//!
//! Design: the decoding state of a request (its `Emitter`, which borrows the request and its event callback, and its
//! sampler) lives on a small worker thread per *active* request; the scheduler thread owns the KV caches, runs the
//! forwards and exchanges one logits row / one chosen token per step with each worker over channels. So every
//! request streams, stops and counts through the same `Emitter` as the other decoding loops.

use crate::model::cancel::Cancel;
use crate::engine::{Emitter, Engine, GenOutput, GenRequest};
use crate::error::{EngineError, Result};
use crate::model::kv::KvCache;
use crate::model::{argmax, LogitsMode, SeqInput};
use crate::policy::{BatchingMode, BatchingParams};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use ttc_types::{FinishReason, GenEvent, PolicyStats, Usage};

/// How the scheduler forms batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    Elastic,
    Static,
    OneAtATime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub mode: BatchMode,
    /// Most sequences in one step (forced to 1 for `OneAtATime`).
    pub max_batch_size: usize,
    /// Token budget of one step (chunked prefill): every decoding sequence's token counts first, and admitted
    /// prompts are fed in chunks from what is left (at least one token per step), so a long prompt is spread
    /// over several steps instead of stalling the running sequences for its whole prefill.
    pub max_step_tokens: usize,
}

/// Default [`SchedulerConfig::max_step_tokens`], the same as the engine's prefill chunk.
pub const DEFAULT_STEP_TOKENS: usize = crate::engine::DEFAULT_PREFILL_CHUNK;

impl SchedulerConfig {
    pub fn elastic(max_batch_size: usize) -> Self {
        SchedulerConfig { mode: BatchMode::Elastic, max_batch_size, max_step_tokens: DEFAULT_STEP_TOKENS }
    }
    pub fn static_batches(max_batch_size: usize) -> Self {
        SchedulerConfig { mode: BatchMode::Static, max_batch_size, max_step_tokens: DEFAULT_STEP_TOKENS }
    }
    pub fn one_at_a_time() -> Self {
        SchedulerConfig { mode: BatchMode::OneAtATime, max_batch_size: 1, max_step_tokens: DEFAULT_STEP_TOKENS }
    }

    /// The same scheduling with another step token budget.
    pub fn with_step_tokens(self, max_step_tokens: usize) -> Self {
        SchedulerConfig { max_step_tokens, ..self }
    }

    /// The scheduling a batching policy's params describe.
    pub fn for_batching(p: &BatchingParams) -> Self {
        match p.mode {
            BatchingMode::Static => Self::static_batches(p.max_batch_size),
            BatchingMode::Elastic => Self::elastic(p.max_batch_size),
        }
    }

    fn slots(&self) -> usize {
        match self.mode {
            BatchMode::OneAtATime => 1,
            _ => self.max_batch_size,
        }
    }
}

/// Picks the next token from a logits row (greedy, or a seeded sampler); an error fails the request.
pub type ChooseFn = Box<dyn FnMut(&[f32]) -> Result<u32> + Send>;

/// Greedy decoding.
pub fn greedy() -> ChooseFn {
    Box::new(|logits| Ok(argmax(logits)))
}

/// What a request's stream carries: its events, then exactly one `Done`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one `Done` per request; boxing it would only burden every caller
pub enum StreamItem {
    Event(GenEvent),
    Done(Result<Completion>),
}

/// A finished request: the output and the scheduler's internals (`mean_batch_occupancy`, `queue_wait_s`,
/// `batch_steps`).
#[derive(Debug, Clone)]
pub struct Completion {
    pub output: GenOutput,
    pub stats: PolicyStats,
}

/// Where a request's stream goes. `send` returns false once nobody listens (the request is then cancelled).
/// Implemented for std channel senders and for closures. It runs on the request's worker thread: a blocking
/// sink (a full `SyncSender`) holds up the whole batch, so prefer unbounded channels.
pub trait EventSink: Send + 'static {
    fn send(&mut self, item: StreamItem) -> bool;
}

impl EventSink for Sender<StreamItem> {
    fn send(&mut self, item: StreamItem) -> bool {
        Sender::send(self, item).is_ok()
    }
}

impl EventSink for SyncSender<StreamItem> {
    fn send(&mut self, item: StreamItem) -> bool {
        SyncSender::send(self, item).is_ok()
    }
}

impl<F: FnMut(StreamItem) -> bool + Send + 'static> EventSink for F {
    fn send(&mut self, item: StreamItem) -> bool {
        self(item)
    }
}

/// A submitted request: its id and its cancellation switch. Dropping the handle does not cancel.
#[derive(Debug, Clone)]
pub struct RequestHandle {
    id: u64,
    cancel: Arc<AtomicBool>,
}


impl RequestHandle {
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Stop the request: it finishes with `FinishReason::Cancelled` and leaves its slot before the next step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }
}

/// A snapshot of the scheduler's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    pub active: usize,
    pub waiting: usize,
    /// Engine steps (batched forwards) run so far.
    pub steps: u64,
}

#[derive(Default)]
struct Gauges {
    active: AtomicUsize,
    waiting: AtomicUsize,
    steps: AtomicU64,
}

struct Submission {
    id: u64,
    req: GenRequest,
    choose: ChooseFn,
    sink: Box<dyn EventSink>,
    /// The handle's switch or the request's own `GenRequest::cancel`.
    cancel: Cancel,
    submitted: Instant,
}

/// Serves concurrent generation requests on one engine; see the module doc.
pub struct Scheduler {
    tx: Option<Sender<Submission>>,
    thread: Option<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
    next_id: AtomicU64,
    gauges: Arc<Gauges>,
    pub config: SchedulerConfig,
}

impl Scheduler {
    pub fn new(engine: Arc<Engine>, config: SchedulerConfig) -> Result<Scheduler> {
        if config.max_batch_size == 0 {
            return Err(EngineError::InvalidRequest("scheduler max_batch_size must be at least 1".into()));
        }
        if config.max_step_tokens == 0 {
            return Err(EngineError::InvalidRequest("scheduler max_step_tokens must be at least 1".into()));
        }
        let (tx, rx) = mpsc::channel();
        let shutdown = Arc::new(AtomicBool::new(false));
        let gauges = Arc::new(Gauges::default());
        let mut core = Core {
            engine,
            config,
            rx,
            waiting: VecDeque::new(),
            active: Vec::new(),
            shutdown: shutdown.clone(),
            gauges: gauges.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("ttc-scheduler".into())
            .spawn(move || core.run())
            .map_err(|e| EngineError::InvalidRequest(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Scheduler { tx: Some(tx), thread: Some(thread), shutdown, next_id: AtomicU64::new(0), gauges, config })
    }

    /// Queue a request. Its stream goes to `sink`; `choose` picks its tokens. Fails only if the scheduler stopped;
    /// a request that cannot run (too long a prompt) gets `StreamItem::Done(Err(..))` on its sink.
    pub fn submit(&self, req: GenRequest, choose: ChooseFn, sink: impl EventSink) -> Result<RequestHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let either = Cancel::flag(cancel.clone()).or(req.cancel.clone());
        let sub = Submission { id, req, choose, sink: Box::new(sink), cancel: either, submitted: Instant::now() };
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(sub).map_err(|_| stopped())?;
        Ok(RequestHandle { id, cancel })
    }

    pub fn load(&self) -> Load {
        Load {
            active: self.gauges.active.load(Ordering::Relaxed),
            waiting: self.gauges.waiting.load(Ordering::Relaxed),
            steps: self.gauges.steps.load(Ordering::Relaxed),
        }
    }

    /// Cancel every queued and running request and stop the thread (also what dropping the scheduler does).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stopped() -> EngineError {
    EngineError::InvalidRequest("the scheduler has stopped".into())
}

/// Scheduler thread -> worker.
#[allow(clippy::large_enum_variant)] // `Finish` is sent once per request
enum ToWorker {
    /// The request to decode (always the first message).
    Start(Box<Submission>),
    /// Logits of the last position fed; choose and emit the next token.
    Logits(Vec<f32>),
    /// The request is over: close the stream with these internals (`cancelled` forces that finish reason).
    Finish { stats: PolicyStats, prefill_s: f64, cancelled: bool, cached_tokens: usize },
    /// The engine failed on this request's step.
    Fail(String),
}

/// Worker -> scheduler thread, one reply per `Logits`.
enum FromWorker {
    /// Feed this token next.
    Next(u32),
    /// Finished (stop token, stop string, length, cancelled by its listener, or sampler error).
    Done,
}

/// One admitted request, as the scheduler thread sees it.
struct Active {
    cache: KvCache,
    /// Tokens still to feed: the prompt's unfed part while prefilling, then the last chosen token.
    feed: Vec<u32>,
    /// True until the prompt's last chunk has run.
    prefilling: bool,
    /// The whole prompt, offered to the engine's prefix cache once prefilled.
    prompt: Vec<u32>,
    /// Prompt tokens loaded from the prefix cache at admission.
    cached_tokens: usize,
    /// When the step with the prompt's first chunk started.
    prefill_started: Option<Instant>,
    to_worker: Sender<ToWorker>,
    from_worker: Receiver<FromWorker>,
    worker: Option<JoinHandle<()>>,
    cancel: Cancel,
    submitted: Instant,
    admitted: Instant,
    prefill_s: f64,
    steps: u64,
    occupancy_sum: u64,
    finished: bool,
}

impl Active {
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            mean_batch_occupancy: Some(if self.steps == 0 { 0.0 } else { self.occupancy_sum as f64 / self.steps as f64 }),
            queue_wait_s: Some((self.admitted - self.submitted).as_secs_f64()),
            batch_steps: Some(self.steps),
            ..PolicyStats::default()
        }
    }

    /// Tell the worker to close the stream, and wait for it so its events precede whatever comes next.
    fn close(mut self, cancelled: bool) {
        let stats = self.stats();
        let _ = self.to_worker.send(ToWorker::Finish { stats, prefill_s: self.prefill_s, cancelled, cached_tokens: self.cached_tokens });
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

struct Core {
    engine: Arc<Engine>,
    config: SchedulerConfig,
    rx: Receiver<Submission>,
    waiting: VecDeque<Submission>,
    active: Vec<Active>,
    shutdown: Arc<AtomicBool>,
    gauges: Arc<Gauges>,
}

impl Core {
    fn run(&mut self) {
        loop {
            if !self.intake() || self.shutdown.load(Ordering::Acquire) {
                break;
            }
            self.drop_cancelled();
            self.admit();
            if !self.active.is_empty() {
                self.step();
            }
        }
        // Shutdown (or every sender gone with nothing left): cancel what remains.
        for a in self.take_active(|_| true) {
            a.close(true);
        }
        while let Some(s) = self.waiting.pop_front() {
            finish_unstarted(s, FinishReason::Cancelled);
        }
        while let Ok(s) = self.rx.try_recv() {
            finish_unstarted(s, FinishReason::Cancelled);
        }
        self.publish();
    }

    /// Move new submissions into the queue; block when idle. False once nothing more can arrive and all is done.
    fn intake(&mut self) -> bool {
        if self.active.is_empty() && self.waiting.is_empty() {
            match self.rx.recv() {
                Ok(s) => self.waiting.push_back(s),
                Err(_) => return false,
            }
        }
        loop {
            match self.rx.try_recv() {
                Ok(s) => self.waiting.push_back(s),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return !(self.active.is_empty() && self.waiting.is_empty()),
            }
        }
    }

    fn drop_cancelled(&mut self) {
        let (cancelled, waiting): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|s| s.cancel.is_cancelled());
        self.waiting = waiting.into();
        self.publish();
        for s in cancelled {
            finish_unstarted(s, FinishReason::Cancelled);
        }
        let cancelled = self.take_active(|a| a.cancel.is_cancelled());
        for a in cancelled {
            a.close(true);
        }
    }

    /// Remove the active sequences matching `leave` (keeping the others' order) and publish the new load before
    /// their streams close, so a caller that sees `Done` also sees the freed slot.
    fn take_active(&mut self, leave: impl Fn(&Active) -> bool) -> Vec<Active> {
        let (gone, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active).into_iter().partition(|a| leave(a));
        self.active = stay;
        self.publish();
        gone
    }

    fn admit(&mut self) {
        let slots = self.config.slots();
        if self.config.mode == BatchMode::Static && !self.active.is_empty() {
            return;
        }
        let mut failed = Vec::new();
        while self.active.len() < slots {
            let Some(sub) = self.waiting.pop_front() else { break };
            match self.start(sub) {
                Ok(a) => self.active.push(a),
                Err(f) => failed.push(f),
            }
        }
        self.publish();
        for f in failed {
            let (sub, e) = *f;
            finish_with_error(sub, e);
        }
    }

    /// Admit one request: reserve its KV cache and start its worker. Orca reserves prompt + max_tokens; we reserve
    /// at most 256 generated entries up front (the cache grows by doubling past that), so a large max_tokens does
    /// not pin memory it may never use.
    fn start(&self, sub: Submission) -> std::result::Result<Active, Box<(Submission, EngineError)>> {
        if let Err(e) = self.engine.check_fits(sub.req.prompt.len(), sub.req.max_tokens) {
            return Err(Box::new((sub, e)));
        }
        let cfg = &self.engine.model.cfg;
        let cap = sub.req.prompt.len() + sub.req.max_tokens.min(256) + 1;
        let mut cache = match KvCache::with_capacity(cfg.n_layer, cfg.n_head_kv, cfg.head_dim, cap) {
            Ok(c) => c,
            Err(e) => return Err(Box::new((sub, e))),
        };
        let (to_worker, worker_rx) = mpsc::channel();
        let (worker_tx, from_worker) = mpsc::channel();
        let engine = self.engine.clone();
        // The thread starts first and receives the submission afterwards, so a failed spawn still owns the request.
        let spawned =
            std::thread::Builder::new().name(format!("ttc-seq-{}", sub.id)).spawn(move || worker(engine, worker_rx, worker_tx));
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                return Err(Box::new((sub, EngineError::InvalidRequest(format!("cannot start a request thread: {e}")))))
            }
        };
        let cached_tokens = self.engine.load_prefix(&sub.req.prompt, &mut cache);
        let feed = sub.req.prompt[cached_tokens..].to_vec();
        let prompt = sub.req.prompt.clone();
        let (cancel, submitted) = (sub.cancel.clone(), sub.submitted);
        // The worker holds the receiving end until it exits, so this send cannot fail.
        let _ = to_worker.send(ToWorker::Start(Box::new(sub)));
        Ok(Active {
            cache,
            feed,
            prefilling: true,
            prompt,
            cached_tokens,
            prefill_started: None,
            to_worker,
            from_worker,
            worker: Some(worker),
            cancel,
            submitted,
            admitted: Instant::now(),
            prefill_s: 0.0,
            steps: 0,
            occupancy_sum: 0,
            finished: false,
        })
    }

    fn publish(&self) {
        self.gauges.active.store(self.active.len(), Ordering::Relaxed);
        self.gauges.waiting.store(self.waiting.len(), Ordering::Relaxed);
    }

    /// How many tokens each active sequence feeds this step: 1 for a decoding sequence; prompt chunks, in
    /// admission order, from the budget the decoders leave (at least one token, so prefill always progresses).
    fn plan_step(&self) -> Vec<usize> {
        let decoders = self.active.iter().filter(|a| !a.prefilling).count();
        let mut budget = self.config.max_step_tokens.saturating_sub(decoders).max(1);
        self.active
            .iter()
            .map(|a| {
                if !a.prefilling {
                    return 1;
                }
                let n = a.feed.len().min(budget);
                budget -= n;
                n
            })
            .collect()
    }

    /// One engine step: every decoding sequence's next token and the planned prompt chunks in one forward.
    fn step(&mut self) {
        let plan = self.plan_step();
        let t0 = Instant::now();
        let result = {
            let mut inputs: Vec<SeqInput<'_>> = self
                .active
                .iter_mut()
                .zip(&plan)
                .filter(|(_, &n)| n > 0)
                .map(|(a, &n)| {
                    // Logits only where the prompt is complete after this chunk (or for a decoding token).
                    let logits = if n == a.feed.len() { LogitsMode::Last } else { LogitsMode::None };
                    SeqInput { tokens: &a.feed[..n], cache: &mut a.cache, logits }
                })
                .collect();
            self.engine.model.forward_batch(&mut inputs)
        };
        self.gauges.steps.fetch_add(1, Ordering::Relaxed);
        let rows = result.and_then(|out| {
            out.iter().map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?)).collect::<Result<Vec<Vec<f32>>>>()
        });
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                for a in self.take_active(|_| true) {
                    let _ = a.to_worker.send(ToWorker::Fail(msg.clone()));
                    let mut a = a;
                    if let Some(w) = a.worker.take() {
                        let _ = w.join();
                    }
                }
                return;
            }
        };
        let ended = Instant::now();
        let n = plan.iter().filter(|&&n| n > 0).count() as u64;
        let mut rows = rows.into_iter();
        let mut asked = vec![false; self.active.len()];
        for ((a, &fed), asked) in self.active.iter_mut().zip(&plan).zip(&mut asked) {
            if fed == 0 {
                continue;
            }
            let row = rows.next().unwrap_or_default();
            a.steps += 1;
            a.occupancy_sum += n;
            a.feed.drain(..fed);
            if a.prefilling {
                let started = *a.prefill_started.get_or_insert(t0);
                if !a.feed.is_empty() {
                    continue; // more prompt to feed: no logits yet
                }
                a.prefilling = false;
                a.prefill_s = (ended - started).as_secs_f64();
                self.engine.store_prefix(&a.prompt, &a.cache);
            }
            *asked = true;
            if a.to_worker.send(ToWorker::Logits(row)).is_err() {
                a.finished = true;
            }
        }
        // Workers choose and emit in parallel; collect their answers in order.
        for (a, asked) in self.active.iter_mut().zip(asked) {
            if !asked || a.finished {
                continue;
            }
            match a.from_worker.recv() {
                Ok(FromWorker::Next(t)) => a.feed = vec![t],
                Ok(FromWorker::Done) | Err(_) => a.finished = true,
            }
        }
        for a in self.take_active(|a| a.finished) {
            a.close(false);
        }
    }
}

/// The decoding side of one request: choose from each logits row, emit through an `Emitter`, answer the scheduler.
fn worker(engine: Arc<Engine>, rx: Receiver<ToWorker>, tx: Sender<FromWorker>) {
    let Ok(ToWorker::Start(sub)) = rx.recv() else { return };
    let Submission { req, mut choose, mut sink, cancel, submitted, .. } = *sub;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut on_event = |ev: GenEvent| !cancel.is_cancelled() && sink.send(StreamItem::Event(ev));
        let mut em = Emitter::new(&engine.tokenizer, &req, submitted, &mut on_event);
        let mut error = None;
        let (stats, prefill_s) = loop {
            match rx.recv() {
                Ok(ToWorker::Logits(row)) => {
                    let reply = match choose(&row) {
                        Ok(next) if req.max_tokens > 0 && em.push(next) => FromWorker::Next(next),
                        Ok(_) => FromWorker::Done,
                        Err(e) => {
                            error = Some(e);
                            FromWorker::Done
                        }
                    };
                    let _ = tx.send(reply);
                }
                Ok(ToWorker::Finish { stats, prefill_s, cancelled, cached_tokens }) => {
                    if cancelled && em.finish.is_none() {
                        em.finish = Some(FinishReason::Cancelled);
                    }
                    em.cached_prompt_tokens = cached_tokens;
                    break (stats, prefill_s);
                }
                Ok(ToWorker::Start(_)) => continue,
                Ok(ToWorker::Fail(msg)) => {
                    error = Some(EngineError::Candle(candle_core::Error::Msg(msg)));
                    break (PolicyStats::default(), 0.0);
                }
                Err(_) => {
                    em.finish.get_or_insert(FinishReason::Cancelled);
                    break (PolicyStats::default(), 0.0);
                }
            }
        };
        let output = em.finish(req.prompt.len(), prefill_s);
        match error {
            Some(e) => Err(e),
            None => Ok(Completion { output, stats }),
        }
    }));
    let done = match result {
        Ok(r) => r,
        Err(_) => Err(EngineError::InvalidRequest("the request's sampler or event sink panicked".into())),
    };
    sink.send(StreamItem::Done(done));
}

/// Close a request that never ran: a `Finished` event and a `Done` with no tokens.
fn finish_unstarted(mut sub: Submission, reason: FinishReason) {
    let now = Instant::now();
    let usage = Usage { prompt_tokens: sub.req.prompt.len() as u32, completion_tokens: 0, ..Usage::default() };
    sub.sink.send(StreamItem::Event(GenEvent::Finished { at: now, reason, usage: Some(usage) }));
    let output = GenOutput {
        token_ids: vec![],
        text: String::new(),
        finish_reason: reason,
        usage,
        ttft_s: 0.0,
        prefill_s: 0.0,
        decode_s: 0.0,
    };
    let stats = PolicyStats {
        queue_wait_s: Some((now - sub.submitted).as_secs_f64()),
        batch_steps: Some(0),
        ..PolicyStats::default()
    };
    sub.sink.send(StreamItem::Done(Ok(Completion { output, stats })));
}

fn finish_with_error(mut sub: Submission, e: EngineError) {
    sub.sink.send(StreamItem::Done(Err(e)));
}
