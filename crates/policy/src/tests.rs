use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<Vec<Policy>, String> {
    parse_policies(text, Path::new("p.yaml")).map_err(|e| e.0)
}

const DOC: &str = "policies:\n  - name: baseline\n    algorithm: baseline\n  - name: spec\n    algorithm: speculative_ngram\n    params: {lookahead_tokens: 6}\n";
const LIST: &str = "- name: baseline\n  algorithm: baseline\n- name: spec\n  algorithm: speculative_ngram\n  params: {lookahead_tokens: 6}\n";
const MAP: &str = "baseline: {}\nspec:\n  algorithm: speculative_ngram\n  params: {lookahead_tokens: 6}\n";

#[test]
fn every_documented_form_gives_the_same_policies() {
    let doc = parse(DOC).unwrap();
    assert_eq!(doc.len(), 2);
    assert_eq!(doc[1].algorithm, Algorithm::SpeculativeNgram(NgramParams { lookahead_tokens: 6, max_ngram: 3, min_ngram: 1 }));
    assert_eq!(doc[1].params_json(), r#"{"lookahead_tokens":6}"#);
    assert_eq!(doc[1].algorithm.params_json(), r#"{"lookahead_tokens":6,"max_ngram":3,"min_ngram":1}"#);
    assert_eq!(parse(LIST).unwrap(), doc);
    assert_eq!(parse(MAP).unwrap(), doc);
    let doc_of_map = format!("policies:\n{}", MAP.lines().map(|l| format!("  {l}\n")).collect::<String>());
    assert_eq!(parse(&doc_of_map).unwrap(), doc);
}

#[test]
fn unknown_algorithm_names_file_line_column_and_the_known_ones() {
    let e = parse("policies:\n  - name: x\n    algorithm: speculative_ngarm\n").unwrap_err();
    assert!(e.starts_with("p.yaml:2:5: policies[0]: policy `x`: algorithm: unknown algorithm `speculative_ngarm`"), "{e}");
    assert!(e.contains("known: baseline, speculative_ngram"), "{e}");
}

#[test]
fn unknown_param_wrong_type_and_out_of_range_are_located() {
    let e = parse("policies:\n  - name: spec\n    algorithm: speculative_ngram\n    params:\n      lookahead: 6\n").unwrap_err();
    assert!(e.starts_with("p.yaml:2:5: policies[0]: policy `spec`: params.lookahead: unknown field `lookahead`"), "{e}");
    let e = parse("ee:\n  algorithm: early_exit_fixed\n  params: {exit_layer: many}\n").unwrap_err();
    assert!(e.starts_with("p.yaml:2:3: ee: policy `ee`: params.exit_layer: invalid type"), "{e}");
    let e = parse("kv:\n  algorithm: kv_shrink\n  params: {method: sinks, shrink_ratio: 1.5}\n").unwrap_err();
    assert!(e.contains("params.shrink_ratio: must be in [0, 1), got 1.5"), "{e}");
    let e = parse("kv:\n  algorithm: kv_shrink\n  params: {method: lru, shrink_ratio: 0.5}\n").unwrap_err();
    assert!(e.contains("params.method: unknown variant `lru`, expected one of `heavy_hitters`, `sinks`, `snapkv`"), "{e}");
    let e = parse("b:\n  algorithm: batching\n  params: {mode: elastic, max_batch_size: 0}\n").unwrap_err();
    assert!(e.contains("params.max_batch_size: must be in 1..=64, got 0"), "{e}");
    let e = parse("p:\n  algorithm: token_pruning\n  params: {mode: eta}\n").unwrap_err();
    assert!(e.contains("params.eta: pruning `eta` needs eta > 0"), "{e}");
    let e = parse("b:\n  algorithm: baseline\n  params: {x: 1}\n").unwrap_err();
    assert!(e.contains("params: baseline takes no params"), "{e}");
    let e = parse("b:\n  concurrency: 0\n").unwrap_err();
    assert!(e.starts_with("p.yaml:2:3: b.concurrency: invalid value 0: expected an integer >= 1"), "{e}");
}

#[test]
fn names_are_unique_and_well_formed() {
    let e = parse("- name: a\n- name: a\n").unwrap_err();
    assert!(e.contains("policy `a`: name: defined twice"), "{e}");
    let e = parse("- name: 'a b'\n").unwrap_err();
    assert!(e.contains("must be non-empty, without spaces or commas"), "{e}");
    let e = parse("- algorithm: baseline\n").unwrap_err();
    assert!(e.contains("missing field `name`"), "{e}");
    let e = parse("policies: []\nextra: 1\n").unwrap_err();
    assert!(e.contains("unknown field `extra`"), "{e}");
}

#[test]
fn layer_limits_need_the_model() {
    let p = parse("ee:\n  algorithm: early_exit_fixed\n  params: {exit_layer: 999}\n").unwrap();
    let e = p[0].algorithm.validate_for_model(30).unwrap_err();
    assert_eq!(e, "params.exit_layer: must be in 1..=30 for this model, got 999");
    assert!(p[0].algorithm.validate_for_model(1000).is_ok());
    let p = parse("s:\n  algorithm: speculative_self\n  params: {draft_layers: 30}\n").unwrap();
    assert!(p[0].algorithm.validate_for_model(30).unwrap_err().contains("params.draft_layers: must be in 1..=29"));
    let p = parse("c:\n  algorithm: early_exit_confidence\n  params: {exit_threshold: 0.9, min_layer: 30}\n").unwrap();
    assert!(p[0].algorithm.validate_for_model(30).unwrap_err().contains("params.min_layer"));
}

#[test]
fn serialized_policy_reads_back_equal() {
    let p = parse(DOC).unwrap();
    let yaml = serde_yaml::to_string(&PolicyList(p.clone())).unwrap();
    assert_eq!(parse(&yaml).unwrap(), p);
    // The serialized shape (which the run's config hash covers) keeps the algorithm's name and the params as written.
    let json = serde_json::to_string(&p[1]).unwrap();
    assert_eq!(
        json,
        r#"{"name":"spec","algorithm":"speculative_ngram","description":null,"params":{"lookahead_tokens":6},"remote":null,"concurrency":null}"#
    );
}

#[test]
fn shipped_policies_file_is_valid_and_has_the_spec_names() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/policies.yaml");
    let p = load_policies(Path::new(path)).unwrap();
    for name in ["baseline", "early_exit_28", "early_exit_optimized", "speculative_decoding", "speculative_decoding_enhanced", "dynamic_pruning_quality", "adaptive_kv_cache"] {
        assert!(p.iter().any(|x| x.name == name), "missing {name}");
    }
    assert!(p.len() >= 11);
    for x in &p {
        x.algorithm.validate_for_model(30).unwrap_or_else(|e| panic!("{}: {e}", x.name));
    }
}

#[test]
fn a_list_under_a_misspelt_key_and_a_top_level_list_read_cleanly() {
    let e = parse("polices:\n  - name: a\n").unwrap_err();
    assert!(e.starts_with("p.yaml:2:3: polices: `polices` holds a list"), "{e}");
    let e = parse("- name: x\n  algorithm: nope\n").unwrap_err();
    assert!(e.starts_with("p.yaml:1:3: [0]: policy `x`: algorithm: unknown algorithm `nope`"), "{e}");
}

#[test]
fn kv_shrink_params_name_the_key_and_the_valid_range() {
    let kv = |params: &str| parse(&format!("kv:\n  algorithm: kv_shrink\n  params: {{method: snapkv, shrink_ratio: 0.5, {params}}}\n"));
    let e = kv("horizon: 0").unwrap_err();
    assert!(e.contains("params.horizon: must be `prefill`, `max_tokens` or a number of generated tokens >= 1, got 0"), "{e}");
    let e = kv("horizon: soon").unwrap_err();
    assert!(e.contains("params.horizon: must be `prefill`, `max_tokens` or a number of generated tokens >= 1, got `soon`"), "{e}");
    let e = kv("horizon: -3").unwrap_err();
    assert!(e.contains("params.horizon: must be"), "{e}");
    let e = kv("pool_kernel: 4").unwrap_err();
    assert!(e.contains("params.pool_kernel: must be an odd number >= 1, got 4"), "{e}");
    let e = kv("window: 0").unwrap_err();
    assert!(e.contains("params.window: must be >= 1 (and at most the prompt length), got 0"), "{e}");
    let e = kv("evict_block: 0").unwrap_err();
    assert!(e.contains("params.evict_block: must be >= 1, got 0"), "{e}");
    let e = kv("decay_steps: 8").unwrap_err();
    assert!(e.contains("params.decay_steps: unknown field `decay_steps`"), "{e}");
    // Every accepted form of the horizon, and the defaults.
    for (written, want) in [("prefill", Horizon::Prefill), ("max_tokens", Horizon::MaxTokens), ("24", Horizon::Tokens(24))] {
        let p = kv(&format!("horizon: {written}")).unwrap();
        let Algorithm::KvShrink(k) = &p[0].algorithm else { panic!("not kv_shrink") };
        assert_eq!(k.horizon, want);
        assert!(p[0].algorithm.params_json().contains(&format!("\"horizon\":{}", if written == "24" { "24".to_string() } else { format!("\"{written}\"") })));
    }
    let p = parse("kv:\n  algorithm: kv_shrink\n  params: {method: heavy_hitters, shrink_ratio: 0.7}\n").unwrap();
    let Algorithm::KvShrink(k) = &p[0].algorithm else { panic!("not kv_shrink") };
    assert_eq!(*k, KvShrinkParams { method: KvMethod::HeavyHitters, shrink_ratio: 0.7, ..KvShrinkParams::default() });
}

const ROUTED: &str = "\
policies:
  - name: baseline
  - name: spec
    algorithm: speculative_ngram
  - name: prune
    algorithm: token_pruning
    params: {mode: min_p, min_p: 0.1}
  - name: routed
    algorithm: router
    params:
      rules:
        - when: {ngram_repetition: \">= 0.3\"}
          policy: spec
        - when: {suite: [worfbench, crmarena_pro], prompt_tokens: \">= 100, < 900\"}
          policy: prune
        - when: {first_entropy: \"> 2.5\"}
          policy: baseline
      default: spec
";

fn router_of(p: &[Policy]) -> &RouterParams {
    match &p.last().unwrap().algorithm {
        Algorithm::Router(r) => r,
        other => panic!("not a router: {other:?}"),
    }
}

fn features(prompt_tokens: u32, rep: f64, entropy: Option<f64>, suite: Option<&str>) -> Features {
    Features {
        prompt_tokens,
        ngram_repetition: rep,
        first_entropy: entropy,
        tags: RouteTags { suite: suite.map(str::to_string), task: None },
    }
}

#[test]
fn router_rules_pick_the_first_rule_that_holds_else_the_default() {
    let p = parse(ROUTED).unwrap();
    let r = router_of(&p);
    assert_eq!(r.targets.keys().collect::<Vec<_>>(), ["baseline", "prune", "spec"]);
    assert_eq!(r.target("prune").unwrap().algorithm.name(), "token_pruning");
    // Rule 0 wins over rule 1 even when both hold.
    assert_eq!(r.choose(&features(500, 0.5, None, Some("worfbench"))), ("spec", "rules[0]".to_string()));
    // The bound 0.3 is inclusive, 900 exclusive, 100 inclusive.
    assert_eq!(r.choose(&features(500, 0.3, None, None)).0, "spec");
    assert_eq!(r.choose(&features(100, 0.29, None, Some("crmarena_pro"))), ("prune", "rules[1]".to_string()));
    assert_eq!(r.choose(&features(900, 0.29, None, Some("worfbench"))).1, "default");
    // A tag outside the list, or no tag at all (served traffic), does not match.
    assert_eq!(r.choose(&features(500, 0.0, None, Some("crmarena"))).1, "default");
    // The entropy rule holds only when measured and above 2.5.
    assert_eq!(r.choose(&features(500, 0.0, Some(2.6), None)), ("baseline", "rules[2]".to_string()));
    assert_eq!(r.choose(&features(500, 0.0, Some(2.5), None)).1, "default");
    assert_eq!(r.choose(&features(500, 0.0, None, None)).1, "default");
    assert!(r.reads(Feature::FirstEntropy) && !r.reads(Feature::Task));
}

#[test]
fn router_round_trips_through_yaml_and_params_json() {
    let p = parse(ROUTED).unwrap();
    let yaml = serde_yaml::to_string(&PolicyList(p.clone())).unwrap();
    assert_eq!(parse(&yaml).unwrap(), p);
    let json = p[3].algorithm.params_json();
    assert!(json.contains(r#"{"policy":"spec","when":{"ngram_repetition":">= 0.3"}}"#), "{json}");
    assert!(json.contains(r#""suite":["worfbench","crmarena_pro"]"#), "{json}");
}

#[test]
fn ngram_repetition_counts_trigrams_seen_before() {
    assert_eq!(router::ngram_repetition(&[1, 2, 3]), 0.0);
    assert_eq!(router::ngram_repetition(&[1, 2, 3, 4, 5, 6]), 0.0);
    // Trigrams: 123 231 312 123 231 -> the last two were seen before.
    assert_eq!(router::ngram_repetition(&[1, 2, 3, 1, 2, 3, 1]), 2.0 / 5.0);
    assert_eq!(router::ngram_repetition(&[7; 10]), 7.0 / 8.0);
}

#[test]
fn router_bad_input_is_located() {
    let head = "policies:\n  - name: baseline\n  - name: r\n    algorithm: router\n    params:\n";
    let bad = |body: &str| parse(&format!("{head}{body}")).unwrap_err();
    let e = bad("      rules:\n        - when: {prompt_tokns: \"> 5\"}\n          policy: baseline\n      default: baseline\n");
    assert!(e.starts_with("p.yaml:3:5: policies[1]: policy `r`: params.rules[0].when.prompt_tokns: unknown feature `prompt_tokns` (known: prompt_tokens,"), "{e}");
    let e = bad("      rules:\n        - when: {prompt_tokens: \"> 5\"}\n          policy: fast\n      default: baseline\n");
    assert!(e.starts_with("p.yaml:3:5: policies[1]: policy `r`: params.rules[0].policy: unknown policy `fast`"), "{e}");
    assert!(e.contains("defined above: baseline"), "{e}");
    let e = bad("      default: nope\n");
    assert!(e.contains("params.default: unknown policy `nope`"), "{e}");
    let e = bad("      rules:\n        - when: {prompt_tokens: 5}\n          policy: baseline\n      default: baseline\n");
    assert!(e.contains("params.rules[0].when.prompt_tokens: expected a comparison in quotes"), "{e}");
    let e = bad("      rules:\n        - when: {ngram_repetition: \"=> 0.3\"}\n          policy: baseline\n      default: baseline\n");
    assert!(e.contains("`=> 0.3` is not a comparison"), "{e}");
    let e = bad("      rules:\n        - when: {}\n          policy: baseline\n      default: baseline\n");
    assert!(e.contains("params.rules[0].when: a rule needs at least one condition"), "{e}");
    let e = bad("      rules: []\n");
    assert!(e.contains("params: missing field `default`"), "{e}");
    // A router names only policies that decode by themselves, defined above it.
    let e = parse("r1:\n  algorithm: router\n  params: {default: r0}\nr0: {}\n").unwrap_err();
    assert!(e.contains("unknown policy `r0`") && e.contains("defined above: none"), "{e}");
    let e = parse("b: {}\nr1:\n  algorithm: router\n  params: {default: b}\nr2:\n  algorithm: router\n  params: {default: r1}\n")
        .unwrap_err();
    assert!(e.starts_with("p.yaml:6:3: r2: policy `r2`: params.default: policy `r1` is a router policy"), "{e}");
}

#[test]
fn router_checks_its_targets_against_the_model() {
    let p = parse("ee:\n  algorithm: early_exit_fixed\n  params: {exit_layer: 40}\nr:\n  algorithm: router\n  params: {default: ee}\n").unwrap();
    let e = p[1].algorithm.validate_for_model(30).unwrap_err();
    assert!(e.contains("policy `ee` (routed to): params.exit_layer: must be in 1..=30"), "{e}");
}
