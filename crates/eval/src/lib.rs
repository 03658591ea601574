//! Evaluation suites and quality metrics for ttcbench.
//!
//! * [`suite`]: CRMArena(-Pro), WorfBench and JSONL loaders producing [`SuiteItem`]s, with task filters and
//!   seeded stratified sampling; bundled samples when no data directory is given.
//! * [`metrics`]: the metric registry (names = `ttc_types::QUALITY_METRICS`) and the scorers: exact match,
//!   token P/R/F1, ROUGE (= rouge-score 0.1.2), sentence BLEU (= sacrebleu), CRM keyword coverage.
//! * [`workflow`]: WorfBench parsing and f1_chain / f1_graph faithful to the official evaluator.
//! * [`score_record`] (one record) and `cmd::score::aggregate` (means with the bootstrap CIs of `ttc_stats::metric_mean_ci`).
//! * [`cmd`]: the `ttc score` and `ttc suites` commands (options + `run`; the flags live in `ttc-cli`).

pub mod cmd;
mod error;
pub mod metrics;
mod score;
pub mod suite;
pub mod text;
pub mod workflow;

pub use error::EvalError;
pub use score::{score_record, score_reply, split_metrics, ScorerCtx, WORFBENCH_EXTRAS};
pub use suite::{load_suite, list_suites, ChatMessage, DataSource, SuiteItem, SuiteSpec};
pub use ttc_embedders::{EmbedderKind, SentenceEmbedder};

use std::sync::Arc;

/// Does scoring `suite` with `metrics` (empty = all) need a sentence embedder?
pub fn needs_embedder(suite: &str, metrics: &[String]) -> bool {
    let kind = metrics::SuiteKind::of_suite(suite);
    metrics::metrics_for(kind).any(|m| m.needs_embedder && (metrics.is_empty() || metrics.iter().any(|n| n == m.name)))
}

/// A scorer context with the chosen embedder loaded only when `suite`/`metrics` need one. With `download`,
/// missing model files are fetched with pip (ttc-assets); otherwise their absence is an error.
pub fn scorer_for(suite: &str, metrics: &[String], embedder: EmbedderKind, download: bool) -> Result<ScorerCtx, EvalError> {
    let emb: Option<Arc<dyn SentenceEmbedder>> =
        if needs_embedder(suite, metrics) { Some(Arc::from(embedder.load(download)?)) } else { None };
    ScorerCtx::new(emb).with_metrics(metrics)
}
