//! The recommendation (issue 16): for each SLO a run searched capacity at, the policy with the highest capacity
//! whose quality is not significantly worse than the baseline's on the paired samples, with the evidence in one
//! paragraph.
//!
//! Quality is compared with the paired bootstrap of [`crate::compare`] on each suite's primary metric (and
//! McNemar for exact match), on the requests sent one at a time when the run has them, else on the capacity
//! probes (one request per sample: the first). A policy is excluded when any of those comparisons says
//! "worse"; "no significant difference" keeps it (with the sample size said, so a reader sees how much that
//! is worth).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use ttc_types::record::fmt_rate;
use ttc_types::Record;

use crate::analysis::Summary;
use crate::capacity::Capacity;
use crate::compare::{self, Verdict};
use ttc_stats::BootstrapConfig;

/// A policy's quality against the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityCheck {
    /// Significantly worse on at least one primary metric.
    pub worse: bool,
    /// `rouge_l -0.004 [-0.021, +0.013] (12 pairs)`, one per metric compared.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub run_id: String,
    pub slo: String,
    /// None when no policy met the SLO at any probed rate.
    pub policy: Option<String>,
    pub capacity_rps: f64,
    pub baseline: Option<String>,
    pub baseline_capacity_rps: Option<f64>,
    /// Policies with a higher capacity left out because their quality is significantly worse.
    pub excluded: Vec<String>,
    /// The evidence, one paragraph.
    pub paragraph: String,
}

/// Picks among one run's capacities at one SLO. `quality` holds each non-baseline policy's check against the
/// baseline (a policy without an entry could not be compared and is taken as is, which the paragraph says).
pub fn decide(caps: &[&Capacity], baseline: Option<&str>, quality: &BTreeMap<String, QualityCheck>) -> Recommendation {
    let first = caps.first();
    let run_id = first.map(|c| c.run_id.clone()).unwrap_or_default();
    let slo = first.map(|c| c.slo.clone()).unwrap_or_default();
    let base = baseline.and_then(|b| caps.iter().find(|c| c.policy == b));
    let mut ranked: Vec<&&Capacity> = caps.iter().collect();
    // Highest capacity first; ties go to the baseline (no reason to switch), then by name.
    ranked.sort_by(|a, b| {
        b.capacity_rps
            .total_cmp(&a.capacity_rps)
            .then((Some(b.policy.as_str()) == baseline).cmp(&(Some(a.policy.as_str()) == baseline)))
            .then(a.policy.cmp(&b.policy))
    });
    let mut excluded = Vec::new();
    let mut chosen: Option<&Capacity> = None;
    for c in ranked {
        if c.capacity_rps <= 0.0 {
            break;
        }
        if quality.get(&c.policy).is_some_and(|q| q.worse) && Some(c.policy.as_str()) != baseline {
            excluded.push(c.policy.clone());
            continue;
        }
        chosen = Some(c);
        break;
    }
    let mut p = String::new();
    match chosen {
        None => p.push_str(&format!(
            "At `{slo}` no policy met the SLO at any probed rate, so none is recommended; probe lower rates \
             (`--start-rate`) or relax the SLO."
        )),
        Some(c) => {
            p.push_str(&format!("At `{slo}`, **{}** sustains {} r/s", c.policy, fmt_rate(c.capacity_rps)));
            match c.upper_rps {
                Some(u) => p.push_str(&format!(" (it failed at {} r/s)", fmt_rate(u))),
                None => p.push_str(" (the highest rate probed; its limit is higher)"),
            }
            match base {
                Some(b) if b.policy == c.policy => {
                    p.push_str(", the highest capacity of the policies measured: no other policy is worth switching to.");
                }
                Some(b) => {
                    let ratio = if b.capacity_rps > 0.0 {
                        format!("{:.2}x", c.capacity_rps / b.capacity_rps)
                    } else {
                        "where the baseline met the SLO at no probed rate".into()
                    };
                    p.push_str(&format!(" against {}'s {} r/s ({ratio}).", b.policy, fmt_rate(b.capacity_rps)));
                    match quality.get(&c.policy) {
                        Some(q) if !q.evidence.is_empty() => p.push_str(&format!(
                            " Its quality is not significantly worse than {}'s on the paired samples: {}.",
                            b.policy,
                            q.evidence.join("; ")
                        )),
                        _ => p.push_str(&format!(" Its quality could not be compared with {}'s (no paired samples).", b.policy)),
                    }
                }
                None => p.push_str(". No baseline policy was measured, so its quality is not checked against one."),
            }
        }
    }
    if !excluded.is_empty() {
        let why: Vec<String> = excluded
            .iter()
            .map(|e| {
                let cap = caps.iter().find(|c| &c.policy == e).map_or(0.0, |c| c.capacity_rps);
                let ev = quality.get(e).map(|q| q.evidence.join("; ")).unwrap_or_default();
                format!("{e} ({} r/s; {ev})", fmt_rate(cap))
            })
            .collect();
        p.push_str(&format!(" Left out despite a higher capacity, as their quality is significantly worse: {}.", why.join(", ")));
    }
    let saturated: usize = caps.iter().map(|c| c.saturated_probes).sum();
    if saturated > 0 {
        p.push_str(&format!(" {saturated} probe(s) were saturated (no steady state) and counted as failing."));
    }
    Recommendation {
        run_id,
        slo,
        policy: chosen.map(|c| c.policy.clone()),
        capacity_rps: chosen.map_or(0.0, |c| c.capacity_rps),
        baseline: base.map(|b| b.policy.clone()),
        baseline_capacity_rps: base.map(|b| b.capacity_rps),
        excluded,
        paragraph: p,
    }
}

