//! Send times of an open loop: constant (every 1/rate) or Poisson (exponential gaps with mean 1/rate,
//! seeded; guidellm `scheduler/strategies.py` and vLLM `get_request` with burstiness 1 do the same). The
//! first request goes at 0.

use crate::config::Arrival;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use std::time::Duration;

/// Offsets from the start of the run, one per request; None for the closed loop.
pub fn offsets(arrival: Arrival, rate: f64, n: usize, seed: u64) -> Option<Vec<Duration>> {
    let secs: Vec<f64> = match arrival {
        Arrival::Closed => return None,
        _ if rate.is_infinite() => vec![0.0; n],
        Arrival::Constant => (0..n).map(|k| k as f64 / rate).collect(),
        Arrival::Poisson => {
            let exp = Exp::new(rate).ok()?;
            // Its own stream (seed + 2): the plan order uses seed + 1.
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(2));
            let mut t = 0.0;
            (0..n)
                .map(|k| {
                    if k > 0 {
                        t += exp.sample(&mut rng);
                    }
                    t
                })
                .collect()
        }
    };
    Some(secs.into_iter().map(crate::config::secs).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_spacing() {
        let o = offsets(Arrival::Constant, 4.0, 5, 0).unwrap();
        let ms: Vec<u128> = o.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 250, 500, 750, 1000]);
        assert!(offsets(Arrival::Closed, 4.0, 5, 0).is_none());
        assert!(offsets(Arrival::Poisson, f64::INFINITY, 3, 0).unwrap().iter().all(|d| d.is_zero()));
    }

    #[test]
    fn poisson_gaps_are_exponential_and_seeded() {
        let rate = 20.0;
        let n = 20_001;
        let o = offsets(Arrival::Poisson, rate, n, 42).unwrap();
        assert_eq!(o, offsets(Arrival::Poisson, rate, n, 42).unwrap());
        assert_ne!(o, offsets(Arrival::Poisson, rate, n, 43).unwrap());
        assert!(o[0].is_zero());
        let mut gaps: Vec<f64> = o.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean * rate - 1.0).abs() < 0.03, "mean gap {mean}");
        // Kolmogorov-Smirnov against Exp(rate): D below the 1% critical value 1.628/sqrt(n).
        gaps.sort_by(|a, b| a.total_cmp(b));
        let m = gaps.len() as f64;
        let d = gaps
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let cdf = 1.0 - (-rate * x).exp();
                (cdf - i as f64 / m).abs().max(((i + 1) as f64 / m - cdf).abs())
            })
            .fold(0.0, f64::max);
        assert!(d < 1.628 / m.sqrt(), "KS statistic {d}");
    }
}
