//! `graph_evaluator.py: match_node`: a port of networkx 3.6.1 `max_weight_matching` (Galil 1986 / Edmonds'
//! blossom algorithm, after van Rantwijk's mwmatching.py; networkx `algorithms/matching.py`, BSD-3) run on
//! the same graph built in the same order, so ties between equal weights break the same way upstream does.
//!
//! The graph is bipartite (prediction nodes vs gold nodes), so it has no odd cycle and the blossom steps of
//! the general algorithm never run: `scan_blossom` always reaches two different roots. We port the
//! remaining steps line by line, with the same node order (`list(G)`), adjacency order, LIFO queue and
//! float arithmetic; a blossom would be a bug and is reported as such rather than mis-handled.

use std::collections::HashSet;

/// Similarity above which two nodes may be matched (strict `>`).
pub const MATCH_THRESHOLD: f64 = 0.6;

/// A vertex of the matching graph: prediction node i (networkx int key) or gold node j (str key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Pred(usize),
    Gold(usize),
}

/// pred -> gold mapping (`None` = upstream's -1) from the similarity matrix `sim[i][j]` (already clamped
/// at 0, f32 values widened to f64 as upstream stores them).
pub fn match_nodes(sim: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n_pred = sim.len();
    // G.add_edge(i, str(j), weight) for i, then j, when sim > threshold: node and adjacency insertion order.
    let mut keys: Vec<Key> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut adj: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut node = |k: Key, keys: &mut Vec<Key>, adj: &mut Vec<Vec<(usize, f64)>>| -> usize {
        *index.entry(k).or_insert_with(|| {
            keys.push(k);
            adj.push(Vec::new());
            keys.len() - 1
        })
    };
    for (i, row) in sim.iter().enumerate() {
        for (j, &w) in row.iter().enumerate() {
            if w > MATCH_THRESHOLD {
                let a = node(Key::Pred(i), &mut keys, &mut adj);
                let b = node(Key::Gold(j), &mut keys, &mut adj);
                adj[a].push((b, w));
                adj[b].push((a, w));
            }
        }
    }
    let mate = max_weight_matching(&adj);
    let mut out = vec![None; n_pred];
    for (v, m) in mate.iter().enumerate() {
        if let (Key::Pred(i), Some(w)) = (keys[v], m) {
            if let Key::Gold(j) = keys[*w] {
                out[i] = Some(j);
            }
        }
    }
    out
}

const FREE: u8 = 0; // label None
const S: u8 = 1;
const T: u8 = 2;

struct State<'a> {
    adj: &'a [Vec<(usize, f64)>],
    mate: Vec<Option<usize>>,
    label: Vec<u8>,
    labeledge: Vec<Option<(usize, usize)>>,
    bestedge: Vec<Option<(usize, usize)>>,
    dualvar: Vec<f64>,
    allowedge: HashSet<(usize, usize)>,
    queue: Vec<usize>,
}

impl State<'_> {
    fn weight(&self, v: usize, w: usize) -> f64 {
        // G[v][w]["weight"]: the graph has no parallel edges (each (i, j) pair is added once).
        self.adj[v].iter().find(|(x, _)| *x == w).map(|(_, wt)| *wt).unwrap_or(0.0)
    }

    fn slack(&self, v: usize, w: usize) -> f64 {
        self.dualvar[v] + self.dualvar[w] - 2.0 * self.weight(v, w)
    }

    fn assign_label(&mut self, w: usize, t: u8, v: Option<usize>) {
        self.label[w] = t;
        self.labeledge[w] = v.map(|v| (v, w));
        self.bestedge[w] = None;
        if t == S {
            self.queue.push(w);
        } else if let Some(base_mate) = self.mate[w] {
            // A T vertex is always matched; its mate becomes S.
            self.assign_label(base_mate, S, Some(w));
        }
    }

    /// Trace back from v and w towards their roots; a common vertex would be a blossom base.
    fn scan_blossom(&mut self, v: usize, w: usize) -> Option<usize> {
        let mut path = Vec::new();
        let mut base = None;
        let (mut v, mut w) = (Some(v), Some(w));
        while let Some(b) = v {
            if self.label[b] & 4 != 0 {
                base = Some(b);
                break;
            }
            path.push(b);
            self.label[b] = 5;
            v = match self.labeledge[b] {
                None => None,
                Some((t, _)) => self.labeledge[t].map(|(x, _)| x),
            };
            if w.is_some() {
                std::mem::swap(&mut v, &mut w);
            }
        }
        for b in path {
            self.label[b] = S;
        }
        base
    }

    fn augment_matching(&mut self, v: usize, w: usize) {
        for (mut s, mut j) in [(v, w), (w, v)] {
            loop {
                self.mate[s] = Some(j);
                let Some((t, _)) = self.labeledge[s] else { break };
                let Some((ns, nj)) = self.labeledge[t] else { break };
                s = ns;
                j = nj;
                self.mate[j] = Some(s);
            }
        }
    }
}

