//! Aggregates, goodput, Pareto, KPIs and paired comparison on fixtures with hand-computed answers.

use ttc_results::analysis::{summarize, AnalysisConfig, Slo};
use ttc_results::compare::{compare, Verdict};
use ttc_results::kpi::{evaluate, KpiFile, Outcome};
use ttc_stats::{BootstrapConfig, McNemarMethod};
use ttc_results::testutil::record;
use ttc_types::{PolicyStats, Record, RecordStatus};

/// Policy `baseline` on suite `qa`: E2E [1, 2, 3, 4, 10] s, starts [0, 1, 2, 3, 4] s, tokens 10..50, ROUGE-L
/// [0.9, 0.6, 0.5, 0.4, 0.2], plus one timeout. Policy `fast`: the same samples at half the latency and
/// lower quality. Policy `slow_bad`: slower and worse than baseline (dominated).
fn fixture() -> Vec<Record> {
    let mut out = Vec::new();
    let e2e = [1.0, 2.0, 3.0, 4.0, 10.0];
    let rouge = [0.9, 0.6, 0.5, 0.4, 0.2];
    for (policy, scale, dq) in [("baseline", 1.0, 0.0), ("fast", 0.5, -0.1), ("slow_bad", 2.0, -0.2)] {
        for i in 0..5 {
            let mut r = record(policy, "qa", &format!("s{i}"));
            r.start_offset_s = i as f64;
            r.e2e_s = Some(e2e[i] * scale);
            r.ttft_s = Some(0.1 * (i + 1) as f64 * scale);
            r.tpot_s = Some(0.01 * (i + 1) as f64);
            r.output_tokens = Some(10 * (i as u32 + 1));
            r.throughput_tok_s = Some(10.0 * (i + 1) as f64 / (e2e[i] * scale));
            r.metrics.insert("rouge_l".into(), rouge[i] + dq);
            r.metrics.insert("exact_match".into(), if i == 0 { 1.0 } else { 0.0 });
            if policy == "fast" {
                r.policy_stats = PolicyStats { acceptance_rate: Some(0.5 + 0.1 * i as f64), ..Default::default() };
            }
            out.push(r);
        }
        let mut err = record(policy, "qa", "s5");
        err.status = RecordStatus::Error;
        err.error_class = Some("timeout".into());
        err.e2e_s = None;
        err.ttft_s = None;
        err.output_tokens = None;
        err.metrics.clear();
        err.start_offset_s = 100.0; // no e2e: must not stretch the throughput span
        out.push(err);
    }
    out
}

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("value present");
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn aggregate_throughput_counts_only_the_time_a_policy_had_requests_in_flight() {
    // Two policies interleaved one request at a time (a 1 s request each, alternating), then a third running 4
    // requests concurrently over [20, 22]: the sequential policies are busy 3 s each, not the 6 s their requests
    // are spread over; the concurrent one is busy 2 s.
    let mut recs = Vec::new();
    for i in 0..6 {
        let mut r = record(if i % 2 == 0 { "a" } else { "b" }, "qa", &format!("s{i}"));
        r.start_offset_s = i as f64;
        r.e2e_s = Some(1.0);
        r.output_tokens = Some(10);
        recs.push(r);
    }
    for i in 0..4 {
        let mut r = record("c", "qa", &format!("s{i}"));
        r.start_offset_s = 20.0 + 0.1 * i as f64;
        r.e2e_s = Some(2.0 - 0.1 * i as f64);
        r.output_tokens = Some(10);
        recs.push(r);
    }
    let s = summarize(&recs, &AnalysisConfig::default());
    let g = |p: &str| s.groups.iter().find(|g| g.policy == p).unwrap().clone();
    close(g("a").span_s, 3.0);
    close(g("a").output_tok_s, 30.0 / 3.0);
    close(g("b").span_s, 3.0);
    close(g("c").span_s, 2.0);
    close(g("c").output_tok_s, 40.0 / 2.0);
    // Overlapping, nested and disjoint intervals.
    let mut iv = [(5.0, 6.0), (0.0, 2.0), (1.0, 1.5), (1.8, 3.0), (10.0, 10.0)];
    assert!((ttc_results::analysis::busy_span(&mut iv) - 4.0).abs() < 1e-12);
}

