//! Property-based fuzzing of the WorfBench workflow parser and matcher, which read model predictions.
//!
//! - Generated workflows (nodes `k: text` / `k. text`, edges with any whitespace the official regex accepts,
//!   START/END, indices written in ASCII or other Unicode decimal digits, past u64) parse to what was written.
//! - Any text (random, or a valid workflow with mutations) never panics `parse_workflow`.
//! - `match_nodes` on any similarity matrix (ragged, NaN, infinite, huge, ties at and around the 0.6
//!   threshold) never panics and returns a matching above the threshold; on matrices of real similarities
//!   ([0, 2]) its weight is the brute-force maximum.
//! - f1_chain / f1_graph of generated predictions against generated golds (bad indices, cycles, self-loops,
//!   duplicates) never panic and stay within [0, 1]; so does `score_reply` end to end with the hash embedder.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, mutate_text};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use ttc_eval::metrics::SuiteKind;
use ttc_eval::workflow::matching::{match_nodes, MATCH_THRESHOLD};
use ttc_eval::workflow::score::{f1_chain, f1_graph, Prf, Similarity};
use ttc_eval::workflow::{parse_workflow, Workflow};
use ttc_eval::{score_reply, EvalError, ScorerCtx};

/// The zero of some runs of Unicode decimal digits (Nd), including the five adjacent runs of mathematical digits.
const DIGIT_ZEROS: &[u32] = &[0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6];

/// A node or edge index as written: digits 0..=9, each in some script.
#[derive(Debug, Clone)]
struct Num(Vec<(u32, u32)>);

impl Num {
    fn text(&self) -> String {
        self.0.iter().map(|&(zero, d)| char::from_u32(zero + d).unwrap()).collect()
    }
    /// Python's `int()` of the digits, saturating like the parser.
    fn value(&self) -> u64 {
        self.0.iter().fold(0u64, |v, &(_, d)| v.saturating_mul(10).saturating_add(d as u64))
    }
}

fn num(max_len: usize) -> impl Strategy<Value = Num> {
    let digit = (prop_oneof![4 => Just(0x30), 1 => prop::sample::select(DIGIT_ZEROS)], 0u32..10);
    prop::collection::vec(digit, 1..max_len).prop_map(Num)
}

/// Whitespace the official edge regex allows around indices: Python's `\s`, which has U+001C..U+001F too.
fn ws() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![" ", "\t", "\n", "\r", "\x0b", "\x1c", "\x1f", "\u{a0}", "\u{3000}", "\u{2028}"]), 0..3)
        .prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum End {
    Terminal,
    Index(Num),
}

#[derive(Debug, Clone)]
struct Written {
    nodes: Vec<(Num, char, String)>,
    edges: Vec<(End, End, [String; 4])>,
    separators: Vec<&'static str>,
}

impl Written {
    fn text(&self) -> String {
        let mut s = String::from("Node:\n");
        for (n, sep, t) in &self.nodes {
            s.push_str(&format!("{}{sep} {t}\n", n.text()));
        }
        s.push_str("Edge:");
        for (k, (a, b, w)) in self.edges.iter().enumerate() {
            let a = match a {
                End::Terminal => "START".to_string(),
                End::Index(n) => n.text(),
            };
            let b = match b {
                End::Terminal => "END".to_string(),
                End::Index(n) => n.text(),
            };
            s.push_str(self.separators[k % self.separators.len()]);
            s.push_str(&format!("({}{a}{},{}{b}{})", w[0], w[1], w[2], w[3]));
        }
        s
    }

    fn expected(&self) -> Option<Workflow> {
        if self.edges.is_empty() {
            return None;
        }
        let mut nodes = vec!["START".to_string()];
        nodes.extend(self.nodes.iter().map(|(_, _, t)| t.clone()));
        nodes.push("END".to_string());
        let end = nodes.len() as u64 - 1;
        let edges = self
            .edges
            .iter()
            .map(|(a, b, _)| {
                let a = match a {
                    End::Terminal => 0,
                    End::Index(n) => n.value(),
                };
                let b = match b {
                    End::Terminal => end,
                    End::Index(n) => n.value(),
                };
                (a, b)
            })
            .collect();
        Some(Workflow { nodes, edges })
    }
}

