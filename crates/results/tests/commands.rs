//! The subcommands end to end through their option structs: outputs, gate verdicts and error messages. (Their
//! flags are tested in `ttc-cli`.)

use std::path::Path;
use ttc_results::cmd::{check, compact, compare, report, summary, TableFormat, TableOrJson};
use ttc_results::testutil::record;
use ttc_results::{
    CheckOptions, CompactOptions, CompareOptions, RecordSink, ReportCommandOptions, ResultsStore, RunMeta, RunSelection,
    SummaryOptions, WriterOptions,
};
use ttc_types::{Record, RecordStatus};

fn summary_of(dir: &Path) -> SummaryOptions {
    SummaryOptions { results: dir.into(), ..Default::default() }
}

fn report_of(dir: &Path) -> ReportCommandOptions {
    ReportCommandOptions { results: dir.into(), ..Default::default() }
}

fn check_of(dir: &Path, kpis: &Path) -> CheckOptions {
    CheckOptions { results: dir.into(), kpis: Some(kpis.into()), ..Default::default() }
}

fn compare_of(dir: &Path, a: &str, b: &str) -> CompareOptions {
    CompareOptions { results: dir.into(), ..CompareOptions::new(a, b) }
}

/// Three policies x 2 suites x 12 samples; `spec` is faster and as good, `prune` fast but worse, and fails
/// on 2 samples.
fn run_records(run_id: &str, latency_scale: f64) -> Vec<Record> {
    let mut out = Vec::new();
    let mut t = 0.0;
    for suite in ["crm", "worf"] {
        for i in 0..12 {
            for (policy, speed, quality) in [("baseline", 1.0, 0.0), ("spec", 0.6, 0.0), ("prune", 0.4, -0.3)] {
                let mut r = record(policy, suite, &format!("{suite}-{i}"));
                r.run_id = run_id.into();
                r.start_offset_s = t;
                t += 0.05;
                let e2e = (0.2 + 0.01 * i as f64) * speed * latency_scale;
                r.e2e_s = Some(e2e);
                r.ttft_s = Some(e2e / 4.0);
                r.output_tokens = Some(32);
                r.throughput_tok_s = Some(32.0 / e2e);
                r.metrics.insert("rouge_l".into(), (0.5 + 0.02 * i as f64 + quality).clamp(0.0, 1.0));
                r.metrics.insert("exact_match".into(), if i % 3 == 0 { 1.0 } else { 0.0 });
                if policy == "prune" && i < 2 {
                    r.status = RecordStatus::Error;
                    r.error_class = Some("timeout".into());
                    r.e2e_s = None;
                }
                out.push(r);
            }
        }
    }
    out
}

fn write(dir: &Path, run_id: &str, started: &str, records: Vec<Record>) {
    let store = ResultsStore::create(dir).unwrap();
    let meta = RunMeta {
        run_id: run_id.into(),
        started_at: started.into(),
        config_hash: "h".into(),
        planned: Some(records.len() as u64),
        project_version: "0.1.0".into(),
        extra: serde_json::json!({"concurrency": 4}),
    };
    let mut w = store.start_run(meta, WriterOptions { flush_records: 20, ..Default::default() }).unwrap();
    for r in records {
        w.push(r).unwrap();
    }
    w.finish().unwrap();
}

fn fixture_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "r1", "2025-01-01T00:00:00Z", run_records("r1", 2.0));
    write(tmp.path(), "r2", "2025-01-02T00:00:00Z", run_records("r2", 1.0));
    tmp
}


