//! Fidelity to the full model (docs/metrics.md "Fidelity"): a policy replays its own decision rule (exit layer,
//! KV budget and eviction, pruned candidate set, draft-and-verify) along the baseline's greedy trajectory for the
//! same prompt, and each step's distribution is compared with the full model's.
//!
//! How: every decoding strategy picks its tokens through a [`Chooser`]. [`Chooser::forced`] wraps the policy's own
//! chooser so that at step t it scores the row the strategy presents (after the policy's sampler transform, if
//! it has one) against the full model's row t, then returns the baseline's token t. The strategy therefore runs
//! its own computation at every step but stays on the baseline's path, so step t of every policy sees the same
//! context. The full model's rows come from one teacher-forced forward of prompt + trajectory.

use crate::strategy::chooser::{Chooser, ForcedPath};
use crate::engine::GenRequest;
use crate::error::{EngineError, Result};
use crate::model::{argmax, logits_rows, LogitsMode};
use crate::Engine;
use ttc_sampling::Candidates;
use ttc_types::Fidelity;

/// How many top tokens `top5` compares.
const TOP_K: usize = 5;

/// Per-step sums of the teacher-forced metrics.
#[derive(Debug, Default, Clone)]
pub struct FidelityAcc {
    steps: u32,
    top1: f64,
    kl: f64,
    top5: f64,
    pruned_mass: f64,
    first_divergence: Option<u32>,
}

/// What the policy presents at one step.
pub enum PolicyView<'a> {
    /// A greedy policy's logits row: its distribution is softmax(row), its decision argmax(row).
    Row(&'a [f32]),
    /// A sampling policy's processed distribution (temperature, pruning): it draws from it.
    Dist(&'a Candidates),
}

/// Log-softmax of a logits row, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    let lse = m + z.ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// Indices of the `k` largest values, ties to the lowest index.
fn top_k(values: impl Iterator<Item = (u32, f64)>, k: usize) -> Vec<u32> {
    let mut best: Vec<(u32, f64)> = Vec::with_capacity(k + 1);
    for (i, v) in values {
        if best.len() == k && v <= best[k - 1].1 {
            continue;
        }
        let at = best.iter().position(|&(_, b)| v > b).unwrap_or(best.len());
        best.insert(at, (i, v));
        best.truncate(k);
    }
    best.into_iter().map(|(i, _)| i).collect()
}

impl FidelityAcc {
    /// Scores one step: `full` is the full model's logits row, `forced` the baseline's token (its argmax).
    pub fn observe(&mut self, full: &[f32], policy: PolicyView<'_>, forced: u32) {
        let lp = log_softmax(full);
        let full_top = top_k(lp.iter().enumerate().map(|(i, &v)| (i as u32, v)), TOP_K);
        let (agree, kl, pruned, policy_top, policy_best) = match policy {
            PolicyView::Row(row) => {
                let lq = log_softmax(row);
                // Every token keeps mass under softmax, so this is the plain KL(full ‖ policy).
                let kl: f64 = lp.iter().zip(&lq).map(|(&a, &b)| a.exp() * (a - b)).sum();
                let best = argmax(row);
                let top = top_k(lq.iter().enumerate().map(|(i, &v)| (i as u32, v)), TOP_K);
                (f64::from(u8::from(best == forced)), kl, 0.0, top, best)
            }
            PolicyView::Dist(c) => {
                // KL over the candidate set S with the full distribution renormalised to S (a pruned token has
                // q = 0, so the unrestricted KL is infinite); the mass outside S is reported on its own.
                let kept: f64 = c.ids().iter().map(|&i| lp[i as usize].exp()).sum();
                let mut kl = 0.0;
                for (&i, &q) in c.ids().iter().zip(c.probs()) {
                    if q > 0.0 {
                        let p = lp[i as usize].exp() / kept;
                        if p > 0.0 {
                            kl += p * (p.ln() - (q as f64).ln());
                        }
                    }
                }
                let top = top_k(c.ids().iter().zip(c.probs()).map(|(&i, &q)| (i, q as f64)), TOP_K);
                (c.prob(forced) as f64, kl, (1.0 - kept).max(0.0), top, c.argmax())
            }
        };
        let overlap = full_top.iter().filter(|t| policy_top.contains(t)).count();
        if policy_best != forced && self.first_divergence.is_none() {
            self.first_divergence = Some(self.steps);
        }
        self.steps += 1;
        self.top1 += agree;
        self.kl += kl.max(0.0); // rounding can leave -1e-17 where the rows agree
        self.top5 += overlap as f64 / TOP_K as f64;
        self.pruned_mass += pruned;
    }

    /// Means over the steps seen.
    pub fn finish(&self) -> Fidelity {
        let n = self.steps;
        if n == 0 {
            return Fidelity { steps: Some(0), ..Fidelity::default() };
        }
        let mean = |s: f64| Some(s / n as f64);
        Fidelity {
            steps: Some(n),
            top1: mean(self.top1),
            kl: mean(self.kl),
            top5: mean(self.top5),
            first_divergence: Some(self.first_divergence.unwrap_or(n)),
            pruned_mass: mean(self.pruned_mass),
            rouge_l: None,
            exact_match: None,
        }
    }
}

/// A policy's chooser driven along a fixed trajectory (see the module docs).
pub struct Forced {
    inner: Chooser,
    tokens: Vec<u32>,
    full: Vec<Vec<f32>>,
    pos: usize,
    acc: FidelityAcc,
}

impl Forced {
    pub fn new(inner: Chooser, tokens: Vec<u32>, full: Vec<Vec<f32>>) -> Result<Forced> {
        if tokens.len() != full.len() {
            return Err(EngineError::InvalidRequest(format!(
                "fidelity: {} trajectory tokens but {} full-model rows",
                tokens.len(),
                full.len()
            )));
        }
        if inner.is_forced() {
            return Err(EngineError::InvalidRequest("fidelity: a forced chooser cannot wrap another".into()));
        }
        Ok(Forced { inner, tokens, full, pos: 0, acc: FidelityAcc::default() })
    }
}

impl ForcedPath for Forced {
    /// Scores the row the policy presents at the current step and returns the baseline's token.
    fn step(&mut self, row: &[f32]) -> Result<u32> {
        let (Some(&token), Some(full)) = (self.tokens.get(self.pos), self.full.get(self.pos)) else {
            return Err(EngineError::InvalidRequest(format!(
                "fidelity: the policy asked for token {} of a {}-token baseline trajectory",
                self.pos + 1,
                self.tokens.len()
            )));
        };
        match self.inner.sampler_mut() {
            Some(s) => {
                let d = s.distribution(row).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
                self.acc.observe(full, PolicyView::Dist(&d), token);
            }
            None => self.acc.observe(full, PolicyView::Row(row), token),
        }
        self.pos += 1;
        Ok(token)
    }

    /// A speculative verification under forcing: the draft is accepted as far as it follows the trajectory, and
    /// each verified row (the full model's, computed by the strategy itself) is scored as that step's.
    fn verify(&mut self, draft: &[u32], rows: &[Vec<f32>]) -> Result<ttc_sampling::Verification> {
        let follows = |i: usize| self.tokens.get(self.pos + i) == Some(&draft[i]);
        let accepted = (0..draft.len()).take_while(|&i| follows(i)).count();
        // A draft that follows the trajectory to its end (its stop token or max_tokens) ends generation there:
        // no correction/bonus step after it.
        let steps = (accepted + 1).min(self.tokens.len().saturating_sub(self.pos));
        let mut next = 0;
        for row in rows.iter().take(steps) {
            next = self.step(row)?;
        }
        Ok(ttc_sampling::Verification { accepted, next_token: next })
    }

    fn result(&self) -> Fidelity {
        self.acc.finish()
    }
}

/// The full model's greedy continuation of a prompt, and the logits row each token was chosen from: row t follows
/// prompt + tokens[..t]. Every forward is row-exact (docs/engine.md), so these rows are bit for bit the ones a
/// teacher-forced forward over the trajectory gives (`Engine::teacher_forced_rows`, a test).
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub tokens: Vec<u32>,
    pub rows: Vec<Vec<f32>>,
}

