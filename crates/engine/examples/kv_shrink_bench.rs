//! KV-cache shrinking benchmark on long prompts: memory against the unshrunk cache and agreement with the
//! baseline's output. Not a test; numbers go into docs/kv-and-batching.md.
//!
//! cargo run -p ttc-engine --example kv_shrink_bench -- [--weights auto] [--max-tokens 64] [--only 0,2]
//!     [--crmarena FILE] [--json out.json] [--dry 1]
//!
//! Prompts: synthetic store-policy documents written here (about 1k, 2k and 3k tokens, each ending with a question
//! whose answer is one number stated once in the document), and, with `--crmarena` (a CRMArena `tasks_natural.json`,
//! e.g. $TTC_DATA_DIR/crmarena/tasks_natural.json), its first `knowledge_qa` items with the CRM schema
//! (`schema_with_dependencies.json` next to it) and the item's metadata as context: 2k-token agent prompts. The
//! data is read at run time, never stored.
//!
//! Per prompt and policy: `exact` (same tokens as the baseline), `prefix` (tokens before the first difference),
//! `forced` (teacher-forced top-1 agreement: the baseline's tokens are fed through the shrinking cache and we count
//! the steps whose greedy choice equals the baseline's next token; free of the error cascade after a first
//! difference), `answer` (the expected number appears in the output, synthetic prompts only), and KV memory:
//! final and mean resident entries over the unshrunk cache.

use ttc_engine::kv_shrink::{generate_kv_shrink, KvShrinker, ShrinkPlan};
use ttc_engine::policy::KvShrinkParams;
use ttc_engine::{argmax, ChatMessage, Engine, GenRequest, LogitsMode, WeightFormat};

struct Prompt {
    name: String,
    messages: Vec<ChatMessage>,
    answer: Option<String>,
}

/// A deterministic pseudo-random stream (LCG) so the documents are the same on every machine.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const CATEGORIES: &[&str] = &[
    "Electronics", "Apparel", "Furniture", "Groceries", "Toys", "Books", "Sporting Goods", "Beauty", "Garden",
    "Automotive", "Jewelry", "Pet Supplies", "Office Supplies", "Musical Instruments", "Kitchenware", "Footwear",
    "Luggage", "Baby Products", "Outdoor Gear", "Video Games", "Home Appliances", "Lighting", "Tools", "Crafts",
];
const TIERS: &[&str] = &["Standard", "Silver", "Gold", "Platinum"];

/// A store policy document with `sections` product categories; returns (document, question, answer).
fn policy_document(sections: usize, seed: u64) -> (String, String, String) {
    let mut rng = Lcg(seed);
    let mut doc = String::from(
        "ACME Retail Customer Service Policy Handbook\n\nThis handbook is the reference for every support agent. \
         Apply the rules of the product category first, then the rules of the customer's membership tier.\n\n",
    );
    let mut facts = Vec::new();
    for (i, cat) in CATEGORIES.iter().cycle().take(sections).enumerate() {
        let name = if i < CATEGORIES.len() { cat.to_string() } else { format!("{cat} (Marketplace)") };
        doc.push_str(&format!("Section {}: {name}\n", i + 1));
        for tier in TIERS {
            let days = 10 + rng.next(80);
            doc.push_str(&format!(
                "- {tier} members may return {name} items within {days} days of delivery if the item is unused.\n"
            ));
            facts.push((name.clone(), tier.to_string(), days));
        }
        doc.push_str(&format!(
            "- A restocking fee of {}% applies to opened {name} items, except when the item arrived damaged.\n\
             - {name} orders above {} dollars ship for free; smaller orders pay a flat fee of {} dollars.\n\
             - Warranty claims for {name} are accepted for {} months and need the original order number.\n\
             - Escalate {name} disputes above {} dollars to the regional supervisor within {} business days.\n\n",
            5 + rng.next(20),
            25 + rng.next(100),
            3 + rng.next(9),
            6 + rng.next(30),
            200 + rng.next(800),
            1 + rng.next(5),
        ));
    }
    let (name, tier, days) = facts[rng.next(facts.len() as u64) as usize].clone();
    let question =
        format!("According to the handbook, within how many days may {tier} members return {name} items? Answer with the number.");
    (doc, question, days.to_string())
}

