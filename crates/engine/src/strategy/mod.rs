//! Decoding strategies: one module per policy family, each implementing [`DecodingStrategy`] over the model core
//! (`crate::model`, `crate::engine`), which knows none of them. `Engine::run_policy` picks the family's strategy
//! from the policy's algorithm; adding a family is one module here, one arm there and its `ttc-policy` enum arm.

pub mod chooser;
pub mod early_exit;
pub mod kv_shrink;
pub mod logprobs;
pub mod route;
pub mod speculative;

use crate::engine::{Engine, GenOutput, GenRequest};
use crate::error::{EngineError, Result};
use crate::policy::{Algorithm, Policy};
use chooser::Chooser;
use std::time::Instant;
use ttc_types::{FinishReason, GenEvent, PolicyStats, Usage};

/// One policy family's decoding loop: generate `req` on `engine`, picking every token with `chooser` (greedy, a
/// sampler, or the fidelity replay's forced path) and streaming through `on_event` (false cancels).
pub trait DecodingStrategy {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)>;
}

/// Plain autoregressive decoding ([`Engine::generate_plain`]), for policies that change no step of the loop.
pub struct Plain;

impl DecodingStrategy for Plain {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        let out = chooser.run_infallible(|choose| engine.generate_plain(req, choose, on_event))?;
        let mut stats = PolicyStats::default();
        chooser.fill_stats(&mut stats);
        Ok((out, stats))
    }
}

impl Engine {
    /// Checks the policy's layer indices against this model (a policy file cannot know the model's depth, so
    /// `exit_layer: 999` is rejected here rather than silently clamped).
    pub fn check_policy(&self, policy: &Policy) -> Result<()> {
        policy
            .algorithm
            .validate_for_model(self.model.cfg.n_layer)
            .map_err(|m| EngineError::InvalidRequest(format!("policy `{}`: {m}", policy.name)))?;
        let needed = policy.algorithm.calibrated_layers(self.model.cfg.n_layer);
        if needed.is_empty() {
            return Ok(());
        }
        let heads = self.exit_heads().map_err(|e| match e {
            EngineError::ExitHeads { path, reason } => {
                EngineError::ExitHeads { path, reason: format!("policy `{}` reads calibrated heads: {reason}", policy.name) }
            }
            other => other,
        })?;
        let missing: Vec<usize> = needed.iter().copied().filter(|&k| !heads.has(k)).collect();
        if !missing.is_empty() {
            return Err(EngineError::ExitHeads {
                path: heads.path.clone(),
                reason: format!(
                    "policy `{}` reads calibrated heads at layers {}, but the file has layers {} (fit them with `ttc calibrate --layers ...`)",
                    policy.name,
                    crate::model::exit_heads::layer_list(&missing),
                    crate::model::exit_heads::layer_list(&heads.layers())
                ),
            });
        }
        Ok(())
    }

    /// Generate one request under `policy`. `sampling` is the run's default sampler (None = greedy); pruning
    /// policies bring their own. Returns the output and the policy's internals.
    pub fn generate_policy(
        &self,
        req: &GenRequest,
        policy: &Policy,
        sampling: Option<ttc_sampling::SamplerConfig>,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        self.generate_policy_logprobs(req, policy, sampling, None, on_event)
    }

    /// [`Engine::generate_policy`], with each `Content` event carrying its token's logprob and `logprobs`
    /// alternatives (`Some(0)`: the chosen token's only), computed from the logits row the policy chose it from.
    pub fn generate_policy_logprobs(
        &self,
        req: &GenRequest,
        policy: &Policy,
        sampling: Option<ttc_sampling::SamplerConfig>,
        logprobs: Option<usize>,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        self.check_policy(policy)?;
        let (policy, route) = self.resolve_route(req, policy)?;
        let policy = &policy;
        let mut chooser = self.policy_chooser(policy, sampling)?.with_logprobs(logprobs);
        let tap = chooser.tap();
        let mut tapped = |mut ev: GenEvent| {
            if let Some(t) = &tap {
                t.attach(&mut ev);
            }
            on_event(ev)
        };
        match self.run_policy(req, policy, &mut chooser, &mut tapped) {
            // Cancelled before its first token (during the prefill): close the stream like a cancelled decode.
            Err(EngineError::Cancelled) => {
                let now = Instant::now();
                let usage = Usage { prompt_tokens: req.prompt.len() as u32, ..Usage::default() };
                on_event(GenEvent::Finished { at: now, reason: FinishReason::Cancelled, usage: Some(usage) });
                let output = GenOutput {
                    token_ids: vec![],
                    text: String::new(),
                    finish_reason: FinishReason::Cancelled,
                    usage,
                    ttft_s: 0.0,
                    prefill_s: 0.0,
                    decode_s: 0.0,
                };
                Ok((output, PolicyStats { route, ..Default::default() }))
            }
            Ok((output, mut stats)) => {
                stats.route = route;
                Ok((output, stats))
            }
            Err(e) => Err(e),
        }
    }

    /// The chooser a policy decodes with: its own sampler (pruning policies), else the run's (None = greedy).
    pub(crate) fn policy_chooser(
        &self,
        policy: &Policy,
        sampling: Option<ttc_sampling::SamplerConfig>,
    ) -> Result<Chooser> {
        let seed = sampling.as_ref().map(|s| s.seed).unwrap_or(0);
        Chooser::new(policy.algorithm.sampler_config(seed).or(sampling))
    }

    /// Runs the policy's decoding strategy with `chooser` picking every token (the fidelity replay passes a
    /// forced one, `crate::fidelity`).
    pub(crate) fn run_policy(
        &self,
        req: &GenRequest,
        policy: &Policy,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        let strategy: &dyn DecodingStrategy = match &policy.algorithm {
            Algorithm::SpeculativeNgram(p) => p,
            Algorithm::SpeculativeSelf(p) => p,
            Algorithm::EarlyExitFixed(p) => p,
            Algorithm::EarlyExitConfidence(p) => p,
            Algorithm::KvShrink(p) => p,
            // Baseline, token pruning (its sampler is in `chooser`) and batching (a scheduler concern; a lone
            // request decodes plainly) all run the plain loop.
            Algorithm::Baseline | Algorithm::TokenPruning(_) | Algorithm::Batching(_) => &Plain,
            // Callers resolve a router to the policy it picks first (`Engine::resolve_route`): the chooser must be
            // the picked policy's.
            Algorithm::Router(_) | Algorithm::Adaptive(_) => {
                return Err(EngineError::InvalidRequest(format!(
                    "policy `{}` must be resolved to the policy it picks before decoding",
                    policy.name
                )))
            }
        };
        strategy.generate(self, req, chooser, on_event)
    }
}

