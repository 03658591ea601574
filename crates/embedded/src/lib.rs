//! The embedded backend: the runner's [`Backend`] trait over our in-process engine.
//!
//! The engine is synchronous and CPU-bound, so it runs on its own worker thread; `generate` hands the job over
//! a channel and returns at once with an event stream the worker feeds (`blocking_send`). When the runner drops
//! the stream (timeout, abort) the worker's next send fails and the generation is cancelled, freeing the
//! engine. Policy internals travel on a oneshot that is completed before the `Finished` event.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use ttc_bench::backend::{
    event_channel, Backend, BackendError, BackendInfo, ChatMessage, EventSender, GenRequest, Generation,
};
use ttc_bench::tokens::TokenCounter;
use ttc_engine::{Engine, EngineError, Policy};
use ttc_sampling::{Pruning, SamplerConfig};
use ttc_types::{GenEvent, PolicyStats};

struct Job {
    messages: Vec<ttc_engine::ChatMessage>,
    policy: Policy,
    max_tokens: usize,
    sampling: Option<SamplerConfig>,
    events: EventSender,
    stats: tokio::sync::oneshot::Sender<PolicyStats>,
}

pub struct EmbeddedBackend {
    engine: Arc<Engine>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Validated engine policies by name (the runner's specs are converted once).
    policies: Mutex<HashMap<String, Policy>>,
}

impl EmbeddedBackend {
    pub fn new(engine: Arc<Engine>) -> EmbeddedBackend {
        let (tx, rx) = mpsc::channel::<Job>();
        let worker_engine = engine.clone();
        std::thread::Builder::new()
            .name("ttc-engine".into())
            .spawn(move || {
                for job in rx {
                    run_job(&worker_engine, job);
                }
            })
            .expect("spawn engine thread");
        EmbeddedBackend { engine, jobs: Mutex::new(tx), policies: Mutex::new(HashMap::new()) }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn policy(&self, spec: &ttc_bench::config::PolicySpec) -> Result<Policy, BackendError> {
        let mut cache = self.policies.lock().expect("policy cache");
        if let Some(p) = cache.get(&spec.name) {
            return Ok(p.clone());
        }
        let params = serde_json::to_value(&spec.params).unwrap_or_default();
        let p = ttc_engine::policy::policy_from_parts(&spec.name, &spec.algorithm, spec.description.clone(), params)
            .map_err(BackendError::InvalidRequest)?;
        cache.insert(spec.name.clone(), p.clone());
        Ok(p)
    }
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

fn run_job(engine: &Engine, job: Job) {
    let Job { messages, policy, max_tokens, sampling, events, stats } = job;
    let prompt = match engine.prompt_tokens(&messages) {
        Ok(p) => p,
        Err(e) => {
            let _ = events.blocking_send(Err(engine_error(e)));
            return;
        }
    };
    let req = ttc_engine::GenRequest { prompt, max_tokens, stop: Vec::new() };
    // Hold the Finished event back until the policy stats are on their way (the contract's order).
    let mut finished: Option<GenEvent> = None;
    let mut on_event = |ev: GenEvent| {
        if matches!(ev, GenEvent::Finished { .. }) {
            finished = Some(ev);
            return true;
        }
        events.blocking_send(Ok(ev)).is_ok()
    };
    match engine.generate_policy(&req, &policy, sampling, &mut on_event) {
        Ok((_, s)) => {
            let _ = stats.send(s);
            if let Some(f) = finished {
                let _ = events.blocking_send(Ok(f));
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
    /// their timeouts run.
    fn max_concurrency(&self) -> Option<usize> {
        Some(1)
    }

    async fn generate(&self, request: &GenRequest) -> Result<Generation, BackendError> {
        let policy = self.policy(&request.policy)?;
        let (tx, stream) = event_channel(256);
        let (stats_tx, stats_rx) = tokio::sync::oneshot::channel();
        let job = Job {
            messages: request.messages.iter().map(|m| ttc_engine::ChatMessage::new(&m.role, m.content.clone())).collect(),
            policy,
            max_tokens: request.max_tokens as usize,
            sampling: sampling_from_request(request),
            events: tx,
            stats: stats_tx,
        };
        self.jobs
            .lock()
            .expect("job queue")
            .send(job)
            .map_err(|_| BackendError::Engine("the engine thread has stopped".into()))?;
        Ok(Generation::new(stream).with_policy_stats(stats_rx))
    }
}

/// Counts tokens with the GGUF tokenizer (for HTTP backends whose server sends no usage).
pub struct GgufTokenCounter {
    engine: Arc<Engine>,
}

impl GgufTokenCounter {
    pub fn new(engine: Arc<Engine>) -> Self {
        GgufTokenCounter { engine }
    }
}

impl TokenCounter for GgufTokenCounter {
    fn count_prompt(&self, messages: &[ChatMessage]) -> Option<u32> {
        let msgs: Vec<_> = messages.iter().map(|m| ttc_engine::ChatMessage::new(&m.role, m.content.clone())).collect();
        self.engine.prompt_tokens(&msgs).ok().map(|t| t.len() as u32)
    }
    fn count_text(&self, text: &str) -> u32 {
        self.engine.tokenizer.encode(text).map(|t| t.len() as u32).unwrap_or(0)
    }
}
