//! `ttc calibrate`: fit calibrated exit heads for the model (tuned lens, `ttc_engine::exit_heads`) and score
//! them against the logit lens on held-out prompts (docs/policies.md "Calibrated exit heads").

use crate::cmd_generate::ModelArgs;
use crate::exit::{usage, Outcome};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ttc_engine::calibrate::{fit_heads, score_layers, CalibrateOptions, LayerScore};
use ttc_engine::exit_heads::{file_sha256, layer_list, parse_layer_list};
use ttc_engine::{ChatMessage, Engine, EngineError, ExitHeads, Policy};

/// Layers fitted by default: where the default policies exit or draft (24..=29 of SmolLM2's 30).
pub const DEFAULT_LAYERS: &str = "24-29";

#[derive(Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Layer counts to fit heads for: a list or ranges ("24-29", "20,24,28"); k is the state after k blocks.
    #[arg(long, default_value = DEFAULT_LAYERS)]
    pub layers: String,
    /// Extra calibration prompts: JSONL, one object per line with `messages` ([{role, content}]), `prompt`
    /// (a user message) or `text` (raw text, no chat template). Repeatable.
    #[arg(long)]
    pub corpus: Vec<PathBuf>,
    /// Leave out the bundled suites and built-in instructions (calibrate on --corpus only).
    #[arg(long)]
    pub no_bundled: bool,
    /// Real data root: calibrate on its CRMArena and WorfBench items instead of the bundled samples.
    #[arg(long, env = "TTC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Greedy tokens generated after each prompt; their positions are calibration data too.
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    /// Ridge strength, relative to the mean energy of an input dimension.
    #[arg(long, default_value_t = 1e-3)]
    pub ridge: f64,
    /// Share of the prompts held out of the fit (scored by --report).
    #[arg(long, default_value_t = 0.25)]
    pub heldout: f64,
    /// Score the logit lens and the fitted heads per layer on the held-out prompts.
    #[arg(long)]
    pub report: bool,
    /// With --report: print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Do nothing if a heads file for this model with these layers already exists.
    #[arg(long)]
    pub if_missing: bool,
    /// Where to write the heads (default: beside the model, `<model>.exit-heads.safetensors`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One calibration prompt: where it came from and its token ids.
pub struct CorpusItem {
    pub id: String,
    pub tokens: Vec<u32>,
}

/// Instructions of our own, beside the suites, so the heads also see open-ended answers.
const INSTRUCTIONS: &[&str] = &[
    "Explain in three sentences why the sky is blue.",
    "Write a short, polite email telling a customer their refund was approved.",
    "List five tips for writing clear documentation.",
    "What is the difference between a list and a tuple in Python?",
    "Summarize the plot of a heist movie you invent, in one paragraph.",
    "Give step-by-step instructions for making a cup of tea.",
    "A customer says their order arrived damaged. Draft a helpful reply.",
    "Describe how a hash table works to a beginner.",
    "What are three common causes of slow web pages, and how do you fix each?",
    "Write a haiku about autumn rain.",
    "Compare renting and buying a home in a short table.",
    "Explain what an API rate limit is and why services use one.",
    "Plan a one-day trip to a city by the sea, morning to evening.",
    "What should a support agent do before escalating a ticket?",
    "Translate 'Where is the train station?' into French and Spanish.",
    "Write a Rust function that returns the largest value in a slice.",
    "Why do we sleep? Answer briefly.",
    "Give a checklist for onboarding a new employee.",
    "Explain compound interest with a numeric example.",
    "What is a workflow graph? Give a small example with four steps.",
    "Suggest names for a bakery and explain each in one line.",
    "How do vaccines train the immune system?",
    "Write the opening lines of a mystery story set in a library.",
    "Outline the steps to reset a forgotten password on a website.",
];