/// Node texts from a small vocabulary, so that predictions and golds share and repeat nodes.
fn node_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["open", "the", "file", "count", "lines", "search", "web", "Finish"]), 1..4)
        .prop_map(|w| w.join(" "))
}

fn written(max_nodes: usize, max_index_digits: usize) -> impl Strategy<Value = Written> {
    let end = move || prop_oneof![1 => Just(End::Terminal), 3 => num(max_index_digits).prop_map(End::Index)];
    (
        prop::collection::vec((num(4), prop::sample::select(vec![':', '.']), node_text()), 0..max_nodes),
        prop::collection::vec((end(), end(), [ws(), ws(), ws(), ws()]), 0..max_nodes + 3),
        prop::collection::vec(prop::sample::select(vec![" ", "", "\n", ", ", " -> "]), 1..3),
    )
        .prop_map(|(nodes, edges, separators)| Written { nodes, edges, separators })
}

/// A small workflow whose indices are mostly in range: ASCII digits, at most 2.
fn small_workflow() -> impl Strategy<Value = Written> {
    written(6, 2)
}

/// Word-overlap (Jaccard) similarity: cheap, in [0, 1], and full of ties.
struct Overlap;

impl Similarity for Overlap {
    fn matrix(&mut self, pred: &[String], gold: &[String]) -> Result<Vec<Vec<f64>>, EvalError> {
        let words = |s: &str| s.split(' ').map(str::to_string).collect::<HashSet<String>>();
        Ok(pred
            .iter()
            .map(|p| {
                let a = words(p);
                gold.iter()
                    .map(|g| {
                        let b = words(g);
                        a.intersection(&b).count() as f64 / a.union(&b).count().max(1) as f64
                    })
                    .collect()
            })
            .collect())
    }
}

fn assert_unit(prf: &Prf, what: &str) -> Result<(), TestCaseError> {
    for (name, v) in [("precision", prf.precision), ("recall", prf.recall), ("f1", prf.f1)] {
        prop_assert!((0.0..=1.0).contains(&v), "{what} {name} = {v}");
    }
    Ok(())
}

/// A matching: each gold node at most once, only above the threshold.
fn assert_matching(sim: &[Vec<f64>], m: &[Option<usize>]) -> Result<(), TestCaseError> {
    prop_assert_eq!(m.len(), sim.len());
    let mut seen = HashSet::new();
    for (i, j) in m.iter().enumerate() {
        if let Some(j) = *j {
            prop_assert!(seen.insert(j), "gold {j} matched twice: {m:?}");
            prop_assert!(sim[i].get(j).is_some_and(|&w| w > MATCH_THRESHOLD), "pred {i} -> gold {j} not above the threshold");
        }
    }
    Ok(())
}

/// The best total weight over all matchings (rows are small).
fn brute(sim: &[Vec<f64>], i: usize, used: &mut Vec<bool>) -> f64 {
    if i == sim.len() {
        return 0.0;
    }
    let mut best = brute(sim, i + 1, used);
    for j in 0..sim[i].len() {
        if !used[j] && sim[i][j] > MATCH_THRESHOLD {
            used[j] = true;
            best = best.max(sim[i][j] + brute(sim, i + 1, used));
            used[j] = false;
        }
    }
    best
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => prop::sample::select(vec![0.0, 0.3, 0.6, 0.6000000000000001, 0.61, 0.7, 0.75, 0.8, 0.9, 1.0, 1.0000001]),
        1 => 0.0f64..=2.0,
    ]
}

fn extreme_weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        weight(),
        prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, 1e300, 5e-324, -0.7]),
        prop::num::f64::ANY,
    ]
}

