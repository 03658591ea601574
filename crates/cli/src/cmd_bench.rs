//! `ttc bench engine`.

use crate::cmd_generate::ModelArgs;
use crate::exit::Outcome;
use clap::{Args, Subcommand};
use std::time::Instant;
use ttc_engine::{Engine, WeightFormat};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prefill (64 and 512 tokens) and decode (128 tokens) speed, single stream, for each weight format.
    Engine(EngineBenchArgs),
    /// Decode speed of each decoding policy as a ratio to baseline greedy in the same process, with acceptance
    /// rates, exit layers and token agreement, on input-grounded and open-ended prompts.
    Policies(PolicyBenchArgs),
    /// Time to first token of a request whose long system prompt was seen before (prefix cache) against the
    /// cold request, as a ratio measured in the same process.
    PrefixCache(PrefixCacheBenchArgs),
    /// KV-cache shrinking frontier: KV memory (final, mean, peak), prefill time, decode speed and teacher-forced
    /// agreement against the full cache, for each method x shrink ratio (and the configured kv_shrink policies)
    /// on long prompts, the baseline measured in the same run.
    Kv(crate::cmd_bench_kv::KvBenchArgs),
}

#[derive(Args)]
pub struct PrefixCacheBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Tokens of the shared system prompt.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(1..7000))]
    pub system_tokens: u64,
    /// Rounds (each with an emptied cache); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PolicyBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Policies file.
    #[arg(long, default_value = "configs/policies.yaml")]
    pub config: std::path::PathBuf,
    /// Policies to measure (comma-separated); default: the speculative and early-exit ones.
    #[arg(long, value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Tokens generated per prompt.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Rounds per policy; each round times baseline then the policy, and the median round is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EngineBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weight formats to measure (comma-separated); default: all five. They are measured interleaved (each round
    /// times every format back to back) and compared with the first one listed.
    #[arg(long, value_delimiter = ',', default_value = "auto,q4_1,q8_0,f32,native")]
    pub formats: Vec<String>,
    /// Timed repetitions per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<Outcome> {
    match cmd {
        BenchCommand::Engine(a) => engine(a),
        BenchCommand::Policies(a) => policies(a),
        BenchCommand::PrefixCache(a) => prefix_cache(a),
        BenchCommand::Kv(a) => crate::cmd_bench_kv::kv(a),
    }
}

fn prefix_cache(a: PrefixCacheBenchArgs) -> anyhow::Result<Outcome> {
    let mut engine = a.model.load()?;
    let r = ttc_engine::bench::prefix_cache_bench(&mut engine, a.system_tokens as usize, a.runs)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(Outcome::Done);
    }
    println!("weights: {}, system prompt {} tokens, prompt {} tokens, {} runs (medians)", engine.model.format, r.system_tokens, r.prompt_tokens, r.runs);
    println!("cold TTFT  {:>8.1} ms", r.cold_ttft_s * 1e3);
    println!("warm TTFT  {:>8.1} ms  ({} prompt tokens from the prefix cache)", r.warm_ttft_s * 1e3, r.cached_prompt_tokens);
    println!("warm/cold  {:>8.3}", r.warm_over_cold);
    Ok(Outcome::Done)
}

fn policies(a: PolicyBenchArgs) -> anyhow::Result<Outcome> {
    use ttc_engine::bench::{policy_bench, GROUNDED_PROMPTS, OPEN_PROMPTS};
    let all = ttc_engine::load_policies(&a.config).map_err(|e| crate::exit::usage(e.to_string()))?;
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|p| {
            if a.policies.is_empty() {
                matches!(p.family(), "speculative_decoding" | "early_exit")
            } else {
                a.policies.contains(&p.name)
            }
        })
        .collect();
    let engine = a.model.load()?;
    let mut rows = policy_bench(&engine, &chosen, "grounded", GROUNDED_PROMPTS, a.max_tokens, a.runs)?;
    rows.extend(policy_bench(&engine, &chosen, "open", OPEN_PROMPTS, a.max_tokens, a.runs)?);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Done);
    }
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    println!("weights: {}", engine.model.format);
    println!("{:<30} {:<9} {:>9} {:>8} {:>10} {:>8} {:>8} {:>9}", "policy", "prompts", "tok/s", "speedup", "agreement", "accept", "tau", "exit");
    for r in &rows {
        println!(
            "{:<30} {:<9} {:>9.1} {:>7.2}x {:>10.2} {:>8} {:>8} {:>9}",
            r.policy, r.prompt_set, r.decode_tok_s, r.speedup_vs_baseline, r.token_agreement,
            opt(r.acceptance_rate), opt(r.mean_accepted_per_step), opt(r.mean_exit_layer)
        );
    }
    Ok(Outcome::Done)
}

fn engine(a: EngineBenchArgs) -> anyhow::Result<Outcome> {
    let path = crate::model_path::resolve(a.model.model.clone(), false)?;
    let formats = a
        .formats
        .iter()
        .map(|f| f.parse::<WeightFormat>().map_err(crate::exit::usage))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads = std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let mut engines = Vec::new();
    for f in formats {
        let t = Instant::now();
        let engine = Engine::load(&path, f)?;
        engines.push((engine, t.elapsed().as_secs_f64()));
    }
    if !a.json {
        eprintln!("measuring {} format(s), interleaved, {} runs...", engines.len(), a.runs);
    }
    let loaded: Vec<(&Engine, f64)> = engines.iter().map(|(e, s)| (e, *s)).collect();
    let results = ttc_engine::bench::run_interleaved(&loaded, a.runs)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "threads": threads, "results": results }))?);
    } else {
        // Ratios against the first format listed, measured in the same rounds.
        let first = &results[0];
        println!(
            "{:<8} {:>7} {:>14} {:>15} {:>14} {:>9} {:>11}  kernels",
            "weights", "load s", "prefill64 t/s", "prefill512 t/s", "decode128 t/s", "ms/token", format!("x {}", first.weights)
        );
        for r in &results {
            println!(
                "{:<8} {:>7.2} {:>14.0} {:>15.0} {:>14.1} {:>9.1} {:>5.2}/{:<5.2}  {}",
                r.weights, r.load_s, r.prefill_64_tok_s, r.prefill_512_tok_s, r.decode_128_tok_s, r.decode_ms_per_token,
                r.prefill_512_tok_s / first.prefill_512_tok_s, r.decode_128_tok_s / first.decode_128_tok_s, r.kernels
            );
        }
        println!("(x {}: prefill 512 / decode 128 relative to the first format listed)", first.weights);
    }
    Ok(Outcome::Done)
}
