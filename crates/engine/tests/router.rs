//! A router on the real model: it measures the request's features (prompt tokens, trigram repetition, the full
//! model's first-step entropy), picks the rule's policy, and decodes exactly as that policy alone would.

mod common;
use ttc_engine::policy::RouteTags;
use ttc_engine::{ChatMessage, GenRequest, WeightFormat};

#[test]
fn a_router_decodes_as_the_policy_it_picks_and_reports_the_features() {
    let e = common::engine(WeightFormat::Auto);
    let prompt = e.prompt_tokens(&[ChatMessage::new("user", "What is the capital of Italy?")]).unwrap();
    let req = |tags: RouteTags| GenRequest { prompt: prompt.clone(), max_tokens: 6, tags, ..Default::default() };
    let entropy = e.first_step_entropy(&req(RouteTags::default())).unwrap();
    // Independently: the entropy of the baseline's first-step logits (a full prefill of the prompt).
    let mut cache = e.model.new_cache().unwrap();
    let logits = e.prefill_into(&prompt, &mut cache, &Default::default()).unwrap();
    let p: Vec<f64> = {
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = logits.iter().map(|&l| (l as f64 - m).exp()).sum();
        logits.iter().map(|&l| (l as f64 - m).exp() / z).collect()
    };
    let reference: f64 = -p.iter().filter(|&&x| x > 0.0).map(|x| x * x.ln()).sum::<f64>();
    assert!((entropy - reference).abs() < 1e-9, "{entropy} vs {reference}");

    // Rule 0 holds only above the measured entropy (never here); rule 1 on the suite tag.
    let yaml = format!(
        "base: {{}}\nee:\n  algorithm: early_exit_fixed\n  params: {{exit_layer: 20}}\nr:\n  algorithm: router\n  params:\n    rules:\n      - when: {{first_entropy: \"> {}\"}}\n        policy: base\n      - when: {{suite: worfbench}}\n        policy: ee\n    default: base\n",
        entropy + 0.01
    );
    let policies = ttc_engine::parse_policies(&yaml, std::path::Path::new("p.yaml")).unwrap();
    let (base, ee, router) = (&policies[0], &policies[1], &policies[2]);
    let run = |policy, tags| e.generate_policy(&req(tags), policy, None, &mut |_| true).unwrap();
    let worf = RouteTags { suite: Some("worfbench".into()), task: None };
    let (routed, stats) = run(router, worf.clone());
    let route = stats.route.unwrap();
    assert_eq!((route.policy.as_str(), route.rule.as_str()), ("ee", "rules[1]"));
    assert_eq!(route.prompt_tokens, Some(prompt.len() as u32));
    assert_eq!(route.ngram_repetition, Some(ttc_engine::policy::router::ngram_repetition(&prompt)));
    assert!((route.first_entropy.unwrap() - entropy).abs() < 1e-12);
    let (alone, ee_stats) = run(ee, worf);
    assert_eq!(routed.token_ids, alone.token_ids, "routed to ee, it decodes as ee");
    assert_eq!(stats.mean_exit_layer, ee_stats.mean_exit_layer);
    // No tag: the default.
    let (routed, stats) = run(router, RouteTags::default());
    assert_eq!(stats.route.unwrap().rule, "default");
    assert_eq!(routed.token_ids, run(base, RouteTags::default()).0.token_ids);
}
