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
