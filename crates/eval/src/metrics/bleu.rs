//! Sentence BLEU exactly as sacrebleu 2.x computes `BLEU().sentence_score(hyp, [ref])` with its defaults:
//! tokenizer `13a`, smoothing `exp` (Chen & Cherry 2014 method 3, as mteval-v13a), `effective_order=False`,
//! max order 4, case-sensitive. Ported from sacrebleu/metrics/bleu.py and tokenizers/tokenizer_13a.py.
//! Returns the score divided by 100 (CRMArena's `bleu_score` does the same).

use crate::text::{py_split, py_is_space};
use regex::Regex;
use std::collections::HashMap;
use std::sync::LazyLock;

const MAX_ORDER: usize = 4;

/// sacrebleu's `Tokenizer13a` (mteval-v13a).
pub fn tokenize_13a(line: &str) -> String {
    static RULES: LazyLock<[(Regex, &'static str); 4]> = LazyLock::new(|| {
        [
            (Regex::new(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])").expect("static regex"), " ${1} "),
            (Regex::new(r"([^0-9])([\.,])").expect("static regex"), "${1} ${2} "),
            (Regex::new(r"([\.,])([^0-9])").expect("static regex"), " ${1} ${2}"),
            (Regex::new(r"([0-9])(-)").expect("static regex"), "${1} ${2} "),
        ]
    });
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, rep) in RULES.iter() {
        line = re.replace_all(&line, *rep).into_owned();
    }
    py_split(&line).join(" ")
}

fn ngrams(tokens: &[&str]) -> HashMap<Vec<String>, usize> {
    let mut out = HashMap::new();
    for n in 1..=MAX_ORDER {
        for w in tokens.windows(n) {
            *out.entry(w.iter().map(|s| s.to_string()).collect()).or_insert(0) += 1;
        }
    }
    out
}

/// sacrebleu `my_log`: log with log(0) floored to -9999999999.
fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9999999999.0
    } else {
        x.ln()
    }
}

/// `BLEU().sentence_score(hypothesis, [reference]).score / 100`.
pub fn sentence_bleu(hypothesis: &str, reference: &str) -> f64 {
    // `_preprocess_segment`: rstrip, then tokenize.
    let hyp = tokenize_13a(hypothesis.trim_end_matches(py_is_space));
    let refs = tokenize_13a(reference.trim_end_matches(py_is_space));
    let hyp_tokens = py_split(&hyp);
    let ref_tokens = py_split(&refs);
    let ref_ngrams = ngrams(&ref_tokens);
    let hyp_ngrams = ngrams(&hyp_tokens);
    let (sys_len, ref_len) = (hyp_tokens.len(), ref_tokens.len());
    let mut correct = [0usize; MAX_ORDER];
    let mut total = [0usize; MAX_ORDER];
    for (g, count) in &hyp_ngrams {
        let n = g.len() - 1;
        total[n] += count;
        if let Some(r) = ref_ngrams.get(g) {
            correct[n] += (*count).min(*r);
        }
    }
    compute_bleu(&correct, &total, sys_len, ref_len) / 100.0
}

/// `BLEU.compute_bleu` with smooth_method='exp', effective_order=False.
fn compute_bleu(correct: &[usize; MAX_ORDER], total: &[usize; MAX_ORDER], sys_len: usize, ref_len: usize) -> f64 {
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 };
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    if correct.iter().all(|c| *c == 0) {
        return 0.0;
    }
    let mut smooth_mteval = 1.0;
    for n in 1..=MAX_ORDER {
        if total[n - 1] == 0 {
            break;
        }
        if correct[n - 1] == 0 {
            smooth_mteval *= 2.0;
            precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1] as f64);
        } else {
            precisions[n - 1] = 100.0 * correct[n - 1] as f64 / total[n - 1] as f64;
        }
    }
    // Python's sum() adds left to right starting from integer 0.
    let sum: f64 = precisions.iter().fold(0.0, |acc, p| acc + my_log(*p));
    bp * (sum / MAX_ORDER as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a_splits_punctuation_but_not_numbers() {
        assert_eq!(tokenize_13a("Hello, world! It costs $3.50-4.00."), "Hello , world ! It costs $ 3.50 - 4.00 .");
        assert_eq!(tokenize_13a("a&amp;b &lt;x&gt;"), "a & b < x >");
    }

    #[test]
    fn identical_sentences_score_one_and_disjoint_zero() {
        assert!((sentence_bleu("the cat sat on the mat", "the cat sat on the mat") - 1.0).abs() < 1e-12);
        assert_eq!(sentence_bleu("xyz", "the cat"), 0.0);
        assert_eq!(sentence_bleu("", "the cat"), 0.0);
    }
}
