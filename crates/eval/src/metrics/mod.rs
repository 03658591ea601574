//! The metric registry: every quality metric declares its name (as in `ttc_types::QUALITY_METRICS`), unit,
//! direction, the suites it applies to and how it aggregates (after AIPerf's metric registry).

pub mod bleu;
pub mod coverage;
pub mod lexical;
pub mod rouge;

use serde::Serialize;
use ttc_types::Suite;

/// Which family of suites a metric applies to: the built-in suites of `ttc_types::Suite`, and generic text for
/// `jsonl` and any user-named suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuiteKind {
    /// CRMArena (original, `tasks_natural.json`).
    Crmarena,
    /// CRMArena-Pro (answers are lists).
    CrmarenaPro,
    /// WorfBench workflow generation.
    Worfbench,
    /// Any other suite with text references (JSONL).
    Generic,
}

impl SuiteKind {
    /// The scoring family of a suite name as it appears in records (a [`Suite`] name or alias; anything else is
    /// generic).
    pub fn of_suite(name: &str) -> SuiteKind {
        match Suite::of_record(name) {
            Some(Suite::Crmarena) => SuiteKind::Crmarena,
            Some(Suite::CrmarenaPro) => SuiteKind::CrmarenaPro,
            Some(Suite::Worfbench) => SuiteKind::Worfbench,
            Some(Suite::Jsonl) | None => SuiteKind::Generic,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteKind::Crmarena => Suite::Crmarena.name(),
            SuiteKind::CrmarenaPro => Suite::CrmarenaPro.name(),
            SuiteKind::Worfbench => Suite::Worfbench.name(),
            SuiteKind::Generic => "generic",
        }
    }
}

/// Directions live with the store's metric names (`ttc_types::metric`), the one table every consumer reads.
pub use ttc_types::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Mean over records, with a seeded 95% percentile-bootstrap interval.
    Mean,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub suites: &'static [SuiteKind],
    pub aggregation: Aggregation,
    pub needs_embedder: bool,
    pub description: &'static str,
}

use SuiteKind::{Crmarena as C, CrmarenaPro as P, Generic as G, Worfbench as W};

const TEXT: &[SuiteKind] = &[C, P, G];
const CRM: &[SuiteKind] = &[C, P];

macro_rules! spec {
    ($name:literal, $unit:literal, $suites:expr, $emb:literal, $desc:literal) => {
        MetricSpec {
            name: $name,
            unit: $unit,
            suites: $suites,
            aggregation: Aggregation::Mean,
            needs_embedder: $emb,
            description: $desc,
        }
    };
}

/// Every quality metric, in the order of `ttc_types::QUALITY_METRICS`.
pub static REGISTRY: &[MetricSpec] = &[
    spec!("exact_match", "fraction", TEXT, false, "stripped answer == gold, case-sensitive (CRMArena; a null gold is `None`)"),
    spec!("exact_match_normalized", "fraction", TEXT, false, "normalize_answer(answer) == normalize_answer(gold)"),
    spec!("precision", "fraction", TEXT, false, "token precision on normalised text (SQuAD-style)"),
    spec!("recall", "fraction", TEXT, false, "token recall on normalised text"),
    spec!("f1", "fraction", TEXT, false, "token F1 on normalised text (CRMArena fuzzy_match f1)"),
    spec!("rouge1", "fraction", TEXT, false, "ROUGE-1 F (rouge-score 0.1.2)"),
    spec!("rouge2", "fraction", TEXT, false, "ROUGE-2 F (rouge-score 0.1.2)"),
    spec!("rouge_l", "fraction", TEXT, false, "ROUGE-L F (rouge-score 0.1.2)"),
    spec!("rouge_lsum", "fraction", TEXT, false, "ROUGE-Lsum F, newline-split summaries (rouge-score 0.1.2)"),
    spec!("bleu", "fraction", TEXT, false, "sacrebleu sentence BLEU (13a, exp smoothing) / 100"),
    spec!("semantic_similarity", "cosine", TEXT, true, "cosine of sentence embeddings (all-MiniLM-L6-v2 by default)"),
    spec!("length_ratio", "ratio", TEXT, false, "answer whitespace tokens / reference whitespace tokens"),
    spec!("customer_service_coverage", "fraction", CRM, false, "share of the customer-service lexicon present"),
    spec!("sales_coverage", "fraction", CRM, false, "share of the sales lexicon present"),
    spec!("support_coverage", "fraction", CRM, false, "share of the support lexicon present"),
    spec!("retention_coverage", "fraction", CRM, false, "share of the retention lexicon present"),
    spec!("overall_keyword_coverage", "fraction", CRM, false, "share of the union of all lexicons present"),
    spec!("f1_chain", "fraction", &[W], true, "WorfBench node-chain F1 (official evaluator, quirks included)"),
    spec!("f1_graph", "fraction", &[W], true, "WorfBench graph F1 (official evaluator, quirks included)"),
];

impl MetricSpec {
    /// Which way the metric improves (from the store's metric table).
    pub fn direction(&self) -> Direction {
        ttc_types::quality_direction(self.name).expect("every registry name is a store column (tested)")
    }
}

/// The spec of a metric by name.
pub fn metric(name: &str) -> Option<&'static MetricSpec> {
    REGISTRY.iter().find(|m| m.name == name)
}

/// Metrics that apply to a suite family, in registry order.
pub fn metrics_for(kind: SuiteKind) -> impl Iterator<Item = &'static MetricSpec> {
    REGISTRY.iter().filter(move |m| m.suites.contains(&kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_exactly_the_store_columns() {
        let names: Vec<&str> = REGISTRY.iter().map(|m| m.name).collect();
        assert_eq!(names, ttc_types::QUALITY_METRICS);
        assert!(metric("rouge_l").is_some() && metric("rougeL").is_none());
        assert_eq!(metrics_for(SuiteKind::Worfbench).count(), 2);
        assert_eq!(SuiteKind::of_suite("my-jsonl"), SuiteKind::Generic);
    }
}
