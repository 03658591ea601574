//! Bad input through the real binary: exit code 2 and one clear message naming what and where (never a
//! backtrace, even with RUST_BACKTRACE set); a failing gate is exit 1.

use std::path::Path;
use std::process::{Command, Output};
use ttc_results::testutil::record;
use ttc_results::{RecordSink, ResultsStore, RunMeta, WriterOptions};

fn ttc(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TTC_RESULTS")
        .env_remove("TTC_MODEL")
        .output()
        .expect("run ttc")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run `r1`: policies baseline and spec on suites crm and worf, 3 samples each, all fast.
fn results_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let meta = RunMeta {
        run_id: "r1".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "h".into(),
        planned: Some(12),
        project_version: "0.1.0".into(),
        extra: serde_json::json!({}),
    };
    let mut w = store.start_run(meta, WriterOptions::default()).unwrap();
    for policy in ["baseline", "spec"] {
        for suite in ["crm", "worf"] {
            for i in 0..3 {
                let mut r = record(policy, suite, &format!("{suite}-{i}"));
                r.run_id = "r1".into();
                r.e2e_s = Some(0.5);
                w.push(r).unwrap();
            }
        }
    }
    w.finish().unwrap();
    tmp
}

#[test]
fn check_refuses_filters_matching_nothing_and_non_finite_thresholds() {
    let tmp = results_dir();
    let res = tmp.path().to_str().unwrap();
    let kpis = tmp.path().join("kpis.yaml");
    let k = kpis.to_str().unwrap();
    let check = |yaml: &str| {
        std::fs::write(&kpis, yaml).unwrap();
        ttc(&["check", "--results", res, "--kpis", k], tmp.path())
    };

    let o = check("kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, policies: [basline] }\n");
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert_eq!(
        stderr(&o).lines().next().unwrap(),
        format!("error: {k}: kpis[0] (p95): `policies` names `basline`, not in run r1 (its policies: baseline, spec)")
    );
    let o = check("kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, suites: [wrof] }\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`suites` names `wrof`, not in run r1 (its suites: crm, worf)"), "{}", stderr(&o));

    let o = check(
        "kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, policies: [basline], fail_if_missing: true }\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("policy `basline` is not in the run") && out.contains("0 passed, 1 failed, 0 skipped: FAIL"), "{out}");

    let o = check("kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0 }\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = check("kpis:\n  - metric: e2e_s\n    op: \"<\"\n    value: .nan\n");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("error: {k}: kpis: key `value`: must be a finite number, got NaN at line 4")), "{err}");
}

