//! Token-bucket rate limit with reservations: a request takes a token, and when the bucket is empty it
//! takes one on credit and waits until that token would have arrived. Requests are thus spaced exactly
//! 1/rate apart once the initial burst is spent, in the order they asked (the GCRA form of a token
//! bucket). Uses tokio's clock so tests can run it with paused time.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// `rate` tokens per second, at most `capacity` stored; starts full. An infinite rate never waits.
    pub fn new(rate: f64, capacity: f64) -> TokenBucket {
        let capacity = capacity.max(1.0);
        TokenBucket { rate, capacity, state: Mutex::new((capacity, Instant::now())) }
    }

    /// Takes one token at `now`; returns how long the caller must wait before using it.
    pub fn reserve(&self, now: Instant) -> Duration {
        if self.rate.is_infinite() {
            return Duration::ZERO;
        }
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (tokens, last) = &mut *st;
        if now > *last {
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.capacity);
            *last = now;
        }
        *tokens -= 1.0;
        if *tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-*tokens / self.rate)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_paced_then_refill_capped() {
        let b = TokenBucket::new(10.0, 2.0);
        let t0 = Instant::now();
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as u64;
        assert_eq!(ms(b.reserve(t0)), 0);
        assert_eq!(ms(b.reserve(t0)), 0);
        assert_eq!(ms(b.reserve(t0)), 100);
        assert_eq!(ms(b.reserve(t0)), 200);
        // 10 s idle: the debt of 2 is repaid and the bucket refills, but only to its capacity.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(ms(b.reserve(later)), 0);
        assert_eq!(ms(b.reserve(later)), 0);
        assert_eq!(ms(b.reserve(later)), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn sustained_rate_is_the_configured_rate() {
        let b = TokenBucket::new(50.0, 1.0);
        let t0 = Instant::now();
        for _ in 0..101 {
            b.acquire().await;
        }
        // 1 immediate token, then 100 more at 50/s = 2 s.
        let took = Instant::now().duration_since(t0).as_secs_f64();
        assert!((took - 2.0).abs() < 0.01, "{took}");
    }

    #[test]
    fn infinite_rate_never_waits() {
        let b = TokenBucket::new(f64::INFINITY, 1.0);
        let now = Instant::now();
        assert!((0..1000).all(|_| b.reserve(now).is_zero()));
    }
}
