//! The load generator, on tokio. Closed loop: `concurrency` workers each send their next request when the
//! previous one finished. Open loop: requests are sent at constant or Poisson arrival times, at most
//! `concurrency` in flight (later arrivals wait, in order). Every attempt, in every mode, first takes a
//! token from the rate limiter.
//!
//! Each request is retried on retryable failures (429, 5xx, connect/transport errors, timeouts, streams
//! cut before their finish) after a backoff ([`retry`]); the record keeps the attempts, the time spent in
//! backoff, and the timings of the final attempt only. Every request ends as a record, success or not.

pub mod arrival;
pub mod limiter;
pub mod retry;

use crate::backend::{Backend, BackendError, GenEvent, GenRequest};
use crate::config::{secs, Arrival, GenerationConfig, RunConfig};
use crate::plan::PlanEntry;
use crate::record::{build_record, Outcome, RunContext};
use crate::tokens::TokenCounter;
use futures_util::StreamExt;
use limiter::TokenBucket;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use retry::Backoff;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use ttc_types::{LoadTag, Record};

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub arrival: Arrival,
    pub concurrency: usize,
    /// Requests per second (token bucket; arrival rate of open loops). Infinite = no limit.
    pub rate: f64,
    pub burst: f64,
    pub warmup: usize,
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff: Backoff,
    pub seed: u64,
}

impl RunnerSettings {
    pub fn from_config(cfg: &RunConfig) -> RunnerSettings {
        let l = &cfg.load;
        RunnerSettings {
            arrival: l.arrival,
            concurrency: l.concurrency.0.min(1 << 20) as usize,
            rate: l.rate.0,
            burst: l.burst.map(|b| b.0).unwrap_or(l.concurrency.0 as f64),
            warmup: l.warmup,
            timeout: secs(l.timeout_s.0),
            max_retries: l.max_retries,
            backoff: Backoff {
                base: secs(l.backoff.base_s.0),
                cap: secs(l.backoff.cap_s.0),
                max_retry_after: secs(l.max_retry_after_s.0),
            },
            seed: cfg.seed,
        }
    }
}

/// A plan entry with its request built.
#[derive(Debug, Clone)]
pub struct Job {
    pub entry: PlanEntry,
    pub request: GenRequest,
}

/// Builds each request: the run's `generation` values, overridden by the policy's `remote` settings.
pub fn make_jobs(entries: &[PlanEntry], generation: &GenerationConfig, default_model: &str) -> Vec<Job> {
    entries
        .iter()
        .map(|e| {
            let remote = e.policy.remote.clone().unwrap_or_default();
            let request = GenRequest {
                messages: e.item.messages.clone(),
                policy: e.policy.clone(),
                model: remote.model.unwrap_or_else(|| default_model.to_string()),
                max_tokens: remote.max_tokens.unwrap_or(generation.max_tokens.0.min(u32::MAX as u64) as u32),
                temperature: remote.temperature.unwrap_or(generation.temperature.0),
                top_p: remote.top_p.or(generation.top_p.map(|p| p.0)),
                seed: remote.seed.or(generation.seed),
                extra_body: remote.extra_body.into_iter().collect(),
                logprobs: generation.logprobs.map(|k| k.0),
                tags: ttc_policy::RouteTags { suite: Some(e.item.suite.clone()), task: e.item.task.clone() },
            };
            Job { entry: e.clone(), request }
        })
        .collect()
}

/// Applies each suite's own `max_tokens` (`suites: [{name, max_tokens}]`) to its jobs, except where the policy's
/// `remote.max_tokens` set the request's limit.
pub fn apply_suite_max_tokens(jobs: &mut [Job], suites: &[crate::config::SuiteConfig]) {
    for job in jobs {
        let own = suites.iter().find(|s| s.name == job.entry.item.suite).and_then(|s| s.max_tokens);
        let remote_set = job.entry.policy.remote.as_ref().is_some_and(|r| r.max_tokens.is_some());
        if let (Some(m), false) = (own, remote_set) {
            job.request.max_tokens = m.0.min(u32::MAX as u64) as u32;
        }
    }
}

/// Jobs that run together at one concurrency: every policy without its own `concurrency` (`policy: None`), or
/// one suite of one policy that sets it (`policy: Some((policy, suite))`).
#[derive(Debug, Clone)]
pub struct Phase {
    pub policy: Option<(String, String)>,
    pub concurrency: usize,
    pub jobs: Vec<Job>,
}

/// How one phase is driven and tagged beyond its arrival process (load sweeps and capacity probes).
#[derive(Debug, Clone, Default)]
pub struct PhaseLoad {
    /// Copied into every record of the phase.
    pub tag: LoadTag,
    /// Open loop: when a request has waited this long in the queue the phase is saturated: the requests still
    /// queued are recorded as not served (`abandoned` errors), no more arrive, and the phase ends.
    pub abandon_after: Option<Duration>,
    /// Records of the first `discard` arrivals are not sent on (a probe's warm-up: the queue fills first).
    pub discard: usize,
}

