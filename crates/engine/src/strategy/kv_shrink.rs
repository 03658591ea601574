//! Adaptive KV-cache shrinking: evict cached entries so the cache follows a shrinking budget, and decode faster
//! because attention reads fewer entries.
//!
//! Three eviction rules (engine.md §5, docs/kv-and-batching.md):
//! - **heavy hitters** (H2O, Zhang et al. 2023; reference `FMInference/H2O:h2o_hf/utils_real_drop/modify_llama.py`,
//!   `H2OKVCache_LayerWise`): every entry accumulates the attention probability it receives from every query so
//!   far; keep the `recent_window` newest entries plus the top scorers among the older ones, independently per KV
//!   head. With GQA the scores of the query heads that share a KV head are summed (the reference is MHA-only).
//! - **sinks** (StreamingLLM, Xiao et al. 2024; reference `mit-han-lab/streaming-llm:streaming_llm/kv_cache.py`,
//!   `StartRecentKVCache`): keep the first `sink_tokens` entries and the newest ones, evict the middle.
//! - **snapkv** (SnapKV, Li et al. 2024; reference `FasterDecoding/SnapKV:snapkv/monkeypatch/snapkv_utils.py`):
//!   once, after the prefill, each KV head keeps the last `window` prompt positions plus the earlier positions
//!   those window queries attended to most (attention summed over the window's rows and the GQA group, then
//!   average-pooled over `pool_kernel` neighbouring positions). Generated tokens are never evicted, and no
//!   attention statistic is kept while decoding.
//!
//! Cost: eviction never rewrites the kept entries. It fills each evicted slot with a kept entry from the end of
//! the buffer (`LayerKv::evict_per_head`, O(evicted) copies), and runs only once the cache is over budget, cutting
//! `evict_block` entries below it, so the selection runs every few tokens rather than every token. Attention cost
//! is proportional to the entries held, so decoding gets faster as the budget falls.
//!
//! Position handling: keys are cached **after RoPE, at their original positions**, and each new query gets its
//! true position (`KvCache::next_pos`), as in H2O's real-drop code. Evicting or moving an entry never re-rotates
//! it. StreamingLLM's re-assignment of positions within the cache matters only beyond the pretraining window;
//! SmolLM2's window is 8192 tokens and the engine refuses longer requests, so it is not implemented.
//!
//! Budget schedule over decode steps t (t = number of single-token forwards after the prefill), with T the
//! horizon in decode steps (`horizon`: 0 for `prefill`, N, or the request's `max_tokens`) and `full(t)` = entries
//! an unshrunk cache would hold (prompt + t): `w(t)` = ½(1 − cos(π·min(t,T)/T)) (cosine), min(t,T)/T (linear),
//! 1 (none, or T = 0); `budget(t) = min(full(t), max(⌈full(t)·(1 − shrink_ratio·w(t))⌉, floor))` with floor =
//! `recent_window` (heavy hitters), `sink_tokens + recent_window` (sinks) or `window` (snapkv, whose budget is
//! the prompt's, at full strength). `shrink_ratio: 0` never evicts and decodes exactly like the baseline.

use crate::engine::{Emitter, Engine, GenOutput, GenRequest};
use crate::error::{EngineError, Result};
use crate::model::kv::KvCache;
use crate::model::{logits_rows, LlamaModel, LogitsMode};
use crate::policy::KvShrinkParams;
pub use crate::policy::{DecaySchedule, Horizon, KvMethod as ShrinkMethod};
use std::cmp::Ordering;
use std::time::Instant;
use ttc_types::{GenEvent, PolicyStats};

/// Prompt rows per prefill forward while attention scores are collected: the per-row probabilities of a chunk
/// are held until they are added up (rows x heads x context floats), so chunks stay small. Rows are computed
/// independently, so chunking does not change a logit.
const SCORED_PREFILL_CHUNK: usize = 128;
/// Prompt rows per prefill forward otherwise.
const PREFILL_CHUNK: usize = 512;