/// The calibration prompts: the bundled (or --data-dir) CRMArena, CRMArena-Pro and WorfBench items and our
/// instructions, then every --corpus file; each rendered with the model's chat template.
pub fn corpus(engine: &Engine, data_dir: Option<&Path>, extra: &[PathBuf], bundled: bool) -> anyhow::Result<Vec<CorpusItem>> {
    let mut items = Vec::new();
    let chat = |messages: &[ChatMessage]| -> anyhow::Result<Vec<u32>> { Ok(engine.prompt_tokens(messages)?) };
    if bundled {
        let source = ttc_eval::suite::DataSource { data_dir: data_dir.map(Path::to_path_buf) };
        for suite in ttc_types::Suite::BUNDLED.map(ttc_types::Suite::name) {
            let mut spec = ttc_eval::suite::SuiteSpec::new(suite);
            if data_dir.is_some() {
                spec.limit = Some(48); // real suites are large: a seeded, task-stratified draw is plenty
            }
            let loaded = match ttc_eval::suite::load_suite(&spec, &source) {
                Ok(l) => l,
                // crmarena_pro may be absent from a data dir; the others are required.
                Err(_) if suite == ttc_types::Suite::CrmarenaPro.name() && data_dir.is_some() => continue,
                Err(e) => return Err(usage(format!("calibration corpus: {e}"))),
            };
            for item in loaded {
                let messages: Vec<ChatMessage> = item.messages.iter().map(|m| ChatMessage::new(&m.role, m.content.clone())).collect();
                items.push(CorpusItem { id: format!("{suite}:{}", item.sample_id), tokens: chat(&messages)? });
            }
        }
        for (i, text) in INSTRUCTIONS.iter().enumerate() {
            items.push(CorpusItem { id: format!("instruction:{i}"), tokens: chat(&[ChatMessage::new("user", *text)])? });
        }
    }
    for path in extra {
        items.extend(read_corpus_file(engine, path)?);
    }
    // Leave room for the continuation; a prompt longer than the context cannot be calibrated on.
    items.retain(|it| !it.tokens.is_empty() && it.tokens.len() + 1 < engine.context_length());
    Ok(items)
}

fn read_corpus_file(engine: &Engine, path: &Path) -> anyhow::Result<Vec<CorpusItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--corpus {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| usage(format!("{}: not JSON ({e})", at())))?;
        let tokens = if let Some(msgs) = v.get("messages").and_then(|m| m.as_array()) {
            let mut messages = Vec::new();
            for m in msgs {
                let (Some(role), Some(content)) = (m.get("role").and_then(|r| r.as_str()), m.get("content").and_then(|c| c.as_str())) else {
                    return Err(usage(format!("{}: each message needs string `role` and `content`", at())));
                };
                messages.push(ChatMessage::new(role, content));
            }
            engine.prompt_tokens(&messages)?
        } else if let Some(p) = v.get("prompt").and_then(|p| p.as_str()) {
            engine.prompt_tokens(&[ChatMessage::new("user", p)])?
        } else if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
            engine.tokenizer.encode(t)?
        } else {
            return Err(usage(format!("{}: expected a `messages`, `prompt` or `text` field", at())));
        };
        out.push(CorpusItem { id: at(), tokens });
    }
    Ok(out)
}

/// Splits the corpus into (fit, held-out) by a hash of each item's id: the split does not depend on the order
/// of the files, and adding prompts never moves an old one across. At least one prompt is held out.
pub fn split(items: Vec<CorpusItem>, heldout: f64) -> (Vec<CorpusItem>, Vec<CorpusItem>) {
    let bucket = |id: &str| {
        // FNV-1a: stable across Rust versions, unlike the std hasher.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in id.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        (h % 10_000) as f64 / 10_000.0
    };
    let (mut held, mut fit): (Vec<_>, Vec<_>) = items.into_iter().partition(|it| bucket(&it.id) < heldout);
    if held.is_empty() && heldout > 0.0 && fit.len() > 1 {
        held.push(fit.pop().expect("non-empty"));
    }
    (fit, held)
}

