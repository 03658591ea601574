//! Adaptive KV-cache shrinking: evict cached entries during decoding so the cache follows a shrinking budget.
//!
//! Two eviction rules (engine.md §5, docs/kv-and-batching.md):
//! - **heavy hitters** (H2O, Zhang et al. 2023; reference `FMInference/H2O:h2o_hf/utils_real_drop/modify_llama.py`,
//!   `H2OKVCache_LayerWise`): every entry accumulates the attention probability it receives from every query so
//!   far; keep the `recent_window` newest entries plus the top scorers among the older ones, independently per KV
//!   head. With GQA the scores of the query heads that share a KV head are summed (the reference is MHA-only).
//! - **sinks** (StreamingLLM, Xiao et al. 2024; reference `mit-han-lab/streaming-llm:streaming_llm/kv_cache.py`,
//!   `StartRecentKVCache`): keep the first `sink_tokens` entries and the newest ones, evict the middle.
//!
//! Position handling: keys are cached **after RoPE, at their original positions**, and each new query gets its
//! true position (`KvCache::next_pos`), as in H2O's real-drop code. Evicting an entry therefore never re-rotates the
//! others. StreamingLLM's re-assignment of positions within the cache matters only beyond the pretraining window;
//! SmolLM2's window is 8192 tokens and the engine refuses longer requests, so it is not implemented.
//!
//! Budget schedule over decode steps t (t = number of single-token forwards after the prefill, T = `decay_steps`,
//! or the request's `max_tokens` when 0), with `full(t)` = entries an unshrunk cache would hold (prompt + t):
//! `w(t)` = ½(1 − cos(π·min(t,T)/T)) (cosine), min(t,T)/T (linear) or 1 (none);
//! `budget(t) = min(full(t), max(⌈full(t)·(1 − shrink_ratio·w(t))⌉, floor))` with floor = `recent_window`
//! (heavy hitters) or `sink_tokens + recent_window` (sinks). After every forward the cache is cut to the budget
//! whenever it holds more, so `shrink_ratio: 0` never evicts and decodes exactly like the baseline.

use crate::engine::{Emitter, Engine, GenOutput, GenRequest};
use crate::error::{EngineError, Result};
use crate::kv::KvCache;
use crate::model::{logits_rows, LogitsMode};
use crate::policy::KvShrinkParams;
pub use crate::policy::{DecaySchedule, KvMethod as ShrinkMethod};
use std::time::Instant;
use ttc_types::{GenEvent, PolicyStats};

/// The resolved shrinking plan of one request: method, schedule and the budget it implies at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct ShrinkPlan {
    pub method: ShrinkMethod,
    pub shrink_ratio: f64,
    pub schedule: DecaySchedule,
    /// T of the schedule, in decode steps (>= 1).
    pub decay_steps: usize,
    pub recent_window: usize,
    pub sink_tokens: usize,
}

impl ShrinkPlan {
    /// Resolve policy params for a request of `max_tokens`; a bad value names its field.
    pub fn new(params: &KvShrinkParams, max_tokens: usize) -> Result<ShrinkPlan> {
        let bad = |field: &str, msg: &str| EngineError::InvalidRequest(format!("kv_shrink params.{field}: {msg}"));
        let (method, schedule) = (params.method, params.decay_schedule);
        if !(0.0..1.0).contains(&params.shrink_ratio) {
            return Err(bad("shrink_ratio", &format!("{} is not in [0, 1)", params.shrink_ratio)));
        }
        let decay_steps = if params.decay_steps > 0 { params.decay_steps } else { max_tokens.max(1) };
        Ok(ShrinkPlan {
            method,
            shrink_ratio: params.shrink_ratio,
            schedule,
            decay_steps,
            recent_window: params.recent_window,
            sink_tokens: params.sink_tokens,
        })
    }

    /// Eviction strength w(t) in [0, 1] after `step` decode steps.
    pub fn strength(&self, step: usize) -> f64 {
        let p = step.min(self.decay_steps) as f64 / self.decay_steps as f64;
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
}

/// H2O selection for one KV head: indices (ascending) of the entries to keep out of `scores.len()`, given the
/// accumulated scores. Keeps the `min(recent_window, budget)` newest entries and, among the older ones, the
/// `budget - recent` with the highest scores (ties go to the older entry, so the choice is deterministic). As in
/// the reference, nothing is evicted while the cache fits the budget.
pub fn heavy_hitter_keep(scores: &[f32], budget: usize, recent_window: usize) -> Vec<u32> {
    let len = scores.len();
    if len <= budget {
        return (0..len as u32).collect();
    }
    let recent = recent_window.min(budget);
    let older = len - recent;
    let hh = budget - recent;
    let mut candidates: Vec<u32> = (0..older as u32).collect();
    if hh < candidates.len() {
        let by_score_desc = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b));
        if hh > 0 {
            candidates.select_nth_unstable_by(hh - 1, by_score_desc);
        }
        candidates.truncate(hh);
        candidates.sort_unstable();
    }
    candidates.extend(older as u32..len as u32);
    candidates
}

