//! `ttc tokenize` and `ttc generate`.

use crate::exit::{usage, Outcome};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use ttc_engine::{ChatMessage, Engine, GenRequest, WeightFormat};
use ttc_sampling::{Pruning, Sampler, SamplerConfig};
use ttc_engine::Policy;
use ttc_types::{GenEvent, TokenLogprob, TokenRef};

#[derive(Args)]
pub struct ModelArgs {
    /// A llama-architecture GGUF file; default: SmolLM2-135M-Instruct from the cache (`ttc model pull`).
    #[arg(long, env = "TTC_MODEL")]
    pub model: Option<PathBuf>,
    /// Weight format at load: auto (the fastest for this CPU: the file's 4-bit blocks through the AVX-512 or AVX2
    /// tiles), q4_1, q8_0, f32, or native (the file's types with llama.cpp's arithmetic); see docs/engine.md.
    #[arg(long, default_value = "auto", value_parser = parse_weights)]
    pub weights: WeightFormat,
}

fn parse_weights(s: &str) -> Result<WeightFormat, String> {
    s.parse()
}

impl ModelArgs {
    pub fn load(&self) -> anyhow::Result<Engine> {
        let path = crate::model_path::resolve(self.model.clone(), false)?;
        Ok(Engine::load(&path, self.weights)?)
    }
}

#[derive(Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to tokenize (special tokens such as <|im_start|> become single ids).
    pub text: String,
}

pub fn tokenize(args: TokenizeArgs) -> anyhow::Result<Outcome> {
    let engine = args.model.load()?;
    let ids = engine.tokenizer.encode(&args.text)?;
    println!("{}", serde_json::to_string(&ids)?);
    Ok(Outcome::Done)
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message (or, with --raw, the whole prompt text).
    #[arg(long)]
    pub prompt: String,
    /// A system message; without it the model's chat template supplies its default.
    #[arg(long)]
    pub system: Option<String>,
    /// Use the prompt as-is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Maximum number of tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Seed of the sampler's random numbers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this string appears (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print one JSON object with the text, token ids and timings instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// With --json: each generated token's logprob and its K most likely alternatives (0..=20), from the logits
    /// row the token was chosen from.
    #[arg(long, value_name = "K", requires = "json", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(0..=ttc_types::MAX_TOP_LOGPROBS as i64))]
    pub logprobs: Option<i64>,
    /// Decode under this policy (a name from the policies file); default: plain decoding.
    #[arg(long)]
    pub policy: Option<String>,
    /// Policies file for --policy.
    #[arg(long, default_value = "configs/policies.yaml")]
    pub config: PathBuf,
}

