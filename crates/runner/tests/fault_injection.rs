//! A 200-request run against a server that injects faults into ~30% of the requests (429 with
//! Retry-After, 500/503, 400, streams cut mid-way or ended early, stalls past the timeout, slow answers):
//! every request is accounted for, and attempts, retries and failures equal what was injected.

mod support;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use support::{Fault, FaultServer, ServerState};
use ttc_runner::backend::openai::{OpenAiBackend, OpenAiSettings};
use ttc_runner::backend::ChatMessage;
use ttc_runner::collect::Collector;
use ttc_runner::config::{Arrival, GenerationConfig, Policy};
use ttc_runner::plan::{build_plan, WorkItem};
use ttc_runner::progress::Progress;
use ttc_runner::record::RunContext;
use ttc_runner::loadgen::retry::Backoff;
use ttc_runner::loadgen::{make_jobs, Runner, RunnerSettings};
use ttc_runner::sink::MemorySink;
use ttc_runner::Backend;
use ttc_types::{Record, RecordStatus, TokenCountSource};

const MAX_RETRIES: usize = 3;
const WORDS: usize = 8;

fn scripts(n: usize, seed: u64) -> (HashMap<String, Vec<Fault>>, HashMap<String, Duration>) {
    let stall = Fault::Stall(Duration::from_secs(5));
    let templates: Vec<Vec<Fault>> = vec![
        vec![Fault::TooManyMs(50)],
        vec![Fault::TooManySecs(1)],
        vec![Fault::Status(500)],
        vec![Fault::Status(503), Fault::Status(500)],
        vec![Fault::CutAbort],
        vec![Fault::CutClean],
        vec![stall.clone()],
        vec![Fault::Status(400)],
        vec![Fault::Status(503); 4],
        vec![Fault::TooManyMs(20), Fault::CutAbort, stall],
        vec![Fault::CutClean; 5],
        vec![Fault::Status(502), Fault::Status(404)],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut faults, mut slow) = (HashMap::new(), HashMap::new());
    for i in 0..n {
        let id = format!("sample-{i}");
        if rng.random_bool(0.3) {
            faults.insert(id, templates[rng.random_range(0..templates.len())].clone());
        } else if rng.random_bool(0.1) {
            slow.insert(id, Duration::from_millis(20));
        }
    }
    (faults, slow)
}

/// (attempts, error class) the client must end with for a script.
fn expected(script: &[Fault]) -> (usize, Option<&'static str>) {
    for (i, f) in script.iter().enumerate() {
        let attempt = i + 1;
        if !f.retryable() || attempt == MAX_RETRIES + 1 {
            return (attempt, Some(f.class()));
        }
    }
    (script.len() + 1, None)
}

fn items(n: usize) -> Vec<WorkItem> {
    (0..n)
        .map(|i| WorkItem {
            suite: "faults".into(),
            task: None,
            sample_id: i.to_string(),
            messages: vec![ChatMessage::new("user", format!("sample-{i}"))],
            reference: Some("w0".into()),
        })
        .collect()
}