#[test]
fn group_aggregates_match_hand_computation() {
    let s = summarize(&fixture(), &AnalysisConfig::default());
    assert_eq!(s.groups.len(), 3);
    let g = s.groups.iter().find(|g| g.policy == "baseline").unwrap();
    assert_eq!((g.n, g.n_ok, g.n_error), (6, 5, 1));
    assert!((g.error_rate - 1.0 / 6.0).abs() < 1e-12);
    assert_eq!(g.errors_by_class["timeout"], 1);
    // numpy.percentile([1, 2, 3, 4, 10], [50, 95, 99]) = [3.0, 8.8, 9.76]
    close(g.e2e_s.p50, 3.0);
    close(g.e2e_s.p95, 8.8);
    close(g.e2e_s.p99, 9.76);
    close(g.e2e_s.mean, 4.0);
    close(g.ttft_s.p50, 0.3);
    close(g.tpot_s.mean, 0.03);
    // Ends = start + e2e = [1, 3, 5, 7, 14]: span 14 s, 150 tokens.
    close(g.span_s, 14.0);
    close(g.output_tok_s, 150.0 / 14.0);
    close(g.request_rate, 5.0 / 14.0);
    // Per-request throughput mean of 10/1, 20/2, 30/3, 40/4, 50/10.
    close(g.output_tok_s_per_request, (10.0 + 10.0 + 10.0 + 10.0 + 5.0) / 5.0);
    // SLO E2E <= 2 s: 2 requests; correct (rouge_l >= 0.5) among them: both (0.9, 0.6).
    close(g.goodput, 2.0 / 14.0);
    close(g.quality_goodput, 2.0 / 14.0);
    assert!((g.slo_attainment - 2.0 / 6.0).abs() < 1e-12);
    assert_eq!(g.primary_metric.as_deref(), Some("rouge_l"));
    let q = g.quality["rouge_l"];
    assert!((q.value - 0.52).abs() < 1e-12 && q.lo <= 0.52 && 0.52 <= q.hi && q.lo >= 0.2 && q.hi <= 0.9);
    assert_eq!(q.n, 5, "errored record has no rouge_l and is not averaged");

    let fast = s.groups.iter().find(|g| g.policy == "fast").unwrap();
    close(fast.internals.get("acceptance_rate").copied(), 0.7);
    // fast: E2E [0.5, 1, 1.5, 2, 5] -> 4 within 2 s; correct ones: rouge 0.8, 0.5, 0.4, 0.3 -> 2 >= 0.5.
    // Busy span: intervals [0, 0.5], [1, 2], [2, 3.5], [3, 5], [4, 9] cover 0.5 + 8 s (idle in (0.5, 1)).
    let fast_span = 0.5 + 8.0;
    close(fast.goodput, 4.0 / fast_span);
    close(fast.quality_goodput, 2.0 / fast_span);
}

#[test]
fn pareto_front_and_strict_slo() {
    let s = summarize(&fixture(), &AnalysisConfig::default());
    let front: Vec<(&str, bool)> = s.groups.iter().map(|g| (g.policy.as_str(), g.pareto_optimal)).collect();
    assert_eq!(front, vec![("baseline", true), ("fast", true), ("slow_bad", false)]);
    assert_eq!(s.pareto.len(), 1);
    assert_eq!(s.pareto[0].policies, vec!["baseline", "fast"]);
    assert_eq!(s.pareto[0].metric.as_deref(), Some("rouge_l"));

    let cfg = AnalysisConfig { slo: Slo { ttft_s: Some(0.15), e2e_s: None, ..Slo::default() }, ..Default::default() };
    let s = summarize(&fixture(), &cfg);
    let g = s.groups.iter().find(|g| g.policy == "baseline").unwrap();
    close(g.goodput, 1.0 / 14.0); // only TTFT 0.1 <= 0.15
}

#[test]
fn groups_split_by_task_and_run() {
    let mut rs = fixture();
    for (i, r) in rs.iter_mut().enumerate() {
        r.task = Some(if i % 2 == 0 { "a".into() } else { "b".into() });
    }
    let mut other = fixture();
    for r in &mut other {
        r.run_id = "run-2".into();
    }
    rs.extend(other);
    let cfg = AnalysisConfig { by_task: true, ..Default::default() };
    let s = summarize(&rs, &cfg);
    assert_eq!(s.run_ids, vec!["run-1", "run-2"]);
    assert_eq!(s.groups.len(), 3 + 3 * 2);
    assert!(s.groups.iter().filter(|g| g.run_id == "run-1").all(|g| g.task.is_some()));
}

