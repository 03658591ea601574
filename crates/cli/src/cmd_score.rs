//! `ttc score`: score predictions made elsewhere (`ttc_eval::cmd::score`).

use crate::exit::Outcome;
use clap::Args;
use std::path::PathBuf;
use ttc_eval::cmd::ScoreOptions;
use ttc_eval::EmbedderKind;

#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// JSONL file: one {"prediction", "reference", "id"?, "task"?, "reward_metric"?} object per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Scoring rules: crmarena, crmarena_pro, worfbench or generic.
    #[arg(long, default_value = "generic")]
    pub suite: String,
    /// Comma-separated metrics to compute (default: every metric that applies to the suite).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Sentence embedder for semantic_similarity and WorfBench node matching: minilm, mpnet (WorfBench's
    /// official one) or hash (deterministic, no model).
    #[arg(long, default_value = "minilm")]
    pub embedder: EmbedderKind,
    /// Never download model files; fail if the embedder is not cached.
    #[arg(long)]
    pub offline: bool,
    /// Porter stemming in ROUGE (rouge-score's use_stemmer).
    #[arg(long)]
    pub rouge_stemmer: bool,
    /// Seed of the bootstrap confidence intervals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the summary as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl From<ScoreArgs> for ScoreOptions {
    fn from(a: ScoreArgs) -> Self {
        ScoreOptions {
            input: a.input,
            suite: a.suite,
            metrics: a.metrics,
            embedder: a.embedder,
            offline: a.offline,
            rouge_stemmer: a.rouge_stemmer,
            seed: a.seed,
            json: a.json,
        }
    }
}

pub fn run(a: ScoreArgs) -> anyhow::Result<Outcome> {
    ttc_eval::cmd::run_score(a.into())?;
    Ok(Outcome::Done)
}
