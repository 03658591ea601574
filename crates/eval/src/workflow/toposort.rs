//! The gold orders of f1_chain: `graph_evaluator.py: all_topological_sorts`, with networkx's
//! `all_topological_sorts` (Knuth & Szwarcfiter 1974, networkx 3.6.1 `dag.py`) ported verbatim so the
//! enumeration order, and hence which 20 sorts are kept, is the same.

use super::Workflow;
use std::collections::VecDeque;

/// At most this many gold orders are kept (`filtered_sorts[:20]`).
pub const MAX_SORTS: usize = 20;

/// Gold node orders for f1_chain. Quirk: with 10 or more nodes (START and END included) the node list is
/// returned as is, START and END still inside. Otherwise the first 20 topological sorts of the DiGraph
/// (nodes 0..n, duplicate edges collapsed), START/END dropped from each.
pub fn gold_orders(gold: &Workflow) -> Result<Vec<Vec<String>>, String> {
    let n = gold.nodes.len();
    if n >= 10 {
        return Ok(vec![gold.nodes.clone()]);
    }
    // networkx DiGraph: nodes 0..n, then any node an edge introduces (upstream then fails on it).
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &gold.edges {
        let (a, b) = (a as usize, b as usize);
        if a >= n || b >= n {
            return Err(format!("edge ({a},{b}) refers to a node beyond the {n} nodes (upstream raises IndexError)"));
        }
        if !succ[a].contains(&b) {
            succ[a].push(b);
        }
    }
    let sorts = all_topological_sorts(&succ, MAX_SORTS).ok_or_else(|| "the gold graph has a cycle".to_string())?;
    Ok(sorts
        .into_iter()
        .map(|s| {
            s.into_iter().map(|i| gold.nodes[i].clone()).filter(|t| t != "START" && t != "END").collect()
        })
        .collect())
}

/// networkx `all_topological_sorts` over nodes `0..succ.len()` with successor lists in insertion order;
/// stops after `limit` sorts. None if the graph has a cycle.
pub fn all_topological_sorts(succ: &[Vec<usize>], limit: usize) -> Option<Vec<Vec<usize>>> {
    let n = succ.len();
    let mut count = vec![0usize; n];
    for s in succ {
        for &j in s {
            count[j] += 1;
        }
    }
    let mut d: VecDeque<usize> = (0..n).filter(|&v| count[v] == 0).collect();
    let mut bases: Vec<usize> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    loop {
        if current.len() == n {
            out.push(current.clone());
            if out.len() >= limit {
                return Some(out);
            }
            while let Some(q) = current.pop() {
                for &j in &succ[q] {
                    count[j] += 1;
                }
                while d.back().is_some_and(|&v| count[v] > 0) {
                    d.pop_back();
                }
                d.push_front(q);
                if d.back() == bases.last() {
                    bases.pop();
                } else {
                    break;
                }
            }
        } else {
            let q = d.pop_back()?;
            for &j in &succ[q] {
                count[j] -= 1;
                if count[j] == 0 {
                    d.push_back(j);
                }
            }
            current.push(q);
            if bases.len() < current.len() {
                bases.push(q);
            }
        }
        if bases.is_empty() {
            return Some(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumeration_order_matches_networkx() {
        // list(nx.all_topological_sorts(nx.DiGraph([(0,1),(0,2),(1,3),(2,3)]))) == [[0, 2, 1, 3], [0, 1, 2, 3]]
        let succ = vec![vec![1, 2], vec![3], vec![3], vec![]];
        assert_eq!(all_topological_sorts(&succ, 20).unwrap(), vec![vec![0, 2, 1, 3], vec![0, 1, 2, 3]]);
        // Four free nodes: networkx yields 24 orders starting [3,2,1,0], [3,2,0,1], [3,1,0,2]; we stop at the limit.
        let free = vec![vec![]; 4];
        let s = all_topological_sorts(&free, 20).unwrap();
        assert_eq!(s.len(), 20);
        assert_eq!(&s[..3], &[vec![3, 2, 1, 0], vec![3, 2, 0, 1], vec![3, 1, 0, 2]]);
        assert_eq!(all_topological_sorts(&[vec![1], vec![0]], 20), None);
        assert_eq!(all_topological_sorts(&[], 20).unwrap(), vec![Vec::<usize>::new()]);
    }
}
