//! The prefix cache on the real model: a request whose prompt starts like an earlier one reuses its KV entries,
//! and its output is identical, token for token, to the output without the cache (every forward is row-exact,
//! so a cached entry holds the bits the request's own prefill would compute). Direct path, several policies, and
//! the batch scheduler.

mod common;
use std::sync::{mpsc, Arc};
use ttc_engine::scheduler::{greedy, Scheduler, SchedulerConfig, StreamItem};
use ttc_engine::{ChatMessage, Engine, GenRequest, Policy, WeightFormat};
use ttc_types::{GenEvent, Usage};

const SYSTEM: &str = "You are a support agent for an online store. Policies: refunds within 30 days of delivery for \
unused items; damaged items are replaced at no cost; late deliveries over 5 days get a 10% voucher; orders can be \
cancelled until they ship; address changes are possible until the label is printed. Always cite the order id, \
keep answers short, and never promise what the policy does not allow. ";

fn load(prefix_cache_mb: usize) -> Engine {
    let mut e = Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap();
    if prefix_cache_mb > 0 {
        e.enable_prefix_cache(prefix_cache_mb << 20).unwrap();
    }
    e
}

fn request(e: &Engine, question: &str) -> GenRequest {
    let system = SYSTEM.repeat(3);
    let messages = [ChatMessage::new("system", system), ChatMessage::new("user", question.to_string())];
    GenRequest { prompt: e.prompt_tokens(&messages).unwrap(), max_tokens: 12, ..Default::default() }
}

/// Two requests that share the system prompt, and how many prompt tokens they share.
fn two_requests(e: &Engine) -> (GenRequest, GenRequest, usize) {
    let first = request(e, "Order ORD-1 arrived 7 days late. What do I get?");
    let second = request(e, "Can I still cancel order ORD-2? It has not shipped.");
    let common_prefix = first.prompt.iter().zip(&second.prompt).take_while(|(a, b)| a == b).count();
    (first, second, common_prefix)
}

/// Output tokens and the usage of the Finished event.
fn run(e: &Engine, req: &GenRequest, policy: &Policy) -> (Vec<u32>, Usage) {
    let mut usage = None;
    let out = e
        .generate_policy(req, policy, None, &mut |ev| {
            if let GenEvent::Finished { usage: u, .. } = ev {
                usage = u;
            }
            true
        })
        .unwrap()
        .0;
    (out.token_ids, usage.expect("usage"))
}

fn policy(name: &str) -> Policy {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies.yaml");
    ttc_engine::load_policies(&path).unwrap().into_iter().find(|p| p.name == name).unwrap()
}

#[test]
fn a_shared_system_prompt_is_reused_and_outputs_stay_identical() {
    let (plain, cached) = (load(0), load(64));
    let (first, second, common_prefix) = two_requests(&cached);
    assert!(common_prefix > 200, "the prompts share {common_prefix} tokens");

    let (cold, usage) = run(&cached, &first, &Policy::baseline());
    assert_eq!(usage.cached_prompt_tokens, 0, "nothing was cached yet");
    assert_eq!(cold, run(&plain, &first, &Policy::baseline()).0);
    for name in ["baseline", "speculative_decoding", "early_exit_optimized", "early_exit_28"] {
        let p = if name == "baseline" { Policy::baseline() } else { policy(name) };
        let (got, usage) = run(&cached, &second, &p);
        let (want, plain_usage) = run(&plain, &second, &p);
        assert_eq!(got, want, "{name}: the prefix cache changed the output");
        assert_eq!(plain_usage.cached_prompt_tokens, 0);
        // Whole blocks of the shared prefix, and never the whole prompt.
        let reused = usage.cached_prompt_tokens as usize;
        assert_eq!(reused, common_prefix / 32 * 32, "{name}: reused {reused} of {common_prefix} shared tokens");
    }
    let stats = cached.prefix_stats().unwrap();
    assert!(stats.hit_tokens >= 4 * (common_prefix / 32 * 32) as u64, "{stats:?}");
}

#[test]
fn the_scheduler_reuses_cached_prefixes_with_identical_outputs() {
    let (plain, cached) = (load(0), Arc::new(load(64)));
    let warm = request(&cached, "Order ORD-1 arrived 7 days late. What do I get?");
    let second = request(&cached, "My parcel ORD-9 was damaged. What now?");
    let scheduler = Scheduler::new(cached.clone(), SchedulerConfig::elastic(4).with_step_tokens(128)).unwrap();
    let mut outs = Vec::new();
    for req in [warm, second.clone()] {
        let (tx, rx) = mpsc::channel();
        scheduler.submit(req, greedy(), tx).unwrap();
        let mut usage = None;
        let done = loop {
            match rx.recv().unwrap() {
                StreamItem::Event(GenEvent::Finished { usage: u, .. }) => usage = u,
                StreamItem::Event(_) => {}
                StreamItem::Done(r) => break r.unwrap(),
            }
        };
        assert_eq!(usage.unwrap().cached_prompt_tokens, done.output.usage.cached_prompt_tokens);
        outs.push(done.output);
    }
    assert_eq!(outs[0].usage.cached_prompt_tokens, 0);
    assert!(outs[1].usage.cached_prompt_tokens > 200, "{:?}", outs[1].usage);
    assert_eq!(outs[1].token_ids, run(&plain, &second, &Policy::baseline()).0);
}

/// KV shrinking: StreamingLLM sinks prefill without scores, so the shared prefix comes from the cache and the output
/// is unchanged; heavy hitters (H2O) score every prompt row, so they prefill in full and take nothing from it.
#[test]
fn sinks_reuse_cached_prefixes_and_heavy_hitters_do_not() {
    let (plain, cached) = (load(0), load(64));
    let (first, second, common_prefix) = two_requests(&cached);
    run(&cached, &first, &Policy::baseline());
    for (name, reuses) in [("kv_attention_sinks", true), ("adaptive_kv_cache", false)] {
        let p = policy(name);
        let (got, usage) = run(&cached, &second, &p);
        let (want, _) = run(&plain, &second, &p);
        assert_eq!(got, want, "{name}: the prefix cache changed the output");
        let expected = if reuses { common_prefix / 32 * 32 } else { 0 };
        assert_eq!(usage.cached_prompt_tokens as usize, expected, "{name}");
    }
}

/// A capacity search switches the cache on in an engine already shared by the runner (`&self`); once.
#[test]
fn a_shared_engine_starts_its_prefix_cache_once() {
    let e = Arc::new(load(0));
    assert!(e.prefix_stats().is_none());
    let (first, second, _) = two_requests(&e);
    assert_eq!(run(&e, &first, &Policy::baseline()).1.cached_prompt_tokens, 0);
    assert!(e.start_prefix_cache(64 << 20).unwrap(), "switched on");
    assert!(!e.start_prefix_cache(64 << 20).unwrap(), "on already: left as it is");
    assert!(e.start_prefix_cache(1000).unwrap_err().to_string().contains("below one block"));
    run(&e, &first, &Policy::baseline());
    assert!(run(&e, &second, &Policy::baseline()).1.cached_prompt_tokens > 200);
}

#[test]
fn a_budget_below_one_block_is_refused() {
    let mut e = load(0);
    let err = e.enable_prefix_cache(1000).unwrap_err().to_string();
    assert!(err.contains("below one block"), "{err}");
}
