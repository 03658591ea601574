//! The subcommands end to end through their clap definitions: outputs, exit codes and error messages.

use clap::{CommandFactory, Parser};
use std::path::Path;
use ttc_results::cmd::{check, compact, compare, report, summary, USAGE_ERROR};
use ttc_results::testutil::record;
use ttc_results::{RecordSink, ResultsStore, RunMeta, WriterOptions};
use ttc_types::{Record, RecordStatus};

#[derive(Parser, Debug)]
struct W<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

fn parse<T: clap::Args>(argv: &[&str]) -> T {
    W::<T>::try_parse_from(std::iter::once("ttc").chain(argv.iter().copied())).unwrap().args
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

fn d(tmp: &tempfile::TempDir) -> String {
    tmp.path().display().to_string()
}

#[test]
fn clap_definitions_are_consistent() {
    W::<summary::SummaryArgs>::command().debug_assert();
    W::<report::ReportArgs>::command().debug_assert();
    W::<check::CheckArgs>::command().debug_assert();
    W::<compare::CompareArgs>::command().debug_assert();
    W::<compact::CompactArgs>::command().debug_assert();
    assert!(W::<summary::SummaryArgs>::try_parse_from(["ttc", "--run", "x", "--all"]).is_err());
    assert!(W::<compare::CompareArgs>::try_parse_from(["ttc", "--a", "x", "--b", "y", "--confidence", "1.5"]).is_err());
}

#[test]
fn summary_formats() {
    let tmp = fixture_dir();
    let (code, text) = summary::execute(&parse(&["--results", &d(&tmp)])).unwrap();
    assert_eq!(code, 0);
    assert!(text.contains("baseline") && text.contains("spec") && text.contains("prune"), "{text}");
    assert!(text.contains("Pareto-optimal on crm"), "{text}");
    assert!(!text.contains("r1"), "last run only: {text}");
    assert!(text.contains("Quality on crm: mean [95% CI]") && text.contains("Quality on worf"), "{text}");
    let rouge_row = text.lines().find(|l| l.starts_with("│ rouge_l ")).unwrap();
    assert_eq!(rouge_row.matches('[').count(), 3, "one cell per policy: {rouge_row}");

    let (_, json) = summary::execute(&parse(&["--results", &d(&tmp), "--run", "r1", "--format", "json"])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["run_ids"], serde_json::json!(["r1"]));
    assert_eq!(v["groups"].as_array().unwrap().len(), 6);
    let prune = v["groups"].as_array().unwrap().iter().find(|g| g["policy"] == "prune").unwrap();
    assert_eq!(prune["n_error"], 2);

    let (_, csv) = summary::execute(&parse(&["--results", &d(&tmp), "--all", "--format", "csv"])).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 12);
    assert!(lines[0].starts_with("run_id,policy,algorithm,suite,task,n,") && lines[0].contains("rouge_l_mean"));
}

