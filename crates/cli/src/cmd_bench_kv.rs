//! `ttc bench kv`: the memory / speed / fidelity frontier of KV-cache shrinking (docs/kv-and-batching.md).

use crate::cmd_generate::ModelArgs;
use crate::exit::Outcome;
use clap::Args;
use std::path::PathBuf;
use ttc_engine::kv_bench::{grid, kv_bench, synthetic_prompt, KvBenchRow, KvCase, KvPrompt};
use ttc_engine::policy::{Algorithm, KvMethod};
use ttc_engine::{ChatMessage, Engine};

#[derive(Args)]
pub struct KvBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Methods of the grid (comma-separated): heavy_hitters, sinks, snapkv.
    #[arg(long, value_delimiter = ',', default_value = "heavy_hitters,sinks,snapkv", value_parser = parse_method)]
    pub methods: Vec<KvMethod>,
    /// Shrink ratios of the grid (comma-separated, each in [0, 1)); every grid case reaches its target right
    /// after the prefill.
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.5,0.7,0.9", value_parser = parse_ratio)]
    pub ratios: Vec<f64>,
    /// Prompt sizes in tokens (comma-separated): synthetic store-policy handbooks of at most this many tokens,
    /// or with --data-dir the CRMArena prompts closest to each size.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000")]
    pub prompt_tokens: Vec<usize>,
    /// Real data root (holding crmarena/tasks_natural.json): measure on CRMArena prompts instead.
    #[arg(long, env = "TTC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tokens decoded per case (end-of-sequence masked, so every case decodes this many).
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Timed rounds per case (baseline decode, then the case's); the median round's speed ratio is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Policies file whose kv_shrink policies are measured too, as configured (schedule and horizon included).
    #[arg(long, default_value = "configs/policies.yaml")]
    pub config: PathBuf,
    /// Only these policies of --config (comma-separated); `none` for the grid alone. Default: every kv_shrink
    /// policy of the file (none if the default file is absent).
    #[arg(long, value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

fn parse_method(s: &str) -> Result<KvMethod, String> {
    s.trim().parse()
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is not in [0, 1)"))
    }
}

/// The configured kv_shrink policies to measure besides the grid.
fn configured_cases(a: &KvBenchArgs) -> anyhow::Result<Vec<KvCase>> {
    if a.policies.iter().any(|p| p == "none") {
        return Ok(Vec::new());
    }
    let default_path = a.config == std::path::Path::new("configs/policies.yaml");
    if default_path && !a.config.exists() && a.policies.is_empty() {
        return Ok(Vec::new());
    }
    let all = ttc_engine::load_policies(&a.config).map_err(|e| crate::exit::usage(e.to_string()))?;
    for name in &a.policies {
        match all.iter().find(|p| &p.name == name) {
            None => return Err(crate::exit::usage(format!("--policies: no policy `{name}` in {}", a.config.display()))),
            Some(p) if !matches!(p.algorithm, Algorithm::KvShrink(_)) => {
                return Err(crate::exit::usage(format!("--policies: `{name}` is not a kv_shrink policy")));
            }
            _ => {}
        }
    }
    Ok(all
        .into_iter()
        .filter(|p| a.policies.is_empty() || a.policies.contains(&p.name))
        .filter_map(|p| match p.algorithm {
            Algorithm::KvShrink(params) => Some(KvCase { label: p.name, params }),
            _ => None,
        })
        .collect())
}

/// CRMArena prompts (the default run's prompt construction) closest in length to each size.
fn crmarena_prompts(engine: &Engine, dir: &std::path::Path, sizes: &[usize]) -> anyhow::Result<Vec<KvPrompt>> {
    let spec = ttc_eval::suite::SuiteSpec::new(ttc_types::Suite::Crmarena.name());
    let source = ttc_eval::suite::DataSource { data_dir: Some(dir.to_path_buf()) };
    let items = ttc_eval::suite::load_suite(&spec, &source).map_err(|e| crate::exit::usage(e.to_string()))?;
    let mut lengths = Vec::new();
    for item in &items {
        let messages: Vec<ChatMessage> = item.messages.iter().map(|m| ChatMessage::new(&m.role, m.content.clone())).collect();
        lengths.push((engine.prompt_tokens(&messages)?, item.sample_id.clone()));
    }
    let mut out: Vec<KvPrompt> = Vec::new();
    for &size in sizes {
        let best = lengths
            .iter()
            .filter(|(ids, id)| ids.len() + 1 < engine.context_length() && !out.iter().any(|p| p.name.ends_with(id.as_str())))
            .min_by_key(|(ids, _)| ids.len().abs_diff(size));
        if let Some((ids, id)) = best {
            out.push(KvPrompt { name: format!("crmarena-{id}"), ids: ids.clone() });
        }
    }
    Ok(out)
}

pub fn kv(a: KvBenchArgs) -> anyhow::Result<Outcome> {
    if a.max_tokens < 2 {
        return Err(crate::exit::usage("--max-tokens: must be >= 2 (decode speed is measured after the first token)"));
    }
    let mut cases = grid(&a.methods, &a.ratios);
    cases.extend(configured_cases(&a)?);
    let engine = a.model.load()?;
    let prompts = match &a.data_dir {
        Some(dir) => crmarena_prompts(&engine, dir, &a.prompt_tokens)?,
        None => a.prompt_tokens.iter().map(|&n| synthetic_prompt(&engine, n)).collect::<Result<_, _>>()?,
    };
    let threads = std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "default".into());
    if !a.json {
        println!("weights: {}, threads: {threads}, {} decode steps per case", engine.model.format, a.max_tokens - 1);
        println!(
            "{:<18} {:>6} {:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "prompt", "tokens", "policy", "KV final", "KV mean", "KV peak", "prefill", "decode", "agree"
        );
    }
    let json = a.json;
    let rows = kv_bench(&engine, &prompts, &cases, a.max_tokens, a.runs, &mut |r: &KvBenchRow| {
        if !json {
            println!(
                "{:<18} {:>6} {:<28} {:>7.2}x {:>7.2}x {:>7.2}x {:>7.2}x {:>7.2}x {:>8.3}",
                r.prompt, r.prompt_tokens, r.policy, r.kv_final_ratio, r.kv_mean_ratio, r.kv_peak_ratio, r.prefill_ratio,
                r.decode_speed_ratio, r.forced_agreement
            );
        } else {
            eprintln!("{} {}: decode {:.2}x", r.prompt, r.policy, r.decode_speed_ratio);
        }
    })?;
    let text = serde_json::to_string_pretty(&serde_json::json!({ "threads": threads, "max_tokens": a.max_tokens, "rows": rows }))?;
    if let Some(path) = &a.json_out {
        std::fs::write(path, &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if a.json {
        println!("{text}");
    }
    Ok(Outcome::Done)
}
