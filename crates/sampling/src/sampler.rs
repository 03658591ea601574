//! The sampler the engine calls once per generated token.
//!
//! One pass over the V logits computes the tempered weights w = exp((l - max l) / T) (so the top token
//! has w = 1), their sum S and the entropy H = ln S - sum(w d) / S, where d = (l - max l) / T. While
//! it runs it collects the ids whose weight reaches a mode-specific lower bound on the final cut-off; that
//! short list (ascending ids) is a provable superset of the kept set, so the filters never touch the
//! whole vocabulary again and nothing is sorted over V. Buffers are reused across calls.

use crate::candidates::{draw, Candidates};
use crate::config::{Pruning, SamplerConfig};
use crate::rank::{at_or_before, nth_boundary, nucleus_boundary, Item};
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

/// Below this, exp underflows f32 anyway; clamping keeps w * d finite (0 * -inf would be NaN) and maps
/// NaN logits to weight 0.
const MIN_SCALED_LOGIT: f32 = -200.0;

/// What one processing pass decided, besides the buffers.
struct Processed {
    /// Whether every token with w > 0 is kept (no pruning happened); else `kept` holds the ids.
    all: bool,
    /// Sum of the kept weights, accumulated in ascending id order (the order of the draw).
    kept_total: f64,
    kept_len: usize,
    entropy: f64,
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: SamplerRng,
    /// Per-token weights of the last call; 0 = excluded (top-k cut, underflow, NaN).
    w: Vec<f32>,
    /// Ascending ids of the superset collected during the pass.
    pre: Vec<u32>,
    items: Vec<Item>,
    /// Ascending kept ids (when not `all`).
    kept: Vec<u32>,
    scratch: Vec<f32>,
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
            pre: Vec::new(),
            items: Vec::new(),
            kept: Vec::new(),
            scratch: Vec::new(),
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
            draw(self.w.iter().enumerate().map(|(i, &w)| (i as u32, w)), p.kept_total, u)
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
        let lmax = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max); // f32::max skips NaN
        if lmax == f32::NEG_INFINITY {
            return Err(SampleError::NoFiniteLogit(v));
        }
        let top_k_floor = self.top_k_floor(logits);
        let collect_floor = self.collect_floor(v);
        let (s, a) = self.weigh(logits, lmax, top_k_floor, collect_floor);
        let entropy = (s.ln() - a / s).max(0.0);

        let cfg = &self.cfg;
        let min_keep = cfg.min_tokens_to_keep;
        match cfg.pruning {
            Pruning::None => Ok(self.keep_all(s, entropy)),
            Pruning::TopP | Pruning::Entropy => {
                let mass = match cfg.pruning {
                    Pruning::Entropy => cfg.top_p as f64 * (entropy / cfg.entropy_threshold as f64).min(1.0),
                    _ => cfg.top_p as f64,
                };
                if mass >= 1.0 {
                    return Ok(self.keep_all(s, entropy));
                }
                // Tokens below (1 - mass) S / V cannot all together carry (1 - mass) S, so the tokens at
                // or above it hold >= mass S and contain the nucleus.
                let floor = (1.0 - mass) * s / v as f64;
                let w = &self.w;
                self.pre.retain(|&i| w[i as usize] as f64 >= floor);
                let pre_mass: f64 = self.pre.iter().map(|&i| w[i as usize] as f64).sum();
                if pre_mass < mass * s || self.pre.len() < min_keep {
                    self.collect_positive(); // rounding or min_keep: widen to every token
                }
                self.fill_items();
                let (k, boundary) = nucleus_boundary(&mut self.items, mass * s);
                let n_keep = min_keep.min(self.items.len());
                let boundary = if k < n_keep {
                    Some(nth_boundary(&mut self.items, n_keep))
                } else {
                    boundary
                };
                Ok(self.keep_up_to(boundary, entropy))
            }
            Pruning::MinP | Pruning::Eta => {
                // Keep w >= floor, i.e. p >= min_p * p_max (w_max = 1), or p >= eta_h (w = p S).
                let floor = match cfg.pruning {
                    Pruning::MinP => cfg.min_p as f64,
                    _ => {
                        let eps = cfg.eta as f64;
                        eps.min(eps.sqrt() * (-entropy).exp()) * s
                    }
                };
                if floor <= 0.0 {
                    return Ok(self.keep_all(s, entropy));
                }
                let w = &self.w;
                self.pre.retain(|&i| w[i as usize] as f64 >= floor);
                if self.pre.len() >= min_keep {
                    std::mem::swap(&mut self.pre, &mut self.kept);
                    let kept_total = self.kept.iter().map(|&i| self.w[i as usize] as f64).sum();
                    return Ok(Processed { all: false, kept_total, kept_len: self.kept.len(), entropy });
                }
                // Fewer than min_tokens_to_keep pass: keep the top min_tokens_to_keep instead (the
                // threshold set is itself a top prefix, so this is their union, as in HF).
                self.collect_positive();
                self.fill_items();
                let n = min_keep.min(self.items.len());
                let boundary = nth_boundary(&mut self.items, n);
                Ok(self.keep_up_to(Some(boundary), entropy))
            }
        }
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
        self.scratch.clear();
        self.scratch.extend(logits.iter().map(|&l| if l.is_nan() { f32::NEG_INFINITY } else { l }));
        let (_, kth, _) = self.scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        *kth
    }

    /// A lower bound, known before the pass, on the weight any kept token has: every token the filter
    /// keeps has w >= this (the extra ones are dropped after the pass). None = collect nothing.
    fn collect_floor(&self, v: usize) -> Option<f32> {
        let cfg = &self.cfg;
        let v = v as f64;
        let floor = match cfg.pruning {
            Pruning::None => return None,
            Pruning::TopP if cfg.top_p >= 1.0 => return None,
            Pruning::MinP if cfg.min_p <= 0.0 => return None,
            // Final floor is (1 - mass) S / V with mass <= top_p and S >= 1.
            Pruning::TopP | Pruning::Entropy => (1.0 - cfg.top_p as f64) / v,
            Pruning::MinP => cfg.min_p as f64,
            // Final floor is eta_H S with eta_H >= min(eps, sqrt(eps)/V) (H <= ln V) and S >= 1; halved
            // as a margin for the rounding of H.
            Pruning::Eta => {
                let eps = cfg.eta as f64;
                0.5 * eps.min(eps.sqrt() / v)
            }
        };
        Some(floor as f32)
    }

    /// The pass over V: fills `w`, collects `pre`, returns (S, sum of w d).
    fn weigh(&mut self, logits: &[f32], lmax: f32, top_k_floor: f32, collect: Option<f32>) -> (f64, f64) {
        let v = logits.len();
        self.w.clear();
        self.w.resize(v, 0.0);
        self.pre.clear();
        let (mut s, mut a) = (0.0f64, 0.0f64);
        if lmax == f32::INFINITY {
            // Infinite logits dominate: uniform over them (the limit of the softmax).
            for (i, (w, &l)) in self.w.iter_mut().zip(logits).enumerate() {
                if l == f32::INFINITY {
                    *w = 1.0;
                    s += 1.0;
                    self.pre.push(i as u32);
                }
            }
            return (s, 0.0);
        }
        let inv_t = 1.0 / self.cfg.temperature;
        let floor = collect.unwrap_or(f32::INFINITY).max(f32::MIN_POSITIVE);
        for (i, (w, &l)) in self.w.iter_mut().zip(logits).enumerate() {
            let d = ((l - lmax) * inv_t).max(MIN_SCALED_LOGIT);
            let e = if l >= top_k_floor { d.exp() } else { 0.0 };
            *w = e;
            s += e as f64;
            a += (e * d) as f64;
            if e >= floor {
                self.pre.push(i as u32);
            }
        }
        (s, a)
    }

    fn keep_all(&mut self, s: f64, entropy: f64) -> Processed {
        let kept_len = self.w.iter().filter(|&&w| w > 0.0).count();
        Processed { all: true, kept_total: s, kept_len, entropy }
    }

    /// `pre` = every id with w > 0.
    fn collect_positive(&mut self) {
        self.pre.clear();
        self.pre.extend(self.w.iter().enumerate().filter(|(_, &w)| w > 0.0).map(|(i, _)| i as u32));
    }

    fn fill_items(&mut self) {
        self.items.clear();
        self.items.extend(self.pre.iter().map(|&id| Item { w: self.w[id as usize], id }));
    }

    /// `kept` = the ids of `pre` that rank at or before `boundary` (none when there is no boundary, which
    /// happens only for an empty nucleus with min_tokens_to_keep satisfied, impossible as it is >= 1).
    fn keep_up_to(&mut self, boundary: Option<Item>, entropy: f64) -> Processed {
        self.kept.clear();
        let mut kept_total = 0.0f64;
        if let Some(b) = boundary {
            for &i in &self.pre {
                let w = self.w[i as usize];
                if at_or_before(w, i, &b) {
                    self.kept.push(i);
                    kept_total += w as f64;
                }
            }
        }
        Processed { all: false, kept_total, kept_len: self.kept.len(), entropy }
    }
}

/// Argmax over the logits, ties to the lowest id, NaN ignored. +inf wins (first one).
pub fn greedy(logits: &[f32]) -> Result<u32, SampleError> {
    if logits.is_empty() {
        return Err(SampleError::EmptyLogits);
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        // Strict `>` keeps the first of equal maxima; NaN compares false and is skipped.
        if l > best.map_or(f32::NEG_INFINITY, |(_, b)| b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32).ok_or(SampleError::NoFiniteLogit(logits.len()))
}
