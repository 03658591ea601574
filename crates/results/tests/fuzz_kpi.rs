//! Property-based fuzzing of the KPI file parser (`KpiFile::parse`, what `ttc check --kpis` reads).
//!
//! - Generated valid KPI files (every metric form: timing fields and aliases, quality metrics with and without
//!   `metric_`, policy internals with `ps_`, `extra.<name>`, group metrics; every statistic form, op, filter)
//!   parse to what was written, defaults included.
//! - KPI-shaped YAML whose values are randomly valid or of a wrong type/range, and configs/kpis.yaml or a
//!   generated file with text mutations, never panic; every error names the file and, unless the file
//!   simply defines nothing, a line.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, mutate_text, text, YAML_SNIPPETS};
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};
use ttc_results::analysis::Slo;
use ttc_results::kpi::{KpiFile, Op};
use ttc_results::metrics::MetricRef;

const KPIS_YAML: &str = include_str!("../../../configs/kpis.yaml");

const FIELD_METRICS: &[&str] = &[
    "ttft_s", "e2e_s", "tpot_s", "latency", "e2e", "ttft", "tpot", "itl_mean_s", "itl_p99_s", "throughput_tok_s",
    "output_tokens", "prompt_tokens", "backoff_s", "attempts", "rouge_l", "metric_rouge_l", "exact_match", "f1_graph",
    "semantic_similarity", "acceptance_rate", "ps_acceptance_rate", "mean_exit_layer", "extra.workflow_parsed",
    "extra.é x",
];
const GROUP_METRICS: &[&str] = &[
    "error_rate", "output_tok_s", "throughput", "output_throughput", "request_rate", "goodput", "quality_goodput",
    "slo_attainment", "n", "count",
];

/// One KPI or regression as written; `None` keys are left out of the file.
#[derive(Debug, Clone)]
struct Entry {
    name: Option<String>,
    metric: &'static str,
    stat: Option<String>,
    op: (&'static str, Op),
    /// `value` for a KPI, `max_worsening_pct` (>= 0) for a regression.
    value: f64,
    suites: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    by_suite: Option<bool>,
    fail_if_missing: Option<bool>,
}

fn stat() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["mean", "avg", "min", "max", "median", "p0", "p50", "p99.9", "p100"]).prop_map(str::to_string),
        (0.0f64..=100.0).prop_map(|q| format!("p{q}")),
        (0u32..=100).prop_map(|q| format!("p{q}")),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(-0.0), Just(f64::MAX), Just(f64::MIN_POSITIVE), -1e6f64..1e6, prop::num::f64::NORMAL]
}

fn entry(regression: bool) -> impl Strategy<Value = Entry> {
    let metric = prop_oneof![
        (prop::sample::select(FIELD_METRICS), prop::option::of(stat())),
        (prop::sample::select(GROUP_METRICS), Just(None)),
    ];
    let op = prop::sample::select(vec![("<", Op::Lt), ("<=", Op::Le), (">", Op::Gt), (">=", Op::Ge)]);
    // Thresholds must be finite (`.inf` is rejected as vacuous): the generator writes only valid ones.
    let value = if regression { prop_oneof![Just(0.0), 0.0f64..1e3, Just(f64::MAX)].boxed() } else { finite().boxed() };
    let names = || prop::option::of(prop::collection::vec(text(), 0..3));
    (prop::option::of(text()), metric, op, value, names(), names(), prop::option::of(any::<bool>()), prop::option::of(any::<bool>()))
        .prop_map(|(name, (metric, stat), op, value, suites, policies, by_suite, fail_if_missing)| Entry {
            name,
            metric,
            stat,
            op,
            value,
            suites,
            policies,
            by_suite,
            fail_if_missing,
        })
}

fn slo() -> impl Strategy<Value = Option<Slo>> {
    let bound = || prop::option::of(prop_oneof![Just(0.0), 0.0f64..100.0, Just(f64::MAX)]);
    prop::option::of(
        (bound(), bound(), bound(), prop::option::of(prop::sample::select(vec!["exact_match", "rouge_l", "f1_graph"])), finite())
            .prop_map(|(ttft_s, tpot_s, e2e_s, m, correct_min)| Slo {
                ttft_s,
                tpot_s,
                e2e_s,
                correct_metric: m.map(str::to_string),
                correct_min,
            }),
    )
}

fn yaml_entry(e: &Entry, regression: bool) -> Value {
    let mut m = Mapping::new();
    let mut put = |k: &str, v: Value| {
        m.insert(Value::from(k), v);
    };
    if let Some(n) = &e.name {
        put("name", Value::from(n.as_str()));
    }
    put("metric", Value::from(e.metric));
    if let Some(s) = &e.stat {
        put("stat", Value::from(s.as_str()));
    }
    if regression {
        put("max_worsening_pct", Value::from(e.value));
    } else {
        put("op", Value::from(e.op.0));
        put("value", Value::from(e.value));
        if let Some(b) = e.by_suite {
            put("by_suite", Value::Bool(b));
        }
        if let Some(b) = e.fail_if_missing {
            put("fail_if_missing", Value::Bool(b));
        }
    }
    let list = |v: &Vec<String>| Value::Sequence(v.iter().map(|s| Value::from(s.as_str())).collect());
    if let Some(v) = &e.suites {
        put("suites", list(v));
    }
    if let Some(v) = &e.policies {
        put("policies", list(v));
    }
    Value::Mapping(m)
}

#[derive(Debug, Clone)]
struct Doc {
    slo: Option<Slo>,
    kpis: Vec<Entry>,
    regressions: Vec<Entry>,
}

