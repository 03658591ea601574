//! `ttc route fit` on a synthetic run whose best route per bucket is known: `fast` keeps fidelity on short
//! prompts (100..160 tokens) and loses it entirely on long ones (900..960), `baseline` is exact but slow, `lossy` is fastest and never faithful enough.

use ttc_results::capacity::SloSpec;
use ttc_results::route_fit::{fit, FitConfig};
use ttc_results::testutil::record;
use ttc_types::Record;

fn rec(policy: &str, algorithm: &str, sample: usize, prompt_tokens: u32, e2e: f64, top1: f64) -> Record {
    let mut r = record(policy, "crmarena", &sample.to_string());
    r.algorithm = algorithm.into();
    r.prompt_tokens = Some(prompt_tokens);
    r.e2e_s = Some(e2e);
    r.fidelity.top1 = Some(top1);
    r
}

fn run() -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0..60 {
        let short = i % 2 == 0;
        let tokens = if short { 100 + i as u32 } else { 900 + i as u32 };
        out.push(rec("baseline", "baseline", i, tokens, 2.0 + 0.01 * i as f64, 1.0));
        out.push(rec("fast", "speculative_ngram", i, tokens, 1.0 + 0.01 * i as f64, if short { 0.99 } else { 0.0 }));
        out.push(rec("lossy", "early_exit_fixed", i, tokens, 0.5, 0.3));
        // A router's records are never candidates.
        out.push(rec("routed", "router", i, tokens, 0.1, 1.0));
    }
    out
}

fn cfg(seed: u64) -> FitConfig {
    FitConfig {
        slo: SloSpec::parse("p95_e2e_s<=2").unwrap(),
        min_fidelity: 0.95,
        fidelity: "fidelity_top1".into(),
        seed,
        holdout: 0.3,
        depth: 2,
    }
}

#[test]
fn the_fit_finds_the_known_best_route_per_bucket_and_beats_the_best_single_policy_on_held_out_samples() {
    let f = fit(&run(), &cfg(7)).unwrap();
    // Over all samples only baseline keeps fidelity >= 0.95: it is the default; short prompts go to fast.
    assert_eq!(f.default, "baseline");
    assert_eq!(f.rules.len(), 1, "{:?}", f.rules);
    let r = &f.rules[0];
    assert_eq!((r.suite.as_str(), r.lo, r.policy.as_str()), ("crmarena", None, "fast"));
    let hi = r.hi.unwrap();
    assert!(hi > 160.0 && hi <= 960.0, "the cut separates short (100..160) from long (900..960) prompts: {hi}");
    assert_eq!(f.n_train + f.routed.n, 60);
    // Held out: the router keeps fidelity >= 0.95 and is no slower at p95 than the best single policy.
    assert!(f.routed.mean_fidelity.unwrap() >= 0.95, "{:?}", f.routed);
    assert!(f.routed.p95_e2e_s.unwrap() <= f.best_single.p95_e2e_s.unwrap(), "{:?} vs {:?}", f.routed, f.best_single);
    // Reproducible from the run and the seed.
    let again = fit(&run(), &cfg(7)).unwrap();
    assert_eq!((again.rules, again.default), (f.rules.clone(), f.default.clone()));
    let yaml = f.to_yaml("fitted_router", "header");
    assert!(yaml.contains("  - name: fast\n    algorithm: speculative_ngram\n"), "{yaml}");
    assert!(yaml.contains(&format!("        - when: {{suite: crmarena, prompt_tokens: \"< {hi}\"}}")), "{yaml}");
    assert!(yaml.contains("      default: baseline\n") && !yaml.contains("lossy") && !yaml.contains("routed"), "{yaml}");
}

#[test]
fn a_fit_without_the_needed_policies_or_metric_names_the_problem() {
    let only_baseline: Vec<Record> = run().into_iter().filter(|r| r.policy == "baseline" || r.policy == "routed").collect();
    let e = fit(&only_baseline, &cfg(0)).unwrap_err().to_string();
    assert!(e.contains("1 policy that a router can pick"), "{e}");
    let mut no_fid = run();
    for r in &mut no_fid {
        r.fidelity.top1 = None;
    }
    let e = fit(&no_fid, &cfg(0)).unwrap_err().to_string();
    assert!(e.contains("no `fidelity_top1` values"), "{e}");
    let mut strict = cfg(0);
    strict.min_fidelity = 1.0;
    strict.fidelity = "fidelity_top1".into();
    let unfaithful: Vec<Record> = run().into_iter().filter(|r| r.policy != "baseline").collect();
    let e = fit(&unfaithful, &strict).unwrap_err().to_string();
    assert!(e.contains("no policy reaches mean fidelity_top1 >= 1"), "{e}");
}
