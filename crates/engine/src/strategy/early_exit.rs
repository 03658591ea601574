//! Early exit: stop a token's forward before the last layer and predict from an intermediate hidden state
//! (final RMSNorm + tied LM head applied to it, the "logit lens").
//!
//! - Fixed (`exit_layer: k`): every forward, prefill included, runs layers 0..k only. Later layers are never
//!   used, so no K/V is missing: this is exactly the model truncated to k layers.
//! - Confidence (CALM, Schuster et al. 2022): the prompt runs the full model; each generated token is tested at
//!   checkpoints `min_layer, min_layer + exit_interval, ...` (layer counts below the model's depth). Confidence
//!   is `min(1, confidence_boost * m)` with m the softmax max (`softmax_max`) or top-1 minus top-2
//!   (`softmax_diff`); the token exits when it reaches the threshold
//!   λ_t = 0.9·λ + 0.1·λ·exp(−τ·t/N) (CALM's released `position_adjusted_threshold`, τ = `position_temp`,
//!   t = decode step, N = max_tokens; τ = 0 keeps λ constant). Because confidence is clipped to 1, a threshold
//!   above 1 never exits and reproduces the baseline exactly.
//!   Skipped layers still need K/V for later tokens: CALM's state propagation feeds the exit hidden state to
//!   every skipped layer's K/V projections (`LlamaModel::propagate_kv`).
//!
//! Both read the exit layer through `heads`: the logit lens (final norm + LM head), or the per-layer translator
//! fitted by `ttc calibrate` (`exit_heads.rs`). SmolLM2-135M was not trained for early exit (engine.md §0.4):
//! through the logit lens it loses most of its quality; docs/policies.md has numbers for both.

use crate::strategy::chooser::Chooser;
use crate::engine::{Emitter, GenOutput, GenRequest, Prefill};
use crate::error::Result;
use crate::model::kv::KvCache;
use crate::model::logits_rows;
use crate::policy::{ConfidenceExitParams, ConfidenceMeasure, ExitHeadKind, FixedExitParams};
use crate::strategy::speculative::run_layers;
use crate::engine::Engine;
use std::time::Instant;
use ttc_types::{GenEvent, PolicyStats};

/// Exit-layer bookkeeping: histogram index i counts tokens that ran i+1 layers.
struct ExitCounter {
    hist: Vec<u32>,
    n_layer: usize,
}

impl ExitCounter {
    fn new(n_layer: usize) -> Self {
        ExitCounter { hist: vec![0; n_layer], n_layer }
    }
    fn record(&mut self, layers_run: usize) {
        self.hist[layers_run.clamp(1, self.n_layer) - 1] += 1;
    }
    fn fill(&self, stats: &mut PolicyStats) {
        let n: u32 = self.hist.iter().sum();
        if n > 0 {
            let mean = self.hist.iter().enumerate().map(|(i, &c)| (i + 1) as f64 * c as f64).sum::<f64>() / n as f64;
            stats.mean_exit_layer = Some(mean);
            stats.layers_skipped_share = Some(1.0 - mean / self.n_layer as f64);
        }
        stats.exit_layer_histogram = Some(self.hist.clone());
    }
}

/// Forward of a truncated model: layers 0..k, then the final norm and LM head on the last row.
fn truncated_forward(engine: &Engine, tokens: &[u32], cache: &mut KvCache, k: usize, heads: ExitHeadKind) -> Result<Vec<f32>> {
    let pos = cache.next_pos;
    let h = run_layers(engine, engine.model.embed(tokens)?, 0, k, cache, pos)?;
    cache.next_pos += tokens.len();
    let last = h.narrow(0, tokens.len() - 1, 1)?;
    Ok(logits_rows(&engine.exit_logits(heads, k, &last)?)?.remove(0))
}

pub fn generate_fixed_exit(
    engine: &Engine,
    req: &GenRequest,
    params: &FixedExitParams,
    chooser: &mut Chooser,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, PolicyStats)> {
    engine.check_fits(req.prompt.len(), req.max_tokens)?;
    let n_layer = engine.model.cfg.n_layer;
    let k = params.exit_layer.clamp(1, n_layer);
    let started = Instant::now();
    let mut cache = engine.model.new_cache()?;
    // The first k layers' entries of a cached prefix are exactly what a truncated prefill computes (a layer's
    // KV depends only on the layers below it). Only loaded: this cache lacks the layers above k, so it is never
    // offered back.
    let cached = engine.load_prefix(&req.prompt, &mut cache);
    let mut em = Emitter::new(&engine.tokenizer, req, started, on_event);
    em.cached_prompt_tokens = cached;
    let mut exits = ExitCounter::new(n_layer);
    let logits = truncated_forward(engine, &req.prompt[cached..], &mut cache, k, params.heads)?;
    let prefill_s = started.elapsed().as_secs_f64();
    let mut next = chooser.choose(&logits)?;
    exits.record(k);
    while req.max_tokens > 0 && em.push(next) {
        let logits = truncated_forward(engine, &[next], &mut cache, k, params.heads)?;
        next = chooser.choose(&logits)?;
        exits.record(k);
    }
    let mut stats = PolicyStats::default();
    exits.fill(&mut stats);
    chooser.fill_stats(&mut stats);
    Ok((em.finish(req.prompt.len(), prefill_s), stats))
}