/// StreamingLLM selection: indices of the first `min(sink_tokens, budget)` entries and the newest ones, `budget`
/// in all (everything when `len <= budget`).
pub fn sink_keep(len: usize, budget: usize, sink_tokens: usize) -> Vec<u32> {
    if len <= budget {
        return (0..len as u32).collect();
    }
    let sinks = sink_tokens.min(budget);
    let recent = budget - sinks;
    (0..sinks as u32).chain((len - recent) as u32..len as u32).collect()
}

/// Applies a `ShrinkPlan` to one sequence's cache after each forward, remembering the original position of every
/// kept entry (per layer and KV head) and the memory it saved.
pub struct KvShrinker {
    pub plan: ShrinkPlan,
    /// `positions[layer][head][j]` = original token position of cache entry j.
    positions: Vec<Vec<Vec<u32>>>,
    /// Evicted (layer, token) entries so far, over all layers (each entry = K and V of every KV head).
    pub evicted_entries: u64,
    /// Largest number of entries per layer ever held (measured right after each forward, before eviction).
    pub peak_entries: usize,
}

impl KvShrinker {
    /// Prepare `cache` (empty or not) for shrinking; heavy hitters turn on score accumulation.
    pub fn new(plan: ShrinkPlan, cache: &mut KvCache) -> KvShrinker {
        if plan.method == ShrinkMethod::HeavyHitters {
            cache.track_attention_scores();
        }
        let n_kv = n_kv_heads(cache);
        let positions = cache
            .layers
            .iter()
            .map(|l| vec![(cache.next_pos - l.len()..cache.next_pos).map(|p| p as u32).collect(); n_kv])
            .collect();
        KvShrinker { plan, positions, evicted_entries: 0, peak_entries: 0 }
    }

    /// Original token positions of the entries of `layer`, KV head `head`, in cache order.
    pub fn positions(&self, layer: usize, head: usize) -> &[u32] {
        &self.positions[layer][head]
    }

    /// The current budget of `cache` after `step` decode steps.
    pub fn budget(&self, cache: &KvCache, step: usize) -> usize {
        self.plan.budget(cache.next_pos, step)
    }

    /// Call after every forward (`step` = decode steps done, 0 after the prefill): record the new entries and evict
    /// down to the budget. Returns the entries evicted per layer.
    pub fn after_forward(&mut self, cache: &mut KvCache, step: usize) -> Result<usize> {
        let budget = self.budget(cache, step);
        let mut evicted = 0;
        for (l, layer) in cache.layers.iter_mut().enumerate() {
            let len = layer.len();
            let known = self.positions[l].first().map(|p| p.len()).unwrap_or(0);
            if len < known {
                return Err(EngineError::InvalidRequest("KV cache shrank outside the shrinker (truncated?)".into()));
            }
            let first_new = (cache.next_pos - (len - known)) as u32;
            for pos in &mut self.positions[l] {
                pos.extend(first_new..cache.next_pos as u32);
            }
            self.peak_entries = self.peak_entries.max(len);
            if len <= budget {
                continue;
            }
            let keep: Vec<Vec<u32>> = match self.plan.method {
                ShrinkMethod::Sinks => vec![sink_keep(len, budget, self.plan.sink_tokens); self.positions[l].len()],
                ShrinkMethod::HeavyHitters => {
                    let scores = layer.scores().ok_or_else(|| {
                        EngineError::InvalidRequest("heavy-hitter eviction on a cache without scores".into())
                    })?;
                    scores.iter().map(|s| heavy_hitter_keep(s, budget, self.plan.recent_window)).collect()
                }
            };
            layer.retain_per_head(&keep)?;
            for (pos, idx) in self.positions[l].iter_mut().zip(&keep) {
                *pos = idx.iter().map(|&j| pos[j as usize]).collect();
            }
            evicted = len - budget;
            self.evicted_entries += evicted as u64;
        }
        Ok(evicted)
    }
}

fn n_kv_heads(cache: &KvCache) -> usize {
    cache.layers.first().map(|l| l.n_kv()).unwrap_or(0)
}

