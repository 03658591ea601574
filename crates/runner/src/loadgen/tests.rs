//! Runner behaviour with a scripted backend on tokio's paused clock: every duration below is exact.

use super::*;
use crate::backend::scripted::{Reply, ScriptedBackend, Step};
use crate::backend::{BackendInfo, ChatMessage};
use crate::config::{GenerationConfig, Policy};
use crate::plan::{build_plan, WorkItem};
use std::collections::BTreeSet;
use ttc_types::{RecordStatus, Usage};

fn ms(d: f64) -> u64 {
    (d * 1000.0).round() as u64
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        arrival: Arrival::Closed,
        concurrency: 4,
        rate: f64::INFINITY,
        burst: 1.0,
        warmup: 0,
        timeout: Duration::from_secs(1),
        max_retries: 3,
        backoff: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(2),
        },
        seed: 5,
    }
}

fn ctx() -> RunContext {
    RunContext {
        run_id: "t".into(),
        run_started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "h".into(),
        project_version: "0".into(),
        host: "host".into(),
        backend: BackendInfo {
            kind: "scripted".into(),
            base_url: None,
            model: "m".into(),
            weights: None,
            usage_is_engine: false,
        },
    }
}

/// n samples of suite "s", prompts "q<i>".
fn items(n: usize) -> Vec<WorkItem> {
    (0..n)
        .map(|i| WorkItem {
            suite: "s".into(),
            task: None,
            sample_id: i.to_string(),
            messages: vec![ChatMessage::new("user", format!("q{i}"))],
            reference: None,
        })
        .collect()
}

fn jobs(n: usize) -> Arc<[Job]> {
    let plan = build_plan(&[Policy::baseline()], vec![items(n)], 0, &BTreeSet::new()).unwrap();
    make_jobs(&plan.entries, &GenerationConfig::default(), "m").into()
}

/// The sample number a request is for (prompts are "q<i>").
fn sample(req: &GenRequest) -> usize {
    req.messages[0].content[1..].parse().unwrap()
}

/// A 100 ms answer of two chunks, finished with usage.
fn answer() -> Reply {
    Reply::Stream(vec![
        Step::Delay(Duration::from_millis(40)),
        Step::text("a"),
        Step::Delay(Duration::from_millis(60)),
        Step::text("b"),
        Step::finish(Some(Usage { prompt_tokens: 3, completion_tokens: 2, ..Usage::default() })),
    ])
}

async fn run_with(backend: Arc<ScriptedBackend>, s: RunnerSettings, jobs: Arc<[Job]>) -> Vec<Record> {
    let runner = Arc::new(Runner::new(backend, s, ctx(), None));
    runner.warmup(&jobs).await;
    let mut v = run_and_collect(&runner, jobs).await;
    v.sort_by_key(|r| r.sample_id.parse::<usize>().unwrap());
    v
}

/// Every record of a run, in completion order.
async fn run_and_collect(runner: &Arc<Runner>, jobs: Arc<[Job]>) -> Vec<Record> {
    let (tx, mut rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(r) = rx.recv().await {
            v.push(r);
        }
        v
    });
    runner.run(jobs, tx).await;
    collect.await.unwrap()
}

fn http(status: u16, retry_after: Option<Duration>) -> Reply {
    Reply::Fail(BackendError::Http { status, url: "u".into(), message: format!("status {status}"), retry_after })
}

#[tokio::test(start_paused = true)]
async fn closed_loop_runs_each_job_once_within_the_cap() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()));
    let recs = run_with(backend.clone(), settings(), jobs(10)).await;
    assert_eq!(recs.len(), 10);
    assert_eq!(backend.total_attempts(), 10);
    for r in &recs {
        assert_eq!((r.status, r.attempts, r.backoff_s), (RecordStatus::Ok, 1, 0.0));
        assert_eq!((ms(r.ttft_s.unwrap()), ms(r.e2e_s.unwrap())), (40, 100));
        assert_eq!(r.output_tokens, Some(2));
        assert_eq!(r.prediction, "ab");
    }
    // 10 requests of 100 ms, 4 at a time: waves start at 0, 100, 200 ms.
    let mut starts: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s)).collect();
    starts.sort();
    assert_eq!(starts, vec![0, 0, 0, 0, 100, 100, 100, 100, 200, 200]);
}

