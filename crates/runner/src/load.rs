//! Load as an axis of the plan (issue 16): `load.sweep` measures every policy at every offered rate (or
//! concurrency level), each (policy, level) in a phase of its own so that policies never share the machine while
//! measured, phases in a seeded order so that a drift of the machine does not always hit the same policy.
//!
//! A phase's requests are all of the policy's planned requests (every suite), in plan order, or `requests` of
//! them cycled. On a one-at-a-time backend an open-loop phase is an M/G/1 queue: arrivals wait first come first
//! served and their TTFT and E2E include the wait; a batching policy gets the same arrival stream and batches
//! what is waiting.

use crate::config::{Arrival, Level, Policy, SweepConfig};
use crate::loadgen::{arrival, Job, PhaseLoad, PhaseReport, RunTiming, Runner};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use ttc_types::{LoadTag, Record};

/// One policy at one load level.
#[derive(Debug, Clone)]
pub struct LoadPhase {
    pub policy: Arc<Policy>,
    pub level: Level,
    pub jobs: Vec<Job>,
}

/// Each policy's jobs, policies in order of first appearance in the plan, jobs in plan order.
pub fn jobs_by_policy(jobs: &[Job]) -> Vec<(Arc<Policy>, Vec<Job>)> {
    let mut out: Vec<(Arc<Policy>, Vec<Job>)> = Vec::new();
    for j in jobs {
        match out.iter_mut().find(|(p, _)| p.name == j.entry.policy.name) {
            Some((_, v)) => v.push(j.clone()),
            None => out.push((j.entry.policy.clone(), vec![j.clone()])),
        }
    }
    out
}

/// `jobs` cycled (or cut) to `n`.
pub fn cycle(jobs: &[Job], n: usize) -> Vec<Job> {
    if jobs.is_empty() {
        return Vec::new();
    }
    (0..n).map(|i| jobs[i % jobs.len()].clone()).collect()
}

/// The sweep's phases, in the seeded order they run in.
pub fn sweep_phases(jobs: &[Job], sweep: &SweepConfig, seed: u64) -> Vec<LoadPhase> {
    let mut phases = Vec::new();
    for (policy, pj) in jobs_by_policy(jobs) {
        let pj = match sweep.requests {
            Some(n) => cycle(&pj, n.0.min(1 << 24) as usize),
            None => pj,
        };
        for level in sweep.levels() {
            phases.push(LoadPhase { policy: policy.clone(), level, jobs: pj.clone() });
        }
    }
    // Its own stream (seed + 4): the plan order uses seed + 1, arrivals seed + 2, retry jitter seed + 3.
    phases.shuffle(&mut ChaCha8Rng::seed_from_u64(seed.wrapping_add(4)));
    phases
}

/// Total requests of a sweep (for the progress bar).
pub fn sweep_size(phases: &[LoadPhase]) -> usize {
    phases.iter().map(|p| p.jobs.len()).sum()
}

/// Drives one phase at `level` with `load`'s tag; records go to `out` as they complete.
pub async fn drive(
    runner: &Arc<Runner>,
    phase: LoadPhase,
    arrival_process: Arrival,
    load: PhaseLoad,
    start: Instant,
    out: mpsc::Sender<Record>,
) -> PhaseReport {
    let servers = runner.slots_for(&phase.policy);
    let seed = runner.settings().seed;
    let jobs: Arc<[Job]> = phase.jobs.into();
    match phase.level {
        Level::Rate(rate) => {
            let offsets = arrival::offsets(arrival_process, rate, jobs.len(), seed).unwrap_or_default();
            runner.open_loop(jobs, offsets, out, start, servers, &load).await
        }
        Level::Concurrency(c) => {
            runner.closed_loop(jobs, out, start, c, Some(servers), &load).await;
            PhaseReport::default()
        }
    }
}

