//! Runner overhead benchmark: the full client path (runner, rate limiter, OpenAI backend over HTTP, SSE
//! parser, record building, collector) against a local server that streams instantly, in one process.
//!
//! Reports requests/s (short answers), streamed chunks/s (long answers), and how far the client's TTFT
//! clock is from the server's own send time of the first content chunk (p50/p99), measured on the same
//! monotonic clock since both live in this process.
//!
//!   cargo run --release -p ttc-runner --example overhead -- [--requests N] [--concurrency C]
//!
//! Not a timed test: numbers depend on the machine. Results go to docs/runner.md.

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
use ttc_types::timing::percentile_sorted;
use ttc_types::RecordStatus;

/// The scenario sizes; each can be set as `--name value` (e.g. `--requests 5000`).
struct Args {
    /// Requests in the requests/s scenario (4 content chunks each).
    requests: usize,
    /// Requests in the chunks/s scenario.
    long_requests: usize,
    /// Content chunks per answer in the chunks/s scenario.
    chunks: usize,
    concurrency: usize,
    /// Requests in the TTFT-accuracy scenario (open loop, moderate load).
    ttft_requests: usize,
    /// Arrival rate of the TTFT-accuracy scenario.
    ttft_rate: f64,
    /// Tokio worker threads of the client runtime.
    client_threads: usize,
    /// Tokio worker threads of the in-process server.
    server_threads: usize,
}

impl Args {
    /// The defaults, then each `--name value` pair of the command line (ttc-runner has no argument parser).
    fn parse() -> Args {
        let mut a = Args {
            requests: 20_000,
            long_requests: 2_000,
            chunks: 256,
            concurrency: 64,
            ttft_requests: 2_000,
            ttft_rate: 500.0,
            client_threads: 1,
            server_threads: 1,
        };
        let argv: Vec<String> = std::env::args().skip(1).collect();
        for pair in argv.chunks(2) {
            let [flag, value] = pair else { usage(&format!("{} needs a value", pair[0])) };
            let n = || value.parse::<usize>().unwrap_or_else(|_| usage(&format!("{flag} {value}: expected a whole number")));
            match flag.as_str() {
                "--requests" => a.requests = n(),
                "--long-requests" => a.long_requests = n(),
                "--chunks" => a.chunks = n(),
                "--concurrency" => a.concurrency = n(),
                "--ttft-requests" => a.ttft_requests = n(),
                "--ttft-rate" => a.ttft_rate = value.parse().unwrap_or_else(|_| usage(&format!("{flag} {value}: expected a number"))),
                "--client-threads" => a.client_threads = n(),
                "--server-threads" => a.server_threads = n(),
                _ => usage(&format!("unknown flag {flag}")),
            }
        }
        a
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "error: {problem}\nflags: --requests --long-requests --chunks --concurrency --ttft-requests --ttft-rate \
         --client-threads --server-threads (each with a value)"
    );
    std::process::exit(2)
}

struct ServerState {
    chunks: usize,
    /// Server send time of each request's first content chunk, by prompt.
    first_sent: Mutex<HashMap<String, Instant>>,
    content: Vec<Bytes>,
    /// Client addresses seen: how many connections the client opened (pooling check).
    peers: Mutex<std::collections::HashSet<std::net::SocketAddr>>,
}

#[derive(serde::Deserialize)]
struct Req {
    messages: Vec<Msg>,
}
#[derive(serde::Deserialize)]
struct Msg {
    content: String,
}

