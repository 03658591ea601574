//! Speculative decoding: a cheap drafter proposes tokens, one target forward verifies them all.
//!
//! Drafters:
//! - prompt lookup / n-gram (Saxena 2023; HF `PromptLookupCandidateGenerator`): find the most recent earlier
//!   occurrence of the last n tokens (n = max_ngram..min_ngram) in prompt + output and propose what followed it;
//! - self-speculative early-exit draft (LayerSkip, Elhoushi et al. 2024; Draft & Verify, Zhang et al. 2024): the
//!   first E layers + final norm + LM head (or the calibrated exit head of layer E, `heads: calibrated`) draft
//!   greedily; drafting stops early when the draft's top-1
//!   probability is below `verification_threshold` (adaptive draft exiting). Verification then runs only layers
//!   E..L over the drafted positions, reusing the K/V of layers 0..E and the exit hidden states computed while
//!   drafting (LayerSkip's shared cache).
//!
//! Verification is lossless: greedy keeps the longest prefix equal to the target's argmax plus the
//! correction/bonus token; sampling uses the Leviathan/Chen rule with a one-hot q (both drafters are
//! deterministic). After a rejection every layer's KV is truncated to the accepted length.
//! Every row of a forward gives the same bits as a one-token step (Q8_0 tiles and row-by-row attention, see
//! model.rs), which is what makes greedy output identical to the baseline, not merely equal up to near-ties.

use crate::strategy::chooser::Chooser;
use crate::engine::{Emitter, GenOutput, GenRequest, Prefill};
use crate::error::Result;
use crate::model::kv::KvCache;
use crate::model::{logits_rows, LogitsMode};
use crate::policy::{NgramParams, SelfSpecParams};
use crate::engine::Engine;
use candle_core::Tensor;
use ttc_sampling::Verification;
use ttc_types::{GenEvent, PolicyStats};

/// Most draft tokens one verification may carry. Longer drafts are almost never accepted whole on this model
/// (mean accepted tokens per step stays under 3.5 on grounded prompts), while each drafted row costs compute.
pub const MAX_DRAFT: usize = 7;