#[tokio::test(start_paused = true)]
async fn a_policy_with_its_own_concurrency_runs_alone_after_the_shared_phase() {
    let batched = Policy { name: "batched".into(), concurrency: Some(3), ..Policy::baseline() };
    let other = Policy { name: "other".into(), ..Policy::baseline() };
    let plan = build_plan(&[Policy::baseline(), batched, other], vec![items(6)], 0, &BTreeSet::new()).unwrap();
    let jobs: Arc<[Job]> = make_jobs(&plan.entries, &GenerationConfig::default(), "m").into();
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()));
    let runner = Arc::new(Runner::new(backend, RunnerSettings { concurrency: 1, ..settings() }, ctx(), None));
    let phases = runner.phases(&jobs);
    /// (the phase's own policy and suite, its concurrency, its job count)
    type Shape = (Option<(String, String)>, usize, usize);
    let shape: Vec<Shape> = phases.iter().map(|p| (p.policy.clone(), p.concurrency, p.jobs.len())).collect();
    assert_eq!(shape, vec![(None, 1, 12), (Some(("batched".into(), "s".into())), 3, 6)]);
    let recs = run_and_collect(&runner, jobs).await;
    let starts = |policy: &str| {
        let mut v: Vec<u64> = recs.iter().filter(|r| r.policy == policy).map(|r| ms(r.start_offset_s)).collect();
        v.sort();
        v
    };
    // Shared phase: baseline and other interleaved, one request at a time over 0..1200 ms.
    let mut shared = starts("baseline");
    shared.extend(starts("other"));
    shared.sort();
    assert_eq!(shared, (0..12).map(|i| i * 100).collect::<Vec<_>>());
    // Then `batched` alone, three at a time.
    assert_eq!(starts("batched"), vec![1200, 1200, 1200, 1300, 1300, 1300]);
}

