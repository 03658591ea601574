//! The search on tokio's paused clock against queues whose answer is known in closed form.

use super::*;
use crate::backend::scripted::{Reply, ScriptedBackend, Step};
use crate::backend::{BackendInfo, ChatMessage};
use crate::config::{Arrival, GenerationConfig};
use crate::plan::{build_plan, WorkItem};
use crate::record::RunContext;
use crate::loadgen::retry::Backoff;
use crate::loadgen::{make_jobs, RunnerSettings};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use std::collections::BTreeSet;
use std::sync::Mutex;

fn runner(backend: ScriptedBackend) -> Arc<Runner> {
    let settings = RunnerSettings {
        arrival: Arrival::Poisson,
        concurrency: 1,
        rate: f64::INFINITY,
        burst: 1.0,
        warmup: 0,
        timeout: Duration::from_secs(100_000),
        max_retries: 0,
        backoff: Backoff { base: Duration::ZERO, cap: Duration::ZERO, max_retry_after: Duration::ZERO },
        seed: 11,
    };
    let ctx = RunContext {
        run_id: "t".into(),
        run_started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "h".into(),
        project_version: "0".into(),
        host: "host".into(),
        backend: BackendInfo { kind: "scripted".into(), base_url: None, model: "m".into(), weights: None, usage_is_engine: false },
    };
    Arc::new(Runner::new(Arc::new(backend), settings, ctx, None))
}

fn jobs(n: usize) -> Vec<Job> {
    let items = (0..n)
        .map(|i| WorkItem {
            suite: "s".into(),
            task: None,
            sample_id: i.to_string(),
            messages: vec![ChatMessage::new("user", format!("q{i}"))],
            reference: None,
        })
        .collect();
    let plan = build_plan(&[Policy::baseline()], vec![items], 0, &BTreeSet::new()).unwrap();
    make_jobs(&plan.entries, &GenerationConfig::default(), "m")
}

/// A server that takes one request at a time and serves it in an exponential time of rate `mu` (seeded).
fn exponential_server(mu: f64, seed: u64) -> ScriptedBackend {
    let rng = Mutex::new(ChaCha8Rng::seed_from_u64(seed));
    let exp = Exp::new(mu).unwrap();
    ScriptedBackend::new(move |_, _| {
        let service = exp.sample(&mut *rng.lock().unwrap());
        Reply::Stream(vec![Step::Delay(Duration::from_secs_f64(service)), Step::text("x"), Step::finish(None)])
    })
    .with_max_concurrency(1)
}

/// A server that takes one request at a time and serves each in exactly `ms` milliseconds.
fn constant_server(ms: u64) -> ScriptedBackend {
    ScriptedBackend::new(move |_, _| {
        Reply::Stream(vec![Step::Delay(Duration::from_millis(ms)), Step::text("x"), Step::finish(None)])
    })
    .with_max_concurrency(1)
}

async fn search(runner: &Arc<Runner>, config: &CapacityConfig, jobs: &[Job]) -> (SearchResult, Vec<Record>) {
    let (tx, mut rx) = mpsc::channel(1 << 16);
    let stored = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(r) = rx.recv().await {
            v.push(r);
        }
        v
    });
    let mut s = Search { runner, config, start: Instant::now(), next_phase: 0, out: tx };
    let policy = jobs[0].entry.policy.clone();
    let result = s.policy(&policy, jobs).await;
    drop(s);
    (result, stored.await.unwrap())
}

