//! Log-probabilities of tokens: of each generated token, computed from the logits row it was chosen from (the
//! chooser records them, [`LogprobTap`] hands them to the token's `Content` event), and of a prompt's tokens
//! under a teacher-forced forward ([`Engine::prompt_logprobs`], what `/v1/completions` `echo` + `logprobs` and
//! lm-evaluation-harness's loglikelihood tasks need).
//!
//! A logprob is `x_t - logsumexp(x)` of the raw logits row (no temperature, no pruning), OpenAI's convention and
//! vLLM's default `logprobs_mode: raw_logprobs`.

use crate::error::Result;
use crate::model::kv::KvCache;
use crate::model::{logits_rows, LogitsMode};
use crate::engine::Engine;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use ttc_types::{GenEvent, Logprob, TokenLogprob, TokenRef};

/// `logsumexp` of a row, accumulated in f64 so a 49k-entry vocabulary loses no precision.
pub fn log_sum_exp(row: &[f32]) -> f64 {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !m.is_finite() {
        return m;
    }
    m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
}

/// The `k` largest entries of `row` as (id, logit), largest first; ties go to the lower id.
pub fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, &x) in row.iter().enumerate() {
        if best.len() == k && best[k - 1].1 >= x {
            continue; // not above the current k-th (NaN also lands here)
        }
        let at = best.iter().position(|&(_, y)| x > y).unwrap_or(best.len());
        best.insert(at, (i as u32, x));
        best.truncate(k);
    }
    best
}

/// The chosen token's logprob and the `k` most likely tokens of `row`.
pub fn token_logprob(row: &[f32], chosen: u32, k: usize) -> TokenLogprob {
    let lse = log_sum_exp(row);
    let lp = |x: f32| (x as f64 - lse) as f32;
    let logit = row.get(chosen as usize).copied().unwrap_or(f32::NEG_INFINITY);
    TokenLogprob {
        chosen: Logprob { token: TokenRef::Id(chosen), logprob: lp(logit) },
        top: top_k(row, k).into_iter().map(|(id, x)| Logprob { token: TokenRef::Id(id), logprob: lp(x) }).collect(),
    }
}

/// Logprobs recorded by a chooser, waiting for their tokens' `Content` events. Tokens are chosen and emitted in
/// the same order, so a FIFO pairs them; a chosen token that is never emitted (the end-of-sequence token, the
/// token after a stop string) stays behind, at the end, and is dropped with the tap.
#[derive(Clone, Debug)]
pub struct LogprobTap {
    top: usize,
    queue: Arc<Mutex<VecDeque<TokenLogprob>>>,
}

impl LogprobTap {
    /// A tap that keeps the chosen token's logprob and `top` alternatives.
    pub fn new(top: usize) -> LogprobTap {
        LogprobTap { top, queue: Arc::default() }
    }

    /// Note that `chosen` was picked from `row`.
    pub fn record(&self, row: &[f32], chosen: u32) {
        let lp = token_logprob(row, chosen, self.top);
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(lp);
    }

    /// Fill a `Content` event's `logprobs` with its tokens' entries (other events pass unchanged).
    pub fn attach(&self, ev: &mut GenEvent) {
        let GenEvent::Content { token_ids, logprobs, .. } = ev else { return };
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for &id in token_ids.iter() {
            // Entries of tokens that were chosen but not emitted cannot precede an emitted one; skip any anyway.
            while let Some(lp) = q.pop_front() {
                if lp.chosen.token == TokenRef::Id(id) {
                    logprobs.push(lp);
                    break;
                }
            }
        }
    }
}

impl Engine {
    /// Teacher-forced logprobs of `tokens`: entry i is the logprob of token i given tokens 0..i, with the `top`
    /// most likely alternatives at that position; entry 0 is None (nothing precedes it). The prompt runs in
    /// chunks of `prefill_chunk` rows so a long prompt never holds more than one chunk of logits.
    pub fn prompt_logprobs(&self, tokens: &[u32], top: usize) -> Result<Vec<Option<TokenLogprob>>> {
        self.check_fits(tokens.len(), 0)?;
        let mut cache: KvCache = self.model.new_cache()?;
        let mut out: Vec<Option<TokenLogprob>> = Vec::with_capacity(tokens.len());
        out.push(None);
        let chunk = PROMPT_CHUNK;
        for (c, part) in tokens.chunks(chunk).enumerate() {
            let rows = logits_rows(&self.model.forward(part, &mut cache, LogitsMode::All)?)?;
            for (j, row) in rows.iter().enumerate() {
                // Row j of this chunk is position c*chunk + j and predicts the token after it.
                if let Some(&next) = tokens.get(c * chunk + j + 1) {
                    out.push(Some(token_logprob(row, next, top)));
                }
            }
        }
        Ok(out)
    }
}

/// Rows per teacher-forced forward: 128 rows of a 49k vocabulary are 25 MB of logits.
const PROMPT_CHUNK: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_normalised_log_softmax() {
        let row = [1.0f32, 3.0, 2.0, 3.0];
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        let lp = token_logprob(&row, 2, 3);
        assert!((lp.chosen.logprob as f64 - (2.0 - z.ln())).abs() < 1e-6);
        // Largest first, the tie between ids 1 and 3 broken by the lower id.
        let ids: Vec<_> = lp.top.iter().map(|l| l.token.clone()).collect();
        assert_eq!(ids, vec![TokenRef::Id(1), TokenRef::Id(3), TokenRef::Id(2)]);
        let total: f64 = row.iter().map(|&x| ((x as f64) - log_sum_exp(&row)).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(token_logprob(&row, 0, 0).top.is_empty());
    }

    #[test]
    fn the_tap_pairs_entries_with_emitted_tokens_in_order() {
        let tap = LogprobTap::new(1);
        tap.record(&[0.0, 1.0], 1);
        tap.record(&[2.0, 0.0], 0);
        let mut ev = GenEvent::Content {
            at: std::time::Instant::now(),
            text: "ab".into(),
            token_ids: vec![1, 0],
            logprobs: vec![],
        };
        tap.attach(&mut ev);
        let GenEvent::Content { logprobs, .. } = ev else { unreachable!() };
        assert_eq!(logprobs.iter().map(|l| l.chosen.token.clone()).collect::<Vec<_>>(), vec![TokenRef::Id(1), TokenRef::Id(0)]);
        assert_eq!(logprobs[1].top[0].token, TokenRef::Id(0));
    }
}
