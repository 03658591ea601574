//! Teacher-forced fidelity on the real model, on cases whose answer is known: lossless policies are exactly the
//! full model; a fixed exit equals an independently truncated model, step by step; lossy policies move away.

mod common;
use std::path::Path;
use ttc_engine::fidelity::{FidelityAcc, PolicyView};
use ttc_engine::{ChatMessage, Engine, GenRequest, Policy, WeightFormat};

const PROMPTS: &[&str] = &[
    "Order ORD-7781 contains product SKU-220 (Wireless Mouse, qty 2) and SKU-118 (USB-C Hub, qty 1). List the SKUs in the order.",
    "Copy the following customer address exactly: 1200 Market Street, Suite 400, San Francisco, CA 94103.",
    "What is the capital of Italy?",
];

const POLICIES: &str = r#"
- {name: ngram, algorithm: speculative_ngram, params: {lookahead_tokens: 4, max_ngram: 3, min_ngram: 1}}
- {name: self, algorithm: speculative_self, params: {lookahead_tokens: 6, draft_layers: 24, verification_threshold: 0.5}}
- {name: ee28, algorithm: early_exit_fixed, params: {exit_layer: 28}}
- {name: min_p, algorithm: token_pruning, params: {mode: min_p, temperature: 0.7, min_p: 0.1}}
- {name: sinks, algorithm: kv_shrink, params: {method: sinks, shrink_ratio: 0.5, decay_schedule: linear, sink_tokens: 4}}
"#;

fn policies() -> Vec<Policy> {
    ttc_engine::parse_policies(POLICIES, Path::new("test.yaml")).unwrap()
}

fn request(e: &Engine, text: &str, max_tokens: usize) -> GenRequest {
    GenRequest { prompt: e.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap(), max_tokens, stop: vec![], ..Default::default() }
}

#[test]
fn lossless_policies_are_exactly_the_full_model() {
    let e = common::engine(WeightFormat::Q8_0);
    let ps = policies();
    for text in PROMPTS {
        let req = request(e, text, 16);
        let traj = e.greedy_trajectory(&req).unwrap();
        // The trajectory is baseline greedy decoding: its tokens, plus the stop token if one ended it.
        let (out, _) = e.generate_policy(&req, &Policy::baseline(), None, &mut |_| true).unwrap();
        assert_eq!(&traj.tokens[..out.token_ids.len()], &out.token_ids[..], "{text:?}");
        // Its rows are bit for bit a teacher-forced forward's: the replay needs no second pass for them.
        assert_eq!(traj.rows, e.teacher_forced_rows(&req.prompt, &traj.tokens).unwrap(), "{text:?}");
        for p in [&Policy::baseline(), &ps[0], &ps[1]] {
            let f = e.fidelity(&req, p, None, &traj).unwrap();
            let n = traj.tokens.len() as u32;
            assert_eq!(f.steps, Some(n), "{} {text:?}", p.name);
            assert_eq!((f.top1, f.kl, f.top5, f.pruned_mass), (Some(1.0), Some(0.0), Some(1.0), Some(0.0)), "{} {text:?}", p.name);
            assert_eq!(f.first_divergence, Some(n), "{}: no divergence is reported as the trajectory length", p.name);
        }
    }
}

#[test]
fn fixed_exit_rows_equal_an_independently_truncated_model() {
    let e = common::engine(WeightFormat::Q8_0);
    let mut truncated = Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap();
    truncated.model.blocks.truncate(28);
    truncated.model.cfg.n_layer = 28;
    let ee28 = &policies()[2];
    let mut below_one = false;
    for text in PROMPTS {
        let req = request(e, text, 12);
        let traj = e.greedy_trajectory(&req).unwrap();
        let got = e.fidelity(&req, ee28, None, &traj).unwrap();
        // Independently: the truncated model's rows along the same trajectory, scored against the full model's.
        let full = e.teacher_forced_rows(&req.prompt, &traj.tokens).unwrap();
        let short = truncated.teacher_forced_rows(&req.prompt, &traj.tokens).unwrap();
        let mut acc = FidelityAcc::default();
        for ((f, s), &t) in full.iter().zip(&short).zip(&traj.tokens) {
            acc.observe(f, PolicyView::Row(s), t);
        }
        let want = acc.finish();
        assert_eq!(got, want, "{text:?}");
        assert!(want.kl.unwrap() > 0.0, "two fewer layers must change the distribution");
        below_one |= want.top1.unwrap() < 1.0;
    }
    assert!(below_one, "exiting at layer 28 of 30 changes some greedy token on these prompts");
}

