//! Run keys for how precisely quality is measured: `fidelity` (teacher-forced and output-level fidelity,
//! docs/metrics.md "Fidelity") and `until_ci` (add samples until the confidence intervals are narrow enough,
//! docs/runner.md "Enough samples").

use super::file::{NonZero, PositiveF64};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FidelityConfig {
    /// Embedded engine: replay every policy along the baseline's greedy trajectory (a pass before the
    /// measured requests, so it never overlaps a timing).
    pub teacher_forced: bool,
    /// Any backend: ROUGE-L and exact match of each prediction against the baseline policy's prediction for the
    /// same sample (needs a baseline policy in the run; skipped without one).
    pub output: bool,
}

impl Default for FidelityConfig {
    fn default() -> Self {
        FidelityConfig { teacher_forced: true, output: true }
    }
}

/// `until_ci`: sample rounds until every policy x suite's 95% CI half-width is at most `width`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UntilCiConfig {
    /// Target half-width of the 95% CI, in the metric's units.
    pub width: PositiveF64,
    /// The metric: a quality metric or a `fidelity_*` one; default: each suite's primary metric.
    #[serde(default)]
    pub metric: Option<String>,
    /// Most samples per suite (default: every item of the suite).
    #[serde(default)]
    pub max_samples: Option<NonZero>,
}

/// The run's baseline policy: one named `baseline`, else the first with algorithm `baseline` (the report picks it
/// the same way).
pub fn baseline_policy(policies: &[super::Policy]) -> Option<&str> {
    policies
        .iter()
        .find(|p| p.name == "baseline")
        .or_else(|| policies.iter().find(|p| p.algorithm_name() == "baseline"))
        .map(|p| p.name.as_str())
}

/// Checks `until_ci.metric` against what this run can measure: a known metric, and for a fidelity one, the
/// backend and baseline it needs.
pub fn check_ci_metric(
    until: Option<&UntilCiConfig>,
    fidelity: &FidelityConfig,
    embedded: bool,
    policies: &[super::Policy],
) -> Result<(), String> {
    let Some(m) = until.and_then(|u| u.metric.as_deref()) else { return Ok(()) };
    let what = format!("until_ci.metric/--ci-metric `{m}`");
    if ttc_types::quality_direction(m).is_some() {
        return Ok(());
    }
    if ttc_types::fidelity_direction(m).is_none() {
        let known: Vec<&str> =
            ttc_types::QUALITY_METRICS.iter().copied().chain(ttc_types::FIDELITY_METRICS.iter().map(|(n, _)| *n)).collect();
        return Err(format!("{what}: unknown metric (known: {})", known.join(", ")));
    }
    if ttc_types::TEACHER_FORCED_METRICS.contains(&m) {
        // Compared with the full model's own greedy trajectory: no baseline policy needed, but the engine is.
        if !embedded {
            return Err(format!(
                "{what}: teacher-forced fidelity needs the embedded backend; an HTTP backend gives fidelity_rouge_l \
                 and fidelity_exact_match (with a baseline policy in the run)"
            ));
        }
        if !fidelity.teacher_forced {
            return Err(format!("{what}: teacher-forced fidelity is off (fidelity.teacher_forced, --fidelity)"));
        }
        return Ok(());
    }
    if baseline_policy(policies).is_none() {
        return Err(format!("{what}: output fidelity compares with the baseline policy's prediction, and no baseline policy is in the run"));
    }
    if !fidelity.output {
        return Err(format!("{what}: output fidelity is off (fidelity.output, --fidelity)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;

    fn until(metric: &str) -> UntilCiConfig {
        UntilCiConfig { width: PositiveF64(0.05), metric: Some(metric.into()), max_samples: None }
    }

    #[test]
    fn ci_metric_needs_what_it_measures() {
        let on = FidelityConfig::default();
        let with_base = vec![Policy::baseline()];
        let check = |m: &str, embedded: bool, ps: &[Policy]| check_ci_metric(Some(&until(m)), &on, embedded, ps);
        assert!(check("rouge_l", false, &[]).is_ok());
        assert!(check("fidelity_top1", true, &[]).is_ok(), "teacher-forced: against the full model, no baseline needed");
        assert!(check("fidelity_rouge_l", false, &with_base).is_ok());
        let e = check("fidelity_kl", false, &with_base).unwrap_err();
        assert!(e.contains("--ci-metric `fidelity_kl`") && e.contains("embedded backend"), "{e}");
        let e = check("fidelity_exact_match", false, &[]).unwrap_err();
        assert!(e.contains("no baseline policy"), "{e}");
        let e = check("bogus", true, &with_base).unwrap_err();
        assert!(e.contains("unknown metric") && e.contains("fidelity_top1"), "{e}");
        let off = FidelityConfig { teacher_forced: false, output: true };
        assert!(check_ci_metric(Some(&until("fidelity_top1")), &off, true, &[]).unwrap_err().contains("is off"));
    }
}
