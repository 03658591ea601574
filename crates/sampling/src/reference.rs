//! The filters written the textbook way, with a full sort of the vocabulary. Slow (O(V log V)); it
//! exists to prove the fast sampler keeps exactly the same sets (tests) and as the full-sort baseline of
//! the micro-benchmark. Weights use the sampler's own exp, so the two differ only in how the kept set is
//! found (the exp itself is tested against f64 in `simd`).

use crate::config::{Pruning, SamplerConfig};
use crate::sampler::{greedy, SampleError};

/// The kept ids (ascending) and the entropy the filter saw (None for greedy).
pub fn kept_set(cfg: &SamplerConfig, logits: &[f32]) -> Result<(Vec<u32>, Option<f64>), SampleError> {
    if cfg.is_greedy() {
        return Ok((vec![greedy(logits)?], None));
    }
    let lmax = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if logits.is_empty() {
        return Err(SampleError::EmptyLogits);
    }
    if lmax == f32::NEG_INFINITY {
        return Err(SampleError::NoFiniteLogit(logits.len()));
    }
    // Top-k: the k-th largest logit from a full descending sort; ties with it survive.
    let mut sorted_logits: Vec<f32> = logits.iter().map(|&l| if l.is_nan() { f32::NEG_INFINITY } else { l }).collect();
    sorted_logits.sort_by(|a, b| b.total_cmp(a));
    let k = cfg.top_k.max(if cfg.top_k > 0 { cfg.min_tokens_to_keep } else { 0 });
    let kth = if k > 0 && k < logits.len() { sorted_logits[k - 1] } else { f32::NEG_INFINITY };
    let inv_t = 1.0 / cfg.temperature;
    let w: Vec<f32> = logits
        .iter()
        .map(|&l| {
            if lmax == f32::INFINITY {
                return if l == f32::INFINITY { 1.0 } else { 0.0 };
            }
            if l >= kth {
                crate::simd::exp_nonpositive((l - lmax) * inv_t)
            } else {
                0.0
            }
        })
        .collect();
    let s: f64 = w.iter().map(|&x| x as f64).sum();
    let entropy: f64 = -w
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| {
            let p = x as f64 / s;
            p * p.ln()
        })
        .sum::<f64>();
    // Rank order: probability descending, id ascending (a stable descending argsort).
    let mut order: Vec<u32> = (0..logits.len() as u32).filter(|&i| w[i as usize] > 0.0).collect();
    order.sort_by(|&a, &b| w[b as usize].total_cmp(&w[a as usize]).then(a.cmp(&b)));
    let min_keep = cfg.min_tokens_to_keep.min(order.len());
    let keep_n = match cfg.pruning {
        Pruning::None => order.len(),
        Pruning::TopP | Pruning::Entropy => {
            let mass = if cfg.pruning == Pruning::Entropy {
                cfg.top_p as f64 * (entropy / cfg.entropy_threshold as f64).min(1.0)
            } else {
                cfg.top_p as f64
            };
            if mass >= 1.0 {
                order.len()
            } else {
                let target = mass * s;
                let mut acc = 0.0;
                let mut n = if target <= 0.0 { 0 } else { order.len() };
                if target > 0.0 {
                    for (j, &i) in order.iter().enumerate() {
                        acc += w[i as usize] as f64;
                        if acc >= target {
                            n = j + 1;
                            break;
                        }
                    }
                }
                n.max(min_keep)
            }
        }
        Pruning::MinP | Pruning::Eta => {
            let floor = if cfg.pruning == Pruning::MinP {
                cfg.min_p as f64
            } else {
                let eps = cfg.eta as f64;
                eps.min(eps.sqrt() * (-entropy).exp()) * s
            };
            order.iter().take_while(|&&i| w[i as usize] as f64 >= floor).count().max(min_keep)
        }
    };
    let mut kept = order[..keep_n].to_vec();
    kept.sort_unstable();
    Ok((kept, Some(entropy)))
}
