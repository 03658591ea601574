//! Seeded stratified sampling over tasks: each task's items are shuffled with a ChaCha8 generator seeded from
//! (seed, task), then tasks are visited round-robin in name order, one item at a time, until `n` are taken;
//! small tasks run out and the others fill in. The result keeps the original file order.

use super::SuiteItem;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

fn task_seed(seed: u64, task: &str) -> u64 {
    // FNV-1a of the task name mixed with the seed: stable across platforms and Rust versions.
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in task.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub fn stratified_sample(items: Vec<SuiteItem>, n: usize, seed: u64) -> Vec<SuiteItem> {
    if n >= items.len() {
        return items;
    }
    let mut by_task: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_task.entry(it.task.clone().unwrap_or_default()).or_default().push(i);
    }
    for (task, idx) in by_task.iter_mut() {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(task_seed(seed, task)));
    }
    let mut chosen = Vec::with_capacity(n);
    let mut round = 0;
    while chosen.len() < n {
        for idx in by_task.values() {
            if let Some(&i) = idx.get(round) {
                chosen.push(i);
                if chosen.len() == n {
                    break;
                }
            }
        }
        round += 1;
    }
    chosen.sort_unstable();
    let mut keep = vec![false; items.len()];
    chosen.iter().for_each(|&i| keep[i] = true);
    items.into_iter().zip(keep).filter_map(|(it, k)| k.then_some(it)).collect()
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
    }
}