#[test]
fn summary_formats() {
    let tmp = fixture_dir();
    let text = summary::execute(&summary_of(tmp.path())).unwrap();
    assert!(text.contains("baseline") && text.contains("spec") && text.contains("prune"), "{text}");
    assert!(text.contains("Pareto-optimal on crm"), "{text}");
    assert!(!text.contains("r1"), "last run only: {text}");
    assert!(text.contains("Quality on crm: mean [95% CI]") && text.contains("Quality on worf"), "{text}");
    let rouge_row = text.lines().find(|l| l.starts_with("│ rouge_l ")).unwrap();
    assert_eq!(rouge_row.matches('[').count(), 3, "one cell per policy: {rouge_row}");

    let json = summary::execute(&SummaryOptions {
        selection: RunSelection::Run("r1".into()),
        format: TableFormat::Json,
        ..summary_of(tmp.path())
    })
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["run_ids"], serde_json::json!(["r1"]));
    assert_eq!(v["groups"].as_array().unwrap().len(), 6);
    let prune = v["groups"].as_array().unwrap().iter().find(|g| g["policy"] == "prune").unwrap();
    assert_eq!(prune["n_error"], 2);

    let csv = summary::execute(&SummaryOptions { selection: RunSelection::All, format: TableFormat::Csv, ..summary_of(tmp.path()) })
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 12);
    assert!(lines[0].starts_with("run_id,policy,algorithm,suite,task,n,") && lines[0].contains("rouge_l_mean"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let err = summary::execute(&summary_of(&missing)).unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("missing"), "{err}");
    assert!(check::execute(&CheckOptions { results: missing.clone(), ..Default::default() }).is_err());
    assert!(report::execute(&report_of(&missing)).is_err());
    assert!(compare::execute(&compare_of(&missing, "x", "y")).is_err());
    assert!(compact::execute(&CompactOptions { results: missing.clone(), run: None }).is_err());

    let empty = tmp.path();
    let err = summary::execute(&summary_of(empty)).unwrap_err().to_string();
    assert!(err.contains("no runs in results directory"), "{err}");
    let err = check::execute(&CheckOptions { results: empty.into(), ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("no runs"), "{err}");

    let tmp = fixture_dir();
    let dir = tmp.path();
    let err = summary::execute(&SummaryOptions { selection: RunSelection::Run("nope".into()), ..summary_of(dir) }).unwrap_err().to_string();
    assert!(err.contains("run `nope` not found") && err.contains("r2, r1"), "{err}");
    let err = check::execute(&CheckOptions { results: dir.into(), baseline: Some("nope".into()), ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(err.contains("run `nope` not found"), "{err}");
    let err = compare::execute(&compare_of(dir, "baseline", "zzz")).unwrap_err().to_string();
    assert!(err.contains("`zzz` is neither a policy of run `r2`") && err.contains("baseline, prune, spec"), "{err}");
    let err = compare::execute(&compare_of(dir, "baseline", "r1")).unwrap_err().to_string();
    assert!(err.contains("cannot compare a policy with a whole run"), "{err}");
    let err = report::execute(&ReportCommandOptions { baseline_policy: Some("zzz".into()), ..report_of(dir) }).unwrap_err().to_string();
    assert!(err.contains("--baseline-policy `zzz`"), "{err}");
    let mut opts = summary_of(dir);
    opts.slo.quality_metric = Some("rogue".into());
    let err = summary::execute(&opts).unwrap_err().to_string();
    assert!(err.contains("unknown metric `rogue`"), "{err}");
}

#[test]
fn malformed_kpi_file_names_file_line_and_key() {
    let tmp = fixture_dir();
    let kpis = tmp.path().join("kpis.yaml");
    std::fs::write(&kpis, "kpis:\n  - metric: e2e_s\n    stat: p95\n    op: \"<\"\n    value: 2.0\n  - metric: latncy\n    op: \"<\"\n    value: 1\n").unwrap();
    let k = kpis.display().to_string();
    let err = check::execute(&check_of(tmp.path(), &kpis)).unwrap_err().to_string();
    assert!(err.contains(&k) && err.contains("line 6") && err.contains("key `metric`") && err.contains("latncy"), "{err}");

    let missing = tmp.path().join("none.yaml");
    let err = check::execute(&check_of(tmp.path(), &missing)).unwrap_err();
    assert!(format!("{err:#}").contains("none.yaml"), "{err:#}");
}

#[test]
fn check_verdicts_follow_kpis_and_baseline() {
    let tmp = fixture_dir();
    let kpis = tmp.path().join("kpis.yaml");
    let check = || check_of(tmp.path(), &kpis);
    // r2 latencies are at most 0.31 s; error rates are 0 (baseline, spec) and 2/24 (prune).
    std::fs::write(&kpis, "kpis:\n  - { metric: e2e_s, stat: p95, op: \"<\", value: 2.0 }\n  - { metric: rouge_l, op: \">\", value: 0.1 }\n").unwrap();
    let out = check::execute(&check()).unwrap();
    assert!(out.passed, "{}", out.text);
    assert!(out.text.contains("6 passed, 0 failed"), "{}", out.text);

    std::fs::write(&kpis, "kpis:\n  - { metric: error_rate, op: \"<\", value: 0.01 }\n").unwrap();
    let out = check::execute(&check()).unwrap();
    assert!(!out.passed, "{}", out.text);
    assert!(out.text.contains("FAIL") && out.text.contains("2 passed, 1 failed"), "{}", out.text);

    // r2 is 2x faster than r1: checking r1 against baseline r2 fails the p95 TTFT regression limit.
    std::fs::write(&kpis, "regressions:\n  - { metric: ttft_s, stat: p95, max_worsening_pct: 10 }\n").unwrap();
    let out = check::execute(&CheckOptions { run: Some("r2".into()), baseline: Some("r1".into()), ..check() }).unwrap();
    assert!(out.passed);
    let out = check::execute(&CheckOptions { run: Some("r1".into()), baseline: Some("r2".into()), format: TableOrJson::Json, ..check() })
        .unwrap();
    assert!(!out.passed);
    let v: serde_json::Value = serde_json::from_str(&out.text).unwrap();
    assert_eq!(v["baseline_run"], "r2");
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["outcome"] == "fail" && r["note"].as_str().unwrap().contains("+100.0%")));
}

#[test]
fn compare_policies_and_runs() {
    let tmp = fixture_dir();
    let json = |a: &str, b: &str| compare::execute(&CompareOptions { format: TableOrJson::Json, ..compare_of(tmp.path(), a, b) }).unwrap();
    let text = compare::execute(&compare_of(tmp.path(), "baseline", "spec")).unwrap();
    assert!(text.contains("Paired on 24 common samples"), "{text}");
    assert!(text.contains("McNemar exact binomial"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&json("baseline", "prune")).unwrap();
    let q = v["quality"].as_array().unwrap().iter().find(|d| d["metric"] == "mean rouge_l").unwrap();
    assert_eq!(q["verdict"], "worse");
    let p95 = v["performance"].as_array().unwrap().iter().find(|d| d["metric"] == "p95 e2e_s").unwrap();
    assert_eq!(p95["verdict"], "better");
    assert_eq!(p95["n_pairs"], 20, "errored pairs are left out of latency");

    // Two runs, paired by (policy, suite, sample); r2 is twice as fast.
    let v: serde_json::Value = serde_json::from_str(&json("r1", "r2")).unwrap();
    assert_eq!(v["n_common"], 72);
    let p50 = v["performance"].as_array().unwrap().iter().find(|d| d["metric"] == "p50 e2e_s").unwrap();
    assert_eq!(p50["verdict"], "better");
    assert!((p50["relative_pct"].as_f64().unwrap() + 50.0).abs() < 1e-6);
    // RUN/POLICY across runs.
    let text = compare::execute(&compare_of(tmp.path(), "r1/spec", "r2/spec")).unwrap();
    assert!(text.contains("A = r1/spec") && text.contains("B = r2/spec"), "{text}");
}

#[test]
fn report_is_derived_from_the_data() {
    let tmp = fixture_dir();
    let md = report::execute(&report_of(tmp.path())).unwrap();
    for section in ["## Executive summary", "## System and run settings", "## Results", "## Key findings",
        "## Latency, throughput and quality trade-offs", "## KPI status", "## Recommendations"] {
        assert!(md.contains(section), "missing {section}");
    }
    // prune is the fastest on both suites; baseline and spec share the best quality; prune fails error rate.
    assert!(md.contains("Suite `crm`: fastest (p95 E2E) is **prune**"), "{md}");
    assert!(md.contains("highest throughput is **prune**"), "{md}");
    // Busy-span throughput: prune's 301.9 tok/s passes the 300 floor; only its error rate fails.
    assert!(md.contains("**prune** fails error rate (0.167 vs < 0.01)"), "{md}");
    assert!(md.contains("| output throughput | prune | all | output_tok_s | 301.8868 | > 300 | **PASS** |"), "{md}");
    assert!(md.contains("best rouge_l is **spec**"), "tie on quality goes to the faster policy: {md}");
    assert!(md.contains("Investigate `timeout` errors of **prune**"), "{md}");
    // spec is faster than baseline at equal quality: the latency-first recommendation that keeps quality.
    assert!(
        md.contains("latency first: use **spec**, p95 E2E 182.7 ms (vs `baseline`: -40.0% p95 latency, significant; quality no significant difference)"),
        "{md}"
    );
    assert!(md.contains("**baseline** is dominated by **spec** (p95 182.7 vs 304.5 ms, quality 0.610 vs 0.610); drop or retune it."), "{md}");
    assert_eq!(md.matches("<svg").count(), 2 + 2, "2 scatters + throughput + TTFT");
    assert!(md.contains("`{\"concurrency\":4}`"), "manifest settings shown");

    let out = tmp.path().join("report.html");
    let msg = report::execute(&ReportCommandOptions { run: Some("r1".into()), output: Some(out.clone()), ..report_of(tmp.path()) }).unwrap();
    assert!(msg.contains("report.html"));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("<strong>prune</strong>") && html.contains("<h2>KPI status</h2>"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
}

#[test]
fn compact_command_merges_every_run() {
    let tmp = fixture_dir();
    let before = ResultsStore::open(tmp.path()).unwrap().load_run("r1").unwrap().records;
    let text = compact::execute(&CompactOptions { results: tmp.path().into(), run: None }).unwrap();
    assert!(text.contains("r1: merged 4 parts (72 records)") && text.contains("r2: merged 4 parts"), "{text}");
    assert_eq!(ResultsStore::open(tmp.path()).unwrap().load_run("r1").unwrap().records, before);
    let text = compact::execute(&CompactOptions { results: tmp.path().into(), run: Some("r2".into()) }).unwrap();
    assert!(text.contains("r2: nothing to merge (72 records)"), "{text}");
}

#[test]
fn shipped_kpi_file_is_valid_and_matches_the_specification() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/kpis.yaml");
    let file = ttc_results::kpi::KpiFile::load(&path).unwrap();
    let defaults = ttc_results::kpi::KpiFile::defaults();
    // The specification's gates, the load ones at load (issue 16): capacity at the named SLO and throughput at that
    // capacity instead of one stream's latency and throughput; quality and errors as the built-in defaults.
    let names: Vec<&str> = file.kpis.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        ["sustains 100 RPS at p95 < 2 s", "p95 latency at capacity", "output throughput at capacity", "ROUGE-L", "error rate"]
    );
    assert_eq!(file.kpis[0].slo.as_deref(), Some("p95_e2e_s<=2,error_rate<0.01"));
    assert_eq!(file.kpis[2].load, Some(ttc_results::kpi::LoadSelector::Capacity));
    assert_eq!(&file.kpis[3..], &defaults.kpis[2..], "configs/kpis.yaml keeps the specification's quality and error gates");
    assert_eq!(file.slo, ttc_results::analysis::Slo::default());
    assert_eq!(file.regressions.len(), 3);
}

#[test]
fn without_a_run_the_last_run_is_used() {
    let tmp = fixture_dir();
    let text = check::execute(&CheckOptions { results: tmp.path().into(), ..Default::default() }).unwrap().text;
    assert!(text.contains("KPI check of run r2"), "{text}");
    let md = report::execute(&report_of(tmp.path())).unwrap();
    assert!(md.starts_with("# ttcbench report: run r2"));
    let text = compare::execute(&compare_of(tmp.path(), "baseline", "spec")).unwrap();
    assert!(text.contains("A = r2/baseline"), "{text}");
}

#[test]
fn report_does_not_overstate_differences_on_few_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rs = Vec::new();
    for (policy, lat) in [("baseline", [1.0, 2.0, 3.0]), ("other", [0.9, 2.1, 2.8])] {
        for (i, l) in lat.iter().enumerate() {
            let mut r = record(policy, "qa", &format!("s{i}"));
            r.start_offset_s = i as f64;
            r.e2e_s = Some(*l);
            rs.push(r);
        }
    }
    write(tmp.path(), "run-1", "2025-01-01T00:00:00Z", rs);
    let md = report::execute(&report_of(tmp.path())).unwrap();
    assert!(
        md.contains("**baseline** is dominated by **other** (p95 2730.0 vs 2900.0 ms, quality 0.500 vs 0.500); on point estimates only: the paired differences are not significant with 3 samples."),
        "{md}"
    );
    assert!(md.contains("-5.9% p95 latency, not significant with 3 pairs"), "{md}");
}

