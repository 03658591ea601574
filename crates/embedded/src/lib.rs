//! The embedded backend: the contract's [`Backend`] trait over our in-process engine.
//!
//! The engine is synchronous and CPU-bound, so it runs on its own worker thread; `generate` hands the job over
//! a channel and returns at once with an event stream the worker feeds (`blocking_send`). When the runner drops
//! the stream (timeout, abort) the worker's next send fails and the generation is cancelled, freeing the
//! engine. The engine reports a request's policy stats when its generation returns, after its own `Finished`
//! token event, so that one event waits here and leaves as the contract's `Finished`, stats included.
//!
//! The engine keeps its own `ChatMessage` and `GenRequest` (its prompt and job, below the contract: the engine
//! does not depend on `ttc-contract`); this adapter converts the contract's request into them.
//!
//! Cancellation points: a job whose stream was dropped while it waited in the queue is skipped before its
//! prefill, a prefill stops between two chunks (`Engine::prefill_chunk` tokens, polled through
//! `GenRequest::cancel`), and a decode stops at its next emitted token.
//!
//! Each job runs inside a panic boundary: a panic fails that request with an error event and the worker
//! goes on with the next job. [`EmbeddedBackend::worker_alive`] tells whether the thread still runs.
//!
//! Batching policies go to a [`Scheduler`] of their own instead (one per policy, started on first use), which
//! decodes every request in flight together; the runner gives such a policy its own phase and concurrency, so
//! the worker thread and a scheduler never compete for the cores.

mod fault;

#[cfg(feature = "fault-injection")]
pub use fault::Fault;

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use ttc_contract::{
    event_channel, Backend, BackendError, BackendInfo, ChatMessage, EventSender, EventStream, GenEvent, GenRequest,
};
use ttc_engine::chooser::Chooser;
use ttc_engine::logprobs::LogprobTap;
use ttc_engine::policy::{Algorithm, BatchingParams};
use ttc_engine::scheduler::{ChooseFn, EventSink, Scheduler, StreamItem};
use ttc_engine::engine::SharedPrefixCache;
use ttc_engine::fidelity::Trajectory;
use ttc_engine::{Cancel, Engine, EngineError, Policy};
use ttc_sampling::{Pruning, SamplerConfig};
use ttc_types::{Fidelity, PolicyStats, TokenLogprob};
/// The engine's per-token event; [`GenEvent::from_engine`] turns it into the contract's.
type EngineEvent = ttc_types::GenEvent;

struct Job {
    prompt: JobPrompt,
    policy: Policy,
    max_tokens: usize,
    sampling: Option<SamplerConfig>,
    /// Logprob alternatives per output token (None: no logprobs).
    logprobs: Option<usize>,
    /// Teacher-forced logprobs of the prompt's tokens with this many alternatives, sent before generating.
    score_prompt: Option<(usize, PromptScores)>,
    events: EventSender,
    /// What a router's rules may test besides the prompt.
    tags: ttc_engine::policy::RouteTags,
}

/// (prompt token ids, max_tokens): what a greedy trajectory depends on.
type PromptKey = (Vec<u32>, usize);
/// Oldest first (evicted first); see `KEPT_TRAJECTORIES`.
type KeptTrajectories = Vec<(PromptKey, Arc<Trajectory>)>;

/// A chat (rendered with the model's template) or raw token ids (`/v1/completions`).
enum JobPrompt {
    Chat(Vec<ttc_engine::ChatMessage>),
    Tokens(Vec<u32>),
}

/// Where a job's prompt logprobs go: entry i scores prompt token i given the tokens before it (None for the first).
pub type PromptScores = tokio::sync::oneshot::Sender<Result<Vec<Option<TokenLogprob>>, BackendError>>;

/// The receiving end of [`PromptScores`].
pub type PromptScoresReceiver = tokio::sync::oneshot::Receiver<Result<Vec<Option<TokenLogprob>>, BackendError>>;

/// Greedy trajectories kept for the fidelity replay: the pass goes sample by sample, so a few suffice (each holds
/// one logits row per token, 192 KiB).
const KEPT_TRAJECTORIES: usize = 4;
/// The fidelity replay's prefix cache: room for the KV of a few long prompts (about 45 KiB per token).
const REPLAY_PREFIX_CACHE_BYTES: usize = 256 << 20;

