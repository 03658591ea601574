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
    /// The matrix kernels that ran (`LlamaModel::kernels`).
    pub kernels: String,
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
    Ok(run_interleaved(&[(engine, load_s)], runs)?.remove(0))
}

/// `run` for several loaded engines (formats) at once, interleaved: each round measures every engine back to back,
/// so all of them see the same machine state and their ratios do not depend on drift between minutes.
pub fn run_interleaved(engines: &[(&Engine, f64)], runs: usize) -> Result<Vec<EngineBench>> {
    // One untimed warm-up of each shape (allocations, page faults, thread pool start).
    for (engine, _) in engines {
        prefill_tok_s(engine, 64)?;
        decode_tok_s(engine, 8)?;
    }
    let mut samples = vec![(Vec::new(), Vec::new(), Vec::new()); engines.len()];
    for _ in 0..runs.max(1) {
        for ((engine, _), (p64, p512, dec)) in engines.iter().zip(samples.iter_mut()) {
            p64.push(prefill_tok_s(engine, 64)?);
            p512.push(prefill_tok_s(engine, 512)?);
            dec.push(decode_tok_s(engine, 128)?);
        }
    }
    Ok(engines
        .iter()
        .zip(samples)
        .map(|((engine, load_s), (p64, p512, dec))| {
            let decode = median(dec);
            EngineBench {
                weights: engine.model.format.label().to_string(),
                kernels: engine.model.kernels(),
                load_s: *load_s,
                prefill_64_tok_s: median(p64),
                prefill_512_tok_s: median(p512),
                decode_128_tok_s: decode,
                decode_ms_per_token: 1000.0 / decode,
                runs: runs.max(1),
            }
        })
        .collect())
}

/// Prompts whose answers copy from the input (what prompt lookup and self-speculation can exploit).
pub const GROUNDED_PROMPTS: &[&str] = &[
    "Copy the following customer address exactly, then repeat it once more: 1200 Market Street, Suite 400, San Francisco, CA 94103.",
    "Rewrite this sentence with correct spelling: 'The custmer recieved a damagd package and requsted a replacment for order ORD-7781.'",
    "Cases this week: 500Wt00000XyZ1 (Billing), 500Wt00000XyZ2 (Shipping), 500Wt00000XyZ3 (Billing), 500Wt00000XyZ4 (Billing). List every case ID with its category, one per line.",
    "Task: book a flight from Paris to Berlin and reserve a hotel near the conference. Actions: search_flights, book_flight, search_hotels, book_hotel. Write the workflow as Node: and Edge: lists using the action names.",
    "Task: list all files in /var/log larger than 10MB and compress them. Actions: find_large_files, gzip_file, report_done. Produce a Node: list then an Edge: list using these actions.",
    "Order ORD-7781 contains SKU-220 (Wireless Mouse, qty 2), SKU-118 (USB-C Hub, qty 1) and SKU-305 (Laptop Stand, qty 1). List each SKU with its product name and quantity.",
];

/// Open-ended prompts (little to copy).
pub const OPEN_PROMPTS: &[&str] = &[
    "Write a short story about a lighthouse keeper.",
    "Give three tips for writing clear emails.",
    "Explain why the sky is blue.",
];

#[derive(Debug, Clone, Serialize)]
pub struct PolicyBenchRow {
    pub policy: String,
    pub prompt_set: String,
    pub decode_tok_s: f64,
    pub speedup_vs_baseline: f64,
    /// Share of generated tokens equal to baseline greedy at the same position (up to the shorter length).
    pub token_agreement: f64,
    pub acceptance_rate: Option<f64>,
    pub mean_accepted_per_step: Option<f64>,
    pub mean_exit_layer: Option<f64>,
    pub output_tokens: usize,
}

