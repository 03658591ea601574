//! Ranking of tokens by probability without sorting the vocabulary.
//!
//! Every filter keeps a *prefix* of the vocabulary in rank order: probability descending, then id
//! ascending (the order of a stable descending argsort, which HF's min-p and top-k use). So a kept set
//! is described by its last member, the boundary, and found with `select_nth_unstable` (O(n)) instead
//! of a full sort (O(V log V)).

use std::cmp::Ordering;

/// A token and its unnormalised weight (exp of the scaled logit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    pub w: f32,
    pub id: u32,
}

/// `Less` when `a` ranks before `b` (more probable, or equally probable with a lower id).
#[inline]
pub fn rank_cmp(a: &Item, b: &Item) -> Ordering {
    b.w.total_cmp(&a.w).then(a.id.cmp(&b.id))
}

/// Whether token (`w`, `id`) ranks at or before the boundary item.
#[inline]
pub fn at_or_before(w: f32, id: u32, boundary: &Item) -> bool {
    w > boundary.w || (w == boundary.w && id <= boundary.id)
}

/// The last item of the top `n` (1 <= n <= len). Reorders `items`.
pub fn nth_boundary(items: &mut [Item], n: usize) -> Item {
    debug_assert!(n >= 1 && n <= items.len());
    let (_, nth, _) = items.select_nth_unstable_by(n - 1, rank_cmp);
    *nth
}

/// The smallest top set whose weight reaches `target` (the nucleus of Holtzman et al. 2020, defined on
/// the sorted order), returned as (size, boundary). Size 0 when `target <= 0`; all items when their
/// total falls short of `target` by rounding. Reorders `items`.
///
/// Bisection on the rank with `select_nth_unstable`: each round partitions the open segment around its
/// middle rank and keeps the half that holds the boundary, so the total work is O(n) expected, and only
/// the final small segment is sorted.
pub fn nucleus_boundary(items: &mut [Item], target: f64) -> (usize, Option<Item>) {
    const SORT_BELOW: usize = 64;
    if target <= 0.0 || items.is_empty() {
        return (0, None);
    }
    // Invariant: items[..lo] are the top `lo` items and their mass is `target - need`, with need > 0;
    // the boundary rank is in (lo, hi].
    let (mut lo, mut hi) = (0usize, items.len());
    let mut need = target;
    while hi - lo > SORT_BELOW {
        let mid = lo + (hi - lo) / 2;
        items[lo..hi].select_nth_unstable_by(mid - lo, rank_cmp);
        let mass: f64 = items[lo..mid].iter().map(|it| it.w as f64).sum();
        if mass >= need {
            hi = mid;
        } else {
            need -= mass;
            lo = mid;
        }
    }
    items[lo..hi].sort_unstable_by(rank_cmp);
    let mut acc = 0.0f64;
    for (k, it) in items.iter().enumerate().take(hi).skip(lo) {
        acc += it.w as f64;
        if acc >= need {
            return (k + 1, Some(*it));
        }
    }
    // Rounding: the whole set is still short of the target; keep everything.
    (hi, Some(items[hi - 1]))
}

/// An f32 ordered by `total_cmp`, for the top-k heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f32);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The k-th largest value (1 <= k < len), NaN counted as -inf. For k much smaller than the slice a
/// bounded min-heap of the best k (after the first few thousand elements almost every value fails one
/// compare against the heap's minimum); otherwise `select_nth_unstable` on a copy.
pub fn kth_largest(xs: &[f32], k: usize, scratch: &mut Vec<f32>) -> f32 {
    debug_assert!(k >= 1 && k < xs.len());
    let clean = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    if k <= 4096 && k * 16 <= xs.len() {
        let mut heap = std::collections::BinaryHeap::with_capacity(k);
        // The heap's minimum once it holds k values: a chunk whose max does not beat it is skipped.
        let mut floor = None;
        for chunk in xs.chunks(16) {
            if let Some(f) = floor {
                let chunk_max = chunk.iter().fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
                if chunk_max <= f {
                    continue;
                }
            }
            for &x in chunk {
                let x = clean(x);
                if heap.len() < k {
                    heap.push(std::cmp::Reverse(Key(x)));
                } else if let Some(mut top) = heap.peek_mut() {
                    if x > top.0 .0 {
                        *top = std::cmp::Reverse(Key(x));
                    }
                }
            }
            if heap.len() == k {
                floor = heap.peek().map(|r| r.0 .0);
            }
        }
        return heap.peek().map_or(f32::NEG_INFINITY, |r| r.0 .0);
    }
    scratch.clear();
    scratch.extend(xs.iter().map(|&x| clean(x)));
    let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    *kth
}

