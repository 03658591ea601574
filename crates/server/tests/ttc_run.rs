//! `ttc run --backend openai --base-url http://127.0.0.1:PORT/v1` against `ttc serve` gives the same texts
//! and token counts as `ttc run --backend embedded` for greedy decoding, policy by policy (issue 5). Both
//! runs go through `ttc_runner::run_with`, the function the `ttc run` command calls, with the Parquet store.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use ttc_runner::config::{BackendKind, RunOptions};
use ttc_runner::{Backend, Hooks, RunOutcome};
use ttc_results::ResultsStore;
use ttc_types::{Record, RecordStatus, TokenCountSource};

const RUN_YAML: &str = "\
suites:
  - {name: mine, path: mine.jsonl}
policies:
  - {name: baseline}
  - name: speculative_decoding
    algorithm: speculative_ngram
    params: {lookahead_tokens: 4, max_ngram: 3}
    remote: {model: 'smollm2-135m:speculative_decoding'}
  - name: early_exit_28
    algorithm: early_exit_fixed
    params: {exit_layer: 28}
    remote: {model: 'smollm2-135m:early_exit_28'}
generation: {max_tokens: 16, temperature: 0}
scoring: {embedder: none}
load: {concurrency: 2, max_retries: 0}
";

fn write_run(dir: &std::path::Path) {
    let prompts = ["Name three colors.", "What is 2 + 2? Explain briefly.", "Write a haiku about the sea."];
    let lines: Vec<String> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| serde_json::json!({"id": format!("q{i}"), "prompt": p, "reference": "x"}).to_string())
        .collect();
    std::fs::write(dir.join("mine.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dir.join("run.yaml"), RUN_YAML).unwrap();
}

fn records(results: &std::path::Path) -> BTreeMap<(String, String), Record> {
    let run = ResultsStore::open(results).unwrap().load_last().unwrap();
    run.records.into_iter().map(|r| ((r.policy.clone(), r.sample_id.clone()), r)).collect()
}

#[test]
fn openai_backend_against_serve_equals_embedded_greedy() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let base = RunOptions { config: Some(dir.path().join("run.yaml")), quiet: true, ..Default::default() };

    // Embedded: the CLI's hook, over the shared engine.
    let factory = |_: &ttc_runner::RunConfig| -> anyhow::Result<Arc<dyn Backend>> {
        Ok(Arc::new(ttc_embedded::EmbeddedBackend::new(engine())))
    };
    let hooks = Hooks { embedded: Some(Arc::new(factory)), ..Hooks::default() };
    let embedded_args = RunOptions { backend: Some(BackendKind::Embedded), results: Some(dir.path().join("embedded")), ..base.clone() };
    assert_eq!(ttc_runner::run_with(embedded_args, hooks).unwrap(), RunOutcome::Finished);

    // OpenAI-compatible: the same run against `ttc serve`.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start(None));
    let openai_args = RunOptions {
        backend: Some(BackendKind::Openai),
        base_url: Some(server.base_url.clone()),
        model: Some("smollm2-135m".into()),
        api_key_env: Some("TTC_TEST_UNSET_KEY_VAR".into()),
        results: Some(dir.path().join("openai")),
        ..base
    };
    assert_eq!(ttc_runner::run_with(openai_args, Hooks::default()).unwrap(), RunOutcome::Finished);
    rt.block_on(server.shutdown()).unwrap();

    let embedded = records(&dir.path().join("embedded"));
    let openai = records(&dir.path().join("openai"));
    assert_eq!(embedded.len(), 9);
    assert_eq!(embedded.keys().collect::<Vec<_>>(), openai.keys().collect::<Vec<_>>());
    for (key, e) in &embedded {
        let o = &openai[key];
        assert_eq!((e.status, o.status), (RecordStatus::Ok, RecordStatus::Ok), "{key:?}: {:?}", o.error_message);
        assert_eq!((e.backend.as_str(), o.backend.as_str()), ("embedded", "openai"));
        assert_eq!(e.token_count_source, Some(TokenCountSource::Engine));
        assert_eq!(o.token_count_source, Some(TokenCountSource::Usage));
        assert!(!e.prediction.is_empty(), "{key:?}");
        assert_eq!(o.prediction, e.prediction, "{key:?}");
        assert_eq!(o.output_tokens, e.output_tokens, "{key:?}");
        assert_eq!(o.prompt_tokens, e.prompt_tokens, "{key:?}");
        assert_eq!(o.finish_reason, e.finish_reason, "{key:?}");
    }
    // Speculative decoding is lossless under greedy decoding; early exit at layer 28 is not (it is really
    // applied by the server, not silently replaced by the baseline).
    for q in ["q0", "q1", "q2"] {
        let k = |p: &str| (p.to_string(), q.to_string());
        assert_eq!(openai[&k("speculative_decoding")].prediction, openai[&k("baseline")].prediction);
    }
    let differs = ["q0", "q1", "q2"]
        .iter()
        .any(|q| openai[&("early_exit_28".into(), q.to_string())].prediction != openai[&("baseline".into(), q.to_string())].prediction);
    assert!(differs, "early_exit_28 gave the baseline's text for every prompt");
}