/// The resolved shrinking plan of one request: method, schedule and the budget it implies at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct ShrinkPlan {
    pub method: ShrinkMethod,
    pub shrink_ratio: f64,
    pub schedule: DecaySchedule,
    /// Decode steps until the budget reaches its target; 0 = right after the prefill.
    pub horizon_steps: usize,
    pub recent_window: usize,
    pub sink_tokens: usize,
    pub evict_block: usize,
    pub window: usize,
    pub pool_kernel: usize,
}

impl ShrinkPlan {
    /// Resolve policy params for a request of `max_tokens`; a bad value names its key and the valid range.
    pub fn new(params: &KvShrinkParams, max_tokens: usize) -> Result<ShrinkPlan> {
        params.validate().map_err(|m| EngineError::InvalidRequest(format!("kv_shrink {m}")))?;
        let horizon_steps = match params.horizon {
            Horizon::Prefill => 0,
            Horizon::Tokens(n) => n,
            Horizon::MaxTokens => max_tokens.max(1),
        };
        Ok(ShrinkPlan {
            method: params.method,
            shrink_ratio: params.shrink_ratio,
            schedule: params.decay_schedule,
            horizon_steps,
            recent_window: params.recent_window,
            sink_tokens: params.sink_tokens,
            evict_block: params.evict_block.max(1),
            window: params.window,
            pool_kernel: params.pool_kernel,
        })
    }

    /// Checks that need the prompt: SnapKV's observation window must fit in it.
    pub fn check_prompt(&self, prompt_tokens: usize) -> Result<()> {
        if self.method == ShrinkMethod::Snapkv && self.window > prompt_tokens {
            return Err(EngineError::InvalidRequest(format!(
                "kv_shrink params.window: must be at most the prompt length ({prompt_tokens} tokens), got {}",
                self.window
            )));
        }
        Ok(())
    }

    /// Eviction strength w(t) in [0, 1] after `step` decode steps.
    pub fn strength(&self, step: usize) -> f64 {
        if self.horizon_steps == 0 || self.method == ShrinkMethod::Snapkv {
            return 1.0;
        }
        let p = step.min(self.horizon_steps) as f64 / self.horizon_steps as f64;
        match self.schedule {
            DecaySchedule::Cosine => 0.5 * (1.0 - (std::f64::consts::PI * p).cos()),
            DecaySchedule::Linear => p,
            DecaySchedule::None => 1.0,
        }
    }

    /// Entries that are never evicted while the cache holds at least this many.
    pub fn floor(&self) -> usize {
        match self.method {
            ShrinkMethod::HeavyHitters => self.recent_window,
            ShrinkMethod::Sinks => self.sink_tokens + self.recent_window,
            ShrinkMethod::Snapkv => self.window,
        }
    }

    /// Most entries the cache may hold after `step` decode steps when an unshrunk cache would hold `full`.
    pub fn budget(&self, full: usize, step: usize) -> usize {
        let keep = 1.0 - self.shrink_ratio * self.strength(step);
        // ceil: never evict more than the ratio says (exactly `full` when the ratio is 0). A product within 1e-6 of an
        // integer is that integer, so 100 entries at ratio 0.7 give 30, not 31 (0.3 is not exact in binary).
        let x = full as f64 * keep;
        let target = if (x - x.round()).abs() < 1e-6 { x.round() } else { x.ceil() } as usize;
        target.max(self.floor()).min(full)
    }

    /// Entries to keep when `len` are held against `budget`: `None` while the cache fits, else `evict_block - 1`
    /// below the budget (never below the floor), so the next evictions wait for the cache to grow back.
    pub fn evict_target(&self, len: usize, budget: usize) -> Option<usize> {
        (len > budget).then(|| budget.saturating_sub(self.evict_block - 1).max(self.floor().min(budget)))
    }
}

/// The `count` entries (ascending indices) of `len` with the lowest keep priority; `cmp(a, b)` orders entries by
/// priority, lowest first, and must be a total order (ties broken by position) so the choice is deterministic.
fn lowest(len: usize, count: usize, cmp: impl Fn(&u32, &u32) -> Ordering) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..len as u32).collect();
    if count == 0 {
        return Vec::new();
    }
    if count < len {
        idx.select_nth_unstable_by(count - 1, &cmp);
        idx.truncate(count);
    }
    idx.sort_unstable();
    idx
}

