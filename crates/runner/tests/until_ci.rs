//! `--until-ci-width`: the stopping rule on synthetic data. A scripted backend answers, a scripted scorer gives
//! each (policy, sample) a fixed pseudo-random score in [0, 1), and the run must add samples in rounds until
//! every policy's 95% CI half-width is within the target, with the same samples for every policy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use ttc_runner::backend::scripted::{Reply, ScriptedBackend, Step};
use ttc_runner::backend::ChatMessage;
use ttc_runner::config::{ConfigError, RunOptions, SuiteConfig};
use ttc_runner::plan::{SuiteLoader, WorkItem};
use ttc_runner::scoring::Scorer;
use ttc_runner::{Hooks, RunOutcome};
use ttc_results::ResultsStore;
use ttc_types::{Record, Usage};

struct Items;
impl SuiteLoader for Items {
    fn load(&self, suite: &SuiteConfig, _seed: u64, _dir: Option<&Path>) -> anyhow::Result<Vec<WorkItem>> {
        Ok((0..400)
            .map(|i| WorkItem {
                suite: suite.name.clone(),
                task: None,
                sample_id: format!("s{i}"),
                messages: vec![ChatMessage::new("user", format!("question {i}"))],
                reference: None,
            })
            .collect())
    }
}

/// A fixed score per (policy, sample): splitmix64 of its name, in [0, 1).
struct Scores;
impl Scorer for Scores {
    fn score(&self, r: &Record) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut h = r.sample_id.bytes().chain(r.policy.bytes()).fold(0x9E37_79B9_7F4A_7C15u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3));
        h ^= h >> 31;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 29;
        Ok([("rouge_l".to_string(), (h >> 11) as f64 / (1u64 << 53) as f64)].into())
    }
}

fn hooks() -> Hooks {
    let backend = Arc::new(ScriptedBackend::new(|_, _| {
        Reply::Stream(vec![Step::text("an answer"), Step::finish(Some(Usage { prompt_tokens: 3, completion_tokens: 2, ..Usage::default() }))])
    }));
    Hooks {
        suites: Some(Arc::new(Items)),
        scorer: Some(Arc::new(Scores)),
        token_counter: None,
        embedded: Some(Arc::new(move |_: &ttc_runner::RunConfig| Ok(backend.clone() as Arc<dyn ttc_runner::Backend>))),
    }
}

fn run(dir: &Path, width: f64, max_samples: Option<u64>) -> Vec<Record> {
    std::fs::write(
        dir.join("run.yaml"),
        "suites: [{name: syn, samples: 8}]\npolicies: [{name: baseline}, {name: other, algorithm: baseline}]\n\
         scoring: {embedder: none}\n",
    )
    .unwrap();
    let args = RunOptions {
        config: Some(dir.join("run.yaml")),
        results: Some(dir.join("results")),
        until_ci_width: Some(width),
        max_samples,
        quiet: true,
        ..Default::default()
    };
    assert_eq!(ttc_runner::run_with(args, hooks()).unwrap(), RunOutcome::Finished);
    ResultsStore::open(dir.join("results")).unwrap().load_last().unwrap().records
}

fn samples_of(records: &[Record], policy: &str) -> BTreeSet<String> {
    records.iter().filter(|r| r.policy == policy).map(|r| r.sample_id.clone()).collect()
}

#[test]
fn rounds_stop_once_every_ci_is_narrow_enough() {
    let dir = tempfile::tempdir().unwrap();
    let records = run(dir.path(), 0.1, None);
    let widths = ttc_runner::rounds::widths(&records, None);
    assert_eq!(widths.len(), 2);
    for w in &widths {
        assert_eq!(w.metric, "rouge_l");
        assert!(w.half_width.unwrap() <= 0.1, "{w:?}");
        // Uniform scores have sd 0.29: about (1.96 * 0.29 / 0.1)^2 = 32 samples are needed; the rounds must have
        // grown past the first 8 and stopped long before the pool of 400.
        assert!((20..=80).contains(&w.n), "{w:?}");
    }
    assert_eq!(samples_of(&records, "baseline"), samples_of(&records, "other"), "paired: same samples for both");
    // The output-level fidelity of the identical answers: every record equals its baseline.
    assert!(records.iter().all(|r| r.fidelity.exact_match == Some(1.0) && r.fidelity.rouge_l == Some(1.0)));
}

#[test]
fn rounds_stop_at_max_samples() {
    let dir = tempfile::tempdir().unwrap();
    let records = run(dir.path(), 0.01, Some(30));
    assert_eq!(samples_of(&records, "baseline").len(), 30);
    assert_eq!(samples_of(&records, "other").len(), 30);
    assert!(ttc_runner::rounds::widths(&records, None).iter().all(|w| w.half_width.unwrap() > 0.01));
}

#[test]
fn bad_until_ci_and_fidelity_requests_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.yaml"), "suites: [{name: syn, samples: 4}]\npolicies: [{name: fast, algorithm: early_exit_fixed, params: {exit_layer: 28}}]\n").unwrap();
    let base = RunOptions { config: Some(dir.path().join("run.yaml")), results: Some(dir.path().join("r")), quiet: true, ..Default::default() };
    let remote = RunOptions {
        backend: Some(ttc_runner::config::BackendKind::Openai),
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model: Some("m".into()),
        until_ci_width: Some(0.05),
        ..base.clone()
    };
    let cases = [
        // --ci-metric / --max-samples without a width
        RunOptions { ci_metric: Some("rouge_l".into()), ..base.clone() },
        RunOptions { max_samples: Some(10), ..base.clone() },
        RunOptions { until_ci_width: Some(0.0), ..base.clone() },
        RunOptions { until_ci_width: Some(0.05), ci_metric: Some("nope".into()), ..base.clone() },
        // a teacher-forced metric on an HTTP backend; an output one without a baseline policy in the run
        RunOptions { ci_metric: Some("fidelity_top1".into()), ..remote.clone() },
        RunOptions { ci_metric: Some("fidelity_rouge_l".into()), ..remote.clone() },
    ];
    for args in cases {
        let shown = format!("{:?} {:?} {:?}", args.until_ci_width, args.ci_metric, args.max_samples);
        let err = ttc_runner::run_with(args, hooks()).unwrap_err();
        assert!(err.is::<ConfigError>(), "{shown}: {err}");
    }
    assert!(!dir.path().join("r").exists(), "a usage error stores nothing");
}
