//! The sampler the engine calls once per generated token.
//!
//! Two vectorised loops over the V logits compute the tempered weights w = exp((l - max l) / T) (so the
//! top token has w = 1), their sum S and the entropy H = ln S - sum(w d) / S, where d = (l - max l) / T.
//! Threshold filters (min-p, eta) are then one compare pass; the nucleus (top-p, entropy) is a radix
//! step on the weights' bits plus a selection inside one histogram bucket. Nothing sorts V. Buffers are
//! reused across calls, so `sample` allocates nothing after the first call.

use crate::candidates::{draw, Candidates};
use crate::config::{Pruning, SamplerConfig};
use crate::rank::{at_or_before, kth_largest, nth_boundary, nucleus_radix, Item};
use crate::simd::{argmax, exp_nonpositive, max_value};
use crate::stats::SamplerStats;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use thiserror::Error;

/// The sampler's RNG: ChaCha8, whose output is fixed by its spec, so a seed reproduces across builds
/// and platforms (rand's `StdRng` makes no such promise).
pub type SamplerRng = rand_chacha::ChaCha8Rng;

/// Logits the sampler cannot draw from.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SampleError {
    #[error("sampler: empty logits")]
    EmptyLogits,
    #[error("sampler: no finite logit among {0} (all NaN or -inf)")]
    NoFiniteLogit(usize),
}

/// Below this exp is 0 anyway; clamping keeps w * d finite (0 * -inf would be NaN).
const MIN_SCALED_LOGIT: f32 = -200.0;

/// What one processing pass decided, besides the buffers.
struct Processed {
    /// Whether every token with w > 0 is kept (no pruning happened); else `kept` holds the ids.
    all: bool,
    /// Sum of the kept weights (S itself when `all`).
    kept_total: f64,
    kept_len: usize,
    entropy: f64,
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: SamplerRng,
    /// Per-token weights of the last call; 0 = excluded (top-k cut, underflow, NaN).
    w: Vec<f32>,
    /// Ascending ids of a superset of the nucleus.
    pre: Vec<u32>,
    /// Sum of `w` over each block of `BLOCK` tokens, so a draw over the whole vocabulary skips blocks.
    block_sums: Vec<f64>,
    items: Vec<Item>,
    /// Ascending kept ids (when not `all`).
    kept: Vec<u32>,
    scratch: Vec<f32>,
    hist: Vec<f64>,
    stats: SamplerStats,
}