/// H2O for one KV head: the `len - target` entries (ascending cache indices) to evict, given each entry's
/// accumulated score and original position. The entries within `recent_window` of `next_pos` are kept whatever
/// their score; among the older ones the lowest scores go first, and of equal scores the newer entry goes first.
pub fn heavy_hitter_evict(scores: &[f32], positions: &[u32], target: usize, recent_window: usize, next_pos: usize) -> Vec<u32> {
    let len = scores.len().min(positions.len());
    let recent = |j: &u32| positions[*j as usize] as usize + recent_window >= next_pos;
    lowest(len, len.saturating_sub(target), |a, b| {
        recent(a)
            .cmp(&recent(b))
            .then(scores[*a as usize].total_cmp(&scores[*b as usize]))
            .then(positions[*b as usize].cmp(&positions[*a as usize]))
    })
}

/// StreamingLLM: the `len - target` entries to evict: the oldest ones that are not among the first
/// `sink_tokens` positions.
pub fn sink_evict(positions: &[u32], target: usize, sink_tokens: usize) -> Vec<u32> {
    let sink = |j: &u32| (positions[*j as usize] as usize) < sink_tokens;
    lowest(positions.len(), positions.len().saturating_sub(target), |a, b| {
        sink(a).cmp(&sink(b)).then(positions[*a as usize].cmp(&positions[*b as usize]))
    })
}

/// SnapKV's votes for one KV head of a prompt of `scores.len()` entries in position order: the accumulated
/// attention of the window queries on each earlier position, average-pooled with zero padding over `kernel`
/// neighbours (PyTorch's `avg_pool1d(kernel, stride 1, padding kernel/2)`, as in the reference). Positions
/// inside the window get +inf: they are always kept.
pub fn snapkv_votes(scores: &[f32], window: usize, kernel: usize) -> Vec<f32> {
    let n = scores.len();
    let prefix = n.saturating_sub(window);
    let half = kernel / 2;
    let mut votes = vec![f32::INFINITY; n];
    for (j, v) in votes.iter_mut().enumerate().take(prefix) {
        let (lo, hi) = (j.saturating_sub(half), (j + half + 1).min(prefix));
        *v = scores[lo..hi].iter().sum::<f32>() / kernel as f32;
    }
    votes
}

/// SnapKV: the entries to evict from a freshly prefilled head (cache index = position) to keep `target`.
pub fn snapkv_evict(scores: &[f32], target: usize, window: usize, kernel: usize) -> Vec<u32> {
    let votes = snapkv_votes(scores, window, kernel);
    lowest(votes.len(), votes.len().saturating_sub(target), |a, b| {
        votes[*a as usize].total_cmp(&votes[*b as usize]).then(b.cmp(a))
    })
}

/// Applies a `ShrinkPlan` to one sequence's cache: drives its prefill (collecting the scores the method needs),
/// then evicts after each forward, remembering the original position of every kept entry (per layer and KV
/// head) and the memory it held.
pub struct KvShrinker {
    pub plan: ShrinkPlan,
    /// `positions[layer][head][j]` = original token position of cache entry j.
    positions: Vec<Vec<Vec<u32>>>,
    /// Evicted (layer, token) entries so far, over all layers (each entry = K and V of every KV head).
    pub evicted_entries: u64,
    /// Largest number of entries per layer ever held (measured right after each forward, before eviction).
    pub peak_entries: usize,
    /// Sums over forwards of the entries held per layer after eviction and of what an unshrunk cache would hold.
    held_sum: f64,
    full_sum: f64,
    forwards: usize,
}

