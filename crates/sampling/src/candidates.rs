//! The final, processed distribution a token is drawn from (after temperature and pruning).
//! Speculative sampling needs exactly this distribution on both sides to stay lossless.

use thiserror::Error;

/// A sparse probability distribution over token ids.
///
/// Invariants (checked by [`Candidates::new`]): ids strictly ascending, one finite prob >= 0 per id,
/// at least one prob > 0. Probabilities sum to 1 up to rounding; sampling normalises by their sum anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    ids: Vec<u32>,
    probs: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum CandidatesError {
    #[error("candidates: {ids} ids but {probs} probabilities")]
    LengthMismatch { ids: usize, probs: usize },
    #[error("candidates: ids must be strictly ascending (index {index}: {prev} then {next})")]
    NotAscending { index: usize, prev: u32, next: u32 },
    #[error("candidates: probability at index {index} is {value}, must be finite and >= 0")]
    BadProbability { index: usize, value: f32 },
    #[error("candidates: no probability mass")]
    NoMass,
}

impl Candidates {
    pub fn new(ids: Vec<u32>, probs: Vec<f32>) -> Result<Self, CandidatesError> {
        if ids.len() != probs.len() {
            return Err(CandidatesError::LengthMismatch { ids: ids.len(), probs: probs.len() });
        }
        for (index, w) in ids.windows(2).enumerate() {
            if w[0] >= w[1] {
                return Err(CandidatesError::NotAscending { index: index + 1, prev: w[0], next: w[1] });
            }
        }
        if let Some((index, &value)) = probs.iter().enumerate().find(|(_, p)| !(p.is_finite() && **p >= 0.0)) {
            return Err(CandidatesError::BadProbability { index, value });
        }
        if !probs.iter().any(|&p| p > 0.0) {
            return Err(CandidatesError::NoMass);
        }
        Ok(Candidates { ids, probs })
    }

    /// Built by the sampler, which upholds the invariants itself.
    pub(crate) fn from_parts_unchecked(ids: Vec<u32>, probs: Vec<f32>) -> Self {
        debug_assert!(Candidates::new(ids.clone(), probs.clone()).is_ok());
        Candidates { ids, probs }
    }

    /// All mass on one token (greedy decoding, deterministic drafters).
    pub fn one_hot(id: u32) -> Self {
        Candidates { ids: vec![id], probs: vec![1.0] }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn probs(&self) -> &[f32] {
        &self.probs
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn into_parts(self) -> (Vec<u32>, Vec<f32>) {
        (self.ids, self.probs)
    }

    /// p(id), 0 for ids outside the set (binary search).
    pub fn prob(&self, id: u32) -> f32 {
        match self.ids.binary_search(&id) {
            Ok(i) => self.probs[i],
            Err(_) => 0.0,
        }
    }

    /// The most probable id (lowest id on ties).
    pub fn argmax(&self) -> u32 {
        let mut best = 0;
        for (i, &p) in self.probs.iter().enumerate() {
            if p > self.probs[best] {
                best = i;
            }
        }
        self.ids[best]
    }

    /// Inverse-CDF draw in ascending id order with `u` in [0, 1).
    pub fn sample_with(&self, u: f64) -> u32 {
        let total: f64 = self.probs.iter().map(|&p| p as f64).sum();
        draw(self.ids.iter().copied().zip(self.probs.iter().copied()), total, u)
    }
}

/// Inverse-CDF draw over (id, weight) pairs in the given order: the first id whose cumulative weight
/// exceeds `u * total`. Zero weights are never returned; rounding overruns fall back to the last id
/// with positive weight.
pub(crate) fn draw(items: impl Iterator<Item = (u32, f32)>, total: f64, u: f64) -> u32 {
    let target = u * total;
    let mut acc = 0.0f64;
    let mut last = 0u32;
    for (id, w) in items {
        if w > 0.0 {
            acc += w as f64;
            last = id;
            if acc > target {
                return id;
            }
        }
    }
    last
}
