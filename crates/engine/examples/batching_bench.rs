//! Batch scheduler benchmark: aggregate output tok/s and TTFT at several concurrency levels, elastic vs static vs
//! one-at-a-time, on the real model. Not a test (timings on a shared 2-core machine are noisy); numbers go into
//! docs/kv-and-batching.md.
//!
//! cargo run -p ttc-engine --example batching_bench -- [--weights q8_0|auto|f32] [--concurrency 1,4,8,16]
//!     [--requests-per-client 2] [--max-tokens 48] [--modes one,static,elastic] [--json out.json] [--steps-only 1]
//!
//! Workload: closed loop. C clients each send `requests-per-client` chat requests one after another (a new one as
//! soon as the previous finished), greedy, prompts of different kinds so outputs end at different lengths (EOS or
//! max_tokens). Aggregate throughput = all output tokens / (last completion - first submit). TTFT is from submit,
//! so it includes queueing. `differs` counts requests whose tokens differ from the same prompt run one at a time
//! (zero expected for q8_0; dense f32 matmuls at >= 16 rows under `auto` can flip near-ties).

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::Instant;
use ttc_engine::model::{LogitsMode, SeqInput};
use ttc_engine::scheduler::{greedy, BatchMode, Scheduler, SchedulerConfig, StreamItem};
use ttc_engine::{ChatMessage, Engine, GenRequest, WeightFormat};
use ttc_types::timing::percentile_sorted;

const PROMPTS: &[&str] = &[
    "What is the capital of Japan? Explain briefly.",
    "Summarize: The customer Jane Doe (account ACC-2231) reported that order ORD-7781 arrived late and asked for a refund.",
    "List three colors.",
    "Write a haiku about autumn rain.",
    "Translate to French: good morning, how are you?",
    "Write a short workflow to book a flight and a hotel for a conference in Berlin.",
    "Explain what a KV cache is in one sentence.",
    "Give two tips for writing clear emails to customers.",
    "What is 12 times 12?",
    "Describe the water cycle for a ten-year-old.",
    "Name a famous painting and its painter.",
    "Fix the spelling: 'The custmer recieved the pakage yesterdy.'",
];

