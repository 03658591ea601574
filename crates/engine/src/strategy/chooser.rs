//! How the next token is picked from logits: greedy argmax or a seeded sampler (with its pruning filter), and
//! how a speculative draft is verified under the same rule, so every decoding strategy stays lossless.

use crate::error::{EngineError, Result};
use crate::strategy::logprobs::LogprobTap;
use crate::model::argmax;
use ttc_sampling::{verify_greedy, verify_stochastic, DraftDist, Sampler, SamplerConfig, Verification};
use ttc_types::PolicyStats;

pub struct Chooser {
    rule: Rule,
    /// Records each chosen token's logprobs when the request asked for them.
    tap: Option<LogprobTap>,
}

enum Rule {
    Greedy,
    Sample(Box<Sampler>),
    /// A policy's chooser replayed along the baseline's trajectory, scoring each step (`crate::fidelity`).
    Forced(Box<dyn ForcedPath>),
}

/// A path that picks every token itself and scores the rows the strategy presents: the fidelity replay
/// (`crate::fidelity::Forced`). A trait here, so that the strategies' chooser does not depend on the replay.
pub trait ForcedPath: Send {
    /// Score `row` (the policy's logits at this step) and return the path's token.
    fn step(&mut self, row: &[f32]) -> Result<u32>;
    /// A speculative draft checked against the path; `rows` are the verified full-model rows.
    fn verify(&mut self, draft: &[u32], rows: &[Vec<f32>]) -> Result<Verification>;
    /// What was measured so far.
    fn result(&self) -> ttc_types::Fidelity;
}

impl Chooser {
    pub fn new(cfg: Option<SamplerConfig>) -> Result<Chooser> {
        let rule = match cfg {
            None => Rule::Greedy,
            Some(c) if c.is_greedy() => Rule::Greedy,
            Some(c) => Rule::Sample(Box::new(Sampler::new(c).map_err(|e| EngineError::InvalidRequest(e.to_string()))?)),
        };
        Ok(Chooser { rule, tap: None })
    }

    /// Record every chosen token's logprob and `top` alternatives (None: record nothing). Returns the tap that
    /// hands them to the tokens' `Content` events.
    pub fn with_logprobs(mut self, top: Option<usize>) -> Chooser {
        self.tap = top.map(LogprobTap::new);
        self
    }

    /// A policy's chooser forced along the baseline's trajectory (`crate::fidelity`).
    pub(crate) fn forced(f: impl ForcedPath + 'static) -> Chooser {
        Chooser { rule: Rule::Forced(Box::new(f)), tap: None }
    }

    pub(crate) fn is_forced(&self) -> bool {
        matches!(self.rule, Rule::Forced(_))
    }

    /// What a forced chooser measured.
    pub(crate) fn forced_result(&self) -> Option<ttc_types::Fidelity> {
        match &self.rule {
            Rule::Forced(f) => Some(f.result()),
            _ => None,
        }
    }

    /// The sampler, for a sampling policy.
    pub(crate) fn sampler_mut(&mut self) -> Option<&mut Sampler> {
        match &mut self.rule {
            Rule::Sample(s) => Some(s),
            _ => None,
        }
    }

    pub fn tap(&self) -> Option<LogprobTap> {
        self.tap.clone()
    }

    pub fn choose(&mut self, logits: &[f32]) -> Result<u32> {
        let t = match &mut self.rule {
            Rule::Greedy => argmax(logits),
            Rule::Sample(s) => s.sample(logits).map_err(|e| EngineError::InvalidRequest(e.to_string()))?,
            Rule::Forced(f) => f.step(logits)?,
        };
        if let Some(tap) = &self.tap {
            tap.record(logits, t);
        }
        Ok(t)
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
        let v = match &mut self.rule {
            Rule::Greedy => {
                let am: Vec<u32> = rows.iter().map(|r| argmax(r)).collect();
                verify_greedy(draft, &am).map_err(err)
            }
            Rule::Sample(s) => {
                let p = rows
                    .iter()
                    .map(|r| s.distribution(r))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
                let q = vec![DraftDist::OneHot; draft.len()];
                verify_stochastic(draft, &q, &p, s.rng_mut()).map_err(err)
            }
            Rule::Forced(f) => f.verify(draft, rows),
        }?;
        // Every emitted token came from its own target row: accepted drafts from theirs, the correction or bonus
        // token from the row after the last accepted one.
        if let Some(tap) = &self.tap {
            for (t, row) in draft[..v.accepted].iter().zip(rows) {
                tap.record(row, *t);
            }
            if let Some(row) = rows.get(v.accepted) {
                tap.record(row, v.next_token);
            }
        }
        Ok(v)
    }

    /// Copy the sampler's pruning internals into the request's stats.
    pub fn fill_stats(&self, stats: &mut PolicyStats) {
        if let Rule::Sample(s) = &self.rule {
            s.stats().fill_policy_stats(stats);
        }
    }
}
