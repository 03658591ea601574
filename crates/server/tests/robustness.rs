//! `ttc serve` when things go wrong: a panicking engine job fails only its own request, a dead engine
//! thread turns `/health` to 503, a full admission queue answers 429, a client that leaves while queued
//! costs no prefill, and clients that stall in their headers or body are cut. (Own test binary, tests one
//! at a time: some assertions measure time, so nothing else may use the cores meanwhile.)

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ttc_embedded::{EmbeddedBackend, Fault};
use ttc_http::HttpOptions;
use ttc_server::{router_with_backend, RunningServer, ServerOptions};

const LONG_STORY: &str = "Write a very long and detailed story about a dragon who learns to cook.";

/// Held by every test: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serve(backend: Arc<EmbeddedBackend>, opts: ServerOptions, http: HttpOptions) -> RunningServer {
    let app = router_with_backend(backend, &policies(), opts).expect("router");
    RunningServer::start_with(app, "127.0.0.1:0", http).await.expect("start server")
}

async fn health(server: &RunningServer) -> (u16, Value) {
    let r = reqwest::get(format!("http://{}/health", server.addr)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn wait_for(server: &RunningServer, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, h) = health(server).await;
        if ok(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "waited 30 s for {what}; /health says {h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(server: &RunningServer, body: &Value) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{}/chat/completions", server.base_url)).json(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    let e = v["error"].clone();
    assert!(e["message"].is_string() && e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some(), "{body}");
    e
}

/// A streaming request that keeps the engine busy: returns once its first tokens arrived.
async fn busy_stream(server: &RunningServer) -> impl Send {
    let mut body = chat_body("smollm2-135m", LONG_STORY, 1500);
    body["stream"] = json!(true);
    let resp = reqwest::Client::new().post(format!("{}/chat/completions", server.base_url)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut bytes = Box::pin(resp.bytes_stream());
    let mut seen = String::new();
    while seen.matches("\"content\"").count() < 3 {
        seen.push_str(&String::from_utf8_lossy(&bytes.next().await.unwrap().unwrap()));
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_fails_its_request_and_the_engine_goes_on() {
    let _serial = SERIAL.lock().await;
    let backend = Arc::new(EmbeddedBackend::new(engine()));
    let server = serve(backend.clone(), ServerOptions::default(), HttpOptions::default()).await;

    backend.inject(Fault::PanicInJob);
    let (s, b) = post(&server, &chat_body("smollm2-135m", "Say hi.", 8)).await;
    let e = error_of(&b);
    assert_eq!((s, e["type"].as_str()), (500, Some("server_error")), "{b}");
    assert!(e["message"].as_str().unwrap().contains("the engine panicked: injected fault"), "{b}");

    // Streaming: the headers are out, so the failure comes in-band and the stream ends without [DONE].
    backend.inject(Fault::PanicInJob);
    let mut body = chat_body("smollm2-135m", "Say hi.", 8);
    body["stream"] = json!(true);
    let (s, text) = post(&server, &body).await;
    assert_eq!(s, 200);
    let data = sse_data(&text);
    assert_eq!(data.len(), 2, "{text}");
    assert!(error_of(&data[1])["message"].as_str().unwrap().contains("panicked"), "{text}");

    // The next request is served normally.
    let (s, b) = post(&server, &chat_body("smollm2-135m", "Say hi.", 8)).await;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert!(!v["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    let (s, h) = health(&server).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    assert_eq!((h["failed_requests"].as_u64(), h["completed_requests"].as_u64(), h["active_requests"].as_u64()), (Some(2), Some(1), Some(0)));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_engine_thread_makes_health_503() {
    let _serial = SERIAL.lock().await;
    let backend = Arc::new(EmbeddedBackend::new(engine()));
    let server = serve(backend.clone(), ServerOptions::default(), HttpOptions::default()).await;
    assert_eq!(health(&server).await.0, 200);
    backend.inject(Fault::StopWorker);
    let (s, b) = post(&server, &chat_body("smollm2-135m", "Say hi.", 8)).await;
    assert_eq!((s, error_of(&b)["type"].as_str()), (500, Some("server_error")), "{b}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (s, h) = loop {
        let (s, h) = health(&server).await;
        if s != 200 || Instant::now() > deadline {
            break (s, h);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((s, h["status"].as_str()), (503, Some("unhealthy")), "{h}");
    assert!(h["error"].as_str().unwrap().contains("engine worker thread has stopped"), "{h}");
    let (s, b) = post(&server, &chat_body("smollm2-135m", "Say hi.", 8)).await;
    assert_eq!(s, 500);
    assert!(error_of(&b)["message"].as_str().unwrap().contains("engine thread has stopped"), "{b}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    let _serial = SERIAL.lock().await;
    let backend = Arc::new(EmbeddedBackend::new(engine()));
    let opts = ServerOptions { max_queue: 1, ..ServerOptions::default() };
    let server = serve(backend, opts, HttpOptions::default()).await;
    let running = busy_stream(&server).await;
    let waiting = {
        let url = server.base_url.clone();
        tokio::spawn(async move {
            reqwest::Client::new().post(format!("{url}/chat/completions")).json(&chat_body("smollm2-135m", LONG_STORY, 1500)).send().await
        })
    };
    wait_for(&server, "the second request to queue", |h| h["active_requests"] == 2).await;

    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url))
        .json(&chat_body("smollm2-135m", "Say hi.", 8))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let b = r.text().await.unwrap();
    let e = error_of(&b);
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("requests"), Some("rate_limit_exceeded")), "{b}");
    assert!(e["message"].as_str().unwrap().contains("1 requests are already waiting"), "{b}");
    // Validation comes first: a bad request is still a 400, not a 429.
    let (s, _) = post(&server, &chat_body("gpt-4o", "hi", 4)).await;
    assert_eq!(s, 404);
    let h = health(&server).await.1;
    assert_eq!((h["rejected_requests"].as_u64(), h["max_queue"].as_u64()), (Some(1), Some(1)));

    // Both clients leave; the queue empties and new requests are admitted again.
    waiting.abort();
    drop(running);
    wait_for(&server, "the queue to empty", |h| h["active_requests"] == 0).await;
    let (s, b) = post(&server, &chat_body("smollm2-135m", "Say hi.", 8)).await;
    assert_eq!(s, 200, "{b}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_while_queued_costs_no_prefill() {
    let _serial = SERIAL.lock().await;
    // A prompt whose prefill alone takes long (thousands of tokens in one forward pass).
    let long_prompt = format!("Summarise: {}", "the quick brown fox jumps over the lazy dog. ".repeat(100));
    let p = long_prompt.clone();
    let prefill = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        reference(&p, 1, &[], &ttc_engine::Policy::baseline());
        t.elapsed()
    })
    .await
    .unwrap();
    let backend = Arc::new(EmbeddedBackend::new(engine()));
    let server = serve(backend, ServerOptions::default(), HttpOptions::default()).await;
    let t = Instant::now();
    let (s, _) = post(&server, &chat_body("smollm2-135m", "Say hi.", 4)).await;
    let solo = t.elapsed();
    assert_eq!(s, 200);
    assert!(solo * 3 < prefill, "the long prefill ({prefill:?}) must dwarf a short request ({solo:?})");

    let running = busy_stream(&server).await;
    let queued = {
        let url = server.base_url.clone();
        let body = chat_body("smollm2-135m", &long_prompt, 64);
        tokio::spawn(async move { reqwest::Client::new().post(format!("{url}/chat/completions")).json(&body).send().await })
    };
    wait_for(&server, "the long-prompt request to queue", |h| h["active_requests"] == 2).await;
    queued.abort(); // the client disconnects while its request waits
    wait_for(&server, "the queued request's disconnect to be noticed", |h| h["active_requests"] == 1).await;
    drop(running);
    wait_for(&server, "the running stream's disconnect", |h| h["active_requests"] == 0).await;

    // The engine skips the abandoned job instead of prefilling it first.
    let t = Instant::now();
    let (s, _) = post(&server, &chat_body("smollm2-135m", "Say hi.", 4)).await;
    let after = t.elapsed();
    eprintln!("prefill of the abandoned prompt {prefill:?}, short request alone {solo:?}, after the disconnects {after:?}");
    assert_eq!(s, 200);
    assert!(after < prefill / 2, "the next request took {after:?}: the abandoned prefill ({prefill:?}) ran");
    let h = health(&server).await.1;
    assert_eq!((h["cancelled_requests"].as_u64(), h["completed_requests"].as_u64()), (Some(2), Some(2)));
    server.shutdown().await.unwrap();
}

/// Reads until the server closes the connection; what arrived.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await.expect("connection left open");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_and_bodies_are_cut() {
    let _serial = SERIAL.lock().await;
    let backend = Arc::new(EmbeddedBackend::new(engine()));
    let timeout = Duration::from_millis(300);
    let opts = ServerOptions { body_timeout: timeout, ..ServerOptions::default() };
    let http = HttpOptions { header_timeout: timeout, ..HttpOptions::default() };
    let server = serve(backend, opts, http).await;

    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let t = Instant::now();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl").await.unwrap();
    let got = read_to_close(&mut s).await;
    assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!got.contains("200 OK"), "{got}");

    // Headers complete, body promised but never sent: 408 with the error JSON.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":").await.unwrap();
    let t = Instant::now();
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "the client must not reuse it: {got}");
    assert!(t.elapsed() < Duration::from_secs(3));
    let body = got.split("\r\n\r\n").nth(1).unwrap();
    assert!(error_of(body)["message"].as_str().unwrap().contains("did not arrive within 0.3 s"), "{got}");

    // A body over the 2 MB limit: 413, and the connection is closed and says so. Without `Connection: close`
    // a keep-alive client sent its next request into the closing connection.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let body = format!(r#"{{"model":"smollm2-135m","messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(3 << 20));
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    // The server reads (and drops) the rest, so the client can finish sending and read the answer.
    s.write_all(body.as_bytes()).await.expect("the server stopped reading an oversized body");
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(got.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{got}");
    error_of(got.split("\r\n\r\n").nth(1).unwrap());
    server.shutdown().await.unwrap();
}
