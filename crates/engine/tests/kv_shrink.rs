//! Adaptive KV-cache shrinking on the real model: identity at ratio 0, budgets, sinks, score accumulation, and the
//! heavy-hitter choice on a constructed attention pattern.

mod common;
use candle_core::{Device, Tensor};
use ttc_engine::kv_shrink::{generate_kv_shrink, heavy_hitter_keep, KvShrinker, ShrinkPlan};
use ttc_engine::policy::KvShrinkParams;
use ttc_engine::{argmax, ChatMessage, Engine, GenRequest, KvCache, LogitsMode, WeightFormat};

const PROMPTS: &[&str] = &[
    "Summarize: The customer Jane Doe (account ACC-2231) reported that order ORD-7781 arrived late and asked for a refund.",
    "Write a short workflow to book a flight and a hotel for a conference in Berlin.",
];

fn prompt_ids(engine: &Engine, text: &str) -> Vec<u32> {
    engine.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap()
}

fn params(method: &str, ratio: f64, schedule: &str, recent: usize, sinks: usize) -> KvShrinkParams {
    KvShrinkParams {
        method: serde_json::from_value(serde_json::json!(method)).unwrap(),
        shrink_ratio: ratio,
        decay_schedule: serde_json::from_value(serde_json::json!(schedule)).unwrap(),
        decay_steps: 0,
        recent_window: recent,
        sink_tokens: sinks,
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
        for method in ["heavy_hitters", "sinks"] {
            // Heavy hitters also switch on score accumulation, which must not change a single logit.
            let p = params(method, 0.0, "cosine", 32, 4);
            let (out, stats) =
                generate_kv_shrink(engine, &req, &p, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap();
            assert_eq!(out.token_ids, base, "{method} at shrink_ratio 0 differs from the baseline");
            assert_eq!(stats.kv_evicted_entries, Some(0));
            assert_eq!(stats.kv_final_bytes, stats.kv_baseline_bytes);
        }
    }
}

/// Drive the model by hand and check the cache after every forward.
fn run_and_check(engine: &Engine, plan: ShrinkPlan, prompt: &[u32], steps: usize) -> (KvShrinker, KvCache) {
    let mut cache = engine.model.new_cache().unwrap();
    let mut shrinker = KvShrinker::new(plan.clone(), &mut cache);
    let mut logits = engine.model.forward(prompt, &mut cache, LogitsMode::Last).unwrap();
    for step in 0..=steps {
        if step > 0 {
            let next = argmax(&logits.to_vec2::<f32>().unwrap()[0]);
            logits = engine.model.forward(&[next], &mut cache, LogitsMode::Last).unwrap();
        }
        shrinker.after_forward(&mut cache, step).unwrap();
        let full = prompt.len() + step;
        let budget = plan.budget(full, step);
        assert_eq!(cache.next_pos, full);
        for (l, layer) in cache.layers.iter().enumerate() {
            assert!(layer.len() <= budget, "step {step} layer {l}: {} entries > budget {budget}", layer.len());
            assert_eq!(layer.len(), budget.min(full), "evicts exactly down to the budget");
            for h in 0..engine.model.cfg.n_head_kv {
                let pos = shrinker.positions(l, h);
                assert_eq!(pos.len(), layer.len());
                assert!(pos.windows(2).all(|w| w[0] < w[1]), "kept entries stay in position order");
                // The recent window is always there.
                let recent = plan.recent_window.min(pos.len());
                let want: Vec<u32> = ((full - recent) as u32..full as u32).collect();
                assert_eq!(&pos[pos.len() - recent..], want.as_slice(), "step {step} layer {l} head {h}: recent window");
            }
        }
    }
    (shrinker, cache)
}

#[test]
fn sinks_are_never_evicted_and_the_cache_stays_within_budget() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[0]);
    let plan = ShrinkPlan::new(&params("sinks", 0.6, "linear", 8, 4), 16).unwrap();
    let (shrinker, cache) = run_and_check(engine, plan.clone(), &prompt, 16);
    assert!(shrinker.evicted_entries > 0, "the test must actually evict");
    let final_budget = plan.budget(prompt.len() + 16, 16);
    assert_eq!(cache.layers[0].len(), final_budget);
    for l in 0..engine.model.cfg.n_layer {
        for h in 0..engine.model.cfg.n_head_kv {
            assert_eq!(&shrinker.positions(l, h)[..4], &[0, 1, 2, 3], "layer {l} head {h}: a sink was evicted");
            // StreamingLLM keeps sinks + one contiguous recent block.
            let pos = shrinker.positions(l, h);
            let tail: Vec<u32> = (pos[4]..pos[4] + (pos.len() - 4) as u32).collect();
            assert_eq!(&pos[4..], tail.as_slice());
        }
    }
}

#[test]
fn heavy_hitters_stay_within_budget_and_choose_per_head() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[1]);
    let plan = ShrinkPlan::new(&params("heavy_hitters", 0.5, "none", 8, 4), 12).unwrap();
    let (shrinker, cache) = run_and_check(engine, plan, &prompt, 12);
    assert!(shrinker.evicted_entries > 0);
    // Selection is per KV head: some layer keeps different entries in different heads.
    let differs = (0..engine.model.cfg.n_layer)
        .any(|l| (1..engine.model.cfg.n_head_kv).any(|h| shrinker.positions(l, h) != shrinker.positions(l, 0)));
    assert!(differs, "every head kept the same entries in every layer");
    // The scores travel with the entries they belong to.
    for layer in &cache.layers {
        assert!(layer.scores().unwrap().iter().all(|s| s.len() == layer.len()));
    }
    // The first token (BOS, a natural attention sink) is a heavy hitter everywhere.
    for l in 0..engine.model.cfg.n_layer {
        for h in 0..engine.model.cfg.n_head_kv {
            assert_eq!(shrinker.positions(l, h)[0], 0, "layer {l} head {h} evicted the first token");
        }
    }
}

#[test]
fn kv_internals_match_the_budget() {
    let engine = common::engine(WeightFormat::Q8_0);
    let req = GenRequest { prompt: prompt_ids(engine, PROMPTS[0]), max_tokens: 20, stop: vec![], ..Default::default() };
    let p = params("heavy_hitters", 0.5, "none", 8, 4);
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
    assert_eq!(heavy_hitter_keep(&scores[0], 4, 2), vec![1, 2, 6, 7], "head 0: 2.8 (entry 1), then the tie 1.8 goes to the older entry 2");
    assert_eq!(heavy_hitter_keep(&scores[1], 4, 2), vec![0, 4, 6, 7]);
    // Eviction gathers scores with the entries.
    let keep = vec![heavy_hitter_keep(&scores[0], 4, 2), heavy_hitter_keep(&scores[1], 4, 2)];
    cache.layers[0].retain_per_head(&keep).unwrap();
    let kept = cache.layers[0].scores().unwrap();
    assert_eq!(kept[0], vec![scores[0][1], scores[0][2], scores[0][6], scores[0][7]]);
    assert_eq!(kept[1], vec![scores[1][0], scores[1][4], scores[1][6], scores[1][7]]);
}
