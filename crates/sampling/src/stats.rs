//! Per-request accumulator of the pruning internals the results store keeps (issue 4): mean candidate-set
//! size after pruning, mean entropy of the distribution the filter saw, sampler time per token.

use std::time::Duration;
use ttc_types::PolicyStats;

/// Sums over every sampler call (`sample` or `distribution`) of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerStats {
    /// Sampler calls.
    pub calls: u64,
    /// Sum of candidate-set sizes after pruning (1 for greedy).
    pub candidates_sum: u64,
    /// Sum of entropies (nats) over the calls that computed one (not greedy).
    pub entropy_sum: f64,
    pub entropy_calls: u64,
    /// Wall time spent inside the sampler.
    pub elapsed: Duration,
}

/// The means, ready to copy into [`PolicyStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PruningSummary {
    pub mean_candidates: Option<f64>,
    /// None when every call was greedy (greedy does not compute the softmax).
    pub mean_entropy: Option<f64>,
    pub sampler_us_per_token: Option<f64>,
}

impl SamplerStats {
    pub(crate) fn record(&mut self, candidates: usize, entropy: Option<f64>, elapsed: Duration) {
        self.calls += 1;
        self.candidates_sum += candidates as u64;
        if let Some(h) = entropy {
            self.entropy_sum += h;
            self.entropy_calls += 1;
        }
        self.elapsed += elapsed;
    }

    /// Adds another accumulator (e.g. a drafter's sampler) into this one.
    pub fn merge(&mut self, other: &SamplerStats) {
        self.calls += other.calls;
        self.candidates_sum += other.candidates_sum;
        self.entropy_sum += other.entropy_sum;
        self.entropy_calls += other.entropy_calls;
        self.elapsed += other.elapsed;
    }

    pub fn summary(&self) -> PruningSummary {
        let per_call = |x: f64| (self.calls > 0).then(|| x / self.calls as f64);
        PruningSummary {
            mean_candidates: per_call(self.candidates_sum as f64),
            mean_entropy: (self.entropy_calls > 0).then(|| self.entropy_sum / self.entropy_calls as f64),
            sampler_us_per_token: per_call(self.elapsed.as_secs_f64() * 1e6),
        }
    }

    /// Writes the three pruning fields of `stats` (leaves the others alone).
    pub fn fill_policy_stats(&self, stats: &mut PolicyStats) {
        let s = self.summary();
        stats.mean_candidates = s.mean_candidates;
        stats.mean_entropy = s.mean_entropy;
        stats.sampler_us_per_token = s.sampler_us_per_token;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_over_calls() {
        let mut s = SamplerStats::default();
        assert_eq!(s.summary(), PruningSummary::default());
        s.record(3, Some(1.0), Duration::from_micros(10));
        s.record(5, Some(2.0), Duration::from_micros(30));
        s.record(1, None, Duration::from_micros(20));
        let m = s.summary();
        assert_eq!(m.mean_candidates, Some(3.0));
        assert_eq!(m.mean_entropy, Some(1.5));
        assert!((m.sampler_us_per_token.unwrap() - 20.0).abs() < 1e-9);
        let mut p = PolicyStats { drafted_tokens: Some(4), ..Default::default() };
        s.fill_policy_stats(&mut p);
        assert_eq!(p.mean_candidates, Some(3.0));
        assert_eq!(p.drafted_tokens, Some(4));
        let mut t = SamplerStats::default();
        t.merge(&s);
        t.merge(&s);
        assert_eq!(t.calls, 6);
        assert_eq!(t.summary().mean_candidates, Some(3.0));
    }
}