#[test]
fn pruning_and_kv_shrink_move_away_from_the_full_model() {
    let e = common::engine(WeightFormat::Q8_0);
    let ps = policies();
    let req = request(e, PROMPTS[0], 16);
    let traj = e.greedy_trajectory(&req).unwrap();
    let min_p = e.fidelity(&req, &ps[3], None, &traj).unwrap();
    assert_eq!(min_p.steps, Some(traj.tokens.len() as u32));
    // Temperature 0.7 with min-p keeps the argmax, so it never diverges, but it puts more than the full model's
    // mass on it and drops the tail: a positive KL over the kept set, lost mass, and top-1 as a probability.
    assert_eq!(min_p.first_divergence, Some(traj.tokens.len() as u32));
    assert!(min_p.pruned_mass.unwrap() > 0.0 && min_p.kl.unwrap() > 0.0, "{min_p:?}");
    assert!(min_p.top1.unwrap() > 0.0 && min_p.top1.unwrap() <= 1.0, "{min_p:?}");
    let sinks = e.fidelity(&req, &ps[4], None, &traj).unwrap();
    assert_eq!(sinks.steps, Some(traj.tokens.len() as u32));
    assert_eq!(sinks.pruned_mass, Some(0.0), "a greedy policy prunes nothing");
    assert!(sinks.kl.unwrap().is_finite() && sinks.top1.unwrap() <= 1.0, "{sinks:?}");
}

#[test]
fn replaying_with_a_shared_prompt_cache_changes_no_value() {
    // The fidelity pass replays every policy of a sample on one prompt with a prefix cache of its own: every
    // policy after the first loads the prompt's KV. The values must be the cold replay's, bit for bit.
    let e = common::engine(WeightFormat::Q8_0);
    let ps = policies();
    let req = request(e, PROMPTS[0], 12);
    let cold_traj = e.greedy_trajectory(&req).unwrap();
    let cold: Vec<_> = ps.iter().map(|p| e.fidelity(&req, p, None, &cold_traj).unwrap()).collect();
    let shared = e.new_prefix_cache(64 << 20).unwrap();
    let (warm_traj, warm) = e.with_thread_prefix_cache(&shared, || {
        let t = e.greedy_trajectory(&req).unwrap();
        let f: Vec<_> = ps.iter().map(|p| e.fidelity(&req, p, None, &t).unwrap()).collect();
        (t, f)
    });
    assert_eq!(warm_traj, cold_traj);
    assert_eq!(warm, cold);
    let stats = shared.lock().unwrap().stats();
    let blocks = (req.prompt.len() - 1) / 32;
    assert!(blocks > 0, "the prompt spans at least one whole block");
    // Every policy reused every whole block (the KV-shrink one too: sinks score nothing while prefilling).
    assert_eq!(stats.hit_tokens, (5 * blocks * 32) as u64, "{stats:?}");
    // Outside the closure the thread is back on the engine's own setting (no prefix cache), and so is any other
    // thread while the closure runs.
    let elsewhere = e.with_thread_prefix_cache(&shared, || {
        std::thread::scope(|s| s.spawn(|| e.load_prefix(&req.prompt, &mut e.model.new_cache().unwrap())).join().unwrap())
    });
    assert_eq!(elsewhere, 0);
    assert_eq!(e.load_prefix(&req.prompt, &mut e.model.new_cache().unwrap()), 0);
}