/// Fits heads with `opts` on the default corpus's fit split, printing progress to stderr.
pub fn calibrate_default(engine: &Engine, opts: &CalibrateOptions, out: &Path, data_dir: Option<&Path>, extra: &[PathBuf], bundled: bool, heldout: f64) -> anyhow::Result<(ExitHeads, Vec<CorpusItem>)> {
    let (fit, held) = split(corpus(engine, data_dir, extra, bundled)?, heldout);
    if fit.is_empty() {
        return Err(usage("calibration corpus is empty: give --corpus FILE.jsonl or drop --no-bundled"));
    }
    let sha = file_sha256(&engine.model_path)?;
    let started = Instant::now();
    let tokens: usize = fit.iter().map(|c| c.tokens.len()).sum();
    eprintln!(
        "calibrating exit heads for layers {} on {} prompts ({tokens} prompt tokens + up to {} generated each)...",
        layer_list(&opts.layers),
        fit.len(),
        opts.max_new_tokens
    );
    let prompts: Vec<Vec<u32>> = fit.iter().map(|c| c.tokens.clone()).collect();
    let heads = fit_heads(engine, &prompts, opts, &sha, out.to_path_buf(), &mut |done, total| {
        if done % 10 == 0 || done == total {
            eprintln!("  {done}/{total} prompts, {:.0} s", started.elapsed().as_secs_f64());
        }
    })
    .map_err(|e| match e {
        EngineError::InvalidRequest(m) => usage(m),
        other => other.into(),
    })?;
    let mut heads = heads;
    heads.info.insert("seconds".into(), format!("{:.1}", started.elapsed().as_secs_f64()));
    heads.save(out)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({:.1} MB, {} positions, {:.0} s)",
        out.display(),
        size as f64 / 1e6,
        heads.info.get("positions").map(String::as_str).unwrap_or("?"),
        started.elapsed().as_secs_f64()
    );
    Ok((heads, held))
}

/// Before a run: if a policy reads calibrated heads and the model has none yet, fit them once with the
/// defaults (bundled corpus, about a minute on 2 cores) and cache them beside the model. A heads file that is
/// there but foreign, stale or missing a layer stays an error (exit 2) naming the fix.
pub fn ensure_heads(engine: &mut Engine, policies: &[Policy]) -> anyhow::Result<()> {
    let n_layer = engine.model.cfg.n_layer;
    let mut needed: Vec<usize> = policies.iter().flat_map(|p| p.algorithm.calibrated_layers(n_layer)).collect();
    if needed.is_empty() || engine.exit_heads_path().exists() {
        return Ok(());
    }
    let mut layers = parse_layer_list(DEFAULT_LAYERS).expect("valid default").into_iter().filter(|&k| k < n_layer).collect::<Vec<_>>();
    layers.append(&mut needed);
    layers.sort_unstable();
    layers.dedup();
    eprintln!("a policy reads calibrated exit heads and {} has none yet: fitting them once (`ttc calibrate` to redo)", engine.model_path.display());
    let opts = CalibrateOptions { layers, max_new_tokens: 48, ridge: 1e-3 };
    let out = engine.exit_heads_path();
    let (heads, _) = calibrate_default(engine, &opts, &out, None, &[], true, 0.25)?;
    engine.install_exit_heads(heads);
    Ok(())
}

