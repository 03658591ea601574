//! Fidelity in a run (docs/metrics.md "Fidelity"):
//!
//! - [`teacher_forced_pass`]: before the measured requests, asks the backend for each planned request's
//!   teacher-forced fidelity (the embedded engine replays the policy along the baseline's greedy trajectory). It
//!   runs apart from the measured requests so that it never shares the cores with a timing.
//! - [`FidelityJoin`]: in the collector, attaches those values to each record, and scores each prediction against
//!   the baseline policy's prediction for the same sample (ROUGE-L, exact match). A record that arrives before its
//!   sample's baseline waits for it (at most until the run ends, then it is stored without output fidelity).

use crate::backend::Backend;
use crate::plan::RequestKey;
use crate::loadgen::Job;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use ttc_types::{Fidelity, Record, RecordStatus};

/// Teacher-forced fidelity per planned request.
pub type ForcedFidelity = HashMap<RequestKey, Fidelity>;

/// Asks the backend for every job's teacher-forced fidelity. Returns None when the backend cannot measure it
/// (HTTP backends). A request whose replay fails is logged and left without the columns.
pub async fn teacher_forced_pass(backend: &dyn Backend, jobs: &[Job], stop: &AtomicBool) -> Option<ForcedFidelity> {
    let started = Instant::now();
    let mut out = ForcedFidelity::new();
    // Sample by sample, so each baseline trajectory is computed once and reused while it is fresh.
    let mut order: Vec<&Job> = jobs.iter().collect();
    order.sort_by(|a, b| (&a.entry.item.suite, &a.entry.item.sample_id).cmp(&(&b.entry.item.suite, &b.entry.item.sample_id)));
    for (i, job) in order.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match backend.fidelity(&job.request).await {
            None => return None,
            Some(Ok(f)) => {
                out.insert(job.entry.key(), f);
            }
            Some(Err(e)) => tracing::warn!(
                policy = %job.entry.policy.name, sample = %job.entry.item.sample_id, "fidelity replay failed: {e}"
            ),
        }
        if i == 0 {
            tracing::info!(requests = jobs.len(), "fidelity: replaying every policy along the baseline's greedy trajectory");
        }
    }
    tracing::info!(requests = out.len(), seconds = started.elapsed().as_secs_f64(), "fidelity pass done");
    Some(out)
}

/// Joins fidelity onto records as they reach the collector (see the module docs).
pub struct FidelityJoin {
    /// Shared with the run, which adds each later round's values.
    forced: Arc<Mutex<ForcedFidelity>>,
    /// The baseline policy's name when output-level fidelity is on.
    baseline: Option<String>,
    /// Baseline predictions by (suite, sample); None when that baseline request failed.
    baseline_out: HashMap<(String, String), Option<String>>,
    held: HashMap<(String, String), Vec<Record>>,
}

impl FidelityJoin {
    pub fn new(forced: ForcedFidelity, baseline: Option<String>) -> FidelityJoin {
        FidelityJoin { forced: Arc::new(Mutex::new(forced)), baseline, baseline_out: HashMap::new(), held: HashMap::new() }
    }

    /// The teacher-forced values, to add a later sampling round's.
    pub fn forced_handle(&self) -> Arc<Mutex<ForcedFidelity>> {
        self.forced.clone()
    }

    /// Takes one record; returns the records ready to be stored (none while it waits for its baseline).
    pub fn push(&mut self, mut rec: Record) -> Vec<Record> {
        if let Some(f) = self.forced.lock().ok().and_then(|mut m| m.remove(&rec.key())) {
            rec.fidelity = f;
        }
        let Some(baseline) = &self.baseline else { return vec![rec] };
        let sample = (rec.suite.clone(), rec.sample_id.clone());
        if &rec.policy == baseline {
            let reference = (rec.status == RecordStatus::Ok).then(|| rec.prediction.clone());
            let mut ready = vec![rec];
            ready.extend(self.held.remove(&sample).unwrap_or_default());
            for r in &mut ready {
                score_output(r, reference.as_deref());
            }
            self.baseline_out.insert(sample, reference);
            return ready;
        }
        match self.baseline_out.get(&sample) {
            Some(reference) => {
                score_output(&mut rec, reference.as_deref());
                vec![rec]
            }
            None => {
                self.held.entry(sample).or_default().push(rec);
                Vec::new()
            }
        }
    }

    /// Records still waiting when the run ends (their baseline never came): stored without output fidelity.
    pub fn drain(&mut self) -> Vec<Record> {
        self.held.drain().flat_map(|(_, v)| v).collect()
    }
}

/// ROUGE-L (rouge-score's, no stemming) and exact match against the baseline's prediction; nothing when either
/// request failed.
fn score_output(rec: &mut Record, reference: Option<&str>) {
    let Some(reference) = reference.filter(|_| rec.status == RecordStatus::Ok) else { return };
    rec.fidelity.rouge_l = Some(ttc_eval::metrics::rouge::rouge_l(&rec.prediction, reference, false));
    rec.fidelity.exact_match = Some(f64::from(u8::from(rec.prediction == reference)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(policy: &str, sample: &str, prediction: &str) -> Record {
        let mut r = ttc_results::testutil::record(policy, "s", sample);
        r.prediction = prediction.into();
        r
    }

    #[test]
    fn records_wait_for_their_baseline_and_are_scored_against_it() {
        let mut forced = ForcedFidelity::new();
        forced.insert(("p".into(), "s".into(), "1".into()), Fidelity { top1: Some(0.5), ..Fidelity::default() });
        let mut j = FidelityJoin::new(forced, Some("baseline".into()));
        assert!(j.push(rec("p", "1", "the cat sat")).is_empty(), "held until the baseline of sample 1 arrives");
        let ready = j.push(rec("baseline", "1", "the cat sat down"));
        assert_eq!(ready.len(), 2);
        assert_eq!((ready[0].fidelity.rouge_l, ready[0].fidelity.exact_match), (Some(1.0), Some(1.0)));
        let p = &ready[1];
        assert_eq!(p.fidelity.top1, Some(0.5), "teacher-forced values attached");
        // LCS 3 of 3 and 4 tokens: P = 1, R = 3/4, F = 6/7.
        assert!((p.fidelity.rouge_l.unwrap() - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(p.fidelity.exact_match, Some(0.0));
        // After the baseline: scored at once. Another sample without a baseline: drained unscored.
        assert_eq!(j.push(rec("q", "1", "the cat sat down"))[0].fidelity.exact_match, Some(1.0));
        assert!(j.push(rec("q", "2", "x")).is_empty());
        let left = j.drain();
        assert_eq!((left.len(), left[0].fidelity.rouge_l), (1, None));
    }
}