pub struct EmbeddedBackend {
    engine: Arc<Engine>,
    jobs: mpsc::Sender<Job>,
    worker: JoinHandle<()>,
    #[cfg(feature = "fault-injection")]
    faults: fault::Faults,
    /// Names of the policies already checked against the model.
    checked: Mutex<HashSet<String>>,
    /// One scheduler per batching policy, started on first use.
    schedulers: Mutex<HashMap<String, Arc<Scheduler>>>,
    /// The full model's greedy trajectories (tokens and logits rows) of the latest few (prompt, max_tokens):
    /// computed once per sample, replayed by every policy's fidelity pass (the pass goes sample by sample).
    trajectories: Arc<Mutex<KeptTrajectories>>,
    /// The fidelity replay's own prefix cache: the policies replayed on one prompt load its KV instead of
    /// prefilling it again. Measured requests never see it (`Engine::with_thread_prefix_cache`).
    replay_prefix: OnceLock<Result<SharedPrefixCache, String>>,
    /// Fidelity of the plain greedy loop per (prompt, max_tokens): baseline and batching policies replay exactly
    /// that loop with the same chooser, so one replay serves all of them.
    plain_fidelity: Arc<Mutex<HashMap<(PromptKey, String), Fidelity>>>,
}

impl EmbeddedBackend {
    pub fn new(engine: Arc<Engine>) -> EmbeddedBackend {
        let (tx, rx) = mpsc::channel::<Job>();
        let worker_engine = engine.clone();
        let faults = fault::Faults::default();
        let worker_faults = faults.clone();
        let worker = std::thread::Builder::new()
            .name("ttc-engine".into())
            .spawn(move || {
                for job in rx {
                    worker_faults.before_job();
                    run_guarded(&worker_engine, job, &worker_faults);
                }
            })
            .expect("spawn engine thread");
        EmbeddedBackend {
            engine,
            jobs: tx,
            worker,
            #[cfg(feature = "fault-injection")]
            faults,
            checked: Mutex::new(HashSet::new()),
            schedulers: Mutex::new(HashMap::new()),
            trajectories: Arc::default(),
            replay_prefix: OnceLock::new(),
            plain_fidelity: Arc::default(),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Whether the engine thread still runs. Panics inside a job are caught, so it only stops on a panic
    /// outside any job; then every request fails and `ttc serve`'s `/health` reports it.
    pub fn worker_alive(&self) -> bool {
        !self.worker.is_finished()
    }

    /// Makes the worker fail on purpose (tests of the panic boundary and of `/health`).
    #[cfg(feature = "fault-injection")]
    pub fn inject(&self, fault: Fault) {
        self.faults.set(fault);
    }

    /// The request's policy, checked against this model once per name (a layer index past the model's depth is
    /// an invalid request, not a silent clamp).
    fn policy(&self, policy: &Policy) -> Result<Policy, BackendError> {
        let mut checked = relock(&self.checked);
        if !checked.contains(&policy.name) {
            self.engine.check_policy(policy).map_err(|e| BackendError::InvalidRequest(e.to_string()))?;
            checked.insert(policy.name.clone());
        }
        Ok(policy.clone())
    }
}

impl EmbeddedBackend {
    /// Generate from raw prompt token ids (no chat template) under `request`'s policy and sampling, queued on the
    /// engine thread like any request (`/v1/completions`). With `score_prompt: Some(k)` the prompt's
    /// teacher-forced logprobs (k alternatives each) arrive on the returned receiver before generation starts.
    /// `max_tokens: 0` only scores. Batching policies are served by the engine thread here too (one prompt at a
    /// time), since scoring needs the whole prompt's logits, which a scheduler step does not keep.
    pub fn generate_tokens(
        &self,
        prompt: Vec<u32>,
        request: &GenRequest,
        score_prompt: Option<usize>,
    ) -> Result<(EventStream, Option<PromptScoresReceiver>), BackendError>
    {
        request.validate()?;
        let policy = self.policy(&request.policy)?;
        let (tx, stream) = event_channel(256);
        let (score_tx, score_rx) = match score_prompt {
            Some(k) => {
                let (t, r) = tokio::sync::oneshot::channel();
                (Some((k, t)), Some(r))
            }
            None => (None, None),
        };
        let job = Job {
            prompt: JobPrompt::Tokens(prompt),
            policy,
            max_tokens: request.max_tokens as usize,
            sampling: sampling_from_request(request),
            logprobs: request.logprobs.map(|k| k as usize),
            score_prompt: score_tx,
            events: tx,
            tags: request.tags.clone(),
        };
        self.jobs.send(job).map_err(|_| BackendError::Engine("the engine thread has stopped".into()))?;
        Ok((stream, score_rx))
    }

    fn scheduler(&self, policy: &Policy, params: &BatchingParams) -> Result<Arc<Scheduler>, BackendError> {
        let mut map = relock(&self.schedulers);
        if let Some(s) = map.get(&policy.name) {
            return Ok(s.clone());
        }
        // A step's token budget is the engine's prefill chunk: prompts join a running batch chunk by chunk.
        let config = ttc_engine::scheduler::SchedulerConfig::for_batching(params).with_step_tokens(self.engine.prefill_chunk);
        let s = Arc::new(Scheduler::new(self.engine.clone(), config).map_err(engine_error)?);
        map.insert(policy.name.clone(), s.clone());
        Ok(s)
    }

    /// See [`Backend::fidelity`]. Runs on a blocking thread beside the (idle) engine worker: the runner calls it
    /// before the measured requests, never during them.
    async fn teacher_forced(&self, request: &GenRequest) -> Result<Fidelity, BackendError> {
        let policy = self.policy(&request.policy)?;
        let engine = self.engine.clone();
        let messages = engine_messages(&request.messages);
        let sampling = sampling_from_request(request);
        let max_tokens = request.max_tokens as usize;
        let tags = request.tags.clone();
        let cache = self.trajectories.clone();
        let replay_prefix = self
            .replay_prefix
            .get_or_init(|| self.engine.new_prefix_cache(REPLAY_PREFIX_CACHE_BYTES).map_err(|e| e.to_string()))
            .clone()
            .map_err(BackendError::Engine)?;
        // Keyed by the sampler too: a policy's `remote.temperature` changes the run's sampler for it.
        let plain_key = format!("{sampling:?}");
        let plain = matches!(policy.algorithm, Algorithm::Baseline | Algorithm::Batching(_))
            .then(|| self.plain_fidelity.clone());
        let work = move || -> Result<Fidelity, EngineError> {
            let prompt = engine.prompt_tokens(&messages)?;
            let req = ttc_engine::GenRequest { prompt, max_tokens, stop: Vec::new(), tags, ..Default::default() };
            let key = (req.prompt.clone(), max_tokens);
            let done_key = (key.clone(), plain_key);
            if let Some(done) = plain.as_ref().and_then(|p| relock(p).get(&done_key).cloned()) {
                return Ok(done);
            }
            let f = engine.with_thread_prefix_cache(&replay_prefix, || {
                let known = relock(&cache).iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone());
                let trajectory = match known {
                    Some(t) => t,
                    None => {
                        let t = Arc::new(engine.greedy_trajectory(&req)?);
                        let mut kept = relock(&cache);
                        if kept.len() >= KEPT_TRAJECTORIES {
                            kept.remove(0);
                        }
                        kept.push((key, t.clone()));
                        t
                    }
                };
                engine.fidelity(&req, &policy, sampling, &trajectory)
            })?;
            if let Some(p) = &plain {
                relock(p).insert(done_key, f.clone());
            }
            Ok(f)
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r.map_err(engine_error),
            Err(e) => Err(BackendError::Engine(format!("the fidelity pass failed: {e}"))),
        }
    }

    /// A batching policy's request: submitted to its scheduler, streamed back through a [`BatchSink`].
    fn generate_batched(
        &self,
        request: &GenRequest,
        policy: &Policy,
        params: &BatchingParams,
    ) -> Result<EventStream, BackendError> {
        let scheduler = self.scheduler(policy, params)?;
        let prompt = self.engine.prompt_tokens(&engine_messages(&request.messages)).map_err(engine_error)?;
        let (tx, stream) = event_channel(256);
        // A dropped stream cancels the request before its next step, also in the middle of its prefill.
        let cancel = Cancel::when({
            let tx = tx.clone();
            move || tx.is_closed()
        });
        let req = ttc_engine::GenRequest { prompt, max_tokens: request.max_tokens as usize, stop: Vec::new(), cancel, tags: request.tags.clone() };
        let mut chooser = Chooser::new(sampling_from_request(request))
            .map_err(engine_error)?
            .with_logprobs(request.logprobs.map(|k| k as usize));
        let tap = chooser.tap();
        let choose: ChooseFn = Box::new(move |logits| chooser.choose(logits));
        let sink = BatchSink { events: tx, finished: None, tap };
        scheduler.submit(req, choose, sink).map_err(engine_error)?;
        Ok(stream)
    }
}

/// Forwards a scheduled request's stream to the runner; the engine's `Finished` waits for the scheduler's stats
/// (batch occupancy, queue wait, steps), which it then carries. A failed send means the runner dropped the
/// stream: returning false cancels the request and frees its slot.
struct BatchSink {
    events: EventSender,
    finished: Option<EngineEvent>,
    /// The request's chooser records logprobs here; they join their tokens' events on the way out.
    tap: Option<LogprobTap>,
}

impl EventSink for BatchSink {
    fn send(&mut self, item: StreamItem) -> bool {
        match item {
            StreamItem::Event(ev @ EngineEvent::Finished { .. }) => {
                self.finished = Some(ev);
                true
            }
            StreamItem::Event(mut ev) => {
                if let Some(t) = &self.tap {
                    t.attach(&mut ev);
                }
                self.events.blocking_send(Ok(GenEvent::from_engine(ev, PolicyStats::default()))).is_ok()
            }
            StreamItem::Done(Ok(done)) => match self.finished.take() {
                Some(f) => self.events.blocking_send(Ok(GenEvent::from_engine(f, done.stats))).is_ok(),
                None => true,
            },
            StreamItem::Done(Err(e)) => {
                let _ = self.events.blocking_send(Err(engine_error(e)));
                false
            }
        }
    }
}

/// The contract's chat messages as the engine's.
fn engine_messages(messages: &[ChatMessage]) -> Vec<ttc_engine::ChatMessage> {
    messages.iter().map(|m| ttc_engine::ChatMessage::new(&m.role, m.content.clone())).collect()
}

/// The run's sampling settings as a sampler config (None = greedy).
pub fn sampling_from_request(r: &GenRequest) -> Option<SamplerConfig> {
    if r.temperature <= 0.0 {
        return None;
    }
    let top_p = r.top_p.unwrap_or(1.0) as f32;
    Some(SamplerConfig {
        temperature: r.temperature as f32,
        top_p,
        pruning: if top_p < 1.0 { Pruning::TopP } else { Pruning::None },
        seed: r.seed.unwrap_or(0),
        ..SamplerConfig::default()
    })
}

/// A poisoned cache map is still a valid map (every change is one `insert`), so a panic elsewhere must not
/// turn every later request into an error.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one job inside the panic boundary: a panic fails this request with an error event, and the worker
/// goes on. (The engine is shared read-only and each job builds its own KV cache, so nothing it leaves
/// half-done is seen by the next job.)
fn run_guarded(engine: &Engine, job: Job, faults: &fault::Faults) {
    let events = job.events.clone();
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run_job(engine, job, faults))) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        eprintln!("error: the engine panicked while generating a request ({what}); that request failed, the engine goes on");
        let _ = events.blocking_send(Err(BackendError::Engine(format!("the engine panicked: {what}"))));
    }
}