/// M/M/1: the sojourn time (queue + service, what E2E measures here) is exponential with rate mu - lambda, so
/// its p95 is ln(20) / (mu - lambda), and the highest rate with p95 <= T is lambda* = mu - ln(20) / T.
#[tokio::test(start_paused = true)]
async fn mm1_capacity_is_mu_minus_ln20_over_t() {
    let (mu, t) = (10.0, 1.0);
    let expected = mu - 20f64.ln() / t; // 7.004 requests/s
    let config = CapacityConfig {
        slo: format!("p95_e2e_s<={t}"),
        probe_requests: 4000,
        warmup_requests: 200,
        start_rate: StartRate::Fixed(1.0),
        max_probes: 14,
        tolerance: 0.01,
        arrival: Arrival::Poisson,
        ..CapacityConfig::default()
    };
    let runner = runner(exponential_server(mu, 3));
    let (result, records) = search(&runner, &config, &jobs(50)).await;
    let got = result.capacity_rps;
    assert!((got - expected).abs() / expected < 0.05, "capacity {got} vs M/M/1 {expected}: {:?}", result.probes.iter().map(|p| (p.rate, p.probe.pass)).collect::<Vec<_>>());
    let upper = result.upper_rps.unwrap();
    assert!(upper > got && (upper - got) / got <= 0.0101, "bisection stops within the tolerance: [{got}, {upper})");
    // Doubling from 1 r/s brackets the limit at [4, 8): 8 r/s is the first failing probe.
    let rates: Vec<f64> = result.probes.iter().map(|p| p.rate).collect();
    assert_eq!(&rates[..4], &[1.0, 2.0, 4.0, 8.0]);
    // Stored: the measured requests only (no warm-up), each tagged with its probe; a saturated probe stops
    // taking arrivals and records the requests it gave up as `abandoned` errors.
    for p in &result.probes {
        let n = records.iter().filter(|r| r.load.offered_rate == Some(p.rate)).count();
        if p.probe.pass {
            assert_eq!(n, 4000);
        } else {
            assert!(n <= 4000);
        }
    }
    assert!(records.iter().all(|r| r.load.is_capacity() && r.load.slo.as_deref() == Some("p95_e2e_s<=1")));
    // The stored probes give back the same capacity.
    let caps = ttc_results::capacity::capacities(&records, None);
    assert_eq!((caps[0].capacity_rps, caps[0].upper_rps), (got, Some(upper)));
}

/// Above the service rate the queue grows without bound: flagged as saturated (and cut short), never counted.
#[tokio::test(start_paused = true)]
async fn overload_is_flagged_as_saturation() {
    let config = CapacityConfig {
        slo: "p95_e2e_s<=5".into(),
        probe_requests: 200,
        warmup_requests: 10,
        start_rate: StartRate::Fixed(40.0),
        max_probes: 2,
        tolerance: 0.1,
        arrival: Arrival::Constant,
        ..CapacityConfig::default()
    };
    // Deterministic 100 ms service: mu = 10 r/s, offered 40 and 20 r/s.
    let runner = runner(constant_server(100));
    let (result, records) = search(&runner, &config, &jobs(5)).await;
    assert_eq!(result.probes.len(), 2);
    for p in &result.probes {
        assert!(!p.probe.pass);
        let why = p.probe.stats.saturation.as_deref().unwrap();
        assert!(why.contains("achieved") || why.contains("abandoned"), "{why}");
    }
    assert!(records.iter().all(|r| r.load.saturation.is_some()), "the flag is stored with the records");
    assert_eq!(result.capacity_rps, 0.0);
}

