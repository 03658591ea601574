//! Fidelity of a policy to the full model, per request (docs/metrics.md "Fidelity"). Two families:
//!
//! - teacher-forced (embedded engine only): the policy replays its own decision rule along the baseline's
//!   greedy trajectory for the same prompt and each step is compared with the full model's distribution;
//! - output-level (any backend): the policy's prediction compared with the baseline policy's prediction for
//!   the same sample in the same run.
//!
//! Every field is optional: a record carries what could be measured for it.

use crate::Direction;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fidelity {
    /// Steps compared: the length of the baseline's greedy trajectory (its stop token included).
    pub steps: Option<u32>,
    /// Mean over steps of the probability that the policy's decision rule picks the baseline's token
    /// (1 or 0 for a greedy policy; the token's probability under the policy's sampler otherwise).
    pub top1: Option<f64>,
    /// Mean over steps of KL(full ‖ policy) in nats, over the policy's candidate set (see `pruned_mass`).
    pub kl: Option<f64>,
    /// Mean over steps of |top-5(full) ∩ top-5(policy)| / 5.
    pub top5: Option<f64>,
    /// First step whose most likely policy token differs from the baseline's; `steps` when none does.
    pub first_divergence: Option<u32>,
    /// Mean over steps of the full model's probability mass outside the policy's candidate set.
    pub pruned_mass: Option<f64>,
    /// ROUGE-L F1 of the prediction against the baseline policy's prediction for the same sample.
    pub rouge_l: Option<f64>,
    /// 1 when the prediction equals the baseline policy's prediction exactly, else 0.
    pub exact_match: Option<f64>,
}

/// The fidelity metrics by name (column `fidelity_<name>`), with their directions. Analysis, comparisons and
/// `--until-ci-width --ci-metric` refer to them by these names.
pub const FIDELITY_METRICS: &[(&str, Direction)] = &[
    ("fidelity_top1", Direction::HigherIsBetter),
    ("fidelity_kl", Direction::LowerIsBetter),
    ("fidelity_top5", Direction::HigherIsBetter),
    ("fidelity_first_divergence", Direction::HigherIsBetter),
    ("fidelity_pruned_mass", Direction::LowerIsBetter),
    ("fidelity_rouge_l", Direction::HigherIsBetter),
    ("fidelity_exact_match", Direction::HigherIsBetter),
];

/// Metrics only the teacher-forced replay gives (the embedded engine); the others need only a baseline.
pub const TEACHER_FORCED_METRICS: &[&str] =
    &["fidelity_top1", "fidelity_kl", "fidelity_top5", "fidelity_first_divergence", "fidelity_pruned_mass"];

/// Direction of a fidelity metric; None for other names.
pub fn fidelity_direction(name: &str) -> Option<Direction> {
    FIDELITY_METRICS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

impl Fidelity {
    /// A metric's value by its name in [`FIDELITY_METRICS`].
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "fidelity_top1" => self.top1,
            "fidelity_kl" => self.kl,
            "fidelity_top5" => self.top5,
            "fidelity_first_divergence" => self.first_divergence.map(f64::from),
            "fidelity_pruned_mass" => self.pruned_mass,
            "fidelity_rouge_l" => self.rouge_l,
            "fidelity_exact_match" => self.exact_match,
            _ => None,
        }
    }

    /// The measured metrics as (name, value) pairs, in [`FIDELITY_METRICS`] order.
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        FIDELITY_METRICS.iter().filter_map(|(n, _)| self.get(n).map(|v| (*n, v))).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_none() && self.values().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_a_getter() {
        let f = Fidelity {
            steps: Some(4),
            top1: Some(0.5),
            kl: Some(0.1),
            top5: Some(0.8),
            first_divergence: Some(2),
            pruned_mass: Some(0.0),
            rouge_l: Some(0.7),
            exact_match: Some(0.0),
        };
        assert_eq!(f.values().len(), FIDELITY_METRICS.len());
        assert_eq!(f.get("fidelity_first_divergence"), Some(2.0));
        assert_eq!(fidelity_direction("fidelity_kl"), Some(Direction::LowerIsBetter));
        assert!(TEACHER_FORCED_METRICS.iter().all(|m| fidelity_direction(m).is_some()));
        assert!(Fidelity::default().is_empty());
    }
}
