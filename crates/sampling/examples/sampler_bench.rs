//! Per-token cost of each sampler mode over V = 49,152 (SmolLM2's vocabulary), against a full-sort
//! top-p (softmax, argsort of the whole vocabulary, cumulative sum: what candle's `sample_topp` does)
//! in the same run.
//!
//!     cargo run --release -p ttc-sampling --example sampler_bench [-- --iters 400]
//!
//! Three synthetic logit shapes: `peaked` (a confident step: Gaussian bulk, sd 2, and a top token 15
//! above it), `zipf` (an uncertain step: logit = -1.1 ln(rank), ids shuffled) and `flat` (Gaussian, sd
//! 0.5, the worst case for pruning). Single thread; reports the median over 7 batches.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::time::Instant;
use ttc_sampling::{Pruning, Sampler, SamplerConfig};

const V: usize = 49_152;

fn shapes() -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let bulk = Normal::new(0.0f32, 2.0).unwrap();
    let mut peaked: Vec<f32> = (0..V).map(|_| bulk.sample(&mut rng)).collect();
    peaked[rng.random_range(0..V)] += 15.0;
    let mut zipf: Vec<f32> = (1..=V).map(|r| -1.1 * (r as f32).ln()).collect();
    zipf.shuffle(&mut rng);
    let flat_n = Normal::new(0.0f32, 0.5).unwrap();
    let flat: Vec<f32> = (0..V).map(|_| flat_n.sample(&mut rng)).collect();
    vec![("peaked", peaked), ("zipf", zipf), ("flat", flat)]
}

/// The textbook top-p with a full sort, the baseline the issue measured at ~1.9 ms per token.
struct FullSortTopP {
    p: f32,
    rng: rand_chacha::ChaCha8Rng,
    probs: Vec<f32>,
    idx: Vec<u32>,
}

impl FullSortTopP {
    fn sample(&mut self, logits: &[f32]) -> (u32, usize) {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.probs.clear();
        self.probs.extend(logits.iter().map(|&l| (l - max).exp()));
        let s: f32 = self.probs.iter().sum();
        self.probs.iter_mut().for_each(|p| *p /= s);
        self.idx.clear();
        self.idx.extend(0..logits.len() as u32);
        let probs = &self.probs;
        self.idx.sort_unstable_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]));
        let mut acc = 0.0f32;
        let mut k = self.idx.len();
        for (j, &i) in self.idx.iter().enumerate() {
            acc += probs[i as usize];
            if acc >= self.p {
                k = j + 1;
                break;
            }
        }
        let u: f32 = self.rng.random::<f32>() * acc;
        let mut c = 0.0;
        for &i in &self.idx[..k] {
            c += probs[i as usize];
            if c > u {
                return (i, k);
            }
        }
        (self.idx[k - 1], k)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median over batches of the mean microseconds per call.
fn time_it(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let batches: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    median(batches)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iters = args
        .iter()
        .position(|a| a == "--iters")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(300usize);
    // Optional filters, for profiling one cell: --mode SUBSTRING --shape NAME.
    let opt = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let (only_mode, only_shape) = (opt("--mode"), opt("--shape"));
    let base = SamplerConfig { temperature: 1.0, seed: 1, ..Default::default() };
    let modes: Vec<(&str, SamplerConfig)> = vec![
        ("greedy", SamplerConfig::greedy()),
        ("temperature 1 (no pruning)", base.clone()),
        ("top_k 50", SamplerConfig { top_k: 50, ..base.clone() }),
        ("top_p 0.9", SamplerConfig { top_p: 0.9, pruning: Pruning::TopP, ..base.clone() }),
        ("top_p 0.95", SamplerConfig { top_p: 0.95, pruning: Pruning::TopP, ..base.clone() }),
        ("min_p 0.05", SamplerConfig { min_p: 0.05, pruning: Pruning::MinP, ..base.clone() }),
        ("eta 0.0009", SamplerConfig { eta: 0.0009, pruning: Pruning::Eta, ..base.clone() }),
        (
            "entropy (top_p 0.95, threshold 1.5)",
            SamplerConfig { top_p: 0.95, entropy_threshold: 1.5, pruning: Pruning::Entropy, ..base.clone() },
        ),
    ];
    let mut shapes = shapes();
    shapes.retain(|(name, _)| only_shape.as_deref().is_none_or(|s| s == *name));
    let mut modes = modes;
    modes.retain(|(label, _)| only_mode.as_deref().is_none_or(|m| label.contains(m)));
    println!("V = {V}, {iters} calls per batch, median of 7 batches, microseconds per token (mean candidates)\n");
    print!("| mode |");
    for (name, l) in &shapes {
        let mut s = Sampler::new(base.clone()).unwrap();
        let d = s.distribution(l).unwrap();
        let h = s.stats().summary().mean_entropy.unwrap_or(0.0);
        let top = d.probs().iter().copied().fold(0.0f32, f32::max);
        print!(" {name} (H = {h:.2} nats, p1 = {top:.3}) |");
    }
    println!("\n|---|{}", "---|".repeat(shapes.len()));
    for (label, cfg) in &modes {
        print!("| {label} |");
        for (_, l) in &shapes {
            let mut s = Sampler::new(cfg.clone()).unwrap();
            let us = time_it(iters, || {
                std::hint::black_box(s.sample(std::hint::black_box(l)).unwrap());
            });
            let cand = s.stats().summary().mean_candidates.unwrap_or(0.0);
            print!(" {us:.1} ({cand:.0}) |");
        }
        println!();
    }
    if only_mode.as_deref().is_some_and(|m| !"full-sort".contains(m)) {
        return;
    }
    print!("| full-sort top_p 0.95 (baseline) |");
    for (_, l) in &shapes {
        let mut b = FullSortTopP { p: 0.95, rng: rand_chacha::ChaCha8Rng::seed_from_u64(1), probs: vec![], idx: vec![] };
        let mut k = 0;
        let us = time_it(iters, || {
            let (t, kk) = b.sample(std::hint::black_box(l));
            k = kk;
            std::hint::black_box(t);
        });
        print!(" {us:.1} ({k}) |");
    }
    println!();
}
