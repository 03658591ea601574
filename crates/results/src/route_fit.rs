//! `ttc route fit`: learns a router from a stored run. The run's samples are split (seeded) into a training and a
//! held-out part; on the training part each (suite, prompt-length bucket) gets the fastest policy (lowest p95 E2E,
//! preferring policies that meet the SLO) whose mean fidelity reaches the minimum, and the same choice over all
//! training samples is the default. The result is router YAML a person can read and edit (docs/policies.md
//! "router"), evaluated on the held-out samples against the best single policy.
//!
//! Only features every record has are used: the suite and the prompt's token count (the n-gram repetition and the
//! first-step entropy are measured by a router itself, not stored for plain policies).

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use ttc_types::{Record, RecordStatus};

use crate::capacity::SloSpec;
use crate::metrics::RecordField;

#[derive(Debug, Clone)]
pub struct FitConfig {
    pub slo: SloSpec,
    pub min_fidelity: f64,
    /// The fidelity (or quality) column the minimum applies to, e.g. `fidelity_top1`.
    pub fidelity: String,
    pub seed: u64,
    /// Share of samples held out for the evaluation (0 < x < 1).
    pub holdout: f64,
    /// Depth of the prompt-length tree per suite (at most 2^depth buckets).
    pub depth: usize,
}

/// One fitted rule: the suite and prompt-token range it covers, and the policy it picks.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedRule {
    pub suite: String,
    /// `prompt_tokens >= lo` (None: unbounded).
    pub lo: Option<f64>,
    /// `prompt_tokens < hi` (None: unbounded).
    pub hi: Option<f64>,
    pub policy: String,
    /// Training samples in the bucket.
    pub n_train: usize,
}

impl FittedRule {
    fn matches(&self, suite: &str, prompt_tokens: f64) -> bool {
        self.suite == suite && self.lo.is_none_or(|lo| prompt_tokens >= lo) && self.hi.is_none_or(|hi| prompt_tokens < hi)
    }
}

/// One side of the held-out evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    pub label: String,
    pub n: usize,
    pub p95_e2e_s: Option<f64>,
    pub mean_fidelity: Option<f64>,
    pub meets_slo: bool,
}

#[derive(Debug, Clone)]
pub struct Fit {
    pub rules: Vec<FittedRule>,
    pub default: String,
    /// (name, algorithm, params as written) of every policy the router names.
    pub policies: Vec<(String, String, String)>,
    pub n_train: usize,
    pub routed: Eval,
    pub best_single: Eval,
}

/// Policies a router can route to (not routers, adaptive or batching policies).
fn routable(algorithm: &str) -> bool {
    !matches!(algorithm, "router" | "adaptive" | "batching")
}

type Key = (String, String);

