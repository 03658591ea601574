//! WorfBench workflows: parsing exactly as `node_eval.py: workflow_to_graph_list` (zjunlp/WorfBench), and the
//! official `f1_chain` / `f1_graph` with their quirks (datasets.md §2).

pub mod matching;
pub mod score;
pub mod toposort;

use regex::Regex;
use std::sync::LazyLock;

/// A parsed workflow: `nodes[0] == "START"`, `nodes[k]` is node k, the last is `"END"`. Edges keep their
/// order and duplicates; indices are not range-checked (as upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub nodes: Vec<String>,
    pub edges: Vec<(u64, u64)>,
}

/// Python's `int()` of a `\d+` match: any Unicode decimal digits; absurdly large values saturate.
fn py_int(s: &str) -> u64 {
    let mut v: u64 = 0;
    for c in s.chars() {
        let d = c.to_digit(10).or_else(|| unicode_digit(c)).unwrap_or(0) as u64;
        v = v.saturating_mul(10).saturating_add(d);
    }
    v
}

/// Value of a non-ASCII Unicode decimal digit (Nd): Unicode encodes decimal digits as contiguous runs of ten,
/// 0 to 9, and some runs are adjacent (the five styles of mathematical digits, U+1D7CE..U+1D7FF), so the
/// value is the distance to the first digit of the whole contiguous stretch, modulo 10.
fn unicode_digit(c: char) -> Option<u32> {
    static ND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("static regex"));
    let mut buf = [0u8; 4];
    if !ND.is_match(c.encode_utf8(&mut buf)) {
        return None;
    }
    // Walk back to the first digit of the stretch.
    let code = c as u32;
    let mut zero = code;
    while zero > 0 {
        let Some(prev) = char::from_u32(zero - 1) else { break };
        if !ND.is_match(prev.encode_utf8(&mut buf)) {
            break;
        }
        zero -= 1;
    }
    Some((code - zero) % 10)
}

/// `workflow_to_graph_list`: None when the text has no `Node` substring or no edge (upstream returns `[]`).
pub fn parse_workflow(text: &str) -> Option<Workflow> {
    // `.` stops at '\n' in both Python and Rust regex; `\d` is Unicode in both.
    static NODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+[:.] (.+)").expect("static regex"));
    // Python's `\s` also matches U+001C..U+001F, which Rust's does not.
    static EDGE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\([\s\x1c-\x1f]*(\d+|START)[\s\x1c-\x1f]*,[\s\x1c-\x1f]*(\d+|END)[\s\x1c-\x1f]*\)").expect("static regex")
    });
    if !text.contains("Node") {
        return None;
    }
    let mut nodes = vec!["START".to_string()];
    nodes.extend(NODE.captures_iter(text).map(|c| crate::text::py_strip(&c[1]).to_string()));
    nodes.push("END".to_string());
    let end = (nodes.len() - 1) as u64;
    let edges: Vec<(u64, u64)> = EDGE
        .captures_iter(text)
        .map(|c| {
            let a = if &c[1] == "START" { 0 } else { py_int(&c[1]) };
            let b = if &c[2] == "END" { end } else { py_int(&c[2]) };
            (a, b)
        })
        .collect();
    if edges.is_empty() {
        return None;
    }
    Some(Workflow { nodes, edges })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_official_format() {
        let w = parse_workflow("Node:\n1: find files\n2. count lines\nEdge: (START,1) (1,2) (2,END)").unwrap();
        assert_eq!(w.nodes, vec!["START", "find files", "count lines", "END"]);
        assert_eq!(w.edges, vec![(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn quirks_of_the_regexes_are_kept() {
        // No space after the dot: no nodes; edges still parse (END = index 1).
        let w = parse_workflow("Node:\n1.Do X\n2.Do Y\nEdges:\n(START,1)\n(1,2)\n(2,END)").unwrap();
        assert_eq!(w.nodes, vec!["START", "END"]);
        assert_eq!(w.edges, vec![(0, 1), (1, 2), (2, 1)]);
        // Any "k: text" line anywhere is a node, e.g. prose after the list; "Finish" is kept.
        let w = parse_workflow("Node:\n1: a\n2: Finish\nStep 3: extra\nEdge: ( START , 1 ) (1,2)(2,END)").unwrap();
        assert_eq!(w.nodes, vec!["START", "a", "Finish", "extra", "END"]);
        assert_eq!(w.edges, vec![(0, 1), (1, 2), (2, 4)]);
        // Duplicates kept, indices unchecked.
        let w = parse_workflow("Node: 1: a\n(START,1)(START,1)(7,END)").unwrap();
        assert_eq!(w.edges, vec![(0, 1), (0, 1), (7, 2)]);
        // Unparsable: no "Node", or no edges.
        assert_eq!(parse_workflow("1: a\n(START,1)"), None);
        assert_eq!(parse_workflow("Node:\n1: a\n"), None);
        // Unicode digits count as digits, as in Python.
        let w = parse_workflow("Node:\n\u{0663}: arabic three\n(START,\u{0663})").unwrap();
        assert_eq!(w.nodes[1], "arabic three");
        assert_eq!(w.edges, vec![(0, 3)]);
    }
}
