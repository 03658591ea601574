//! The plan: policy x suite x sample, in a deterministic execution order for a seed.
//!
//! Samples are drawn per suite with the eval crate's one sampler (`ttc_eval::suite::sampling`: stratified by
//! task, each task's items shuffled with the seed, then taken round-robin across tasks), so a small draw still
//! covers every task. The full cross product is then
//! shuffled with the run seed: policies are interleaved in time, so a drift in server load or machine
//! state during the run hits all policies alike instead of biasing the one that ran last.

use crate::config::{Policy, SuiteConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use ttc_eval::suite::sampling::{self, stratified_sample};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// One sample of a suite (moved to `ttc-contract`: records and `ttc serve` name samples too).
pub use ttc_contract::WorkItem;

/// Loads a suite's items after its task filter, drawing `suite.samples` of them with `seed` (a loader that
/// returns more is cut down by [`draw_samples`]).
pub trait SuiteLoader: Send + Sync {
    fn load(&self, suite: &SuiteConfig, seed: u64, data_dir: Option<&Path>) -> anyhow::Result<Vec<WorkItem>>;
}

/// (policy, suite, sample_id): the key `--resume` uses, same as `Record::key`.
pub type RequestKey = (String, String, String);

#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// Position in execution order.
    pub index: usize,
    pub policy: Arc<Policy>,
    pub item: Arc<WorkItem>,
}

impl PlanEntry {
    pub fn key(&self) -> RequestKey {
        (self.policy.name.clone(), self.item.suite.clone(), self.item.sample_id.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    /// Entries left out because they were already stored (`--resume`).
    pub skipped: usize,
}

/// Draws `n` items (all if `n` is None or larger) with the one sampler, deterministic for `seed`: the sample the
/// eval crate's loader already took for the same `n` and seed comes back unchanged (a loader that returns more is
/// cut down to it).
pub fn draw_samples(items: Vec<WorkItem>, n: Option<usize>, seed: u64) -> Vec<WorkItem> {
    match n {
        Some(n) => stratified_sample(items, n, seed),
        None => items,
    }
}

/// Every item in draw order (the one sampler's [`sample_pool`]): its first n are the items of
/// `draw_samples(items, Some(n))`, so later sampling rounds (`--until-ci-width`) extend a draw instead of replacing
/// it.
pub fn sample_pool(items: Vec<WorkItem>, seed: u64) -> Vec<WorkItem> {
    sampling::sample_pool(items, seed)
}

/// Builds the plan from the policies and each suite's (already drawn) items, skipping stored keys.
pub fn build_plan(
    policies: &[Policy],
    suites: Vec<Vec<WorkItem>>,
    seed: u64,
    already_stored: &BTreeSet<RequestKey>,
) -> anyhow::Result<Plan> {
    let mut items = Vec::new();
    for suite in suites {
        let mut ids = HashSet::new();
        for it in suite {
            if !ids.insert(it.sample_id.clone()) {
                anyhow::bail!("suite `{}`: sample id `{}` appears twice", it.suite, it.sample_id);
            }
            items.push(Arc::new(it));
        }
    }
    let mut entries = Vec::with_capacity(policies.len() * items.len());
    for p in policies {
        let p = Arc::new(p.clone());
        for it in &items {
            entries.push(PlanEntry { index: 0, policy: p.clone(), item: it.clone() });
        }
    }
    // A different stream than the sample draws (seed + 1), so changing a suite's own seed does not
    // reshuffle the order and vice versa.
    entries.shuffle(&mut ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)));
    let before = entries.len();
    entries.retain(|e| !already_stored.contains(&e.key()));
    let skipped = before - entries.len();
    for (i, e) in entries.iter_mut().enumerate() {
        e.index = i;
    }
    Ok(Plan { entries, skipped })
}

/// The shard of every distinct sample (suite, sample_id) of `entries`: the samples sorted by (suite, sample id) and
/// dealt round-robin, so shards differ by at most one sample. Depends only on the set of samples, which every
/// shard computes alike from the same configuration (the manifests' config hash checks that).
pub fn sample_shards(entries: &[PlanEntry], count: u32) -> BTreeMap<(String, String), u32> {
    let samples: BTreeSet<(String, String)> =
        entries.iter().map(|e| (e.item.suite.clone(), e.item.sample_id.clone())).collect();
    samples.into_iter().enumerate().map(|(k, s)| (s, (k % count.max(1) as usize) as u32)).collect()
}