fn run_job(engine: &Engine, job: Job, faults: &fault::Faults) {
    let Job { prompt, policy, max_tokens, sampling, logprobs, score_prompt, events, tags } = job;
    // The client left while this job was queued: skip it before the prefill, which cannot be interrupted.
    if events.is_closed() {
        return;
    }
    faults.in_job();
    let prompt = match prompt {
        JobPrompt::Chat(messages) => match engine.prompt_tokens(&messages) {
            Ok(p) => p,
            Err(e) => {
                let _ = events.blocking_send(Err(engine_error(e)));
                return;
            }
        },
        JobPrompt::Tokens(t) => t,
    };
    if let Some((top, tx)) = score_prompt {
        let scored = engine.prompt_logprobs(&prompt, top).map_err(engine_error);
        let failed = scored.is_err();
        let _ = tx.send(scored);
        if failed {
            return; // the caller reports the scoring error; the dropped stream ends its generation
        }
    }
    if max_tokens == 0 {
        // Scoring only (`/v1/completions` with `echo` and `max_tokens: 0`): nothing to generate.
        let usage = ttc_types::Usage { prompt_tokens: prompt.len() as u32, ..Default::default() };
        let at = std::time::Instant::now();
        let _ = events.blocking_send(Ok(GenEvent::finished(at, ttc_types::FinishReason::Length, Some(usage))));
        return;
    }
    // A dropped stream stops the prefill between chunks (and the decode at its next token).
    let cancel = Cancel::when({
        let events = events.clone();
        move || events.is_closed()
    });
    let req = ttc_engine::GenRequest { prompt, max_tokens, stop: Vec::new(), cancel, tags };
    // The stats come back with the generation, after the engine's Finished: that event waits for them.
    let mut finished: Option<EngineEvent> = None;
    let mut on_event = |ev: EngineEvent| {
        if matches!(ev, EngineEvent::Finished { .. }) {
            finished = Some(ev);
            return true;
        }
        events.blocking_send(Ok(GenEvent::from_engine(ev, PolicyStats::default()))).is_ok()
    };
    match engine.generate_policy_logprobs(&req, &policy, sampling, logprobs, &mut on_event) {
        Ok((_, stats)) => {
            if let Some(f) = finished {
                let _ = events.blocking_send(Ok(GenEvent::from_engine(f, stats)));
            }
        }
        Err(e) => {
            let _ = events.blocking_send(Err(engine_error(e)));
        }
    }
}