/// Prompt-lookup draft: continuation of the latest earlier match of the longest suffix n-gram.
pub fn ngram_draft(tokens: &[u32], min_ngram: usize, max_ngram: usize, lookahead: usize) -> Vec<u32> {
    let len = tokens.len();
    for n in (min_ngram.max(1)..=max_ngram.min(len.saturating_sub(1))).rev() {
        let pattern = &tokens[len - n..];
        // Latest earlier occurrence first: recent context predicts best (HF searches from the end too).
        for start in (0..len - n).rev() {
            if &tokens[start..start + n] == pattern {
                let from = start + n;
                let to = (from + lookahead).min(len);
                if from < to {
                    return tokens[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

#[derive(Default)]
struct SpecCounters {
    drafted: u64,
    accepted: u64,
    steps: u64,
    emitted_in_steps: u64,
}

impl SpecCounters {
    fn fill(&self, stats: &mut PolicyStats) {
        stats.drafted_tokens = Some(self.drafted);
        stats.accepted_tokens = Some(self.accepted);
        stats.acceptance_rate = (self.drafted > 0).then(|| self.accepted as f64 / self.drafted as f64);
        stats.verification_steps = Some(self.steps);
        stats.mean_accepted_per_step = (self.steps > 0).then(|| self.emitted_in_steps as f64 / self.steps as f64);
    }
}

/// One verification's bookkeeping, shared by both drafters: verify `draft` against the target logits `rows`, count
/// the step, roll the cache back to the accepted tokens (it held `base` entries before the verification forward)
/// and emit them. Returns the verification, or None once generation stops.
fn accept_step(
    chooser: &mut Chooser,
    draft: &[u32],
    rows: &[Vec<f32>],
    cache: &mut KvCache,
    base: usize,
    em: &mut Emitter<'_>,
    c: &mut SpecCounters,
) -> Result<Option<Verification>> {
    let v = chooser.verify(draft, rows)?;
    c.steps += 1;
    c.drafted += draft.len() as u64;
    c.accepted += v.accepted as u64;
    c.emitted_in_steps += v.accepted as u64 + 1;
    cache.truncate(base + 1 + v.accepted);
    let emitted = draft[..v.accepted].iter().all(|&t| em.push(t));
    Ok(emitted.then_some(v))
}

pub fn generate_ngram(
    engine: &Engine,
    req: &GenRequest,
    params: &NgramParams,
    chooser: &mut Chooser,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, PolicyStats)> {
    let model = &engine.model;
    let Prefill { mut cache, started, prefill_s, logits, cached_tokens } = engine.prefill(req)?;
    let mut em = Emitter::new(&engine.tokenizer, req, started, on_event);
    em.cached_prompt_tokens = cached_tokens;
    let mut c = SpecCounters::default();
    let mut next = chooser.choose(&logits)?;
    let mut context = req.prompt.clone();
    let lookahead = params.lookahead_tokens.min(MAX_DRAFT);
    while req.max_tokens > 0 && em.push(next) {
        context.push(next);
        let remaining = req.max_tokens - em.token_ids.len();
        let mut draft = ngram_draft(&context, params.min_ngram, params.max_ngram, lookahead.min(remaining.saturating_sub(1)));
        if let Some(stop) = draft.iter().position(|t| engine.tokenizer.stop_ids.contains(t)) {
            draft.truncate(stop + 1); // a drafted EOS may be accepted, nothing after it
        }
        if draft.is_empty() {
            let logits = model.forward(&[next], &mut cache, LogitsMode::Last)?;
            next = chooser.choose(&logits_rows(&logits)?[0])?;
            continue;
        }
        let base = cache.next_pos;
        let mut input = Vec::with_capacity(draft.len() + 1);
        input.push(next);
        input.extend_from_slice(&draft);
        let rows = logits_rows(&model.forward(&input, &mut cache, LogitsMode::All)?)?;
        let Some(v) = accept_step(chooser, &draft, &rows, &mut cache, base, &mut em, &mut c)? else { break };
        context.extend_from_slice(&draft[..v.accepted]);
        next = v.next_token;
    }
    let mut stats = PolicyStats::default();
    c.fill(&mut stats);
    chooser.fill_stats(&mut stats);
    Ok((em.finish(req.prompt.len(), prefill_s), stats))
}

/// Run layers `from..to` over hidden rows `h` of one sequence whose first row has position `pos`.
pub(crate) fn run_layers(engine: &Engine, mut h: Tensor, from: usize, to: usize, cache: &mut KvCache, pos: usize) -> Result<Tensor> {
    let t = h.dim(0)?;
    for l in from..to {
        h = engine.model.block_forward(l, &h, &[t], &[pos], &mut [&mut cache.layers[l]])?;
    }
    Ok(h)
}

pub fn generate_self_speculative(
    engine: &Engine,
    req: &GenRequest,
    params: &SelfSpecParams,
    chooser: &mut Chooser,
    on_event: &mut dyn FnMut(GenEvent) -> bool,
) -> Result<(GenOutput, PolicyStats)> {
    let model = &engine.model;
    let n_layer = model.cfg.n_layer;
    let e = params.draft_layers.clamp(1, n_layer - 1);
    let Prefill { mut cache, started, prefill_s, logits, cached_tokens } = engine.prefill(req)?;
    let mut em = Emitter::new(&engine.tokenizer, req, started, on_event);
    em.cached_prompt_tokens = cached_tokens;
    let mut c = SpecCounters::default();
    let mut next = chooser.choose(&logits)?;
    let lookahead = params.lookahead_tokens.min(MAX_DRAFT);
    while req.max_tokens > 0 && em.push(next) {
        let base = cache.next_pos;
        let remaining = req.max_tokens - em.token_ids.len();
        let max_draft = lookahead.min(remaining.saturating_sub(1));
        // Draft: feed `next`, then each drafted token, through layers 0..e; keep the exit hidden states.
        let mut exits: Vec<Tensor> = Vec::with_capacity(max_draft + 1);
        let mut draft: Vec<u32> = Vec::with_capacity(max_draft);
        let mut tok = next;
        loop {
            let pos = base + exits.len();
            let h = run_layers(engine, model.embed(&[tok])?, 0, e, &mut cache, pos)?;
            exits.push(h.clone());
            let drafted_eos = !draft.is_empty() && engine.tokenizer.stop_ids.contains(&tok);
            if draft.len() == max_draft || drafted_eos {
                break;
            }
            let row = logits_rows(&engine.exit_logits(params.heads, e, &h)?)?.remove(0);
            let (d, p_top) = top1_prob(&row);
            if (p_top as f64) < params.verification_threshold {
                break; // adaptive draft exiting: the draft is unsure, verify what we have
            }
            draft.push(d);
            tok = d;
        }
        // Invariant: one exit state per verified input [next, draft...], and layers 0..e hold exactly their K/V.
        assert_eq!(exits.len(), draft.len() + 1);
        // Verify: layers e..L over [next, draft...], starting from the exit states.
        let h = if exits.len() == 1 { exits.pop().expect("one") } else { Tensor::cat(&exits, 0)? };
        let h = run_layers(engine, h, e, n_layer, &mut cache, base)?;
        cache.next_pos = base + draft.len() + 1;
        let rows = logits_rows(&model.logits(&h)?)?;
        if draft.is_empty() {
            next = chooser.choose(&rows[0])?;
            continue;
        }
        let Some(v) = accept_step(chooser, &draft, &rows, &mut cache, base, &mut em, &mut c)? else { break };
        next = v.next_token;
    }
    let mut stats = PolicyStats::default();
    c.fill(&mut stats);
    chooser.fill_stats(&mut stats);
    Ok((em.finish(req.prompt.len(), prefill_s), stats))
}

/// Argmax and its softmax probability.
fn top1_prob(row: &[f32]) -> (u32, f32) {
    let best = crate::model::argmax(row);
    let m = row[best as usize];
    let z: f32 = row.iter().map(|&x| (x - m).exp()).sum();
    (best, 1.0 / z)
}

impl super::DecodingStrategy for NgramParams {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        generate_ngram(engine, req, self, chooser, on_event)
    }
}

impl super::DecodingStrategy for SelfSpecParams {
    fn generate(
        &self,
        engine: &Engine,
        req: &GenRequest,
        chooser: &mut Chooser,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<(GenOutput, PolicyStats)> {
        generate_self_speculative(engine, req, self, chooser, on_event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_draft_prefers_the_longest_latest_match() {
        // ... 5 6 7 8 ... 5 6 7 9 ... | suffix "6 7" matched most recently before "7 9"
        let toks = [1, 5, 6, 7, 8, 2, 5, 6, 7, 9, 3, 6, 7];
        assert_eq!(ngram_draft(&toks, 1, 3, 2), vec![9, 3]);
        // Only a 1-gram matches: drafted with min_ngram 1, nothing with min_ngram 2.
        assert_eq!(ngram_draft(&[4, 1, 2, 3, 4], 1, 3, 3), vec![1, 2, 3]);
        assert_eq!(ngram_draft(&[4, 1, 2, 3, 4], 2, 3, 3), Vec::<u32>::new());
        assert_eq!(ngram_draft(&[1, 2, 3], 1, 3, 4), Vec::<u32>::new());
        // Lookahead is capped by the text available after the match.
        assert_eq!(ngram_draft(&[7, 8, 7], 1, 2, 5), vec![8, 7]);
    }
}