fn doc() -> impl Strategy<Value = Doc> {
    (slo(), prop::collection::vec(entry(false), 0..4), prop::collection::vec(entry(true), 0..3))
        .prop_filter("a KPI file defines something", |(_, k, r)| !k.is_empty() || !r.is_empty())
        .prop_map(|(slo, kpis, regressions)| Doc { slo, kpis, regressions })
}

impl Doc {
    fn yaml(&self) -> String {
        let mut m = Mapping::new();
        if let Some(s) = &self.slo {
            m.insert(Value::from("slo"), serde_yaml::to_value(s).unwrap());
        }
        if !self.kpis.is_empty() {
            m.insert(Value::from("kpis"), Value::Sequence(self.kpis.iter().map(|e| yaml_entry(e, false)).collect()));
        }
        if !self.regressions.is_empty() {
            m.insert(Value::from("regressions"), Value::Sequence(self.regressions.iter().map(|e| yaml_entry(e, true)).collect()));
        }
        serde_yaml::to_string(&Value::Mapping(m)).unwrap()
    }
}

/// A KPI-shaped document: known keys at each level with values of any type, sometimes a stray key.
fn shaped() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0.0, -1.0, 0.5, 101.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]).prop_map(Value::from),
        prop::sample::select([FIELD_METRICS, GROUP_METRICS, &["<", "=<", "p101", "p-1", "pnan", "p", "mean "]].concat())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    let any = scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Sequence),
            prop::collection::vec((text(), inner), 0..3)
                .prop_map(|kv| Value::Mapping(kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect())),
        ]
    });
    let keys = prop::sample::select(vec![
        "name", "metric", "stat", "op", "value", "suites", "policies", "by_suite", "fail_if_missing", "max_worsening_pct",
        "ttft_s", "e2e_s", "correct_min", "correct_metric", "treshold",
    ]);
    let item = prop::collection::vec((keys, any.clone()), 0..6)
        .prop_map(|kv| Value::Mapping(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()));
    let top = prop::sample::select(vec!["slo", "kpis", "regressions", "kpi"]);
    let section = prop_oneof![prop::collection::vec(item.clone(), 0..3).prop_map(Value::Sequence), item, any];
    prop::collection::vec((top, section), 0..4).prop_map(|kv| {
        let m: Mapping = kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect();
        serde_yaml::to_string(&Value::Mapping(m)).unwrap()
    })
}

fn check_text(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = KpiFile::parse(text, "kpis.yaml") {
        let e = e.to_string();
        prop_assert!(e.starts_with("kpis.yaml: "), "error without the file name: {e}");
        prop_assert!(e.contains(" line ") || e.ends_with("defines no `kpis` and no `regressions`"), "error without a line: {e}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn generated_kpi_files_parse_to_what_was_written(d in doc()) {
        let text = d.yaml();
        let f = KpiFile::parse(&text, "kpis.yaml").map_err(|e| TestCaseError::fail(format!("{e:#}\n{text}")))?;
        prop_assert_eq!(&f.slo, &d.slo.clone().unwrap_or_default());
        prop_assert_eq!(f.kpis.len(), d.kpis.len());
        for (k, e) in f.kpis.iter().zip(&d.kpis) {
            let metric = MetricRef::parse(e.metric, e.stat.as_deref()).unwrap();
            let name = e.name.clone().unwrap_or_else(|| format!("{} {} {}", metric.label(), e.op.0, e.value));
            prop_assert_eq!(&k.metric, &metric);
            prop_assert_eq!(&k.name, &name);
            prop_assert_eq!((k.op, k.value), (e.op.1, e.value));
            prop_assert_eq!((&k.suites, &k.policies), (&e.suites, &e.policies));
            prop_assert_eq!((k.by_suite, k.fail_if_missing), (e.by_suite.unwrap_or(false), e.fail_if_missing.unwrap_or(false)));
        }
        prop_assert_eq!(f.regressions.len(), d.regressions.len());
        for (r, e) in f.regressions.iter().zip(&d.regressions) {
            prop_assert_eq!(&r.metric, &MetricRef::parse(e.metric, e.stat.as_deref()).unwrap());
            prop_assert_eq!(r.max_worsening_pct, e.value);
            prop_assert_eq!((&r.suites, &r.policies), (&e.suites, &e.policies));
        }
    }

    #[test]
    fn kpi_shaped_yaml_never_panics_and_errors_are_located(text in shaped()) {
        check_text(&text)?;
    }

    #[test]
    fn mutated_kpi_files_never_panic_and_errors_are_located(
        base in prop_oneof![Just(KPIS_YAML.to_string()), doc().prop_map(|d| d.yaml())],
        edits in edits(YAML_SNIPPETS),
    ) {
        check_text(&mutate_text(&base, &edits))?;
    }
}

// Found by the fuzzer: errors serde_yaml places at line 1 column 1 (it leaves that position out of its
// message) or not at all (a second document) named no line.

#[test]
fn regression_error_at_the_first_character_names_its_line() {
    let e = KpiFile::parse("kpi: []\n", "kpis.yaml").unwrap_err().to_string();
    assert!(e.starts_with("kpis.yaml: unknown field `kpi`") && e.ends_with(" at line 1 column 1"), "{e}");
    let e = KpiFile::parse("\0kpis: []\n", "kpis.yaml").unwrap_err().to_string();
    assert!(e.contains("control characters are not allowed") && e.contains(" at line 1 column 1"), "{e}");
}

#[test]
fn regression_second_document_names_its_line() {
    let text = "kpis:\n  - {metric: e2e_s, op: \"<\", value: 2}\n---\nregressions: []\n";
    let e = KpiFile::parse(text, "kpis.yaml").unwrap_err().to_string();
    assert!(e.contains("more than one document") && e.ends_with(" at line 3"), "{e}");
}
