//! `ttc bench kv`: the memory / speed / fidelity frontier of KV-cache shrinking on long prompts.
//!
//! Per prompt, the baseline is prefilled once and decoded greedily for `max_tokens` tokens (end-of-sequence
//! masked, so every run decodes the same number of steps); those tokens are the reference. Each method's prefill
//! (with the attention statistic it collects) also runs once and is timed; each case then starts from a copy of
//! its method's prefilled cache, applies its prompt-time eviction and decodes **teacher-forced** on the
//! baseline's tokens through the product's loop (`kv_shrink::decode_shrinking`), counting the steps whose greedy
//! choice equals the baseline's next token. Decode speed is paired: right before each case the baseline decode is
//! timed again from its own prefilled copy, so both see the same machine state; of several such rounds the median
//! ratio is reported.

use crate::engine::{Emitter, Engine, GenRequest};
use crate::error::Result;
use crate::model::kv::KvCache;
use crate::strategy::kv_shrink::{decode_shrinking, finish_run, KvShrinker, ShrinkPlan};
use crate::model::{logits_rows, LogitsMode};
use crate::policy::{DecaySchedule, Horizon, KvMethod, KvShrinkParams};
use crate::ChatMessage;
use serde::Serialize;
use std::time::Instant;

/// One benchmark prompt (token ids with the chat template applied).
#[derive(Debug, Clone)]
pub struct KvPrompt {
    pub name: String,
    pub ids: Vec<u32>,
}

/// One configuration measured on every prompt.
#[derive(Debug, Clone)]
pub struct KvCase {
    pub label: String,
    pub params: KvShrinkParams,
}

