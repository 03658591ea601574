//! The HTTP surface: routes, API-key check, and the chat completion handler in its two response forms
//! (one JSON completion, or Server-Sent Events in the OpenAI chunk format). Every request of every client is
//! queued to one engine through the embedded backend's worker.

use crate::error::ApiError;
use crate::generation::{ActiveGuard, Counters, Generation, Step};
use crate::models::Catalog;
use crate::served::Endpoint;
use crate::request::{self, Prepared};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ttc_contract::Backend;
use ttc_embedded::EmbeddedBackend;
use ttc_engine::{Engine, Policy};
use ttc_types::TokenLogprob;

/// Server settings besides the engine and its policies.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The base model id; policies are served as `<id>:<policy>`.
    pub model_id: String,
    /// Clients must send `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// `max_tokens` for requests that set none.
    pub default_max_tokens: u64,
    /// Requests that may wait for the engine while one generates; one more is answered 429.
    pub max_queue: usize,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// Live A/B test: requests to the base model id are assigned an arm (`crate::ab`).
    pub ab: Option<Arc<crate::ab::Assigner>>,
    /// The request header whose value makes an A/B assignment sticky.
    pub ab_key_header: String,
    /// Where every served request's record goes (`crate::served`), if anywhere.
    pub recorder: Option<Arc<crate::served::ServedRecorder>>,
}

pub const DEFAULT_MAX_QUEUE: usize = 64;

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            model_id: crate::DEFAULT_MODEL_ID.into(),
            api_key: None,
            default_max_tokens: 256,
            max_queue: DEFAULT_MAX_QUEUE,
            body_timeout: ttc_http::DEFAULT_HEADER_TIMEOUT,
            ab: None,
            ab_key_header: crate::ab::DEFAULT_KEY_HEADER.into(),
            recorder: None,
        }
    }
}

/// An API key that no client could send is refused: empty (every request would get 401 with no hint why),
/// or with whitespace around it (HTTP strips it from the header).
pub fn check_api_key(key: Option<&str>) -> Result<(), String> {
    match key {
        Some(k) if k.trim().is_empty() => Err("the API key is empty (--api-key \"\" or TTC_SERVE_API_KEY set to nothing): \
             pass a key, or unset it to serve without one"
            .into()),
        Some(k) if k.trim() != k => Err("the API key starts or ends with whitespace, which HTTP clients cannot send: \
             remove it from --api-key / TTC_SERVE_API_KEY"
            .into()),
        _ => Ok(()),
    }
}

pub struct AppState {
    engine: Arc<Engine>,
    backend: Arc<EmbeddedBackend>,
    catalog: Catalog,
    opts: ServerOptions,
    counters: Arc<Counters>,
    started: u64,
    /// Load and mode of every adaptive policy (`algorithm: adaptive`), switched at admission.
    adaptive: ttc_contract::adaptive::Adaptive,
}