#[test]
fn bad_input_gives_clear_errors_and_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let m = missing.display().to_string();
    let err = summary::execute(&parse(&["--results", &m])).unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("missing"), "{err}");
    assert_eq!(summary::run(parse(&["--results", &m])).unwrap(), USAGE_ERROR);
    assert_eq!(check::run(parse(&["--results", &m])).unwrap(), USAGE_ERROR);
    assert_eq!(report::run(parse(&["--results", &m])).unwrap(), USAGE_ERROR);
    assert_eq!(compare::run(parse(&["--results", &m, "--a", "x", "--b", "y"])).unwrap(), USAGE_ERROR);
    assert_eq!(compact::run(parse(&["--results", &m])).unwrap(), USAGE_ERROR);

    let empty = d(&tmp);
    let err = summary::execute(&parse(&["--results", &empty])).unwrap_err().to_string();
    assert!(err.contains("no runs in results directory"), "{err}");
    let err = check::execute(&parse(&["--results", &empty])).unwrap_err().to_string();
    assert!(err.contains("no runs"), "{err}");

    let tmp = fixture_dir();
    let err = summary::execute(&parse(&["--results", &d(&tmp), "--run", "nope"])).unwrap_err().to_string();
    assert!(err.contains("run `nope` not found") && err.contains("r2, r1"), "{err}");
    let err = check::execute(&parse(&["--results", &d(&tmp), "--baseline", "nope"])).unwrap_err().to_string();
    assert!(err.contains("run `nope` not found"), "{err}");
    let err = compare::execute(&parse(&["--results", &d(&tmp), "--a", "baseline", "--b", "zzz"])).unwrap_err().to_string();
    assert!(err.contains("`zzz` is neither a policy of run `r2`") && err.contains("baseline, prune, spec"), "{err}");
    let err = compare::execute(&parse(&["--results", &d(&tmp), "--a", "baseline", "--b", "r1"])).unwrap_err().to_string();
    assert!(err.contains("cannot compare a policy with a whole run"), "{err}");
    let err = report::execute(&parse(&["--results", &d(&tmp), "--baseline-policy", "zzz"])).unwrap_err().to_string();
    assert!(err.contains("--baseline-policy `zzz`"), "{err}");
    let err = summary::execute(&parse(&["--results", &d(&tmp), "--quality-metric", "rogue"])).unwrap_err().to_string();
    assert!(err.contains("unknown metric `rogue`"), "{err}");
}

#[test]
fn malformed_kpi_file_names_file_line_and_key() {
    let tmp = fixture_dir();
    let kpis = tmp.path().join("kpis.yaml");
    std::fs::write(&kpis, "kpis:\n  - metric: e2e_s\n    stat: p95\n    op: \"<\"\n    value: 2.0\n  - metric: latncy\n    op: \"<\"\n    value: 1\n").unwrap();
    let k = kpis.display().to_string();
    let args: check::CheckArgs = parse(&["--results", &d(&tmp), "--kpis", &k]);
    let err = check::execute(&args).unwrap_err().to_string();
    assert!(err.contains(&k) && err.contains("line 6") && err.contains("key `metric`") && err.contains("latncy"), "{err}");
    assert_eq!(check::run(args).unwrap(), USAGE_ERROR);

    let missing = tmp.path().join("none.yaml").display().to_string();
    let err = check::execute(&parse(&["--results", &d(&tmp), "--kpis", &missing])).unwrap_err();
    assert!(format!("{err:#}").contains("none.yaml"), "{err:#}");
}

#[test]
fn check_exit_codes_follow_kpis_and_baseline() {
    let tmp = fixture_dir();
    let kpis = tmp.path().join("kpis.yaml");
    let k = kpis.display().to_string();
    // r2 latencies are at most 0.31 s; error rates are 0 (baseline, spec) and 2/24 (prune).
    std::fs::write(&kpis, "kpis:\n  - { metric: e2e_s, stat: p95, op: \"<\", value: 2.0 }\n  - { metric: rouge_l, op: \">\", value: 0.1 }\n").unwrap();
    let (code, text) = check::execute(&parse(&["--results", &d(&tmp), "--kpis", &k])).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("6 passed, 0 failed"), "{text}");

    std::fs::write(&kpis, "kpis:\n  - { metric: error_rate, op: \"<\", value: 0.01 }\n").unwrap();
    let (code, text) = check::execute(&parse(&["--results", &d(&tmp), "--kpis", &k])).unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL") && text.contains("2 passed, 1 failed"), "{text}");
    assert_eq!(check::run(parse(&["--results", &d(&tmp), "--kpis", &k])).unwrap(), 1);

    // r2 is 2x faster than r1: checking r1 against baseline r2 fails the p95 TTFT regression limit.
    std::fs::write(&kpis, "regressions:\n  - { metric: ttft_s, stat: p95, max_worsening_pct: 10 }\n").unwrap();
    let (code, _) = check::execute(&parse(&["--results", &d(&tmp), "--kpis", &k, "--run", "r2", "--baseline", "r1"])).unwrap();
    assert_eq!(code, 0);
    let (code, json) =
        check::execute(&parse(&["--results", &d(&tmp), "--kpis", &k, "--run", "r1", "--baseline", "r2", "--format", "json"])).unwrap();
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["baseline_run"], "r2");
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["outcome"] == "fail" && r["note"].as_str().unwrap().contains("+100.0%")));
}