fn ctx() -> &'static ScorerCtx {
    static CTX: OnceLock<ScorerCtx> = OnceLock::new();
    CTX.get_or_init(|| ScorerCtx::new(Some(Arc::new(ttc_embedders::HashEmbedder))))
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn written_workflows_parse_to_what_was_written(w in written(8, 25)) {
        let text = w.text();
        prop_assert_eq!(parse_workflow(&text), w.expected(), "text: {:?}", text);
    }

    #[test]
    fn any_text_never_panics_the_parser(
        text in prop_oneof![
            "\\PC{0,80}",
            "[Node:.()0-9 ,\n\u{663}\u{1D7D9}STARTEND-]{0,80}",
            (written(6, 25), edits(&["Node", "(", ")", ",", ": ", ". ", "START", "END", "\n", "\u{663}", "99999999999999999999999"]))
                .prop_map(|(w, e)| mutate_text(&w.text(), &e)),
        ],
    ) {
        if let Some(w) = parse_workflow(&text) {
            prop_assert!(w.nodes.len() >= 2 && w.nodes[0] == "START" && w.nodes[w.nodes.len() - 1] == "END");
            prop_assert!(!w.edges.is_empty());
        }
    }

    #[test]
    fn matching_of_any_matrix_is_a_matching(sim in prop::collection::vec(prop::collection::vec(extreme_weight(), 0..6), 0..6)) {
        assert_matching(&sim, &match_nodes(&sim))?;
    }

    #[test]
    fn matching_of_similarities_has_maximum_weight(
        sim in (1usize..6, 1usize..6).prop_flat_map(|(r, c)| prop::collection::vec(prop::collection::vec(weight(), c), r)),
    ) {
        let m = match_nodes(&sim);
        assert_matching(&sim, &m)?;
        let total: f64 = m.iter().enumerate().filter_map(|(i, j)| j.map(|j| sim[i][j])).sum();
        let best = brute(&sim, 0, &mut vec![false; sim[0].len()]);
        prop_assert!((total - best).abs() < 1e-9, "weight {total}, best {best}: {m:?}");
    }

    #[test]
    fn chain_and_graph_scores_stay_in_unit_range(pred in small_workflow(), gold in small_workflow()) {
        let (Some(pred), Some(gold)) = (pred.expected(), gold.expected()) else { return Ok(()) };
        // A gold with an index past its nodes or a cycle is an error (upstream raises); never a panic.
        if let Ok(c) = f1_chain(&pred, &gold, &mut Overlap) {
            assert_unit(&c, "f1_chain")?;
        }
        assert_unit(&f1_graph(&pred, &gold, &mut Overlap).unwrap(), "f1_graph")?;
    }

    #[test]
    fn score_reply_on_worfbench_never_panics(pred in prop_oneof![small_workflow().prop_map(|w| w.text()), "\\PC{0,40}"], gold in small_workflow()) {
        let gold = gold.text();
        if let Ok(m) = score_reply(SuiteKind::Worfbench, None, None, &pred, &[gold], ctx()) {
            for (k, v) in m {
                prop_assert!((0.0..=1.0).contains(&v), "{k} = {v}");
            }
        }
    }
}

/// Found by the fuzzer: a digit of the mathematical alphanumerics (five adjacent runs of ten, U+1D7CE..U+1D7FF)
/// read as the digit of the wrong run: `𝟘` (U+1D7D8, double-struck zero) was 9. Python's `int()` gives 0.
#[test]
fn regression_mathematical_digits_have_their_own_value() {
    let w = parse_workflow("Node:\nEdge: (START,\u{1D7D8})").unwrap();
    assert_eq!(w.edges, vec![(0, 0)]);
    // 𝟏𝟤 (bold 1, sans-serif 2) and 𝟿 (monospace 9).
    let w = parse_workflow("Node:\n1: a\n(\u{1D7CF}\u{1D7E4},\u{1D7FF})").unwrap();
    assert_eq!(w.edges, vec![(12, 9)]);
}