pub fn fit(records: &[Record], cfg: &FitConfig) -> Result<Fit> {
    let metric = RecordField::parse(&cfg.fidelity)?;
    let candidates: BTreeSet<&str> =
        records.iter().filter(|r| routable(&r.algorithm)).map(|r| r.policy.as_str()).collect();
    if candidates.len() < 2 {
        bail!("the run has {} policy that a router can pick (need two or more; routers, adaptive and batching policies do not count)", candidates.len());
    }
    if !records.iter().any(|r| metric.value(r).is_some()) {
        bail!("the run has no `{}` values (fidelity columns come from embedded runs with fidelity on)", cfg.fidelity);
    }
    // Each sample's successful record per policy; only samples every candidate answered with the values needed.
    let mut by_sample: BTreeMap<Key, HashMap<&str, &Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| candidates.contains(r.policy.as_str()) && r.status == RecordStatus::Ok) {
        if r.e2e_s.is_some() && r.prompt_tokens.is_some() && metric.value(r).is_some() {
            by_sample.entry((r.suite.clone(), r.sample_id.clone())).or_default().insert(&r.policy, r);
        }
    }
    let mut keys: Vec<Key> = by_sample.iter().filter(|(_, m)| m.len() == candidates.len()).map(|(k, _)| k.clone()).collect();
    if keys.len() < 4 {
        bail!("only {} samples have a successful record of every policy with `{}` and e2e_s (need 4 or more)", keys.len(), cfg.fidelity);
    }
    keys.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
    let n_hold = ((keys.len() as f64 * cfg.holdout).round() as usize).clamp(1, keys.len() - 2);
    let (held, train) = keys.split_at(n_hold);
    let prompt_tokens = |k: &Key| by_sample[k].values().next().and_then(|r| r.prompt_tokens).unwrap_or(0) as f64;

    // The best policy over a set of samples, or None when none reaches the fidelity minimum.
    let choose = |set: &[&Key]| -> Option<&str> {
        let mut best: Option<(bool, f64, &str)> = None;
        for &p in &candidates {
            let rs: Vec<&Record> = set.iter().map(|k| by_sample[*k][p]).collect();
            let fid = mean(rs.iter().filter_map(|r| metric.value(r)));
            if fid.is_none_or(|f| f < cfg.min_fidelity) {
                continue;
            }
            let p95 = p95_e2e(&rs).unwrap_or(f64::INFINITY);
            let meets = cfg.slo.met_by(&rs);
            // SLO met first, then the lower p95, then the name (deterministic).
            let better = match best {
                None => true,
                Some((m, q, _)) => (meets, -p95) > (m, -q),
            };
            if better {
                best = Some((meets, p95, p));
            }
        }
        best.map(|b| b.2)
    };

    let train_refs: Vec<&Key> = train.iter().collect();
    let Some(default) = choose(&train_refs) else {
        bail!("no policy reaches mean {} >= {} on the training samples", cfg.fidelity, cfg.min_fidelity);
    };
    // What a leaf costs: its samples times the p95 E2E of the policy it would run.
    let cost = |set: &[&Key]| -> f64 {
        let p = choose(set).unwrap_or(default);
        let rs: Vec<&Record> = set.iter().map(|k| by_sample[*k][p]).collect();
        set.len() as f64 * p95_e2e(&rs).unwrap_or(f64::INFINITY)
    };
    let mut rules: Vec<FittedRule> = Vec::new();
    let suites: BTreeSet<&str> = train.iter().map(|k| k.0.as_str()).collect();
    for suite in suites {
        let members: Vec<&Key> = train.iter().filter(|k| k.0 == suite).collect();
        let mut leaves = Vec::new();
        split(&members, (None, None), cfg.depth, &prompt_tokens, &cost, &mut leaves);
        for (lo, hi, m) in leaves {
            let Some(p) = choose(&m).filter(|p| *p != default) else { continue };
            // Neighbouring leaves that pick the same policy read better as one rule.
            match rules.last_mut() {
                Some(last) if last.suite == suite && last.policy == p && last.hi == lo => {
                    last.hi = hi;
                    last.n_train += m.len();
                }
                _ => rules.push(FittedRule { suite: suite.to_string(), lo, hi, policy: p.to_string(), n_train: m.len() }),
            }
        }
    }

    // Held-out evaluation: the router's pick per sample against the best single policy (the default).
    let routed_records: Vec<&Record> = held
        .iter()
        .map(|k| {
            let pick = rules.iter().find(|r| r.matches(&k.0, prompt_tokens(k))).map(|r| r.policy.as_str()).unwrap_or(default);
            by_sample[k][pick]
        })
        .collect();
    let single_records: Vec<&Record> = held.iter().map(|k| by_sample[k][default]).collect();
    let eval = |label: String, rs: &[&Record]| Eval {
        label,
        n: rs.len(),
        p95_e2e_s: p95_e2e(rs),
        mean_fidelity: mean(rs.iter().filter_map(|r| metric.value(r))),
        meets_slo: cfg.slo.met_by(rs),
    };
    let named: BTreeSet<&str> = rules.iter().map(|r| r.policy.as_str()).chain([default]).collect();
    let policies = named
        .into_iter()
        .filter_map(|p| records.iter().find(|r| r.policy == p))
        .map(|r| (r.policy.clone(), r.algorithm.clone(), r.params_json.clone()))
        .collect();
    Ok(Fit {
        routed: eval("fitted router".into(), &routed_records),
        best_single: eval(format!("best single policy ({default})"), &single_records),
        default: default.to_string(),
        rules,
        policies,
        n_train: train.len(),
    })
}

/// Fewest training samples a leaf of the tree may hold.
const MIN_LEAF: usize = 3;