impl Plan {
    /// Shard `index` of `count`: the entries of the samples [`sample_shards`] gives it (every policy of a sample on
    /// one shard, so paired comparisons stay within a machine), in plan order, minus `already_stored`. Also
    /// returns the number of requests each shard is given (before skipping), for the shard manifests.
    /// Call on the whole plan (built with nothing stored).
    pub fn shard(self, index: u32, count: u32, already_stored: &BTreeSet<RequestKey>) -> (Plan, Vec<u64>) {
        let of = sample_shards(&self.entries, count);
        let shard_of = |e: &PlanEntry| of[&(e.item.suite.clone(), e.item.sample_id.clone())];
        let mut sizes = vec![0u64; count as usize];
        for e in &self.entries {
            sizes[shard_of(e) as usize] += 1;
        }
        let mut entries: Vec<PlanEntry> = self.entries.into_iter().filter(|e| shard_of(e) == index).collect();
        let before = entries.len();
        entries.retain(|e| !already_stored.contains(&e.key()));
        let skipped = before - entries.len();
        for (i, e) in entries.iter_mut().enumerate() {
            e.index = i;
        }
        (Plan { entries, skipped }, sizes)
    }

    /// The `--dry-run` listing: one line per request in execution order, then counts.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{:>6}  {:<28} {:<14} {:<28} sample", "#", "policy", "suite", "task")?;
        for e in &self.entries {
            writeln!(
                out,
                "{:>6}  {:<28} {:<14} {:<28} {}",
                e.index,
                e.policy.name,
                e.item.suite,
                e.item.task.as_deref().unwrap_or("-"),
                e.item.sample_id
            )?;
        }
        let mut per: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for e in &self.entries {
            *per.entry((e.policy.name.as_str(), e.item.suite.as_str())).or_default() += 1;
        }
        writeln!(out)?;
        for ((p, s), n) in per {
            writeln!(out, "{p} x {s}: {n} requests")?;
        }
        write!(out, "total: {} requests", self.entries.len())?;
        if self.skipped > 0 {
            write!(out, " ({} already stored, skipped)", self.skipped)?;
        }
        writeln!(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ChatMessage;

    fn items(suite: &str, tasks: &[(&str, usize)]) -> Vec<WorkItem> {
        let mut v = Vec::new();
        for (t, n) in tasks {
            for i in 0..*n {
                v.push(WorkItem {
                    suite: suite.into(),
                    task: Some(t.to_string()),
                    sample_id: format!("{t}-{i}"),
                    messages: vec![ChatMessage::new("user", format!("{t} {i}"))],
                    reference: None,
                });
            }
        }
        v
    }

    fn policy(name: &str) -> Policy {
        Policy { name: name.into(), ..Policy::baseline() }
    }

    #[test]
    fn draw_is_stratified_and_deterministic() {
        let all = items("s", &[("a", 10), ("b", 10), ("c", 2)]);
        let d1 = draw_samples(all.clone(), Some(6), 7);
        let d2 = draw_samples(all.clone(), Some(6), 7);
        assert_eq!(d1, d2);
        let count = |t: &str| d1.iter().filter(|i| i.task.as_deref() == Some(t)).count();
        assert_eq!((count("a"), count("b"), count("c")), (2, 2, 2));
        // Task c has only 2 items; the rest is filled from the others.
        let d = draw_samples(all.clone(), Some(12), 7);
        let c = d.iter().filter(|i| i.task.as_deref() == Some("c")).count();
        assert_eq!((d.len(), c), (12, 2));
        assert_ne!(draw_samples(all.clone(), Some(6), 8), d1, "another seed draws other samples");
        assert_eq!(draw_samples(all.clone(), None, 7), all);
        assert_eq!(draw_samples(all.clone(), Some(100), 7), all);
        // A loader's draw (the same sampler) comes back unchanged, and is the pool's first n.
        assert_eq!(draw_samples(d1.clone(), Some(6), 7), d1);
        let mut first = sample_pool(all.clone(), 7)[..6].to_vec();
        first.sort_by_key(|w| all.iter().position(|a| a == w));
        assert_eq!(first, d1);
    }

    #[test]
    fn plan_is_the_full_product_in_a_seeded_order() {
        let policies = [policy("p1"), policy("p2"), policy("p3")];
        let suites = || vec![items("s1", &[("a", 4)]), items("s2", &[("b", 3)])];
        let plan = build_plan(&policies, suites(), 1, &BTreeSet::new()).unwrap();
        assert_eq!(plan.entries.len(), 3 * 7);
        let keys: BTreeSet<_> = plan.entries.iter().map(|e| e.key()).collect();
        assert_eq!(keys.len(), 21, "each (policy, suite, sample) exactly once");
        let order = |p: &Plan| p.entries.iter().map(|e| e.key()).collect::<Vec<_>>();
        let again = build_plan(&policies, suites(), 1, &BTreeSet::new()).unwrap();
        assert_eq!(order(&plan), order(&again));
        let other = build_plan(&policies, suites(), 2, &BTreeSet::new()).unwrap();
        assert_ne!(order(&plan), order(&other));
        assert!(plan.entries.iter().enumerate().all(|(i, e)| e.index == i));
        // Interleaved: the first third of the run is not a single policy.
        let first: BTreeSet<_> = plan.entries[..7].iter().map(|e| e.policy.name.clone()).collect();
        assert!(first.len() > 1);
    }

    #[test]
    fn resume_skips_stored_keys_and_keeps_the_order() {
        let policies = [policy("p1"), policy("p2")];
        let full = build_plan(&policies, vec![items("s", &[("a", 5)])], 3, &BTreeSet::new()).unwrap();
        let stored: BTreeSet<_> = full.entries.iter().step_by(2).map(|e| e.key()).collect();
        let rest = build_plan(&policies, vec![items("s", &[("a", 5)])], 3, &stored).unwrap();
        assert_eq!(rest.skipped, stored.len());
        let expected: Vec<_> = full.entries.iter().map(|e| e.key()).filter(|k| !stored.contains(k)).collect();
        assert_eq!(rest.entries.iter().map(|e| e.key()).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn duplicate_sample_ids_are_an_error() {
        let mut s = items("s", &[("a", 2)]);
        s[1].sample_id = s[0].sample_id.clone();
        let err = build_plan(&[policy("p")], vec![s], 0, &BTreeSet::new()).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Shards 0..N of a plan together hold every entry exactly once, every policy of a sample is on one
        /// shard, the sizes are what each shard gets, and shards differ by at most one sample.
        #[test]
        fn shards_cover_the_plan_exactly_once(n_policies in 1usize..4, tasks in proptest::collection::vec(1usize..9, 1..4), seed in 0u64..1000) {
            let names: Vec<String> = (0..n_policies).map(|i| format!("p{i}")).collect();
            let policies: Vec<Policy> = names.iter().map(|n| policy(n)).collect();
            let spec: Vec<(&str, usize)> = ["a", "b", "c"].iter().copied().zip(tasks.iter().copied()).collect();
            let suites = || vec![items("s1", &spec), items("s2", &spec[..1])];
            for count in 1..=8u32 {
                let full = build_plan(&policies, suites(), seed, &BTreeSet::new()).unwrap();
                let keys: Vec<RequestKey> = full.entries.iter().map(|e| e.key()).collect();
                let mut seen: BTreeMap<RequestKey, u32> = BTreeMap::new();
                let mut sample_shard: BTreeMap<(String, String), u32> = BTreeMap::new();
                let mut samples_per_shard = vec![0usize; count as usize];
                for index in 0..count {
                    let (part, sizes) = build_plan(&policies, suites(), seed, &BTreeSet::new()).unwrap().shard(index, count, &BTreeSet::new());
                    proptest::prop_assert_eq!(sizes.iter().sum::<u64>() as usize, keys.len());
                    proptest::prop_assert_eq!(sizes[index as usize] as usize, part.entries.len());
                    // Plan order is kept: the shard is a subsequence of the whole plan.
                    let order: Vec<usize> = part.entries.iter().map(|e| keys.iter().position(|k| *k == e.key()).unwrap()).collect();
                    proptest::prop_assert!(order.windows(2).all(|w| w[0] < w[1]));
                    for e in &part.entries {
                        *seen.entry(e.key()).or_default() += 1;
                        let sample = (e.item.suite.clone(), e.item.sample_id.clone());
                        if sample_shard.insert(sample.clone(), index).is_none() {
                            samples_per_shard[index as usize] += 1;
                        }
                        proptest::prop_assert_eq!(sample_shard[&sample], index, "a sample split across shards");
                    }
                }
                proptest::prop_assert_eq!(seen.len(), keys.len(), "every entry on some shard");
                proptest::prop_assert!(seen.values().all(|&n| n == 1), "an entry on two shards");
                let (lo, hi) = (samples_per_shard.iter().min().unwrap(), samples_per_shard.iter().max().unwrap());
                proptest::prop_assert!(hi - lo <= 1, "unbalanced: {:?}", samples_per_shard);
            }
        }
    }

    #[test]
    fn a_shard_resumes_without_its_stored_entries() {
        let policies = [policy("p1"), policy("p2")];
        let full = || build_plan(&policies, vec![items("s", &[("a", 6)])], 3, &BTreeSet::new()).unwrap();
        let (part, sizes) = full().shard(1, 2, &BTreeSet::new());
        assert_eq!(sizes, vec![6, 6]);
        let stored: BTreeSet<_> = part.entries.iter().take(4).map(|e| e.key()).collect();
        let (rest, sizes_again) = full().shard(1, 2, &stored);
        assert_eq!(sizes_again, sizes, "sizes are of the whole shard, stored or not");
        assert_eq!((rest.entries.len(), rest.skipped), (2, 4));
        assert_eq!(rest.entries.iter().map(|e| e.key()).collect::<Vec<_>>(), part.entries[4..].iter().map(|e| e.key()).collect::<Vec<_>>());
    }

    #[test]
    fn dry_run_listing() {
        let plan = build_plan(&[policy("p")], vec![items("s", &[("a", 2)])], 0, &BTreeSet::new()).unwrap();
        let mut out = Vec::new();
        plan.print(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("p x s: 2 requests"), "{text}");
        assert!(text.contains("total: 2 requests"));
        assert_eq!(text.lines().filter(|l| l.contains(" a-")).count(), 2);
    }
}
