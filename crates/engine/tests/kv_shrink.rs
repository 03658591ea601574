//! Adaptive KV-cache shrinking on the real model: identity at ratio 0, budgets, sinks, SnapKV, score
//! accumulation, entries that move with their data, and the heavy-hitter choice on a constructed attention pattern.

mod common;
use candle_core::{Device, Tensor};
use std::collections::BTreeSet;
use ttc_engine::kv_shrink::{generate_kv_shrink, heavy_hitter_evict, snapkv_evict, KvShrinker, ShrinkPlan};
use ttc_engine::policy::{DecaySchedule, Horizon, KvMethod, KvShrinkParams};
use ttc_engine::{argmax, ChatMessage, Engine, GenRequest, KvCache, LogitsMode, WeightFormat};

const PROMPTS: &[&str] = &[
    "Summarize: The customer Jane Doe (account ACC-2231) reported that order ORD-7781 arrived late and asked for a refund.",
    "Write a short workflow to book a flight and a hotel for a conference in Berlin.",
];

fn prompt_ids(engine: &Engine, text: &str) -> Vec<u32> {
    engine.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap()
}

fn params(method: KvMethod, ratio: f64, schedule: DecaySchedule, recent: usize, sinks: usize) -> KvShrinkParams {
    KvShrinkParams {
        method,
        shrink_ratio: ratio,
        decay_schedule: schedule,
        horizon: Horizon::MaxTokens,
        recent_window: recent,
        sink_tokens: sinks,
        evict_block: 1,
        window: 8,
        ..KvShrinkParams::default()
    }
}

