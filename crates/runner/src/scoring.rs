//! Quality scoring after a request finishes. The eval crate's metric registry plugs in through
//! [`Scorer`]. Names in `ttc_types::QUALITY_METRICS` go to `Record::metrics`,
//! anything else to `Record::extra_metrics`.

use std::collections::BTreeMap;
use ttc_types::{Record, RecordStatus, QUALITY_METRICS};

pub trait Scorer: Send + Sync {
    /// Metrics of one finished request (`record.prediction` against `record.reference`).
    fn score(&self, record: &Record) -> anyhow::Result<BTreeMap<String, f64>>;
}


/// Scores a successful record in place; a scorer failure is logged, never fatal.
pub fn apply(scorer: &dyn Scorer, record: &mut Record) {
    if record.status != RecordStatus::Ok {
        return;
    }
    match scorer.score(record) {
        Ok(metrics) => {
            for (name, value) in metrics {
                if QUALITY_METRICS.contains(&name.as_str()) {
                    record.metrics.insert(name, value);
                } else {
                    record.extra_metrics.insert(name, value);
                }
            }
        }
        Err(e) => tracing::warn!(
            policy = %record.policy, suite = %record.suite, sample = %record.sample_id,
            "scoring failed: {e:#}"
        ),
    }
}
