//! The HTTP surface: routes, API-key check, and the chat completion handler in its two response forms
//! (one JSON completion, or Server-Sent Events in the OpenAI chunk format). Every request of every client is
//! queued to one engine through the embedded backend's worker.

use crate::error::ApiError;
use crate::generation::{ActiveGuard, Generation, Step};
use crate::models::Catalog;
use crate::request::{self, Prepared};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use ttc_bench::backend::Backend;
use ttc_embedded::EmbeddedBackend;
use ttc_engine::{Engine, Policy};

/// Server settings besides the engine and its policies.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The base model id; policies are served as `<id>:<policy>`.
    pub model_id: String,
    /// Clients must send `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// `max_tokens` for requests that set none.
    pub default_max_tokens: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { model_id: crate::DEFAULT_MODEL_ID.into(), api_key: None, default_max_tokens: 256 }
    }
}

pub struct AppState {
    engine: Arc<Engine>,
    backend: EmbeddedBackend,
    catalog: Catalog,
    opts: ServerOptions,
    active: Arc<AtomicUsize>,
    completed: AtomicU64,
    started: u64,
}

/// The application: build it once per engine and serve it with `axum::serve`.
pub fn router(engine: Arc<Engine>, policies: &[Policy], opts: ServerOptions) -> anyhow::Result<Router> {
    let catalog = Catalog::new(&opts.model_id, policies)?;
    let state = Arc::new(AppState {
        backend: EmbeddedBackend::new(engine.clone()),
        engine,
        catalog,
        opts,
        active: Arc::new(AtomicUsize::new(0)),
        completed: AtomicU64::new(0),
        started: unix_now(),
    });
    let v1 = Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/models", get(list_models))
        .route("/models/{id}", get(get_model))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Ok(Router::new()
        .route("/health", get(health))
        .nest("/v1", v1)
        .fallback(|uri: Uri| async move { ApiError::not_found(uri.path()) })
        .with_state(state))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn require_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = state.opts.api_key.as_deref() {
        let sent = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match sent.and_then(|v| v.strip_prefix("Bearer ")) {
            None => return ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`").into_response(),
            Some(k) if !constant_time_eq(k.trim().as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("incorrect API key").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so response time does not tell how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "model": state.engine.model_name,
        "weights": state.engine.model.format.label(),
        "active_requests": state.active.load(Ordering::SeqCst),
        "completed_requests": state.completed.load(Ordering::SeqCst),
    }))
}

fn model_object(state: &AppState, m: &crate::models::ServedModel) -> Value {
    json!({
        "id": m.id,
        "object": "model",
        "created": state.started,
        "owned_by": "ttcbench",
        "policy": m.policy.name,
        "algorithm": m.policy.algorithm_name(),
        "description": m.policy.description,
    })
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state.catalog.models().iter().map(|m| model_object(&state, m)).collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn get_model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let m = state.catalog.get(&id).ok_or_else(|| ApiError::unknown_model(&id, &state.catalog.ids()))?;
    Ok(Json(model_object(&state, m)))
}

async fn chat_completions(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    match start(&state, body).await {
        Ok((prepared, generation)) if prepared.stream => stream_response(state, prepared, generation).into_response(),
        Ok((prepared, generation)) => match complete(&state, &prepared, generation).await {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Validates the request and queues it to the engine.
async fn start(state: &Arc<AppState>, body: Result<Bytes, BytesRejection>) -> Result<(Prepared, Generation), ApiError> {
    let body = body.map_err(|r| {
        let mut e = ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()), None);
        e.status = r.status();
        e
    })?;
    let parsed = request::parse(&body)?;
    let prepared = request::prepare(parsed, &state.catalog, &state.engine, state.opts.default_max_tokens)?;
    let active = ActiveGuard::new(state.active.clone());
    let gen = state.backend.generate(&prepared.request).await.map_err(|e| ApiError::from_backend(&e))?;
    Ok((prepared.clone(), Generation::new(gen.events, prepared.stops, active)))
}

fn completion_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

fn usage_json(prompt: u32, completion: u32) -> Value {
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

/// `stream: false`: one `chat.completion` object.
async fn complete(state: &AppState, p: &Prepared, mut gen: Generation) -> Result<Value, ApiError> {
    let mut text = String::new();
    while let Some(step) = gen.next().await {
        match step {
            Step::Text(t) => text.push_str(&t),
            Step::Failed(e) => return Err(e),
            Step::Done { reason, completion_tokens } => {
                state.completed.fetch_add(1, Ordering::SeqCst);
                return Ok(json!({
                    "id": completion_id(),
                    "object": "chat.completion",
                    "created": unix_now(),
                    "model": p.request.model,
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": text },
                        "logprobs": null,
                        "finish_reason": reason,
                    }],
                    "usage": usage_json(p.prompt_tokens, completion_tokens),
                }));
            }
        }
    }
    Err(ApiError::server("the generation ended without a result"))
}

/// Builds the chunks of one streamed completion (OpenAI's `chat.completion.chunk` format).
struct Chunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
        });
        if self.include_usage {
            // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
            v["usage"] = Value::Null;
        }
        Event::default().data(v.to_string())
    }

    fn usage(&self, prompt: u32, completion: u32) -> Event {
        let v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(prompt, completion),
        });
        Event::default().data(v.to_string())
    }
}

enum Phase {
    Role,
    Body,
    Over,
}

struct StreamState {
    state: Arc<AppState>,
    gen: Generation,
    chunks: Chunks,
    prompt_tokens: u32,
    phase: Phase,
    tail: std::collections::VecDeque<Event>,
}

impl StreamState {
    async fn next(&mut self) -> Option<Event> {
        if let Some(ev) = self.tail.pop_front() {
            return Some(ev);
        }
        match self.phase {
            Phase::Role => {
                self.phase = Phase::Body;
                Some(self.chunks.chunk(json!({ "role": "assistant", "content": "" }), None))
            }
            Phase::Over => None,
            Phase::Body => match self.gen.next().await {
                Some(Step::Text(t)) => Some(self.chunks.chunk(json!({ "content": t }), None)),
                Some(Step::Done { reason, completion_tokens }) => {
                    self.phase = Phase::Over;
                    self.state.completed.fetch_add(1, Ordering::SeqCst);
                    if self.chunks.include_usage {
                        self.tail.push_back(self.chunks.usage(self.prompt_tokens, completion_tokens));
                    }
                    self.tail.push_back(Event::default().data("[DONE]"));
                    Some(self.chunks.chunk(json!({}), Some(reason)))
                }
                Some(Step::Failed(e)) => {
                    // Headers are sent: report in-band, as OpenAI does, and end without [DONE].
                    self.phase = Phase::Over;
                    Some(Event::default().data(e.body().to_string()))
                }
                None => None,
            },
        }
    }
}

/// `stream: true`: role chunk, content deltas, finish chunk, optional usage chunk, `[DONE]`. When the client
/// goes away axum drops this stream, which drops the generation and cancels it in the engine.
fn stream_response(state: Arc<AppState>, p: Prepared, gen: Generation) -> impl IntoResponse {
    let chunks = Chunks { id: completion_id(), created: unix_now(), model: p.request.model.clone(), include_usage: p.include_usage };
    let s = StreamState { state, gen, chunks, prompt_tokens: p.prompt_tokens, phase: Phase::Role, tail: Default::default() };
    let events = futures_util::stream::unfold(s, |mut s| async move { s.next().await.map(|ev| (Ok::<_, Infallible>(ev), s)) });
    // Keep-alive comments hold idle connections open while a request waits in the engine's queue.
    (StatusCode::OK, Sse::new(events).keep_alive(KeepAlive::default()))
}