/// CALM's confidence of a logits row, clipped to [0, 1].
pub fn confidence(row: &[f32], measure: ConfidenceMeasure, boost: f32) -> f32 {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = row.iter().map(|&x| (x - m).exp()).sum();
    let p1 = 1.0 / z;
    let raw = if measure == ConfidenceMeasure::SoftmaxDiff {
        // second-largest logit
        let mut first = false;
        let mut second = f32::NEG_INFINITY;
        for &x in row {
            if x == m && !first {
                first = true;
            } else if x > second {
                second = x;
            }
        }
        p1 - (second - m).exp() / z
    } else {
        p1
    };
    (raw * boost).clamp(0.0, 1.0)
}

/// λ_t of CALM's released code: decays from λ toward 0.9λ over the output.
pub fn threshold_at(lambda: f32, tau: f32, step: usize, max_tokens: usize) -> f32 {
    if tau == 0.0 {
        return lambda;
    }
    let frac = step as f32 / max_tokens.max(1) as f32;
    0.9 * lambda + 0.1 * lambda * (-tau * frac).exp()
}

pub fn generate_confidence_exit(
    engine: &Engine,
    req: &GenRequest,
    params: &ConfidenceExitParams,
    chooser: &mut Chooser,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, PolicyStats)> {
    let model = &engine.model;
    let n_layer = model.cfg.n_layer;
    let checkpoints: Vec<usize> =
        (params.min_layer..n_layer).step_by(params.exit_interval.max(1)).filter(|&c| c >= 1).collect();
    let Prefill { mut cache, started, prefill_s, logits, cached_tokens } = engine.prefill(req)?;
    let mut em = Emitter::new(&engine.tokenizer, req, started, on_event);
    em.cached_prompt_tokens = cached_tokens;
    let mut exits = ExitCounter::new(n_layer);
    let mut next = chooser.choose(&logits)?;
    exits.record(n_layer);
    let mut step = 0usize;
    while req.max_tokens > 0 && em.push(next) {
        step += 1;
        let pos = cache.next_pos;
        let lambda = threshold_at(params.exit_threshold as f32, params.position_temp as f32, step, req.max_tokens);
        let mut h = model.embed(&[next])?;
        let mut done = 0usize;
        let mut row: Option<Vec<f32>> = None;
        for &c in &checkpoints {
            h = run_layers(engine, h, done, c, &mut cache, pos)?;
            done = c;
            let r = logits_rows(&engine.exit_logits(params.heads, c, &h)?)?.remove(0);
            if confidence(&r, params.measure, params.confidence_boost as f32) >= lambda {
                // State propagation: skipped layers get K/V computed from the exit state.
                for l in c..n_layer {
                    model.propagate_kv(l, &h, pos, &mut cache.layers[l])?;
                }
                row = Some(r);
                break;
            }
        }
        let row = match row {
            Some(r) => {
                exits.record(done);
                r
            }
            None => {
                h = run_layers(engine, h, done, n_layer, &mut cache, pos)?;
                exits.record(n_layer);
                logits_rows(&model.logits(&h)?)?.remove(0)
            }
        };
        cache.next_pos = pos + 1;
        next = chooser.choose(&row)?;
    }
    let mut stats = PolicyStats::default();
    exits.fill(&mut stats);
    chooser.fill_stats(&mut stats);
    Ok((em.finish(req.prompt.len(), prefill_s), stats))
}

impl super::DecodingStrategy for FixedExitParams {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        generate_fixed_exit(engine, req, self, chooser, on_event)
    }
}

impl super::DecodingStrategy for ConfidenceExitParams {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        generate_confidence_exit(engine, req, self, chooser, on_event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_measures() {
        let row = [0.0f32, (3.0f32).ln(), 0.0]; // probs 0.2, 0.6, 0.2
        assert!((confidence(&row, ConfidenceMeasure::SoftmaxMax, 1.0) - 0.6).abs() < 1e-6);
        assert!((confidence(&row, ConfidenceMeasure::SoftmaxDiff, 1.0) - 0.4).abs() < 1e-6);
        assert_eq!(confidence(&row, ConfidenceMeasure::SoftmaxMax, 2.0), 1.0); // clipped
    }

    #[test]
    fn threshold_decays_toward_nine_tenths() {
        assert_eq!(threshold_at(0.8, 0.0, 10, 100), 0.8);
        assert!((threshold_at(0.8, 4.0, 0, 100) - 0.8).abs() < 1e-6);
        let end = threshold_at(0.8, 4.0, 100, 100);
        assert!((end - (0.72 + 0.08 * (-4.0f32).exp())).abs() < 1e-6);
    }
}
