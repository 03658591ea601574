//! `ttc run --shard I/N` / `--shards N`: which shard this process runs, what a sharded run cannot do, and how a
//! shard's load is set so that N shards together offer the load of one run (docs/scale-out.md).

use crate::config::{RunConfig, RunOptions};
use crate::loadgen::RunnerSettings;
use std::time::SystemTime;
use ttc_results::Shard;

/// Environment variables that carry a shard index, in the order they are looked at: a Kubernetes Indexed Job
/// sets the first in every pod, a Slurm job array the second in every task.
pub const INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// The shard of this process, from `--shard I/N` or `--shards N` and the scheduler's index variable, checked
/// against what a sharded run supports. Errors are one line naming the flag or variable (exit 2).
pub fn resolve_shard(args: &RunOptions, cfg: &RunConfig, only_capacity: bool) -> Result<Option<Shard>, String> {
    let env = |name: &str| std::env::var(name).ok();
    let shard = match (args.shard, args.shards) {
        (Some(s), _) => s,
        (None, Some(n)) => shard_from_env(n, env)?,
        (None, None) => return Ok(None),
    };
    let flag = format!("--shard {shard}");
    if args.run_id.is_none() && args.resume.is_none() {
        return Err(format!("{flag}: every shard must write into the same run: give them all --run-id RUN_ID (or --resume RUN_ID)"));
    }
    if only_capacity || cfg.capacity.is_some() {
        return Err(format!("{flag}: a capacity search measures one machine; run it unsharded (or pass --no-capacity)"));
    }
    if cfg.load.sweep.is_some() {
        return Err(format!("{flag}: a load sweep (`load.sweep`) cannot be sharded yet; run it on one machine"));
    }
    if cfg.until_ci.is_some() {
        return Err(format!(
            "{flag}: --until-ci-width decides its rounds from all records, which no shard sees; fix --samples instead"
        ));
    }
    Ok(Some(shard))
}

/// `--shards N` with the index from [`INDEX_VARIABLES`].
pub fn shard_from_env(count: u32, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    for name in INDEX_VARIABLES {
        if let Some(v) = env(name) {
            let index: u32 = v.trim().parse().map_err(|_| format!("--shards {count}: {name}=`{v}` is not a shard index"))?;
            return Shard::new(index, count).map_err(|e| format!("--shards {count} with {name}={v}: {e}"));
        }
    }
    Err(format!(
        "--shards {count}: the shard index comes from {} (Kubernetes Indexed Job) or {} (Slurm job array), and neither is set; use --shard I/{count}",
        INDEX_VARIABLES[0], INDEX_VARIABLES[1]
    ))
}

/// One shard's share of the load: the rate (the open-loop arrival rate and the token bucket) divided by N, so that
/// N shards offer the configured rate together. The superposition of N independent Poisson streams of rate r/N is
/// a Poisson stream of rate r (the sum of independent Poisson counts is Poisson), so N shards of a Poisson run
/// offer the same arrival process as one machine; for that the streams must be independent, hence a seed per
/// shard for arrivals and retry jitter (sample draws and plan order keep the run seed).
pub fn shard_settings(mut settings: RunnerSettings, shard: Option<Shard>) -> RunnerSettings {
    if let Some(s) = shard.filter(|s| s.count > 1) {
        settings.rate /= s.count as f64;
        settings.seed ^= (s.index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    }
    settings
}

/// Sleeps until `at` (`--start-at`); a time already past starts at once, with a warning.
pub async fn wait_until(at: SystemTime) {
    match at.duration_since(SystemTime::now()) {
        Ok(wait) => {
            tracing::info!(seconds = wait.as_secs_f64(), "waiting for --start-at");
            tokio::time::sleep(wait).await;
        }
        Err(late) => tracing::warn!(seconds_late = late.duration().as_secs_f64(), "--start-at has passed; starting now"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn index_from_kubernetes_then_slurm() {
        assert_eq!(shard_from_env(4, env(&[("JOB_COMPLETION_INDEX", "2")])), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(shard_from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "3")])), Ok(Shard { index: 3, count: 4 }));
        let both = [("SLURM_ARRAY_TASK_ID", "3"), ("JOB_COMPLETION_INDEX", "1")];
        assert_eq!(shard_from_env(4, env(&both)).unwrap().index, 1, "the Kubernetes index wins");
    }

    #[test]
    fn bad_index_names_the_variable() {
        let e = shard_from_env(2, env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap_err();
        assert!(e.contains("JOB_COMPLETION_INDEX=2") && e.contains("below the count"), "{e}");
        let e = shard_from_env(2, env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_ID=`x`"), "{e}");
        let e = shard_from_env(2, env(&[])).unwrap_err();
        assert!(e.contains("neither is set") && e.contains("--shard I/2"), "{e}");
    }

    #[test]
    fn rate_is_split_and_arrival_seeds_differ() {
        let base = RunnerSettings::from_config(&RunConfig::from_options(&RunOptions::default()).unwrap());
        let one = shard_settings(base.clone(), Some(Shard { index: 0, count: 1 }));
        assert_eq!((one.rate, one.seed), (base.rate, base.seed), "one shard is the whole run");
        let a = shard_settings(base.clone(), Some(Shard { index: 0, count: 4 }));
        let b = shard_settings(base.clone(), Some(Shard { index: 1, count: 4 }));
        assert_eq!(a.rate, base.rate / 4.0);
        assert!(a.seed != b.seed && a.seed != base.seed, "independent arrival streams");
    }

    #[tokio::test(start_paused = true)]
    async fn start_at_waits_for_its_time_and_a_past_time_starts_at_once() {
        let t = tokio::time::Instant::now();
        wait_until(SystemTime::now() + std::time::Duration::from_secs(30)).await;
        assert!(t.elapsed() >= std::time::Duration::from_secs(29), "{:?}", t.elapsed());
        let t = tokio::time::Instant::now();
        wait_until(SystemTime::now() - std::time::Duration::from_secs(30)).await;
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