fn synthetic_prompts() -> Vec<Prompt> {
    // About 1k, 2k and 3k tokens with the chat template.
    [(5usize, 11u64), (10, 12), (15, 13)]
        .iter()
        .map(|&(sections, seed)| {
            let (doc, question, answer) = policy_document(sections, seed);
            Prompt {
                name: format!("policy-{sections}s"),
                messages: vec![ChatMessage::new("system", doc), ChatMessage::new("user", question)],
                answer: Some(answer),
            }
        })
        .collect()
}

/// The first `n` knowledge_qa items of a CRMArena file, with the schema and metadata as the agent's context.
fn crmarena_prompts(path: &str, n: usize) -> Result<Vec<Prompt>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let items: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let schema_path = std::path::Path::new(path).with_file_name("schema_with_dependencies.json");
    let schema = std::fs::read_to_string(&schema_path).map_err(|e| format!("{}: {e}", schema_path.display()))?;
    let schema: serde_json::Value = serde_json::from_str(&schema).map_err(|e| format!("{}: {e}", schema_path.display()))?;
    let items = items.as_array().ok_or(format!("{path}: expected a JSON array"))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let kind = item.get("type").or_else(|| item.get("task")).and_then(|v| v.as_str()).unwrap_or("");
        if kind != "knowledge_qa" {
            continue;
        }
        let field = |k: &str| item.get(k).and_then(|v| v.as_str()).ok_or(format!("{path}: item {i}: missing `{k}`"));
        let query = field("query")?;
        let meta = item.get("metadata").ok_or(format!("{path}: item {i}: missing `metadata`"))?;
        let text_of = |k: &str| meta.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let system = format!(
            "You are a CRM support agent. The CRM schema (objects, fields, relations):\n{}\n\n{}\n\n{}",
            serde_json::to_string(&schema).unwrap_or_default(),
            text_of("required"),
            text_of("optional"),
        );
        out.push(Prompt {
            name: format!("crmarena-{}", item.get("idx").and_then(|v| v.as_u64()).unwrap_or(i as u64)),
            messages: vec![ChatMessage::new("system", system), ChatMessage::new("user", query)],
            answer: None,
        });
        if out.len() == n {
            break;
        }
    }
    Ok(out)
}

fn policies() -> Vec<(&'static str, KvShrinkParams)> {
    let p = |method: &str, ratio: f64, schedule: &str| KvShrinkParams {
        method: serde_json::from_value(serde_json::json!(method)).unwrap(),
        shrink_ratio: ratio,
        decay_schedule: serde_json::from_value(serde_json::json!(schedule)).unwrap(),
        decay_steps: 0,
        recent_window: 32,
        sink_tokens: 4,
    };
    vec![
        ("h2o 0.5 cosine", p("heavy_hitters", 0.5, "cosine")),
        ("h2o 0.7 cosine (adaptive_kv_cache)", p("heavy_hitters", 0.7, "cosine")),
        ("h2o 0.7 none", p("heavy_hitters", 0.7, "none")),
        ("sinks 0.5 linear (kv_attention_sinks)", p("sinks", 0.5, "linear")),
        ("sinks 0.7 none", p("sinks", 0.7, "none")),
    ]
}

#[derive(serde::Serialize)]
struct Row {
    prompt: String,
    prompt_tokens: usize,
    policy: String,
    tokens: usize,
    exact: bool,
    prefix: usize,
    forced_agreement: f64,
    answer_ok: Option<bool>,
    kv_final_ratio: f64,
    kv_mean_ratio: f64,
    evicted_entries: u64,
    decode_tok_s_ratio: f64,
}

/// Teacher-forced top-1 agreement with `base` and the mean resident share of the cache over the steps.
fn forced(engine: &Engine, prompt: &[u32], base: &[u32], params: &KvShrinkParams, max_tokens: usize) -> (f64, f64) {
    let plan = ShrinkPlan::new(params, max_tokens).expect("plan");
    let mut cache = engine.model.new_cache().expect("cache");
    let mut shrinker = KvShrinker::new(plan, &mut cache);
    let mut logits = engine.model.forward(prompt, &mut cache, LogitsMode::Last).expect("prefill");
    shrinker.after_forward(&mut cache, 0).expect("evict");
    let (mut agree, mut resident) = (0usize, 0f64);
    for (step, &want) in base.iter().enumerate() {
        if step > 0 {
            logits = engine.model.forward(&[base[step - 1]], &mut cache, LogitsMode::Last).expect("step");
            shrinker.after_forward(&mut cache, step).expect("evict");
        }
        resident += cache.layers[0].len() as f64 / cache.next_pos as f64;
        if argmax(&logits.to_vec2::<f32>().expect("logits")[0]) == want {
            agree += 1;
        }
    }
    let n = base.len().max(1) as f64;
    (agree as f64 / n, resident / n)
}