/// Runs every phase of the sweep, one after another.
pub async fn run_sweep(runner: &Arc<Runner>, phases: Vec<LoadPhase>, arrival: Arrival, out: mpsc::Sender<Record>) -> RunTiming {
    let start = Instant::now();
    for (k, phase) in phases.into_iter().enumerate() {
        if runner.stop_flag().load(Ordering::Relaxed) || out.is_closed() {
            break;
        }
        let (offered_rate, concurrency_level) = match phase.level {
            Level::Rate(r) => (Some(r), None),
            Level::Concurrency(c) => (None, Some(c.min(u32::MAX as usize) as u32)),
        };
        let tag = LoadTag { phase: Some(format!("sweep-{k:02}")), offered_rate, concurrency_level, ..LoadTag::default() };
        tracing::info!(
            phase = k,
            policy = %phase.policy.name,
            level = %tag.level_label().unwrap_or_default(),
            requests = phase.jobs.len(),
            "load phase"
        );
        let load = PhaseLoad { tag, ..PhaseLoad::default() };
        drive(runner, phase, arrival, load, start, out.clone()).await;
    }
    RunTiming { started: start.into_std(), wall: start.elapsed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::scripted::{Reply, ScriptedBackend, Step};
    use crate::backend::{BackendInfo, ChatMessage};
    use crate::config::file::{NonZero, PositiveF64};
    use crate::config::GenerationConfig;
    use crate::plan::{build_plan, WorkItem};
    use crate::record::RunContext;
    use crate::loadgen::retry::Backoff;
    use crate::loadgen::{make_jobs, RunnerSettings};
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn setup(policies: &[&str], n: usize) -> (Arc<Runner>, Vec<Job>) {
        let backend = ScriptedBackend::new(|_, _| {
            Reply::Stream(vec![Step::Delay(Duration::from_millis(100)), Step::text("x"), Step::finish(None)])
        })
        .with_max_concurrency(1);
        let settings = RunnerSettings {
            arrival: Arrival::Poisson,
            concurrency: 1,
            rate: f64::INFINITY,
            burst: 1.0,
            warmup: 0,
            timeout: Duration::from_secs(60),
            max_retries: 0,
            backoff: Backoff { base: Duration::ZERO, cap: Duration::ZERO, max_retry_after: Duration::ZERO },
            seed: 1,
        };
        let ctx = RunContext {
            run_id: "t".into(),
            run_started_at: "x".into(),
            config_hash: "h".into(),
            project_version: "0".into(),
            host: "h".into(),
            backend: BackendInfo { kind: "scripted".into(), base_url: None, model: "m".into(), weights: None, usage_is_engine: false },
        };
        let runner = Arc::new(Runner::new(Arc::new(backend), settings, ctx, None));
        let items: Vec<WorkItem> = (0..n)
            .map(|i| WorkItem {
                suite: "s".into(),
                task: None,
                sample_id: i.to_string(),
                messages: vec![ChatMessage::new("user", format!("q{i}"))],
                reference: None,
            })
            .collect();
        let ps: Vec<Policy> = policies.iter().map(|p| Policy { name: p.to_string(), ..Policy::baseline() }).collect();
        let plan = build_plan(&ps, vec![items], 0, &BTreeSet::new()).unwrap();
        (runner, make_jobs(&plan.entries, &GenerationConfig::default(), "m"))
    }

    /// Every policy at every level, alone and in a seeded order; records carry the level and the phase, and at a
    /// constant 20 r/s against a 10 r/s server the queue shows in E2E.
    #[tokio::test(start_paused = true)]
    async fn each_policy_at_each_level_in_a_phase_of_its_own() {
        let (runner, jobs) = setup(&["a", "b"], 4);
        let sweep = SweepConfig {
            arrival: Arrival::Constant,
            rates: vec![PositiveF64(2.0), PositiveF64(20.0)],
            concurrency: vec![],
            requests: Some(NonZero(6)),
        };
        let phases = sweep_phases(&jobs, &sweep, 7);
        let shape: Vec<(String, Level)> = phases.iter().map(|p| (p.policy.name.clone(), p.level)).collect();
        assert_eq!(shape.len(), 4);
        assert_ne!(shape, sweep_phases(&jobs, &sweep, 8).iter().map(|p| (p.policy.name.clone(), p.level)).collect::<Vec<_>>());
        assert!(phases.iter().all(|p| p.jobs.len() == 6 && p.jobs.iter().all(|j| j.entry.policy.name == p.policy.name)));
        let (tx, mut rx) = mpsc::channel(100);
        run_sweep(&runner, phases.clone(), sweep.arrival, tx).await;
        let mut recs = Vec::new();
        while let Some(r) = rx.recv().await {
            recs.push(r);
        }
        assert_eq!(recs.len(), 24);
        for (k, (policy, level)) in shape.iter().enumerate() {
            let label = format!("sweep-{k:02}");
            let mine: Vec<&Record> = recs.iter().filter(|r| r.load.phase.as_deref() == Some(label.as_str())).collect();
            assert_eq!(mine.len(), 6);
            assert!(mine.iter().all(|r| &r.policy == policy));
            let Level::Rate(rate) = level else { panic!() };
            assert!(mine.iter().all(|r| r.load.offered_rate == Some(*rate)));
            let mut e2e: Vec<u64> = mine.iter().map(|r| (r.e2e_s.unwrap() * 1000.0).round() as u64).collect();
            e2e.sort();
            if *rate == 2.0 {
                assert_eq!(e2e, vec![100; 6], "no queue below the service rate");
            } else {
                // Arrivals every 50 ms, service 100 ms: request k waits 50k ms.
                assert_eq!(e2e, vec![100, 150, 200, 250, 300, 350]);
            }
        }
        // Phases never overlap: each starts after the previous one's last answer.
        let span = |label: String| {
            let rs: Vec<&Record> = recs.iter().filter(|r| r.load.phase.as_deref() == Some(label.as_str())).collect();
            let s = rs.iter().map(|r| r.start_offset_s).fold(f64::INFINITY, f64::min);
            let e = rs.iter().map(|r| r.start_offset_s + r.e2e_s.unwrap()).fold(0.0, f64::max);
            (s, e)
        };
        for k in 1..4 {
            assert!(span(format!("sweep-{k:02}")).0 >= span(format!("sweep-{:02}", k - 1)).1 - 1e-9);
        }
    }
}
