//! Engine micro-benchmark: prefill and decode speed for one weight format, single stream. Used by
//! `ttc bench engine`; medians over repeated runs, since a 2-core machine is noisy.

use crate::error::Result;
use crate::model::{argmax, logits_rows, LogitsMode};
use crate::Engine;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct EngineBench {
    pub weights: String,
    pub load_s: f64,
    pub prefill_64_tok_s: f64,
    pub prefill_512_tok_s: f64,
    pub decode_128_tok_s: f64,
    pub decode_ms_per_token: f64,
    pub runs: usize,
}

/// A deterministic prompt of exactly `n` tokens (English text, repeated), so every format sees the same ids.
pub fn synthetic_prompt(engine: &Engine, n: usize) -> Result<Vec<u32>> {
    let text = "The customer asked for a refund of order ORD-1042 because the package arrived damaged. \
                The agent checked the policy, confirmed the purchase date, and issued a credit of 45.99 dollars. ";
    let mut ids = engine.tokenizer.encode(text)?;
    while ids.len() < n {
        let again = ids.clone();
        ids.extend(again);
    }
    ids.truncate(n);
    Ok(ids)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Prefill tok/s of an `n`-token prompt into an empty cache.
pub fn prefill_tok_s(engine: &Engine, n: usize) -> Result<f64> {
    let prompt = synthetic_prompt(engine, n)?;
    let mut cache = engine.model.new_cache()?;
    let t = Instant::now();
    engine.model.forward(&prompt, &mut cache, LogitsMode::Last)?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Greedy decode tok/s over `n` tokens after a 64-token prompt, never stopping early (EOS ignored).
pub fn decode_tok_s(engine: &Engine, n: usize) -> Result<f64> {
    let prompt = synthetic_prompt(engine, 64)?;
    let mut cache = engine.model.new_cache()?;
    let logits = engine.model.forward(&prompt, &mut cache, LogitsMode::Last)?;
    let mut next = argmax(&logits_rows(&logits)?[0]);
    let t = Instant::now();
    for _ in 0..n {
        let logits = engine.model.forward(&[next], &mut cache, LogitsMode::Last)?;
        next = argmax(&logits_rows(&logits)?[0]);
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

pub fn run(engine: &Engine, load_s: f64, runs: usize) -> Result<EngineBench> {
    // One untimed warm-up of each shape (allocations, page faults, thread pool start).
    prefill_tok_s(engine, 64)?;
    decode_tok_s(engine, 8)?;
    let mut p64 = Vec::new();
    let mut p512 = Vec::new();
    let mut dec = Vec::new();
    for _ in 0..runs.max(1) {
        p64.push(prefill_tok_s(engine, 64)?);
        p512.push(prefill_tok_s(engine, 512)?);
        dec.push(decode_tok_s(engine, 128)?);
    }
    let decode = median(dec);
    Ok(EngineBench {
        weights: engine.model.format.label().to_string(),
        load_s,
        prefill_64_tok_s: median(p64),
        prefill_512_tok_s: median(p512),
        decode_128_tok_s: decode,
        decode_ms_per_token: 1000.0 / decode,
        runs: runs.max(1),
    })
}
