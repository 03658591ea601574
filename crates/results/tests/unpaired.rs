//! `ttc compare` on served A/B traffic: no sample went to both arms, so the verdicts come from unpaired
//! bootstrap CIs over each arm's own records.

use ttc_results::compare::{compare_unpaired, is_served, Verdict};
use ttc_stats::BootstrapConfig;
use ttc_results::testutil::record;
use ttc_types::Record;

fn served(policy: &str, i: usize, e2e: f64, rouge: f64) -> Record {
    let mut r = record(policy, "serve", &format!("req-{i:08}"));
    r.backend = "serve".into();
    r.e2e_s = Some(e2e);
    r.metrics.clear();
    r.metrics.insert("rouge_l".into(), rouge);
    r
}

#[test]
fn unpaired_verdicts_find_a_real_shift_and_no_difference_where_there_is_none() {
    // A: e2e 1.00..1.39 s; B: the same values + 0.5 s. Sample ids never match (each request is its own).
    let a: Vec<Record> = (0..40).map(|i| served("baseline", i, 1.0 + i as f64 * 0.01, 0.5)).collect();
    let b: Vec<Record> = (0..40).map(|i| served("spec", 100 + i, 1.5 + i as f64 * 0.01, 0.5)).collect();
    assert!(is_served(&a, &b));
    let c = compare_unpaired("baseline", &a, "spec", &b, &BootstrapConfig { resamples: 500, seed: 1, confidence: 0.95 });
    assert!(c.unpaired && c.n_common == 0);
    let p50 = c.performance.iter().find(|d| d.metric == "p50 e2e_s").unwrap();
    assert!((p50.diff.value - 0.5).abs() < 1e-9, "{p50:?}");
    assert_eq!(p50.n_pairs, 80);
    assert_eq!(p50.verdict, Verdict::Worse, "B is 0.5 s slower on every request: {p50:?}");
    assert!(p50.diff.lo > 0.3 && p50.diff.hi < 0.7, "{p50:?}");
    // Identical quality on both arms: no significant difference.
    let q = c.quality.iter().find(|d| d.metric == "mean rouge_l").unwrap();
    assert_eq!(q.verdict, Verdict::NoSignificantDifference);
    // The same traffic against itself: nothing is significant.
    let c = compare_unpaired("baseline", &a, "baseline", &a, &BootstrapConfig { resamples: 500, seed: 1, confidence: 0.95 });
    assert!(c.performance.iter().all(|d| d.verdict == Verdict::NoSignificantDifference), "{:?}", c.performance);
    // Benchmark runs are not served traffic: they stay paired.
    assert!(!is_served(&[record("baseline", "crmarena", "1")], &b));
}

#[test]
fn served_error_rates_are_compared_with_an_unpaired_interval() {
    // A: 2 of 60 requests refused; B: 30 of 60 refused (a 429 storm). B's error rate is worse, A against itself is not.
    let arm = |policy: &str, base: usize, failed: usize| -> Vec<Record> {
        (0..60)
            .map(|i| {
                let mut r = served(policy, base + i, 1.0 + (i % 7) as f64 * 0.01, 0.5);
                if i < failed {
                    r.status = ttc_types::RecordStatus::Error;
                }
                r
            })
            .collect()
    };
    let (a, b) = (arm("baseline", 0, 2), arm("spec", 1000, 30));
    let cfg = BootstrapConfig { resamples: 1000, seed: 3, confidence: 0.95 };
    let c = compare_unpaired("baseline", &a, "spec", &b, &cfg);
    let e = c.performance.iter().find(|d| d.metric == "error_rate").unwrap();
    assert!((e.a - 2.0 / 60.0).abs() < 1e-12 && (e.b - 0.5).abs() < 1e-12, "{e:?}");
    assert!((e.diff.value - (0.5 - 2.0 / 60.0)).abs() < 1e-12, "{e:?}");
    assert_eq!(e.verdict, Verdict::Worse, "{e:?}");
    let same = compare_unpaired("baseline", &a, "baseline", &a, &cfg);
    let e = same.performance.iter().find(|d| d.metric == "error_rate").unwrap();
    assert_eq!(e.verdict, Verdict::NoSignificantDifference, "{e:?}");
}
