//! Property-based fuzzing of the policies file parser (`ttc_policy::parse_policies`), used by every command,
//! through its public entry point.
//!
//! Inputs: configs/policies.yaml with text mutations, policy lists whose entries name real algorithms with
//! random parameter names and values, and random YAML. Never a panic; every error names the file; what parses
//! has unique, non-empty names.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, mutate_text, text, YAML_SNIPPETS};
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

const POLICIES_YAML: &str = include_str!("../../../configs/policies.yaml");

const ALGORITHMS: &[&str] = &[
    "baseline", "speculative_ngram", "speculative_self", "early_exit_fixed", "early_exit_confidence", "token_pruning",
    "kv_shrink", "batching", "magic",
];
const PARAMS: &[&str] = &[
    "lookahead_tokens", "max_ngram", "min_ngram", "draft_layers", "verification_threshold", "exit_layer", "exit_threshold",
    "confidence_boost", "min_layer", "exit_interval", "measure", "position_temp", "mode", "temperature", "top_p",
    "entropy_threshold", "min_p", "eta", "top_k", "min_tokens_to_keep", "method", "shrink_ratio", "decay_schedule",
    "horizon", "evict_block", "window", "pool_kernel", "recent_window", "sink_tokens", "max_batch_size", "lookahead",
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![0i64, 1, 2, 7, 8, 24, 64, 65, 999, -1, i64::MAX]).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0.0, 0.5, 0.9, 1.0, 1.5, -0.1, f64::INFINITY, f64::NAN]).prop_map(Value::from),
        prop::sample::select(vec!["top_p", "entropy", "min_p", "eta", "sinks", "heavy_hitters", "cosine", "elastic", "static", "softmax_diff"])
            .prop_map(Value::from),
        text().prop_map(Value::from),
        prop::collection::vec(text().prop_map(Value::from), 0..2).prop_map(Value::Sequence),
    ]
}

fn policies_doc() -> impl Strategy<Value = String> {
    let entry = (
        prop::option::of(prop_oneof![text(), Just("baseline".to_string())]),
        prop::option::of(prop::sample::select(ALGORITHMS)),
        prop::option::of(prop::collection::vec((prop::sample::select(PARAMS), value()), 0..4)),
        prop::option::of((prop::sample::select(vec!["description", "remote", "concurrency", "extra"]), value())),
    )
        .prop_map(|(name, algorithm, params, extra)| {
            let mut m = Mapping::new();
            if let Some(n) = name {
                m.insert("name".into(), Value::from(n));
            }
            if let Some(a) = algorithm {
                m.insert("algorithm".into(), Value::from(a));
            }
            if let Some(p) = params {
                m.insert("params".into(), Value::Mapping(p.into_iter().map(|(k, v)| (Value::from(k), v)).collect()));
            }
            if let Some((k, v)) = extra {
                m.insert(Value::from(k), v);
            }
            Value::Mapping(m)
        });
    prop::collection::vec(entry, 0..4).prop_map(|entries| {
        let mut top = Mapping::new();
        top.insert("policies".into(), Value::Sequence(entries));
        serde_yaml::to_string(&top).unwrap()
    })
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn policies_files_never_panic_and_errors_name_the_file(
        base in prop_oneof![Just(POLICIES_YAML.to_string()), policies_doc()],
        edits in prop::option::of(edits(YAML_SNIPPETS)),
    ) {
        let text = match &edits { Some(e) => mutate_text(&base, e), None => base };
        match ttc_policy::parse_policies(&text, std::path::Path::new("p.yaml")) {
            Err(e) => prop_assert!(e.to_string().starts_with("p.yaml:"), "{}", e),
            Ok(list) => {
                let mut names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
                prop_assert!(names.iter().all(|n| !n.is_empty()));
                names.sort_unstable();
                names.dedup();
                prop_assert_eq!(names.len(), list.len(), "a name defined twice was accepted");
            }
        }
    }
}
