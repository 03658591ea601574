//! The scoring entry point on loaded items, the metric filter, and `ttc score` on a file.

mod common;

use std::io::Write;
use std::sync::Arc;
use ttc_eval::cmd::score::{score_file, ScoreOptions};
use ttc_eval::suite::{load_suite, DataSource, SuiteSpec};
use ttc_eval::{score_record, split_metrics, EmbedderKind, ScorerCtx};
use ttc_embedders::HashEmbedder;

fn hash_ctx() -> ScorerCtx {
    ScorerCtx::new(Some(Arc::new(HashEmbedder)))
}

#[test]
fn gold_answers_score_perfectly_and_wrong_ones_do_not() {
    let ctx = hash_ctx();
    for suite in ["crmarena", "crmarena_pro"] {
        for item in load_suite(&SuiteSpec::new(suite), &DataSource::default()).unwrap() {
            let reply = format!("Looking at the data.\n<submit>{}</submit>", item.reference.as_deref().unwrap());
            let m = score_record(suite, &reply, &item, &ctx).unwrap();
            assert_eq!(m["exact_match"], 1.0, "{suite} {}", item.sample_id);
            for k in ["exact_match_normalized", "f1", "rouge_l", "length_ratio"] {
                assert_eq!(m[k], 1.0, "{suite} {} {k}", item.sample_id);
            }
            assert!((m["semantic_similarity"] - 1.0).abs() < 1e-6);
            let (quality, extra) = split_metrics(m);
            assert!(extra.is_empty() && quality.contains_key("overall_keyword_coverage"));
        }
    }
    let items = load_suite(&SuiteSpec::new("crmarena"), &DataSource::default()).unwrap();
    let routing = items.iter().find(|i| i.task.as_deref() == Some("case_routing")).unwrap();
    // Case matters for exact_match, not for the normalised variant.
    let gold = routing.reference.clone().unwrap();
    let m = score_record("crmarena", &format!("<submit>{}</submit>", gold.to_lowercase()), routing, &ctx).unwrap();
    assert_eq!((m["exact_match"], m["exact_match_normalized"]), (0.0, 1.0));
    // Without a tag, the last line is the answer of an id task.
    let m = score_record("crmarena", &format!("The best agent is below.\n{gold}"), routing, &ctx).unwrap();
    assert_eq!(m["exact_match"], 1.0);
}

#[test]
fn worfbench_items_score_their_own_gold_as_one_and_garbage_as_zero() {
    let ctx = hash_ctx();
    for item in load_suite(&SuiteSpec::new("worfbench"), &DataSource::default()).unwrap() {
        let gold = item.reference.clone().unwrap();
        let m = score_record("worfbench", &gold, &item, &ctx).unwrap();
        // Official evaluator (tools/worfbench_vectors.py, hash embedder) on these samples: all 1.0 except the
        // chain of alfworld_4 (11 nodes keep START/END, and duplicate "go to safe 1" nodes tie) and of
        // wikihow_3 (its own order is not among the first 20 topological sorts).
        let want_chain = match item.sample_id.as_str() {
            "alfworld_4" => 0.7000000000000001,
            "wikihow_3" => 0.8000000000000002,
            _ => 1.0,
        };
        assert_eq!((m["f1_chain"], m["f1_graph"], m["workflow_parsed"]), (want_chain, 1.0, 1.0), "{}", item.sample_id);
        let m = score_record("worfbench", "I cannot plan this.", &item, &ctx).unwrap();
        assert_eq!((m["f1_chain"], m["f1_graph"], m["workflow_parsed"]), (0.0, 0.0, 0.0));
        let (q, extra) = split_metrics(m);
        assert_eq!(q.len(), 2);
        assert!(extra.contains_key("chain_precision"));
    }
}

#[test]
fn metric_filter_and_missing_embedder() {
    let items = load_suite(&SuiteSpec::new("crmarena"), &DataSource::default()).unwrap();
    let ctx = ScorerCtx::new(None).with_metrics(&["f1".into(), "bleu".into()]).unwrap();
    let m = score_record("crmarena", "x", &items[0], &ctx).unwrap();
    assert_eq!(m.keys().collect::<Vec<_>>(), vec!["bleu", "f1"]);
    assert!(ScorerCtx::new(None).with_metrics(&["rougeL".into()]).is_err());
    // No embedder: no semantic similarity, no WorfBench scores, no error.
    let m = score_record("crmarena", "x", &items[0], &ScorerCtx::new(None)).unwrap();
    assert!(!m.contains_key("semantic_similarity") && m.contains_key("rouge1"));
    assert!(ttc_eval::needs_embedder("worfbench", &[]) && !ttc_eval::needs_embedder("crmarena", &["f1".into()]));
}

/// An error the user can fix (the CLI exits 2 on it): any `EvalError` but an embedder failure.
fn is_bad_input(r: anyhow::Result<()>) -> bool {
    r.is_err_and(|e| e.downcast_ref::<ttc_eval::EvalError>().is_some_and(|e| !matches!(e, ttc_eval::EvalError::Embed(_))))
}

