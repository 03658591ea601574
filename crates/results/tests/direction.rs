//! `length_ratio` is best at 1.0. Compare, Pareto fronts, the report's best-quality pick and KPI regressions
//! must all rank it by distance from one (they once treated it as higher-is-better while the scorer did not).

use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::compare::{compare, Verdict};
use ttc_results::kpi::{evaluate, KpiFile, Outcome};
use ttc_stats::BootstrapConfig;
use ttc_results::testutil::record;
use ttc_types::{Direction, Record};

/// Three policies at the same latency: `close` writes answers about as long as the reference (ratio ~1.0),
/// `long` about 1.5x, `short` about 0.7x. Closer to one is better: close > short > long. On a higher-is-better
/// reading `long` would win.
fn fixture() -> Vec<Record> {
    let mut out = Vec::new();
    for (policy, center, e2e) in [("close", 1.0, 1.0), ("long", 1.5, 1.0), ("short", 0.7, 1.0)] {
        for i in 0..8 {
            let mut r = record(policy, "qa", &format!("s{i}"));
            r.metrics.clear();
            r.metrics.insert("length_ratio".into(), center + 0.01 * (i as f64 - 3.5));
            r.e2e_s = Some(e2e + 0.01 * i as f64);
            out.push(r);
        }
    }
    out
}

#[test]
fn length_ratio_ranks_by_distance_from_one_everywhere() {
    let records = fixture();
    let by = |p: &str| records.iter().filter(|r| r.policy == p).cloned().collect::<Vec<_>>();
    assert_eq!(ttc_types::quality_direction("length_ratio"), Some(Direction::CloserToOne));

    // Paired comparison: B = close is better than A = long; B = long is worse than A = short.
    let cfg = BootstrapConfig { resamples: 500, ..Default::default() };
    let c = compare("long", &by("long"), "close", &by("close"), false, &cfg);
    let d = c.quality.iter().find(|d| d.metric == "mean |length_ratio-1|").expect("distance diff");
    assert_eq!((d.verdict, d.direction), (Verdict::Better, Direction::CloserToOne), "{d:?}");
    let c = compare("short", &by("short"), "long", &by("long"), false, &cfg);
    assert_eq!(c.quality[0].verdict, Verdict::Worse, "{:?}", c.quality[0]);

    // Pareto front on (p95 latency, quality) with the primary metric set to length_ratio: only `close`.
    let analysis = AnalysisConfig { quality_metric: Some("length_ratio".into()), ..Default::default() };
    let s = summarize(&records, &analysis);
    let front: Vec<&str> = s.groups.iter().filter(|g| g.pareto_optimal).map(|g| g.policy.as_str()).collect();
    assert_eq!(front, ["close"]);
    let mut ranked: Vec<_> = s.groups.iter().map(|g| (g.primary_goodness().unwrap(), g.policy.as_str())).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert_eq!(ranked.iter().map(|r| r.1).collect::<Vec<_>>(), ["close", "short", "long"]);

    // KPI regression against a baseline run: moving from `close` to `long` is a worsening, `long` to `close` is not.
    let kpis = KpiFile::parse(
        "regressions:\n  - {name: len, metric: length_ratio, stat: mean, max_worsening_pct: 10}\n",
        "k.yaml",
    )
    .unwrap();
    let relabel = |rs: Vec<Record>, as_policy: &str| {
        rs.into_iter().map(|mut r| { r.policy = as_policy.into(); r }).collect::<Vec<_>>()
    };
    let worse = evaluate(&kpis, "cur", &relabel(by("long"), "p"), Some(("base", &relabel(by("close"), "p"))));
    assert_eq!(worse.results[0].outcome, Outcome::Fail, "{:?}", worse.results);
    let better = evaluate(&kpis, "cur", &relabel(by("close"), "p"), Some(("base", &relabel(by("long"), "p"))));
    assert_eq!(better.results[0].outcome, Outcome::Pass, "{:?}", better.results);
}
