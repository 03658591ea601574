//! Speculative-decoding verification rules as pure functions on distributions.
//!
//! - Greedy (T = 0): accept the longest draft prefix equal to the target's argmax, then emit the target's
//!   argmax at the first mismatch (correction) or after the last draft (bonus). mistral.rs
//!   `speculative/verifier.rs`, non-stochastic branch; engine.md section 2.2.
//! - Stochastic: speculative sampling of Leviathan et al. 2023 (Alg. 1) and Chen et al. 2023 (Alg. 2):
//!   accept draft x with probability min(1, p(x)/q(x)); on the first rejection emit y ~ norm(max(0, p - q)),
//!   after all accepted emit a bonus y ~ p_{gamma+1}. The emitted tokens are distributed exactly as p.
//!   Same rule as HF `generation/utils.py::_speculative_sampling`. p and q must be the final processed
//!   distributions each side samples from ([`crate::Sampler::distribution`]).

use crate::candidates::{draw, Candidates};
use rand::Rng;
use thiserror::Error;

/// The outcome of verifying one draft: `accepted` draft tokens are kept, then `next_token` follows.
/// Tokens emitted this step: `draft[..accepted]` then `next_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub accepted: usize,
    pub next_token: u32,
}

impl Verification {
    /// The tokens this step emits.
    pub fn emitted(&self, draft: &[u32]) -> Vec<u32> {
        let mut out = draft[..self.accepted.min(draft.len())].to_vec();
        out.push(self.next_token);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("verify: {draft} draft tokens need {} target positions, got {target}", draft + 1)]
    TargetLength { draft: usize, target: usize },
    #[error("verify: {draft} draft tokens but {q} draft distributions")]
    DraftLength { draft: usize, q: usize },
}

/// The distribution the drafter sampled draft token i from.
#[derive(Debug, Clone, PartialEq)]
pub enum DraftDist {
    /// A deterministic drafter (n-gram lookup, greedy draft model): q is one-hot at the drafted token.
    OneHot,
    /// A sampled draft: q is this distribution.
    Sampled(Candidates),
}

impl DraftDist {
    fn prob(&self, drafted: u32, id: u32) -> f32 {
        match self {
            DraftDist::OneHot => (id == drafted) as u32 as f32,
            DraftDist::Sampled(q) => q.prob(id),
        }
    }
}

/// Greedy verification. `target_argmax[i]` is the target's greedy token at draft position i, with one
/// more entry after the last draft token (the bonus position).
pub fn verify_greedy(draft: &[u32], target_argmax: &[u32]) -> Result<Verification, VerifyError> {
    if target_argmax.len() != draft.len() + 1 {
        return Err(VerifyError::TargetLength { draft: draft.len(), target: target_argmax.len() });
    }
    let accepted = draft.iter().zip(target_argmax).take_while(|(d, t)| d == t).count();
    Ok(Verification { accepted, next_token: target_argmax[accepted] })
}

/// Stochastic verification (speculative sampling). `q[i]` is the draft distribution of `draft[i]`, `p`
/// has `draft.len() + 1` target distributions (the last one for the bonus token). Uses one uniform per
/// tested draft token plus one for the emitted token.
///
/// Edge cases as in mistral.rs `finish_verified_step_stochastic`: q(x) = 0 < p(x) accepts (ratio
/// infinite); p(x) = 0 rejects; a residual max(0, p - q) with no mass falls back to p.
pub fn verify_stochastic<R: Rng + ?Sized>(
    draft: &[u32],
    q: &[DraftDist],
    p: &[Candidates],
    rng: &mut R,
) -> Result<Verification, VerifyError> {
    if q.len() != draft.len() {
        return Err(VerifyError::DraftLength { draft: draft.len(), q: q.len() });
    }
    if p.len() != draft.len() + 1 {
        return Err(VerifyError::TargetLength { draft: draft.len(), target: p.len() });
    }
    for (i, (&x, qi)) in draft.iter().zip(q).enumerate() {
        let px = p[i].prob(x) as f64;
        let qx = qi.prob(x, x) as f64;
        let r: f64 = rng.random();
        // r < min(1, p/q) written without the division: for q = 0 it accepts iff p > 0.
        if r * qx < px {
            continue;
        }
        let u: f64 = rng.random();
        return Ok(Verification { accepted: i, next_token: sample_residual(&p[i], qi, x, u) });
    }
    let u: f64 = rng.random();
    Ok(Verification { accepted: draft.len(), next_token: p[draft.len()].sample_with(u) })
}

