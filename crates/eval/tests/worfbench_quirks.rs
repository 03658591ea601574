//! One test per quirk of the official WorfBench evaluator listed in datasets.md §2, on small workflows scored
//! with the `hash` embedder (identical texts: cosine 1; texts sharing no token: cosine 0). Every expected
//! value was checked against the official graph_evaluator.py run the same way (tools/worfbench_vectors.py).

use std::sync::Arc;
use ttc_eval::metrics::SuiteKind;
use ttc_eval::workflow::parse_workflow;
use ttc_eval::workflow::matching::match_nodes;
use ttc_eval::{score_reply, ScorerCtx};
use ttc_embedders::HashEmbedder;

fn score(pred: &str, gold: &str) -> std::collections::BTreeMap<String, f64> {
    let ctx = ScorerCtx::new(Some(Arc::new(HashEmbedder)));
    score_reply(SuiteKind::Worfbench, None, None, pred, &[gold.to_string()], &ctx).unwrap()
}

const GOLD3: &str = "Node:\n1: open the box\n2: take the key\n3: unlock the door\nEdge: (START,1) (1,2) (2,3) (3,END)";

#[test]
fn q01_no_space_after_the_number_gives_no_nodes() {
    // Only START/END remain; chain has no prediction (upstream crashes: 0); graph matches START and END.
    let m = score("Node:\n1.open the box\n2.take the key\nEdges:\n(START,1)\n(1,2)\n(2,END)", GOLD3);
    assert_eq!(m["f1_chain"], 0.0);
    assert_eq!((m["graph_precision"], m["graph_recall"]), (0.5, 1.0 / 5.0));
}

#[test]
fn q02_any_numbered_line_anywhere_is_a_node() {
    let w = parse_workflow("Node:\n1: a\n2: b\nSome prose.\n1. **Obtain it** - first step\nStep 9: more\nEdge: (START,1)").unwrap();
    assert_eq!(w.nodes, vec!["START", "a", "b", "**Obtain it** - first step", "more", "END"]);
}

#[test]
fn q03_finish_nodes_are_kept() {
    let w = parse_workflow("Node:\n1: do it\n2: Finish\nEdge: (START,1) (1,2) (2,END)").unwrap();
    assert_eq!(w.nodes.len(), 4);
    assert_eq!(w.edges.last(), Some(&(2, 3)));
}

#[test]
fn q04_edges_keep_duplicates_and_unchecked_indices_and_need_no_edge_keyword() {
    let w = parse_workflow("Node:\n1: a\nGraph:\n(START,1) (START,1) (1,END) (12,END)").unwrap();
    assert_eq!(w.edges, vec![(0, 1), (0, 1), (1, 2), (12, 2)]);
    assert_eq!(parse_workflow("Node:\n1: a\n"), None, "no edges: unparsable");
    assert_eq!(parse_workflow("1: a\n(START,1)"), None, "no `Node`: unparsable");
}

#[test]
fn q05_threshold_is_strict() {
    assert_eq!(match_nodes(&[vec![0.6]]), vec![None]);
    assert_eq!(match_nodes(&[vec![0.6000001]]), vec![Some(0)]);
}

#[test]
fn q06_ties_cross_like_networkx() {
    let gold = "Node:\n1: go to toilet\n2: take cloth\n3: go to toilet\nEdge: (START,1) (1,2) (2,3) (3,END)";
    // The crossing assignment {0->2, 1->1, 2->0} leaves an increasing chain of one node.
    let m = score(gold, gold);
    assert!((m["chain_precision"] - 1.0 / 3.0).abs() < 1e-15, "{m:?}");
}

#[test]
fn q07_ten_or_more_nodes_keep_start_and_end_in_the_gold_order() {
    let nodes: String = (1..=8).map(|i| format!("{i}: step number {i} alpha{i}\n")).collect();
    let edges: String = (0..=8).map(|i| format!("({},{}) ", if i == 0 { "START".into() } else { i.to_string() }, if i == 8 { "END".into() } else { (i + 1).to_string() })).collect();
    let gold = format!("Node:\n{nodes}Edge: {edges}");
    let m = score(&gold, &gold);
    assert_eq!((m["chain_precision"], m["chain_recall"]), (1.0, 0.8));
    assert_eq!(m["f1_graph"], 1.0);
}

#[test]
fn q08_only_the_first_twenty_topological_sorts_count() {
    // Five parallel steps have 120 orders; networkx lists ones ending in reversed order first, so the
    // prediction's own order (1..5) is not among the first 20.
    let nodes: String = (1..=5).map(|i| format!("{i}: task alpha{i}\n")).collect();
    let edges: String = (1..=5).map(|i| format!("(START,{i}) ({i},END) ")).collect();
    let gold = format!("Node:\n{nodes}Edge: {edges}");
    let m = score(&gold, &gold);
    // Official evaluator: chain 0.6 (best of the first 20 orders), graph 1.0.
    assert_eq!((m["f1_chain"], m["f1_graph"]), (0.6, 1.0));
}

#[test]
fn q09_lis_starts_at_one_so_one_node_always_counts() {
    let m = score("Node:\n1: zebra\n2: quartz\nEdge: (START,1) (1,2) (2,END)", GOLD3);
    assert_eq!((m["chain_precision"], m["chain_recall"]), (0.5, 1.0 / 3.0));
}

#[test]
fn q10_graph_edges_are_compared_by_index_not_through_the_matching() {
    let reversed = "Node:\n1: unlock the door\n2: take the key\n3: open the box\nEdge: (START,1) (1,2) (2,3) (3,END)";
    let m = score(reversed, GOLD3);
    assert_eq!(m["f1_graph"], 1.0);
    assert!((m["f1_chain"] - 1.0 / 3.0).abs() < 1e-15);
}

#[test]
fn q11_graph_counts_start_end_and_isolated_matched_nodes() {
    // All nodes match; the only literal common edges are (START,1) and (3,END): components {START,1},
    // {3,END}, {2}: LCC 2 of 5 on both sides. The chain ignores edges: 1.0.
    let parallel = "Node:\n1: open the box\n2: take the key\n3: unlock the door\nEdge: (START,1) (START,2) (START,3) (1,END) (2,END) (3,END)";
    let m = score(parallel, GOLD3);
    assert_eq!((m["graph_precision"], m["graph_recall"]), (0.4, 0.4));
    assert_eq!(m["f1_chain"], 1.0);
}

#[test]
fn q12_unparsable_predictions_score_zero() {
    let m = score("I would open the box, then take the key.", GOLD3);
    assert_eq!((m["f1_chain"], m["f1_graph"], m["workflow_parsed"]), (0.0, 0.0, 0.0));
}