impl KvShrinker {
    /// Prepare `cache` (empty or not) for shrinking; heavy hitters turn on score accumulation.
    pub fn new(plan: ShrinkPlan, cache: &mut KvCache) -> KvShrinker {
        if plan.method == ShrinkMethod::HeavyHitters {
            cache.track_attention_scores();
        }
        let n_kv = cache.layers.first().map(|l| l.n_kv()).unwrap_or(0);
        let positions = cache
            .layers
            .iter()
            .map(|l| vec![(cache.next_pos - l.len()..cache.next_pos).map(|p| p as u32).collect(); n_kv])
            .collect();
        KvShrinker { plan, positions, evicted_entries: 0, peak_entries: 0, held_sum: 0.0, full_sum: 0.0, forwards: 0 }
    }

    /// Original token positions of the entries of `layer`, KV head `head`, in cache order.
    pub fn positions(&self, layer: usize, head: usize) -> &[u32] {
        &self.positions[layer][head]
    }

    /// The current budget of `cache` after `step` decode steps.
    pub fn budget(&self, cache: &KvCache, step: usize) -> usize {
        self.plan.budget(cache.next_pos, step)
    }

    /// Mean entries held per layer after each forward so far, and the mean an unshrunk cache would hold.
    pub fn mean_entries(&self) -> (f64, f64) {
        let n = self.forwards.max(1) as f64;
        (self.held_sum / n, self.full_sum / n)
    }

    /// Prefill `prompt` into `cache` (in chunks; no eviction yet) and return the last position's logits. SnapKV
    /// collects attention scores only for the last `window` rows, the others only where they need them.
    pub fn prefill(&mut self, model: &LlamaModel, prompt: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        self.prefill_after(model, prompt, cache, 0)
    }

    /// How many leading prompt tokens may come from a prefix cache: those whose prefill the method does not
    /// score. Sinks scores nothing, SnapKV only its last `window` rows; heavy hitters score every row.
    pub fn cacheable_prefix(&self, prompt_len: usize) -> usize {
        match self.plan.method {
            ShrinkMethod::Sinks => prompt_len,
            ShrinkMethod::Snapkv => prompt_len.saturating_sub(self.plan.window),
            ShrinkMethod::HeavyHitters => 0,
        }
    }

    /// As [`KvShrinker::prefill`], for a cache that already holds the prompt's first `cached` entries (from a
    /// prefix cache, at most [`KvShrinker::cacheable_prefix`]): only the rest is prefilled. Every forward is
    /// row-exact, so the entries and logits are the bits a full prefill computes.
    pub fn prefill_after(&mut self, model: &LlamaModel, prompt: &[u32], cache: &mut KvCache, cached: usize) -> Result<Vec<f32>> {
        self.plan.check_prompt(prompt.len())?;
        if cached > self.cacheable_prefix(prompt.len()) || cached != cache.next_pos {
            return Err(EngineError::InvalidRequest(format!(
                "{cached} cached prompt entries cannot start a {:?} prefill",
                self.plan.method
            )));
        }
        // Only the prompt's last row needs logits.
        let end = prompt.len();
        let chunked = |from: usize, to: usize, cache: &mut KvCache, chunk: usize| -> Result<Option<Vec<f32>>> {
            let mut last = None;
            for start in (from..to).step_by(chunk.max(1)) {
                let stop = (start + chunk).min(to);
                let mode = if stop == end { LogitsMode::Last } else { LogitsMode::None };
                let out = model.forward(&prompt[start..stop], cache, mode)?;
                if stop == end {
                    last = Some(logits_rows(&out)?.swap_remove(0));
                }
            }
            Ok(last)
        };
        let logits = match self.plan.method {
            ShrinkMethod::Snapkv => {
                let split = end - self.plan.window;
                chunked(cached, split, cache, PREFILL_CHUNK)?;
                cache.track_attention_scores();
                chunked(split, end, cache, SCORED_PREFILL_CHUNK)?
            }
            ShrinkMethod::HeavyHitters => chunked(0, end, cache, SCORED_PREFILL_CHUNK)?,
            ShrinkMethod::Sinks => chunked(cached, end, cache, PREFILL_CHUNK)?,
        };
        logits.ok_or_else(|| EngineError::InvalidRequest("empty prompt".into()))
    }