/// networkx `max_weight_matching(G, maxcardinality=False)` for a bipartite graph given as adjacency lists
/// (vertex order = `list(G)`, neighbour order = insertion order). Returns `mate`.
fn max_weight_matching(adj: &[Vec<(usize, f64)>]) -> Vec<Option<usize>> {
    let n = adj.len();
    if n == 0 {
        return Vec::new();
    }
    let maxweight = adj.iter().flatten().map(|(_, w)| *w).fold(0.0f64, |m, w| if w > m { w } else { m });
    let mut st = State {
        adj,
        mate: vec![None; n],
        label: vec![FREE; n],
        labeledge: vec![None; n],
        bestedge: vec![None; n],
        dualvar: vec![maxweight; n],
        allowedge: HashSet::new(),
        queue: Vec::new(),
    };
    loop {
        st.label.iter_mut().for_each(|l| *l = FREE);
        st.labeledge.iter_mut().for_each(|l| *l = None);
        st.bestedge.iter_mut().for_each(|b| *b = None);
        st.allowedge.clear();
        st.queue.clear();
        for v in 0..n {
            if st.mate[v].is_none() && st.label[v] == FREE {
                st.assign_label(v, S, None);
            }
        }
        let mut augmented = false;
        loop {
            while !augmented {
                let Some(v) = st.queue.pop() else { break };
                for &(w, _) in &adj[v] {
                    if w == v {
                        continue;
                    }
                    let mut kslack = 0.0;
                    if !st.allowedge.contains(&(v, w)) {
                        kslack = st.slack(v, w);
                        if kslack <= 0.0 {
                            st.allowedge.insert((v, w));
                            st.allowedge.insert((w, v));
                        }
                    }
                    if st.allowedge.contains(&(v, w)) {
                        if st.label[w] == FREE {
                            st.assign_label(w, T, Some(v));
                        } else if st.label[w] == S {
                            if st.scan_blossom(v, w).is_some() {
                                // Impossible in a bipartite graph (see the module docs).
                                unreachable!("odd cycle in a bipartite matching graph");
                            }
                            st.augment_matching(v, w);
                            augmented = true;
                            break;
                        }
                    } else if st.label[w] == S {
                        if st.bestedge[v].is_none_or(|(a, b)| kslack < st.slack(a, b)) {
                            st.bestedge[v] = Some((v, w));
                        }
                    } else if st.label[w] == FREE && st.bestedge[w].is_none_or(|(a, b)| kslack < st.slack(a, b)) {
                        st.bestedge[w] = Some((v, w));
                    }
                }
            }
            if augmented {
                break;
            }
            // Dual update: delta types 1 (stop), 2 (free vertex edge) and 3 (S-S edge); 4 needs blossoms.
            let mut deltatype = 1;
            let mut delta = st.dualvar.iter().copied().fold(f64::INFINITY, f64::min);
            let mut deltaedge = None;
            for v in 0..n {
                if st.label[v] == FREE {
                    if let Some((a, b)) = st.bestedge[v] {
                        let d = st.slack(a, b);
                        if d < delta {
                            delta = d;
                            deltatype = 2;
                            deltaedge = Some((a, b));
                        }
                    }
                }
            }
            for b in 0..n {
                if st.label[b] == S {
                    if let Some((x, y)) = st.bestedge[b] {
                        let d = st.slack(x, y) / 2.0;
                        if d < delta {
                            delta = d;
                            deltatype = 3;
                            deltaedge = Some((x, y));
                        }
                    }
                }
            }
            for v in 0..n {
                if st.label[v] == S {
                    st.dualvar[v] -= delta;
                } else if st.label[v] == T {
                    st.dualvar[v] += delta;
                }
            }
            match (deltatype, deltaedge) {
                (2 | 3, Some((v, w))) => {
                    st.allowedge.insert((v, w));
                    st.allowedge.insert((w, v));
                    st.queue.push(v);
                }
                _ => break,
            }
        }
        if !augmented {
            break;
        }
    }
    st.mate
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Best total weight over all matchings (brute force), for small cases.
    fn brute(sim: &[Vec<f64>]) -> f64 {
        fn go(i: usize, used: &mut Vec<bool>, sim: &[Vec<f64>]) -> f64 {
            if i == sim.len() {
                return 0.0;
            }
            let mut best = go(i + 1, used, sim);
            for j in 0..used.len() {
                if !used[j] && sim[i][j] > MATCH_THRESHOLD {
                    used[j] = true;
                    best = best.max(sim[i][j] + go(i + 1, used, sim));
                    used[j] = false;
                }
            }
            best
        }
        let cols = sim.first().map_or(0, |r| r.len());
        go(0, &mut vec![false; cols], sim)
    }

    #[test]
    fn ties_break_like_networkx() {
        // pred = gold = [go to toilet, take cloth, go to toilet]: networkx returns {0->2, 1->1, 2->0}.
        let sim = vec![vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 1.0]];
        assert_eq!(match_nodes(&sim), vec![Some(2), Some(1), Some(0)]);
    }

    #[test]
    fn finds_a_maximum_weight_matching() {
        // A deterministic pseudo-random sweep against brute force.
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..300 {
            let (r, c) = (1 + case % 5, 1 + (case / 5) % 5);
            let sim: Vec<Vec<f64>> = (0..r).map(|_| (0..c).map(|_| (next() * 10.0).round() / 10.0).collect()).collect();
            let m = match_nodes(&sim);
            let total: f64 = m.iter().enumerate().filter_map(|(i, j)| j.map(|j| sim[i][j])).sum();
            assert!((total - brute(&sim)).abs() < 1e-9, "case {case}: {sim:?} -> {m:?}");
            let mut seen = HashSet::new();
            assert!(m.iter().flatten().all(|j| seen.insert(*j)), "gold matched twice");
            assert!(m.iter().enumerate().all(|(i, j)| j.is_none_or(|j| sim[i][j] > MATCH_THRESHOLD)));
        }
        assert_eq!(match_nodes(&[]), Vec::<Option<usize>>::new());
        assert_eq!(match_nodes(&[vec![0.6, 0.2]]), vec![None]);
    }
}
