//! `ttc serve`: an OpenAI-compatible HTTP server over the embedded engine.
//!
//! - `POST /v1/chat/completions`: streaming (SSE) and not, `usage`, `stream_options.include_usage`, `stop`,
//!   `logprobs` / `top_logprobs`;
//! - `POST /v1/completions`: raw prompts, `echo` + `logprobs` for prompt log-likelihoods ([`completions`]);
//! - `GET /v1/models`: `<model>` (baseline) and `<model>:<policy>` for every policy of the policies file;
//!   the model name of a request picks the policy the engine runs;
//! - `GET /health`: 200, or 503 once the engine thread is gone.
//!
//! Connections go through [`ttc_http::serve`] (header-read timeout, connection limit, graceful shutdown on
//! SIGTERM or Ctrl-C with a deadline); requests beyond `--max-queue` waiting ones are answered 429.
//!
//! All requests go through one engine, queued by [`ttc_embedded::EmbeddedBackend`]'s worker thread. The
//! response formats follow the OpenAI API reference (https://platform.openai.com/docs/api-reference/chat)
//! and are checked against the official `openai` Python client in the tests.

pub mod body;
pub mod error;
pub mod completions;
pub mod ab;
pub mod served;
pub mod generation;
pub mod logprobs;
pub mod models;
pub mod request;
pub mod server;
pub mod stop;

pub use server::{check_api_key, router, router_with_backend, ServerOptions, DEFAULT_MAX_QUEUE};

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use ttc_engine::{Engine, Policy, WeightFormat};
use ttc_http::HttpOptions;

/// The id of the base model in `/v1/models`.
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m";
pub const DEFAULT_POLICIES: &str = "configs/policies.yaml";

/// What `ttc serve` serves, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// A llama-architecture GGUF file; None: SmolLM2-135M-Instruct from the cache.
    pub model: Option<PathBuf>,
    pub weights: WeightFormat,
    /// Policies file: each policy is served as the model `<model_id>:<policy>`.
    pub policies: PathBuf,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Required as `Authorization: Bearer <KEY>` on /v1 routes; an empty key is a [`UsageError`].
    pub api_key: Option<String>,
    /// The base model id clients send (`<id>` = baseline, `<id>:<policy>` = a policy).
    pub model_id: String,
    /// `max_tokens` for requests that do not set it (at least 1).
    pub default_max_tokens: u64,
    /// Requests that may wait for the engine; more are answered 429.
    pub max_queue: usize,
    /// Prompt tokens per prefill forward (at least 1).
    pub prefill_chunk: u64,
    /// MiB of the prefix cache; 0 = off.
    pub prefix_cache_mb: u64,
    /// How long open requests get to finish after SIGTERM or Ctrl-C.
    pub shutdown_timeout: Duration,
    /// Live A/B arms, `ARM=WEIGHT,...` ([`ab::AbSpec`]).
    pub ab: Option<String>,
    /// Request header that makes the A/B assignment sticky.
    pub ab_key_header: String,
    /// Store every request (chat completions, completions, refusals), also without `ab`.
    pub record: bool,
    /// Results store for served requests' records.
    pub results: PathBuf,
    /// Also store what the model answered.
    pub store_content: bool,
    /// Connection limits; `shutdown_grace` is taken from `shutdown_timeout`.
    pub http: HttpOptions,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_MAX_TOKENS: u64 = 256;
pub const DEFAULT_PREFIX_CACHE_MB: u64 = 256;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model: None,
            weights: WeightFormat::Auto,
            policies: PathBuf::from(DEFAULT_POLICIES),
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            api_key: None,
            model_id: DEFAULT_MODEL_ID.into(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            max_queue: DEFAULT_MAX_QUEUE,
            prefill_chunk: ttc_engine::engine::DEFAULT_PREFILL_CHUNK as u64,
            prefix_cache_mb: DEFAULT_PREFIX_CACHE_MB,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            ab: None,
            ab_key_header: ab::DEFAULT_KEY_HEADER.into(),
            record: false,
            results: PathBuf::from("results"),
            store_content: false,
            http: HttpOptions::default(),
        }
    }
}