impl AppState {
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
    pub(crate) fn backend(&self) -> &EmbeddedBackend {
        &self.backend
    }
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }
    pub(crate) fn max_queue(&self) -> usize {
        self.opts.max_queue
    }
    /// Generations admitted at once: one generating plus `max_queue` waiting.
    pub(crate) fn queue_limit(&self) -> usize {
        self.opts.max_queue.saturating_add(1)
    }
    pub(crate) fn recorder(&self) -> Option<&Arc<crate::served::ServedRecorder>> {
        self.opts.recorder.as_ref()
    }

    /// The policy a request for `model` runs. Under an A/B test the base model's requests are assigned an arm
    /// (by `ab_key`, the key header's value); `<model>:<policy>` runs that policy. None: no such model here.
    pub(crate) fn target(&self, model: &str, ab_key: Option<&[u8]>) -> Option<Target> {
        if let Some(ab) = self.opts.ab.as_ref().filter(|_| model == self.opts.model_id) {
            return Some(Target { policy: ab.assign(ab_key).0, model: model.to_string() });
        }
        self.catalog.get(model).map(|m| Target { policy: m.policy.clone(), model: m.id.clone() })
    }

    /// The target of a body that did not parse as a request: by its `model` field, if it has a readable one
    /// (a request with a bad field still counts against the arm it would have run).
    pub(crate) fn target_of_body(&self, body: &[u8], ab_key: Option<&[u8]>) -> Option<Target> {
        #[derive(serde::Deserialize)]
        struct ModelOnly {
            model: String,
        }
        let m: ModelOnly = serde_json::from_slice(body).ok()?;
        self.target(&m.model, ab_key)
    }

    /// The sticky key of a request, when an A/B test is on.
    fn ab_key(&self, req: &Request) -> Option<Vec<u8>> {
        self.opts.ab.as_ref()?;
        req.headers().get(self.opts.ab_key_header.as_str()).map(|v| v.as_bytes().to_vec())
    }

    /// Under an A/B test a response names the policy that served it (or would have, for a refusal).
    fn name_arm(&self, response: &mut Response, target: Option<&Target>) {
        let Some(t) = target.filter(|_| self.opts.ab.is_some()) else { return };
        if let Ok(v) = header::HeaderValue::from_str(&t.policy.name) {
            response.headers_mut().insert(crate::ab::ARM_HEADER, v);
        }
    }

    /// The response to a refused request; records it unless a generation's record already tells of it.
    fn refuse(&self, endpoint: Endpoint, arrived: Instant, r: Refused) -> Response {
        if let (Some(rec), false) = (self.recorder(), r.recorded) {
            rec.refuse(r.target.as_ref().map(|t| (&*t.policy, t.model.as_str())), endpoint, arrived, &r.error);
        }
        let mut response = r.error.into_response();
        self.name_arm(&mut response, r.target.as_ref());
        response
    }
}

/// The policy a request runs (an A/B arm, or the policy its model names) and the model id it asked for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub policy: Arc<Policy>,
    pub model: String,
}

/// A request answered with an error instead of a completion.
#[derive(Debug)]
pub(crate) struct Refused {
    pub error: ApiError,
    /// What it would have run; None when it named no served model (or its body could not be read).
    pub target: Option<Target>,
    /// A generation's record already tells of this failure (it failed while generating).
    pub recorded: bool,
}

impl Refused {
    pub fn at(error: ApiError, target: &Option<Target>) -> Refused {
        Refused { error, target: target.clone(), recorded: false }
    }
}

/// The application: build it once per engine and serve it with `ttc_http::serve` (or `axum::serve`).
pub fn router(engine: Arc<Engine>, policies: &[Policy], opts: ServerOptions) -> anyhow::Result<Router> {
    router_with_backend(Arc::new(EmbeddedBackend::new(engine)), policies, opts)
}