/// The records quality is compared on: each policy's requests outside capacity probes if it has any, else its
/// probes; one per (policy, suite, sample), the first.
fn quality_records<'a>(records: &'a [Record], run_id: &str) -> Vec<&'a Record> {
    let run: Vec<&Record> = records.iter().filter(|r| r.run_id == run_id).collect();
    let plain: HashSet<&str> = run.iter().filter(|r| !r.load.is_capacity()).map(|r| r.policy.as_str()).collect();
    let mut seen = HashSet::new();
    run.into_iter()
        .filter(|r| r.load.is_capacity() != plain.contains(r.policy.as_str()))
        .filter(|r| seen.insert((r.policy.as_str(), r.suite.as_str(), r.sample_id.as_str())))
        .collect()
}

/// Each policy's paired quality check against `baseline` on the primary metric of each suite.
pub fn quality_checks(
    records: &[&Record],
    baseline: &str,
    primaries: &BTreeMap<String, String>,
    cfg: &BootstrapConfig,
) -> BTreeMap<String, QualityCheck> {
    let policies: BTreeSet<&str> = records.iter().map(|r| r.policy.as_str()).filter(|p| *p != baseline).collect();
    let mut out = BTreeMap::new();
    for policy in policies {
        let mut check = QualityCheck { worse: false, evidence: Vec::new() };
        for (suite, metric) in primaries {
            let side = |p: &str| -> Vec<Record> {
                records.iter().filter(|r| r.policy == p && &r.suite == suite).map(|r| (*r).clone()).collect()
            };
            let cmp = compare::compare(baseline, &side(baseline), policy, &side(policy), false, cfg);
            if let Some(d) = cmp.quality.iter().find(|d| d.metric == format!("mean {metric}")) {
                check.worse |= d.verdict == Verdict::Worse;
                check.evidence.push(format!(
                    "{metric} on {suite} {:+.3} [{:+.3}, {:+.3}], {} pairs, {}",
                    d.diff.value,
                    d.diff.lo,
                    d.diff.hi,
                    d.n_pairs,
                    d.verdict.label()
                ));
            }
            if let Some(e) = cmp.exact_match.iter().find(|e| &e.metric == metric) {
                check.worse |= e.verdict == Verdict::Worse;
            }
        }
        out.insert(policy.to_string(), check);
    }
    out
}