#[test]
fn kpis_pass_fail_and_skip_per_policy() {
    let yaml = r#"
kpis:
  - { name: p95, metric: e2e_s, stat: p95, op: "<", value: 9.0 }
  - { name: err, metric: error_rate, op: "<", value: 0.2 }
  - { name: bleu, metric: bleu, op: ">", value: 0.1 }
  - { name: tput, metric: output_tok_s, op: ">=", value: 10 }
  - { name: acc, metric: acceptance_rate, stat: mean, op: ">", value: 0.6, policies: [fast], fail_if_missing: true }
regressions:
  - { metric: e2e_s, stat: p50, max_worsening_pct: 10 }
  - { metric: rouge_l, max_worsening_pct: 5 }
"#;
    let file = KpiFile::parse(yaml, "t.yaml").unwrap();
    let rs = fixture();
    let report = evaluate(&file, "run-1", &rs, None);
    let get = |kpi: &str, policy: &str| report.results.iter().find(|r| r.kpi == kpi && r.policy == policy).unwrap();
    assert_eq!(get("p95", "baseline").outcome, Outcome::Pass); // 8.8 < 9
    assert_eq!(get("p95", "slow_bad").outcome, Outcome::Fail); // 17.6
    assert_eq!(get("err", "baseline").outcome, Outcome::Pass); // 1/6 < 0.2
    assert_eq!(get("bleu", "fast").outcome, Outcome::Skip); // not scored
    assert_eq!(get("tput", "baseline").outcome, Outcome::Pass); // 150/14 = 10.7
    assert_eq!(get("tput", "slow_bad").outcome, Outcome::Fail); // 150/24
    assert_eq!(get("acc", "fast").outcome, Outcome::Pass);
    assert_eq!(report.results.iter().filter(|r| r.kpi == "acc").count(), 1);
    assert!(!report.passed());
    // The one-line view: a KPI no policy could be judged on reads SKIP, with the reason, never PASS.
    let compact = ttc_results::render::check_compact(&report);
    assert!(compact.contains("SKIP bleu (> 0.1): 0 pass, 0 fail, 3 skip; why: no data\n"), "{compact}");
    assert!(compact.contains("FAIL p95 (< 9): 2 pass, 1 fail, 0 skip; failing: slow_bad 17.600\n"), "{compact}");

    // A capacity KPI on a run without a capacity search says what is missing.
    let cap = KpiFile::parse(
        "slos: { d: \"p95_e2e_s<=2\" }\nkpis:\n  - { name: cap, metric: capacity_rps, slo: d, op: \">=\", value: 1 }\n",
        "t.yaml",
    )
    .unwrap();
    let report = evaluate(&cap, "run-1", &rs, None);
    assert!(report.results.iter().all(|r| r.outcome == Outcome::Skip));
    let compact = ttc_results::render::check_compact(&report);
    assert!(compact.starts_with("SKIP cap (>= 1): 0 pass, 0 fail, 3 skip; why: no capacity search in this run"), "{compact}");

    // Regressions against a baseline run that was 2x faster and had the same quality.
    let mut base = fixture();
    for r in &mut base {
        r.run_id = "run-0".into();
        r.e2e_s = r.e2e_s.map(|e| e / 2.0);
    }
    let report = evaluate(&file, "run-1", &rs, Some(("run-0", &base)));
    let reg: Vec<_> = report.results.iter().filter(|r| r.requirement.starts_with("worsening")).collect();
    assert_eq!(reg.len(), 6);
    let p50 = reg.iter().find(|r| r.policy == "baseline" && r.metric == "p50 e2e_s").unwrap();
    assert_eq!(p50.outcome, Outcome::Fail);
    assert_eq!(p50.note.as_deref(), Some("+100.0% worse than run-0"));
    let q = reg.iter().find(|r| r.policy == "baseline" && r.metric == "mean rouge_l").unwrap();
    assert_eq!(q.outcome, Outcome::Pass);
}