#[tokio::test(start_paused = true)]
async fn backend_concurrency_limit_caps_the_runner() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()).with_max_concurrency(1));
    let recs = run_with(backend, settings(), jobs(3)).await;
    let mut starts: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s)).collect();
    starts.sort();
    assert_eq!(starts, vec![0, 100, 200], "one at a time although concurrency is 4");
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_rules() {
    // Sample 0: 429 with Retry-After 0.7 s, then ok. 1: 500, 503, ok. 2: 400 (fails fast). 3: always 503.
    // 4: cut stream, then ok. 5: stall past the timeout, then ok. 6: Retry-After longer than the cap.
    let backend = Arc::new(ScriptedBackend::new(|req, attempt| match (sample(req), attempt) {
        (0, 1) => http(429, Some(Duration::from_millis(700))),
        (1, 1) => http(500, None),
        (1, 2) => http(503, None),
        (2, _) => http(400, None),
        (3, _) => http(503, None),
        (4, 1) => Reply::Stream(vec![Step::text("partial")]),
        (5, 1) => Reply::Stream(vec![Step::text("x"), Step::Delay(Duration::from_secs(30))]),
        (6, 1) => http(429, Some(Duration::from_secs(100))),
        _ => answer(),
    }));
    let recs = run_with(backend.clone(), settings(), jobs(7)).await;
    let summary: Vec<(u32, Option<&str>)> = recs.iter().map(|r| (r.attempts, r.error_class.as_deref())).collect();
    assert_eq!(
        summary,
        vec![(2, None), (3, None), (1, Some("http_4xx")), (4, Some("http_5xx")), (2, None), (2, None), (2, None)]
    );
    assert_eq!(backend.total_attempts(), 2 + 3 + 1 + 4 + 2 + 2 + 2);
    // Retry-After is obeyed exactly, and capped at max_retry_after (2 s).
    assert_eq!(ms(recs[0].backoff_s), 700);
    assert_eq!(ms(recs[6].backoff_s), 2000);
    // Full jitter: retry k waits less than min(cap, base * 2^(k-1)).
    assert!(recs[1].backoff_s < 0.1 + 0.2, "{}", recs[1].backoff_s);
    assert!(recs[3].backoff_s < 0.1 + 0.2 + 0.4, "{}", recs[3].backoff_s);
    // The final attempt's timings are apart from the backoff.
    assert_eq!((ms(recs[0].ttft_s.unwrap()), ms(recs[0].e2e_s.unwrap())), (40, 100));
    assert!(recs[2].error_message.as_deref().unwrap().contains("status 400"));
    assert_eq!(recs[3].status, RecordStatus::Error);
    // The timed-out first attempt of sample 5 is not what the record reports.
    assert_eq!(recs[5].prediction, "ab");
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_cuts_become_error_records_when_retries_run_out() {
    let backend = Arc::new(ScriptedBackend::new(|req, _| match sample(req) {
        0 => Reply::Stream(vec![Step::text("x"), Step::Delay(Duration::from_secs(30))]),
        _ => Reply::Stream(vec![Step::text("y")]),
    }));
    let s = RunnerSettings { max_retries: 1, ..settings() };
    let recs = run_with(backend, s, jobs(2)).await;
    assert_eq!((recs[0].attempts, recs[0].error_class.as_deref()), (2, Some("timeout")));
    assert_eq!(recs[0].prediction, "x", "the partial output of the final attempt is kept");
    assert_eq!((recs[1].attempts, recs[1].error_class.as_deref()), (2, Some("stream_cut")));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_paces_sends() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| Reply::Stream(vec![Step::text("a"), Step::finish(None)])));
    let s = RunnerSettings { rate: 10.0, burst: 2.0, concurrency: 50, ..settings() };
    let recs = run_with(backend, s, jobs(6)).await;
    let mut starts: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s)).collect();
    starts.sort();
    assert_eq!(starts, vec![0, 0, 100, 200, 300, 400]);
}

#[tokio::test(start_paused = true)]
async fn open_loop_sends_on_schedule() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()));
    let s = RunnerSettings { arrival: Arrival::Constant, rate: 20.0, concurrency: 100, burst: 100.0, ..settings() };
    let recs = run_with(backend.clone(), s, jobs(5)).await;
    let mut starts: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s)).collect();
    starts.sort();
    assert_eq!(starts, vec![0, 50, 100, 150, 200], "open loop does not wait for answers");

    let s = RunnerSettings { arrival: Arrival::Poisson, rate: 5.0, concurrency: 100, burst: 100.0, ..settings() };
    let recs = run_with(backend, s.clone(), jobs(8)).await;
    let expected = arrival::offsets(Arrival::Poisson, 5.0, 8, s.seed).unwrap();
    let mut got: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s)).collect();
    got.sort();
    let want: Vec<u64> = expected.iter().map(|d| ms(d.as_secs_f64())).collect();
    // tokio's timer wheel has 1 ms resolution.
    assert!(got.iter().zip(&want).all(|(g, w)| g.abs_diff(*w) <= 1), "{got:?} vs {want:?}");
}

#[tokio::test(start_paused = true)]
async fn open_loop_respects_the_concurrency_cap() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()));
    let s = RunnerSettings { arrival: Arrival::Constant, rate: 1000.0, concurrency: 2, burst: 100.0, ..settings() };
    let mut recs = run_with(backend, s, jobs(6)).await;
    recs.sort_by(|a, b| a.start_offset_s.total_cmp(&b.start_offset_s));
    // Arrivals every 1 ms, but only 2 in flight: later ones wait for a slot, first come first served, and their
    // timings start at the arrival (records keep the arrival as `start_offset_s`, the wait as `queue_s`).
    let arrivals: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s)).collect();
    assert_eq!(arrivals, vec![0, 1, 2, 3, 4, 5]);
    let sends: Vec<u64> = recs.iter().map(|r| ms(r.start_offset_s + r.load.queue_s.unwrap())).collect();
    assert_eq!(sends, vec![0, 1, 100, 101, 200, 201]);
    let e2e: Vec<u64> = recs.iter().map(|r| ms(r.e2e_s.unwrap())).collect();
    assert_eq!(e2e, vec![100, 100, 198, 198, 296, 296], "E2E includes the queue");
}

