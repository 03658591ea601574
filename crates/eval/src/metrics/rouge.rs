//! ROUGE-1/2/L/Lsum F-measures, equal to Google's `rouge-score` 0.1.2 (`RougeScorer.score(target,
//! prediction)`), computed by the `rougers` crate, whose tokenizer and NLTK Porter stemmer port we verify
//! against rouge-score on real pairs (tests/rouge_conformance.rs).

use rougers::{RougeScorer, RougeType};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RougeScores {
    pub rouge1: f64,
    pub rouge2: f64,
    pub rouge_l: f64,
    pub rouge_lsum: f64,
}

fn scorer(use_stemmer: bool) -> &'static RougeScorer {
    static PLAIN: LazyLock<RougeScorer> =
        LazyLock::new(|| RougeScorer::new(["rouge1", "rouge2", "rougeL", "rougeLsum"], false).expect("valid rouge types"));
    static STEMMED: LazyLock<RougeScorer> =
        LazyLock::new(|| RougeScorer::new(["rouge1", "rouge2", "rougeL", "rougeLsum"], true).expect("valid rouge types"));
    if use_stemmer {
        &STEMMED
    } else {
        &PLAIN
    }
}

/// F-measures of `prediction` against `target`. rougeLsum splits both on newlines, like rouge-score.
pub fn rouge(prediction: &str, target: &str, use_stemmer: bool) -> RougeScores {
    let s = scorer(use_stemmer).score(target, prediction);
    let f = |t: RougeType| s.get(t).map(|x| x.fmeasure).unwrap_or(0.0);
    RougeScores {
        rouge1: f(RougeType::N(1)),
        rouge2: f(RougeType::N(2)),
        rouge_l: f(RougeType::L),
        rouge_lsum: f(RougeType::LSum),
    }
}

/// Only ROUGE-L (the benchmark's hot path).
pub fn rouge_l(prediction: &str, target: &str, use_stemmer: bool) -> f64 {
    static PLAIN: LazyLock<RougeScorer> = LazyLock::new(|| RougeScorer::new(["rougeL"], false).expect("valid rouge type"));
    static STEMMED: LazyLock<RougeScorer> = LazyLock::new(|| RougeScorer::new(["rougeL"], true).expect("valid rouge type"));
    let s = if use_stemmer { &STEMMED } else { &PLAIN }.score(target, prediction);
    s.get(RougeType::L).map(|x| x.fmeasure).unwrap_or(0.0)
}