#[test]
fn score_usage_errors_exit_2_and_a_byte_order_mark_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("preds.jsonl");
    let i = input.to_str().unwrap();
    let score = |extra: &[&str]| {
        let mut args = vec!["score", "--input", i, "--embedder", "hash", "--offline", "--metrics", "exact_match", "--json"];
        args.extend_from_slice(extra);
        ttc(&args, tmp.path())
    };
    std::fs::write(&input, "\u{feff}{\"prediction\": \"a\", \"reference\": \"a\"}\n").unwrap();
    let o = score(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(first, serde_json::json!({"id": null, "line": 1, "metrics": {"exact_match": 1.0}}));

    let o = score(&["--suite", "worfbnech"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "error: --suite worfbnech: expected crmarena, crmarena_pro, worfbench or generic\n");

    std::fs::write(&input, b"{\"prediction\": \"a\", \"reference\": \"a\"}\n{\"prediction\": \"caf\xE9\", \"reference\": \"a\"}\n").unwrap();
    let o = score(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), format!("error: {i}:2: not valid UTF-8 (byte 20 of the line is 0xE9); save the file as UTF-8\n"));

    let o = ttc(&["score", "--input", "missing.jsonl", "--embedder", "hash"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: cannot read missing.jsonl: "), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn run_dry_run_creates_nothing_and_zero_samples_names_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let r = res.to_str().unwrap();
    let o = ttc(&["run", "--dry-run", "--suites", "crmarena", "--samples", "1", "--results", r], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("planned: 1"), "{}", stdout(&o));
    assert!(!res.exists(), "--dry-run created {}", res.display());

    let o = ttc(&["run", "--dry-run", "--samples", "0", "--results", r], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "error: --samples: invalid value 0: expected an integer >= 1\n");
    std::fs::write(tmp.path().join("run.yaml"), "suites:\n  - {name: crmarena, samples: 0}\n").unwrap();
    let o = ttc(&["run", "--dry-run", "--config", "run.yaml", "--results", r], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "error: run.yaml:2:5: suites[0].samples: invalid value 0: expected an integer >= 1\n");
    assert!(!res.exists());
}

/// The search's prefix cache starts after the plan, but a bound below one block (1.4 MiB for this model) is
/// refused once the model is loaded, before any request: exit 2, the key named, nothing stored.
#[test]
fn a_capacity_prefix_cache_below_one_block_is_refused_before_the_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    std::fs::write(
        tmp.path().join("run.yaml"),
        "suites: [{name: worfbench, samples: 1}]\ncapacity: {suites: [worfbench], prefix_cache_mb: 1}\n",
    )
    .unwrap();
    let o = ttc(&["run", "--config", "run.yaml", "--results", res.to_str().unwrap(), "--quiet"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let last = stderr(&o).lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: capacity.prefix_cache_mb: ") && last.contains("below one block"), "{}", stderr(&o));
    assert!(!res.exists() || std::fs::read_dir(&res).unwrap().next().is_none(), "nothing stored");
}

#[test]
fn non_finite_slo_flags_are_usage_errors_naming_the_flag() {
    let tmp = results_dir();
    let res = tmp.path().to_str().unwrap();
    for (cmd, flag) in [("summary", "--slo-e2e"), ("report", "--correct-min"), ("summary", "--slo-ttft")] {
        let o = ttc(&[cmd, "--results", res, flag, "nan"], tmp.path());
        assert_eq!(o.status.code(), Some(2), "{cmd} {flag}");
        assert!(stderr(&o).starts_with(&format!("error: invalid value 'nan' for '{flag} ")), "{}", stderr(&o));
    }
}

#[test]
fn truncated_gguf_is_one_clear_error_exit_2() {
    let model = ttc_assets::locate(ttc_assets::smollm2_gguf()).expect("the model (run `ttc model pull`)");
    let real = std::fs::read(model).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Cut inside the metadata (candle's parser fails) and inside the tensor data (our size check fails).
    for (name, len) in [("header.gguf", 200), ("third.gguf", real.len() / 3)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, &real[..len]).unwrap();
        let p = path.to_str().unwrap();
        let o = ttc(&["tokenize", "--model", p, "hi"], tmp.path());
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with(&format!("error: {p} is truncated or corrupt: ")), "{err}");
        assert_eq!(lines.len(), 2, "the error and its fix, no backtrace: {err}");
        assert!(lines[1].contains("ttc model pull"), "{err}");
    }
}

#[test]
fn malformed_cost_block_and_logprob_counts_are_usage_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("results");
    let r = r.to_str().unwrap();
    for (yaml, want) in [
        ("cost:\n  usd_per_hour: -1\n", "run.yaml:2:3: cost.usd_per_hour: invalid value -1"),
        ("cost:\n  usd_per_1m_input: 0.1\n", "run.yaml:1:1: cost: usd_per_1m_output is missing"),
        ("generation:\n  logprobs: 21\n", "run.yaml:2:3: generation.logprobs: invalid value 21"),
    ] {
        std::fs::write(tmp.path().join("run.yaml"), yaml).unwrap();
        let o = ttc(&["run", "--dry-run", "--config", "run.yaml", "--results", r], tmp.path());
        assert_eq!(o.status.code(), Some(2), "{yaml}: {}", stderr(&o));
        assert!(stderr(&o).starts_with(&format!("error: {want}")), "{yaml}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    // `ttc generate --logprobs K`: K in 0..=20, checked before the model loads.
    for k in ["21", "-1"] {
        let o = ttc(&["generate", "--prompt", "hi", "--json", "--logprobs", k], tmp.path());
        assert_eq!(o.status.code(), Some(2), "--logprobs {k}: {}", stderr(&o));
        assert!(stderr(&o).contains("--logprobs"), "{}", stderr(&o));
    }
}

/// The rule of `crates/cli/src/exit.rs`, one command of each class: 0 done, 1 a failing gate or a runtime failure,
/// 2 bad flags or bad input, whichever library the error comes from.
#[test]
fn one_exit_code_rule_across_commands() {
    let tmp = results_dir();
    let res = tmp.path().to_str().unwrap();
    let missing = tmp.path().join("missing");
    let m = missing.to_str().unwrap();
    let code = |args: &[&str]| ttc(args, tmp.path()).status.code();

    assert_eq!(code(&["summary", "--results", res]), Some(0));
    assert_eq!(code(&["compare", "--results", res, "--a", "baseline", "--b", "spec"]), Some(0));
    // A failing gate: the run's 0.5 s latencies against a 0.1 s bound.
    let kpis = tmp.path().join("strict.yaml");
    std::fs::write(&kpis, "kpis:\n  - { metric: e2e_s, stat: p95, op: \"<\", value: 0.1 }\n").unwrap();
    assert_eq!(code(&["check", "--results", res, "--kpis", kpis.to_str().unwrap()]), Some(1));

    // Bad input, from each library: the results store, the eval suites, the run config, the server's flags.
    for args in [
        &["summary", "--results", m][..],
        &["report", "--results", m],
        &["compare", "--results", m, "--a", "x", "--b", "y"],
        &["compact", "--results", m],
        &["route", "fit", "--results", res, "--holdout", "1.5"],
        &["suites", "--data-dir", m],
        &["run", "--dry-run", "--policies", "nope", "--results", m],
        &["serve", "--api-key", "", "--model", m, "--port", "0"],
    ] {
        let o = ttc(args, tmp.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{args:?}: {}", stderr(&o));
    }
    // An embedder that is not in the cache, with --offline: fixable by the user like a missing model file.
    std::fs::write(tmp.path().join("p.jsonl"), "{\"prediction\": \"a\", \"reference\": \"a\"}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(["score", "--input", "p.jsonl", "--embedder", "minilm", "--offline", "--metrics", "semantic_similarity"])
        .current_dir(tmp.path())
        .env("TTC_HOME", tmp.path().join("empty-cache"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not in the cache"), "{}", stderr(&o));
    // Flags clap cannot parse.
    assert_eq!(code(&["score", "--input", "p.jsonl", "--seed", "x"]), Some(2));
    assert_eq!(code(&["summary", "--results", res, "--format", "xml"]), Some(2));

    // A runtime failure: the dashboard's port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = ttc(&["dashboard", "--results", res, "--port", &port], tmp.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("binding 127.0.0.1:"), "{}", stderr(&o));
}