impl Engine {
    /// Plain greedy decoding of `req`, keeping every token it chooses, its stop token included (so a replay stops
    /// where the baseline stopped), and the row it chose it from: the fidelity replay's path and reference.
    pub fn greedy_trajectory(&self, req: &GenRequest) -> Result<Trajectory> {
        let (mut tokens, mut rows) = (Vec::new(), Vec::new());
        let mut choose = |row: &[f32]| {
            let t = argmax(row);
            tokens.push(t);
            rows.push(row.to_vec());
            t
        };
        self.generate_plain(req, &mut choose, &mut |_| true)?;
        Ok(Trajectory { tokens, rows })
    }

    /// The full model's logits rows along `tokens`: row t follows prompt + tokens[..t]. One prefill, then one
    /// forward over the trajectory with every row's logits.
    pub fn teacher_forced_rows(&self, prompt: &[u32], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let mut cache = self.model.new_cache()?;
        let first = self.model.forward(prompt, &mut cache, LogitsMode::Last)?;
        let mut rows = logits_rows(&first)?;
        if tokens.len() > 1 {
            rows.extend(logits_rows(&self.model.forward(&tokens[..tokens.len() - 1], &mut cache, LogitsMode::All)?)?);
        }
        Ok(rows)
    }

    /// Teacher-forced fidelity of `policy` on `req` along `trajectory` (from [`Engine::greedy_trajectory`] on the
    /// same request). `sampling` is the run's default sampler, as for [`Engine::generate_policy`]. Replaying
    /// many policies on one prompt, run this inside [`Engine::with_thread_prefix_cache`] so that every policy but
    /// the first loads the prompt's KV instead of prefilling it again (same bits: docs/engine.md).
    pub fn fidelity(
        &self,
        req: &GenRequest,
        policy: &crate::policy::Policy,
        sampling: Option<ttc_sampling::SamplerConfig>,
        trajectory: &Trajectory,
    ) -> Result<Fidelity> {
        self.check_policy(policy)?;
        // A router is scored as the policy it picks for this request.
        let (policy, _) = self.resolve_route(req, policy)?;
        let policy = &policy;
        let inner = self.policy_chooser(policy, sampling)?;
        let mut chooser = Chooser::forced(Forced::new(inner, trajectory.tokens.clone(), trajectory.rows.clone())?);
        if !trajectory.tokens.is_empty() {
            self.run_policy(req, policy, &mut chooser, &mut |_| true)?;
        }
        chooser.forced_result().ok_or_else(|| EngineError::InvalidRequest("fidelity: the chooser is not forced".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_rows_agree_exactly() {
        let row = [0.5f32, 2.0, -1.0, 0.0, 1.5, 3.0, -2.0];
        let mut acc = FidelityAcc::default();
        acc.observe(&row, PolicyView::Row(&row), 5);
        let f = acc.finish();
        assert_eq!((f.top1, f.kl, f.top5, f.first_divergence, f.pruned_mass), (Some(1.0), Some(0.0), Some(1.0), Some(1), Some(0.0)));
    }

    #[test]
    fn hand_computed_kl_top5_and_divergence() {
        // full: probs 0.5, 0.25, 0.25 (logits ln of them); policy: uniform over 3 -> argmax 0 (tie to lowest).
        let full = [0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        let policy = [0.0f32, 0.0, 0.0];
        let mut acc = FidelityAcc::default();
        acc.observe(&full, PolicyView::Row(&policy), 0);
        // KL = 0.5 ln(1.5) + 2 * 0.25 ln(0.75)
        let want = 0.5 * 1.5f64.ln() + 0.5 * 0.75f64.ln();
        // A second step where the policy prefers token 2: divergence at step 1.
        acc.observe(&full, PolicyView::Row(&[0.0, 0.0, 1.0]), 0);
        let f = acc.finish();
        assert_eq!(f.first_divergence, Some(1));
        assert_eq!(f.top1, Some(0.5));
        assert_eq!(f.top5, Some(3.0 / 5.0)); // only three tokens exist: all three overlap
        let mut one = FidelityAcc::default();
        one.observe(&full, PolicyView::Row(&policy), 0);
        assert!((one.finish().kl.unwrap() - want).abs() < 1e-7);
    }

    #[test]
    fn pruned_distribution_restricts_kl_and_reports_lost_mass() {
        // full 0.5/0.3/0.2; a policy that keeps {0, 1} with q = 0.6/0.4.
        let full = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let c = Candidates::new(vec![0, 1], vec![0.6, 0.4]).unwrap();
        let mut acc = FidelityAcc::default();
        acc.observe(&full, PolicyView::Dist(&c), 0);
        let f = acc.finish();
        let (p0, p1) = (0.5 / 0.8, 0.3 / 0.8);
        let want = p0 * (p0 / 0.6f64).ln() + p1 * (p1 / 0.4f64).ln();
        assert!((f.kl.unwrap() - want).abs() < 1e-6, "{:?}", f.kl);
        assert!((f.pruned_mass.unwrap() - 0.2).abs() < 1e-6);
        assert!((f.top1.unwrap() - 0.6).abs() < 1e-6, "probability the sampler picks the baseline token");
        assert_eq!(f.top5, Some(2.0 / 5.0));
        assert_eq!(f.first_divergence, Some(1));
    }

    #[test]
    fn forced_verification_accepts_along_the_trajectory() {
        let rows: Vec<Vec<f32>> = (0..4).map(|i| { let mut r = vec![0.0f32; 8]; r[i + 1] = 1.0; r }).collect();
        let mut f = Forced::new(Chooser::new(None).unwrap(), vec![1, 2, 3, 4], rows.clone()).unwrap();
        assert_eq!(f.step(&rows[0]).unwrap(), 1);
        // Draft [2, 9]: only 2 follows the trajectory; next is the trajectory's 3.
        let v = f.verify(&[2, 9], &rows[1..4]).unwrap();
        assert_eq!((v.accepted, v.next_token), (1, 3));
        assert_eq!(f.step(&rows[3]).unwrap(), 4);
        assert!(f.step(&rows[3]).is_err(), "past the trajectory is an error, not a panic");
        assert_eq!(f.result().top1, Some(1.0));
    }

    #[test]
    fn a_draft_that_follows_the_trajectory_to_its_end_takes_no_bonus_step() {
        // The baseline stopped after 3 tokens (the last one its stop token); a draft of all three plus more is
        // accepted to the end, scoring 3 steps, not asking for a 4th.
        let rows: Vec<Vec<f32>> = (0..4).map(|i| { let mut r = vec![0.0f32; 8]; r[i + 1] = 1.0; r }).collect();
        let mut f = Forced::new(Chooser::new(None).unwrap(), vec![1, 2, 3], rows[..3].to_vec()).unwrap();
        let v = f.verify(&[1, 2, 3, 7], &rows).unwrap();
        assert_eq!(v.accepted, 3);
        assert_eq!(f.result().steps, Some(3));
    }
}