/// Decode speed and agreement of each policy against baseline greedy, on one prompt set, same process and
/// same weights. Decode time = e2e minus the prefill (TTFT), over tokens after the first. Each of `runs` rounds
/// times baseline and then the policy back to back, so both see the same machine state; the reported speed-up is
/// the median of the rounds' ratios (a single baseline timing at the start let drift decide results).
pub fn policy_bench(
    engine: &Engine,
    policies: &[crate::Policy],
    set_name: &str,
    prompts: &[&str],
    max_tokens: usize,
    runs: usize,
) -> Result<Vec<PolicyBenchRow>> {
    let prompt_ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| engine.prompt_tokens(&[crate::ChatMessage::new("user", *p)]))
        .collect::<Result<_>>()?;
    let run = |policy: &crate::Policy| -> Result<(Vec<Vec<u32>>, f64, ttc_types::PolicyStats, usize)> {
        let mut outs = Vec::new();
        let (mut toks, mut secs) = (0usize, 0f64);
        let mut agg = ttc_types::PolicyStats::default();
        let (mut drafted, mut accepted, mut steps, mut emitted, mut exit_sum, mut exit_n) = (0u64, 0u64, 0u64, 0f64, 0f64, 0f64);
        for p in &prompt_ids {
            let req = crate::GenRequest { prompt: p.clone(), max_tokens, stop: vec![], ..Default::default() };
            let (out, s) = engine.generate_policy(&req, policy, None, &mut |_| true)?;
            toks += out.token_ids.len().saturating_sub(1);
            secs += out.decode_s;
            if let (Some(d), Some(a), Some(st)) = (s.drafted_tokens, s.accepted_tokens, s.verification_steps) {
                drafted += d;
                accepted += a;
                steps += st;
                emitted += s.mean_accepted_per_step.unwrap_or(0.0) * st as f64;
            }
            if let Some(m) = s.mean_exit_layer {
                exit_sum += m * out.token_ids.len() as f64;
                exit_n += out.token_ids.len() as f64;
            }
            outs.push(out.token_ids);
        }
        if steps > 0 {
            agg.acceptance_rate = (drafted > 0).then(|| accepted as f64 / drafted as f64);
            agg.mean_accepted_per_step = Some(emitted / steps as f64);
        }
        agg.mean_exit_layer = (exit_n > 0.0).then(|| exit_sum / exit_n);
        Ok((outs, toks as f64 / secs.max(1e-9), agg, toks))
    };
    let baseline = crate::Policy::baseline();
    let mut rows = Vec::new();
    for policy in policies {
        let mut rounds = Vec::new();
        for _ in 0..runs.max(1) {
            let (base_out, base_speed, _, _) = run(&baseline)?;
            let (outs, speed, s, toks) = run(policy)?;
            rounds.push((speed / base_speed, speed, base_out, outs, s, toks));
        }
        rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ratio, speed, base_out, outs, s, toks) = rounds.swap_remove(rounds.len() / 2);
        let (mut same, mut total) = (0usize, 0usize);
        for (a, b) in outs.iter().zip(&base_out) {
            let n = a.len().min(b.len());
            same += a[..n].iter().zip(&b[..n]).filter(|(x, y)| x == y).count();
            total += n;
        }
        rows.push(PolicyBenchRow {
            policy: policy.name.clone(),
            prompt_set: set_name.to_string(),
            decode_tok_s: speed,
            speedup_vs_baseline: ratio,
            token_agreement: if total > 0 { same as f64 / total as f64 } else { 0.0 },
            acceptance_rate: s.acceptance_rate,
            mean_accepted_per_step: s.mean_accepted_per_step,
            mean_exit_layer: s.mean_exit_layer,
            output_tokens: toks,
        });
    }
    Ok(rows)
}

/// TTFT with and without a cached prefix: one request with an `n_system`-token system prompt prefills it cold,
/// then requests with the same system prompt and another question find it in the prefix cache.
#[derive(Debug, Clone, Serialize)]
pub struct PrefixCacheBench {
    pub system_tokens: usize,
    pub prompt_tokens: usize,
    pub cold_ttft_s: f64,
    pub warm_ttft_s: f64,
    /// warm / cold (the target is <= 0.25 for a 1,500-token system prompt).
    pub warm_over_cold: f64,
    pub cached_prompt_tokens: u32,
    pub runs: usize,
}

/// Medians over `runs` rounds; each round clears the cache (a fresh `PrefixCache`) so its first request is cold.
/// `engine` must not have a prefix cache of its own; this enables one (64 MiB) for the measurement.
pub fn prefix_cache_bench(engine: &mut Engine, n_system: usize, runs: usize) -> Result<PrefixCacheBench> {
    let system: String = {
        let ids = synthetic_prompt(engine, n_system)?;
        engine.tokenizer.decode(&ids, true)
    };
    let prompt = |engine: &Engine, q: &str| {
        engine.prompt_tokens(&[crate::ChatMessage::new("system", system.clone()), crate::ChatMessage::new("user", q.to_string())])
    };
    let ttft = |engine: &Engine, p: Vec<u32>| -> Result<(f64, u32, usize)> {
        let n = p.len();
        let req = crate::GenRequest { prompt: p, max_tokens: 1, ..Default::default() };
        let (out, _) = engine.generate_policy(&req, &crate::Policy::baseline(), None, &mut |_| true)?;
        Ok((out.ttft_s, out.usage.cached_prompt_tokens, n))
    };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let (mut cached, mut prompt_tokens) = (0, 0);
    // One untimed warm-up of the shapes involved.
    ttft(engine, prompt(engine, "Warm up.")?)?;
    for round in 0..runs.max(1) {
        engine.enable_prefix_cache(64 << 20)?;
        let (c, _, _) = ttft(engine, prompt(engine, &format!("Question {round}: what did the customer ask for?"))?)?;
        let (w, hit, n) = ttft(engine, prompt(engine, &format!("Question {round}: how much was credited?"))?)?;
        cold.push(c);
        warm.push(w);
        (cached, prompt_tokens) = (hit, n);
    }
    let (cold, warm) = (median(cold), median(warm));
    Ok(PrefixCacheBench {
        system_tokens: n_system,
        prompt_tokens,
        cold_ttft_s: cold,
        warm_ttft_s: warm,
        warm_over_cold: warm / cold.max(1e-9),
        cached_prompt_tokens: cached,
        runs: runs.max(1),
    })
}