/// y ~ norm(max(0, p - q)); only ids in p's support can have positive residual. Falls back to p when
/// the residual has no mass (p <= q everywhere, possible only through rounding).
fn sample_residual(p: &Candidates, q: &DraftDist, drafted: u32, u: f64) -> u32 {
    let residual = |(&id, &pi): (&u32, &f32)| (id, (pi - q.prob(drafted, id)).max(0.0));
    let total: f64 = p.ids().iter().zip(p.probs()).map(residual).map(|(_, r)| r as f64).sum();
    if total > 0.0 {
        draw(p.ids().iter().zip(p.probs()).map(residual), total, u)
    } else {
        p.sample_with(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn c(ids: &[u32], probs: &[f32]) -> Candidates {
        Candidates::new(ids.to_vec(), probs.to_vec()).expect("valid test distribution")
    }

    #[test]
    fn greedy_accepts_longest_matching_prefix() {
        assert_eq!(verify_greedy(&[5, 6, 7], &[5, 6, 9, 1]).unwrap(), Verification { accepted: 2, next_token: 9 });
        assert_eq!(verify_greedy(&[5, 6, 7], &[5, 6, 7, 1]).unwrap(), Verification { accepted: 3, next_token: 1 });
        assert_eq!(verify_greedy(&[5, 6, 7], &[4, 6, 7, 1]).unwrap(), Verification { accepted: 0, next_token: 4 });
        assert_eq!(verify_greedy(&[], &[3]).unwrap(), Verification { accepted: 0, next_token: 3 });
        assert_eq!(verify_greedy(&[1], &[1]), Err(VerifyError::TargetLength { draft: 1, target: 1 }));
        let v = verify_greedy(&[5, 6, 7], &[5, 6, 9, 1]).unwrap();
        assert_eq!(v.emitted(&[5, 6, 7]), vec![5, 6, 9]);
    }

    #[test]
    fn stochastic_with_one_hot_target_is_greedy_verification() {
        // Greedy target (one-hot p) and a deterministic draft must reproduce the greedy rule exactly.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let p = [Candidates::one_hot(5), Candidates::one_hot(6), Candidates::one_hot(9), Candidates::one_hot(1)];
        let q = [DraftDist::OneHot, DraftDist::OneHot, DraftDist::OneHot];
        for _ in 0..100 {
            let v = verify_stochastic(&[5, 6, 7], &q, &p, &mut rng).unwrap();
            assert_eq!(v, Verification { accepted: 2, next_token: 9 });
        }
    }

    #[test]
    fn edge_cases() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        // q(x) = 0 < p(x): always accepted.
        let q0 = DraftDist::Sampled(c(&[1], &[1.0]));
        let p = [c(&[0, 1], &[0.5, 0.5]), c(&[3], &[1.0])];
        for _ in 0..50 {
            let v = verify_stochastic(&[0], std::slice::from_ref(&q0), &p, &mut rng).unwrap();
            assert_eq!(v, Verification { accepted: 1, next_token: 3 });
        }
        // p(x) = 0: always rejected, and the token comes from the residual (here p minus nothing on 1..).
        let p = [c(&[1, 2], &[0.25, 0.75]), c(&[3], &[1.0])];
        for _ in 0..50 {
            let v = verify_stochastic(&[0], &[DraftDist::OneHot], &p, &mut rng).unwrap();
            assert_eq!(v.accepted, 0);
            assert!(v.next_token == 1 || v.next_token == 2);
        }
        // Residual without mass (p == q, only reachable through rounding): falls back to p.
        let p = c(&[4, 7], &[0.5, 0.5]);
        let q = DraftDist::Sampled(p.clone());
        assert_eq!(sample_residual(&p, &q, 4, 0.1), 4);
        assert_eq!(sample_residual(&p, &q, 4, 0.9), 7);
        // One-hot q: the residual is p without the drafted token.
        let p = c(&[4, 7, 9], &[0.5, 0.25, 0.25]);
        assert_eq!(sample_residual(&p, &DraftDist::OneHot, 4, 0.0), 7);
        assert_eq!(sample_residual(&p, &DraftDist::OneHot, 4, 0.99), 9);
        // Length errors.
        assert_eq!(
            verify_stochastic(&[1, 2], &[DraftDist::OneHot], &[], &mut rng),
            Err(VerifyError::DraftLength { draft: 2, q: 1 })
        );
    }
}