/// One recommendation per (run, SLO) with capacities in `summary`.
pub fn recommend(summary: &Summary, records: &[Record], baseline: Option<&str>, cfg: &BootstrapConfig) -> Vec<Recommendation> {
    let mut by_slo: BTreeMap<(&str, &str), Vec<&Capacity>> = BTreeMap::new();
    for c in &summary.capacity {
        by_slo.entry((&c.run_id, &c.slo)).or_default().push(c);
    }
    let mut out = Vec::new();
    for ((run_id, _), caps) in by_slo {
        let base = baseline
            .map(str::to_string)
            .or_else(|| caps.iter().find(|c| c.policy == "baseline" || c.algorithm == "baseline").map(|c| c.policy.clone()));
        let primaries: BTreeMap<String, String> = summary
            .groups
            .iter()
            .filter(|g| g.run_id == run_id)
            .filter_map(|g| g.primary_metric.clone().map(|m| (g.suite.clone(), m)))
            .collect();
        let quality = match &base {
            Some(b) => quality_checks(&quality_records(records, run_id), b, &primaries, cfg),
            None => BTreeMap::new(),
        };
        out.push(decide(&caps, base.as_deref(), &quality));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::record;

    fn cap(policy: &str, rps: f64, upper: Option<f64>) -> Capacity {
        Capacity {
            run_id: "r".into(),
            policy: policy.into(),
            algorithm: policy.into(),
            slo: "p95_e2e_s<=2".into(),
            capacity_rps: rps,
            upper_rps: upper,
            output_tok_s: None,
            probes: Vec::new(),
            saturated_probes: 0,
        }
    }

    fn check(worse: bool, ev: &str) -> QualityCheck {
        QualityCheck { worse, evidence: vec![ev.to_string()] }
    }

    #[test]
    fn highest_capacity_without_worse_quality_wins() {
        let caps = [cap("baseline", 1.0, Some(1.5)), cap("batching", 3.0, Some(3.5)), cap("early_exit", 4.0, Some(5.0))];
        let refs: Vec<&Capacity> = caps.iter().collect();
        let mut q = BTreeMap::new();
        q.insert("batching".to_string(), check(false, "rouge_l on crm +0.001 [-0.01, +0.01], 12 pairs"));
        q.insert("early_exit".to_string(), check(true, "rouge_l on crm -0.200 [-0.30, -0.10], 12 pairs, worse"));
        let r = decide(&refs, Some("baseline"), &q);
        assert_eq!(r.policy.as_deref(), Some("batching"));
        assert_eq!((r.capacity_rps, r.baseline_capacity_rps), (3.0, Some(1.0)));
        assert_eq!(r.excluded, vec!["early_exit".to_string()]);
        assert!(r.paragraph.contains("**batching** sustains 3 r/s (it failed at 3.5 r/s) against baseline's 1 r/s (3.00x)"), "{}", r.paragraph);
        assert!(r.paragraph.contains("not significantly worse") && r.paragraph.contains("early_exit (4 r/s; rouge_l"), "{}", r.paragraph);
    }

    #[test]
    fn baseline_wins_ties_and_nothing_is_recommended_below_every_probe() {
        let caps = [cap("baseline", 2.0, Some(3.0)), cap("spec", 2.0, Some(3.0))];
        let refs: Vec<&Capacity> = caps.iter().collect();
        let r = decide(&refs, Some("baseline"), &BTreeMap::new());
        assert_eq!(r.policy.as_deref(), Some("baseline"));
        assert!(r.paragraph.contains("no other policy is worth switching to"), "{}", r.paragraph);
        let caps = [cap("baseline", 0.0, Some(0.5)), cap("spec", 0.0, Some(0.5))];
        let refs: Vec<&Capacity> = caps.iter().collect();
        let r = decide(&refs, Some("baseline"), &BTreeMap::new());
        assert_eq!(r.policy, None);
        assert!(r.paragraph.contains("no policy met the SLO"), "{}", r.paragraph);
    }

    /// Paired quality from records: a policy whose every answer is worse is excluded, one with the same answers
    /// is kept.
    #[test]
    fn quality_checks_pair_samples() {
        let mut records = Vec::new();
        for i in 0..30 {
            let q = 0.3 + 0.02 * (i % 7) as f64;
            for (p, delta) in [("baseline", 0.0), ("same", 0.0), ("bad", -0.2)] {
                let mut r = record(p, "crm", &i.to_string());
                r.metrics.insert("rouge_l".into(), q + delta);
                records.push(r);
            }
        }
        let refs: Vec<&Record> = records.iter().collect();
        let primaries: BTreeMap<String, String> = [("crm".to_string(), "rouge_l".to_string())].into();
        let cfg = BootstrapConfig { resamples: 500, ..Default::default() };
        let q = quality_checks(&refs, "baseline", &primaries, &cfg);
        assert!(q["bad"].worse, "{:?}", q["bad"]);
        assert!(!q["same"].worse, "{:?}", q["same"]);
        assert!(q["bad"].evidence[0].starts_with("rouge_l on crm -0.200"), "{:?}", q["bad"].evidence);
    }
}
