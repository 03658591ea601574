//! Property-based fuzzing of the run file and policies file parsers (`config::parse_yaml`).
//!
//! - A generated `RunFile` (every key, valid values including edge cases such as `.inf` rates, u64::MAX seeds,
//!   YAML-significant strings) written as YAML parses back to itself.
//! - YAML trees shaped like a run file, with each value randomly valid or of a wrong type/range and stray
//!   keys, and the shipped configs/*.yaml with text mutations (truncation, byte edits, YAML punctuation
//!   inserted, lines duplicated or re-indented), never panic; every error names `run.yaml` and a location;
//!   whatever parses re-serialises to the same value.
//! - Policies files (`PolicyFile`, `PolicyList`) get the same mutations and random YAML; generated valid
//!   policies (every form the typed model can write) read back to themselves.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, json_value, mutate_text, text, YAML_SNIPPETS};
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ttc_runner::config::file::{
    BackoffConfig, NonNegativeF64, NonZero, PositiveF64, TopLogprobs, UnitF64,
};
use ttc_runner::config::{
    parse_yaml, Arrival, BackendConfig, BackendKind, GenerationConfig, LoadConfig, PolicyFile,
    Policy, PolicyList, PolicySource, RemoteParams, RunFile, ScoringConfig, SuiteConfig,
};
use ttc_eval::EmbedderKind;
use ttc_policy::{Algorithm, DecaySchedule, FixedExitParams, KvMethod, KvShrinkParams, NgramParams};

const RUN_YAML: &str = include_str!("../../../configs/run.yaml");
const POLICIES_YAML: &str = include_str!("../../../configs/policies.yaml");

fn parse_run(text: &str) -> Result<RunFile, String> {
    parse_yaml::<RunFile>(text, Path::new("run.yaml")).map_err(|e| e.to_string())
}

/// An error names the file, then the line and column.
fn assert_located(err: &str) -> Result<(), TestCaseError> {
    let mut parts = err.splitn(4, ':');
    let (file, line, col) = (parts.next(), parts.next(), parts.next());
    prop_assert_eq!(file, Some("run.yaml"), "error without the file name: {}", err);
    let num = |s: Option<&str>| s.is_some_and(|s| s.parse::<usize>().is_ok_and(|n| n > 0));
    prop_assert!(num(line) && num(col), "error without line and column: {}", err);
    Ok(())
}

// ---- typed generator: valid run files ----

fn path() -> impl Strategy<Value = PathBuf> {
    text().prop_map(PathBuf::from)
}

fn positive() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::INFINITY), Just(f64::MIN_POSITIVE), Just(f64::MAX), 1e-300f64..1e300, 0.001f64..1000.0]
}

fn non_negative() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(f64::MAX), 0.0f64..1e6]
}

fn json_map() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    prop::collection::btree_map(text(), json_value(), 0..3)
}

fn remote() -> impl Strategy<Value = RemoteParams> {
    (
        prop::option::of(text()),
        prop::option::of(prop::num::f64::ANY.prop_filter("NaN != NaN", |v| !v.is_nan())),
        prop::option::of(prop::num::f64::NORMAL),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u64>()),
        json_map(),
    )
        .prop_map(|(model, temperature, top_p, max_tokens, seed, extra_body)| RemoteParams {
            model,
            temperature,
            top_p,
            max_tokens,
            seed,
            extra_body,
        })
}

/// Valid algorithms of several families (the parser validates them, so random names would only test errors).
fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Baseline),
        (1usize..=7, 1usize..=8).prop_map(|(lookahead_tokens, max_ngram)| {
            Algorithm::SpeculativeNgram(NgramParams { lookahead_tokens, max_ngram, min_ngram: 1 })
        }),
        (1usize..1000).prop_map(|exit_layer| Algorithm::EarlyExitFixed(FixedExitParams { exit_layer, heads: Default::default() })),
        (0.0f64..0.999, any::<bool>()).prop_map(|(shrink_ratio, sinks)| Algorithm::KvShrink(KvShrinkParams {
            method: if sinks { KvMethod::Sinks } else { KvMethod::HeavyHitters },
            shrink_ratio,
            decay_schedule: DecaySchedule::Linear,
            ..KvShrinkParams::default()
        })),
    ]
}

/// Valid policies with unique names (names must be non-empty, without spaces or commas, and unique in a list).
fn policies() -> impl Strategy<Value = Vec<Policy>> {
    let one = ("[a-z][a-z0-9_]{0,10}", algorithm(), prop::option::of(text()), prop::option::of(remote()), prop::option::of(1u64..))
        .prop_map(|(name, algorithm, description, remote, concurrency)| Policy {
            description,
            remote,
            concurrency,
            ..Policy::new(name, algorithm)
        });
    prop::collection::vec(one, 0..3).prop_map(|mut v| {
        let mut seen = std::collections::BTreeSet::new();
        v.retain(|p| seen.insert(p.name.clone()));
        v
    })
}