async fn run(server: &FaultServer, n: usize, api_key: Option<&str>) -> Vec<Record> {
    let backend = OpenAiBackend::new(OpenAiSettings {
        kind: "openai".into(),
        base_url: server.base_url.clone(),
        api_key: api_key.map(str::to_string),
        model: "test-model".into(),
        connect_timeout: Duration::from_secs(5),
        pool_size: 50,
    })
    .unwrap();
    let info = backend.info();
    let plan = build_plan(&[Policy::baseline()], vec![items(n)], 1, &BTreeSet::new()).unwrap();
    let jobs = make_jobs(&plan.entries, &GenerationConfig::default(), &info.model);
    let settings = RunnerSettings {
        arrival: Arrival::Closed,
        concurrency: 50,
        rate: f64::INFINITY,
        burst: 50.0,
        warmup: 0,
        timeout: Duration::from_millis(1500),
        max_retries: MAX_RETRIES as u32,
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        seed: 1,
    };
    let ctx = RunContext {
        run_id: "fault-test".into(),
        run_started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "x".into(),
        project_version: "0".into(),
        host: "h".into(),
        backend: info,
    };
    let runner = Arc::new(Runner::new(Arc::new(backend), settings, ctx, None));
    let sink = MemorySink::default();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let collector =
        Collector { scorer: None, fidelity: None, sink: Box::new(sink.clone()), progress: Progress::hidden(), seen: None }.spawn(rx).unwrap();
    runner.run(jobs.into(), tx).await;
    let collected = tokio::task::spawn_blocking(move || collector.join().unwrap()).await.unwrap().unwrap();
    assert_eq!(collected.tally.total, n);
    sink.records()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_with_thirty_percent_faults_are_all_accounted_for() {
    let n = 200;
    let (faults, slow) = scripts(n, 11);
    let injected = faults.len();
    assert!((45..=75).contains(&injected), "about 30% faulted: {injected}");
    let server = FaultServer::start(ServerState {
        scripts: faults.clone(),
        slow: slow.clone(),
        words: WORDS,
        ..Default::default()
    })
    .await;
    let started = std::time::Instant::now();
    let records = run(&server, n, None).await;
    let took = started.elapsed();

    assert_eq!(records.len(), n, "every request ends as exactly one record");
    let ids: BTreeSet<&str> = records.iter().map(|r| r.sample_id.as_str()).collect();
    assert_eq!(ids.len(), n);

    let (mut want_attempts, mut want_failures, mut got_failures) = (0, 0, 0);
    let mut classes: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        let prompt = format!("sample-{}", r.sample_id);
        let script = faults.get(&prompt).cloned().unwrap_or_default();
        let (attempts, class) = expected(&script);
        assert_eq!(
            (r.attempts as usize, r.error_class.as_deref()),
            (attempts, class),
            "sample {} script {script:?}: {:?}",
            r.sample_id,
            r.error_message
        );
        assert_eq!(server.attempts(&prompt), attempts, "server-side attempts of {prompt}");
        want_attempts += attempts;
        want_failures += class.is_some() as usize;
        got_failures += (r.status == RecordStatus::Error) as usize;
        if let Some(c) = class {
            *classes.entry(c).or_default() += 1;
        }
        // Retry-After is obeyed: the backoff is at least the sum of what the server asked for.
        let asked: Duration = script.iter().take(attempts - 1).filter_map(Fault::retry_after).sum();
        assert!(r.backoff_s + 1e-3 >= asked.as_secs_f64(), "sample {}: {} < {asked:?}", r.sample_id, r.backoff_s);
        if attempts == 1 {
            assert_eq!(r.backoff_s, 0.0);
        }
        match class {
            None => {
                let text: String = (0..WORDS).map(|i| format!("w{i} ")).collect();
                assert_eq!(r.prediction, text, "sample {}", r.sample_id);
                assert_eq!((r.output_tokens, r.prompt_tokens), (Some(WORDS as u32), Some(7)));
                assert_eq!(r.token_count_source, Some(TokenCountSource::Usage));
                assert_eq!(r.finish_reason.as_deref(), Some("stop"));
                assert_eq!(r.token_times_s.len(), WORDS);
                let (ttft, e2e) = (r.ttft_s.unwrap(), r.e2e_s.unwrap());
                assert!(ttft > 0.0 && e2e >= ttft);
                if slow.contains_key(&prompt) {
                    assert!(ttft >= 0.019 && e2e >= 0.159, "slow answer: ttft {ttft} e2e {e2e}");
                }
            }
            Some(c) => {
                let msg = r.error_message.as_deref().unwrap();
                if c == "http_4xx" {
                    assert!(msg.contains("injected 4"), "the server's message is kept: {msg}");
                }
            }
        }
    }
    assert_eq!(server.total_attempts(), want_attempts);
    let retries: usize = records.iter().map(|r| r.attempts as usize - 1).sum();
    assert_eq!(retries, want_attempts - n);
    assert_eq!(got_failures, want_failures);
    assert!(want_failures > 0 && retries > 0);
    eprintln!(
        "{n} requests, {injected} with faults: {retries} retries, {got_failures} failed {classes:?}, {:.2} s",
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_sent_but_never_stored() {
    let key = "sk-test-DO-NOT-LEAK-123";
    let server = FaultServer::start(ServerState { api_key: Some(key.into()), words: 3, ..Default::default() }).await;
    let records = run(&server, 3, Some(key)).await;
    assert!(records.iter().all(|r| r.status == RecordStatus::Ok));
    assert!(server.state.auth_seen.lock().unwrap().iter().all(|a| a == &format!("Bearer {key}")));
    for r in &records {
        let json = serde_json::to_string(r).unwrap();
        assert!(!json.contains(key), "the key leaked into a record");
        assert_eq!(r.base_url.as_deref(), Some(server.base_url.as_str()));
    }
    // A wrong key: 401 fails fast with the server's message, and the key is not echoed.
    let records = run(&server, 2, Some("sk-wrong-key-456")).await;
    for r in &records {
        assert_eq!((r.attempts, r.error_class.as_deref()), (1, Some("http_4xx")));
        let msg = r.error_message.as_deref().unwrap();
        assert!(msg.contains("Incorrect API key provided") && !msg.contains("sk-wrong"), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_retried_connect_error() {
    // Bind then drop a listener: the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server =
        FaultServer { base_url: format!("http://127.0.0.1:{port}/v1"), state: Arc::new(ServerState::default()) };
    let records = run(&server, 2, None).await;
    for r in &records {
        assert_eq!((r.attempts as usize, r.error_class.as_deref()), (MAX_RETRIES + 1, Some("connect")));
        assert!(r.error_message.as_deref().unwrap().contains(&format!("127.0.0.1:{port}")));
    }
}

/// Credentials in the base URL (userinfo, `?token=`) reach the server at `{path}/chat/completions?token=...`
/// and never a record: not the base URL column, not an error message, even when the server echoes the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_credentials_are_sent_but_never_stored() {
    let (user, pass, token) = ("alice-USER-SECRET", "PASS-SECRET-1", "TOKEN-SECRET-2");
    let scripts = HashMap::from([
        ("sample-1".to_string(), vec![Fault::Echo(404)]),
        ("sample-2".to_string(), vec![Fault::CutAbort; MAX_RETRIES + 1]),
    ]);
    let server = FaultServer::start(ServerState { scripts, words: 3, ..Default::default() }).await;
    let addr = server.base_url.trim_start_matches("http://").trim_end_matches("/v1").to_string();
    let secret_url = FaultServer {
        base_url: format!("http://{user}:{pass}@{addr}/v1/?token={token}&api-version=1"),
        state: server.state.clone(),
    };
    let mut records = run(&secret_url, 3, None).await;
    records.sort_by(|a, b| a.sample_id.cmp(&b.sample_id));

    let uris = server.state.uris_seen.lock().unwrap().clone();
    assert!(!uris.is_empty());
    for u in &uris {
        assert_eq!(u, &format!("/v1/chat/completions?token={token}&api-version=1"), "where the request went");
    }
    let classes: Vec<_> = records.iter().map(|r| r.error_class.as_deref()).collect();
    assert_eq!(classes, vec![None, Some("http_4xx"), Some("stream_cut")]);
    let shown = format!("http://***@{addr}/v1/?token=***&api-version=***");
    let echo = records[1].error_message.as_deref().unwrap();
    assert_eq!(
        echo,
        format!("HTTP 404 from http://***@{addr}/v1/chat/completions?token=***&api-version=***: injected 404 for /v1/chat/completions?token=***&api-version=1")
    );
    for r in &records {
        assert_eq!(r.base_url.as_deref(), Some(shown.as_str()));
        let json = serde_json::to_string(r).unwrap();
        for secret in [user, pass, token] {
            assert!(!json.contains(secret), "{secret} leaked into a record: {json}");
        }
    }

    // reqwest's own errors name the URL: a refused connection is stored without it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = FaultServer {
        base_url: format!("http://{user}:{pass}@127.0.0.1:{port}/v1?token={token}"),
        state: Arc::new(ServerState::default()),
    };
    for r in run(&closed, 1, None).await {
        let msg = r.error_message.as_deref().unwrap();
        assert_eq!(r.error_class.as_deref(), Some("connect"));
        assert!(msg.starts_with(&format!("cannot connect to http://***@127.0.0.1:{port}/v1/chat/completions?token=***: ")), "{msg}");
        for secret in [user, pass, token] {
            assert!(!msg.contains(secret), "{secret} leaked: {msg}");
        }
    }
}