fn plain(engine: &Engine, req: &GenRequest) -> Vec<u32> {
    engine.generate_plain(req, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap().token_ids
}

#[test]
fn zero_ratio_is_identical_to_baseline() {
    let engine = common::engine(WeightFormat::Q8_0);
    for text in PROMPTS {
        let req = GenRequest { prompt: prompt_ids(engine, text), max_tokens: 24, stop: vec![], ..Default::default() };
        let base = plain(engine, &req);
        for method in [KvMethod::HeavyHitters, KvMethod::Sinks, KvMethod::Snapkv] {
            // Heavy hitters and SnapKV also switch on score accumulation and a chunked prefill, which must not
            // change a single logit.
            let mut p = params(method, 0.0, DecaySchedule::Cosine, 32, 4);
            p.horizon = Horizon::Prefill;
            let (out, stats) =
                generate_kv_shrink(engine, &req, &p, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap();
            assert_eq!(out.token_ids, base, "{method:?} at shrink_ratio 0 differs from the baseline");
            assert_eq!(stats.kv_evicted_entries, Some(0));
            assert_eq!(stats.kv_final_bytes, stats.kv_baseline_bytes);
        }
    }
}

/// Drive the model by hand and check the cache after every forward: within budget, evicted exactly to the
/// plan's target, every position at most once, the recent window present, and every prompt entry's key equal
/// to the unshrunk cache's key at that entry's position (entries move with their data).
fn run_and_check(engine: &Engine, plan: ShrinkPlan, prompt: &[u32], steps: usize) -> (KvShrinker, KvCache) {
    let mut full_cache = engine.model.new_cache().unwrap();
    engine.model.forward(prompt, &mut full_cache, LogitsMode::None).unwrap();
    let mut cache = engine.model.new_cache().unwrap();
    let mut shrinker = KvShrinker::new(plan.clone(), &mut cache);
    let mut logits = shrinker.prefill(&engine.model, prompt, &mut cache).unwrap();
    let mut held = prompt.len();
    for step in 0..=steps {
        if step > 0 {
            let next = argmax(&logits);
            logits = engine.model.forward(&[next], &mut cache, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap().remove(0);
            held += 1;
        }
        shrinker.after_forward(&mut cache, step).unwrap();
        let full = prompt.len() + step;
        // SnapKV cuts the prompt once, exactly to its budget, and keeps every generated token.
        let snap = plan.method == KvMethod::Snapkv;
        let budget = if snap { plan.budget(prompt.len(), 0) + step } else { plan.budget(full, step) };
        match plan.evict_target(held, budget) {
            Some(_) if snap => held = budget,
            Some(t) => held = t,
            None => {}
        }
        assert_eq!(cache.next_pos, full);
        for (l, layer) in cache.layers.iter().enumerate() {
            assert!(layer.len() <= budget, "step {step} layer {l}: {} entries > budget {budget}", layer.len());
            assert_eq!(layer.len(), held, "step {step} layer {l}: evicts exactly to the plan's target");
            let (k, _, cap) = layer.buffers();
            let (fk, _, fcap) = full_cache.layers[l].buffers();
            let d = engine.model.cfg.head_dim;
            for h in 0..engine.model.cfg.n_head_kv {
                let pos = shrinker.positions(l, h);
                assert_eq!(pos.len(), layer.len());
                let set: BTreeSet<u32> = pos.iter().copied().collect();
                assert_eq!(set.len(), pos.len(), "a position is held twice");
                assert!(set.iter().all(|&p| (p as usize) < full));
                // The recent window is always there.
                let recent = plan.recent_window.min(pos.len());
                assert!((full - recent..full).all(|p| set.contains(&(p as u32))), "step {step} layer {l} head {h}: recent window");
                for (j, &p) in pos.iter().enumerate() {
                    if (p as usize) < prompt.len() {
                        let got = &k[(h * cap + j) * d..][..d];
                        let want = &fk[(h * fcap + p as usize) * d..][..d];
                        assert_eq!(got, want, "step {step} layer {l} head {h}: entry {j} does not hold position {p}");
                    }
                }
            }
        }
    }
    (shrinker, cache)
}

fn sorted(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

#[test]
fn sinks_are_never_evicted_and_the_cache_stays_within_budget() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[0]);
    let mut p = params(KvMethod::Sinks, 0.6, DecaySchedule::Linear, 8, 4);
    p.evict_block = 3;
    let plan = ShrinkPlan::new(&p, 16).unwrap();
    let (shrinker, _) = run_and_check(engine, plan, &prompt, 16);
    assert!(shrinker.evicted_entries > 0, "the test must actually evict");
    for l in 0..engine.model.cfg.n_layer {
        for h in 0..engine.model.cfg.n_head_kv {
            let pos = sorted(shrinker.positions(l, h));
            assert_eq!(&pos[..4], &[0, 1, 2, 3], "layer {l} head {h}: a sink was evicted");
            // StreamingLLM keeps sinks + one contiguous recent block.
            let tail: Vec<u32> = (pos[4]..pos[4] + (pos.len() - 4) as u32).collect();
            assert_eq!(&pos[4..], tail.as_slice());
        }
    }
}

#[test]
fn heavy_hitters_stay_within_budget_and_choose_per_head() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[1]);
    let mut p = params(KvMethod::HeavyHitters, 0.5, DecaySchedule::Cosine, 8, 4);
    p.horizon = Horizon::Tokens(4);
    p.evict_block = 4;
    let plan = ShrinkPlan::new(&p, 12).unwrap();
    let (shrinker, cache) = run_and_check(engine, plan, &prompt, 12);
    assert!(shrinker.evicted_entries > 0);
    // Selection is per KV head: some layer keeps different entries in different heads.
    let differs = (0..engine.model.cfg.n_layer).any(|l| {
        (1..engine.model.cfg.n_head_kv).any(|h| sorted(shrinker.positions(l, h)) != sorted(shrinker.positions(l, 0)))
    });
    assert!(differs, "every head kept the same entries in every layer");
    // The scores travel with the entries they belong to.
    for layer in &cache.layers {
        assert!(layer.scores().unwrap().iter().all(|s| s.len() == layer.len()));
    }
    // The first token (BOS, a natural attention sink) is a heavy hitter everywhere.
    for l in 0..engine.model.cfg.n_layer {
        for h in 0..engine.model.cfg.n_head_kv {
            assert!(shrinker.positions(l, h).contains(&0), "layer {l} head {h} evicted the first token");
        }
    }
}