pub fn run(a: CalibrateArgs) -> anyhow::Result<Outcome> {
    let layers = parse_layer_list(&a.layers).map_err(|e| usage(format!("--layers: {e}")))?;
    if !(0.0..1.0).contains(&a.heldout) {
        return Err(usage(format!("--heldout: must be in [0, 1), got {}", a.heldout)));
    }
    if !(a.ridge >= 0.0 && a.ridge.is_finite()) {
        return Err(usage(format!("--ridge: must be a finite number >= 0, got {}", a.ridge)));
    }
    if a.report && a.heldout == 0.0 {
        return Err(usage("--report scores held-out prompts: --heldout must be > 0"));
    }
    let mut engine = a.model.load()?;
    let n_layer = engine.model.cfg.n_layer;
    if let Some(&bad) = layers.iter().find(|&&k| k == 0 || k > n_layer) {
        return Err(usage(format!("--layers: {bad} is not in 1..={n_layer} for this model")));
    }
    let out = a.out.clone().unwrap_or_else(|| engine.exit_heads_path());
    if a.if_missing && !a.report && a.out.is_none() {
        if let Ok(h) = engine.exit_heads() {
            if layers.iter().all(|&k| h.has(k)) {
                eprintln!("{} already has layers {}: nothing to do", h.path.display(), layer_list(&layers));
                return Ok(Outcome::Done);
            }
        }
    }
    let opts = CalibrateOptions { layers: layers.clone(), max_new_tokens: a.max_new_tokens, ridge: a.ridge };
    let (heads, held) = calibrate_default(&engine, &opts, &out, a.data_dir.as_deref(), &a.corpus, !a.no_bundled, a.heldout)?;
    if !a.report {
        return Ok(Outcome::Done);
    }
    engine.install_exit_heads(heads.clone());
    let started = Instant::now();
    eprintln!("scoring on {} held-out prompts...", held.len());
    let prompts: Vec<Vec<u32>> = held.iter().map(|c| c.tokens.clone()).collect();
    let scores = score_layers(&engine, Some(&heads), &prompts, &layers, a.max_new_tokens, &mut |_, _| {})?;
    let report = CalibrationReport {
        model: engine.model_path.display().to_string(),
        heads: out.display().to_string(),
        fit_prompts: heads.info.get("prompts").and_then(|p| p.parse().ok()).unwrap_or(0),
        fit_positions: heads.info.get("positions").and_then(|p| p.parse().ok()).unwrap_or(0),
        fit_seconds: heads.info.get("seconds").and_then(|p| p.parse().ok()).unwrap_or(0.0),
        heads_bytes: std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
        heldout_prompts: held.len(),
        heldout_ids: held.iter().map(|c| c.id.clone()).collect(),
        score_seconds: started.elapsed().as_secs_f64(),
        layers: scores,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(Outcome::Done)
}

/// What `ttc calibrate --report` prints.
#[derive(serde::Serialize)]
pub struct CalibrationReport {
    pub model: String,
    pub heads: String,
    pub fit_prompts: usize,
    pub fit_positions: usize,
    pub fit_seconds: f64,
    pub heads_bytes: u64,
    pub heldout_prompts: usize,
    pub heldout_ids: Vec<String>,
    pub score_seconds: f64,
    pub layers: Vec<LayerScore>,
}

impl CalibrationReport {
    pub fn table(&self) -> String {
        let mut s = format!(
            "heads: {} ({:.1} MB), fitted on {} prompts / {} positions in {:.0} s\nheld-out: {} prompts, teacher-forced along the full model's greedy continuation\n\n",
            self.heads,
            self.heads_bytes as f64 / 1e6,
            self.fit_prompts,
            self.fit_positions,
            self.fit_seconds,
            self.heldout_prompts
        );
        s.push_str("layer | positions | top-1 logit lens | top-1 calibrated | ratio | KL logit lens | KL calibrated\n");
        for l in &self.layers {
            let (ct, ck) = (l.calibrated_top1.unwrap_or(f64::NAN), l.calibrated_kl.unwrap_or(f64::NAN));
            s.push_str(&format!(
                "{} | {} | {:.3} | {:.3} | {:.2}x | {:.3} | {:.3}\n",
                l.layer,
                l.positions,
                l.logit_lens_top1,
                ct,
                ct / l.logit_lens_top1.max(1e-9),
                l.logit_lens_kl,
                ck
            ));
        }
        s
    }
}