    /// Call after every forward (`step` = decode steps done, 0 after the prefill): record the new entries and,
    /// when the cache is over budget, evict. SnapKV compresses the prompt at the first call after a scored
    /// prefill and never again. Returns the entries evicted per layer.
    pub fn after_forward(&mut self, cache: &mut KvCache, step: usize) -> Result<usize> {
        let next_pos = cache.next_pos;
        let snap = self.plan.method == ShrinkMethod::Snapkv;
        let scored_prompt = snap && cache.layers.first().is_some_and(|l| l.tracks_scores());
        let budget = if snap { self.plan.budget(next_pos, 0) } else { self.budget(cache, step) };
        let mut evicted = 0;
        for (l, layer) in cache.layers.iter_mut().enumerate() {
            let len = layer.len();
            let known = self.positions[l].first().map(|p| p.len()).unwrap_or(0);
            if len < known {
                return Err(EngineError::InvalidRequest("KV cache shrank outside the shrinker (truncated?)".into()));
            }
            let first_new = (next_pos - (len - known)) as u32;
            for pos in &mut self.positions[l] {
                pos.extend(first_new..next_pos as u32);
            }
            self.peak_entries = self.peak_entries.max(len);
            let target = match self.plan.evict_target(len, budget) {
                Some(t) if !snap => t,
                // SnapKV cuts once, exactly to its budget.
                Some(_) if scored_prompt => budget,
                _ => continue,
            };
            let evict: Vec<Vec<u32>> = match self.plan.method {
                ShrinkMethod::Sinks => {
                    let e = sink_evict(&self.positions[l][0], target, self.plan.sink_tokens);
                    vec![e; layer.n_kv()]
                }
                ShrinkMethod::HeavyHitters | ShrinkMethod::Snapkv => {
                    let scores = layer.scores().ok_or_else(|| {
                        EngineError::InvalidRequest("score-based eviction on a cache without scores".into())
                    })?;
                    let (w, k) = (self.plan.window, self.plan.pool_kernel);
                    scores
                        .iter()
                        .zip(&self.positions[l])
                        .map(|(s, pos)| match self.plan.method {
                            // A freshly prefilled cache: index = position (SnapKV runs once, before any move).
                            ShrinkMethod::Snapkv => snapkv_evict(s, target, w, k),
                            _ => heavy_hitter_evict(s, pos, target, self.plan.recent_window, next_pos),
                        })
                        .collect()
                }
            };
            let moves = layer.evict_per_head(&evict)?;
            for (pos, head_moves) in self.positions[l].iter_mut().zip(&moves) {
                for &(from, to) in head_moves {
                    pos[to as usize] = pos[from as usize];
                }
                pos.truncate(target);
            }
            layer.release_spare(self.plan.evict_block + 64);
            evicted = len - target;
            self.evicted_entries += evicted as u64;
        }
        if scored_prompt {
            // SnapKV's statistic served its one selection; decoding runs without it.
            for layer in &mut cache.layers {
                layer.stop_tracking_scores();
            }
        }
        let n_layers = cache.layers.len().max(1) as f64;
        self.held_sum += cache.layers.iter().map(|l| l.len()).sum::<usize>() as f64 / n_layers;
        self.full_sum += next_pos as f64;
        self.forwards += 1;
        Ok(evicted)
    }
}

/// What one KV-shrinking generation measured besides its output.
#[derive(Debug, Clone)]
pub struct KvShrinkRun {
    pub stats: PolicyStats,
    /// Mean KV bytes held after each forward (prefill and decode steps), and what an unshrunk cache would hold.
    pub mean_bytes: f64,
    pub mean_baseline_bytes: f64,
}

/// Autoregressive generation with adaptive KV-cache shrinking: the plain loop (`Engine::generate_plain`) with
/// the method's prefill and an eviction check after every forward. Returns the output and the KV internals
/// (peak, final and unshrunk bytes, evicted entries).
pub fn generate_kv_shrink(
    engine: &Engine,
    req: &GenRequest,
    params: &KvShrinkParams,
    choose: &mut dyn FnMut(&[f32]) -> u32,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, PolicyStats)> {
    generate_kv_shrink_measured(engine, req, params, choose, on_event).map(|(out, run)| (out, run.stats))
}

