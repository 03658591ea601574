//! Speculative sampling is lossless: the tokens it emits are distributed exactly as the target p,
//! whatever the draft q (Leviathan et al. 2023, Thm. 3.5). Checked empirically on small synthetic
//! distributions, for a sampled draft and for a deterministic (one-hot) draft, position by position.
//!
//! Tolerance: every cell's frequency f must lie within 5 standard errors of p, that is
//! |f - p| <= 5 sqrt(p(1-p)/n) + 1/n. For a correct rule one cell exceeds 5 sigma with probability
//! ~5.7e-7; union-bounded over the at most 60 cells checked per test, a false failure has probability
//! < 1e-4 for any seed, and the seeds are fixed, so the tests are deterministic. A negative control
//! shows the check catches a wrong rule.

use rand::{Rng, SeedableRng};
use ttc_sampling::{verify_stochastic, Candidates, DraftDist, Pruning, Sampler, SamplerConfig, Verification};

const TRIALS: usize = 200_000;

fn c(probs: &[f32]) -> Candidates {
    Candidates::new((0..probs.len() as u32).collect(), probs.to_vec()).unwrap()
}

/// Err names the first cell outside the tolerance.
fn check_matches(counts: &[u64], p: &Candidates) -> Result<(), String> {
    let n: u64 = counts.iter().sum();
    if n < 1000 {
        return Err(format!("too few samples ({n})"));
    }
    for (id, &k) in counts.iter().enumerate() {
        let pi = p.prob(id as u32) as f64;
        let f = k as f64 / n as f64;
        let tol = 5.0 * (pi * (1.0 - pi) / n as f64).sqrt() + 1.0 / n as f64;
        if (f - pi).abs() > tol {
            return Err(format!("token {id} frequency {f:.5} vs p {pi:.5} (tol {tol:.5}, n {n})"));
        }
    }
    Ok(())
}

fn assert_matches(counts: &[u64], p: &Candidates, label: &str) {
    if let Err(e) = check_matches(counts, p) {
        panic!("{label}: {e}");
    }
}

/// Emitted-token counts per position (0-based) over the trials. `draft` draws the draft tokens and
/// their distributions for one trial; `verify` is the rule under test.
fn emitted_counts<D, V>(vocab: usize, positions: usize, seed: u64, mut draft: D, mut verify: V) -> Vec<Vec<u64>>
where
    D: FnMut(&mut rand_chacha::ChaCha8Rng) -> (Vec<u32>, Vec<DraftDist>),
    V: FnMut(&[u32], &[DraftDist], &mut rand_chacha::ChaCha8Rng) -> Verification,
{
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut counts = vec![vec![0u64; vocab]; positions];
    for _ in 0..TRIALS {
        let (d, q) = draft(&mut rng);
        let v = verify(&d, &q, &mut rng);
        for (pos, tok) in v.emitted(&d).into_iter().enumerate() {
            counts[pos][tok as usize] += 1;
        }
    }
    counts
}

fn target() -> Vec<Candidates> {
    vec![
        c(&[0.1, 0.2, 0.3, 0.25, 0.15]),
        // Zero-probability tokens on both sides: id 0 has q > 0 = p (always rejected), id 1 has p > 0 = q.
        c(&[0.0, 0.5, 0.2, 0.3, 0.0]),
        c(&[0.05, 0.05, 0.6, 0.1, 0.2]),
    ]
}

#[test]
fn sampled_draft_emits_the_target_distribution() {
    let p = target();
    let q = [c(&[0.3, 0.3, 0.1, 0.1, 0.2]), c(&[0.4, 0.0, 0.3, 0.3, 0.0])];
    let counts = emitted_counts(
        5,
        3,
        42,
        |rng| {
            let d: Vec<u32> = q.iter().map(|qi| qi.sample_with(rng.random())).collect();
            (d, q.iter().cloned().map(DraftDist::Sampled).collect())
        },
        |d, qd, rng| verify_stochastic(d, qd, &p, rng).unwrap(),
    );
    for (pos, (cnt, pi)) in counts.iter().zip(&p).enumerate() {
        assert_matches(cnt, pi, &format!("sampled draft, position {pos}"));
    }
    assert_eq!(counts[1][0], 0, "a token with p = 0 was emitted");
}

#[test]
fn one_hot_draft_emits_the_target_distribution() {
    let p = target();
    // A deterministic drafter that proposes [2, 3], or [4, 1] on odd trials.
    let mut flip = false;
    let counts = emitted_counts(
        5,
        3,
        43,
        |_| {
            flip = !flip;
            let d = if flip { vec![2, 3] } else { vec![4, 1] };
            (d, vec![DraftDist::OneHot, DraftDist::OneHot])
        },
        |d, qd, rng| verify_stochastic(d, qd, &p, rng).unwrap(),
    );
    for (pos, (cnt, pi)) in counts.iter().zip(&p).enumerate() {
        assert_matches(cnt, pi, &format!("one-hot draft, position {pos}"));
    }
}

#[test]
fn sampler_distributions_on_both_sides_stay_lossless() {
    // The engine's use: p and q are the processed distributions of two samplers (different logits,
    // temperature and pruning) over 12 tokens.
    let target_logits: Vec<f32> = (0..12).map(|i| ((i * 7) % 12) as f32 * 0.4).collect();
    let draft_logits: Vec<f32> = (0..12).map(|i| ((i * 5) % 12) as f32 * 0.3).collect();
    let mut ps = Sampler::new(SamplerConfig { temperature: 0.8, top_p: 0.9, pruning: Pruning::TopP, ..Default::default() }).unwrap();
    let mut qs = Sampler::new(SamplerConfig { temperature: 1.2, ..Default::default() }).unwrap();
    let p = [ps.distribution(&target_logits).unwrap(), ps.distribution(&draft_logits).unwrap()];
    let q = qs.distribution(&draft_logits).unwrap();
    assert!(p[0].len() < 12, "top-p pruned something");
    let counts = emitted_counts(
        12,
        2,
        44,
        |rng| (vec![q.sample_with(rng.random())], vec![DraftDist::Sampled(q.clone())]),
        |d, qd, rng| verify_stochastic(d, qd, &p, rng).unwrap(),
    );
    assert_matches(&counts[0], &p[0], "sampler distributions, position 0");
    assert_matches(&counts[1], &p[1], "sampler distributions, bonus");
}

/// Negative control: resampling from p (instead of the residual) after a rejection is a classic bug;
/// the check above must reject it.
#[test]
fn the_check_catches_a_wrong_rejection_rule() {
    let p = target();
    let q = c(&[0.3, 0.3, 0.1, 0.1, 0.2]);
    let counts = emitted_counts(
        5,
        2,
        45,
        |rng| (vec![q.sample_with(rng.random())], vec![DraftDist::Sampled(q.clone())]),
        |d, _, rng| {
            let x = d[0];
            let r: f64 = rng.random();
            if r * (q.prob(x) as f64) < p[0].prob(x) as f64 {
                Verification { accepted: 1, next_token: p[1].sample_with(rng.random()) }
            } else {
                Verification { accepted: 0, next_token: p[0].sample_with(rng.random()) }
            }
        },
    );
    let e = check_matches(&counts[0], &p[0]).expect_err("the tolerance is too loose to see a wrong rule");
    // Under the wrong rule token y comes out with min(p, q)(y) + (1 - beta) p(y), beta = sum min(p, q)
    // = .65: token 0 gets .1 + .35 * .1 = .135 instead of .1.
    assert!(e.starts_with("token 0 frequency 0.13"), "{e}");
}