/// Autoregressive generation with adaptive KV-cache shrinking: the plain loop (`Engine::generate_plain`) with an
/// eviction after every forward. Returns the output and the KV internals (peak, final and unshrunk bytes, evicted
/// entries).
pub fn generate_kv_shrink(
    engine: &Engine,
    req: &GenRequest,
    params: &KvShrinkParams,
    choose: &mut dyn FnMut(&[f32]) -> u32,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, PolicyStats)> {
    engine.check_fits(req.prompt.len(), req.max_tokens)?;
    let plan = ShrinkPlan::new(params, req.max_tokens)?;
    let started = Instant::now();
    let mut cache = engine.model.new_cache()?;
    let mut shrinker = KvShrinker::new(plan, &mut cache);
    let mut em = Emitter::new(&engine.tokenizer, req, started, on_event);
    let logits = engine.model.forward(&req.prompt, &mut cache, LogitsMode::Last)?;
    let prefill_s = started.elapsed().as_secs_f64();
    let mut step = 0;
    shrinker.after_forward(&mut cache, step)?;
    let mut next = choose(&logits_rows(&logits)?[0]);
    while req.max_tokens > 0 && em.push(next) {
        let logits = engine.model.forward(&[next], &mut cache, LogitsMode::Last)?;
        step += 1;
        shrinker.after_forward(&mut cache, step)?;
        next = choose(&logits_rows(&logits)?[0]);
    }
    let per_token = engine.model.cfg.kv_bytes_per_token() as u64;
    let stats = PolicyStats {
        kv_peak_bytes: Some(shrinker.peak_entries as u64 * per_token),
        kv_final_bytes: Some(cache.bytes() as u64),
        kv_baseline_bytes: Some(cache.next_pos as u64 * per_token),
        kv_evicted_entries: Some(shrinker.evicted_entries),
        ..PolicyStats::default()
    };
    Ok((em.finish(req.prompt.len(), prefill_s), stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: &str, ratio: f64, schedule: &str) -> KvShrinkParams {
        KvShrinkParams {
            method: serde_json::from_value(serde_json::json!(method)).unwrap(),
            shrink_ratio: ratio,
            decay_schedule: serde_json::from_value(serde_json::json!(schedule)).unwrap(),
            decay_steps: 0,
            recent_window: 4,
            sink_tokens: 2,
        }
    }

    #[test]
    fn schedules_move_from_full_to_target() {
        let cos = ShrinkPlan::new(&params("heavy_hitters", 0.5, "cosine"), 10).unwrap();
        assert_eq!(cos.strength(0), 0.0);
        assert!((cos.strength(5) - 0.5).abs() < 1e-12);
        assert_eq!(cos.strength(10), 1.0);
        assert_eq!(cos.strength(99), 1.0);
        // budget(100 full, halfway) = ceil(100 * (1 - 0.5*0.5)) = 75; at the end ceil(100*0.5) = 50.
        assert_eq!(cos.budget(100, 0), 100);
        assert_eq!(cos.budget(100, 5), 75);
        assert_eq!(cos.budget(100, 10), 50);
        let lin = ShrinkPlan::new(&params("sinks", 0.5, "linear"), 10).unwrap();
        assert!((lin.strength(2) - 0.2).abs() < 1e-12);
        assert_eq!(lin.budget(100, 2), 90);
        let none = ShrinkPlan::new(&params("sinks", 0.7, "none"), 10).unwrap();
        assert_eq!(none.budget(100, 0), 30);
        // The floor (sinks + recent window = 6) wins over the ratio, and the budget never exceeds `full`.
        assert_eq!(none.budget(10, 0), 6);
        assert_eq!(none.budget(3, 0), 3);
    }

    #[test]
    fn zero_ratio_never_shrinks() {
        for s in ["cosine", "linear", "none"] {
            let plan = ShrinkPlan::new(&params("heavy_hitters", 0.0, s), 16).unwrap();
            for full in [1, 7, 100, 4097] {
                for step in [0, 3, 16, 40] {
                    assert_eq!(plan.budget(full, step), full);
                }
            }
        }
    }

    #[test]
    fn bad_params_name_the_field() {
        // Unknown methods and schedules cannot be written (they are enums, rejected when the policy is parsed).
        let e = ShrinkPlan::new(&params("sinks", 1.0, "cosine"), 8).unwrap_err().to_string();
        assert!(e.contains("params.shrink_ratio"), "{e}");
    }

    #[test]
    fn heavy_hitters_pick_top_scores_outside_the_recent_window() {
        // 12 entries; entries 1, 5 and 8 received the most attention, 10 and 11 are the recent window.
        let mut s = vec![0.1f32; 12];
        s[1] = 3.0;
        s[5] = 2.0;
        s[8] = 2.5;
        s[3] = 1.0;
        s[11] = 9.0; // recent entries are kept whatever their score
        assert_eq!(heavy_hitter_keep(&s, 5, 2), vec![1, 5, 8, 10, 11]);
        assert_eq!(heavy_hitter_keep(&s, 6, 2), vec![1, 3, 5, 8, 10, 11]);
        // A high score inside the window does not take a heavy-hitter slot.
        assert_eq!(heavy_hitter_keep(&s, 3, 2), vec![1, 10, 11]);
        // Budget below the window: only the newest entries.
        assert_eq!(heavy_hitter_keep(&s, 1, 2), vec![11]);
        // Fits: nothing evicted.
        assert_eq!(heavy_hitter_keep(&s, 12, 2), (0..12).collect::<Vec<_>>());
        // Ties go to the older entry.
        assert_eq!(heavy_hitter_keep(&[1.0, 1.0, 1.0, 0.0, 0.0], 3, 1), vec![0, 1, 4]);
    }

    #[test]
    fn sinks_keep_the_start_and_the_end() {
        assert_eq!(sink_keep(10, 5, 2), vec![0, 1, 7, 8, 9]);
        assert_eq!(sink_keep(10, 2, 4), vec![0, 1]);
        assert_eq!(sink_keep(4, 5, 2), vec![0, 1, 2, 3]);
    }
}
