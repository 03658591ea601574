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
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use ttc_engine::{Engine, Policy, WeightFormat};
use ttc_http::{HttpArgs, HttpOptions};

/// The id of the base model in `/v1/models`.
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m";
const DEFAULT_POLICIES: &str = "configs/policies.yaml";

/// Serve the embedded engine over an OpenAI-compatible API.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A llama-architecture GGUF file; default: SmolLM2-135M-Instruct from the cache (`ttc model pull`).
    #[arg(long, env = "TTC_MODEL")]
    pub model: Option<PathBuf>,
    /// Weight format at load: auto (Q8_0 for decode, f32 for multi-token forwards), q8_0, f32, or native.
    #[arg(long, default_value = "auto", value_parser = parse_weights)]
    pub weights: WeightFormat,
    /// Policies file: each policy is served as the model `<model-id>:<policy>`.
    #[arg(long, default_value = DEFAULT_POLICIES)]
    pub policies: PathBuf,
    /// Address to listen on. 0.0.0.0 exposes the server to the network (use --api-key then).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer <KEY>` on /v1 routes. An empty key is refused (exit 2).
    #[arg(long, env = "TTC_SERVE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The base model id clients send (`<id>` = baseline, `<id>:<policy>` = a policy).
    #[arg(long, default_value = DEFAULT_MODEL_ID)]
    pub model_id: String,
    /// `max_tokens` for requests that do not set it (cut to what the context leaves).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub default_max_tokens: u64,
    /// Requests that may wait for the engine while one generates; more are answered 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_QUEUE)]
    pub max_queue: usize,
    /// Prompt tokens per prefill forward. A long prompt is prefilled in chunks of this size, and a client that
    /// disconnects frees the engine within one chunk.
    #[arg(long, value_name = "TOKENS", default_value_t = ttc_engine::engine::DEFAULT_PREFILL_CHUNK as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub prefill_chunk: u64,
    /// MiB of KV entries of prompt prefixes kept for reuse across requests (a repeated system prompt is not
    /// prefilled again; `usage.prompt_tokens_details.cached_tokens` says how many tokens were reused). 0 = off.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub prefix_cache_mb: u64,
    /// On SIGTERM or Ctrl-C, seconds open requests get to finish before their connections are closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = ttc_http::parse_secs)]
    pub shutdown_timeout: Duration,
    /// Live A/B test: requests to the base model id are assigned an arm by these weights (sum 1), e.g.
    /// `baseline=0.5,speculative_decoding=0.5`; arms are policies of --policies (routers too). Every served
    /// request is then stored in --results (docs/serve.md "A/B tests").
    #[arg(long, value_name = "ARM=WEIGHT,...")]
    pub ab: Option<String>,
    /// Request header whose value (a user or session id) makes the A/B assignment sticky; without it, or
    /// with a malformed value, a request is assigned at random.
    #[arg(long, value_name = "NAME", default_value = ab::DEFAULT_KEY_HEADER)]
    pub ab_key_header: String,
    /// Store every served chat completion as a record in --results, also without --ab.
    #[arg(long)]
    pub record: bool,
    /// Results store for served requests' records (with --ab or --record).
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Also store what the model answered (the `prediction` column, logprobs). Off by default: records
    /// then hold counts, timings and the arm, nothing about a request's content.
    #[arg(long)]
    pub store_content: bool,
    #[command(flatten)]
    pub http: HttpArgs,
}

fn parse_weights(s: &str) -> Result<WeightFormat, String> {
    s.parse()
}

