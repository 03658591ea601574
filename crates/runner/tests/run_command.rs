//! `ttc run` end to end against a local OpenAI-compatible server: config file + flags, eval's JSONL
//! loader and scorer, the Parquet store, `--resume`, `--dry-run`, and usage errors.

mod support;

use std::collections::BTreeSet;
use support::{FaultServer, ServerState};
use ttc_runner::config::{BackendKind, ConfigError, RunOptions};
use ttc_runner::{Hooks, RunOutcome};
use ttc_results::ResultsStore;
use ttc_types::{RecordStatus, TokenCountSource};

fn write_suite(dir: &std::path::Path) {
    let lines: Vec<String> = (0..5)
        .map(|i| {
            let reference = if i % 2 == 0 { "w0 w1 w2" } else { "something else" };
            serde_json::json!({"id": format!("q{i}"), "prompt": format!("question {i}"), "reference": reference})
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("mine.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(
        dir.join("run.yaml"),
        "suites:\n  - {name: mine, path: mine.jsonl}\n\
         policies:\n  - {name: plain}\n  - {name: tagged, remote: {model: 'm:tagged', temperature: 0.5}}\n\
         scoring: {embedder: none}\nload: {concurrency: 4, max_retries: 0}\n",
    )
    .unwrap();
}

fn args(dir: &std::path::Path, url: &str) -> RunOptions {
    RunOptions {
        config: Some(dir.join("run.yaml")),
        backend: Some(BackendKind::Openai),
        base_url: Some(url.to_string()),
        model: Some("m".into()),
        api_key_env: Some("TTC_TEST_UNSET_KEY_VAR".into()),
        results: Some(dir.join("results")),
        quiet: true,
        ..Default::default()
    }
}

#[test]
fn run_store_resume_and_dry_run() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(FaultServer::start(ServerState { words: 3, ..Default::default() }));
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path());

    // Dry run: prints the plan, stores nothing.
    let outcome =
        ttc_runner::run_with(RunOptions { dry_run: true, ..args(dir.path(), &server.base_url) }, Hooks::default()).unwrap();
    assert_eq!(outcome, RunOutcome::Finished);
    assert_eq!(server.total_attempts(), 0);
    assert!(!dir.path().join("results").exists(), "--dry-run must not create the results directory");

    // First session runs only `plain`.
    let first = RunOptions { policies: vec!["plain".into()], ..args(dir.path(), &server.base_url) };
    assert_eq!(ttc_runner::run_with(first, Hooks::default()).unwrap(), RunOutcome::Finished);
    let store = ResultsStore::open(dir.path().join("results")).unwrap();
    let run = store.load_last().unwrap();
    assert_eq!(run.records.len(), 5);
    let run_id = run.records[0].run_id.clone();

    // Resuming with both policies runs only what is missing.
    let resume = RunOptions { resume: Some(run_id.clone()), ..args(dir.path(), &server.base_url) };
    assert_eq!(ttc_runner::run_with(resume.clone(), Hooks::default()).unwrap(), RunOutcome::Finished);
    let records = store.load_run(&run_id).unwrap().records;
    assert_eq!(records.len(), 10);
    let keys: BTreeSet<_> = records.iter().map(|r| r.key()).collect();
    assert_eq!(keys.len(), 10, "each (policy, suite, sample) exactly once");
    assert_eq!(server.total_attempts(), 10);
    // A second resume has nothing left to do.
    assert_eq!(ttc_runner::run_with(resume, Hooks::default()).unwrap(), RunOutcome::Finished);
    assert_eq!(server.total_attempts(), 10);

    for r in &records {
        assert_eq!(r.status, RecordStatus::Ok);
        assert_eq!((r.suite.as_str(), r.backend.as_str()), ("mine", "openai"));
        assert_eq!(r.prediction, "w0 w1 w2 ");
        assert_eq!((r.output_tokens, r.token_count_source), (Some(3), Some(TokenCountSource::Usage)));
        assert_eq!(r.model, if r.policy == "tagged" { "m:tagged" } else { "m" });
        // Scored by the eval crate: exact match against the reference.
        let em = r.metrics.get("exact_match").copied();
        let want = if r.reference.as_deref() == Some("w0 w1 w2") { 1.0 } else { 0.0 };
        assert_eq!(em, Some(want), "{}: {:?}", r.sample_id, r.metrics);
        assert!(r.metrics.contains_key("rouge_l"));
    }
}

/// A mistake the user can fix (the CLI exits 2 on it).
fn is_config_error(r: anyhow::Result<RunOutcome>) -> bool {
    r.is_err_and(|e| e.is::<ConfigError>())
}

#[test]
fn usage_errors_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path());
    let url = "http://127.0.0.1:9/v1";
    std::fs::write(dir.path().join("bad.yaml"), "load:\n  concurrency: -1\n").unwrap();
    let bad = RunOptions { config: Some(dir.path().join("bad.yaml")), ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(bad, Hooks::default())));
    let unknown_policy = RunOptions { policies: vec!["nope".into()], ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(unknown_policy, Hooks::default())));
    let unknown_suite = RunOptions { suites: vec!["nope".into()], ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(unknown_suite, Hooks::default())));
    let no_run = RunOptions { resume: Some("missing-run".into()), ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(no_run, Hooks::default())));
    let no_run_dry = RunOptions { resume: Some("missing-run".into()), dry_run: true, ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(no_run_dry, Hooks::default())));
    let zero = RunOptions { samples: Some(0), ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(zero, Hooks::default())));
    let embedded = RunOptions { backend: Some(BackendKind::Embedded), ..args(dir.path(), url) };
    assert!(is_config_error(ttc_runner::run_with(embedded, Hooks::default())), "no engine hook linked");
    // A public preset without its key fails before sending anything.
    let groq = RunOptions {
        backend: Some(BackendKind::Groq),
        base_url: None,
        api_key_env: Some("TTC_TEST_UNSET_KEY_VAR".into()),
        ..args(dir.path(), url)
    };
    assert!(is_config_error(ttc_runner::run_with(groq, Hooks::default())));
    assert!(!dir.path().join("results").exists(), "usage errors must not create the results directory");
}