#[test]
fn snapkv_keeps_the_window_and_the_positions_the_window_attends_to() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[0]);
    let n = prompt.len();
    let p = params(KvMethod::Snapkv, 0.5, DecaySchedule::Cosine, 8, 4);
    let plan = ShrinkPlan::new(&p, 8).unwrap();
    let (shrinker, cache) = run_and_check(engine, plan.clone(), &prompt, 6);
    let budget = plan.budget(n, 0);
    assert_eq!(budget, n.div_ceil(2));
    // Generated tokens are all kept; the statistic is gone after the one selection.
    assert_eq!(cache.layers[0].len(), budget + 6);
    assert!(cache.layers.iter().all(|l| !l.tracks_scores()));
    // Independent check of the selection: window scores collected one token at a time instead of in a chunk.
    let mut stepped = engine.model.new_cache().unwrap();
    engine.model.forward(&prompt[..n - 8], &mut stepped, LogitsMode::None).unwrap();
    stepped.track_attention_scores();
    for &t in &prompt[n - 8..] {
        engine.model.forward(&[t], &mut stepped, LogitsMode::None).unwrap();
    }
    for (l, layer) in stepped.layers.iter().enumerate() {
        for (h, s) in layer.scores().unwrap().iter().enumerate() {
            let evicted = snapkv_evict(s, budget, 8, 5);
            let want: Vec<u32> = (0..n as u32).filter(|j| !evicted.contains(j)).chain(n as u32..n as u32 + 6).collect();
            assert_eq!(sorted(shrinker.positions(l, h)), want, "layer {l} head {h}");
        }
    }
    // A window longer than the prompt is a request error naming the key.
    let mut long = p.clone();
    long.window = n + 1;
    let req = GenRequest { prompt, max_tokens: 4, stop: vec![], ..Default::default() };
    let e = generate_kv_shrink(engine, &req, &long, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap_err();
    assert!(e.to_string().contains(&format!("params.window: must be at most the prompt length ({n} tokens), got {}", n + 1)), "{e}");
}