/// Histogram resolution: the top 12 bits of a positive f32 (exponent and 3 mantissa bits), so bucket
/// order is value order and a bucket spans a factor of at most 1.125.
const HIST_SHIFT: u32 = 20;
const HIST_BUCKETS: usize = 1 << (31 - HIST_SHIFT);

/// The nucleus boundary over all tokens of `w` (weights >= 0, ids = indices) for mass `target`, by a
/// radix step on the weights' bits before the selection: one pass builds a mass histogram, a scan from
/// the top bucket finds the bucket where the cumulative mass crosses `target`, and only that bucket's
/// items go through [`nucleus_boundary`]. Leaves in `pre` the ascending ids of every token in that
/// bucket or above (a superset of the nucleus, possibly with zero weights when the fallback to all
/// tokens is taken). None when `target <= 0` or no weight is positive.
pub fn nucleus_radix(
    w: &[f32],
    target: f64,
    hist: &mut Vec<f64>,
    pre: &mut Vec<u32>,
    items: &mut Vec<Item>,
) -> Option<Item> {
    items.clear();
    pre.clear();
    if target <= 0.0 {
        return None;
    }
    hist.clear();
    hist.resize(HIST_BUCKETS, 0.0);
    // Zero weights land in bucket 0 and add nothing: no branch needed.
    for &x in w {
        hist[(x.to_bits() >> HIST_SHIFT) as usize & (HIST_BUCKETS - 1)] += x as f64;
    }
    // Cross bucket: the first one (from the top) where the running mass reaches the target. If rounding
    // leaves the total short, the lowest bucket is taken and the nucleus is everything.
    let mut above = 0.0f64;
    let mut cross = 0usize;
    for k in (1..HIST_BUCKETS).rev() {
        if above + hist[k] >= target {
            cross = k;
            break;
        }
        above += hist[k];
    }
    if cross == 0 {
        // Rounding fallback: the whole positive set; its last item is the boundary.
        items.extend(w.iter().enumerate().filter(|(_, &x)| x > 0.0).map(|(i, &x)| Item { w: x, id: i as u32 }));
        pre.extend(0..w.len() as u32);
        let n = items.len();
        return (n > 0).then(|| nth_boundary(items, n));
    }
    // Branch-free gather of the cross bucket and of everything at or above it: every slot is written,
    // the lengths advance only on a match, so an unpredictable split costs no mispredictions.
    let cross_key = cross as u32;
    items.resize(w.len() + 1, Item { w: 0.0, id: 0 });
    pre.resize(w.len() + 1, 0);
    let (mut n_items, mut n_pre) = (0usize, 0usize);
    for (i, &x) in w.iter().enumerate() {
        let key = x.to_bits() >> HIST_SHIFT;
        items[n_items] = Item { w: x, id: i as u32 };
        n_items += (key == cross_key) as usize;
        pre[n_pre] = i as u32;
        n_pre += (key >= cross_key) as usize;
    }
    items.truncate(n_items);
    pre.truncate(n_pre);
    let (_, boundary) = nucleus_boundary(items, target - above);
    boundary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(ws: &[f32]) -> Vec<Item> {
        ws.iter().enumerate().map(|(i, &w)| Item { w, id: i as u32 }).collect()
    }

    #[test]
    fn rank_order_breaks_ties_by_lowest_id() {
        let a = Item { w: 0.5, id: 3 };
        let b = Item { w: 0.5, id: 7 };
        assert_eq!(rank_cmp(&a, &b), Ordering::Less);
        assert!(at_or_before(0.5, 3, &b));
        assert!(!at_or_before(0.5, 8, &b));
        assert!(at_or_before(0.6, 100, &b));
    }

    #[test]
    fn nucleus_on_hand_made_weights() {
        // Sorted: 0.4 (id1), 0.3 (id3), 0.2 (id0), 0.1 (id2). Target 0.65 -> needs 0.4 + 0.3 = 0.7.
        let mut it = items(&[0.2, 0.4, 0.1, 0.3]);
        let (k, b) = nucleus_boundary(&mut it, 0.65);
        assert_eq!((k, b.map(|b| b.id)), (2, Some(3)));
        // A target just above the top-1 mass needs two; a target at or below it needs one.
        let mut it = items(&[0.2, 0.4, 0.1, 0.3]);
        assert_eq!(nucleus_boundary(&mut it, 0.4).0, 1);
        let mut it = items(&[0.2, 0.4, 0.1, 0.3]);
        assert_eq!(nucleus_boundary(&mut it, 0.0).0, 0);
        let mut it = items(&[0.2, 0.4, 0.1, 0.3]);
        assert_eq!(nucleus_boundary(&mut it, 5.0).0, 4);
    }

    #[test]
    fn kth_largest_by_heap_and_by_selection_equals_sorting() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut scratch = Vec::new();
        for n in [20usize, 1000, 49152] {
            let mut xs: Vec<f32> = (0..n).map(|_| (rng.random_range(-50..50) as f32) / 4.0).collect();
            xs[n / 2] = f32::NAN;
            let mut sorted: Vec<f32> = xs.iter().map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x }).collect();
            sorted.sort_by(|a, b| b.total_cmp(a));
            for k in [1, 2, 7, 50, n / 3, n - 1].into_iter().filter(|&k| k >= 1 && k < n) {
                assert_eq!(kth_largest(&xs, k, &mut scratch), sorted[k - 1], "n {n} k {k}");
            }
        }
    }

    #[test]
    fn radix_nucleus_equals_the_sorted_prefix() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let (mut hist, mut pre, mut it) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..60 {
            let n = 50 + round * 131;
            let ws: Vec<f32> = (0..n)
                .map(|_| match round % 3 {
                    0 => (rng.random_range(0..40) as f32) / 8.0, // ties, some zeros
                    1 => (-rng.random_range(0.0f32..20.0)).exp(),
                    _ => 1.0 - rng.random_range(0.0f32..0.01), // flat: one histogram bucket
                })
                .collect();
            let total: f64 = ws.iter().map(|&w| w as f64).sum();
            let target = total * rng.random_range(0.01..0.999);
            let mut sorted: Vec<Item> = items(&ws).into_iter().filter(|i| i.w > 0.0).collect();
            sorted.sort_by(rank_cmp);
            let mut acc = 0.0;
            let mut expect = sorted[sorted.len() - 1];
            for it in &sorted {
                acc += it.w as f64;
                if acc >= target {
                    expect = *it;
                    break;
                }
            }
            let b = nucleus_radix(&ws, target, &mut hist, &mut pre, &mut it);
            assert_eq!(b, Some(expect), "round {round}");
            // `pre` is ascending and holds every member of the nucleus.
            assert!(pre.windows(2).all(|p| p[0] < p[1]));
            let mut nucleus = sorted.iter().take_while(|i| **i != expect).map(|i| i.id).chain([expect.id]);
            assert!(nucleus.all(|id| pre.binary_search(&id).is_ok()), "round {round}");
        }
        assert_eq!(nucleus_radix(&[0.5, 0.5], 0.0, &mut hist, &mut pre, &mut it), None);
        assert_eq!(nucleus_radix(&[0.0, 0.0], 1.0, &mut hist, &mut pre, &mut it), None);
    }

    #[test]
    fn nucleus_bisection_equals_sorted_prefix_on_large_sets() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..50 {
            let n = 100 + round * 97;
            // Quantised weights so ties occur often.
            let ws: Vec<f32> = (0..n).map(|_| (rng.random_range(0..40) as f32) / 8.0).collect();
            let total: f64 = ws.iter().map(|&w| w as f64).sum();
            let target = total * rng.random_range(0.05..0.99);
            let mut sorted = items(&ws);
            sorted.sort_by(rank_cmp);
            let mut acc = 0.0;
            let mut expect = sorted.len();
            for (k, it) in sorted.iter().enumerate() {
                acc += it.w as f64;
                if acc >= target {
                    expect = k + 1;
                    break;
                }
            }
            let mut it = items(&ws);
            let (k, b) = nucleus_boundary(&mut it, target);
            assert_eq!(k, expect, "round {round}");
            assert_eq!(b, Some(sorted[expect - 1]), "round {round}");
        }
    }
}
