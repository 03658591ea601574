//! The workspace's one sampler of suite items: seeded and stratified over tasks. Each task's items are shuffled
//! with a ChaCha8 generator seeded from (seed, task), then tasks are visited round-robin in name order, one item at
//! a time; small tasks run out and the others fill in. That visiting order is the *draw order* ([`draw_order`]);
//! a sample of `n` is its first `n` items, kept in the original file order ([`stratified_sample`]). The suite
//! loader draws with it, and the runner draws with it too ([`sample_pool`] for `--until-ci-width`, whose first
//! round is then exactly the sample a plain run of that size takes, and later rounds extend it).

use super::SuiteItem;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// An item that belongs to a task (the stratum); `None` is a task of its own, named "".
pub trait Stratified {
    fn task(&self) -> Option<&str>;
}

impl Stratified for SuiteItem {
    fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }
}

/// The runner's planned item (the contract's), so the runner draws with this same sampler.
impl Stratified for ttc_contract::WorkItem {
    fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }
}

fn task_seed(seed: u64, task: &str) -> u64 {
    // FNV-1a of the task name mixed with the seed: stable across platforms and Rust versions.
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in task.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Indices of `items` in draw order (every item once), deterministic for `seed`.
pub fn draw_order<T: Stratified>(items: &[T], seed: u64) -> Vec<usize> {
    let mut by_task: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_task.entry(it.task().unwrap_or_default()).or_default().push(i);
    }
    for (task, idx) in by_task.iter_mut() {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(task_seed(seed, task)));
    }
    let mut order = Vec::with_capacity(items.len());
    let mut round = 0;
    while order.len() < items.len() {
        order.extend(by_task.values().filter_map(|idx| idx.get(round).copied()));
        round += 1;
    }
    order
}

/// The first `n` items of the draw order (all when `n` is at least their number), in the original order.
pub fn stratified_sample<T: Stratified>(items: Vec<T>, n: usize, seed: u64) -> Vec<T> {
    if n >= items.len() {
        return items;
    }
    let mut keep = vec![false; items.len()];
    draw_order(&items, seed).into_iter().take(n).for_each(|i| keep[i] = true);
    items.into_iter().zip(keep).filter_map(|(it, k)| k.then_some(it)).collect()
}

/// Every item, in draw order: `stratified_sample(items, n)` holds the same items as its first `n`.
pub fn sample_pool<T: Stratified>(items: Vec<T>, seed: u64) -> Vec<T> {
    let order = draw_order(&items, seed);
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(task: &str, id: usize) -> SuiteItem {
        SuiteItem {
            suite: "s".into(),
            task: Some(task.into()),
            sample_id: id.to_string(),
            messages: vec![],
            reference: None,
            reference_list: vec![],
            reward_metric: None,
            metadata: Default::default(),
        }
    }

    #[test]
    fn balanced_seeded_and_ordered() {
        let items: Vec<SuiteItem> =
            (0..30).map(|i| item(if i < 20 { "big" } else if i < 28 { "mid" } else { "tiny" }, i)).collect();
        let a = stratified_sample(items.clone(), 9, 7);
        let count = |v: &[SuiteItem], t: &str| v.iter().filter(|i| i.task.as_deref() == Some(t)).count();
        // Rounds: (big, mid, tiny) x2, then (big, mid) as tiny runs out, then big: 4 + 3 + 2.
        assert_eq!(a.len(), 9);
        assert_eq!(count(&a, "tiny"), 2);
        assert_eq!(count(&a, "big"), 4);
        assert_eq!(count(&a, "mid"), 3);
        let ids: Vec<usize> = a.iter().map(|i| i.sample_id.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "file order kept");
        assert_eq!(a, stratified_sample(items.clone(), 9, 7), "same seed, same sample");
        assert_ne!(a, stratified_sample(items.clone(), 9, 8), "another seed, another sample");
        assert_eq!(stratified_sample(items.clone(), 100, 1).len(), 30);
        // The pool's first n are the sample of n, whatever n.
        let pool = sample_pool(items.clone(), 7);
        assert_eq!(pool.len(), 30);
        for n in [1, 5, 9, 29] {
            let mut first: Vec<SuiteItem> = pool[..n].to_vec();
            first.sort_by_key(|i| i.sample_id.parse::<usize>().unwrap());
            assert_eq!(first, stratified_sample(items.clone(), n, 7), "n={n}");
        }
    }
}