/// The model path: `--model`, else the cached default model (never downloads here).
pub fn model_path(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    ttc_assets::locate(ttc_assets::smollm2_gguf()).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n  the default model (SmolLM2-135M-Instruct, GGUF Q4_1) is not in the cache yet.\n  fix: run `ttc model pull`, or pass --model PATH (env TTC_MODEL) to a llama GGUF"
        )
    })
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
/// `--shutdown-timeout`) and returns 0. Blocks on its own tokio runtime. Usage errors return 2.
pub fn run(args: ServeArgs) -> anyhow::Result<i32> {
    if let Err(e) = check_api_key(args.api_key.as_deref()) {
        eprintln!("error: {e}");
        return Ok(2);
    }
    let weights = args.weights;
    let policies = match load_policies(&args.policies) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(2);
        }
    };
    // A bad --ab is a usage error before the model loads.
    let ab = match args.ab.as_deref().map(|spec| {
        spec.parse::<ab::AbSpec>().map_err(|e| format!("--ab: {e}")).and_then(|s| ab::Assigner::new(&s, &policies))
    }) {
        None => None,
        Some(Ok(a)) => Some(Arc::new(a)),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let path = match model_path(args.model.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(2);
        }
    };
    if matches!(args.host.as_str(), "0.0.0.0" | "::" | "[::]") {
        eprintln!(
            "warning: listening on {} exposes the engine to every network this machine is on{}",
            args.host,
            if args.api_key.is_none() { " without an API key (set --api-key)" } else { "" }
        );
    }
    eprintln!("loading {} ({weights} weights)...", path.display());
    let mut engine = Engine::load(&path, weights).with_context(|| format!("loading {}", path.display()))?;
    engine.prefill_chunk = args.prefill_chunk as usize;
    if args.prefix_cache_mb > 0 {
        if let Err(e) = engine.enable_prefix_cache((args.prefix_cache_mb as usize) << 20) {
            eprintln!("error: --prefix-cache-mb: {e}");
            return Ok(2);
        }
    }
    let engine = Arc::new(engine);
    if let Some(e) = policies.iter().find_map(|p| engine.check_policy(p).err()) {
        eprintln!("error: {}: {e}", args.policies.display());
        return Ok(2);
    }
    let recorder = if ab.is_some() || args.record {
        let run_id = format!("serve-{}", ttc_bench::run::new_run_id());
        let extra = serde_json::json!({
            "backend": "serve", "model": engine.model_name, "ab": args.ab, "ab_key_header": args.ab_key_header,
            "store_content": args.store_content, "policies": policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
        });
        let r = served::ServedRecorder::start(&args.results, run_id, &engine.model_name, args.store_content, extra)
            .with_context(|| format!("opening the results store {}", args.results.display()))?;
        eprintln!("recording served requests in {} as run {}", args.results.display(), r.run_id());
        Some(Arc::new(r))
    } else {
        None
    };
    let opts = ServerOptions {
        model_id: args.model_id.clone(),
        api_key: args.api_key.clone(),
        default_max_tokens: args.default_max_tokens,
        max_queue: args.max_queue,
        body_timeout: args.http.header_timeout,
        ab: ab.clone(),
        ab_key_header: args.ab_key_header.clone(),
        recorder: recorder.clone(),
    };
    if let Some(a) = &ab {
        eprintln!("A/B test over {} (sticky by the `{}` header)", a.arm_names().join(", "), args.ab_key_header);
    }
    let app = router(engine, &policies, opts)?;
    let http = HttpOptions { shutdown_grace: Some(args.shutdown_timeout), ..args.http.options() };
    let grace = args.shutdown_timeout.as_secs_f64();
    let host = if args.host.contains(':') && !args.host.starts_with('[') { format!("[{}]", args.host) } else { args.host.clone() };
    let addr = format!("{host}:{}", args.port);
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
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.serve)
    }

    #[test]
    fn defaults_bind_localhost_8080() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.model_id.as_str()), ("127.0.0.1", 8080, "smollm2-135m"));
        assert_eq!(a.policies, PathBuf::from("configs/policies.yaml"));
        assert_eq!(a.default_max_tokens, 256);
        assert_eq!((a.max_queue, a.shutdown_timeout), (64, Duration::from_secs(30)));
        assert_eq!(a.http.options(), HttpOptions::default());
        let a = parse(&["--max-queue", "0", "--shutdown-timeout", "0.5", "--header-timeout", "2", "--max-connections", "8"]).unwrap();
        assert_eq!((a.max_queue, a.shutdown_timeout), (0, Duration::from_millis(500)));
        assert_eq!((a.http.header_timeout, a.http.max_connections), (Duration::from_secs(2), 8));
        for bad in [&["--default-max-tokens", "0"][..], &["--shutdown-timeout", "-1"], &["--header-timeout", "0"], &["--max-connections", "0"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let a = parse(&["--host", "0.0.0.0", "--port", "0", "--api-key", "k", "--weights", "f32"]).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.api_key.as_deref(), a.weights), ("0.0.0.0", 0, Some("k"), WeightFormat::F32));
        assert!(parse(&["--weights", "int3"]).is_err());
        assert!(parse(&["--port", "70000"]).is_err());
    }

    #[test]
    fn an_empty_api_key_is_a_usage_error_before_anything_loads() {
        // The model path does not exist: exit 2 here proves the key is checked first.
        for key in ["", "   ", " sk-padded"] {
            let a = parse(&["--api-key", key, "--model", "/nonexistent.gguf", "--port", "0"]).unwrap();
            assert_eq!(run(a).unwrap(), 2, "{key:?}");
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
        let a = parse(&["--policies", missing.to_str().unwrap(), "--model", "/nonexistent.gguf"]).unwrap();
        assert_eq!(run(a).unwrap(), 2, "a named policies file must exist");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "policies:\n  - name: x\n    algorithm: warp_drive\n").unwrap();
        let e = load_policies(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.yaml") && e.contains("warp_drive"), "{e}");
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "policies:\n  - name: baseline\n    algorithm: baseline\n").unwrap();
        let a = parse(&["--policies", good.to_str().unwrap(), "--model", "/nonexistent.gguf", "--port", "0"]).unwrap();
        let e = run(a).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent.gguf"), "{e:#}");
    }
}
