//! ttcbench's live web dashboard (`ttc dashboard`, and `ttc run --dashboard` during a run).
//!
//! An axum server over the results store: a JSON API ([`api`], documented in docs/dashboard.md) that
//! aggregates on the server with `ttc-results`, server-sent events for the live view ([`events`]), and one
//! page of hand-written JS + SVG embedded in the binary ([`assets`]; no CDN, works offline).
//!
//! - [`DashboardOptions`] + [`run`]: the `ttc dashboard` command (blocks on its own tokio runtime);
//! - [`serve`]: serve on a bound listener from inside an existing runtime (what `ttc run --dashboard` calls),
//!   optionally with a [`LiveFeed`] the runner publishes progress and records into.

pub mod api;
pub mod assets;
pub mod cache;
pub mod events;
pub mod host;
pub mod live;
pub mod model;
pub mod parts;
pub mod query;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ttc_results::analysis::AnalysisConfig;

pub use api::AppState;
pub use live::{LiveEvent, LiveFeed, RunnerProgress};

/// What `ttc dashboard` serves, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardOptions {
    /// Results directory; it may not exist yet (the dashboard then picks up runs as they appear).
    pub results: PathBuf,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Address to bind; anything but loopback exposes the results to the network ([`is_exposed`]).
    pub host: String,
    /// KPI file for the pass/fail colours (None: configs/kpis.yaml if present, else the built-in KPIs).
    pub kpis: Option<PathBuf>,
    pub http: ttc_http::HttpOptions,
}

pub const DEFAULT_PORT: u16 = 8765;

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            results: PathBuf::from("results"),
            port: DEFAULT_PORT,
            host: "127.0.0.1".into(),
            kpis: None,
            http: ttc_http::HttpOptions::default(),
        }
    }
}

/// How often the live view re-reads the store.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// The shared state with default analysis settings and KPIs from `kpis` (or configs/kpis.yaml, or the
/// built-in defaults, like `ttc check`).
pub fn app_state(results_dir: &Path, kpis: Option<&Path>, live: Option<LiveFeed>) -> Result<AppState> {
    // A KPI file the dashboard cannot use is the user's to fix, as in `ttc check`.
    let (file, source) = ttc_results::kpi::load_kpis(kpis).map_err(ttc_results::InputError)?;
    Ok(AppState {
        cache: Arc::new(cache::RunCache::new(results_dir.to_path_buf())),
        analysis: Arc::new(AnalysisConfig::default()),
        kpis: Arc::new(file),
        kpi_source: source.into(),
        live,
        poll: DEFAULT_POLL,
        host_check: None,
    })
}

/// Every route: the page, its assets and the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style_css))
        .route("/api/runs", get(api::runs))
        .route("/api/summary", get(api::summary))
        .route("/api/kpis", get(api::kpis))
        .route("/api/records", get(api::records))
        .route("/api/record", get(api::record))
        .route("/api/tradeoffs", get(api::tradeoffs))
        .route("/api/distributions", get(api::distributions))
        .route("/api/trends", get(api::trends))
        .route("/api/events", get(events::events))
        .fallback(assets::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), host::check_host))
        .with_state(state)
}

/// Serves the dashboard for `results_dir` on `listener` until the future is dropped. `live`: the runner's
/// feed, when serving during a run (`ttc run --dashboard`). Must run inside a tokio runtime.
pub async fn serve(listener: tokio::net::TcpListener, results_dir: PathBuf, live: Option<LiveFeed>) -> Result<()> {
    serve_state(listener, app_state(&results_dir, None, live)?).await
}

/// [`serve`] with a prepared state (custom KPIs, analysis settings, poll interval).
pub async fn serve_state(listener: tokio::net::TcpListener, state: AppState) -> Result<()> {
    serve_with(listener, state, ttc_http::HttpOptions::default()).await
}

/// [`serve_state`] with explicit connection limits (header-read timeout, connection limit): a client that
/// stalls in its headers is cut, and no number of idle sockets can exhaust the server. Bound to loopback, only
/// requests whose Host names this machine are served (DNS rebinding).
pub async fn serve_with(listener: tokio::net::TcpListener, mut state: AppState, http: ttc_http::HttpOptions) -> Result<()> {
    state.host_check = listener.local_addr().ok().and_then(host::HostCheck::for_bound);
    let (cache, analysis, kpis) = (state.cache.clone(), state.analysis.clone(), state.kpis.clone());
    tokio::task::spawn_blocking(move || cache.warm_up(&analysis, &kpis));
    ttc_http::serve(listener, router(state), http, std::future::pending()).await.context("dashboard server failed")?;
    Ok(())
}

/// Whether binding `host` makes the dashboard reachable from other machines.
pub fn is_exposed(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']');
    h == "0.0.0.0" || h == "::" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| !ip.is_loopback()) || (h != "localhost" && h.parse::<std::net::IpAddr>().is_err())
}

/// `ttc dashboard`: binds, prints the URL, serves until Ctrl-C.
pub fn run(opts: DashboardOptions) -> Result<()> {
    if is_exposed(&opts.host) {
        eprintln!(
            "warning: --host {} makes the dashboard (and every stored prediction) reachable from the network; \
             it has no authentication. Use --host 127.0.0.1 to keep it local.",
            opts.host
        );
    }
    let state = app_state(&opts.results, opts.kpis.as_deref(), None)?;
    if !ttc_results::storage::is_url(&opts.results) && !opts.results.is_dir() {
        eprintln!("note: results directory `{}` does not exist yet; the dashboard will show runs once it does", opts.results.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let addr = format!("{}:{}", opts.host, opts.port);
        let host = if opts.host.contains(':') { format!("[{}]", opts.host) } else { opts.host.clone() };
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr} (is another dashboard running? try --port)"))?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(opts.port);
        eprintln!("dashboard: http://{host}:{port}/  (results: {}; Ctrl-C to stop)", opts.results.display());
        tokio::select! {
            r = serve_with(listener, state, opts.http) => r,
            // Ctrl-C only: `ttc run --dashboard` runs this on a thread, and catching SIGTERM here would stop
            // the dashboard but not the run.
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_detected() {
        for h in ["0.0.0.0", "::", "[::]", "192.168.1.4", "myhost.example"] {
            assert!(is_exposed(h), "{h}");
        }
        for h in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            assert!(!is_exposed(h), "{h}");
        }
    }
}