#[tokio::test(start_paused = true)]
async fn warmup_requests_are_sent_but_not_recorded() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()));
    let s = RunnerSettings { warmup: 3, ..settings() };
    let recs = run_with(backend.clone(), s, jobs(2)).await;
    assert_eq!(recs.len(), 2);
    assert_eq!(backend.total_attempts(), 5);
    assert!(recs.iter().all(|r| r.start_offset_s < 0.001), "the run clock starts after the warm-up");
}

#[tokio::test(start_paused = true)]
async fn stop_flag_ends_dispatch() {
    let backend = Arc::new(ScriptedBackend::new(|_, _| answer()));
    let s = RunnerSettings { concurrency: 1, ..settings() };
    let runner = Arc::new(Runner::new(backend, s, ctx(), None));
    let stop = runner.stop_flag();
    let (tx, mut rx) = mpsc::channel(16);
    let r2 = runner.clone();
    let handle = tokio::spawn(async move { r2.run(jobs(100), tx).await });
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.store(true, Ordering::Relaxed);
    handle.await.unwrap();
    let mut n = 0;
    while rx.recv().await.is_some() {
        n += 1;
    }
    assert_eq!(n, 3, "requests at 0, 100, 200 ms; the one in flight at the stop finishes");
}

#[test]
fn jobs_take_policy_overrides() {
    let mut p = Policy::baseline();
    p.remote = Some(crate::config::RemoteParams {
        model: Some("m:fast".into()),
        temperature: Some(0.5),
        max_tokens: Some(9),
        extra_body: [("top_k".to_string(), serde_json::json!(3))].into_iter().collect(),
        ..Default::default()
    });
    let item = WorkItem { suite: "s".into(), task: None, sample_id: "0".into(), messages: vec![], reference: None };
    let plan = build_plan(
        &[p, Policy::baseline()].map(|mut x| {
            if x.remote.is_none() {
                x.name = "b".into()
            }
            x
        }),
        vec![vec![item]],
        0,
        &BTreeSet::new(),
    )
    .unwrap();
    let jobs = make_jobs(&plan.entries, &GenerationConfig::default(), "default-model");
    let by = |name: &str| jobs.iter().find(|j| j.entry.policy.name == name).unwrap().request.clone();
    let fast = by("baseline");
    assert_eq!((fast.model.as_str(), fast.temperature, fast.max_tokens), ("m:fast", 0.5, 9));
    assert_eq!(fast.extra_body["top_k"], serde_json::json!(3));
    let plain = by("b");
    assert_eq!((plain.model.as_str(), plain.temperature, plain.max_tokens), ("default-model", 0.0, 256));

    // A suite's own max_tokens replaces the run's, but not a policy's remote.max_tokens; other suites keep theirs.
    let mut jobs = jobs;
    let own = crate::config::SuiteConfig { max_tokens: Some(crate::config::file::NonZero(128)), ..crate::config::SuiteConfig::named("s", 1) };
    let other = crate::config::SuiteConfig { max_tokens: Some(crate::config::file::NonZero(7)), ..crate::config::SuiteConfig::named("t", 1) };
    apply_suite_max_tokens(&mut jobs, &[other, own]);
    let by = |name: &str| jobs.iter().find(|j| j.entry.policy.name == name).unwrap().request.max_tokens;
    assert_eq!((by("baseline"), by("b")), (9, 128));
}
