//! How the next token is picked from logits: greedy argmax or a seeded sampler (with its pruning filter), and
//! how a speculative draft is verified under the same rule, so every decoding strategy stays lossless.

use crate::error::{EngineError, Result};
use crate::model::argmax;
use ttc_sampling::{verify_greedy, verify_stochastic, DraftDist, Sampler, SamplerConfig, Verification};
use ttc_types::PolicyStats;

pub enum Chooser {
    Greedy,
    Sample(Box<Sampler>),
    /// A policy's chooser replayed along the baseline's trajectory, scoring each step (`crate::fidelity`).
    Forced(Box<crate::fidelity::Forced>),
}

impl Chooser {
    pub fn new(cfg: Option<SamplerConfig>) -> Result<Chooser> {
        match cfg {
            None => Ok(Chooser::Greedy),
            Some(c) if c.is_greedy() => Ok(Chooser::Greedy),
            Some(c) => Ok(Chooser::Sample(Box::new(
                Sampler::new(c).map_err(|e| EngineError::InvalidRequest(e.to_string()))?,
            ))),
        }
    }

    pub fn choose(&mut self, logits: &[f32]) -> Result<u32> {
        match self {
            Chooser::Greedy => Ok(argmax(logits)),
            Chooser::Sample(s) => s.sample(logits).map_err(|e| EngineError::InvalidRequest(e.to_string())),
            Chooser::Forced(f) => f.step(logits),
        }
    }

    /// Run `f` with this chooser seen as a plain `FnMut(&[f32]) -> u32`, the shape the simple decoding loops take.
    /// A sampling error cannot stop such a loop midway, so it is kept and returned once `f` is done.
    pub fn run_infallible<T>(&mut self, f: impl FnOnce(&mut dyn FnMut(&[f32]) -> u32) -> Result<T>) -> Result<T> {
        let mut err = None;
        let out = {
            let mut choose = |l: &[f32]| match self.choose(l) {
                Ok(t) => t,
                Err(e) => {
                    err.get_or_insert(e);
                    0
                }
            };
            f(&mut choose)?
        };
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Verify a deterministic draft (one-hot q) against target logits rows (`draft.len() + 1` rows).
    pub fn verify(&mut self, draft: &[u32], rows: &[Vec<f32>]) -> Result<Verification> {
        let err = |e: ttc_sampling::VerifyError| EngineError::InvalidRequest(e.to_string());
        match self {
            Chooser::Greedy => {
                let am: Vec<u32> = rows.iter().map(|r| argmax(r)).collect();
                verify_greedy(draft, &am).map_err(err)
            }
            Chooser::Sample(s) => {
                let p = rows
                    .iter()
                    .map(|r| s.distribution(r))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
                let q = vec![DraftDist::OneHot; draft.len()];
                verify_stochastic(draft, &q, &p, s.rng_mut()).map_err(err)
            }
            Chooser::Forced(f) => f.verify(draft, rows),
        }
    }

    /// Copy the sampler's pruning internals into the request's stats.
    pub fn fill_stats(&self, stats: &mut PolicyStats) {
        if let Chooser::Sample(s) = self {
            s.stats().fill_policy_stats(stats);
        }
    }
}