/// `generate_kv_shrink` that also returns the mean KV bytes held (for `ttc bench kv`).
pub fn generate_kv_shrink_measured(
    engine: &Engine,
    req: &GenRequest,
    params: &KvShrinkParams,
    choose: &mut dyn FnMut(&[f32]) -> u32,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, KvShrinkRun)> {
    engine.check_fits(req.prompt.len(), req.max_tokens)?;
    let plan = ShrinkPlan::new(params, req.max_tokens)?;
    plan.check_prompt(req.prompt.len())?;
    let started = Instant::now();
    let mut cache = engine.model.new_cache()?;
    let mut shrinker = KvShrinker::new(plan, &mut cache);
    // The engine's prefix cache (when on) serves the part of the prompt this method does not score.
    let reusable = shrinker.cacheable_prefix(req.prompt.len());
    let cached = if reusable > 0 { engine.load_prefix(&req.prompt[..reusable], &mut cache) } else { 0 };
    let logits = shrinker.prefill_after(&engine.model, &req.prompt, &mut cache, cached)?;
    if reusable > 0 {
        // Before any eviction: the cache still holds every prompt entry.
        engine.store_prefix(&req.prompt[..reusable], &cache);
    }
    shrinker.after_forward(&mut cache, 0)?;
    let prefill_s = started.elapsed().as_secs_f64();
    let mut em = Emitter::new(&engine.tokenizer, req, started, on_event);
    em.cached_prompt_tokens = cached;
    decode_shrinking(&engine.model, req.max_tokens, &mut cache, &mut shrinker, &logits, choose, &mut em)?;
    let run = finish_run(&engine.model, &cache, &shrinker);
    Ok((em.finish(req.prompt.len(), prefill_s), run))
}

/// The decode loop after a shrinking prefill: choose from `logits`, emit, forward, evict, until the emitter stops.
pub fn decode_shrinking(
    model: &LlamaModel,
    max_tokens: usize,
    cache: &mut KvCache,
    shrinker: &mut KvShrinker,
    logits: &[f32],
    choose: &mut dyn FnMut(&[f32]) -> u32,
    em: &mut Emitter,
) -> Result<()> {
    let mut step = 0;
    let mut next = choose(logits);
    while max_tokens > 0 && em.push(next) {
        let logits = model.forward(&[next], cache, LogitsMode::Last)?;
        step += 1;
        shrinker.after_forward(cache, step)?;
        next = choose(&logits_rows(&logits)?[0]);
    }
    Ok(())
}

/// The KV internals of a finished shrinking generation.
pub fn finish_run(model: &LlamaModel, cache: &KvCache, shrinker: &KvShrinker) -> KvShrinkRun {
    let per_token = model.cfg.kv_bytes_per_token() as u64;
    let (held, full) = shrinker.mean_entries();
    KvShrinkRun {
        stats: PolicyStats {
            kv_peak_bytes: Some(shrinker.peak_entries as u64 * per_token),
            kv_final_bytes: Some(cache.bytes() as u64),
            kv_baseline_bytes: Some(cache.next_pos as u64 * per_token),
            kv_evicted_entries: Some(shrinker.evicted_entries),
            ..PolicyStats::default()
        },
        mean_bytes: held * per_token as f64,
        mean_baseline_bytes: full * per_token as f64,
    }
}