/// A server with a cache: a prompt seen before takes 0.1 s, a new one 2 s. Before its first probe the search sends
/// every distinct prompt once, unstored, so the first probe (1 r/s, 10 prompts) already meets the SLO; cold, its
/// first 10 requests would take 2 s each and fail "p95_e2e_s<=1".
#[tokio::test(start_paused = true)]
async fn every_prompt_is_sent_once_unstored_before_the_first_probe() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let backend = ScriptedBackend::new(move |req, _| {
        let prompt = req.messages[0].content.clone();
        let mut seen = log.lock().unwrap();
        let service = if seen.contains(&prompt) { 0.1 } else { 2.0 };
        seen.push(prompt);
        Reply::Stream(vec![Step::Delay(Duration::from_secs_f64(service)), Step::text("x"), Step::finish(None)])
    })
    .with_max_concurrency(1);
    let config = CapacityConfig {
        slo: "p95_e2e_s<=1".into(),
        probe_requests: 40,
        warmup_requests: 2,
        start_rate: StartRate::Fixed(1.0),
        max_probes: 1,
        tolerance: 0.25,
        arrival: Arrival::Constant,
        ..CapacityConfig::default()
    };
    let runner = runner(backend);
    let (result, records) = search(&runner, &config, &jobs(10)).await;
    let sent = seen.lock().unwrap().clone();
    let first: BTreeSet<&String> = sent[..10].iter().collect();
    assert_eq!(first.len(), 10, "the first 10 requests are the 10 distinct prompts: {sent:?}");
    assert_eq!(sent.len(), 10 + 2 + 40);
    assert_eq!(records.len(), 40, "only the probe's measured requests are stored");
    assert!(result.probes[0].probe.pass, "the first probe starts warm: {:?}", result.probes[0].probe.stats.e2e_s);
}

/// `start_rate: auto` starts at 0.7 x the one-at-a-time rate measured by the warming pass: with a constant 0.4 s
/// service, 1.75 r/s (1.7 to two digits, from 1.7499...). A one-at-a-time server passes it and fails the doubled
/// 3.4 r/s. The bisection's 2.55 r/s exceeds its 2.5 r/s of service by 2%: over the probe's 64 arrivals the queue
/// grows by about one request, which neither the SLO nor the saturation checks can see. A probe this short cannot
/// place a limit closer than that (docs/load.md), and the search reports 2.55 [2.55, 3.4).
#[tokio::test(start_paused = true)]
async fn auto_start_rate_is_0_7_of_the_measured_service_rate() {
    let config = CapacityConfig {
        slo: "p95_e2e_s<=2".into(),
        probe_requests: 60,
        warmup_requests: 4,
        start_rate: StartRate::Auto,
        max_probes: 3,
        tolerance: 0.5,
        arrival: Arrival::Constant,
        ..CapacityConfig::default()
    };
    let runner = runner(constant_server(400));
    let (result, _) = search(&runner, &config, &jobs(6)).await;
    let rates: Vec<(f64, bool)> = result.probes.iter().map(|p| (p.rate, p.probe.pass)).collect();
    let rounded: Vec<(f64, bool)> = rates.iter().map(|&(r, pass)| ((r * 1000.0).round() / 1000.0, pass)).collect();
    assert_eq!(rounded, vec![(1.7, true), (3.4, false), (2.55, true)]);
    assert_eq!(result.upper_rps, Some(3.4));
}

/// With exponential service times the warming pass's median is ln 2 / mu, so `auto` first offers 0.7 mu / ln 2
/// (about 1.01 mu, 10.1 r/s for mu = 10/s): the median underestimates a mean service time that the exponential's
/// long tail stretches, so the first probe fails and the search halves towards the M/M/1 capacity of 7 r/s.
#[tokio::test(start_paused = true)]
async fn auto_start_on_exponential_service_is_near_the_mm1_capacity() {
    let mu = 10.0;
    let config = CapacityConfig {
        slo: "p95_e2e_s<=1".into(),
        probe_requests: 20,
        warmup_requests: 1,
        start_rate: StartRate::Auto,
        max_probes: 2,
        ..CapacityConfig::default()
    };
    let runner = runner(exponential_server(mu, 3));
    let (result, _) = search(&runner, &config, &jobs(400)).await;
    let first = result.probes[0].rate;
    assert!((first - 0.7 * mu / 2f64.ln()).abs() / first < 0.1, "first probe {first}");
    assert!(!result.probes[0].probe.pass && (result.probes[1].rate - first / 2.0).abs() < 1e-9);
}

#[test]
fn measured_start_rates_are_rounded_to_two_digits() {
    assert_eq!(round_rate(1.2345), 1.2);
    assert_eq!(round_rate(0.04567), 0.046);
    assert_eq!(round_rate(12.5), 13.0);
}