impl Sampler {
    /// `cfg` should come validated (deserialization and [`SamplerConfig::validated`] do it); an invalid
    /// config is rejected here too.
    pub fn new(cfg: SamplerConfig) -> Result<Self, crate::ConfigError> {
        cfg.validate()?;
        Ok(Sampler {
            rng: SamplerRng::seed_from_u64(cfg.seed),
            cfg,
            w: Vec::new(),
            block_sums: Vec::new(),
            pre: Vec::new(),
            items: Vec::new(),
            kept: Vec::new(),
            scratch: Vec::new(),
            hist: Vec::new(),
            stats: SamplerStats::default(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// The RNG, for drafts and speculative verification, so one seed drives the whole request.
    pub fn rng_mut(&mut self) -> &mut SamplerRng {
        &mut self.rng
    }

    pub fn stats(&self) -> &SamplerStats {
        &self.stats
    }

    /// Returns the accumulated stats and starts a new accumulation.
    pub fn take_stats(&mut self) -> SamplerStats {
        std::mem::take(&mut self.stats)
    }

    /// Draws the next token. Greedy (temperature 0) is argmax with ties to the lowest id and uses no
    /// randomness; otherwise exactly one uniform number is consumed per call.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SampleError> {
        let start = Instant::now();
        if self.cfg.is_greedy() {
            let id = greedy(logits)?;
            self.stats.record(1, None, start.elapsed());
            return Ok(id);
        }
        let p = self.process(logits)?;
        let u: f64 = self.rng.random();
        let id = if p.all {
            draw_blocked(&self.w, &self.block_sums, p.kept_total, u)
        } else {
            draw(self.kept.iter().map(|&i| (i, self.w[i as usize])), p.kept_total, u)
        };
        self.stats.record(p.kept_len, Some(p.entropy), start.elapsed());
        Ok(id)
    }

    /// The final processed distribution [`Sampler::sample`] draws from, normalised, ids ascending.
    /// Greedy gives a one-hot distribution. Consumes no randomness.
    pub fn distribution(&mut self, logits: &[f32]) -> Result<Candidates, SampleError> {
        let start = Instant::now();
        if self.cfg.is_greedy() {
            let id = greedy(logits)?;
            self.stats.record(1, None, start.elapsed());
            return Ok(Candidates::one_hot(id));
        }
        let p = self.process(logits)?;
        let inv = 1.0 / p.kept_total;
        let (ids, probs): (Vec<u32>, Vec<f32>) = if p.all {
            self.w
                .iter()
                .enumerate()
                .filter(|(_, &w)| w > 0.0)
                .map(|(i, &w)| (i as u32, (w as f64 * inv) as f32))
                .unzip()
        } else {
            self.kept.iter().map(|&i| (i, (self.w[i as usize] as f64 * inv) as f32)).unzip()
        };
        self.stats.record(p.kept_len, Some(p.entropy), start.elapsed());
        Ok(Candidates::from_parts_unchecked(ids, probs))
    }

    /// Draws from a distribution (e.g. one returned by [`Sampler::distribution`]) with this sampler's RNG.
    pub fn sample_from(&mut self, candidates: &Candidates) -> u32 {
        let u: f64 = self.rng.random();
        candidates.sample_with(u)
    }

    /// Temperature, top-k, softmax statistics and the pruning filter; fills `w` and `kept`.
    fn process(&mut self, logits: &[f32]) -> Result<Processed, SampleError> {
        let v = logits.len();
        if v == 0 {
            return Err(SampleError::EmptyLogits);
        }
        let lmax = max_value(logits);
        if lmax == f32::NEG_INFINITY {
            return Err(SampleError::NoFiniteLogit(v));
        }
        let top_k_floor = self.top_k_floor(logits);
        let pass = self.weigh(logits, lmax, top_k_floor);
        let s = pass.sum;
        let entropy = (s.ln() - pass.sum_wd / s).max(0.0);

        let cfg = &self.cfg;
        let min_keep = cfg.min_tokens_to_keep.min(pass.positive);
        let p = match cfg.pruning {
            Pruning::None => return Ok(Processed { all: true, kept_total: s, kept_len: pass.positive, entropy }),
            Pruning::TopP | Pruning::Entropy => {
                let mass = match cfg.pruning {
                    Pruning::Entropy => cfg.top_p as f64 * (entropy / cfg.entropy_threshold as f64).min(1.0),
                    _ => cfg.top_p as f64,
                };
                if mass >= 1.0 {
                    return Ok(Processed { all: true, kept_total: s, kept_len: pass.positive, entropy });
                }
                let boundary =
                    nucleus_radix(&self.w, mass * s, &mut self.hist, &mut self.pre, &mut self.items);
                self.keep_up_to_within_pre(boundary, entropy)
            }
            Pruning::MinP | Pruning::Eta => {
                // Keep w >= floor, i.e. p >= min_p * p_max (w_max = 1), or p >= eta_H (w = p S).
                let floor = match cfg.pruning {
                    Pruning::MinP => cfg.min_p as f64,
                    _ => {
                        let eps = cfg.eta as f64;
                        eps.min(eps.sqrt() * (-entropy).exp()) * s
                    }
                };
                if floor <= 0.0 {
                    return Ok(Processed { all: true, kept_total: s, kept_len: pass.positive, entropy });
                }
                compact(&self.w, &mut self.kept, |x, _| x as f64 >= floor);
                self.kept_processed(entropy)
            }
        };
        if p.kept_len >= min_keep {
            return Ok(p);
        }
        // Fewer than min_tokens_to_keep survive: keep the top min_tokens_to_keep instead. Every filter's
        // kept set is a top prefix, so this is the union of the two, as in HF.
        self.items.clear();
        let positive = self.w.iter().enumerate().filter(|(_, &x)| x > 0.0);
        self.items.extend(positive.map(|(i, &x)| Item { w: x, id: i as u32 }));
        let boundary = nth_boundary(&mut self.items, min_keep);
        Ok(self.keep_up_to(Some(boundary), entropy))
    }

    /// The logit value of the k-th best token (k = max(top_k, min_tokens_to_keep)); tokens below it are
    /// cut, ties with it kept (HF `TopKLogitsWarper`). -inf when top-k is off or keeps everything.
    fn top_k_floor(&mut self, logits: &[f32]) -> f32 {
        let k = self.cfg.top_k;
        if k == 0 {
            return f32::NEG_INFINITY;
        }
        let k = k.max(self.cfg.min_tokens_to_keep);
        if k >= logits.len() {
            return f32::NEG_INFINITY;
        }
        kth_largest(logits, k, &mut self.scratch)
    }

    /// The passes over V: w = exp((l - max) / T) (0 below the top-k floor), S = sum w, sum w d, and the
    /// count of w > 0.
    fn weigh(&mut self, logits: &[f32], lmax: f32, top_k_floor: f32) -> WeighPass {
        let v = logits.len();
        self.w.clear();
        self.w.resize(v, 0.0);
        if lmax == f32::INFINITY {
            // Infinite logits dominate: uniform over them (the limit of the softmax).
            let mut n = 0;
            for (w, &l) in self.w.iter_mut().zip(logits) {
                if l == f32::INFINITY {
                    *w = 1.0;
                    n += 1;
                }
            }
            self.block_sums.clear();
            self.block_sums.extend(self.w.chunks(BLOCK).map(|b| b.iter().map(|&x| x as f64).sum::<f64>()));
            return WeighPass { sum: n as f64, sum_wd: 0.0, positive: n };
        }
        let inv_t = 1.0 / self.cfg.temperature;
        // `>` is false for NaN, so NaN logits get the floor and weight 0.
        let scaled = |l: f32| {
            let d = (l - lmax) * inv_t;
            if d > MIN_SCALED_LOGIT {
                d
            } else {
                MIN_SCALED_LOGIT
            }
        };
        // Two simple loops vectorise where one fused loop does not: first the weights...
        for (w, &l) in self.w.iter_mut().zip(logits) {
            let e = exp_nonpositive(scaled(l));
            *w = if l >= top_k_floor { e } else { 0.0 };
        }
        // ...then the sums, per block of BLOCK tokens: S in f64 lanes (it normalises every draw); sum w d,
        // only for the entropy, in f32 lanes flushed to f64 every block.
        let (mut a, mut n) = ([0.0f32; 16], [0u32; 16]);
        let (mut s_total, mut a_total) = (0.0f64, 0.0f64);
        self.block_sums.clear();
        for (wb, lb) in self.w.chunks(BLOCK).zip(logits.chunks(BLOCK)) {
            let mut s = [0.0f64; 16];
            let (wc, lc) = (wb.chunks_exact(16), lb.chunks_exact(16));
            let (wr, lr) = (wc.remainder(), lc.remainder());
            for (wc, lc) in wc.zip(lc) {
                for j in 0..16 {
                    let e = wc[j];
                    s[j] += e as f64;
                    a[j] += e * scaled(lc[j]);
                    n[j] += (e > 0.0) as u32;
                }
            }
            for (j, (&e, &l)) in wr.iter().zip(lr).enumerate() {
                s[j] += e as f64;
                a[j] += e * scaled(l);
                n[j] += (e > 0.0) as u32;
            }
            let block: f64 = s.iter().sum();
            self.block_sums.push(block);
            s_total += block;
            a_total += a.iter().map(|&x| x as f64).sum::<f64>();
            a = [0.0; 16];
        }
        WeighPass { sum: s_total, sum_wd: a_total, positive: n.iter().sum::<u32>() as usize }
    }

    /// `kept` = the positive-weight ids (ascending) that rank at or before `boundary`; none without one.
    fn keep_up_to(&mut self, boundary: Option<Item>, entropy: f64) -> Processed {
        match boundary {
            Some(b) => compact(&self.w, &mut self.kept, |x, i| x > 0.0 && at_or_before(x, i, &b)),
            None => self.kept.clear(),
        }
        self.kept_processed(entropy)
    }

    /// Like [`Sampler::keep_up_to`], scanning only the ids in `pre` (a superset, ascending).
    fn keep_up_to_within_pre(&mut self, boundary: Option<Item>, entropy: f64) -> Processed {
        self.kept.clear();
        if let Some(b) = boundary {
            let w = &self.w;
            self.kept.extend(self.pre.iter().copied().filter(|&i| {
                let x = w[i as usize];
                x > 0.0 && at_or_before(x, i, &b)
            }));
        }
        self.kept_processed(entropy)
    }

    fn kept_processed(&self, entropy: f64) -> Processed {
        // Summed in ascending id order, the order of the draw.
        let kept_total = self.kept.iter().map(|&i| self.w[i as usize] as f64).sum();
        Processed { all: false, kept_total, kept_len: self.kept.len(), entropy }
    }
}

/// Tokens per block of the weight sums.
const BLOCK: usize = 1024;

/// `out` = the ids i (ascending) with `keep(w[i], i)`. Branch-free: every id is written and the length
/// advances only when kept, so an unpredictable filter costs no mispredictions.
fn compact(w: &[f32], out: &mut Vec<u32>, keep: impl Fn(f32, u32) -> bool) {
    out.clear();
    out.resize(w.len() + 1, 0);
    let mut n = 0usize;
    for (i, &x) in w.iter().enumerate() {
        out[n] = i as u32;
        n += keep(x, i as u32) as usize;
    }
    out.truncate(n);
}

/// [`draw`] over the whole vocabulary: skips to the block where the cumulative weight crosses
/// `u * total`, then scans that block in id order.
fn draw_blocked(w: &[f32], block_sums: &[f64], total: f64, u: f64) -> u32 {
    let target = u * total;
    let mut acc = 0.0f64;
    for (b, &bs) in block_sums.iter().enumerate() {
        if acc + bs > target {
            let start = b * BLOCK;
            for (i, &x) in w[start..].iter().take(BLOCK).enumerate() {
                acc += x as f64;
                if x > 0.0 && acc > target {
                    return (start + i) as u32;
                }
            }
            // Rounding between the block sum and the scan: go on with the next blocks.
        } else {
            acc += bs;
        }
    }
    // Rounding at the very end: the last token with positive weight.
    w.iter().rposition(|&x| x > 0.0).unwrap_or(0) as u32
}

struct WeighPass {
    sum: f64,
    sum_wd: f64,
    positive: usize,
}

/// Argmax over the logits, ties to the lowest id, NaN ignored. +inf wins (first one).
pub fn greedy(logits: &[f32]) -> Result<u32, SampleError> {
    if logits.is_empty() {
        return Err(SampleError::EmptyLogits);
    }
    match argmax(logits) {
        Some((id, _)) => Ok(id as u32),
        None => Err(SampleError::NoFiniteLogit(logits.len())),
    }
}