#[test]
fn kv_internals_match_the_budget() {
    let engine = common::engine(WeightFormat::Q8_0);
    let req = GenRequest { prompt: prompt_ids(engine, PROMPTS[0]), max_tokens: 20, stop: vec![], ..Default::default() };
    let mut p = params(KvMethod::HeavyHitters, 0.5, DecaySchedule::None, 8, 4);
    p.horizon = Horizon::Prefill;
    let (out, stats) = generate_kv_shrink(engine, &req, &p, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap();
    let per_token = engine.model.cfg.kv_bytes_per_token() as u64;
    assert_eq!(per_token, 30 * 2 * 3 * 64 * 4);
    let n = out.token_ids.len();
    // Every emitted token except the last was fed back: the unshrunk cache would hold prompt + n - 1 entries.
    let fed = req.prompt.len() + n.saturating_sub(1);
    let plan = ShrinkPlan::new(&p, req.max_tokens).unwrap();
    let steps = n.saturating_sub(1);
    assert_eq!(stats.kv_baseline_bytes, Some(fed as u64 * per_token));
    assert_eq!(stats.kv_final_bytes, Some(plan.budget(fed, steps) as u64 * per_token));
    // The whole prompt is resident right after the prefill: that is the peak.
    assert_eq!(stats.kv_peak_bytes, Some(req.prompt.len() as u64 * per_token));
    // Evicted entries: per layer, everything fed minus what is left.
    let left = plan.budget(fed, steps);
    assert_eq!(stats.kv_evicted_entries, Some(30 * (fed - left) as u64));
}

#[test]
fn scores_sum_the_attention_of_every_query_head_in_the_group() {
    let engine = common::engine(WeightFormat::Q8_0);
    let cfg = &engine.model.cfg;
    let n_rep = (cfg.n_head / cfg.n_head_kv) as f32;
    let prompt = prompt_ids(engine, PROMPTS[0]);
    let prompt = &prompt[..12];
    // 12 rows in one forward, and 12 one-token forwards.
    let mut batched = engine.model.new_cache().unwrap();
    batched.track_attention_scores();
    engine.model.forward(prompt, &mut batched, LogitsMode::None).unwrap();
    let mut stepped = engine.model.new_cache().unwrap();
    stepped.track_attention_scores();
    for &t in prompt {
        engine.model.forward(&[t], &mut stepped, LogitsMode::None).unwrap();
    }
    for (l, (a, b)) in batched.layers.iter().zip(&stepped.layers).enumerate() {
        for (h, (sa, sb)) in a.scores().unwrap().iter().zip(b.scores().unwrap()).enumerate() {
            // Each query row of each of the n_rep query heads distributes probability 1 over the keys.
            let total: f32 = sa.iter().sum();
            assert!((total - n_rep * 12.0).abs() < 1e-3, "layer {l} head {h}: scores sum to {total}");
            // Key j is seen by queries j..12 only, so the last key has at most n_rep.
            assert!(sa[11] <= n_rep + 1e-5);
            // Every forward attends row by row (attention.rs), so 12 rows at once give the same bits as 12 steps.
            assert_eq!(sa, sb, "layer {l} head {h}: batched and stepped scores differ");
        }
    }
}

#[test]
fn heavy_hitter_choice_on_a_constructed_attention_pattern() {
    // One layer, 2 KV heads of 2 query heads each (GQA 2:1), 8 cached entries, 3 queries.
    let (n_kv, d, len) = (2, 4, 8);
    let mut cache = KvCache::new(1, n_kv, d).unwrap();
    let zeros = Tensor::zeros((1, n_kv, len, d), candle_core::DType::F32, &Device::Cpu).unwrap();
    cache.layers[0].append(&zeros, &zeros).unwrap();
    cache.track_attention_scores();
    // att[h][row][j]; rows 0..3 are query head 0 of the group, rows 3..6 query head 1.
    // KV head 0: query head 0 favours entry 2, query head 1 favours entry 5; entry 1 gets a bit from both, so
    // summed over the group entry 1 beats each single favourite.
    let mut att = vec![0f32; n_kv * 6 * len];
    let mut set = |h: usize, row: usize, probs: &[(usize, f32)]| {
        for &(j, p) in probs {
            att[(h * 6 + row) * len + j] = p;
        }
    };
    for row in 0..3 {
        set(0, row, &[(2, 0.6), (1, 0.3), (7, 0.1)]);
        set(0, 3 + row, &[(5, 0.6), (1, 0.3), (7, 0.1)]);
        // KV head 1: both query heads agree on entry 0 then entry 4.
        set(1, row, &[(0, 0.7), (4, 0.2), (6, 0.1)]);
        set(1, 3 + row, &[(0, 0.5), (4, 0.4), (3, 0.1)]);
    }
    let att = Tensor::from_vec(att, (1, n_kv, 6, len), &Device::Cpu).unwrap();
    cache.layers[0].add_scores(&att).unwrap();
    let scores = cache.layers[0].scores().unwrap();
    // Head 0: entries 1 (6 x 0.3), 2 and 5 (3 x 0.6 each) tie at 1.8: the group sum, not one query head, counts.
    assert!((scores[0][1] - 1.8).abs() < 1e-6 && (scores[0][2] - 1.8).abs() < 1e-6 && (scores[0][5] - 1.8).abs() < 1e-6);
    assert!((scores[1][0] - 3.6).abs() < 1e-6 && (scores[1][4] - 1.8).abs() < 1e-6);
    // A second decode query, one row per query head, favouring entry 1 in both heads of KV head 0.
    let mut att2 = vec![0f32; n_kv * 2 * len];
    att2[1] = 0.5;
    att2[len + 1] = 0.5;
    att2[len - 1] = 0.5;
    att2[2 * len - 1] = 0.5;
    att2[2 * len + 6] = 1.0;
    att2[3 * len + 6] = 1.0;
    let att2 = Tensor::from_vec(att2, (1, n_kv, 2, len), &Device::Cpu).unwrap();
    cache.layers[0].add_scores(&att2).unwrap();
    let scores = cache.layers[0].scores().unwrap().to_vec();
    // Budget 4 with a recent window of 2 (entries 6, 7): two heavy hitters among entries 0..6.
    let pos: Vec<u32> = (0..8).collect();
    let evict = vec![heavy_hitter_evict(&scores[0], &pos, 4, 2, 8), heavy_hitter_evict(&scores[1], &pos, 4, 2, 8)];
    assert_eq!(evict[0], vec![0, 3, 4, 5], "head 0 keeps 2.8 (entry 1), then the tie 1.8 goes to the older entry 2");
    assert_eq!(evict[1], vec![1, 2, 3, 5]);
    // Eviction moves the scores with the entries: the kept entries at or past the new length (4) fill the holes
    // below it in order: head 0: 6 -> 0, 7 -> 3; head 1: 4 -> 1, 6 -> 2, 7 -> 3.
    cache.layers[0].evict_per_head(&evict).unwrap();
    let kept = cache.layers[0].scores().unwrap();
    assert_eq!(kept[0], vec![scores[0][6], scores[0][1], scores[0][2], scores[0][7]]);
    assert_eq!(kept[1], vec![scores[1][0], scores[1][4], scores[1][6], scores[1][7]]);
}
