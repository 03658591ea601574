//! The `ttc serve` soak: many concurrent streaming clients against the real binary on 127.0.0.1, with
//! random mid-stream disconnects, random bad requests and stalled headers, for a bounded time. Shared by
//! the short CI test (`tests/serve_soak.rs`) and the full run (`examples/serve_soak.rs`).
//!
//! Checked: no panic on the server's stderr, `/health`'s `active_requests` back to 0 at the end, memory
//! bounded (peak RSS under a cap, no growth after warm-up), every response well-formed (complete SSE
//! sequences, OpenAI error JSON with the expected status for each bad request, 429 with Retry-After), and
//! the server exits 0 on SIGTERM afterwards.
#![allow(dead_code)]

use futures_util::StreamExt;
use rand::Rng;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub ttc: PathBuf,
    /// Where `ttc serve` runs (the repository root, for configs/policies.yaml).
    pub cwd: PathBuf,
    pub clients: usize,
    pub duration: Duration,
    pub max_tokens: u32,
    /// `--max-queue` of the server.
    pub max_queue: usize,
    /// Peak RSS allowed for the server.
    pub max_rss_mib: u64,
}

#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    /// Generations read to `[DONE]` (streaming) or to their JSON (non-streaming).
    pub completed: u64,
    /// Client-side disconnects mid-stream (or while queued).
    pub disconnects: u64,
    /// Generations the server counted as cancelled.
    pub server_cancelled: u64,
    pub rejected_429: u64,
    pub bad_requests: u64,
    pub stalled_headers: u64,
    /// Responses that were not what the protocol promises (each described in `problems`).
    pub malformed: u64,
    pub problems: Vec<String>,
    pub latencies_s: Vec<f64>,
    pub peak_rss_mib: f64,
    pub warm_rss_mib: f64,
    pub final_rss_mib: f64,
    pub active_at_end: u64,
    pub seconds_to_idle: f64,
    pub server_panicked: bool,
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
}

impl SoakReport {
    pub fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_s.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
    }

    pub fn summary(&self) -> String {
        format!(
            "completed {} | p50 {:.2} s p99 {:.2} s | disconnects {} (server cancelled {}) | 429 {} | bad requests {} | stalled headers {} | malformed {} | RSS warm {:.0} MiB, final {:.0} MiB, peak {:.0} MiB | active at end {} ({:.1} s to idle) | exit {:?}",
            self.completed,
            self.percentile(50.0),
            self.percentile(99.0),
            self.disconnects,
            self.server_cancelled,
            self.rejected_429,
            self.bad_requests,
            self.stalled_headers,
            self.malformed,
            self.warm_rss_mib,
            self.final_rss_mib,
            self.peak_rss_mib,
            self.active_at_end,
            self.seconds_to_idle,
            self.exit_code,
        )
    }

    /// Every check of the soak; the first failing one, described.
    pub fn check(&self, cfg: &SoakConfig) -> Result<(), String> {
        let fail = |m: String| Err(format!("{m}\n{}\nserver stderr (tail):\n{}", self.summary(), self.stderr_tail));
        if self.server_panicked {
            return fail("the server panicked".into());
        }
        if self.malformed > 0 {
            return fail(format!("{} malformed responses, e.g. {:?}", self.malformed, &self.problems[..self.problems.len().min(5)]));
        }
        if self.completed == 0 {
            return fail("no request completed".into());
        }
        if self.active_at_end != 0 {
            return fail(format!("{} requests still active after the clients stopped", self.active_at_end));
        }
        if self.peak_rss_mib > cfg.max_rss_mib as f64 {
            return fail(format!("peak RSS {:.0} MiB over the {} MiB cap", self.peak_rss_mib, cfg.max_rss_mib));
        }
        // After warm-up (model loaded, buffers grown), memory must not keep growing with the request count.
        if self.final_rss_mib > self.warm_rss_mib * 1.5 + 128.0 {
            return fail(format!("RSS grew from {:.0} MiB after warm-up to {:.0} MiB", self.warm_rss_mib, self.final_rss_mib));
        }
        if self.exit_code != Some(0) {
            return fail(format!("exit code {:?} after SIGTERM", self.exit_code));
        }
        Ok(())
    }
}

