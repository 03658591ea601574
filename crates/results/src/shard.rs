//! Sharded runs (`ttc run --shard I/N`): N processes, usually on N machines, each run a disjoint part of one
//! plan and write into the same `run_id=<id>/` folder. Each shard names its part files and its manifest after
//! itself, so shards never contend for a name and a reader can tell which shard wrote what:
//!
//! ```text
//! run_id=<id>/
//!   _shard-0-of-2.json               shard 0's manifest (config hash, planned per shard, status)
//!   _shard-1-of-2.json
//!   part-shard0of2-00000.parquet     shard 0's first flush
//!   part-shard1of2-00000.parquet
//! ```
//!
//! A reader merges the shards into one run and reports a shard that is missing or incomplete with the number
//! of records it lacks ([`ShardGap`]), so a partial run is never summarised as if it were whole.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (0-based: a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err(format!("{index}/{count}: the shard count must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "{index}/{count}: the shard index must be below the count (shards are numbered 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard's manifest file name, `_shard-I-of-N.json` (leading underscore: Parquet readers skip it).
    pub fn manifest_file(&self) -> String {
        format!("_shard-{}-of-{}.json", self.index, self.count)
    }

    /// The middle of its part file names: `part-shardIofN-00000.parquet`.
    pub fn part_tag(&self) -> String {
        format!("shard{}of{}", self.index, self.count)
    }

    /// Parses [`Shard::manifest_file`] names.
    pub fn from_manifest_file(name: &str) -> Option<Shard> {
        let (i, n) = name.strip_prefix("_shard-")?.strip_suffix(".json")?.split_once("-of-")?;
        Shard::new(i.parse().ok()?, n.parse().ok()?).ok()
    }

    /// Parses [`Shard::part_tag`].
    pub fn from_part_tag(tag: &str) -> Option<Shard> {
        let (i, n) = tag.strip_prefix("shard")?.split_once("of")?;
        Shard::new(i.parse().ok()?, n.parse().ok()?).ok()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    /// `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let Some((i, n)) = s.split_once('/') else {
            return Err(format!("`{s}` is not I/N (shard index / shard count, e.g. 0/4)"));
        };
        let num = |v: &str, what: &str| v.trim().parse::<u32>().map_err(|_| format!("`{s}`: the {what} `{v}` is not a number"));
        Shard::new(num(i, "shard index")?, num(n, "shard count")?)
    }
}

/// What a shard's manifest adds to a run manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    #[serde(flatten)]
    pub shard: Shard,
    /// Requests the plan gives each shard (index = shard). Every shard computes the whole plan, so each
    /// manifest knows what a shard that never started lacks.
    pub planned_per_shard: Vec<u64>,
}

/// A shard of a run that has not stored its whole part of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardGap {
    pub shard: Shard,
    pub planned: u64,
    pub stored: u64,
    /// Why: `no manifest (never started)`, `running or interrupted`, `finished early (interrupted)`.
    pub state: String,
}

impl ShardGap {
    pub fn missing(&self) -> u64 {
        self.planned.saturating_sub(self.stored)
    }
}

impl fmt::Display for ShardGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard {} is {}: {} of {} planned records stored, {} missing",
            self.shard,
            self.state,
            self.stored,
            self.planned,
            self.missing()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_names() {
        let s: Shard = "1/4".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 4 });
        assert_eq!(s.to_string(), "1/4");
        assert_eq!(Shard::from_manifest_file(&s.manifest_file()), Some(s));
        assert_eq!(Shard::from_part_tag(&s.part_tag()), Some(s));
        assert_eq!(s.manifest_file(), "_shard-1-of-4.json");
        assert_eq!(Shard::from_manifest_file("_run.json"), None);
    }

    #[test]
    fn bad_shards_name_the_problem() {
        let e = "3/2".parse::<Shard>().unwrap_err();
        assert!(e.contains("3/2") && e.contains("below the count") && e.contains("0 to 1"), "{e}");
        let e = "0/0".parse::<Shard>().unwrap_err();
        assert!(e.contains("0/0") && e.contains("at least 1"), "{e}");
        assert!("2".parse::<Shard>().unwrap_err().contains("not I/N"));
        assert!("a/2".parse::<Shard>().unwrap_err().contains("shard index `a`"));
        assert_eq!(Shard::from_manifest_file("_shard-2-of-2.json"), None, "out of range");
    }
}
