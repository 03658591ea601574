//! Text helpers with Python semantics, so scores match the reference implementations character for
//! character: `str.split()`, CRMArena's `normalize_answer`, and answer extraction from model output.

use regex::Regex;
use std::sync::LazyLock;

/// Python's `str.isspace()`: Unicode White_Space plus the separators U+001C..U+001F that Python also counts.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no arguments.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(py_is_space).filter(|t| !t.is_empty()).collect()
}

/// Python's `str.strip()` with no arguments.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// A character of Python's `\w` for str patterns (letters, numbers, underscore).
fn py_word_char(c: char) -> bool {
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{N}_]$").expect("static regex"));
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let mut buf = [0u8; 4];
    WORD.is_match(c.encode_utf8(&mut buf))
}

/// CRMArena's `normalize_answer` (crm_sandbox/agents/utils.py, SQuAD-derived), step by step: `_` -> space,
/// lowercase, every `string.punctuation` char and ‘ ’ ´ ` -> space, `\b(a|an|the)\b` -> space, collapse
/// whitespace, strip.
pub fn normalize_answer(s: &str) -> String {
    const PUNCT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u{2018}\u{2019}\u{b4}`";
    let lowered = s.replace('_', " ").to_lowercase();
    let no_punct: String = lowered.chars().map(|c| if PUNCT.contains(c) { ' ' } else { c }).collect();
    // `\b(a|an|the)\b` matches exactly a maximal word run equal to an article.
    let mut out = String::with_capacity(no_punct.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if matches!(run.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in no_punct.chars() {
        if py_word_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    py_split(&out).join(" ")
}

/// How to cut the answer out of a model's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerStyle {
    /// Short answers (ids, names, months): without a tag or "Answer:" line, the last non-empty line.
    Short,
    /// Free text: without a tag or "Answer:" line, the whole reply.
    Free,
}

/// The answer in a model reply, in this order of preference (documented in docs/metrics.md):
/// 1. the content of the first `<submit>...</submit>` (CRMArena's agent protocol; an unclosed `<submit>` at
///    the end of a truncated reply counts up to the end);
/// 2. the text after the last line starting with `Final answer:` or `Answer:` (case-insensitive);
/// 3. `Short`: the last non-empty line; `Free`: the whole reply.
///
/// The result is stripped of surrounding whitespace, like the official `.strip()`.
pub fn extract_answer(reply: &str, style: AnswerStyle) -> String {
    static SUBMIT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<submit>(.*?)(?:</submit>|\z)").expect("static regex"));
    static ANSWER_LINE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?im)^[ \t*#>-]*(?:final answer|answer)\**\s*[:：]\**\s*(.*)$").expect("static regex"));
    if let Some(c) = SUBMIT.captures(reply) {
        return py_strip(&c[1]).to_string();
    }
    if let Some(c) = ANSWER_LINE.captures_iter(reply).last() {
        let rest = py_strip(&c[1]);
        if !rest.is_empty() {
            return rest.to_string();
        }
    }
    match style {
        AnswerStyle::Free => py_strip(reply).to_string(),
        AnswerStyle::Short => reply.lines().map(py_strip).rfind(|l| !l.is_empty()).unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_split_counts_the_information_separators() {
        assert_eq!(py_split(" a\u{1c}b\tc\u{a0}d \u{200b}e "), vec!["a", "b", "c", "d", "\u{200b}e"]);
        assert_eq!(py_strip("\u{1f} x \u{3000}"), "x");
    }

    #[test]
    fn normalize_answer_follows_the_crmarena_steps() {
        assert_eq!(normalize_answer("The  Quick_brown fox's a-ok!"), "quick brown fox s ok");
        assert_eq!(normalize_answer("An apple, an ant; THE end"), "apple ant end");
        // Articles only as whole words: "another", "theme" survive; the curly quote becomes a space.
        assert_eq!(normalize_answer("another theme ‘a’"), "another theme");
        assert_eq!(normalize_answer("None"), "none");
        assert_eq!(normalize_answer("  "), "");
    }

    #[test]
    fn answers_are_extracted_in_order_of_preference() {
        assert_eq!(extract_answer("Thought: x\n<submit> 005Ws0001 </submit> trailing", AnswerStyle::Short), "005Ws0001");
        assert_eq!(extract_answer("reasoning\n<submit>March", AnswerStyle::Short), "March");
        assert_eq!(extract_answer("Let me think.\nFinal Answer: OR\n", AnswerStyle::Short), "OR");
        assert_eq!(extract_answer("**Answer:** Regular updates.", AnswerStyle::Free), "Regular updates.");
        assert_eq!(extract_answer("line one\n\nMarch  \n", AnswerStyle::Short), "March");
        assert_eq!(extract_answer("line one\nline two", AnswerStyle::Free), "line one\nline two");
        assert_eq!(extract_answer("", AnswerStyle::Short), "");
    }
}
