//! Exact match and SQuAD-style token overlap, as CRMArena scores them (crm_sandbox/env/env.py and
//! crm_sandbox/agents/utils.py).

use crate::text::{normalize_answer, py_split, py_strip};
use std::collections::HashMap;

/// CRMArena's `exact_match`: raw, case-sensitive equality of the stripped answer and the gold
/// (a null gold is the literal `None`).
pub fn exact_match(answer: &str, gold: &str) -> f64 {
    (py_strip(answer) == gold) as u8 as f64
}

/// CRMArena-Pro's single-answer rule: the answer stripped of whitespace, then of `"`, then of `'`, equals the
/// only gold item. Multi-item golds compare the multiset of extracted items ([`answer_items`]) with the gold
/// items: the official code asks an LLM to extract them; we use the deterministic fallback it applies when
/// the LLM's JSON fails to parse (documented deviation).
pub fn exact_match_pro(answer: &str, gold: &[String]) -> f64 {
    let stripped = py_strip(answer).trim_matches('"').trim_matches('\'');
    if gold.len() == 1 && stripped == gold[0] {
        return 1.0;
    }
    let mut got = answer_items(answer);
    let mut want: Vec<String> = gold.to_vec();
    got.sort();
    want.sort();
    (got == want) as u8 as f64
}

/// Items of a list answer: the first `[...]` split on commas with quotes stripped; else the whole answer split
/// on commas and newlines; `None` alone (or nothing) is `["None"]`.
pub fn answer_items(answer: &str) -> Vec<String> {
    let body = match (answer.find('['), answer.find(']')) {
        (Some(a), Some(b)) if a < b => &answer[a + 1..b],
        _ => answer,
    };
    let items: Vec<String> = body
        .split([',', '\n'])
        .map(|s| py_strip(s).trim_matches(['"', '\'', '`']).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        vec!["None".to_string()]
    } else {
        items
    }
}

/// `normalize_answer(pred) == normalize_answer(gold)`.
pub fn exact_match_normalized(answer: &str, gold: &str) -> f64 {
    (normalize_answer(answer) == normalize_answer(gold)) as u8 as f64
}

/// Token precision, recall and F1 over whitespace tokens of the normalised strings with multiset overlap;
/// all three are 0 when nothing overlaps (CRMArena `f1_score`, SQuAD v1.1 evaluate script).
pub fn token_prf(answer: &str, gold: &str) -> (f64, f64, f64) {
    let pred_norm = normalize_answer(answer);
    let gold_norm = normalize_answer(gold);
    let pred = py_split(&pred_norm);
    let gold = py_split(&gold_norm);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pred {
        if let Some(c) = counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return (0.0, 0.0, 0.0);
    }
    let precision = 1.0 * same as f64 / pred.len() as f64;
    let recall = 1.0 * same as f64 / gold.len() as f64;
    (precision, recall, (2.0 * precision * recall) / (precision + recall))
}

/// Whitespace tokens of the prediction over those of the reference; None for an empty reference.
pub fn length_ratio(answer: &str, reference: &str) -> Option<f64> {
    let r = py_split(reference).len();
    (r > 0).then(|| py_split(answer).len() as f64 / r as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_is_raw_and_case_sensitive() {
        assert_eq!(exact_match("  March\n", "March"), 1.0);
        assert_eq!(exact_match("march", "March"), 0.0);
        assert_eq!(exact_match("None", "None"), 1.0);
        assert_eq!(exact_match_normalized("the March!", "march"), 1.0);
    }

    #[test]
    fn pro_exact_match_strips_quotes_and_compares_multisets() {
        assert_eq!(exact_match_pro(" \"Authority\" ", &["Authority".into()]), 1.0);
        let gold: Vec<String> = vec!["00TWt1".into(), "00TWt2".into()];
        assert_eq!(exact_match_pro("The ids are ['00TWt2', '00TWt1']", &gold), 1.0);
        assert_eq!(exact_match_pro("00TWt2, 00TWt1, 00TWt3", &gold), 0.0);
        assert_eq!(exact_match_pro("", &["None".into()]), 1.0);
    }

    #[test]
    fn token_f1_uses_multiset_overlap() {
        // pred tokens [a? no: "cat cat dog"] vs gold "cat dog dog": overlap = 1 cat + 1 dog = 2.
        let (p, r, f) = token_prf("cat cat dog", "cat dog dog");
        assert!((p - 2.0 / 3.0).abs() < 1e-15 && (r - 2.0 / 3.0).abs() < 1e-15 && (f - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(token_prf("nothing", "else"), (0.0, 0.0, 0.0));
        assert_eq!(token_prf("", "x"), (0.0, 0.0, 0.0));
        assert_eq!(length_ratio("a b c", "a b"), Some(1.5));
        assert_eq!(length_ratio("a", " "), None);
    }
}
