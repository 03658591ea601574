//! One store, one answer: the same reduced run (same run id, so the same bootstrap seeds) made by one `ttc run`
//! and by two `ttc run --shard I/2` processes running side by side must store the same records on every
//! non-timing column and summarise, compare and report alike; with a shard's files gone, the analysis commands
//! name the shard and the records it lacks (exit 2) instead of summarising half a run.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const RUN: &[&str] = &[
    "run", "--samples", "2", "--max-tokens", "4", "--policies", "baseline,early_exit_28", "--concurrency", "1",
    "--no-capacity", "--quiet", "--run-id", "r",
];

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ttc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttc")).args(args).current_dir(repo()).output().expect("run ttc")
}

fn ok(out: Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Columns that measure time or identify the process (the list `end_to_end.rs::pinned_columns` leaves out).
const TIMING: &[&str] = &[
    "run_id", "run_started_at", "config_hash", "project_version", "host", "start_offset_s", "ttft_s", "e2e_s",
    "tpot_s", "itl_mean_s", "itl_p50_s", "itl_p99_s", "token_times_s", "throughput_tok_s",
];
const TIMING_STATS: &[&str] = &["sampler_us_per_token", "mean_batch_occupancy", "queue_wait_s", "batch_steps"];

/// Every stored record without its timing columns, by (policy, suite, sample).
fn records(results: &Path) -> BTreeMap<(String, String, String), Value> {
    let run = ttc_results::ResultsStore::open(results).unwrap().load_run("r").unwrap();
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    let mut out = BTreeMap::new();
    for r in &run.records {
        let mut v = serde_json::to_value(r).unwrap();
        let o = v.as_object_mut().unwrap();
        TIMING.iter().for_each(|k| drop(o.remove(*k)));
        if let Some(ps) = o.get_mut("policy_stats").and_then(Value::as_object_mut) {
            TIMING_STATS.iter().for_each(|k| drop(ps.remove(*k)));
        }
        assert!(out.insert(r.key(), v).is_none(), "{:?} stored twice", r.key());
    }
    out
}

/// The non-timing fields of `ttc summary --format json`'s groups.
fn summary(results: &str) -> Vec<Value> {
    let text = ok(ttc(&["summary", "--results", results, "--run", "r", "--format", "json"]), "summary");
    let v: Value = serde_json::from_str(&text).unwrap();
    let keep = [
        "policy", "suite", "n", "n_ok", "n_error", "error_rate", "errors_by_class", "output_tokens", "quality",
        "primary_metric", "correct_metric", "n_correct", "output_tokens_per_correct",
    ];
    v["groups"].as_array().unwrap().iter().map(|g| keep.iter().map(|k| (k.to_string(), g[*k].clone())).collect()).collect()
}

fn compare(results: &str) -> Value {
    let text = ok(
        ttc(&["compare", "--results", results, "--run", "r", "--a", "baseline", "--b", "early_exit_28", "--format", "json"]),
        "compare",
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    serde_json::json!([v["n_common"], v["quality"]])
}

#[test]
fn two_shard_processes_store_and_analyse_like_one_run() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (one.path().to_str().unwrap(), two.path().to_str().unwrap());
    ok(ttc(&[RUN, &["--results", a]].concat()), "unsharded run");
    let shard = |i: &str| {
        Command::new(env!("CARGO_BIN_EXE_ttc"))
            .args(RUN)
            .args(["--results", b, "--shard", i])
            .current_dir(repo())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (s0, s1) = (shard("0/2"), shard("1/2"));
    ok(s0.wait_with_output().unwrap(), "shard 0/2");
    let out1 = ok(s1.wait_with_output().unwrap(), "shard 1/2");
    assert!(out1.contains("when every shard of run r is"), "a shard does not summarise alone: {out1}");

    let (whole, sharded) = (records(one.path()), records(two.path()));
    assert_eq!(whole.len(), 2 * 2 * 2, "2 policies x 2 suites x 2 samples");
    assert_eq!(whole.keys().collect::<Vec<_>>(), sharded.keys().collect::<Vec<_>>(), "the same requests");
    for (k, v) in &whole {
        assert_eq!(v, &sharded[k], "{k:?}: a non-timing column differs");
    }
    let names: Vec<String> = std::fs::read_dir(two.path().join("run_id=r"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in ["_shard-0-of-2.json", "_shard-1-of-2.json"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("part-shard1of2-")), "{names:?}");

    assert_eq!(summary(a), summary(b), "summary");
    assert_eq!(compare(a), compare(b), "compare");
    let report = ok(ttc(&["report", "--results", b, "--run", "r"]), "report");
    assert!(report.contains("early_exit_28"), "{report}");
    let check = ttc(&["check", "--results", b, "--run", "r"]);
    assert!(matches!(check.status.code(), Some(0 | 1)), "check: {}", String::from_utf8_lossy(&check.stderr));

    // Shard 1's files gone: every analysis command names it and what is missing.
    let dir = two.path().join("run_id=r");
    let gone: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("1of2") || p.ends_with("_shard-1-of-2.json"))
        .collect();
    assert!(gone.iter().any(|p| p.extension().is_some_and(|e| e == "parquet")), "shard 1 wrote parts: {names:?}");
    gone.iter().for_each(|p| std::fs::remove_file(p).unwrap());
    let after = ttc_results::ResultsStore::open(two.path()).unwrap().load_run("r").unwrap().records.len();
    assert!(after < whole.len());
    let missing = format!("{} missing", whole.len() - after);
    for cmd in [&["summary"][..], &["report"], &["check"], &["compare", "--a", "baseline", "--b", "early_exit_28"]] {
        let out = ttc(&[cmd, &["--results", b, "--run", "r"]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?} on a run missing a shard: {err}");
        assert!(err.contains("shard 1/2 is missing") && err.contains(&missing), "{cmd:?}: {err}");
    }
    ok(ttc(&["summary", "--results", b, "--run", "r", "--partial"]), "summary --partial");
}
