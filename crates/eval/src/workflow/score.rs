//! f1_chain and f1_graph as `graph_evaluator.py` computes them (t_eval_nodes / t_eval_plan / t_eval_graph),
//! with a pluggable similarity function (a sentence embedder in practice).

use super::matching::match_nodes;
use super::toposort::gold_orders;
use super::Workflow;

/// Precision, recall and F1 of one item (upstream's `{"precision","recall","f1_score"}`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// `S[i][j] = max(cos(pred_i, gold_j), 0)`: the caller embeds texts (and caches them).
pub trait Similarity {
    fn matrix(&mut self, pred: &[String], gold: &[String]) -> Result<Vec<Vec<f64>>, crate::EvalError>;
}

/// `t_eval_plan` with `order=True`: match, then the longest chain of matched predictions whose gold
/// indices increase. Quirk: `dp` starts at 1 everywhere, so `correct >= 1` as soon as there is a
/// prediction, even with no match. An empty prediction (upstream crashes) scores 0.
pub fn eval_plan(pred: &[String], gold: &[String], sim: &mut dyn Similarity) -> Result<Prf, crate::EvalError> {
    if pred.is_empty() || gold.is_empty() {
        return Ok(Prf::default());
    }
    let mapping = match_nodes(&sim.matrix(pred, gold)?);
    let mut dp = vec![1.0f64; pred.len()];
    for i in 0..pred.len() {
        for j in 0..i {
            if let (Some(mi), Some(mj)) = (mapping[i], mapping[j]) {
                if mi > mj {
                    dp[i] = dp[i].max(dp[j] + 1.0);
                }
            }
        }
    }
    let correct = dp.iter().copied().fold(f64::MIN, f64::max) as i64 as f64;
    let recall = correct / gold.len() as f64;
    let precision = correct / pred.len() as f64;
    Ok(Prf { precision, recall, f1: 2.0 * recall * precision / (recall + precision) })
}

/// `t_eval_nodes` (f1_chain): the best `eval_plan` over the gold orders (strictly greater F1 replaces, from
/// all zeros), prediction START/END texts removed.
pub fn f1_chain(pred: &Workflow, gold: &Workflow, sim: &mut dyn Similarity) -> Result<Prf, crate::EvalError> {
    let orders = gold_orders(gold).map_err(crate::EvalError::GoldWorkflow)?;
    let pred_nodes: Vec<String> = pred.nodes.iter().filter(|t| *t != "START" && *t != "END").cloned().collect();
    let mut best = Prf::default();
    for order in &orders {
        let r = eval_plan(&pred_nodes, order, sim)?;
        if r.f1 > best.f1 {
            best = r;
        }
    }
    Ok(best)
}

/// Size of the largest connected component of the undirected graph (nodes, edges); 0 without nodes
/// (upstream raises on `max()` of nothing).
fn largest_component(nodes: &[usize], edges: &[(usize, usize)]) -> usize {
    let mut ids: Vec<usize> = nodes.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let pos = |v: usize| ids.binary_search(&v).ok();
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(a, b) in edges {
        if let (Some(a), Some(b)) = (pos(a), pos(b)) {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            parent[ra] = rb;
        }
    }
    let mut size = vec![0usize; ids.len()];
    for x in 0..ids.len() {
        let r = find(&mut parent, x);
        size[r] += 1;
    }
    size.into_iter().max().unwrap_or(0)
}

