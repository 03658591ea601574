//! f1_chain / f1_graph against the official evaluator (tools/worfbench_vectors.py: unmodified
//! graph_evaluator.py + workflow_to_graph_list, networkx 3.6.1, `hash` embedder), to float precision.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use ttc_eval::metrics::SuiteKind;
use ttc_eval::{score_reply, ScorerCtx};
use ttc_embedders::HashEmbedder;

fn ctx() -> ScorerCtx {
    ScorerCtx::new(Some(Arc::new(HashEmbedder)))
}

fn check(got: &BTreeMap<String, f64>, want: &Value, mode: &str, what: &str) {
    let (p, r, f) = match want {
        Value::Null => (0.0, 0.0, 0.0), // unparsable prediction: skipped upstream, i.e. 0 in the mean
        v => (v[0].as_f64().unwrap(), v[1].as_f64().unwrap(), v[2].as_f64().unwrap()),
    };
    for (name, w) in [(format!("{mode}_precision"), p), (format!("{mode}_recall"), r), (format!("f1_{mode}"), f)] {
        let g = got[&name];
        assert!((g - w).abs() <= 1e-12, "{what}: {name} = {g}, official {w}");
    }
}

#[test]
fn variants_match_the_official_evaluator() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(common::data_file("worfbench_cases.json")).unwrap()).unwrap();
    let golds = v["golds"].as_object().unwrap();
    let ctx = ctx();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 300);
    for c in cases {
        let gold = golds[c["id"].as_str().unwrap()].as_str().unwrap();
        let what = format!("{} {}", c["id"], c["variant"]);
        let got = score_reply(SuiteKind::Worfbench, None, None, c["pred"].as_str().unwrap(), &[gold.to_string()], &ctx).unwrap();
        check(&got, &c["chain"], "chain", &what);
        check(&got, &c["graph"], "graph", &what);
        assert_eq!(got["workflow_parsed"], if c["chain"].is_null() { 0.0 } else { 1.0 }, "{what}");
    }
}

/// Every real gold scored against itself (ids + official scores are committed; the golds are read from the
/// data directory). Skipped without the data.
#[test]
fn every_real_gold_self_scores_like_the_official_evaluator() {
    let Some(dir) = common::real_data_dir() else {
        eprintln!("skipped: no data directory");
        return;
    };
    let root = dir.join("worfbench/gold_traj");
    let mut golds = BTreeMap::new();
    for task in std::fs::read_dir(&root).unwrap().flatten() {
        let items: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(task.path().join("graph_eval.json")).unwrap()).unwrap();
        for it in items {
            golds.insert(it["id"].as_str().unwrap().to_string(), it["conversations"][2]["content"].as_str().unwrap().to_string());
        }
    }
    let ctx = ctx();
    let text = std::fs::read_to_string(common::data_file("worfbench_self.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let want: Value = serde_json::from_str(line).unwrap();
        let gold = &golds[want["id"].as_str().unwrap()];
        let got = score_reply(SuiteKind::Worfbench, None, None, gold, std::slice::from_ref(gold), &ctx).unwrap();
        check(&got, &want["chain"], "chain", want["id"].as_str().unwrap());
        check(&got, &want["graph"], "graph", want["id"].as_str().unwrap());
        n += 1;
    }
    assert_eq!(n, 2146);
}