async fn handle(
    State(st): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Bytes,
) -> Response {
    st.peers.lock().unwrap().insert(peer);
    let key = serde_json::from_slice::<Req>(&body)
        .ok()
        .and_then(|r| r.messages.into_iter().next())
        .map(|m| m.content)
        .unwrap_or_default();
    let n = st.chunks;
    let frames = n + 4;
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let st = st.clone();
        let key = key.clone();
        async move {
            if i == frames {
                return None;
            }
            let b = match i {
                0 => Bytes::from_static(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"),
                i if i <= n => {
                    if i == 1 {
                        st.first_sent.lock().unwrap().insert(key, Instant::now());
                    }
                    st.content[(i - 1) % st.content.len()].clone()
                }
                i if i == n + 1 => Bytes::from_static(b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
                i if i == n + 2 => Bytes::from(format!(
                    "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
                    n + 5
                )),
                _ => Bytes::from_static(b"data: [DONE]\n\n"),
            };
            Some((Ok::<_, std::io::Error>(b), i + 1))
        }
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

fn start_server(chunks: usize, threads: usize) -> (String, Arc<ServerState>) {
    let content = (0..16)
        .map(|i| Bytes::from(format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok{i}\"}},\"finish_reason\":null}}]}}\n\n")))
        .collect();
    let state =
        Arc::new(ServerState { chunks, first_sent: Mutex::new(HashMap::new()), content, peers: Mutex::default() });
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route("/v1/chat/completions", post(handle)).with_state(st);
            axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/v1"), state)
}

struct Outcome {
    requests: usize,
    errors: usize,
    chunks: usize,
    wall: Duration,
    connections: usize,
    /// Client first-chunk receive time minus server first-chunk send time, seconds, sorted.
    ttft_skew: Vec<f64>,
}

fn scenario(a: &Args, n: usize, chunks: usize, arrival: Arrival, rate: f64, concurrency: usize) -> Outcome {
    let (url, server) = start_server(chunks, a.server_threads);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(a.client_threads).enable_all().build().unwrap();
    rt.block_on(async {
        let backend = OpenAiBackend::new(OpenAiSettings {
            kind: "openai".into(),
            base_url: url,
            api_key: None,
            model: "bench".into(),
            connect_timeout: Duration::from_secs(5),
            pool_size: concurrency,
        })
        .unwrap();
        let info = backend.info();
        let items: Vec<WorkItem> = (0..n)
            .map(|i| WorkItem {
                suite: "bench".into(),
                task: None,
                sample_id: i.to_string(),
                messages: vec![ChatMessage::new("user", format!("bench-{i}"))],
                reference: None,
            })
            .collect();
        let plan = build_plan(&[Policy::baseline()], vec![items], 0, &BTreeSet::new()).unwrap();
        let jobs = make_jobs(&plan.entries, &GenerationConfig::default(), "bench");
        let settings = RunnerSettings {
            arrival,
            concurrency,
            rate,
            burst: concurrency as f64,
            warmup: concurrency,
            timeout: Duration::from_secs(30),
            max_retries: 0,
            backoff: Backoff { base: Duration::ZERO, cap: Duration::ZERO, max_retry_after: Duration::ZERO },
            seed: 0,
        };
        let ctx = RunContext {
            run_id: "bench".into(),
            run_started_at: String::new(),
            config_hash: String::new(),
            project_version: String::new(),
            host: String::new(),
            backend: info,
        };
        let runner = Arc::new(Runner::new(Arc::new(backend), settings, ctx, None));
        runner.warmup(&jobs).await;
        let sink = MemorySink::default();
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let collector =
            Collector { scorer: None, fidelity: None, sink: Box::new(sink.clone()), progress: Progress::hidden(), seen: None }.spawn(rx).unwrap();
        let timing = runner.run(jobs.into(), tx).await;
        tokio::task::spawn_blocking(move || collector.join().unwrap().unwrap()).await.unwrap();
        let records = sink.records();
        let sent = server.first_sent.lock().unwrap();
        let mut skew: Vec<f64> = records
            .iter()
            .filter_map(|r| {
                let server_t = *sent.get(&format!("bench-{}", r.sample_id))?;
                let client_t = timing.started + Duration::from_secs_f64(r.start_offset_s + r.ttft_s?);
                Some(if client_t >= server_t {
                    (client_t - server_t).as_secs_f64()
                } else {
                    -(server_t - client_t).as_secs_f64()
                })
            })
            .collect();
        skew.sort_by(|x, y| x.total_cmp(y));
        Outcome {
            requests: records.len(),
            errors: records.iter().filter(|r| r.status != RecordStatus::Ok).count(),
            chunks: records.iter().map(|r| r.token_times_s.len()).sum(),
            wall: timing.wall,
            connections: server.peers.lock().unwrap().len(),
            ttft_skew: skew,
        }
    })
}

fn report(name: &str, o: &Outcome) {
    let w = o.wall.as_secs_f64();
    let p = |q| percentile_sorted(&o.ttft_skew, q).map_or(f64::NAN, |x| x * 1000.0);
    println!(
        "{name:<10} {:>7} req ({} errors) in {w:>6.2} s: {:>8.0} req/s, {:>9.0} chunks/s, client TTFT - server send: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {} connections",
        o.requests,
        o.errors,
        o.requests as f64 / w,
        o.chunks as f64 / w,
        p(50.0),
        p(99.0),
        p(100.0),
        o.connections,
    );
}

fn main() {
    let a = Args::parse();
    println!(
        "runner overhead, {} client / {} server tokio threads, concurrency {}",
        a.client_threads, a.server_threads, a.concurrency
    );
    let short = scenario(&a, a.requests, 4, Arrival::Closed, f64::INFINITY, a.concurrency);
    report("short", &short);
    let long = scenario(&a, a.long_requests, a.chunks, Arrival::Closed, f64::INFINITY, a.concurrency);
    report("long", &long);
    let ttft = scenario(&a, a.ttft_requests, 16, Arrival::Poisson, a.ttft_rate, a.concurrency);
    report("ttft", &ttft);
}