struct Args {
    weights: WeightFormat,
    concurrency: Vec<usize>,
    per_client: usize,
    max_tokens: usize,
    json: Option<String>,
    modes: Vec<String>,
    steps_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        weights: WeightFormat::Q8_0,
        concurrency: vec![1, 4, 8, 16],
        per_client: 2,
        max_tokens: 48,
        json: None,
        modes: vec!["one".into(), "static".into(), "elastic".into()],
        steps_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--weights" => a.weights = v.parse()?,
            "--concurrency" => {
                a.concurrency = v.split(',').map(|x| x.trim().parse().map_err(|e| format!("--concurrency: {e}"))).collect::<Result<_, _>>()?
            }
            "--requests-per-client" => a.per_client = v.parse().map_err(|e| format!("{k}: {e}"))?,
            "--max-tokens" => a.max_tokens = v.parse().map_err(|e| format!("{k}: {e}"))?,
            "--modes" => a.modes = v.split(',').map(str::to_string).collect(),
            "--json" => a.json = Some(v),
            "--steps-only" => a.steps_only = v == "1" || v == "true",
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[derive(serde::Serialize)]
struct Row {
    weights: String,
    mode: String,
    concurrency: usize,
    requests: usize,
    output_tokens: usize,
    wall_s: f64,
    tok_s: f64,
    ttft_p50_s: f64,
    ttft_p95_s: f64,
    mean_occupancy: f64,
    steps: u64,
    differs: usize,
}

/// Run C closed-loop clients against a fresh scheduler; returns the row and each request's tokens by prompt index.
fn run(engine: &Arc<Engine>, config: SchedulerConfig, c: usize, args: &Args, reqs: &[GenRequest]) -> (Row, Vec<(usize, Vec<u32>)>) {
    let scheduler = Arc::new(Scheduler::new(engine.clone(), config).expect("scheduler"));
    let start = Instant::now();
    let clients: Vec<_> = (0..c)
        .map(|client| {
            let scheduler = scheduler.clone();
            let reqs: Vec<(usize, GenRequest)> = (0..args.per_client)
                .map(|k| {
                    let i = (client * args.per_client + k) % reqs.len();
                    (i, reqs[i].clone())
                })
                .collect();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for (i, req) in reqs {
                    let (tx, rx) = mpsc::channel();
                    scheduler.submit(req, greedy(), tx).expect("submit");
                    for item in rx {
                        if let StreamItem::Done(r) = item {
                            out.push((i, r.expect("request failed"), Instant::now()));
                            break;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let done: Vec<_> = clients.into_iter().flat_map(|h| h.join().expect("client")).collect();
    let end = done.iter().map(|d| d.2).max().unwrap_or(start);
    let wall_s = (end - start).as_secs_f64();
    let output_tokens: usize = done.iter().map(|d| d.1.output.token_ids.len()).sum();
    let mut ttft: Vec<f64> = done.iter().map(|d| d.1.output.ttft_s).collect();
    ttft.sort_by(|a, b| a.total_cmp(b));
    let occ: f64 = done.iter().map(|d| d.1.stats.mean_batch_occupancy.unwrap_or(0.0)).sum::<f64>() / done.len() as f64;
    let mode = match config.mode {
        BatchMode::Elastic => "elastic",
        BatchMode::Static => "static",
        BatchMode::OneAtATime => "one-at-a-time",
    };
    let row = Row {
        weights: engine.model.format.label().into(),
        mode: mode.into(),
        concurrency: c,
        requests: done.len(),
        output_tokens,
        wall_s,
        tok_s: output_tokens as f64 / wall_s,
        ttft_p50_s: percentile_sorted(&ttft, 50.0).unwrap_or(0.0),
        ttft_p95_s: percentile_sorted(&ttft, 95.0).unwrap_or(0.0),
        mean_occupancy: occ,
        steps: scheduler.load().steps,
        differs: 0,
    };
    (row, done.into_iter().map(|d| (d.0, d.1.output.token_ids)).collect())
}

/// Median time of one decode step with B sequences (context ~100 tokens each), to show where batching saturates.
fn step_costs(engine: &Engine, reqs: &[GenRequest]) {
    println!("\nstep cost, {} weights (median of 5, ctx ~ prompt + 1):", engine.model.format);
    println!("| B | ms/step | ms/token | tokens/s |\n|---|---|---|---|");
    let mut base = None;
    for b in [1usize, 2, 4, 8, 16] {
        let mut caches: Vec<_> = (0..b).map(|_| engine.model.new_cache().expect("cache")).collect();
        for (i, c) in caches.iter_mut().enumerate() {
            engine.model.forward(&reqs[i % reqs.len()].prompt, c, LogitsMode::None).expect("prefill");
        }
        let mut times = Vec::new();
        for _ in 0..5 {
            let toks: Vec<[u32; 1]> = (0..b).map(|i| [100 + i as u32]).collect();
            let mut inputs: Vec<SeqInput> = caches
                .iter_mut()
                .zip(&toks)
                .map(|(c, t)| SeqInput { tokens: t, cache: c, logits: LogitsMode::Last })
                .collect();
            let t = Instant::now();
            engine.model.forward_batch(&mut inputs).expect("step");
            times.push(t.elapsed().as_secs_f64());
            for c in caches.iter_mut() {
                let n = c.next_pos - 1;
                c.truncate(n);
            }
        }
        let ms = ttc_engine::bench::median(times) * 1000.0;
        let per_tok = ms / b as f64;
        let base_ms = *base.get_or_insert(ms);
        println!("| {b} | {ms:.1} | {per_tok:.1} | {:.0} ({:.2}x B=1) |", 1000.0 / per_tok, base_ms / per_tok);
    }
    // forward_batch runs the LM head once per sequence; how much would one stacked LM head save?
    let h = candle_core::Tensor::randn(0f32, 1.0, (8, engine.model.cfg.n_embd), &candle_core::Device::Cpu).expect("h");
    let time = |f: &dyn Fn()| {
        let mut t = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            f();
            t.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        ttc_engine::bench::median(t)
    };
    let separate = time(&|| {
        for i in 0..8 {
            engine.model.logits(&h.narrow(0, i, 1).expect("row")).expect("lm head");
        }
    });
    let stacked = time(&|| {
        engine.model.logits(&h).expect("lm head");
    });
    println!("LM head for 8 rows: 8 separate 1-row matmuls {separate:.1} ms, one 8-row matmul {stacked:.1} ms");
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("batching_bench: {e}");
            std::process::exit(2);
        }
    };
    let path = std::env::var("TTC_MODEL").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".cache/ttcbench/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    let engine = Arc::new(Engine::load(&path, args.weights).unwrap_or_else(|e| {
        eprintln!("batching_bench: {e}");
        std::process::exit(1);
    }));
    let reqs: Vec<GenRequest> = PROMPTS
        .iter()
        .map(|p| GenRequest {
            prompt: engine.prompt_tokens(&[ChatMessage::new("user", *p)]).expect("prompt"),
            max_tokens: args.max_tokens,
            ..Default::default()
        })
        .collect();
    step_costs(&engine, &reqs);
    if args.steps_only {
        return;
    }
    // Reference outputs: each prompt alone.
    let solo: HashMap<usize, Vec<u32>> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let out = engine.generate_plain(r, &mut |l: &[f32]| ttc_engine::argmax(l), &mut |_| true).expect("solo");
            (i, out.token_ids)
        })
        .collect();
    let mut rows = Vec::new();
    println!("\n| weights | mode | C | requests | out tokens | wall s | tok/s | x one-at-a-time | TTFT p50 s | TTFT p95 s | occupancy | steps | differs |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &c in &args.concurrency {
        let mut one_tok_s = None;
        for m in &args.modes {
            let config = match m.as_str() {
                "one" => SchedulerConfig::one_at_a_time(),
                "static" => SchedulerConfig::static_batches(c.max(1)),
                "elastic" => SchedulerConfig::elastic(c.max(1)),
                other => {
                    eprintln!("batching_bench: unknown mode {other} (one, static, elastic)");
                    std::process::exit(2);
                }
            };
            let (mut row, outs) = run(&engine, config, c, &args, &reqs);
            row.differs = outs.iter().filter(|(i, t)| &solo[i] != t).count();
            if m == "one" {
                one_tok_s = Some(row.tok_s);
            }
            let ratio = one_tok_s.map(|b| format!("{:.2}", row.tok_s / b)).unwrap_or_else(|| "-".into());
            println!(
                "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
                row.weights, row.mode, row.concurrency, row.requests, row.output_tokens, row.wall_s, row.tok_s, ratio,
                row.ttft_p50_s, row.ttft_p95_s, row.mean_occupancy, row.steps, row.differs
            );
            rows.push(row);
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows).expect("json");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("batching_bench: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
