//! What every consumer of a quality metric must agree on: its name (a store column), its direction, and
//! which metrics headline a suite. Scoring (the eval crate), comparisons, Pareto fronts and KPIs (the results
//! crate) all read this one table, so a metric cannot be "closer to one" in one place and "higher is better"
//! in another.

use serde::{Deserialize, Serialize};

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
    /// Best at 1.0 (a ratio); 0.8 and 1.25 are equally far.
    CloserToOne,
}

impl Direction {
    /// How far `x` is from the best value, in the metric's units: lower is better for every direction. For
    /// closer-to-one this is |x − 1|, so ranking, comparing and gating all follow the same order.
    pub fn badness(self, x: f64) -> f64 {
        match self {
            Direction::HigherIsBetter => -x,
            Direction::LowerIsBetter => x,
            Direction::CloserToOne => (x - 1.0).abs(),
        }
    }

    /// Whether `candidate` is strictly better than `other`.
    pub fn is_better(self, candidate: f64, other: f64) -> bool {
        self.badness(candidate) < self.badness(other)
    }
}

/// Quality metrics that get their own nullable column in the store (`metric_<name>`), with their directions.
/// The eval crate's scorer registry uses exactly these names; anything else a scorer emits is kept in
/// `Record::extra_metrics`.
pub const QUALITY_METRIC_DIRECTIONS: &[(&str, Direction)] = &[
    ("exact_match", Direction::HigherIsBetter),
    ("exact_match_normalized", Direction::HigherIsBetter),
    ("precision", Direction::HigherIsBetter),
    ("recall", Direction::HigherIsBetter),
    ("f1", Direction::HigherIsBetter),
    ("rouge1", Direction::HigherIsBetter),
    ("rouge2", Direction::HigherIsBetter),
    ("rouge_l", Direction::HigherIsBetter),
    ("rouge_lsum", Direction::HigherIsBetter),
    ("bleu", Direction::HigherIsBetter),
    ("semantic_similarity", Direction::HigherIsBetter),
    ("length_ratio", Direction::CloserToOne),
    ("customer_service_coverage", Direction::HigherIsBetter),
    ("sales_coverage", Direction::HigherIsBetter),
    ("support_coverage", Direction::HigherIsBetter),
    ("retention_coverage", Direction::HigherIsBetter),
    ("overall_keyword_coverage", Direction::HigherIsBetter),
    ("f1_chain", Direction::HigherIsBetter),
    ("f1_graph", Direction::HigherIsBetter),
];

/// The quality metric columns, in store order.
pub const QUALITY_METRICS: &[&str] = &{
    let mut names = [""; QUALITY_METRIC_DIRECTIONS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = QUALITY_METRIC_DIRECTIONS[i].0;
        i += 1;
    }
    names
};

/// The headline ("primary") quality metric of a suite is the first of these that its records carry.
pub const PRIMARY_METRIC_PRIORITY: &[&str] =
    &["rouge_l", "f1_graph", "f1_chain", "overall_keyword_coverage", "f1", "exact_match_normalized", "exact_match"];

/// The direction of a quality metric column; `None` for names outside [`QUALITY_METRICS`].
pub fn quality_direction(name: &str) -> Option<Direction> {
    QUALITY_METRIC_DIRECTIONS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closer_to_one_ranks_by_distance_from_one() {
        let d = Direction::CloserToOne;
        assert!(d.is_better(1.05, 0.9) && d.is_better(0.9, 1.2) && !d.is_better(0.8, 1.2));
        assert_eq!(d.badness(0.75), 0.25);
        assert!(Direction::HigherIsBetter.is_better(0.5, 0.4) && Direction::LowerIsBetter.is_better(0.4, 0.5));
        assert_eq!(quality_direction("length_ratio"), Some(Direction::CloserToOne));
        assert_eq!(quality_direction("rouge_l"), Some(Direction::HigherIsBetter));
        assert_eq!(QUALITY_METRICS.len(), QUALITY_METRIC_DIRECTIONS.len());
        assert_eq!(QUALITY_METRICS[11], "length_ratio");
        assert!(PRIMARY_METRIC_PRIORITY.iter().all(|m| QUALITY_METRICS.contains(m)));
    }
}
