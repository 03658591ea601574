//! Drawing: reproducibility per seed, identities between configurations, the empirical frequencies of
//! the draws, stats, and configuration errors.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use ttc_sampling::{Pruning, Sampler, SamplerConfig};

fn gaussian_logits(seed: u64, v: usize, sigma: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = Normal::new(0.0f32, sigma).unwrap();
    (0..v).map(|_| n.sample(&mut rng)).collect()
}

fn draws(c: SamplerConfig, steps: &[Vec<f32>]) -> Vec<u32> {
    let mut s = Sampler::new(c).unwrap();
    steps.iter().map(|l| s.sample(l).unwrap()).collect()
}

fn steps() -> Vec<Vec<f32>> {
    (0..300).map(|i| gaussian_logits(i, 500, 2.0)).collect()
}

#[test]
fn same_seed_same_tokens_different_seed_different_tokens() {
    let st = steps();
    let c = SamplerConfig { temperature: 0.8, top_p: 0.9, pruning: Pruning::TopP, seed: 7, ..Default::default() };
    let a = draws(c.clone(), &st);
    assert_eq!(a, draws(c.clone(), &st));
    let b = draws(SamplerConfig { seed: 8, ..c }, &st);
    assert_ne!(a, b);
    // Pinned: ChaCha8 is fixed by its spec, so these ids stay the same across builds and platforms.
    assert_eq!(&a[..8], &[146, 87, 315, 402, 186, 266, 61, 371]);
}

#[test]
fn top_p_one_equals_plain_temperature_sampling() {
    let st = steps();
    for seed in 0..5 {
        let plain = SamplerConfig { temperature: 1.3, seed, ..Default::default() };
        let top_p = SamplerConfig { pruning: Pruning::TopP, top_p: 1.0, ..plain.clone() };
        let entropy = SamplerConfig { pruning: Pruning::Entropy, top_p: 1.0, entropy_threshold: 1e-3, ..plain.clone() };
        let reference = draws(plain, &st);
        assert_eq!(draws(top_p, &st), reference);
        // Every step here has H > 1e-3, so the entropy nucleus is the full top_p = 1 nucleus.
        assert_eq!(draws(entropy, &st), reference);
    }
}

#[test]
fn sample_draws_what_distribution_describes() {
    // Two samplers with the same seed: one samples, the other builds the distribution and draws from it
    // with its own RNG. Same uniform per step, same token.
    let st = steps();
    for pruning in [Pruning::None, Pruning::TopP, Pruning::MinP, Pruning::Eta, Pruning::Entropy] {
        let c = SamplerConfig {
            temperature: 0.9,
            pruning,
            top_p: if matches!(pruning, Pruning::TopP | Pruning::Entropy) { 0.8 } else { 1.0 },
            min_p: if pruning == Pruning::MinP { 0.1 } else { 0.0 },
            eta: if pruning == Pruning::Eta { 0.01 } else { 0.0 },
            entropy_threshold: if pruning == Pruning::Entropy { 4.0 } else { 0.0 },
            seed: 3,
            ..Default::default()
        };
        let mut a = Sampler::new(c.clone()).unwrap();
        let mut b = Sampler::new(c).unwrap();
        for l in &st {
            let d = b.distribution(l).unwrap();
            let y = b.sample_from(&d);
            assert!(d.prob(y) > 0.0);
            assert_eq!(a.sample(l).unwrap(), y, "{pruning:?}");
        }
    }
}

/// Pearson chi-square statistic of observed counts against expected probabilities.
fn chi_square(counts: &[u64], probs: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts.iter().zip(probs).map(|(&c, &p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p)).sum()
}