#[test]
fn score_command_scores_each_line_and_reports_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("preds.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    writeln!(f, "{{\"id\": 1, \"prediction\": \"the cat sat on the mat\", \"reference\": \"the cat sat on the mat\"}}").unwrap();
    writeln!(f, "{{\"id\": 2, \"prediction\": \"a dog\", \"reference\": [\"the cat\", \"a dog!\"]}}").unwrap();
    drop(f);
    let mut args = ScoreOptions {
        input: input.clone(),
        suite: "generic".into(),
        metrics: vec![],
        embedder: EmbedderKind::Hash,
        offline: true,
        rouge_stemmer: false,
        seed: 0,
        json: true,
    };
    let rows = score_file(&args).unwrap();
    assert_eq!(rows.len(), 2);
    // sacrebleu itself gives 1.0000000000000004 here (exp(log(100)) / 100).
    assert_eq!((rows[0]["bleu"], rows[0]["exact_match"]), (1.0000000000000004, 1.0));
    // Best of several references: "a dog!" normalises to "dog" like "a dog".
    assert_eq!((rows[1]["exact_match"], rows[1]["exact_match_normalized"], rows[1]["f1"]), (0.0, 1.0, 1.0));
    ttc_eval::cmd::run_score(args.clone()).unwrap();

    std::fs::write(&input, "{\"prediction\": \"x\", \"reference\": \"y\"}\n{\"prediction\": 3, \"reference\": \"y\"}\n").unwrap();
    let err = score_file(&args).unwrap_err().to_string();
    assert!(err.contains("preds.jsonl:2:") && err.contains("field `prediction`"), "{err}");

    // WorfBench: a gold that does not parse is an error naming the line.
    args.suite = "worfbench".into();
    std::fs::write(&input, "{\"prediction\": \"Node: 1: a\\n(START,1)\", \"reference\": \"no workflow\"}\n").unwrap();
    let err = score_file(&args).unwrap_err().to_string();
    assert!(err.contains("preds.jsonl:1:") && err.contains("reference workflow"), "{err}");
    assert!(is_bad_input(ttc_eval::cmd::run_score(args.clone())), "bad input is a usage error");
    args.suite = "worfbnech".into();
    assert!(is_bad_input(ttc_eval::cmd::run_score(args)), "a bad --suite is a usage error");
}

#[test]
fn score_input_with_a_byte_order_mark_or_bad_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("preds.jsonl");
    let args = ScoreOptions {
        input: input.clone(),
        suite: "generic".into(),
        metrics: vec!["exact_match".into()],
        embedder: EmbedderKind::Hash,
        offline: true,
        rouge_stemmer: false,
        seed: 0,
        json: true,
    };
    let line = "{\"prediction\": \"a\", \"reference\": \"a\"}\n";
    std::fs::write(&input, format!("\u{feff}{line}{line}")).unwrap();
    let rows = score_file(&args).unwrap();
    assert_eq!(rows.iter().map(|r| r["exact_match"]).collect::<Vec<_>>(), vec![1.0, 1.0]);

    let mut bytes = format!("{line}{line}").into_bytes();
    bytes.extend_from_slice(b"{\"prediction\": \"caf\xE9\", \"reference\": \"a\"}\n");
    std::fs::write(&input, bytes).unwrap();
    let err = format!("{:#}", score_file(&args).unwrap_err());
    assert_eq!(
        err,
        format!("{}:3: not valid UTF-8 (byte 20 of the line is 0xE9); save the file as UTF-8", input.display())
    );
    assert!(is_bad_input(ttc_eval::cmd::run_score(args)));
}

/// With the real default embedder (when cached; the ttc-embedders tests fetch it): paraphrases score higher than
/// unrelated answers, and gold workflows match themselves.
#[test]
fn minilm_scoring_when_cached() {
    let Ok(e) = EmbedderKind::Minilm.load(false) else {
        eprintln!("skipped: MiniLM not cached");
        return;
    };
    let ctx = ScorerCtx::new(Some(Arc::from(e)));
    let items = load_suite(&SuiteSpec::new("crmarena"), &DataSource::default()).unwrap();
    let kqa = &items[0];
    let close = score_record("crmarena", "<submit>Clean them with a wet cloth and let them dry naturally, away from heat.</submit>", kqa, &ctx).unwrap();
    let far = score_record("crmarena", "<submit>The invoice was paid in March.</submit>", kqa, &ctx).unwrap();
    assert!(close["semantic_similarity"] > far["semantic_similarity"] + 0.3, "{close:?} {far:?}");
    let worf = load_suite(&SuiteSpec::new("worfbench"), &DataSource::default()).unwrap();
    let m = score_record("worfbench", worf[4].reference.as_deref().unwrap(), &worf[4], &ctx).unwrap();
    assert_eq!((m["f1_chain"], m["f1_graph"]), (1.0, 1.0));
}
