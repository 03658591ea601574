//! A fault-injection OpenAI-compatible server for tests (axum on 127.0.0.1:0). Each prompt names a sample;
//! the server plays that sample's script of faults, one per attempt, then answers normally.

#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with `retry-after-ms` (OpenAI's header).
    TooManyMs(u64),
    /// 429 with `Retry-After: <seconds>`.
    TooManySecs(u64),
    Status(u16),
    /// 200, two content chunks, then the connection is aborted mid-body.
    CutAbort,
    /// 200, two content chunks, then the body ends cleanly without finish_reason or [DONE].
    CutClean,
    /// 200, one chunk, then silence for this long.
    Stall(Duration),
    /// This status with the request's path and query as the message (servers that echo the URL).
    Echo(u16),
}

impl Fault {
    pub fn retryable(&self) -> bool {
        match self {
            Fault::Status(s) | Fault::Echo(s) => *s == 429 || *s >= 500,
            _ => true,
        }
    }
    pub fn class(&self) -> &'static str {
        match self {
            Fault::TooManyMs(_) | Fault::TooManySecs(_) => "http_429",
            Fault::Status(s) | Fault::Echo(s) if *s >= 500 => "http_5xx",
            Fault::Status(_) | Fault::Echo(_) => "http_4xx",
            Fault::CutAbort | Fault::CutClean => "stream_cut",
            Fault::Stall(_) => "timeout",
        }
    }
    /// The Retry-After the client must wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::TooManyMs(ms) => Some(Duration::from_millis(*ms)),
            Fault::TooManySecs(s) => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }
}

/// How a successful answer is streamed.
#[derive(Debug, Clone)]
pub struct Answer {
    pub words: usize,
    /// Pause before each content chunk (a slow server).
    pub gap: Duration,
}

#[derive(Default)]
pub struct ServerState {
    pub scripts: HashMap<String, Vec<Fault>>,
    pub slow: HashMap<String, Duration>,
    pub attempts: Mutex<HashMap<String, usize>>,
    /// Required `Authorization` header value, if any.
    pub api_key: Option<String>,
    /// Every Authorization header seen (to check the client sent the key).
    pub auth_seen: Mutex<Vec<String>>,
    /// Path and query of every request, including those to unknown paths (answered 404).
    pub uris_seen: Mutex<Vec<String>>,
    pub words: usize,
}

pub struct FaultServer {
    pub base_url: String,
    pub state: Arc<ServerState>,
}

impl FaultServer {
    pub async fn start(state: ServerState) -> FaultServer {
        let state = Arc::new(state);
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .fallback(not_found)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultServer { base_url: format!("http://{addr}/v1"), state }
    }

    pub fn attempts(&self, sample: &str) -> usize {
        self.state.attempts.lock().unwrap().get(sample).copied().unwrap_or(0)
    }

    pub fn total_attempts(&self) -> usize {
        self.state.attempts.lock().unwrap().values().sum()
    }
}

fn chunk(content: &str) -> Bytes {
    let v = serde_json::json!({"id": "c", "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    Bytes::from(format!("data: {v}\n\n"))
}

/// The standard answer: role-only chunk, `words` content chunks, finish, usage, [DONE].
pub fn answer_frames(words: usize, prompt_tokens: usize) -> Vec<Bytes> {
    let mut f = vec![Bytes::from_static(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    )];
    for i in 0..words {
        f.push(chunk(&format!("w{i} ")));
    }
    f.push(Bytes::from_static(b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"));
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": words, "total_tokens": prompt_tokens + words}});
    f.push(Bytes::from(format!("data: {usage}\n\n")));
    f.push(Bytes::from_static(b"data: [DONE]\n\n"));
    f
}

type Frame = (Duration, Result<Bytes, std::io::Error>);

fn sse(frames: Vec<Frame>) -> Response {
    let stream = futures_util::stream::unfold(frames.into_iter(), |mut it| async move {
        let (delay, item) = it.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((item, it))
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

fn error(status: u16, msg: &str, headers: &[(&str, String)]) -> Response {
    let mut b =
        Response::builder().status(StatusCode::from_u16(status).unwrap()).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(serde_json::json!({"error": {"message": msg, "type": "test"}}).to_string())).unwrap()
}

async fn not_found(State(st): State<Arc<ServerState>>, uri: Uri) -> Response {
    st.uris_seen.lock().unwrap().push(uri.to_string());
    error(404, &format!("no route for {uri}"), &[])
}

async fn handle(State(st): State<Arc<ServerState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    st.uris_seen.lock().unwrap().push(uri.to_string());
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(a) = &auth {
        st.auth_seen.lock().unwrap().push(a.clone());
    }
    if let Some(key) = &st.api_key {
        if auth.as_deref() != Some(&format!("Bearer {key}")) {
            return error(401, "Incorrect API key provided", &[]);
        }
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(400, "body is not JSON", &[]);
    };
    if req["stream"] != true || req["stream_options"]["include_usage"] != true {
        return error(400, "expected stream with include_usage", &[]);
    }
    let sample = req["messages"][0]["content"].as_str().unwrap_or_default().to_string();
    let attempt = {
        let mut a = st.attempts.lock().unwrap();
        let n = a.entry(sample.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let fault = st.scripts.get(&sample).and_then(|s| s.get(attempt - 1)).cloned();
    let z = Duration::ZERO;
    match fault {
        Some(Fault::TooManyMs(ms)) => error(429, "rate limited", &[("retry-after-ms", ms.to_string())]),
        Some(Fault::TooManySecs(s)) => error(429, "rate limited", &[("retry-after", s.to_string())]),
        Some(Fault::Status(s)) => error(s, &format!("injected {s}"), &[]),
        Some(Fault::Echo(s)) => error(s, &format!("injected {s} for {uri}"), &[]),
        Some(Fault::CutAbort) => sse(vec![
            (z, Ok(chunk("par"))),
            (z, Ok(chunk("tial"))),
            (Duration::from_millis(5), Err(std::io::Error::other("injected abort"))),
        ]),
        Some(Fault::CutClean) => sse(vec![(z, Ok(chunk("par"))), (z, Ok(chunk("tial")))]),
        Some(Fault::Stall(d)) => sse(vec![(z, Ok(chunk("slo"))), (d, Ok(chunk("w")))]),
        None => {
            let gap = st.slow.get(&sample).copied().unwrap_or(z);
            let frames = answer_frames(st.words, 7);
            let n = frames.len();
            sse(frames
                .into_iter()
                .enumerate()
                .map(|(i, f)| (if i > 0 && i < n - 3 { gap } else { z }, Ok(f)))
                .collect())
        }
    }
}
