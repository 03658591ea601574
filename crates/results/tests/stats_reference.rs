//! Statistics against reference implementations (numpy, scipy, statsmodels; tests/vectors/gen_stats.py) and
//! against known truths (coverage of a bootstrap CI around a known difference).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use ttc_stats::{self as stats, BootstrapConfig, CiMethod, McNemarMethod};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/stats.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn percentiles_equal_numpy_linear() {
    for case in vectors()["percentiles"].as_array().unwrap() {
        let values = floats(&case["values"]);
        for (q, want) in floats(&case["qs"]).into_iter().zip(floats(&case["expected"])) {
            let got = stats::percentile(&values, q).unwrap();
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "n={} q={q}: {got} vs {want}", values.len());
            let sel = stats::percentile_select(&mut values.clone(), q).unwrap();
            assert!((sel - want).abs() <= 1e-12 * want.abs().max(1.0), "select n={} q={q}", values.len());
        }
    }
}

#[test]
fn mcnemar_equals_statsmodels() {
    for case in vectors()["mcnemar"].as_array().unwrap() {
        let (b, c) = (case["a_only"].as_u64().unwrap(), case["b_only"].as_u64().unwrap());
        let m = stats::mcnemar(b, c);
        let want_method =
            if case["exact"].as_bool().unwrap() { McNemarMethod::ExactBinomial } else { McNemarMethod::ChiSquareCorrected };
        assert_eq!(m.method, want_method, "({b}, {c})");
        let (ws, wp) = (case["statistic"].as_f64().unwrap(), case["p_value"].as_f64().unwrap());
        assert!((m.statistic - ws).abs() < 1e-12, "({b}, {c}) statistic {} vs {ws}", m.statistic);
        assert!((m.p_value - wp).abs() <= 1e-10 * wp.max(1e-300) + 1e-15, "({b}, {c}) p {} vs {wp}", m.p_value);
    }
}

#[test]
fn bootstrap_cis_agree_with_scipy_percentile_method() {
    let v = vectors();
    let b = &v["bootstrap"];
    let cfg = BootstrapConfig { resamples: 20000, seed: 7, confidence: 0.95 };
    // Monte Carlo intervals: endpoints agree to a small fraction of the interval width.
    let close = |got: f64, want: f64, width: f64, what: &str| {
        assert!((got - want).abs() < 0.05 * width, "{what}: {got} vs scipy {want} (width {width})");
    };

    let x = floats(&b["mean"]["values"]);
    let e = stats::mean_ci(&x, &cfg).unwrap();
    let (lo, hi) = (b["mean"]["lo"].as_f64().unwrap(), b["mean"]["hi"].as_f64().unwrap());
    assert_eq!(e.method, CiMethod::Bootstrap);
    assert!((e.value - b["mean"]["mean"].as_f64().unwrap()).abs() < 1e-12);
    close(e.lo, lo, hi - lo, "mean lo");
    close(e.hi, hi, hi - lo, "mean hi");

    let (a, d) = (floats(&b["paired_mean_diff"]["a"]), floats(&b["paired_mean_diff"]["b"]));
    let e = stats::paired_bootstrap_diff(&a, &d, &cfg, stats::mean_stat).unwrap();
    let p = &b["paired_mean_diff"];
    let (lo, hi) = (p["lo"].as_f64().unwrap(), p["hi"].as_f64().unwrap());
    assert!((e.value - p["diff"].as_f64().unwrap()).abs() < 1e-12);
    close(e.lo, lo, hi - lo, "paired lo");
    close(e.hi, hi, hi - lo, "paired hi");

    let p = &b["paired_p95_diff"];
    let cfg95 = BootstrapConfig { resamples: 5000, ..cfg };
    let e = stats::paired_bootstrap_diff(&a, &d, &cfg95, |s| stats::percentile_select(s, 95.0)).unwrap();
    let (lo, hi) = (p["lo"].as_f64().unwrap(), p["hi"].as_f64().unwrap());
    assert!((e.value - p["diff"].as_f64().unwrap()).abs() < 1e-12);
    close(e.lo, lo, 2.0 * (hi - lo), "p95 lo");
    close(e.hi, hi, 2.0 * (hi - lo), "p95 hi");

    // Normal approximation (what mean_ci uses above BOOTSTRAP_MAX_N values).
    let e = stats::mean_ci_normal(&x, 0.95).unwrap();
    assert_eq!(e.method, CiMethod::Normal);
    assert!((e.lo - b["normal"]["lo"].as_f64().unwrap()).abs() < 1e-9);
    assert!((e.hi - b["normal"]["hi"].as_f64().unwrap()).abs() < 1e-9);
}

/// Simulated paired data with a known mean difference of 0.1: the 95% paired bootstrap CI must cover it in
/// about 95% of experiments, and must exclude 0 (the test has power at this effect size).
#[test]
fn paired_bootstrap_ci_covers_the_true_difference() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (experiments, n, true_diff) = (200, 80, 0.1);
    let (mut covered, mut significant) = (0, 0);
    for k in 0..experiments {
        let a: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
        let b: Vec<f64> = a.iter().map(|x| x + true_diff + rng.random_range(-0.2..0.2)).collect();
        let cfg = BootstrapConfig { resamples: 500, seed: k, confidence: 0.95 };
        let e = stats::paired_bootstrap_diff(&a, &b, &cfg, stats::mean_stat).unwrap();
        covered += (e.lo <= true_diff && true_diff <= e.hi) as u32;
        significant += e.excludes_zero() as u32;
    }
    let coverage = covered as f64 / experiments as f64;
    assert!((0.90..=0.99).contains(&coverage), "coverage {coverage}");
    assert_eq!(significant as u64, experiments);
}