pub fn sampler_config(a: &GenerateArgs) -> anyhow::Result<SamplerConfig> {
    let cfg = SamplerConfig {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        pruning: if a.top_p < 1.0 { Pruning::TopP } else { Pruning::None },
        seed: a.seed,
        ..SamplerConfig::default()
    };
    cfg.validated().map_err(|e| usage(format!("{e}")))
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<Outcome> {
    let cfg = sampler_config(&args)?;
    if args.max_tokens == 0 {
        return Err(usage("--max-tokens must be at least 1"));
    }
    let engine = args.model.load()?;
    let prompt = if args.raw {
        engine.tokenizer.encode(&args.prompt)?
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &args.system {
            msgs.push(ChatMessage::new("system", s.clone()));
        }
        msgs.push(ChatMessage::new("user", args.prompt.clone()));
        engine.prompt_tokens(&msgs)?
    };
    let req = GenRequest { prompt, max_tokens: args.max_tokens, stop: args.stop.clone(), ..Default::default() };
    let policy = match &args.policy {
        None => None,
        Some(name) => {
            let all = ttc_engine::load_policies(&args.config).map_err(|e| usage(e.to_string()))?;
            let names: Vec<_> = all.iter().map(|p| p.name.clone()).collect();
            Some(all.into_iter().find(|p| &p.name == name).ok_or_else(|| {
                usage(format!("unknown policy `{name}` in {} (known: {})", args.config.display(), names.join(", ")))
            })?)
        }
    };
    let mut sampler = Sampler::new(cfg.clone()).map_err(|e| usage(e.to_string()))?;
    let mut sample_err = None;
    let mut choose = |logits: &[f32]| match sampler.sample(logits) {
        Ok(t) => t,
        Err(e) => {
            sample_err.get_or_insert(e);
            0
        }
    };
    let stream = !args.json;
    let mut stdout = std::io::stdout();
    let mut logprobs: Vec<TokenLogprob> = Vec::new();
    let mut on_event = |ev: GenEvent| {
        if let GenEvent::Content { text, logprobs: lps, .. } = ev {
            logprobs.extend(lps);
            if stream {
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
        }
        true
    };
    let top = args.logprobs.map(|k| k as usize);
    let sampling = (!cfg.is_greedy()).then_some(cfg.clone());
    let started = Instant::now();
    let (out, stats) = match (&policy, top) {
        (Some(p), _) => {
            let (o, s) = engine.generate_policy_logprobs(&req, p, sampling, top, &mut on_event)?;
            (o, Some(s))
        }
        // Logprobs come from the policy chooser; plain decoding is the baseline policy.
        (None, Some(_)) => (engine.generate_policy_logprobs(&req, &Policy::baseline(), sampling, top, &mut on_event)?.0, None),
        (None, None) => (engine.generate_plain(&req, &mut choose, &mut on_event)?, None),
    };
    if let Some(e) = sample_err {
        anyhow::bail!("sampling failed: {e}");
    }
    if args.json {
        let mut obj = serde_json::json!({
            "text": out.text,
            "token_ids": out.token_ids,
            "prompt_tokens": out.usage.prompt_tokens,
            "output_tokens": out.usage.completion_tokens,
            "ttft_s": out.ttft_s,
            "prefill_tok_s": out.prefill_tok_s(),
            "decode_tok_s": out.decode_tok_s(),
            "e2e_s": started.elapsed().as_secs_f64(),
            "finish_reason": out.finish_reason,
            "weights": engine.model.format.label(),
            "model": engine.model_name,
        });
        if top.is_some() {
            obj["logprobs"] = logprobs_json(&engine, &logprobs);
        }
        if let (Some(p), Some(s)) = (&policy, &stats) {
            obj["policy"] = serde_json::json!(p.name);
            obj["policy_stats"] = serde_json::to_value(s)?;
        }
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!();
        eprintln!(
            "[{}{} prompt + {} output tokens | TTFT {:.0} ms | prefill {:.0} tok/s | decode {:.1} tok/s | finish: {:?}]",
            policy.as_ref().map(|p| format!("{}: ", p.name)).unwrap_or_default(),
            out.usage.prompt_tokens,
            out.usage.completion_tokens,
            out.ttft_s * 1000.0,
            out.prefill_tok_s(),
            out.decode_tok_s(),
            out.finish_reason
        );
    }
    Ok(Outcome::Done)
}

/// `[{token_id, token, logprob, top_logprobs: [{token_id, token, logprob}]}]`, one entry per generated token.
fn logprobs_json(engine: &Engine, lps: &[TokenLogprob]) -> serde_json::Value {
    let entry = |t: &TokenRef, lp: f32| {
        let (id, text) = match t {
            TokenRef::Id(id) => (Some(*id), String::from_utf8_lossy(engine.tokenizer.token_bytes(*id)).into_owned()),
            TokenRef::Text(s) => (None, s.clone()),
        };
        serde_json::json!({ "token_id": id, "token": text, "logprob": lp })
    };
    lps.iter()
        .map(|l| {
            let mut e = entry(&l.chosen.token, l.chosen.logprob);
            e["top_logprobs"] = l.top.iter().map(|a| entry(&a.token, a.logprob)).collect();
            e
        })
        .collect()
}
