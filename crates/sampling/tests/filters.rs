//! Kept sets on hand-made distributions, exactly as each formula says, and equivalence of the fast
//! (selection-based) sampler with the full-sort definitions on many random distributions.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use ttc_sampling::{reference, Pruning, Sampler, SamplerConfig};

/// p = [0.05, 0.4, 0.1, 0.3, 0.15] for ids 0..5. Sorted: id1 .40, id3 .30, id4 .15, id2 .10, id0 .05.
/// Entropy H = 1.392321 nats.
const P5: [f64; 5] = [0.05, 0.4, 0.1, 0.3, 0.15];

fn logits_of(p: &[f64]) -> Vec<f32> {
    p.iter().map(|&x| x.ln() as f32).collect()
}

fn cfg(pruning: Pruning) -> SamplerConfig {
    SamplerConfig { temperature: 1.0, pruning, ..Default::default() }
}

fn kept(c: SamplerConfig, logits: &[f32]) -> Vec<u32> {
    let mut s = Sampler::new(c).expect("valid config");
    s.distribution(logits).expect("finite logits").ids().to_vec()
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_the_mass() {
    let l = logits_of(&P5);
    let top_p = |p: f32| kept(SamplerConfig { top_p: p, ..cfg(Pruning::TopP) }, &l);
    assert_eq!(top_p(0.3), vec![1]); // .40 >= .3
    assert_eq!(top_p(0.6), vec![1, 3]); // .40 + .30 = .70
    assert_eq!(top_p(0.75), vec![1, 3, 4]); // .85
    assert_eq!(top_p(0.9), vec![1, 2, 3, 4]); // .95
    assert_eq!(top_p(0.96), vec![0, 1, 2, 3, 4]);
    assert_eq!(top_p(1.0), vec![0, 1, 2, 3, 4]);
    // min_tokens_to_keep widens a too-small nucleus.
    let c = SamplerConfig { top_p: 0.3, min_tokens_to_keep: 3, ..cfg(Pruning::TopP) };
    assert_eq!(kept(c, &l), vec![1, 3, 4]);
}

#[test]
fn top_p_probabilities_are_renormalised_over_the_kept_set() {
    let l = logits_of(&P5);
    let mut s = Sampler::new(SamplerConfig { top_p: 0.6, ..cfg(Pruning::TopP) }).unwrap();
    let d = s.distribution(&l).unwrap();
    assert_eq!(d.ids(), &[1, 3]);
    assert!((d.probs()[0] - 0.4 / 0.7).abs() < 1e-6);
    assert!((d.probs()[1] - 0.3 / 0.7).abs() < 1e-6);
}

#[test]
fn min_p_keeps_tokens_above_a_fraction_of_the_top_probability() {
    let l = logits_of(&P5);
    let min_p = |m: f32| kept(SamplerConfig { min_p: m, ..cfg(Pruning::MinP) }, &l);
    assert_eq!(min_p(0.5), vec![1, 3]); // p >= 0.20
    assert_eq!(min_p(0.3), vec![1, 3, 4]); // p >= 0.12
    assert_eq!(min_p(0.2), vec![1, 2, 3, 4]); // p >= 0.08
    assert_eq!(min_p(0.9), vec![1]); // p >= 0.36
    let c = SamplerConfig { min_p: 0.9, min_tokens_to_keep: 2, ..cfg(Pruning::MinP) };
    assert_eq!(kept(c, &l), vec![1, 3]);
}

#[test]
fn eta_threshold_follows_the_entropy() {
    let l = logits_of(&P5);
    let h: f64 = -P5.iter().map(|p| p * p.ln()).sum::<f64>();
    assert!((h - 1.392321).abs() < 1e-6);
    // eps = 0.1: eta = min(0.1, sqrt(0.1) e^-H = 0.07859) -> drops only p = 0.05.
    let eta = |e: f32| kept(SamplerConfig { eta: e, ..cfg(Pruning::Eta) }, &l);
    assert_eq!(eta(0.1), vec![1, 2, 3, 4]);
    // eps = 0.2: eta = min(0.2, 0.11114) -> keeps p >= 0.111.
    assert_eq!(eta(0.2), vec![1, 3, 4]);
    // eps = 0.01: eta = 0.01 (the cap) -> keeps everything here.
    assert_eq!(eta(0.01), vec![0, 1, 2, 3, 4]);
    // A peaked distribution: H = 0.1677, eta = min(0.02, sqrt(.02) e^-H = 0.1196) = 0.02 keeps p >= 0.02.
    let peaked = logits_of(&[0.97, 0.01, 0.01, 0.01]);
    assert_eq!(eta_on(0.02, &peaked), vec![0]);
    fn eta_on(e: f32, l: &[f32]) -> Vec<u32> {
        kept(SamplerConfig { eta: e, ..cfg(Pruning::Eta) }, l)
    }
}

#[test]
fn entropy_mode_tightens_the_nucleus_below_the_threshold() {
    let ent = |top_p: f32, theta: f32, l: &[f32]| {
        kept(SamplerConfig { top_p, entropy_threshold: theta, ..cfg(Pruning::Entropy) }, l)
    };
    let l = logits_of(&P5); // H = 1.3923
    // theta 1.5: mass = 0.95 * 1.3923 / 1.5 = 0.8818 -> .40 .70 .85 .95: four tokens.
    assert_eq!(ent(0.95, 1.5, &l), vec![1, 2, 3, 4]);
    // theta 3.0: mass = 0.95 * 0.4641 = 0.4409 -> two tokens.
    assert_eq!(ent(0.95, 3.0, &l), vec![1, 3]);
    // H above theta: plain top_p nucleus (0.9 -> four tokens).
    assert_eq!(ent(0.9, 1.0, &l), vec![1, 2, 3, 4]);
    // Peaked: p = [.9, .04, .03, .03], H = 0.43397. Plain top-p 0.95 keeps 3 (tie .03: lowest id wins);
    // the entropy variant's mass is 0.95 * 0.43397 / 1.5 = 0.2748 -> the top token only.
    let peaked = logits_of(&[0.9, 0.04, 0.03, 0.03]);
    assert_eq!(kept(SamplerConfig { top_p: 0.95, ..cfg(Pruning::TopP) }, &peaked), vec![0, 1, 2]);
    assert_eq!(ent(0.95, 1.5, &peaked), vec![0]);
}

#[test]
fn top_k_keeps_ties_with_the_kth_logit() {
    let l = logits_of(&P5);
    let top_k = |k: usize| kept(SamplerConfig { top_k: k, ..cfg(Pruning::None) }, &l);
    assert_eq!(top_k(1), vec![1]);
    assert_eq!(top_k(2), vec![1, 3]);
    assert_eq!(top_k(4), vec![1, 2, 3, 4]);
    assert_eq!(top_k(5), vec![0, 1, 2, 3, 4]);
    assert_eq!(top_k(50), vec![0, 1, 2, 3, 4]);
    let tied = [1.0f32, 2.0, 2.0, 0.0];
    assert_eq!(kept(SamplerConfig { top_k: 1, ..cfg(Pruning::None) }, &tied), vec![1, 2]);
}

#[test]
fn filters_apply_after_temperature_and_top_k() {
    let l = logits_of(&P5);
    // Top-k 3 renormalises {1,3,4} to .4706 .3529 .1765; top-p .8 then keeps two.
    let c = SamplerConfig { top_k: 3, top_p: 0.8, ..cfg(Pruning::TopP) };
    assert_eq!(kept(c, &l), vec![1, 3]);
    // At T = 1, top-p .8 keeps three; at T = 0.5 the distribution is p^2 / sum: .5614 .3158 .0789 ...
    assert_eq!(kept(SamplerConfig { top_p: 0.8, ..cfg(Pruning::TopP) }, &l), vec![1, 3, 4]);
    let c = SamplerConfig { temperature: 0.5, top_p: 0.8, ..cfg(Pruning::TopP) };
    assert_eq!(kept(c, &l), vec![1, 3]);
}

#[test]
fn greedy_is_argmax_with_ties_to_the_lowest_id() {
    let mut g = Sampler::new(SamplerConfig::greedy()).unwrap();
    assert_eq!(g.sample(&[1.0, 3.0, 3.0, f32::NAN, 2.0]).unwrap(), 1);
    assert_eq!(g.sample(&[f32::NAN, -1.0, f32::NEG_INFINITY]).unwrap(), 1);
    assert_eq!(g.sample(&[0.0, f32::INFINITY, f32::INFINITY]).unwrap(), 1);
    assert_eq!(g.distribution(&[0.0, 5.0, 1.0]).unwrap().ids(), &[1]);
    assert!(g.sample(&[]).is_err());
    assert!(g.sample(&[f32::NAN, f32::NEG_INFINITY]).is_err());
    // Greedy consumes no randomness: the sampled token does not depend on the seed.
    let mut g2 = Sampler::new(SamplerConfig { seed: 99, ..SamplerConfig::greedy() }).unwrap();
    assert_eq!(g2.sample(&[1.0, 3.0, 3.0]).unwrap(), 1);
}

#[test]
fn masked_and_infinite_logits() {
    // -inf and NaN tokens are never candidates; +inf tokens take all the mass, uniformly.
    let l = [f32::NEG_INFINITY, 1.0, f32::NAN, 0.0];
    assert_eq!(kept(cfg(Pruning::None), &l), vec![1, 3]);
    let mut s = Sampler::new(cfg(Pruning::None)).unwrap();
    let d = s.distribution(&[0.0, f32::INFINITY, 3.0, f32::INFINITY]).unwrap();
    assert_eq!(d.ids(), &[1, 3]);
    assert_eq!(d.probs(), &[0.5, 0.5]);
    assert!(s.sample(&[f32::NEG_INFINITY; 4]).is_err());
}

/// Logit shapes for the equivalence test: Gaussian at several scales, a peaked one, quantised (ties),
/// and one with masked / NaN entries.
fn random_logits(rng: &mut rand_chacha::ChaCha8Rng, v: usize, shape: usize) -> Vec<f32> {
    let sigma = [0.3, 1.0, 2.5, 6.0][shape % 4];
    let n = Normal::new(0.0f32, sigma).unwrap();
    let mut l: Vec<f32> = (0..v).map(|_| n.sample(rng)).collect();
    match shape / 4 {
        1 => {
            for _ in 0..5 {
                let i = rng.random_range(0..v);
                l[i] += rng.random_range(5.0..15.0);
            }
        }
        2 => l.iter_mut().for_each(|x| *x = (*x * 2.0).round() / 2.0),
        3 => {
            for _ in 0..v / 10 {
                let i = rng.random_range(0..v);
                l[i] = if rng.random_bool(0.5) { f32::NEG_INFINITY } else { f32::NAN };
            }
        }
        _ => {}
    }
    l
}

#[test]
fn fast_kept_sets_equal_the_full_sort_definitions() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let modes: Vec<SamplerConfig> = vec![
        cfg(Pruning::None),
        SamplerConfig { top_p: 0.9, ..cfg(Pruning::TopP) },
        SamplerConfig { top_p: 0.5, ..cfg(Pruning::TopP) },
        SamplerConfig { top_p: 0.99, ..cfg(Pruning::TopP) },
        SamplerConfig { min_p: 0.05, ..cfg(Pruning::MinP) },
        SamplerConfig { min_p: 0.3, ..cfg(Pruning::MinP) },
        SamplerConfig { eta: 0.0009, ..cfg(Pruning::Eta) },
        SamplerConfig { eta: 0.05, ..cfg(Pruning::Eta) },
        SamplerConfig { top_p: 0.95, entropy_threshold: 1.5, ..cfg(Pruning::Entropy) },
        SamplerConfig { top_p: 1.0, entropy_threshold: 4.0, ..cfg(Pruning::Entropy) },
    ];
    let mut cases = 0;
    for round in 0..64 {
        let v = [7, 64, 1000, 5000][round % 4];
        let logits = random_logits(&mut rng, v, round % 16);
        for base in &modes {
            let c = SamplerConfig {
                temperature: [0.5, 1.0, 1.7][round % 3],
                top_k: [0, 0, 5, 300][round / 4 % 4],
                min_tokens_to_keep: [1, 1, 3][round / 3 % 3],
                ..base.clone()
            };
            let (expect, h_ref) = reference::kept_set(&c, &logits).unwrap();
            let mut s = Sampler::new(c.clone()).unwrap();
            let got = s.distribution(&logits).unwrap();
            assert_eq!(got.ids(), expect.as_slice(), "round {round} cfg {c:?}");
            let sum: f64 = got.probs().iter().map(|&p| p as f64).sum();
            assert!((sum - 1.0).abs() < 1e-5, "probabilities sum to {sum}");
            let h = s.stats().summary().mean_entropy.unwrap();
            assert!((h - h_ref.unwrap()).abs() < 1e-6 * (1.0 + h), "entropy {h} vs {h_ref:?}");
            cases += 1;
        }
    }
    assert_eq!(cases, 640);
}

#[test]
fn fast_kept_sets_equal_the_full_sort_on_the_real_vocabulary_size() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(49152);
    for shape in [1, 2, 5, 6] {
        let logits = random_logits(&mut rng, 49152, shape);
        for c in [
            SamplerConfig { top_p: 0.95, ..cfg(Pruning::TopP) },
            SamplerConfig { min_p: 0.05, ..cfg(Pruning::MinP) },
            SamplerConfig { eta: 0.0009, ..cfg(Pruning::Eta) },
            SamplerConfig { top_p: 0.95, entropy_threshold: 1.5, ..cfg(Pruning::Entropy) },
        ] {
            let (expect, _) = reference::kept_set(&c, &logits).unwrap();
            assert_eq!(kept(c.clone(), &logits), expect, "shape {shape} {c:?}");
        }
    }
}