fn engine_error(e: EngineError) -> BackendError {
    if e.is_usage_error() {
        BackendError::InvalidRequest(e.to_string())
    } else {
        BackendError::Engine(e.to_string())
    }
}

#[async_trait]
impl Backend for EmbeddedBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: "embedded".into(),
            base_url: None,
            model: self.engine.model_name.clone(),
            weights: Some(self.engine.model.format.label().to_string()),
            usage_is_engine: true,
        }
    }

    /// One engine thread decodes one request at a time; more in flight would only wait in its queue while
    /// their timeouts run. A batching policy's scheduler takes any number (beyond its batch size they queue, and
    /// that wait is what the policy measures).
    fn max_concurrency(&self, policy: &Policy) -> Option<usize> {
        (!policy.algorithm.is_batching()).then_some(1)
    }

    async fn fidelity(&self, request: &GenRequest) -> Option<Result<Fidelity, BackendError>> {
        Some(self.teacher_forced(request).await)
    }

    fn start_prefix_cache(&self, budget_bytes: usize) -> Result<bool, BackendError> {
        self.engine.start_prefix_cache(budget_bytes).map_err(|e| BackendError::InvalidRequest(e.to_string()))
    }

    async fn generate(&self, request: &GenRequest) -> Result<EventStream, BackendError> {
        request.validate()?;
        let policy = self.policy(&request.policy)?;
        if let Algorithm::Batching(params) = &policy.algorithm {
            return self.generate_batched(request, &policy, params);
        }
        let (tx, stream) = event_channel(256);
        let job = Job {
            prompt: JobPrompt::Chat(engine_messages(&request.messages)),
            policy,
            max_tokens: request.max_tokens as usize,
            sampling: sampling_from_request(request),
            logprobs: request.logprobs.map(|k| k as usize),
            score_prompt: None,
            events: tx,
            tags: request.tags.clone(),
        };
        self.jobs
            .send(job)
            .map_err(|_| BackendError::Engine("the engine thread has stopped".into()))?;
        Ok(stream)
    }
}