#[test]
fn paired_comparison_with_mcnemar_and_latency_cis() {
    // 20 samples; exact match: A right / B wrong on 2, A wrong / B right on 8 -> exact McNemar p = 0.109375.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..20 {
        let mut ra = record("A", "qa", &format!("s{i}"));
        let mut rb = record("B", "qa", &format!("s{i}"));
        let (ea, eb) = match i {
            0..=1 => (1.0, 0.0),
            2..=9 => (0.0, 1.0),
            10..=14 => (1.0, 1.0),
            _ => (0.0, 0.0),
        };
        ra.metrics.insert("exact_match".into(), ea);
        rb.metrics.insert("exact_match".into(), eb);
        ra.metrics.insert("rouge_l".into(), 0.5);
        rb.metrics.insert("rouge_l".into(), 0.5);
        ra.e2e_s = Some(1.0 + i as f64 * 0.1);
        rb.e2e_s = Some(0.5 + i as f64 * 0.05);
        a.push(ra);
        b.push(rb);
    }
    b.push(record("B", "qa", "only-b"));
    let cfg = BootstrapConfig { resamples: 2000, seed: 1, confidence: 0.95 };
    let c = compare("A", &a, "B", &b, false, &cfg);
    assert_eq!((c.n_a, c.n_b, c.n_common), (20, 21, 20));
    let em = c.exact_match.iter().find(|e| e.metric == "exact_match").unwrap();
    assert_eq!((em.mcnemar.a_only, em.mcnemar.b_only), (2, 8));
    assert_eq!(em.mcnemar.method, McNemarMethod::ExactBinomial);
    assert!((em.mcnemar.p_value - 0.109375).abs() < 1e-12);
    assert_eq!(em.verdict, Verdict::NoSignificantDifference);
    assert!((em.a_accuracy - 0.35).abs() < 1e-12 && (em.b_accuracy - 0.65).abs() < 1e-12);

    let rouge = c.quality.iter().find(|d| d.metric == "mean rouge_l").unwrap();
    assert_eq!((rouge.diff.value, rouge.verdict), (0.0, Verdict::NoSignificantDifference));

    let p95 = c.performance.iter().find(|d| d.metric == "p95 e2e_s").unwrap();
    // A: 1.0..2.9 step 0.1, B = A / 2: p95 of A = 1 + 0.1 * 18.05 = 2.805, diff = -1.4025.
    assert!((p95.a - 2.805).abs() < 1e-9 && (p95.diff.value + 1.4025).abs() < 1e-9, "{p95:?}");
    assert!(p95.diff.hi < 0.0);
    assert_eq!(p95.verdict, Verdict::Better);
    let tput = c.performance.iter().find(|d| d.metric == "mean throughput_tok_s").unwrap();
    assert_eq!(tput.verdict, Verdict::NoSignificantDifference, "identical throughput fixtures");
}

/// Fidelity pooled over suites: one row per policy, the mean of every request's value whatever its suite, the
/// interval of the pooled values (narrower than either suite's alone), capacity probes left out; rows sorted by
/// policy and suites by name, whatever order the records came in.
#[test]
fn fidelity_pools_every_suite_of_a_policy_and_narrows_the_interval() {
    let top1 = [[1.0, 0.5, 0.75, 0.25, 1.0, 0.5], [0.75, 0.5, 1.0, 0.25, 0.5, 1.0]];
    let mut records = Vec::new();
    for (s, suite) in ["worf", "crm"].iter().enumerate() {
        for (i, v) in top1[s].iter().enumerate() {
            let mut r = record("lossy", suite, &format!("s{i}"));
            r.fidelity.top1 = Some(*v);
            r.fidelity.kl = Some(0.1 * i as f64);
            records.push(r);
            // The baseline against itself, and a probe of a capacity search that must not count.
            let mut b = record("baseline", suite, &format!("s{i}"));
            b.fidelity.top1 = Some(1.0);
            records.push(b);
        }
    }
    let mut probe = record("lossy", "crm", "s0");
    probe.fidelity.top1 = Some(0.0);
    probe.load.phase = Some("capacity".into());
    records.push(probe);
    let s = summarize(&records, &AnalysisConfig::default());
    let policies: Vec<&str> = s.fidelity.iter().map(|f| f.policy.as_str()).collect();
    assert_eq!(policies, ["baseline", "lossy"]);
    let lossy = &s.fidelity[1];
    assert_eq!(lossy.suites, ["crm", "worf"]);
    assert_eq!(lossy.n, 12);
    let t = &lossy.metrics["fidelity_top1"];
    assert!((t.value - 8.0 / 12.0).abs() < 1e-12, "{}", t.value); // (4.0 + 4.0) / 12
    assert!((lossy.metrics["fidelity_kl"].value - 0.25).abs() < 1e-12); // 2 x (0 + .1 + ... + .5) / 12
    let pooled_width = t.hi - t.lo;
    for suite in ["crm", "worf"] {
        let g = s.groups.iter().find(|g| g.policy == "lossy" && g.suite == suite).unwrap();
        let e = &g.quality["fidelity_top1"];
        assert!(pooled_width < e.hi - e.lo, "{suite}: pooled {pooled_width} vs {}", e.hi - e.lo);
    }
    let b = &s.fidelity[0].metrics["fidelity_top1"];
    assert_eq!((b.value, b.lo, b.hi), (1.0, 1.0, 1.0));
    let table = ttc_results::render::summary_table(&s);
    assert!(table.contains("Fidelity to the full model, all suites pooled"), "{table}");
    assert!(table.contains("0.667±"), "{table}");
}
