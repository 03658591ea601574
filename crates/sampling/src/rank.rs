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
    for k in lo..hi {
        acc += items[k].w as f64;
        if acc >= need {
            return (k + 1, Some(items[k]));
        }
    }
    // Rounding: the whole set is still short of the target; keep everything.
    (hi, Some(items[hi - 1]))
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