/// What the driver saw of one phase besides its records.
#[derive(Debug, Clone, Default)]
pub struct PhaseReport {
    /// Requests given up (queue wait past `abandon_after`, or the run stopped).
    pub abandoned: usize,
    /// How late the load generator dispatched each arrival, seconds (open loop).
    pub dispatch_lag_s: Vec<f64>,
}

/// When the measured part of a run started and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct RunTiming {
    pub started: std::time::Instant,
    pub wall: Duration,
}

pub struct Runner {
    backend: Arc<dyn Backend>,
    settings: RunnerSettings,
    ctx: Arc<RunContext>,
    counter: Option<Arc<dyn TokenCounter>>,
    limiter: Option<TokenBucket>,
    stop: Arc<AtomicBool>,
}

impl Runner {
    pub fn new(
        backend: Arc<dyn Backend>,
        settings: RunnerSettings,
        ctx: RunContext,
        counter: Option<Arc<dyn TokenCounter>>,
    ) -> Runner {
        let limiter = (!settings.rate.is_infinite()).then(|| TokenBucket::new(settings.rate, settings.burst));
        Runner { backend, settings, ctx: Arc::new(ctx), counter, limiter, stop: Arc::new(AtomicBool::new(false)) }
    }

    /// Requests of `policy` served at once in a load phase: what the backend takes at once (one for a
    /// one-at-a-time engine), else the policy's own `concurrency`, else the run's.
    pub fn slots_for(&self, policy: &crate::config::Policy) -> usize {
        let own = policy.concurrency.map(|c| c.min(1 << 20) as usize).unwrap_or(self.settings.concurrency);
        match self.backend.max_concurrency(policy) {
            Some(cap) if cap > 0 => cap.min(own.max(1)),
            _ => own.max(1),
        }
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// Set it to stop sending new requests (Ctrl-C); requests in flight finish and are recorded.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Jobs in the phases they run in, one phase after another: first the jobs of every policy without a
    /// concurrency of its own, together and in plan order (those policies stay interleaved in time), then each
    /// policy that sets `concurrency` alone, one suite at a time (a homogeneous load, and per-suite throughput that
    /// no other suite's requests share). Each phase's concurrency is capped to what the backend serves at once for
    /// its policies.
    pub fn phases(&self, jobs: &[Job]) -> Vec<Phase> {
        let mut phases: Vec<Phase> = Vec::new();
        for job in jobs {
            let policy = &job.entry.policy;
            let own = policy.concurrency.map(|c| c.min(1 << 20) as usize);
            let key = own.map(|_| (policy.name.clone(), job.entry.item.suite.clone()));
            let i = match phases.iter().position(|p| p.policy == key) {
                Some(i) => i,
                None => {
                    let concurrency = own.unwrap_or(self.settings.concurrency);
                    phases.push(Phase { policy: key, concurrency, jobs: Vec::new() });
                    phases.len() - 1
                }
            };
            let phase = &mut phases[i];
            if let Some(cap) = self.backend.max_concurrency(policy).filter(|&c| c > 0 && c < phase.concurrency) {
                tracing::info!(
                    policy = %policy.name,
                    configured = phase.concurrency,
                    backend = cap,
                    "concurrency capped to what the backend serves at once"
                );
                phase.concurrency = cap;
            }
            phase.jobs.push(job.clone());
        }
        phases.sort_by_key(|p| p.policy.is_some()); // stable: the shared phase first
        phases
    }

    /// Sends `settings.warmup` requests (cycling over the first phase's jobs) and throws their records away.
    pub async fn warmup(self: &Arc<Self>, jobs: &[Job]) {
        let n = self.settings.warmup;
        let Some(first) = self.phases(jobs).into_iter().next() else { return };
        if n == 0 {
            return;
        }
        let warm: Arc<[Job]> = (0..n).map(|i| first.jobs[i % first.jobs.len()].clone()).collect();
        let (tx, mut rx) = mpsc::channel(1024);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let start = Instant::now();
        self.closed_loop(warm, tx, start, first.concurrency.min(n), None, &PhaseLoad::default()).await;
        let _ = drain.await;
        tracing::info!(requests = n, seconds = start.elapsed().as_secs_f64(), "warm-up done");
    }

    /// Runs every job once (with retries), phase after phase (see [`Runner::phases`]); each record goes to `out`
    /// as soon as it is complete.
    pub async fn run(self: &Arc<Self>, jobs: Arc<[Job]>, out: mpsc::Sender<Record>) -> RunTiming {
        let start = Instant::now();
        let phases = self.phases(&jobs);
        let several = phases.len() > 1;
        for phase in phases {
            if self.stop.load(Ordering::Relaxed) || out.is_closed() {
                break;
            }
            if several {
                let (policy, suite) = phase.policy.clone().unwrap_or_else(|| ("(shared)".into(), "(all)".into()));
                tracing::info!(
                    policy = %policy,
                    suite = %suite,
                    requests = phase.jobs.len(),
                    concurrency = phase.concurrency,
                    "phase"
                );
            }
            let jobs: Arc<[Job]> = phase.jobs.into();
            let load = PhaseLoad::default();
            match arrival::offsets(self.settings.arrival, self.settings.rate, jobs.len(), self.settings.seed) {
                None => self.closed_loop(jobs, out.clone(), start, phase.concurrency, None, &load).await,
                Some(offsets) => {
                    self.open_loop(jobs, offsets, out.clone(), start, phase.concurrency, &load).await;
                }
            }
        }
        RunTiming { started: start.into_std(), wall: start.elapsed() }
    }

    /// `workers` clients, each sending its next request when the previous one finished. With `slots`, the backend
    /// serves at most that many at once and the clients wait for a slot in arrival order (FCFS); the wait counts
    /// in their TTFT and E2E.
    pub(crate) async fn closed_loop(
        self: &Arc<Self>,
        jobs: Arc<[Job]>,
        out: mpsc::Sender<Record>,
        start: Instant,
        workers: usize,
        slots: Option<usize>,
        load: &PhaseLoad,
    ) {
        let next = Arc::new(AtomicUsize::new(0));
        let slots = slots.map(|n| Arc::new(Semaphore::new(n.max(1))));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers.min(jobs.len()).max(1) {
            let (me, jobs, next, out, slots) = (self.clone(), jobs.clone(), next.clone(), out.clone(), slots.clone());
            let load = load.clone();
            set.spawn(async move {
                loop {
                    if me.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let arrived = Instant::now();
                    let permit = match &slots {
                        Some(s) => match s.clone().acquire_owned().await {
                            Ok(p) => Some(p),
                            Err(_) => break,
                        },
                        None => None,
                    };
                    let rec = me.execute_tagged(job, start, slots.is_some().then_some(arrived), &load.tag).await;
                    drop(permit);
                    if i < load.discard {
                        continue;
                    }
                    if out.send(rec).await.is_err() {
                        break; // the collector is gone (store failure): stop
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// Open loop: job i arrives at `offsets[i]` from now and joins a FIFO queue that `servers` tasks take requests
    /// from (a first-come-first-served queue in front of a backend serving `servers` at once). Records keep their
    /// offsets from the run's `start`; their timings start at the arrival.
    pub(crate) async fn open_loop(
        self: &Arc<Self>,
        jobs: Arc<[Job]>,
        offsets: Vec<Duration>,
        out: mpsc::Sender<Record>,
        start: Instant,
        servers: usize,
        load: &PhaseLoad,
    ) -> PhaseReport {
        let phase_start = Instant::now();
        let (queue_tx, queue_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
        let queue_rx = Arc::new(tokio::sync::Mutex::new(queue_rx));
        let saturated = Arc::new(AtomicBool::new(false));
        let abandoned = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..servers.max(1) {
            let (me, jobs, out, queue_rx) = (self.clone(), jobs.clone(), out.clone(), queue_rx.clone());
            let (saturated, abandoned, load) = (saturated.clone(), abandoned.clone(), load.clone());
            set.spawn(async move {
                loop {
                    // The lock is held only while waiting for the next arrival: servers take requests in order.
                    let next = queue_rx.lock().await.recv().await;
                    let Some((i, arrived)) = next else { break };
                    if me.stop.load(Ordering::Relaxed) {
                        abandoned.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if let Some(limit) = load.abandon_after {
                        if arrived.elapsed() > limit {
                            saturated.store(true, Ordering::Relaxed);
                        }
                        // Once saturated, every request still queued is given up and recorded as not served.
                        if saturated.load(Ordering::Relaxed) {
                            abandoned.fetch_add(1, Ordering::Relaxed);
                            let rec = me.abandoned(&jobs[i], start, arrived, &load.tag, limit);
                            if i >= load.discard && out.send(rec).await.is_err() {
                                break;
                            }
                            continue;
                        }
                    }
                    let rec = me.execute_tagged(&jobs[i], start, Some(arrived), &load.tag).await;
                    if i >= load.discard && out.send(rec).await.is_err() {
                        break;
                    }
                }
            });
        }
        let mut lags = Vec::with_capacity(offsets.len());
        for (i, off) in offsets.into_iter().enumerate() {
            if self.stop.load(Ordering::Relaxed) || out.is_closed() || saturated.load(Ordering::Relaxed) {
                abandoned.fetch_add(jobs.len() - i, Ordering::Relaxed);
                break;
            }
            let at = phase_start + off;
            tokio::time::sleep_until(at).await;
            lags.push(at.elapsed().as_secs_f64());
            // Timings start at the scheduled arrival: a load generator that falls behind makes latency worse,
            // never better, and the lag is reported.
            if queue_tx.send((i, at)).is_err() {
                break;
            }
        }
        drop(queue_tx);
        while set.join_next().await.is_some() {}
        PhaseReport { abandoned: abandoned.load(Ordering::Relaxed), dispatch_lag_s: lags }
    }

    /// The record of a request given up in a saturated phase: an error (`abandoned`) timed from its arrival.
    fn abandoned(&self, job: &Job, run_start: Instant, arrived: Instant, tag: &LoadTag, limit: Duration) -> Record {
        let outcome = Outcome {
            sent: arrived.into_std(),
            start_offset_s: arrived.duration_since(run_start).as_secs_f64(),
            events: Vec::new(),
            error: Some(BackendError::Abandoned(limit)),
            attempts: 0,
            backoff: Duration::ZERO,
        };
        let e = &job.entry;
        let mut record = build_record(&self.ctx, &e.policy, &e.item, &job.request.model, outcome, self.counter.as_deref());
        record.load = tag.clone();
        record.load.queue_s = Some(arrived.elapsed().as_secs_f64());
        record
    }

    /// One request, all its attempts, as a record. A request that `arrived` (when it waited for a slot): its first attempt's timings start at the arrival,
    /// and the record carries `tag` and the time it queued.
    async fn execute_tagged(&self, job: &Job, run_start: Instant, arrived: Option<Instant>, tag: &LoadTag) -> Record {
        let s = &self.settings;
        let mut attempts = 0u32;
        let mut backoff = Duration::ZERO;
        let mut rng: Option<ChaCha8Rng> = None;
        let mut first_send: Option<Instant> = None;
        loop {
            attempts += 1;
            if let Some(l) = &self.limiter {
                l.acquire().await;
            }
            let sent = Instant::now();
            first_send.get_or_insert(sent);
            let mut events = Vec::new();
            let result =
                match tokio::time::timeout(s.timeout, attempt(&*self.backend, &job.request, &mut events)).await {
                    Ok(r) => r,
                    Err(_) => Err(BackendError::Timeout(s.timeout)),
                };
            match result {
                Err(e) if e.is_retryable() && attempts <= s.max_retries && !self.stop.load(Ordering::Relaxed) => {
                    let rng = rng.get_or_insert_with(|| {
                        ChaCha8Rng::seed_from_u64(
                            s.seed.wrapping_add(3) ^ (job.entry.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        )
                    });
                    let wait = s.backoff.delay(attempts, e.retry_after(), rng);
                    tracing::debug!(
                        policy = %job.entry.policy.name, sample = %job.entry.item.sample_id, attempt = attempts,
                        class = e.class(), wait_s = wait.as_secs_f64(), "retrying: {e}"
                    );
                    let t = Instant::now();
                    tokio::time::sleep(wait).await;
                    backoff += t.elapsed();
                }
                result => {
                    // Only the first attempt waited in the queue; a retry is timed from its own send.
                    let base = arrived.filter(|_| attempts == 1).unwrap_or(sent);
                    let outcome = Outcome {
                        sent: base.into_std(),
                        start_offset_s: base.duration_since(run_start).as_secs_f64(),
                        events,
                        error: result.err(),
                        attempts,
                        backoff,
                    };
                    let (e, counter) = (&job.entry, self.counter.as_deref());
                    let mut record = build_record(&self.ctx, &e.policy, &e.item, &job.request.model, outcome, counter);
                    record.load = tag.clone();
                    record.load.queue_s = first_send.zip(arrived).map(|(f, a)| f.duration_since(a).as_secs_f64());
                    return record;
                }
            }
        }
    }
}

/// One attempt: reads the stream until its `Finished` event. Events are pushed into `events` as they come,
/// so a timed-out attempt keeps what it received.
async fn attempt(
    backend: &dyn Backend,
    request: &GenRequest,
    events: &mut Vec<GenEvent>,
) -> Result<(), BackendError> {
    let mut stream = backend.generate(request).await?;
    while let Some(item) = stream.next().await {
        let ev = item?;
        let done = matches!(ev, GenEvent::Finished { .. });
        events.push(ev);
        if done {
            // Read the (normally empty) rest of the body so an HTTP connection goes back to the pool; a
            // server that keeps it open after finishing is not waited for long.
            let _ =
                tokio::time::timeout(Duration::from_millis(50), async { while stream.next().await.is_some() {} }).await;
            return Ok(());
        }
    }
    Err(BackendError::StreamCut(format!("the event stream ended after {} events without a finish", events.len())))
}

#[cfg(test)]
mod tests;