fn suite() -> impl Strategy<Value = SuiteConfig> {
    (text(), prop::option::of(path()), prop::option::of(any::<u64>()), prop::option::of(any::<u64>()), prop::collection::vec(text(), 0..3))
        .prop_map(|(name, path, samples, seed, tasks)| SuiteConfig { name, path, samples: samples.map(|s| s as usize), seed, tasks, max_tokens: None })
}

fn run_file() -> impl Strategy<Value = RunFile> {
    let policies = prop_oneof![
        path().prop_map(PolicySource::File),
        policies().prop_map(|v| PolicySource::Inline(PolicyList(v))),
    ];
    let backend = (
        prop::sample::select(vec![BackendKind::Embedded, BackendKind::Openai, BackendKind::Groq]),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(any::<u64>()),
        positive(),
    )
        .prop_map(|(kind, base_url, api_key_env, model, weights, prefix_cache_mb, t)| BackendConfig {
            kind,
            base_url,
            api_key_env,
            model,
            weights,
            prefix_cache_mb,
            connect_timeout_s: PositiveF64(t),
        });
    let load = (
        prop::sample::select(vec![Arrival::Closed, Arrival::Constant, Arrival::Poisson]),
        1u64..,
        positive(),
        prop::option::of(positive()),
        any::<u64>(),
        positive(),
        any::<u32>(),
        (non_negative(), non_negative(), non_negative()),
    )
        .prop_map(|(arrival, concurrency, rate, burst, warmup, timeout_s, max_retries, (base, cap, after))| LoadConfig {
            arrival,
            concurrency: NonZero(concurrency),
            rate: PositiveF64(rate),
            burst: burst.map(PositiveF64),
            warmup: warmup as usize,
            timeout_s: PositiveF64(timeout_s),
            max_retries,
            backoff: BackoffConfig { base_s: NonNegativeF64(base), cap_s: NonNegativeF64(cap) },
            max_retry_after_s: NonNegativeF64(after),
            sweep: None,
        });
    let generation = (
        1u64..,
        non_negative(),
        prop::option::of(prop_oneof![Just(1.0), f64::MIN_POSITIVE..1.0]),
        prop::option::of(any::<u64>()),
        prop::option::of(0u32..=20),
    )
        .prop_map(|(m, t, p, seed, k)| GenerationConfig {
            max_tokens: NonZero(m),
            temperature: NonNegativeF64(t),
            top_p: p.map(UnitF64),
            seed,
            logprobs: k.map(TopLogprobs),
        });
    let scoring = (
        prop::sample::select(vec![Some(EmbedderKind::Minilm), Some(EmbedderKind::Mpnet), Some(EmbedderKind::Hash), None]),
        any::<bool>(),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(embedder, download, metrics)| ScoringConfig { embedder, download, metrics });
    // `kpis: null` reads back as None, so Some(Null) is not generated.
    let kpis = prop_oneof![
        Just(None),
        text().prop_map(|s| Some(Value::String(s))),
        prop::collection::vec((text(), any::<i64>()), 1..3).prop_map(|kv| {
            let m: Mapping = kv.into_iter().map(|(k, v)| (Value::String(k), Value::from(v))).collect();
            Some(Value::Sequence(vec![Value::Mapping(m)]))
        }),
    ];
    (
        (any::<u64>(), path(), policies, prop::collection::vec(text(), 0..3), prop::collection::vec(suite(), 0..3)),
        (prop::option::of(path()), backend, load, generation, scoring, kpis),
    )
        .prop_map(|((seed, results, policies, select_policies, suites), (data_dir, backend, load, generation, scoring, kpis))| RunFile {
            seed,
            results,
            policies,
            select_policies,
            suites,
            data_dir,
            backend,
            load,
            generation,
            scoring,
            kpis,
            fidelity: Default::default(),
            until_ci: None,
            cost: None,
            capacity: None,
        })
}

// ---- untyped generator: YAML shaped like a run file, values valid or not ----

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::num::f64::ANY.prop_map(Value::from),
        prop::sample::select(vec![0.0, -1.0, 1.0, 0.5, 1.5, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn any_yaml() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Sequence),
            prop::collection::vec((scalar(), inner), 0..3).prop_map(|kv| Value::Mapping(kv.into_iter().collect())),
        ]
    })
}