/// Starts the server, runs the clients for `cfg.duration`, stops the server with SIGTERM.
pub fn run(cfg: &SoakConfig) -> SoakReport {
    let mut server = ServerProcess::start(cfg);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tally = Arc::new(Mutex::new(SoakReport::default()));
    let pid = server.child.id();
    let rss = Arc::new(Mutex::new(Vec::<f64>::new()));
    rt.block_on(async {
        let base = format!("http://127.0.0.1:{}", server.port);
        // Idle pooled connections are dropped before the server's idle timeout (--header-timeout, 10 s)
        // closes them, as httpx (5 s) does; reusing one the server is closing that instant would fail.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let deadline = Instant::now() + cfg.duration;
        let sampler = {
            let rss = rss.clone();
            tokio::spawn(async move {
                while let Some(kib) = proc_status_kib(pid, "VmRSS") {
                    rss.lock().unwrap().push(kib as f64 / 1024.0);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        let tasks: Vec<_> = (0..cfg.clients)
            .map(|i| {
                let (client, base, tally, max_tokens) = (client.clone(), base.clone(), tally.clone(), cfg.max_tokens);
                tokio::spawn(async move { client_loop(i, client, base, deadline, max_tokens, tally).await })
            })
            .collect();
        // Clients stop starting requests at the deadline; what they have in flight may take its time.
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(cfg.duration + Duration::from_secs(600), all).await.is_err() {
            problem(&tally, "clients still running 600 s after the deadline".into());
        }
        let t = Instant::now();
        let mut active = u64::MAX;
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(h) = health(&client, &base).await {
                active = h["active_requests"].as_u64().unwrap_or(u64::MAX);
                tally.lock().unwrap().server_cancelled = h["cancelled_requests"].as_u64().unwrap_or(0);
                if active == 0 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut t_ = tally.lock().unwrap();
        t_.active_at_end = active;
        t_.seconds_to_idle = t.elapsed().as_secs_f64();
        drop(t_);
        sampler.abort();
    });
    let mut report = std::mem::take(&mut *tally.lock().unwrap());
    let samples = rss.lock().unwrap().clone();
    let warm_n = (samples.len() / 4).max(1).min(samples.len());
    report.warm_rss_mib = samples[..warm_n].iter().cloned().fold(0.0, f64::max);
    report.final_rss_mib = samples.last().copied().unwrap_or(0.0);
    report.peak_rss_mib = proc_status_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0).unwrap_or(0.0);
    report.exit_code = server.stop();
    let log = server.stderr.lock().unwrap().join("\n");
    report.server_panicked = log.contains("panicked");
    report.stderr_tail = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    report
}

fn problem(tally: &Mutex<SoakReport>, what: String) {
    let mut t = tally.lock().unwrap();
    t.malformed += 1;
    if t.problems.len() < 50 {
        t.problems.push(what);
    }
}

const PROMPTS: &[&str] = &[
    "Say hi.",
    "What is a KV cache?",
    "Name three colours.",
    "Write a haiku about the sea.",
    "Explain speculative decoding in one sentence.",
];

async fn client_loop(i: usize, client: reqwest::Client, base: String, deadline: Instant, max_tokens: u32, tally: Arc<Mutex<SoakReport>>) {
    // Each client its own seeded generator (`StdRng` is Send; the thread-local one is not).
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x50a4 + i as u64);
    let mut requests = 0u32;
    // Bounded in count as well as in time.
    while Instant::now() < deadline && requests < 100_000 {
        requests += 1;
        let roll = rng.random_range(0..100);
        let prompt = PROMPTS[rng.random_range(0..PROMPTS.len())];
        let outcome = if roll < 60 {
            streaming(&client, &base, prompt, max_tokens, None, &tally).await
        } else if roll < 75 {
            let cut_after = rng.random_range(0..6);
            streaming(&client, &base, prompt, max_tokens, Some(cut_after), &tally).await
        } else if roll < 82 {
            non_streaming(&client, &base, prompt, max_tokens, &tally).await
        } else if roll < 97 {
            // The 3 MB body (kind 4) costs both sides real CPU: one bad request in 20.
            let kind = match rng.random_range(0..20) {
                0 => 4,
                k => [0, 1, 2, 3, 5, 6][k % 6],
            };
            bad_request(&client, &base, kind, &tally).await
        } else {
            stalled_headers(&base, Duration::from_millis(rng.random_range(200..12_000)), &tally).await
        };
        if let Outcome::Busy = outcome {
            // Retry-After: 1.
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
        }
    }
}

enum Outcome {
    Done,
    Busy,
}

fn chat(prompt: &str, max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

/// A 429 must carry Retry-After and OpenAI's rate-limit error.
async fn busy(resp: reqwest::Response, tally: &Mutex<SoakReport>) -> Outcome {
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    match (retry, error_code(&body)) {
        (Some(_), Some(code)) if code == "rate_limit_exceeded" => tally.lock().unwrap().rejected_429 += 1,
        (r, _) => problem(tally, format!("429 without Retry-After or rate-limit error: retry-after {r:?}, body {body}")),
    }
    Outcome::Busy
}

/// An error with its causes (reqwest's own message hides whether the connection was reset, closed, ...).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// The `code` of an OpenAI error body whose four fields are all present, else None.
fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    let shaped = e["message"].is_string() && e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some();
    shaped.then(|| e["code"].as_str().unwrap_or("").to_string())
}

async fn streaming(client: &reqwest::Client, base: &str, prompt: &str, max_tokens: u32, cut_after: Option<usize>, tally: &Mutex<SoakReport>) -> Outcome {
    let t = Instant::now();
    let resp = match client.post(format!("{base}/v1/chat/completions")).json(&chat(prompt, max_tokens, true)).send().await {
        Ok(r) => r,
        Err(e) => {
            problem(tally, format!("streaming request failed: {}", chain(&e)));
            return Outcome::Done;
        }
    };
    match resp.status().as_u16() {
        200 => {}
        429 => return busy(resp, tally).await,
        s => {
            problem(tally, format!("streaming request: status {s}: {}", resp.text().await.unwrap_or_default()));
            return Outcome::Done;
        }
    }
    let mut bytes = resp.bytes_stream();
    let mut buf = String::new();
    let mut events: Vec<String> = Vec::new();
    loop {
        if let Some(k) = cut_after {
            if events.len() >= k {
                drop(bytes); // the client goes away mid-stream (k = 0: possibly while still queued)
                tally.lock().unwrap().disconnects += 1;
                return Outcome::Done;
            }
        }
        match bytes.next().await {
            Some(Ok(b)) => {
                buf.push_str(&String::from_utf8_lossy(&b));
                while let Some(end) = buf.find("\n\n") {
                    let ev: String = buf.drain(..end + 2).collect();
                    let data: Vec<&str> = ev.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                    if !data.is_empty() {
                        events.push(data.join("\n"));
                    }
                }
            }
            Some(Err(e)) => {
                problem(tally, format!("stream broke after {} events: {}", events.len(), chain(&e)));
                return Outcome::Done;
            }
            None => break,
        }
    }
    match check_sse(&events, max_tokens) {
        Ok(()) => {
            let mut t_ = tally.lock().unwrap();
            t_.completed += 1;
            t_.latencies_s.push(t.elapsed().as_secs_f64());
        }
        Err(e) => problem(tally, e),
    }
    Outcome::Done
}

/// Role chunk, content deltas, a finish chunk, the usage chunk, `[DONE]`; one id throughout.
fn check_sse(events: &[String], max_tokens: u32) -> Result<(), String> {
    let n = events.len();
    if n < 4 || events[n - 1] != "[DONE]" {
        return Err(format!("stream not ended by [DONE] after role, finish and usage chunks: {events:?}"));
    }
    let chunks: Vec<Value> = events[..n - 1]
        .iter()
        .map(|e| serde_json::from_str(e).map_err(|err| format!("chunk is not JSON ({err}): {e}")))
        .collect::<Result<_, _>>()?;
    let id = &chunks[0]["id"];
    if chunks.iter().any(|c| &c["id"] != id || c["object"] != "chat.completion.chunk") {
        return Err(format!("chunks disagree on id/object: {events:?}"));
    }
    if chunks[0]["choices"][0]["delta"] != json!({"role": "assistant", "content": ""}) {
        return Err(format!("first chunk is not the role chunk: {}", events[0]));
    }
    let m = chunks.len();
    let finish = &chunks[m - 2]["choices"][0]["finish_reason"];
    if finish != "stop" && finish != "length" {
        return Err(format!("no finish_reason in the last choice chunk: {}", events[m - 2]));
    }
    let usage = &chunks[m - 1]["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap_or(u64::MAX);
    if completion > max_tokens as u64 || usage["total_tokens"].as_u64() != Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + completion) {
        return Err(format!("bad usage chunk: {}", events[m - 1]));
    }
    Ok(())
}

async fn non_streaming(client: &reqwest::Client, base: &str, prompt: &str, max_tokens: u32, tally: &Mutex<SoakReport>) -> Outcome {
    let t = Instant::now();
    let resp = match client.post(format!("{base}/v1/chat/completions")).json(&chat(prompt, max_tokens, false)).send().await {
        Ok(r) => r,
        Err(e) => {
            problem(tally, format!("request failed: {}", chain(&e)));
            return Outcome::Done;
        }
    };
    let status = resp.status().as_u16();
    if status == 429 {
        return busy(resp, tally).await;
    }
    let body = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let ok = status == 200
        && v["object"] == "chat.completion"
        && v["choices"][0]["message"]["content"].is_string()
        && (v["choices"][0]["finish_reason"] == "stop" || v["choices"][0]["finish_reason"] == "length")
        && v["usage"]["completion_tokens"].as_u64().is_some_and(|c| c <= max_tokens as u64);
    if ok {
        let mut t_ = tally.lock().unwrap();
        t_.completed += 1;
        t_.latencies_s.push(t.elapsed().as_secs_f64());
    } else {
        problem(tally, format!("non-streaming: status {status}, body {body}"));
    }
    Outcome::Done
}

/// One bad request of kind `kind`; its status and error code must be the documented ones.
async fn bad_request(client: &reqwest::Client, base: &str, kind: u32, tally: &Mutex<SoakReport>) -> Outcome {
    let url = format!("{base}/v1/chat/completions");
    let post = |body: String| client.post(&url).header("content-type", "application/json").body(body);
    let (req, want_status, want_code) = match kind {
        0 => (post("{\"model\": \"smollm2-135m\", \"messages\": [".into()), 400, None),
        1 => (post(json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": u64::MAX}).to_string()), 400, Some("context_length_exceeded")),
        2 => (post(json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}).to_string()), 400, None),
        3 => (post(chat("hi", 4, false).to_string().replace("smollm2-135m", "gpt-5")), 404, Some("model_not_found")),
        // Over axum's 2 MB body limit.
        4 => (post(format!("{{\"model\":\"smollm2-135m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}", "a".repeat(3 << 20))), 413, None),
        5 => (client.get(&url), 405, Some("method_not_allowed")),
        _ => (post(json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "temperature": 7}).to_string()), 400, None),
    };
    tally.lock().unwrap().bad_requests += 1;
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            problem(tally, format!("bad request {kind}: no response: {}", chain(&e)));
            return Outcome::Done;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    match error_code(&body) {
        Some(code) if status == want_status && want_code.is_none_or(|w| w == code) => {}
        _ => problem(tally, format!("bad request {kind}: want {want_status} {want_code:?}, got {status} {body}")),
    }
    Outcome::Done
}

/// A client that sends part of its headers, waits (sometimes past the server's 10 s header timeout), and
/// leaves.
async fn stalled_headers(base: &str, hold: Duration, tally: &Mutex<SoakReport>) -> Outcome {
    let addr = base.trim_start_matches("http://");
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        let _ = s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty").await;
        tokio::time::sleep(hold).await;
        tally.lock().unwrap().stalled_headers += 1;
    }
    Outcome::Done
}

async fn health(client: &reqwest::Client, base: &str) -> Result<Value, reqwest::Error> {
    client.get(format!("{base}/health")).send().await?.json().await
}

/// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM); None once the process is gone.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct ServerProcess {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    fn start(cfg: &SoakConfig) -> ServerProcess {
        let mut child = Command::new(&cfg.ttc)
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--max-queue", &cfg.max_queue.to_string()])
            .args(["--shutdown-timeout", "60"])
            .env_remove("TTC_SERVE_API_KEY")
            .current_dir(&cfg.cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", cfg.ttc.display()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or("").parse::<u16>().unwrap_or(0));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(p) if p != 0 => p,
            _ => {
                let _ = child.kill();
                panic!("ttc serve did not start: {}", stderr.lock().unwrap().join("\n"));
            }
        };
        ServerProcess { child, port, stderr }
    }

    /// SIGTERM, then the exit code (killed after 120 s).
    fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