#[test]
fn empirical_frequencies_match_the_processed_distribution() {
    // p = softmax([2, 1, 0.5, 0, -1] / 0.7), pruned by min-p 0.05: w = exp((l - 2) / 0.7) is
    // 1, .240, .117, .0574, .0138, so ids 0..=3 stay.
    let logits = [2.0f32, 1.0, 0.5, 0.0, -1.0];
    let c = SamplerConfig { temperature: 0.7, min_p: 0.05, pruning: Pruning::MinP, seed: 11, ..Default::default() };
    let mut s = Sampler::new(c).unwrap();
    let d = s.distribution(&logits).unwrap();
    assert_eq!(d.ids(), &[0, 1, 2, 3]);
    let w: Vec<f64> = logits[..4].iter().map(|&l| ((l - 2.0) as f64 / 0.7).exp()).collect();
    let z: f64 = w.iter().sum();
    let expect: Vec<f64> = w.iter().map(|x| x / z).collect();
    for (p, e) in d.probs().iter().zip(&expect) {
        assert!((*p as f64 - e).abs() < 1e-6);
    }
    let n = 200_000;
    let mut counts = [0u64; 5];
    for _ in 0..n {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    assert_eq!(counts[4], 0, "a pruned token was drawn");
    // df = 3; P(chi2_3 > 21.11) = 1e-4. The seed is fixed, so this is deterministic; the bound says a
    // correct sampler would fail with another seed only once in 10,000.
    let chi2 = chi_square(&counts[..4], &expect);
    assert!(chi2 < 21.11, "chi-square {chi2}, counts {counts:?}");
}

#[test]
fn stats_report_candidates_entropy_and_time() {
    let p = [0.05f64, 0.4, 0.1, 0.3, 0.15];
    let logits: Vec<f32> = p.iter().map(|x| x.ln() as f32).collect();
    let c = SamplerConfig { top_p: 0.6, pruning: Pruning::TopP, ..Default::default() };
    let mut s = Sampler::new(c).unwrap();
    for _ in 0..10 {
        s.sample(&logits).unwrap();
    }
    let sum = s.take_stats().summary();
    assert_eq!(sum.mean_candidates, Some(2.0));
    assert!((sum.mean_entropy.unwrap() - 1.392321).abs() < 1e-5);
    assert!(sum.sampler_us_per_token.unwrap() > 0.0);
    assert_eq!(s.stats().calls, 0, "take_stats resets");
    let mut g = Sampler::new(SamplerConfig::greedy()).unwrap();
    g.sample(&logits).unwrap();
    let gs = g.stats().summary();
    assert_eq!((gs.mean_candidates, gs.mean_entropy), (Some(1.0), None));
}

#[test]
fn config_deserialises_infers_the_mode_and_rejects_bad_values() {
    let parse = |s: &str| serde_json::from_str::<SamplerConfig>(s).map_err(|e| e.to_string());
    let c = parse(r#"{"temperature": 0.7, "top_p": 0.95, "entropy_threshold": 1.5}"#).unwrap();
    assert_eq!((c.pruning, c.top_p, c.entropy_threshold), (Pruning::Entropy, 0.95, 1.5));
    assert_eq!(parse(r#"{"top_p": 0.9}"#).unwrap().pruning, Pruning::TopP);
    assert_eq!(parse(r#"{"min_p": 0.1}"#).unwrap().pruning, Pruning::MinP);
    assert_eq!(parse(r#"{"pruning": "eta", "eta": 0.0009}"#).unwrap().pruning, Pruning::Eta);
    assert_eq!(parse(r#"{"temperature": 0}"#).unwrap(), SamplerConfig::greedy());
    // Round trip.
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<SamplerConfig>(&json).unwrap(), c);

    let bad = [
        (r#"{"temperature": -1}"#, "`temperature`"),
        (r#"{"top_p": 0}"#, "`top_p`"),
        (r#"{"top_p": 1.5}"#, "`top_p`"),
        (r#"{"min_p": 1.0}"#, "`min_p`"),
        (r#"{"pruning": "eta"}"#, "`eta`"),
        (r#"{"pruning": "entropy", "top_p": 0.9}"#, "`entropy_threshold`"),
        (r#"{"min_tokens_to_keep": 0}"#, "`min_tokens_to_keep`"),
        (r#"{"pruning": "min_p", "top_p": 0.9}"#, "`top_p`"),
        (r#"{"pruning": "top_p", "min_p": 0.1}"#, "`min_p`"),
        (r#"{"top_p": 0.9, "min_p": 0.1}"#, "`pruning`"),
        (r#"{"top_k": -1}"#, "`top_k`"),
        (r#"{"min_tokens_to_keep": -2}"#, "`min_tokens_to_keep`"),
        (r#"{"pruning": "mirostat"}"#, "mirostat"),
        (r#"{"top_pp": 0.9}"#, "unknown field `top_pp`"),
    ];
    for (text, needle) in bad {
        let e = parse(text).expect_err(text);
        assert!(e.contains(needle), "{text}: error {e:?} does not name {needle}");
    }
    // Programmatic construction goes through the same checks.
    let e = SamplerConfig { top_p: f32::NAN, pruning: Pruning::TopP, ..Default::default() }.validated();
    assert_eq!(e.unwrap_err().field, "top_p");
    assert!(Sampler::new(SamplerConfig { temperature: f32::INFINITY, ..Default::default() }).is_err());
}