/// The run file's keys, nested as in `RunFile`; a leaf is any value.
fn shaped(keys: &'static [(&'static str, &'static [&'static str])]) -> impl Strategy<Value = Value> {
    let entries: Vec<_> = keys
        .iter()
        .map(|&(k, sub)| {
            let value = if sub.is_empty() {
                any_yaml().boxed()
            } else {
                prop::collection::vec((prop::sample::select(sub.to_vec()), any_yaml()), 0..4)
                    .prop_map(|kv| Value::Mapping(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
                    .boxed()
            };
            prop::option::weighted(0.4, value).prop_map(move |v| v.map(|v| (k, v)))
        })
        .collect();
    (entries, prop::option::of((text(), any_yaml()))).prop_map(|(entries, stray)| {
        let mut m: Mapping = entries.into_iter().flatten().map(|(k, v)| (Value::from(k), v)).collect();
        if let Some((k, v)) = stray {
            m.insert(Value::String(k), v);
        }
        Value::Mapping(m)
    })
}

const RUN_KEYS: &[(&str, &[&str])] = &[
    ("seed", &[]),
    ("results", &[]),
    ("policies", &[]),
    ("select_policies", &[]),
    ("suites", &[]),
    ("data_dir", &[]),
    ("backend", &["kind", "base_url", "api_key_env", "model", "weights", "connect_timeout_s"]),
    ("load", &["arrival", "concurrency", "rate", "burst", "warmup", "timeout_s", "max_retries", "backoff", "max_retry_after_s"]),
    ("generation", &["max_tokens", "temperature", "top_p", "seed"]),
    ("scoring", &["embedder", "download", "metrics"]),
    ("kpis", &[]),
];

fn check_run_text(text: &str) -> Result<(), TestCaseError> {
    match parse_run(text) {
        Err(e) => assert_located(&e),
        Ok(f) => {
            let again = serde_yaml::to_string(&f).map_err(|e| TestCaseError::fail(format!("serialise: {e}")))?;
            prop_assert_eq!(parse_run(&again), Ok(f), "re-serialised:\n{}", again);
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn run_file_roundtrips_through_yaml(f in run_file()) {
        let text = serde_yaml::to_string(&f).unwrap();
        prop_assert_eq!(parse_run(&text), Ok(f), "YAML:\n{}", text);
    }

    #[test]
    fn run_shaped_yaml_never_panics_and_errors_are_located(v in shaped(RUN_KEYS)) {
        check_run_text(&serde_yaml::to_string(&v).unwrap())?;
    }

    #[test]
    fn mutated_run_files_never_panic_and_errors_are_located(
        base in prop_oneof![Just(RUN_YAML.to_string()), run_file().prop_map(|f| serde_yaml::to_string(&f).unwrap())],
        edits in edits(YAML_SNIPPETS),
    ) {
        check_run_text(&mutate_text(&base, &edits))?;
    }

    #[test]
    fn policies_files_never_panic(
        base in prop_oneof![
            Just(POLICIES_YAML.to_string()),
            policies().prop_map(|v| serde_yaml::to_string(&PolicyList(v)).unwrap()),
            any_yaml().prop_map(|v| serde_yaml::to_string(&v).unwrap()),
        ],
        edits in prop::option::of(edits(YAML_SNIPPETS)),
    ) {
        let text = match &edits { Some(e) => mutate_text(&base, e), None => base };
        let file = parse_yaml::<PolicyFile>(&text, Path::new("p.yaml")).map(|f| f.0).map_err(|e| e.to_string());
        let list = parse_yaml::<PolicyList>(&text, Path::new("p.yaml")).map_err(|e| e.to_string());
        for r in [&file, &list] {
            if let Err(e) = r {
                prop_assert!(e.starts_with("p.yaml"), "error without the file name: {e}");
            }
        }
        // A top-level list is both a policies file and a policy list.
        if let (Ok(f), Ok(l), Ok(Value::Sequence(_))) = (&file, &list, serde_yaml::from_str::<Value>(&text)) {
            prop_assert_eq!(f, l);
        }
    }
}

// Found by the fuzzer: a file holding a second YAML document (a stray `---`, or a line indented less than
// the mapping before it) was reported without a line.

#[test]
fn regression_second_document_names_its_line() {
    let e = parse_run("seed: 1\n---\nseed: 2\n").unwrap_err();
    assert!(e.starts_with("run.yaml:2:1: ") && e.contains("more than one document"), "{e}");
    let e = parse_run("# the run\n seed: 1\nresults: r\n").unwrap_err();
    assert!(e.starts_with("run.yaml:3:1: "), "{e}");
}
