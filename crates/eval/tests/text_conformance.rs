//! Text metrics against the reference implementations (tools/text_vectors.py): rouge-score 0.1.2 (with and
//! without the Porter stemmer), sacrebleu sentence BLEU, and CRMArena's normalize/EM/F1/BLEU, on our own
//! pairs (texts committed) and on ~700 pairs rebuilt from the real datasets (ids + scores committed).

mod common;

use serde_json::Value;
use ttc_eval::metrics::{bleu, lexical, rouge};
use ttc_eval::text::normalize_answer;

const TOL: f64 = 1e-9;

fn check(id: &str, pred: &str, reference: &str, want: &Value) {
    let close = |name: &str, got: f64| {
        let w = want[name].as_f64().unwrap();
        assert!((got - w).abs() <= TOL, "{id}: {name} = {got}, reference {w}\npred: {pred:?}\nref: {reference:?}");
    };
    for (prefix, stem) in [("", false), ("stem_", true)] {
        let r = rouge::rouge(pred, reference, stem);
        close(&format!("{prefix}rouge1"), r.rouge1);
        close(&format!("{prefix}rouge2"), r.rouge2);
        close(&format!("{prefix}rougeL"), r.rouge_l);
        close(&format!("{prefix}rougeLsum"), r.rouge_lsum);
        assert_eq!(rouge::rouge_l(pred, reference, stem), r.rouge_l);
    }
    close("bleu", bleu::sentence_bleu(pred, reference));
    close("bleu_norm", bleu::sentence_bleu(&normalize_answer(pred), &normalize_answer(reference)));
    close("em", lexical::exact_match(pred, reference));
    close("em_norm", lexical::exact_match_normalized(pred, reference));
    let (p, r, f) = lexical::token_prf(pred, reference);
    close("precision", p);
    close("recall", r);
    close("f1", f);
}

#[test]
fn synthetic_pairs_match_the_references() {
    let text = std::fs::read_to_string(common::data_file("text_vectors_synthetic.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        check(v["id"].as_str().unwrap(), v["pred"].as_str().unwrap(), v["ref"].as_str().unwrap(), &v["scores"]);
        n += 1;
    }
    assert!(n >= 140);
}

/// The pair rules of tools/text_vectors.py `real_pairs`, rebuilt from the data.
fn real_pairs(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let load = |p: &str| -> Vec<Value> { serde_json::from_str(&std::fs::read_to_string(dir.join(p)).unwrap()).unwrap() };
    let gold = |x: &Value| x["answer"].as_str().unwrap_or("None").to_string();
    let mut out = Vec::new();
    let crm = load("crmarena/tasks_natural.json");
    for (i, x) in crm.iter().enumerate() {
        let q = x["query"].as_str().unwrap().to_string();
        if i % 4 == 0 {
            out.push((format!("crm:{i}:q_vs_a"), q.clone(), gold(x)));
        }
        if i % 8 == 0 {
            out.push((format!("crm:{i}:a_vs_next"), gold(x), gold(&crm[(i + 1) % crm.len()])));
        }
        if i % 20 == 0 {
            out.push((format!("crm:{i}:req_vs_q"), x["metadata"]["required"].as_str().unwrap().to_string(), q));
        }
    }
    for (i, x) in load("crmarena-pro/crmarena_b2b_tasks.json").iter().enumerate() {
        if i % 20 == 0 {
            let a: Vec<&str> = x["answer"].as_array().unwrap().iter().map(|a| a.as_str().unwrap_or("None")).collect();
            out.push((format!("pro:{i}:q_vs_a"), x["query"].as_str().unwrap().to_string(), a.join(", ")));
        }
    }
    let root = dir.join("worfbench/gold_traj");
    let mut tasks: Vec<String> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    tasks.sort();
    let mut k = 0;
    for t in tasks {
        for x in load(&format!("worfbench/gold_traj/{t}/graph_eval.json")) {
            if k % 25 == 0 {
                let c = &x["conversations"];
                out.push((format!("worf:{k}:user_vs_gold"), c[1]["content"].as_str().unwrap().into(), c[2]["content"].as_str().unwrap().into()));
            }
            k += 1;
        }
    }
    out
}

#[test]
fn real_pairs_match_the_references() {
    let Some(dir) = common::real_data_dir() else {
        eprintln!("skipped: no data directory");
        return;
    };
    let pairs = real_pairs(&dir);
    let text = std::fs::read_to_string(common::data_file("text_vectors_real.jsonl")).unwrap();
    let wants: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(pairs.len(), wants.len());
    assert!(pairs.len() >= 600);
    for ((id, pred, reference), want) in pairs.iter().zip(&wants) {
        assert_eq!(id, want["id"].as_str().unwrap());
        check(id, pred, reference, &want["scores"]);
    }
}