/// [`router`] over a backend the caller keeps (to watch or, in tests, to inject faults into its worker).
pub fn router_with_backend(backend: Arc<EmbeddedBackend>, policies: &[Policy], opts: ServerOptions) -> anyhow::Result<Router> {
    check_api_key(opts.api_key.as_deref()).map_err(anyhow::Error::msg)?;
    let catalog = Catalog::new(&opts.model_id, policies)?;
    let state = Arc::new(AppState {
        engine: backend.engine().clone(),
        backend,
        catalog,
        opts,
        counters: Arc::default(),
        started: unix_now(),
        adaptive: Default::default(),
    });
    let v1 = Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/completions", post(completions))
        .route("/models", get(list_models))
        .route("/models/{id}", get(get_model))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .method_not_allowed_fallback(|method: Method, OriginalUri(uri): OriginalUri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        });
    Ok(Router::new()
        .route("/health", get(health))
        .nest("/v1", v1)
        .fallback(|uri: Uri| async move { ApiError::not_found(uri.path()) })
        .with_state(state))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn require_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = state.opts.api_key.as_deref() {
        let sent = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match sent.and_then(bearer_token) {
            None => return ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`").into_response(),
            Some(k) if !constant_time_eq(k.trim().as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("incorrect API key").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235 2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without an early exit, so response time does not tell how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 200 with `status: ok`, or 503 with `status: unhealthy` once the engine thread has stopped (every
/// generation would fail), so a supervisor restarts the server.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.counters;
    let alive = state.backend.worker_alive();
    let mut body = json!({
        "status": if alive { "ok" } else { "unhealthy" },
        "model": state.engine.model_name,
        "weights": state.engine.model.format.label(),
        "active_requests": c.active.load(Ordering::SeqCst),
        "completed_requests": c.completed.load(Ordering::SeqCst),
        "cancelled_requests": c.cancelled.load(Ordering::SeqCst),
        "failed_requests": c.failed.load(Ordering::SeqCst),
        "rejected_requests": c.rejected.load(Ordering::SeqCst),
        "max_queue": state.opts.max_queue,
    });
    if alive {
        Json(body).into_response()
    } else {
        body["error"] = json!("the engine worker thread has stopped; every generation fails until the server is restarted");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
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

async fn chat_completions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let arrived = Instant::now();
    let ab_key = state.ab_key(&req);
    let body = match crate::body::read(req.into_body(), state.opts.body_timeout).await {
        Ok(b) => b,
        Err(e) => return body_refused(&state, Endpoint::Chat, arrived, e),
    };
    let (prepared, generation) = match start(&state, body, ab_key.as_deref()).await {
        Ok(p) => p,
        Err(r) => return state.refuse(Endpoint::Chat, arrived, r),
    };
    let target = Target { policy: prepared.request.policy.clone(), model: prepared.request.model.clone() };
    let mut response = if prepared.stream {
        stream_response(prepared, generation, state.engine.clone()).into_response()
    } else {
        match complete(&prepared, generation, &state.engine).await {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        }
    };
    state.name_arm(&mut response, Some(&target));
    response
}

/// A body that could not be read (413, 408): refused and recorded; the connection is closed after the answer,
/// since unread body bytes may still be on it (a stalled body, one past the drain cap): say so, or a client
/// reuses it for its next request.
fn body_refused(state: &AppState, endpoint: Endpoint, arrived: Instant, e: ApiError) -> Response {
    let mut r = state.refuse(endpoint, arrived, Refused::at(e, &None));
    r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    r
}

async fn completions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let arrived = Instant::now();
    let ab_key = state.ab_key(&req);
    let body = match crate::body::read(req.into_body(), state.opts.body_timeout).await {
        Ok(b) => b,
        Err(e) => return body_refused(&state, Endpoint::Completions, arrived, e),
    };
    match crate::completions::handle(&state, &body, ab_key.as_deref()).await {
        Ok((target, v)) => {
            let mut response = Json(v).into_response();
            state.name_arm(&mut response, Some(&target));
            response
        }
        Err(r) => state.refuse(Endpoint::Completions, arrived, r),
    }
}

/// Validates the request, assigns its arm, then admits it to the engine's queue (or answers 429 when the
/// queue is full: a bounded wait instead of an unbounded one).
async fn start(state: &Arc<AppState>, body: Bytes, ab_key: Option<&[u8]>) -> Result<(Prepared, Generation), Refused> {
    let parsed = request::parse(&body).map_err(|e| Refused::at(e, &state.target_of_body(&body, ab_key)))?;
    // The base model is the experiment's traffic; `<model>:<policy>` still runs the policy asked for.
    let target = state.target(&parsed.model, ab_key);
    let mut prepared = request::prepare(parsed, &state.catalog, &state.engine, state.opts.default_max_tokens)
        .map_err(|e| Refused::at(e, &target))?;
    if let Some(t) = &target {
        prepared.request.policy = t.policy.clone();
    }
    // One generating plus `max_queue` waiting.
    let Some(active) = ActiveGuard::admit(state.counters.clone(), state.opts.max_queue.saturating_add(1)) else {
        state.counters.rejected.fetch_add(1, Ordering::SeqCst);
        return Err(Refused::at(ApiError::queue_full(state.opts.max_queue), &target));
    };
    let sent = Instant::now();
    // An adaptive policy runs its quality or fast policy by the queue it joins (every client's requests).
    let gen = match state.adaptive.route(&prepared.request) {
        Some(routed) => {
            let g = state.backend.generate(&routed.request).await.map_err(|e| Refused::at(ApiError::from_backend(&e), &target))?;
            routed.wrap(g)
        }
        None => state.backend.generate(&prepared.request).await.map_err(|e| Refused::at(ApiError::from_backend(&e), &target))?,
    };
    let tap = state.opts.recorder.as_ref().map(|r| {
        r.begin(prepared.request.policy.clone(), prepared.request.model.clone(), Endpoint::Chat, sent)
    });
    Ok((prepared.clone(), Generation::new(gen, prepared.stops, active).with_record(tap)))
}

fn completion_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

fn usage_json(prompt: u32, completion: u32, cached: u32) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": u64::from(prompt) + u64::from(completion),
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

/// `stream: false`: one `chat.completion` object.
async fn complete(p: &Prepared, mut gen: Generation, engine: &Engine) -> Result<Value, ApiError> {
    let mut text = String::new();
    let mut lps = Vec::new();
    while let Some(step) = gen.next().await {
        match step {
            Step::Text(t, l) => {
                text.push_str(&t);
                lps.extend(l);
            }
            Step::Failed(e) => return Err(e),
            Step::Done { reason, completion_tokens, cached_tokens } => {
                return Ok(json!({
                    "id": completion_id(),
                    "object": "chat.completion",
                    "created": unix_now(),
                    "model": p.request.model,
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": text },
                        "logprobs": crate::logprobs::chat(&engine.tokenizer, p.request.logprobs.is_some(), &lps),
                        "finish_reason": reason,
                    }],
                    "usage": usage_json(p.prompt_tokens, completion_tokens, cached_tokens),
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
    /// Whether the request asked for logprobs (content chunks then carry their tokens').
    logprobs: bool,
    engine: Arc<Engine>,
}

impl Chunks {
    /// The role or finish chunk: `logprobs: null`, as OpenAI sends them.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        self.chunk_with(delta, finish_reason, Value::Null)
    }

    /// A content chunk, carrying its tokens' logprobs when the request asked for them.
    fn content(&self, text: String, lps: &[TokenLogprob]) -> Event {
        let logprobs = crate::logprobs::chat(&self.engine.tokenizer, self.logprobs, lps);
        self.chunk_with(json!({ "content": text }), None, logprobs)
    }

    fn chunk_with(&self, delta: Value, finish_reason: Option<&str>, logprobs: Value) -> Event {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason }],
        });
        if self.include_usage {
            // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
            v["usage"] = Value::Null;
        }
        Event::default().data(v.to_string())
    }

    fn usage(&self, prompt: u32, completion: u32, cached: u32) -> Event {
        let v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(prompt, completion, cached),
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
                Some(Step::Text(t, lps)) => Some(self.chunks.content(t, &lps)),
                Some(Step::Done { reason, completion_tokens, cached_tokens }) => {
                    self.phase = Phase::Over;
                    if self.chunks.include_usage {
                        self.tail.push_back(self.chunks.usage(self.prompt_tokens, completion_tokens, cached_tokens));
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
fn stream_response(p: Prepared, gen: Generation, engine: Arc<Engine>) -> impl IntoResponse {
    let chunks = Chunks {
        id: completion_id(),
        created: unix_now(),
        model: p.request.model.clone(),
        include_usage: p.include_usage,
        logprobs: p.request.logprobs.is_some(),
        engine,
    };
    let s = StreamState { gen, chunks, prompt_tokens: p.prompt_tokens, phase: Phase::Role, tail: Default::default() };
    let events = futures_util::stream::unfold(s, |mut s| async move { s.next().await.map(|ev| (Ok::<_, Infallible>(ev), s)) });
    // Keep-alive comments hold idle connections open while a request waits in the engine's queue.
    (StatusCode::OK, Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for h in ["Bearer k", "bearer k", "BEARER k", "  Bearer   k  "] {
            assert_eq!(bearer_token(h), Some("k"), "{h:?}");
        }
        for h in ["Basic k", "Bearerk", "k", ""] {
            assert_eq!(bearer_token(h), None, "{h:?}");
        }
    }
}