#[test]
fn kpi_filters_naming_what_the_run_lacks_never_pass() {
    let tmp = fixture_dir();
    let kpis = tmp.path().join("kpis.yaml");
    let k = kpis.display().to_string();
    let check = |yaml: &str| {
        std::fs::write(&kpis, yaml).unwrap();
        check::execute(&CheckOptions { format: TableOrJson::Json, ..check_of(tmp.path(), &kpis) })
    };
    // A typo in `policies:` is a usage error naming the file, the entry, the filter and what the run has.
    let err = check("kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, policies: [basline] }\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err.lines().next().unwrap(),
        format!("{k}: kpis[0] (p95): `policies` names `basline`, not in run r2 (its policies: baseline, prune, spec)")
    );
    assert!(check("kpis:\n  - { metric: e2e_s, op: \"<\", value: 2.0, suites: [crm, wrof], by_suite: true }\n").is_err());
    let err = check("kpis:\n  - { metric: e2e_s, op: \"<\", value: 2.0, suites: [wrof] }\nregressions:\n  - { metric: ttft_s, max_worsening_pct: 5, policies: [x] }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("kpis[0] (mean e2e_s < 2): `suites` names `wrof`, not in run r2 (its suites: crm, worf)"), "{err}");
    assert!(err.contains("regressions[0] (mean ttft_s worsens <= 5%): `policies` names `x`"), "{err}");

    // With fail_if_missing the absent policy or suite is a failed KPI (exit 1), named in the note.
    let out = check(
        "kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, policies: [spec, basline], fail_if_missing: true }\n  - { name: s, metric: e2e_s, op: \"<\", value: 2.0, suites: [wrof], by_suite: true, policies: [spec], fail_if_missing: true }\n",
    )
    .unwrap();
    assert!(!out.passed);
    let v: serde_json::Value = serde_json::from_str(&out.text).unwrap();
    let rows: Vec<(String, String, String, String)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            (s("kpi"), s("policy"), s("outcome"), s("note"))
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
    assert_eq!(
        rows,
        vec![
            row("p95", "basline", "fail", "policy `basline` is not in the run"),
            row("p95", "spec", "pass", "-"),
            row("s", "spec", "fail", "suite `wrof` is not in the run"),
        ]
    );
}

#[test]
fn kpi_thresholds_must_be_finite() {
    let tmp = fixture_dir();
    let kpis = tmp.path().join("kpis.yaml");
    let k = kpis.display().to_string();
    for (yaml, key, line) in [
        ("kpis:\n  - metric: e2e_s\n    op: \"<\"\n    value: .nan\n", "value", 4),
        ("kpis:\n  - metric: e2e_s\n    op: \">\"\n    value: -.inf\n", "value", 4),
        ("regressions:\n  - metric: e2e_s\n    max_worsening_pct: .inf\n", "max_worsening_pct", 3),
    ] {
        std::fs::write(&kpis, yaml).unwrap();
        let err = check::execute(&check_of(tmp.path(), &kpis)).unwrap_err().to_string();
        assert!(err.starts_with(&k) && err.contains(&format!("key `{key}`: must be a finite number")), "{err}");
        assert!(err.contains(&format!("at line {line}")), "{err}");
    }
    std::fs::write(&kpis, "slo:\n  e2e_s: .nan\nkpis:\n  - { metric: goodput, op: \">\", value: 0 }\n").unwrap();
    let err = check::execute(&check_of(tmp.path(), &kpis)).unwrap_err().to_string();
    // file: key path: message at line:column (serde_yaml's location of the value).
    assert_eq!(err, format!("{k}: slo.e2e_s: must be a finite number, got NaN at line 2 column 10"));
}