#[test]
fn compare_policies_and_runs() {
    let tmp = fixture_dir();
    let (code, text) = compare::execute(&parse(&["--results", &d(&tmp), "--a", "baseline", "--b", "spec"])).unwrap();
    assert_eq!(code, 0);
    assert!(text.contains("Paired on 24 common samples"), "{text}");
    assert!(text.contains("McNemar exact binomial"), "{text}");
    let (_, json) =
        compare::execute(&parse(&["--results", &d(&tmp), "--a", "baseline", "--b", "prune", "--format", "json"])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let q = v["quality"].as_array().unwrap().iter().find(|d| d["metric"] == "mean rouge_l").unwrap();
    assert_eq!(q["verdict"], "worse");
    let p95 = v["performance"].as_array().unwrap().iter().find(|d| d["metric"] == "p95 e2e_s").unwrap();
    assert_eq!(p95["verdict"], "better");
    assert_eq!(p95["n_pairs"], 20, "errored pairs are left out of latency");

    // Two runs, paired by (policy, suite, sample); r2 is twice as fast.
    let (_, json) = compare::execute(&parse(&["--results", &d(&tmp), "--a", "r1", "--b", "r2", "--format", "json"])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["n_common"], 72);
    let p50 = v["performance"].as_array().unwrap().iter().find(|d| d["metric"] == "p50 e2e_s").unwrap();
    assert_eq!(p50["verdict"], "better");
    assert!((p50["relative_pct"].as_f64().unwrap() + 50.0).abs() < 1e-6);
    // RUN/POLICY across runs.
    let (_, text) = compare::execute(&parse(&["--results", &d(&tmp), "--a", "r1/spec", "--b", "r2/spec"])).unwrap();
    assert!(text.contains("A = r1/spec") && text.contains("B = r2/spec"), "{text}");
}

#[test]
fn report_is_derived_from_the_data() {
    let tmp = fixture_dir();
    let (_, md) = report::execute(&parse(&["--results", &d(&tmp)])).unwrap();
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
    let o = out.display().to_string();
    let (code, msg) = report::execute(&parse(&["--results", &d(&tmp), "--run", "r1", "-o", &o])).unwrap();
    assert_eq!(code, 0);
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
    let (code, text) = compact::execute(&parse(&["--results", &d(&tmp)])).unwrap();
    assert_eq!(code, 0);
    assert!(text.contains("r1: merged 4 parts (72 records)") && text.contains("r2: merged 4 parts"), "{text}");
    assert_eq!(ResultsStore::open(tmp.path()).unwrap().load_run("r1").unwrap().records, before);
    let (_, text) = compact::execute(&parse(&["--results", &d(&tmp), "--run", "r2"])).unwrap();
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
fn last_flag_is_accepted_everywhere_and_conflicts_with_run() {
    let tmp = fixture_dir();
    let (_, text) = check::execute(&parse(&["--results", &d(&tmp), "--last"])).unwrap();
    assert!(text.contains("KPI check of run r2"), "{text}");
    let (_, md) = report::execute(&parse(&["--results", &d(&tmp), "--last"])).unwrap();
    assert!(md.starts_with("# ttcbench report: run r2"));
    let (_, text) = compare::execute(&parse(&["--results", &d(&tmp), "--a", "baseline", "--b", "spec", "--last"])).unwrap();
    assert!(text.contains("A = r2/baseline"), "{text}");
    let argv = ["ttc", "--run", "r1", "--last"];
    assert!(W::<check::CheckArgs>::try_parse_from(argv).is_err());
    assert!(W::<report::ReportArgs>::try_parse_from(argv).is_err());
    assert!(W::<compare::CompareArgs>::try_parse_from(["ttc", "--a", "x", "--b", "y", "--run", "r1", "--last"]).is_err());
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
    let (_, md) = report::execute(&parse(&["--results", &d(&tmp)])).unwrap();
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
        check::execute(&parse(&["--results", &d(&tmp), "--kpis", &k, "--format", "json"]))
    };
    // A typo in `policies:` is a usage error naming the file, the entry, the filter and what the run has.
    let err = check("kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, policies: [basline] }\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err.lines().next().unwrap(),
        format!("{k}: kpis[0] (p95): `policies` names `basline`, not in run r2 (its policies: baseline, prune, spec)")
    );
    std::fs::write(&kpis, "kpis:\n  - { metric: e2e_s, op: \"<\", value: 2.0, suites: [crm, wrof], by_suite: true }\n").unwrap();
    assert_eq!(check::run(parse(&["--results", &d(&tmp), "--kpis", &k])).unwrap(), USAGE_ERROR);
    let err = check("kpis:\n  - { metric: e2e_s, op: \"<\", value: 2.0, suites: [wrof] }\nregressions:\n  - { metric: ttft_s, max_worsening_pct: 5, policies: [x] }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("kpis[0] (mean e2e_s < 2): `suites` names `wrof`, not in run r2 (its suites: crm, worf)"), "{err}");
    assert!(err.contains("regressions[0] (mean ttft_s worsens <= 5%): `policies` names `x`"), "{err}");

    // With fail_if_missing the absent policy or suite is a failed KPI (exit 1), named in the note.
    let (code, json) = check(
        "kpis:\n  - { name: p95, metric: e2e_s, stat: p95, op: \"<\", value: 2.0, policies: [spec, basline], fail_if_missing: true }\n  - { name: s, metric: e2e_s, op: \"<\", value: 2.0, suites: [wrof], by_suite: true, policies: [spec], fail_if_missing: true }\n",
    )
    .unwrap();
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
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
        let args: check::CheckArgs = parse(&["--results", &d(&tmp), "--kpis", &k]);
        let err = check::execute(&args).unwrap_err().to_string();
        assert!(err.starts_with(&k) && err.contains(&format!("key `{key}`: must be a finite number")), "{err}");
        assert!(err.contains(&format!("at line {line}")), "{err}");
        assert_eq!(check::run(args).unwrap(), USAGE_ERROR);
    }
    std::fs::write(&kpis, "slo:\n  e2e_s: .nan\nkpis:\n  - { metric: goodput, op: \">\", value: 0 }\n").unwrap();
    let err = check::execute(&parse(&["--results", &d(&tmp), "--kpis", &k])).unwrap_err().to_string();
    assert_eq!(err, format!("{k}: slo: key `e2e_s`: must be a finite number, got NaN at line 2"));
}

#[test]
fn slo_flags_reject_nan_and_infinity_naming_the_flag() {
    for (flag, value) in [("--slo-e2e", "nan"), ("--slo-ttft", "inf"), ("--slo-tpot", "-1"), ("--correct-min", "nan"), ("--correct-min", "inf")] {
        let arg = format!("{flag}={value}");
        for err in [
            W::<summary::SummaryArgs>::try_parse_from(["ttc", &arg]).unwrap_err(),
            W::<report::ReportArgs>::try_parse_from(["ttc", &arg]).unwrap_err(),
        ] {
            assert_eq!(err.exit_code(), 2);
            let msg = err.to_string();
            assert!(msg.contains(&format!("invalid value '{value}' for '{flag}")), "{msg}");
        }
    }
    let ok: summary::SummaryArgs = parse(&["--slo-e2e", "1.5", "--correct-min", "0.7"]);
    assert_eq!((ok.slo.slo_e2e, ok.slo.correct_min), (Some(1.5), 0.7));
}
