//! Request timings from the event stream, computed the same way for every backend.
//!
//! Definitions (docs/runner.md, same as vLLM bench): TTFT = send -> first content chunk; E2E = send -> last
//! content chunk; TPOT = (E2E - TTFT) / (N - 1) for N >= 2 output tokens; ITL = gaps between consecutive
//! content chunks; per-request throughput = N / E2E. Percentiles use linear interpolation (numpy default).

use crate::GenEvent;
use std::time::Instant;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub ttft_s: Option<f64>,
    pub e2e_s: Option<f64>,
    pub tpot_s: Option<f64>,
    pub itl_mean_s: Option<f64>,
    pub itl_p50_s: Option<f64>,
    pub itl_p99_s: Option<f64>,
    pub token_times_s: Vec<f64>,
    pub throughput_tok_s: Option<f64>,
}

impl Timings {
    /// `output_tokens` is N (from usage or a tokenizer); chunk times come from the content events.
    pub fn from_events(sent: Instant, events: &[GenEvent], output_tokens: Option<u32>) -> Timings {
        let times: Vec<Instant> = events
            .iter()
            .filter(|e| matches!(e, GenEvent::Content { .. } | GenEvent::Reasoning { .. }))
            .map(GenEvent::at)
            .collect();
        Timings::from_token_times(sent, &times, output_tokens)
    }

    /// The same from the times of the content and reasoning chunks, in order (any event type's stream).
    pub fn from_token_times(sent: Instant, times: &[Instant], output_tokens: Option<u32>) -> Timings {
        let token_times_s: Vec<f64> = times.iter().map(|t| t.saturating_duration_since(sent).as_secs_f64()).collect();
        let ttft_s = token_times_s.first().copied();
        let e2e_s = token_times_s.last().copied();
        let n = output_tokens.map(|n| n as f64).unwrap_or(token_times_s.len() as f64);
        let tpot_s = match (ttft_s, e2e_s) {
            (Some(t), Some(e)) if n >= 2.0 => Some((e - t) / (n - 1.0)),
            _ => None,
        };
        let mut itl: Vec<f64> = token_times_s.windows(2).map(|w| w[1] - w[0]).collect();
        let itl_mean_s = (!itl.is_empty()).then(|| itl.iter().sum::<f64>() / itl.len() as f64);
        itl.sort_by(|a, b| a.total_cmp(b));
        let throughput_tok_s = match e2e_s {
            Some(e) if e > 0.0 && n > 0.0 => Some(n / e),
            _ => None,
        };
        Timings {
            ttft_s,
            e2e_s,
            tpot_s,
            itl_mean_s,
            itl_p50_s: percentile_sorted(&itl, 50.0),
            itl_p99_s: percentile_sorted(&itl, 99.0),
            token_times_s,
            throughput_tok_s,
        }
    }
}

/// Percentile with linear interpolation between closest ranks (numpy's default `linear`, R type 7) over
/// an ascending slice. None for an empty slice.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * (q / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FinishReason, GenEvent};
    use std::time::Duration;

    fn content(at: Instant) -> GenEvent {
        GenEvent::Content { at, text: "x".into(), token_ids: vec![1], logprobs: vec![] }
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 99]) = [3.0, 7.6, 9.76]
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile_sorted(&v, 50.0), Some(3.0));
        assert!((percentile_sorted(&v, 90.0).unwrap() - 7.6).abs() < 1e-12);
        assert!((percentile_sorted(&v, 99.0).unwrap() - 9.76).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[], 50.0), None);
    }

    #[test]
    fn timings_follow_the_definitions() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let ev = vec![
            content(ms(100)),
            content(ms(150)),
            content(ms(250)),
            GenEvent::Finished { at: ms(300), reason: FinishReason::Stop, usage: None },
        ];
        let t = Timings::from_events(t0, &ev, Some(3));
        assert!((t.ttft_s.unwrap() - 0.1).abs() < 1e-9);
        assert!((t.e2e_s.unwrap() - 0.25).abs() < 1e-9); // last content, not the finish event
        assert!((t.tpot_s.unwrap() - 0.075).abs() < 1e-9);
        assert!((t.itl_mean_s.unwrap() - 0.075).abs() < 1e-9);
        assert!((t.throughput_tok_s.unwrap() - 12.0).abs() < 1e-9);
        let one = Timings::from_events(t0, &ev[..1], Some(1));
        assert_eq!(one.tpot_s, None);
    }
}
