//! `ttc score` and `ttc summary` give the same interval for the same values: both use the one statistics module
//! (`ttc_stats::metric_mean_ci`: the same resamples, the same seed rule, values in sorted order). The scores of
//! `ttc score` are stored as records (in another order) and summarised; every metric's mean and interval must
//! match bit for bit.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use ttc_eval::cmd::ScoreOptions;
use ttc_eval::EmbedderKind;
use ttc_results::testutil::record;
use ttc_results::{RecordSink, ResultsStore, RunMeta, WriterOptions};

fn ttc(args: &[&str], cwd: &Path) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TTC_RESULTS")
        .output()
        .expect("run ttc");
    assert!(o.status.success(), "ttc {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn score_and_summary_give_the_same_interval_for_the_same_values() {
    let tmp = tempfile::tempdir().unwrap();
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    let lines: Vec<String> = (0..40)
        .map(|i| {
            let reference = format!("{} {} {}", words[i % 6], words[(i / 2) % 6], words[(i / 3) % 6]);
            let prediction = if i % 3 == 0 { reference.clone() } else { format!("{} {}", words[(i * 5) % 6], words[(i / 2) % 6]) };
            serde_json::json!({"id": format!("s{i}"), "prediction": prediction, "reference": reference}).to_string()
        })
        .collect();
    std::fs::write(tmp.path().join("in.jsonl"), lines.join("\n")).unwrap();
    let out = ttc(
        &["score", "--input", "in.jsonl", "--metrics", "exact_match,f1", "--embedder", "hash", "--offline", "--json", "--seed", "3"],
        tmp.path(),
    );
    let out: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (scored, summary) = out.split_at(out.len() - 1);
    assert_eq!(scored.len(), 40);
    // The scores as `ttc score` computes them (exact values, not their JSON print).
    let rows = ttc_eval::cmd::score::score_file(&ScoreOptions {
        input: tmp.path().join("in.jsonl"),
        suite: "generic".into(),
        metrics: vec!["exact_match".into(), "f1".into()],
        embedder: EmbedderKind::Hash,
        offline: true,
        rouge_stemmer: false,
        seed: 3,
        json: true,
    })
    .unwrap();

    // The same values as records of one policy x suite, stored in reverse order.
    let store = ResultsStore::create(tmp.path().join("results")).unwrap();
    let meta = RunMeta {
        run_id: "r".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "h".into(),
        planned: Some(40),
        project_version: "0.1.0".into(),
        extra: serde_json::json!({}),
    };
    let mut w = store.start_run(meta, WriterOptions { flush_records: 7, ..Default::default() }).unwrap();
    for (i, metrics) in rows.into_iter().enumerate().rev() {
        let mut r = record("p", "s", &format!("s{i}"));
        r.run_id = "r".into();
        r.metrics = metrics;
        w.push(r).unwrap();
    }
    w.finish().unwrap();
    let out = ttc(&["summary", "--results", "results", "--format", "json", "--seed", "3"], tmp.path());
    let summarised: Value = serde_json::from_slice(&out.stdout).unwrap();
    let quality = &summarised["groups"][0]["quality"];

    let aggregates = summary[0]["summary"].as_array().unwrap();
    assert_eq!(aggregates.len(), 2);
    for a in aggregates {
        let metric = a["metric"].as_str().unwrap();
        let q = &quality[metric];
        assert_eq!(q["method"], "bootstrap", "{metric}: {q}");
        assert_eq!((&a["n"], &a["mean"], &a["ci_low"], &a["ci_high"]), (&q["n"], &q["value"], &q["lo"], &q["hi"]), "{metric}: {a} vs {q}");
        assert!(a["ci_low"].as_f64() < a["ci_high"].as_f64(), "a real interval: {a}");
    }
}