/// A mistake in what `ttc serve` was given (a flag, the policies file, the model file), found before serving.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The model path: `--model`, else the cached default model (never downloads here; the error says how to get it).
pub fn model_path(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(ttc_assets::model_file(explicit, false)?)
}

/// The policies to serve. The default file may be absent (serving the baseline only); a named one may not.
pub fn load_policies(path: &std::path::Path) -> anyhow::Result<Vec<Policy>> {
    if path == std::path::Path::new(DEFAULT_POLICIES) && !path.exists() {
        eprintln!("warning: {DEFAULT_POLICIES} not found here; serving the baseline only (pass --policies FILE)");
        return Ok(Vec::new());
    }
    ttc_engine::load_policies(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A server running on the current tokio runtime.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// `http://ADDR/v1`, what OpenAI clients take as their base URL.
    pub base_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<ttc_http::Served>>,
}

impl RunningServer {
    /// Binds `addr` and serves `app` in a task with the default connection limits.
    pub async fn start(app: axum::Router, addr: &str) -> anyhow::Result<RunningServer> {
        Self::start_with(app, addr, HttpOptions::default()).await
    }

    /// [`RunningServer::start`] with explicit limits (header timeout, connection limit, shutdown grace).
    pub async fn start_with(app: axum::Router, addr: &str, http: HttpOptions) -> anyhow::Result<RunningServer> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            ttc_http::serve(listener, app, http, async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(RunningServer { addr, base_url: format!("http://{addr}/v1"), shutdown: Some(tx), task })
    }

    /// Stops accepting connections and waits for open ones to finish (up to the shutdown grace).
    pub async fn shutdown(mut self) -> anyhow::Result<ttc_http::Served> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        Ok((&mut self.task).await??)
    }
}