impl super::DecodingStrategy for KvShrinkParams {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut crate::strategy::chooser::Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        let (out, mut stats) =
            chooser.run_infallible(|choose| generate_kv_shrink(engine, req, self, choose, on_event))?;
        chooser.fill_stats(&mut stats);
        Ok((out, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: ShrinkMethod, ratio: f64, schedule: DecaySchedule, horizon: Horizon) -> KvShrinkParams {
        KvShrinkParams {
            method,
            shrink_ratio: ratio,
            decay_schedule: schedule,
            horizon,
            recent_window: 4,
            sink_tokens: 2,
            evict_block: 1,
            ..KvShrinkParams::default()
        }
    }
    use DecaySchedule::{Cosine, Linear};
    use ShrinkMethod::{HeavyHitters, Sinks, Snapkv};

    #[test]
    fn schedules_move_from_full_to_target_by_the_horizon() {
        let cos = ShrinkPlan::new(&params(HeavyHitters, 0.5, Cosine, Horizon::MaxTokens), 10).unwrap();
        assert_eq!(cos.horizon_steps, 10);
        assert_eq!(cos.strength(0), 0.0);
        assert!((cos.strength(5) - 0.5).abs() < 1e-12);
        assert_eq!(cos.strength(10), 1.0);
        assert_eq!(cos.strength(99), 1.0);
        // budget(100 full, halfway) = ceil(100 * (1 - 0.5*0.5)) = 75; at the end ceil(100*0.5) = 50.
        assert_eq!(cos.budget(100, 0), 100);
        assert_eq!(cos.budget(100, 5), 75);
        assert_eq!(cos.budget(100, 10), 50);
        // A horizon of 4 tokens reaches the target at step 4 whatever max_tokens is.
        let short = ShrinkPlan::new(&params(HeavyHitters, 0.5, Cosine, Horizon::Tokens(4)), 500).unwrap();
        assert!((short.strength(2) - 0.5).abs() < 1e-12);
        assert_eq!(short.budget(100, 4), 50);
        // `prefill`: full strength from the first budget on.
        let now = ShrinkPlan::new(&params(HeavyHitters, 0.5, Cosine, Horizon::Prefill), 500).unwrap();
        assert_eq!(now.budget(100, 0), 50);
        let lin = ShrinkPlan::new(&params(Sinks, 0.5, Linear, Horizon::Tokens(10)), 64).unwrap();
        assert!((lin.strength(2) - 0.2).abs() < 1e-12);
        assert_eq!(lin.budget(100, 2), 90);
        let none = ShrinkPlan::new(&params(Sinks, 0.7, DecaySchedule::None, Horizon::Tokens(10)), 10).unwrap();
        assert_eq!(none.budget(100, 0), 30);
        // The floor (sinks + recent window = 6) wins over the ratio, and the budget never exceeds `full`.
        assert_eq!(none.budget(10, 0), 6);
        assert_eq!(none.budget(3, 0), 3);
    }

    #[test]
    fn eviction_cuts_a_block_below_the_budget_and_never_below_the_floor() {
        let mut p = params(HeavyHitters, 0.5, DecaySchedule::None, Horizon::Prefill);
        p.evict_block = 8;
        let plan = ShrinkPlan::new(&p, 16).unwrap();
        assert_eq!(plan.evict_target(50, 50), None);
        assert_eq!(plan.evict_target(51, 50), Some(43));
        // recent_window 4 is the floor.
        assert_eq!(plan.evict_target(9, 6), Some(4));
        assert_eq!(plan.evict_target(5, 3), Some(3));
    }

    #[test]
    fn zero_ratio_never_shrinks() {
        for s in [Cosine, Linear, DecaySchedule::None] {
            for m in [HeavyHitters, Sinks, Snapkv] {
                let plan = ShrinkPlan::new(&params(m, 0.0, s, Horizon::Tokens(16)), 16).unwrap();
                for full in [1, 7, 100, 4097] {
                    for step in [0, 3, 16, 40] {
                        assert_eq!(plan.budget(full, step), full);
                        assert_eq!(plan.evict_target(full, plan.budget(full, step)), None);
                    }
                }
            }
        }
    }

    #[test]
    fn bad_params_name_the_key_and_the_range() {
        let e = ShrinkPlan::new(&params(Sinks, 1.0, Cosine, Horizon::Prefill), 8).unwrap_err().to_string();
        assert!(e.contains("params.shrink_ratio: must be in [0, 1), got 1"), "{e}");
        let e = ShrinkPlan::new(&params(Sinks, 0.5, Cosine, Horizon::Tokens(0)), 8).unwrap_err().to_string();
        assert!(e.contains("params.horizon: must be"), "{e}");
        let plan = ShrinkPlan::new(&params(Snapkv, 0.5, Cosine, Horizon::Prefill), 8).unwrap();
        let e = plan.check_prompt(20).unwrap_err().to_string();
        assert!(e.contains("kv_shrink params.window: must be at most the prompt length (20 tokens), got 32"), "{e}");
        assert!(plan.check_prompt(32).is_ok());
        // The window matters only to SnapKV.
        assert!(ShrinkPlan::new(&params(Sinks, 0.5, Cosine, Horizon::Prefill), 8).unwrap().check_prompt(3).is_ok());
    }

    #[test]
    fn heavy_hitters_evict_low_scores_outside_the_recent_window() {
        // 12 entries in position order; entries 1, 5 and 8 received the most attention, 10 and 11 are recent.
        let mut s = vec![0.1f32; 12];
        s[1] = 3.0;
        s[5] = 2.0;
        s[8] = 2.5;
        s[3] = 1.0;
        s[11] = 9.0; // recent entries are kept whatever their score
        let pos: Vec<u32> = (0..12).collect();
        let keep = |target: usize| -> Vec<u32> {
            let ev = heavy_hitter_evict(&s, &pos, target, 2, 12);
            (0..12).filter(|j| !ev.contains(j)).collect()
        };
        assert_eq!(keep(5), vec![1, 5, 8, 10, 11]);
        assert_eq!(keep(6), vec![1, 3, 5, 8, 10, 11]);
        assert_eq!(keep(3), vec![1, 10, 11]);
        assert_eq!(keep(12), (0..12).collect::<Vec<_>>());
        // Ties go to the older entry.
        let ev = heavy_hitter_evict(&[1.0, 1.0, 1.0, 0.0, 0.0], &[0, 1, 2, 3, 4], 3, 1, 5);
        assert_eq!(ev, vec![2, 3]);
        // Recency and age come from positions, not from where an entry sits in the cache.
        let shuffled_pos = [4u32, 0, 3, 1, 2];
        let scores = [0.0f32, 5.0, 0.5, 1.0, 2.0];
        // Position 4 (index 0) is recent; of the rest, the lowest scores are indices 2 (0.5) then 3 (1.0).
        assert_eq!(heavy_hitter_evict(&scores, &shuffled_pos, 3, 1, 5), vec![2, 3]);
    }

    #[test]
    fn sinks_evict_the_oldest_non_sink_entries() {
        let pos: Vec<u32> = (0..10).collect();
        assert_eq!(sink_evict(&pos, 5, 2), vec![2, 3, 4, 5, 6]);
        assert_eq!(sink_evict(&pos, 10, 2), Vec::<u32>::new());
        // In any cache order.
        assert_eq!(sink_evict(&[9, 0, 5, 1, 7, 2], 4, 2), vec![2, 5]);
    }

    #[test]
    fn snapkv_pools_votes_over_the_prefix_and_keeps_the_window() {
        // 8 prompt entries, window 2 (entries 6, 7), kernel 3: votes = zero-padded 3-wide mean over entries 0..6.
        let s = [3.0f32, 0.0, 0.0, 0.0, 6.0, 0.0, 9.0, 9.0];
        let v = snapkv_votes(&s, 2, 3);
        let want = [1.0, 1.0, 0.0, 2.0, 2.0, 2.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
        assert!(v[6].is_infinite() && v[7].is_infinite());
        // Keep 5: the window plus the 3 best votes (3, 4, 5 at 2.0).
        assert_eq!(snapkv_evict(&s, 5, 2, 3), vec![0, 1, 2]);
        // Keep 6: 0 and 1 tie at 1.0 and the older one stays.
        assert_eq!(snapkv_evict(&s, 6, 2, 3), vec![1, 2]);
        // Kernel 1 = the raw scores.
        assert_eq!(snapkv_evict(&s, 4, 2, 1), vec![1, 2, 3, 5]);
    }
}