/// The frontier grid: every method at every ratio, at full strength from the prefill on (`horizon: prefill`,
/// `decay_schedule: none`), every other param at its default.
pub fn grid(methods: &[KvMethod], ratios: &[f64]) -> Vec<KvCase> {
    let mut out = Vec::new();
    for &method in methods {
        for &shrink_ratio in ratios {
            out.push(KvCase {
                label: format!("{} {shrink_ratio}", method.name()),
                params: KvShrinkParams {
                    method,
                    shrink_ratio,
                    decay_schedule: DecaySchedule::None,
                    horizon: Horizon::Prefill,
                    ..KvShrinkParams::default()
                },
            });
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct KvBenchRow {
    pub prompt: String,
    pub prompt_tokens: usize,
    pub policy: String,
    pub method: String,
    pub shrink_ratio: f64,
    /// KV bytes held at the end, on average after each forward, and at most (right after a forward).
    pub kv_final_bytes: u64,
    pub kv_mean_bytes: f64,
    pub kv_peak_bytes: u64,
    /// The same for the unshrunk cache.
    pub baseline_final_bytes: u64,
    pub baseline_mean_bytes: f64,
    pub baseline_peak_bytes: u64,
    pub kv_final_ratio: f64,
    pub kv_mean_ratio: f64,
    pub kv_peak_ratio: f64,
    /// Prefill (with the method's statistic and its prompt-time eviction), seconds, and against the baseline's.
    pub prefill_s: f64,
    pub baseline_prefill_s: f64,
    pub prefill_ratio: f64,
    /// Decode tokens/s over the steps after the first, and the paired baseline's.
    pub decode_tok_s: f64,
    pub baseline_decode_tok_s: f64,
    pub decode_speed_ratio: f64,
    /// Share of decode steps whose greedy choice equals the baseline's token (teacher-forced).
    pub forced_agreement: f64,
    pub decode_steps: usize,
}

/// A deterministic pseudo-random stream (LCG) so the documents are the same on every machine.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const CATEGORIES: &[&str] = &[
    "Electronics", "Apparel", "Furniture", "Groceries", "Toys", "Books", "Sporting Goods", "Beauty", "Garden",
    "Automotive", "Jewelry", "Pet Supplies", "Office Supplies", "Musical Instruments", "Kitchenware", "Footwear",
    "Luggage", "Baby Products", "Outdoor Gear", "Video Games", "Home Appliances", "Lighting", "Tools", "Crafts",
];
const TIERS: &[&str] = &["Standard", "Silver", "Gold", "Platinum"];

/// A store policy handbook with `sections` product categories and a question whose answer is stated once in it.
fn policy_document(sections: usize, seed: u64) -> (String, String) {
    let mut rng = Lcg(seed);
    let mut doc = String::from(
        "ACME Retail Customer Service Policy Handbook\n\nThis handbook is the reference for every support agent. \
         Apply the rules of the product category first, then the rules of the customer's membership tier.\n\n",
    );
    let mut facts = Vec::new();
    for (i, cat) in CATEGORIES.iter().cycle().take(sections).enumerate() {
        let name = if i < CATEGORIES.len() { cat.to_string() } else { format!("{cat} (Marketplace)") };
        doc.push_str(&format!("Section {}: {name}\n", i + 1));
        for tier in TIERS {
            let days = 10 + rng.next(80);
            doc.push_str(&format!("- {tier} members may return {name} items within {days} days of delivery if the item is unused.\n"));
            facts.push((name.clone(), tier.to_string()));
        }
        doc.push_str(&format!(
            "- A restocking fee of {}% applies to opened {name} items, except when the item arrived damaged.\n\
             - {name} orders above {} dollars ship for free; smaller orders pay a flat fee of {} dollars.\n\
             - Warranty claims for {name} are accepted for {} months and need the original order number.\n\
             - Escalate {name} disputes above {} dollars to the regional supervisor within {} business days.\n\n",
            5 + rng.next(20),
            25 + rng.next(100),
            3 + rng.next(9),
            6 + rng.next(30),
            200 + rng.next(800),
            1 + rng.next(5),
        ));
    }
    let (name, tier) = facts[rng.next(facts.len() as u64) as usize].clone();
    let question = format!("According to the handbook, within how many days may {tier} members return {name} items? Answer with the number.");
    (doc, question)
}

/// A synthetic store-policy prompt of at most `tokens` tokens (the most handbook sections that fit, chat
/// template included; each section is about 200 tokens).
pub fn synthetic_prompt(engine: &Engine, tokens: usize) -> Result<KvPrompt> {
    let render = |sections: usize| -> Result<Vec<u32>> {
        let (doc, question) = policy_document(sections, 11 + tokens as u64);
        engine.prompt_tokens(&[ChatMessage::new("system", doc), ChatMessage::new("user", question)])
    };
    let mut best = render(1)?;
    for sections in 2.. {
        let ids = render(sections)?;
        if ids.len() > tokens {
            break;
        }
        best = ids;
    }
    Ok(KvPrompt { name: format!("synthetic-{}", best.len()), ids: best })
}

/// Greedy choice with the end-of-sequence tokens masked, so every run decodes exactly `max_tokens` steps.
fn argmax_except(logits: &[f32], masked: &[u32]) -> u32 {
    let mut best: Option<usize> = None;
    for (i, &v) in logits.iter().enumerate() {
        if !masked.contains(&(i as u32)) && best.is_none_or(|b| v > logits[b]) {
            best = Some(i);
        }
    }
    best.unwrap_or(0) as u32
}

/// The plain prefill of `prompt` in 512-token chunks; returns the last position's logits.
fn plain_prefill(engine: &Engine, prompt: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
    let mut last = Vec::new();
    let chunks = prompt.len().div_ceil(512);
    for (i, part) in prompt.chunks(512).enumerate() {
        let mode = if i + 1 == chunks { LogitsMode::Last } else { LogitsMode::None };
        let out = engine.model.forward(part, cache, mode)?;
        if i + 1 == chunks {
            last = logits_rows(&out)?.swap_remove(0);
        }
    }
    Ok(last)
}

/// Baseline decode from a prefilled cache, the plain loop of `Engine::generate_plain`; `choose` picks each token.
/// Returns the tokens and the decode speed over the steps after the first.
fn plain_decode(
    engine: &Engine,
    req: &GenRequest,
    mut cache: KvCache,
    logits: &[f32],
    choose: &mut dyn FnMut(&[f32]) -> u32,
) -> Result<(Vec<u32>, f64)> {
    let mut on_event = |_| true;
    let mut em = Emitter::new(&engine.tokenizer, req, Instant::now(), &mut on_event);
    let mut next = choose(logits);
    while em.push(next) {
        let logits = engine.model.forward(&[next], &mut cache, LogitsMode::Last)?;
        next = choose(&logits_rows(&logits)?[0]);
    }
    let out = em.finish(req.prompt.len(), 0.0);
    Ok((out.token_ids.clone(), out.decode_tok_s()))
}

/// Measure every case on every prompt (`runs` timed rounds per case); `on_row` sees each row as soon as it is
/// measured.
pub fn kv_bench(
    engine: &Engine,
    prompts: &[KvPrompt],
    cases: &[KvCase],
    max_tokens: usize,
    runs: usize,
    on_row: &mut dyn FnMut(&KvBenchRow),
) -> Result<Vec<KvBenchRow>> {
    let masked = engine.tokenizer.stop_ids.clone();
    let per_token = engine.model.cfg.kv_bytes_per_token() as u64;
    let mut rows = Vec::new();
    for prompt in prompts {
        engine.check_fits(prompt.ids.len(), max_tokens)?;
        let req = GenRequest { prompt: prompt.ids.clone(), max_tokens, stop: vec![], ..Default::default() };
        let mut base_cache = engine.model.new_cache()?;
        let t = Instant::now();
        let base_logits = plain_prefill(engine, &prompt.ids, &mut base_cache)?;
        let base_prefill_s = t.elapsed().as_secs_f64();
        let (reference, _) =
            plain_decode(engine, &req, base_cache.clone(), &base_logits, &mut |l: &[f32]| argmax_except(l, &masked))?;
        let fed = prompt.ids.len() + reference.len().saturating_sub(1);
        // Every forward's unshrunk size: the prompt after the prefill, then one more per fed token.
        let base_mean = (0..reference.len()).map(|i| (prompt.ids.len() + i) as f64).sum::<f64>()
            / reference.len().max(1) as f64
            * per_token as f64;
        // Cases share a prefill when it collects the same statistic: same method (and, for SnapKV, same window).
        let prefill_key = |p: &KvShrinkParams| (p.method, if p.method == KvMethod::Snapkv { p.window } else { 0 });
        let mut groups: Vec<(KvMethod, usize)> = Vec::new();
        for c in cases {
            if !groups.contains(&prefill_key(&c.params)) {
                groups.push(prefill_key(&c.params));
            }
        }
        for group in groups {
            let method = group.0;
            let in_group: Vec<&KvCase> = cases.iter().filter(|c| prefill_key(&c.params) == group).collect();
            // The group's prefill, once: its cases differ only in what they evict afterwards.
            let mut cache = engine.model.new_cache()?;
            let mut shrinker = KvShrinker::new(ShrinkPlan::new(&in_group[0].params, max_tokens)?, &mut cache);
            let t = Instant::now();
            let logits = shrinker.prefill(&engine.model, &prompt.ids, &mut cache)?;
            let method_prefill_s = t.elapsed().as_secs_f64();
            for case in in_group {
                let plan = ShrinkPlan::new(&case.params, max_tokens)?;
                plan.check_prompt(prompt.ids.len())?;
                // Rounds of (baseline decode, case decode) back to back, both teacher-forced on the reference so
                // they feed the same tokens; the median round's speed ratio is reported (a loaded machine makes
                // single timings drift).
                let mut rounds = Vec::new();
                let mut measured = None;
                for _ in 0..runs.max(1) {
                    let mut i = 0;
                    let (_, base_tok_s) = plain_decode(engine, &req, base_cache.clone(), &base_logits, &mut |_: &[f32]| {
                        i += 1;
                        reference[i - 1]
                    })?;
                    let mut c = cache.clone();
                    let mut s = KvShrinker::new(plan.clone(), &mut c);
                    let t = Instant::now();
                    s.after_forward(&mut c, 0)?;
                    let prefill_s = method_prefill_s + t.elapsed().as_secs_f64();
                    let (mut step, mut agree) = (0usize, 0usize);
                    let mut forced = |l: &[f32]| {
                        if step > 0 && argmax_except(l, &masked) == reference[step] {
                            agree += 1;
                        }
                        step += 1;
                        reference[step - 1]
                    };
                    let mut on_event = |_| true;
                    let mut em = Emitter::new(&engine.tokenizer, &req, Instant::now(), &mut on_event);
                    decode_shrinking(&engine.model, max_tokens, &mut c, &mut s, &logits, &mut forced, &mut em)?;
                    let out = em.finish(prompt.ids.len(), prefill_s);
                    rounds.push((out.decode_tok_s() / base_tok_s.max(1e-9), out.decode_tok_s(), base_tok_s));
                    measured.get_or_insert((finish_run(&engine.model, &c, &s), prefill_s, agree));
                }
                rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (ratio, tok_s, base_tok_s) = rounds[rounds.len() / 2];
                let (run, prefill_s, agree) = measured.expect("at least one round");
                let steps = reference.len().saturating_sub(1);
                let final_bytes = run.stats.kv_final_bytes.unwrap_or(0);
                let peak = run.stats.kv_peak_bytes.unwrap_or(0);
                let base_bytes = fed as u64 * per_token;
                let row = KvBenchRow {
                    prompt: prompt.name.clone(),
                    prompt_tokens: prompt.ids.len(),
                    policy: case.label.clone(),
                    method: method.name().to_string(),
                    shrink_ratio: case.params.shrink_ratio,
                    kv_final_bytes: final_bytes,
                    kv_mean_bytes: run.mean_bytes,
                    kv_peak_bytes: peak,
                    baseline_final_bytes: base_bytes,
                    baseline_mean_bytes: base_mean,
                    baseline_peak_bytes: base_bytes,
                    kv_final_ratio: final_bytes as f64 / base_bytes.max(1) as f64,
                    kv_mean_ratio: run.mean_bytes / base_mean.max(1.0),
                    kv_peak_ratio: peak as f64 / base_bytes.max(1) as f64,
                    prefill_s,
                    baseline_prefill_s: base_prefill_s,
                    prefill_ratio: prefill_s / base_prefill_s.max(1e-9),
                    decode_tok_s: tok_s,
                    baseline_decode_tok_s: base_tok_s,
                    decode_speed_ratio: ratio,
                    forced_agreement: agree as f64 / steps.max(1) as f64,
                    decode_steps: steps,
                };
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_argmax_skips_the_stop_tokens() {
        assert_eq!(argmax_except(&[0.1, 0.9, 0.5], &[]), 1);
        assert_eq!(argmax_except(&[0.1, 0.9, 0.5], &[1]), 2);
        assert_eq!(argmax_except(&[0.5, 0.9, 0.5], &[1]), 0, "ties go to the lowest index");
    }

    #[test]
    fn the_grid_crosses_methods_and_ratios_at_full_strength() {
        let g = grid(&[KvMethod::HeavyHitters, KvMethod::Snapkv], &[0.3, 0.7]);
        let labels: Vec<&str> = g.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["heavy_hitters 0.3", "heavy_hitters 0.7", "snapkv 0.3", "snapkv 0.7"]);
        assert!(g.iter().all(|c| c.params.horizon == Horizon::Prefill && c.params.decay_schedule == DecaySchedule::None));
    }
}