fn main() {
    let mut weights = WeightFormat::Auto;
    let mut max_tokens = 64;
    let mut only: Option<Vec<usize>> = None;
    let mut crm: Option<String> = None;
    let mut json: Option<String> = None;
    let mut dry = false;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--weights" => weights = v.parse().unwrap_or_else(|e: String| fail(&e)),
            "--max-tokens" => max_tokens = v.parse().unwrap_or_else(|_| fail("--max-tokens: not a number")),
            "--only" => only = Some(v.split(',').filter_map(|x| x.trim().parse().ok()).collect()),
            "--crmarena" => crm = Some(v),
            "--json" => json = Some(v),
            "--dry" => dry = v == "1" || v == "true",
            other => fail(&format!("unknown flag {other}")),
        }
    }
    let path = std::env::var("TTC_MODEL").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".cache/ttcbench/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    let engine = Engine::load(&path, weights).unwrap_or_else(|e| fail(&e.to_string()));
    let mut prompts = synthetic_prompts();
    if let Some(p) = &crm {
        prompts.extend(crmarena_prompts(p, 2).unwrap_or_else(|e| fail(&e)));
    }
    let mut rows = Vec::new();
    println!("| prompt | tokens in | policy | out | exact | prefix | forced agree | answer | KV final/base | KV mean/base | evicted | decode speed vs base |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (pi, p) in prompts.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&pi)) {
            continue;
        }
        let ids = engine.prompt_tokens(&p.messages).unwrap_or_else(|e| fail(&e.to_string()));
        if dry {
            println!("| {} | {} | (dry run) |", p.name, ids.len());
            continue;
        }
        let req = GenRequest { prompt: ids.clone(), max_tokens, stop: vec![], ..Default::default() };
        let base = engine.generate_plain(&req, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap_or_else(|e| fail(&e.to_string()));
        let base_answer = p.answer.as_ref().map(|a| base.text.contains(a.as_str()));
        println!(
            "| {} | {} | baseline | {} | - | - | - | {} | 1 | 1 | 0 | 1 |",
            p.name,
            ids.len(),
            base.token_ids.len(),
            fmt_answer(base_answer)
        );
        for (name, params) in policies() {
            let (out, stats) = generate_kv_shrink(&engine, &req, &params, &mut |l: &[f32]| argmax(l), &mut |_| true)
                .unwrap_or_else(|e| fail(&e.to_string()));
            let prefix = out.token_ids.iter().zip(&base.token_ids).take_while(|(a, b)| a == b).count();
            let (agreement, mean_ratio) = forced(&engine, &ids, &base.token_ids, &params, max_tokens);
            let row = Row {
                prompt: p.name.clone(),
                prompt_tokens: ids.len(),
                policy: name.into(),
                tokens: out.token_ids.len(),
                exact: out.token_ids == base.token_ids,
                prefix,
                forced_agreement: agreement,
                answer_ok: p.answer.as_ref().map(|a| out.text.contains(a.as_str())),
                kv_final_ratio: stats.kv_final_bytes.unwrap_or(0) as f64 / stats.kv_baseline_bytes.unwrap_or(1).max(1) as f64,
                kv_mean_ratio: mean_ratio,
                evicted_entries: stats.kv_evicted_entries.unwrap_or(0),
                decode_tok_s_ratio: out.decode_tok_s() / base.decode_tok_s().max(1e-9),
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {:.2} | {} | {:.2} |",
                row.prompt,
                row.prompt_tokens,
                row.policy,
                row.tokens,
                if row.exact { "yes" } else { "no" },
                row.prefix,
                row.forced_agreement,
                fmt_answer(row.answer_ok),
                row.kv_final_ratio,
                row.kv_mean_ratio,
                row.evicted_entries,
                row.decode_tok_s_ratio
            );
            rows.push(row);
        }
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap_or_default())
            .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    }
}

fn fmt_answer(a: Option<bool>) -> &'static str {
    match a {
        Some(true) => "right",
        Some(false) => "wrong",
        None => "-",
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("kv_shrink_bench: {msg}");
    std::process::exit(1)
}