/// Loads the engine and policies and serves until SIGTERM or Ctrl-C, then lets open requests finish (up to
/// `shutdown_timeout`). Blocks on its own tokio runtime. Mistakes in the options are [`UsageError`]s, found
/// before the model loads where they can be.
pub fn run(opts: ServeOptions) -> anyhow::Result<()> {
    check_api_key(opts.api_key.as_deref()).map_err(usage)?;
    let weights = opts.weights;
    let policies = load_policies(&opts.policies).map_err(|e| usage(format!("{e:#}")))?;
    // A bad --ab is a usage error before the model loads.
    let ab = match opts.ab.as_deref() {
        None => None,
        Some(spec) => {
            let spec = spec.parse::<ab::AbSpec>().map_err(|e| usage(format!("--ab: {e}")))?;
            Some(Arc::new(ab::Assigner::new(&spec, &policies).map_err(usage)?))
        }
    };
    let path = model_path(opts.model.clone()).map_err(|e| usage(format!("{e:#}")))?;
    if matches!(opts.host.as_str(), "0.0.0.0" | "::" | "[::]") {
        eprintln!(
            "warning: listening on {} exposes the engine to every network this machine is on{}",
            opts.host,
            if opts.api_key.is_none() { " without an API key (set --api-key)" } else { "" }
        );
    }
    eprintln!("loading {} ({weights} weights)...", path.display());
    let mut engine = Engine::load(&path, weights).with_context(|| format!("loading {}", path.display()))?;
    engine.prefill_chunk = opts.prefill_chunk as usize;
    if opts.prefix_cache_mb > 0 {
        engine.enable_prefix_cache((opts.prefix_cache_mb as usize) << 20).map_err(|e| usage(format!("--prefix-cache-mb: {e}")))?;
    }
    let engine = Arc::new(engine);
    if let Some(e) = policies.iter().find_map(|p| engine.check_policy(p).err()) {
        return Err(usage(format!("{}: {e}", opts.policies.display())));
    }
    let recorder = if ab.is_some() || opts.record {
        let run_id = format!("serve-{}", ttc_contract::new_run_id());
        let extra = serde_json::json!({
            "backend": "serve", "model": engine.model_name, "ab": opts.ab, "ab_key_header": opts.ab_key_header,
            "store_content": opts.store_content, "policies": policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
        });
        let r = served::ServedRecorder::start(&opts.results, run_id, &engine.model_name, opts.store_content, extra)
            .with_context(|| format!("opening the results store {}", opts.results.display()))?;
        eprintln!("recording served requests in {} as run {}", opts.results.display(), r.run_id());
        Some(r)
    } else {
        None
    };
    let server_opts = ServerOptions {
        model_id: opts.model_id.clone(),
        api_key: opts.api_key.clone(),
        default_max_tokens: opts.default_max_tokens,
        max_queue: opts.max_queue,
        body_timeout: opts.http.header_timeout,
        ab: ab.clone(),
        ab_key_header: opts.ab_key_header.clone(),
        recorder: recorder.clone(),
    };
    if let Some(a) = &ab {
        eprintln!("A/B test over {} (sticky by the `{}` header)", a.arm_names().join(", "), opts.ab_key_header);
    }
    let app = router(engine, &policies, server_opts)?;
    let http = HttpOptions { shutdown_grace: Some(opts.shutdown_timeout), ..opts.http.clone() };
    let grace = opts.shutdown_timeout.as_secs_f64();
    let host = if opts.host.contains(':') && !opts.host.starts_with('[') { format!("[{}]", opts.host) } else { opts.host.clone() };
    let addr = format!("{host}:{}", opts.port);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!("serving {} policies + baseline at http://{local}/v1 (models: GET /v1/models; Ctrl-C stops)", policies.len());
        let served = ttc_http::serve(listener, app, http, async {
            let signal = ttc_http::shutdown_signal().await;
            eprintln!("{signal}: shutting down, finishing open requests (at most {grace} s)");
        })
        .await?;
        if served.cut_connections > 0 {
            eprintln!("warning: {} connections still open after {grace} s were closed", served.cut_connections);
        } else {
            eprintln!("stopped: every open request finished");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    if let Some(r) = recorder {
        r.finish()?;
    }
    // The engine thread may still be inside a cut generation; returning from main ends it.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_usage_error(r: anyhow::Result<()>) -> bool {
        r.is_err_and(|e| e.is::<UsageError>())
    }

    #[test]
    fn an_empty_api_key_is_a_usage_error_before_anything_loads() {
        // The model path does not exist: a usage error about the key proves the key is checked first.
        for key in ["", "   ", " sk-padded"] {
            let opts = ServeOptions { api_key: Some(key.into()), model: Some("/nonexistent.gguf".into()), port: 0, ..Default::default() };
            let e = run(opts).unwrap_err();
            assert!(e.is::<UsageError>() && e.to_string().contains("key"), "{key:?}: {e}");
        }
        assert!(check_api_key(Some("")).unwrap_err().contains("empty"));
        assert!(check_api_key(Some(" k")).unwrap_err().contains("whitespace"));
        assert_eq!(check_api_key(Some("sk-local")), Ok(()));
        assert_eq!(check_api_key(None), Ok(()));
    }

    #[test]
    fn bad_policies_or_model_fail_before_serving() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let opts = ServeOptions { policies: missing, model: Some("/nonexistent.gguf".into()), ..Default::default() };
        assert!(is_usage_error(run(opts)), "a named policies file must exist");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "policies:\n  - name: x\n    algorithm: warp_drive\n").unwrap();
        let e = load_policies(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.yaml") && e.contains("warp_drive"), "{e}");
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "policies:\n  - name: baseline\n    algorithm: baseline\n").unwrap();
        let opts = ServeOptions { policies: good, model: Some("/nonexistent.gguf".into()), port: 0, ..Default::default() };
        let e = run(opts).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent.gguf"), "{e:#}");
    }
}
