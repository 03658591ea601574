//! `ttc bench engine`.

use crate::cmd_generate::ModelArgs;
use clap::{Args, Subcommand};
use std::time::Instant;
use ttc_engine::{Engine, WeightFormat};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prefill (64 and 512 tokens) and decode (128 tokens) speed, single stream, for each weight format.
    Engine(EngineBenchArgs),
}

#[derive(Args)]
pub struct EngineBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weight formats to measure (comma-separated); default: all four.
    #[arg(long, value_delimiter = ',', default_value = "auto,q8_0,f32,native")]
    pub formats: Vec<String>,
    /// Timed repetitions per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<i32> {
    match cmd {
        BenchCommand::Engine(a) => engine(a),
    }
}

fn engine(a: EngineBenchArgs) -> anyhow::Result<i32> {
    let path = crate::model_path::resolve(a.model.model.clone(), false)?;
    let formats = a
        .formats
        .iter()
        .map(|f| f.parse::<WeightFormat>().map_err(crate::exit::usage))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads = std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let mut results = Vec::new();
    for f in formats {
        if !a.json {
            eprintln!("measuring {f} ({} runs)...", a.runs);
        }
        let t = Instant::now();
        let engine = Engine::load(&path, f)?;
        let load_s = t.elapsed().as_secs_f64();
        results.push(ttc_engine::bench::run(&engine, load_s, a.runs)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "threads": threads, "results": results }))?);
    } else {
        println!("{:<8} {:>8} {:>14} {:>15} {:>14} {:>10}", "weights", "load s", "prefill64 t/s", "prefill512 t/s", "decode128 t/s", "ms/token");
        for r in &results {
            println!(
                "{:<8} {:>8.2} {:>14.0} {:>15.0} {:>14.1} {:>10.1}",
                r.weights, r.load_s, r.prefill_64_tok_s, r.prefill_512_tok_s, r.decode_128_tok_s, r.decode_ms_per_token
            );
        }
    }
    Ok(0)
}
