//! Retry delays: the server's `Retry-After` when it sent one (capped at `max_retry_after`), else
//! exponential backoff with full jitter, U(0, min(cap, base * 2^(retry - 1))) (Brooker, "Exponential
//! Backoff And Jitter", AWS Architecture Blog, 2015: full jitter spreads synchronized clients best).

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_retry_after: Duration,
}

impl Backoff {
    /// Delay before retry number `retry` (1 = the first retry).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self.base.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(60) as i32);
        let ceiling = exp.min(self.cap.as_secs_f64());
        if ceiling <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(rng.random_range(0.0..ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling() {
        let b = backoff();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (retry, ceiling_ms) in [(1u32, 100.0), (2, 200.0), (3, 400.0), (4, 800.0), (5, 1000.0), (30, 1000.0)] {
            let draws: Vec<f64> = (0..4000).map(|_| b.delay(retry, None, &mut rng).as_secs_f64() * 1000.0).collect();
            let max = draws.iter().cloned().fold(0.0, f64::max);
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            assert!(max < ceiling_ms, "retry {retry}: {max} >= {ceiling_ms}");
            assert!(max > ceiling_ms * 0.98, "retry {retry}: jitter should reach near the ceiling");
            // Uniform on [0, c): mean c/2.
            assert!((mean / ceiling_ms - 0.5).abs() < 0.03, "retry {retry}: mean {mean}");
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let b = backoff();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(b.delay(1, Some(Duration::from_millis(1500)), &mut rng), Duration::from_millis(1500));
        assert_eq!(b.delay(1, Some(Duration::from_secs(3600)), &mut rng), Duration::from_secs(5));
        assert_eq!(b.delay(1, Some(Duration::ZERO), &mut rng), Duration::ZERO);
    }
}
