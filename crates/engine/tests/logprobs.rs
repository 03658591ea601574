//! Logprobs on the real model: every generated token's logprob and top alternatives equal an independent
//! log-softmax of the logits row it was chosen from (recomputed here by one-token forwards), for plain and
//! speculative decoding; a prompt's teacher-forced logprobs equal the same one-token-step computation.

mod common;
use ttc_engine::policy::{Algorithm, NgramParams};
use ttc_engine::{ChatMessage, Engine, GenRequest, LogitsMode, Policy, WeightFormat};
use ttc_types::{GenEvent, TokenLogprob, TokenRef};

const PROMPT: &str = "Order ORD-7781 contains SKU-220 and SKU-118. List the SKUs in the order, then the SKUs again.";

/// The logits rows of `prompt` continued by `tokens`, one token per forward: row i predicts `tokens[i]`.
fn step_rows(e: &Engine, prompt: &[u32], tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = e.model.new_cache().unwrap();
    let row = |t: candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut rows = vec![row(e.model.forward(prompt, &mut cache, LogitsMode::Last).unwrap())];
    for &t in tokens {
        rows.push(row(e.model.forward(&[t], &mut cache, LogitsMode::Last).unwrap()));
    }
    rows
}

/// log-softmax written out plainly: ln(exp(x_t) / sum exp(x)), shifted by the max for range only.
fn reference_logprob(row: &[f32], t: usize) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
    let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    ((row[t] as f64 - m).exp() / z).ln()
}

fn reference_top(row: &[f32], k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..row.len() as u32).collect();
    ids.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    ids.truncate(k);
    ids
}

fn generate(e: &Engine, policy: &Policy, prompt: &[u32], n: usize, k: usize) -> (Vec<u32>, Vec<TokenLogprob>) {
    let req = GenRequest { prompt: prompt.to_vec(), max_tokens: n, stop: vec![], ..Default::default() };
    let mut lps = Vec::new();
    let mut on_event = |ev: GenEvent| {
        if let GenEvent::Content { logprobs, token_ids, .. } = ev {
            assert_eq!(logprobs.len(), token_ids.len(), "one entry per token");
            lps.extend(logprobs);
        }
        true
    };
    let (out, _) = e.generate_policy_logprobs(&req, policy, None, Some(k), &mut on_event).unwrap();
    (out.token_ids, lps)
}

fn check_against_rows(tokens: &[u32], lps: &[TokenLogprob], rows: &[Vec<f32>], k: usize) {
    assert_eq!(lps.len(), tokens.len());
    for (i, (&t, lp)) in tokens.iter().zip(lps).enumerate() {
        assert_eq!(lp.chosen.token, TokenRef::Id(t));
        let want = reference_logprob(&rows[i], t as usize);
        assert!((lp.chosen.logprob as f64 - want).abs() < 1e-4, "token {i}: {} vs {want}", lp.chosen.logprob);
        let top: Vec<TokenRef> = lp.top.iter().map(|a| a.token.clone()).collect();
        let want_top: Vec<TokenRef> = reference_top(&rows[i], k).into_iter().map(TokenRef::Id).collect();
        assert_eq!(top, want_top, "token {i}: top-{k}");
        for a in &lp.top {
            let TokenRef::Id(id) = a.token else { unreachable!() };
            assert!((a.logprob as f64 - reference_logprob(&rows[i], id as usize)).abs() < 1e-4);
        }
        // Greedy: the chosen token is the most likely one.
        assert_eq!(lp.top[0].token, lp.chosen.token);
    }
}

#[test]
fn generated_logprobs_equal_the_log_softmax_of_their_rows() {
    let e = common::engine(WeightFormat::Q8_0);
    let prompt = e.prompt_tokens(&[ChatMessage::new("user", PROMPT)]).unwrap();
    let (tokens, lps) = generate(e, &Policy::baseline(), &prompt, 8, 5);
    let rows = step_rows(e, &prompt, &tokens);
    check_against_rows(&tokens, &lps, &rows, 5);
    // Speculative decoding takes its tokens from verification rows; lossless, so the same tokens and logprobs.
    let ngram = Policy::new(
        "ngram",
        Algorithm::SpeculativeNgram(NgramParams { lookahead_tokens: 4, max_ngram: 3, min_ngram: 1 }),
    );
    let (spec_tokens, spec_lps) = generate(e, &ngram, &prompt, 8, 5);
    assert_eq!(spec_tokens, tokens);
    check_against_rows(&spec_tokens, &spec_lps, &rows, 5);
}

#[test]
fn prompt_logprobs_equal_a_teacher_forced_forward() {
    let e = common::engine(WeightFormat::Q8_0);
    let tokens = e.tokenizer.encode("The capital of France is Paris. The capital of Italy is Rome.").unwrap();
    let scored = e.prompt_logprobs(&tokens, 3).unwrap();
    assert_eq!(scored.len(), tokens.len());
    assert!(scored[0].is_none(), "the first token has no context");
    let rows = step_rows(e, &tokens[..1], &tokens[1..]);
    for i in 1..tokens.len() {
        let lp = scored[i].as_ref().unwrap();
        assert_eq!(lp.chosen.token, TokenRef::Id(tokens[i]));
        let want = reference_logprob(&rows[i - 1], tokens[i] as usize);
        assert!((lp.chosen.logprob as f64 - want).abs() < 1e-4, "position {i}: {} vs {want}", lp.chosen.logprob);
        let want_top: Vec<TokenRef> = reference_top(&rows[i - 1], 3).into_iter().map(TokenRef::Id).collect();
        assert_eq!(lp.top.iter().map(|a| a.token.clone()).collect::<Vec<_>>(), want_top);
    }
    // A predictable continuation is likely: "Rome" after "The capital of Italy is".
    assert!(scored.last().unwrap().as_ref().unwrap().chosen.logprob > -3.0);
}