type Leaf<'k> = (Option<f64>, Option<f64>, Vec<&'k Key>);

/// A small regression tree on the prompt length: splits `members` at the cut (between two distinct lengths,
/// each side >= MIN_LEAF samples) that lowers the summed leaf cost most, recursing `depth` levels.
fn split<'k>(
    members: &[&'k Key],
    range: (Option<f64>, Option<f64>),
    depth: usize,
    len: &dyn Fn(&Key) -> f64,
    cost: &dyn Fn(&[&Key]) -> f64,
    out: &mut Vec<Leaf<'k>>,
) {
    let mut sorted: Vec<&Key> = members.to_vec();
    sorted.sort_by(|a, b| len(a).total_cmp(&len(b)).then(a.cmp(b)));
    let whole = cost(&sorted);
    let mut best: Option<(f64, usize)> = None;
    if depth > 0 && sorted.len() >= 2 * MIN_LEAF {
        for i in MIN_LEAF..=sorted.len() - MIN_LEAF {
            if len(sorted[i - 1]) == len(sorted[i]) {
                continue;
            }
            let c = cost(&sorted[..i]) + cost(&sorted[i..]);
            // A split must pay for itself (1e-9: not on rounding noise).
            if c < whole - 1e-9 && best.is_none_or(|(b, _)| c < b) {
                best = Some((c, i));
            }
        }
    }
    match best {
        Some((_, i)) => {
            let cut = len(sorted[i]);
            split(&sorted[..i], (range.0, Some(cut)), depth - 1, len, cost, out);
            split(&sorted[i..], (Some(cut), range.1), depth - 1, len, cost, out);
        }
        None => out.push((range.0, range.1, sorted)),
    }
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    ttc_stats::mean(&v)
}

fn p95_e2e(rs: &[&Record]) -> Option<f64> {
    let v: Vec<f64> = rs.iter().filter_map(|r| r.e2e_s).collect();
    ttc_stats::percentile(&v, 95.0)
}

fn bound(b: Option<f64>) -> String {
    b.map(|v| format!("{v}")).unwrap_or_default()
}

impl Fit {
    /// The fitted router as a policies file: the policies it names (as the run ran them), then the router.
    pub fn to_yaml(&self, name: &str, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str("policies:\n");
        for (p, algorithm, params) in &self.policies {
            out.push_str(&format!("  - name: {p}\n    algorithm: {algorithm}\n"));
            if params != "{}" {
                out.push_str(&format!("    params: {params}\n"));
            }
        }
        out.push_str(&format!("  - name: {name}\n    algorithm: router\n    params:\n      rules:\n"));
        if self.rules.is_empty() {
            out.truncate(out.len() - "      rules:\n".len());
            out.push_str("      rules: []\n");
        }
        for r in &self.rules {
            let range = match (r.lo, r.hi) {
                (Some(_), Some(_)) => format!(">= {}, < {}", bound(r.lo), bound(r.hi)),
                (Some(_), None) => format!(">= {}", bound(r.lo)),
                (None, Some(_)) => format!("< {}", bound(r.hi)),
                (None, None) => String::new(),
            };
            let when = if range.is_empty() {
                format!("{{suite: {}}}", r.suite)
            } else {
                format!("{{suite: {}, prompt_tokens: \"{range}\"}}", r.suite)
            };
            out.push_str(&format!("        - when: {when}   # {} training samples\n          policy: {}\n", r.n_train, r.policy));
        }
        out.push_str(&format!("      default: {}\n", self.default));
        out
    }

    /// The held-out evaluation as text lines.
    pub fn evaluation(&self, cfg: &FitConfig) -> String {
        let line = |e: &Eval| {
            format!(
                "{}: n {}, p95 E2E {} s, mean {} {}, SLO {} {}",
                e.label,
                e.n,
                e.p95_e2e_s.map_or("-".into(), |v| format!("{v:.3}")),
                cfg.fidelity,
                e.mean_fidelity.map_or("-".into(), |v| format!("{v:.4}")),
                cfg.slo,
                if e.meets_slo { "met" } else { "not met" }
            )
        };
        format!("held-out samples:\n  {}\n  {}\n", line(&self.routed), line(&self.best_single))
    }
}