/// `t_eval_graph` (f1_graph): match the full node lists (START/END included), keep edges whose ends are
/// matched on each side, and count prediction edges that appear *literally* (same indices, not mapped
/// through the matching: quirk) among the gold ones. P = LCC(matched pred, common edges) / |pred nodes|,
/// R = LCC(matched gold, common edges) / |gold nodes|.
pub fn f1_graph(pred: &Workflow, gold: &Workflow, sim: &mut dyn Similarity) -> Result<Prf, crate::EvalError> {
    if pred.nodes.is_empty() || gold.nodes.is_empty() {
        return Ok(Prf::default());
    }
    let mapping = match_nodes(&sim.matrix(&pred.nodes, &gold.nodes)?);
    let matched_pred: Vec<usize> = (0..mapping.len()).filter(|&i| mapping[i].is_some()).collect();
    let matched_gold: Vec<usize> = mapping.iter().flatten().copied().collect();
    if matched_pred.is_empty() {
        return Ok(Prf::default());
    }
    let has = |set: &[usize], v: u64| usize::try_from(v).is_ok_and(|v| set.contains(&v));
    let gold_edges: Vec<(u64, u64)> =
        gold.edges.iter().copied().filter(|&(a, b)| has(&matched_gold, a) && has(&matched_gold, b)).collect();
    let public: Vec<(usize, usize)> = pred
        .edges
        .iter()
        .copied()
        .filter(|&(a, b)| has(&matched_pred, a) && has(&matched_pred, b))
        .filter(|e| gold_edges.contains(e))
        .map(|(a, b)| (a as usize, b as usize))
        .collect();
    let precision = largest_component(&matched_pred, &public) as f64 / pred.nodes.len() as f64;
    let recall = largest_component(&matched_gold, &public) as f64 / gold.nodes.len() as f64;
    let f1 = 2.0 * precision * recall / (precision + recall);
    Ok(Prf { precision, recall, f1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Similarity 1 for equal strings, 0 otherwise.
    struct Exact;
    impl Similarity for Exact {
        fn matrix(&mut self, p: &[String], g: &[String]) -> Result<Vec<Vec<f64>>, crate::EvalError> {
            Ok(p.iter().map(|a| g.iter().map(|b| (a == b) as u8 as f64).collect()).collect())
        }
    }

    fn wf(text: &str) -> Workflow {
        super::super::parse_workflow(text).unwrap()
    }

    #[test]
    fn identical_chain_scores_one_and_reversed_chain_keeps_graph_one() {
        let gold = wf("Node:\n1: a\n2: b\n3: c\nEdge: (START,1) (1,2) (2,3) (3,END)");
        assert_eq!(f1_chain(&gold, &gold, &mut Exact).unwrap().f1, 1.0);
        assert_eq!(f1_graph(&gold, &gold, &mut Exact).unwrap().f1, 1.0);
        // Reversed order with chain edges: chain LIS = 1 -> P = R = 1/3; graph compares indices literally -> 1.
        let rev = wf("Node:\n1: c\n2: b\n3: a\nEdge: (START,1) (1,2) (2,3) (3,END)");
        let c = f1_chain(&rev, &gold, &mut Exact).unwrap();
        assert!((c.f1 - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(f1_graph(&rev, &gold, &mut Exact).unwrap().f1, 1.0);
    }

    #[test]
    fn no_overlap_still_counts_one_chain_node_and_start_end() {
        let gold = wf("Node:\n1: a\n2: b\nEdge: (START,1) (1,2) (2,END)");
        let pred = wf("Node:\n1: x\n2: y\n3: z\nEdge: (START,1) (1,2) (2,3) (3,END)");
        let c = f1_chain(&pred, &gold, &mut Exact).unwrap();
        assert_eq!((c.precision, c.recall), (1.0 / 3.0, 0.5));
        // START and END match each other; the edge (0, n+1) is not in either graph: LCC = 1 on both sides.
        let g = f1_graph(&pred, &gold, &mut Exact).unwrap();
        assert_eq!((g.precision, g.recall), (1.0 / 5.0, 1.0 / 4.0));
    }

    #[test]
    fn large_golds_keep_start_and_end_in_the_chain() {
        let nodes: String = (1..=8).map(|i| format!("{i}: step {i}\n")).collect();
        let edges: String = std::iter::once("(START,1)".to_string())
            .chain((1..8).map(|i| format!("({i},{})", i + 1)))
            .chain(std::iter::once("(8,END)".to_string()))
            .collect();
        let gold = wf(&format!("Node:\n{nodes}Edge: {edges}"));
        assert_eq!(gold.nodes.len(), 10);
        let c = f1_chain(&gold, &gold, &mut Exact).unwrap();
        // 8 of 10 gold entries can match: recall 0.8, precision 1, F1 = 0.888...
        assert_eq!((c.precision, c.recall), (1.0, 0.8));
        assert!((c.f1 - 16.0 / 18.0).abs() < 1e-15);
    }
}
