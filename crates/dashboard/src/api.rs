//! The JSON API behind the views (documented in docs/dashboard.md). Handlers parse the query, read runs
//! through the [`RunCache`] on the blocking pool (Parquet reads, summaries) and return view models.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use ttc_results::analysis::{AnalysisConfig, GroupSummary, ParetoSet};
use ttc_results::kpi::{KpiFile, KpiResult};
use ttc_results::store::validate_run_id;
use ttc_types::{Record, RecordStatus};

use crate::cache::{RunCache, RunData};
use crate::host::HostCheck;
use crate::live::LiveFeed;
use crate::model::{self, LatencyAxis, RecordFilter};
use crate::query::ApiQuery;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub cache: Arc<RunCache>,
    pub analysis: Arc<AnalysisConfig>,
    pub kpis: Arc<KpiFile>,
    /// Where the KPIs came from (a file path or "built-in defaults").
    pub kpi_source: Arc<str>,
    pub live: Option<LiveFeed>,
    /// How often the live view re-reads the store.
    pub poll: std::time::Duration,
    /// Host header check against DNS rebinding; set by `serve_state` from the bound address.
    pub host_check: Option<HostCheck>,
}

/// An error as the API returns it: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub(crate) fn bad_request(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    }
    fn not_found(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, e.to_string())
    }
    fn internal(e: anyhow::Error) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs `f` on the blocking pool (store reads and summaries are CPU and disk bound).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))?
}

/// The runs named by a `run` parameter (comma-separated ids, each once), or the latest run when it is
/// absent or empty. An empty id in a list (`run=,,,`, `run=a,,b`) is an error, not "no run".
pub(crate) fn resolve_runs(cache: &RunCache, run: Option<&str>) -> Result<Vec<String>, ApiError> {
    let store = cache.store().map_err(ApiError::not_found)?;
    let ids: Vec<String> = match run.map(str::trim).filter(|s| !s.is_empty()) {
        Some(list) => {
            let mut ids: Vec<String> = Vec::new();
            for id in list.split(',').map(str::trim) {
                if id.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "query parameter `run`: empty run id in `{list}` (give comma-separated run ids, or no `run` for the latest run)"
                    )));
                }
                // A run listed twice is still one run: its records must not count twice.
                if !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
            ids
        }
        None => vec![store.last_run_id().map_err(ApiError::not_found)?],
    };
    for id in &ids {
        validate_run_id(id).map_err(ApiError::bad_request)?;
        if !store.has_run(id) {
            return Err(ApiError::not_found(format!("run `{id}` not found in `{}`", cache.dir().display())));
        }
    }
    Ok(ids)
}

pub(crate) fn load(cache: &RunCache, ids: &[String]) -> Result<Vec<Arc<RunData>>, ApiError> {
    ids.iter().map(|id| cache.get(id).map_err(ApiError::internal)).collect()
}

#[derive(Debug, Deserialize)]
pub struct RunQuery {
    /// Comma-separated run ids; default: the latest run.
    pub run: Option<String>,
}

// ---------------------------------------------------------------------------------------------- /api/runs

#[derive(Debug, Serialize)]
pub struct RunsResponse {
    pub results_dir: String,
    /// False when the results directory does not exist.
    pub exists: bool,
    /// Newest first.
    pub runs: Vec<model::RunRow>,
    /// What to do when there is nothing to show.
    pub hint: Option<String>,
}

pub async fn runs(State(st): State<AppState>) -> ApiResult<RunsResponse> {
    blocking(move || {
        let dir = st.cache.dir().display().to_string();
        let Ok(store) = st.cache.store() else {
            return Ok(RunsResponse {
                hint: Some(format!(
                    "The results directory `{dir}` does not exist yet. Run a benchmark (`ttc run`), or point the \
                     dashboard at an existing directory with --results DIR (or TTC_RESULTS)."
                )),
                results_dir: dir,
                exists: false,
                runs: vec![],
            });
        };
        let infos = store.list_runs().map_err(ApiError::internal)?;
        let mut rows = Vec::new();
        for info in infos.iter().rev() {
            rows.push(model::run_row(&st.cache.get(&info.run_id).map_err(ApiError::internal)?.run));
        }
        let hint = rows.is_empty().then(|| {
            format!("No runs in `{dir}` yet (expected run_id=<id>/ folders). Start one with `ttc run`; it appears here while it runs.")
        });
        Ok(RunsResponse { results_dir: dir, exists: true, runs: rows, hint })
    })
    .await
    .map(Json)
}

// ------------------------------------------------------------------------------------------- /api/summary

#[derive(Debug, Serialize)]
pub struct SummaryResponse {
    pub runs: Vec<String>,
    pub n_records: usize,
    /// One per run x policy x suite, as `ttc summary` computes them.
    pub groups: Vec<GroupSummary>,
    pub pareto: Vec<ParetoSet>,
    /// Quality metrics present (for selectors).
    pub quality_metrics: Vec<String>,
    pub latency_axes: Vec<&'static str>,
    /// The SLO behind goodput, in words.
    pub slo: String,
    /// Read problems (corrupt parts skipped, duplicates) per run, prefixed with the run id.
    pub warnings: Vec<String>,
    /// Each policy's capacity at its search's SLO, with the probes (runs with a capacity search).
    pub capacity: Vec<ttc_results::capacity::Capacity>,
    /// One recommendation per run x SLO searched.
    pub recommendations: Vec<ttc_results::recommend::Recommendation>,
    /// Each router's requests by the policy they were routed to.
    pub routes: Vec<ttc_results::analysis::RouteGroup>,
    /// Each policy's fidelity to the full model, pooled over its run's suites.
    pub fidelity: Vec<ttc_results::analysis::PooledFidelity>,
}

pub async fn summary(State(st): State<AppState>, ApiQuery(q): ApiQuery<RunQuery>) -> ApiResult<SummaryResponse> {
    blocking(move || {
        let ids = resolve_runs(&st.cache, q.run.as_deref())?;
        let data = load(&st.cache, &ids)?;
        let mut out = SummaryResponse {
            runs: ids,
            n_records: 0,
            groups: vec![],
            pareto: vec![],
            quality_metrics: vec![],
            latency_axes: LatencyAxis::NAMES.to_vec(),
            slo: st.analysis.slo.describe(),
            warnings: vec![],
            capacity: vec![],
            recommendations: vec![],
            routes: vec![],
            fidelity: vec![],
        };
        let mut metrics = std::collections::BTreeSet::new();
        for d in &data {
            let s = d.summary(&st.analysis);
            out.n_records += s.n_records;
            out.groups.extend(s.groups.iter().cloned());
            out.pareto.extend(s.pareto.iter().cloned());
            out.capacity.extend(s.capacity.iter().cloned());
            out.routes.extend(s.routes.iter().cloned());
            out.fidelity.extend(s.fidelity.iter().cloned());
            if !s.capacity.is_empty() {
                out.recommendations.extend(ttc_results::recommend::recommend(
                    s,
                    &d.run.records,
                    None,
                    &st.analysis.bootstrap,
                ));
            }
            metrics.extend(model::quality_metrics(s));
            out.warnings.extend(d.run.warnings.iter().map(|w| format!("{}: {w}", d.run.run_id)));
        }
        out.quality_metrics = metrics.into_iter().collect();
        Ok(out)
    })
    .await
    .map(Json)
}

// ---------------------------------------------------------------------------------------------- /api/kpis

#[derive(Debug, Serialize)]
pub struct KpiRow {
    pub run_id: String,
    #[serde(flatten)]
    pub result: KpiResult,
}

#[derive(Debug, Serialize)]
pub struct KpisResponse {
    pub source: String,
    pub results: Vec<KpiRow>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

pub async fn kpis(State(st): State<AppState>, ApiQuery(q): ApiQuery<RunQuery>) -> ApiResult<KpisResponse> {
    blocking(move || {
        let ids = resolve_runs(&st.cache, q.run.as_deref())?;
        let mut results = Vec::new();
        for d in load(&st.cache, &ids)? {
            let report = d.kpis(&st.kpis);
            results.extend(report.results.iter().map(|r| KpiRow { run_id: report.run_id.clone(), result: r.clone() }));
        }
        use ttc_results::kpi::Outcome;
        let count = |o: Outcome| results.iter().filter(|r| r.result.outcome == o).count();
        Ok(KpisResponse {
            source: st.kpi_source.to_string(),
            passed: count(Outcome::Pass),
            failed: count(Outcome::Fail),
            skipped: count(Outcome::Skip),
            results,
        })
    })
    .await
    .map(Json)
}

// ------------------------------------------------------------------------------------------- /api/records

#[derive(Debug, Deserialize)]
pub struct RecordsQuery {
    pub run: Option<String>,
    pub policy: Option<String>,
    pub suite: Option<String>,
    /// `ok` or `error`.
    pub status: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// Most rows one page returns.
pub const MAX_PAGE: usize = 1000;

fn parse_status(s: &str) -> Result<RecordStatus, ApiError> {
    match s {
        "ok" => Ok(RecordStatus::Ok),
        "error" => Ok(RecordStatus::Error),
        other => Err(ApiError::bad_request(format!("unknown status `{other}` (use ok or error)"))),
    }
}

pub async fn records(State(st): State<AppState>, ApiQuery(q): ApiQuery<RecordsQuery>) -> ApiResult<model::RecordPage> {
    blocking(move || {
        let ids = resolve_runs(&st.cache, q.run.as_deref())?;
        let [id] = ids.as_slice() else { return Err(ApiError::bad_request("/api/records takes exactly one run")) };
        let d = st.cache.get(id).map_err(ApiError::internal)?;
        let filter = RecordFilter {
            policy: q.policy.filter(|s| !s.is_empty()),
            suite: q.suite.filter(|s| !s.is_empty()),
            status: q.status.as_deref().filter(|s| !s.is_empty()).map(parse_status).transpose()?,
        };
        let limit = q.limit.unwrap_or(100).min(MAX_PAGE);
        Ok(model::record_page(&d.run, d.summary(&st.analysis), &filter, q.offset.unwrap_or(0), limit))
    })
    .await
    .map(Json)
}

// -------------------------------------------------------------------------------------------- /api/record

#[derive(Debug, Deserialize)]
pub struct RecordQuery {
    pub run: Option<String>,
    /// Position of the record in the run (the `id` of /api/records rows).
    pub id: Option<usize>,
    /// Alternative to `id`: the record's key (the last record with this key).
    pub policy: Option<String>,
    pub suite: Option<String>,
    pub sample: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RecordDetail {
    pub id: usize,
    pub quality_metric: Option<String>,
    pub record: Record,
}

pub async fn record(State(st): State<AppState>, ApiQuery(q): ApiQuery<RecordQuery>) -> ApiResult<RecordDetail> {
    blocking(move || {
        let ids = resolve_runs(&st.cache, q.run.as_deref())?;
        let [run_id] = ids.as_slice() else { return Err(ApiError::bad_request("/api/record takes exactly one run")) };
        let d = st.cache.get(run_id).map_err(ApiError::internal)?;
        let records = &d.run.records;
        let id = match (q.id, &q.policy, &q.suite, &q.sample) {
            (Some(id), ..) if id < records.len() => id,
            (Some(id), ..) => {
                return Err(ApiError::not_found(format!("run `{run_id}` has {} records; no record {id}", records.len())))
            }
            (None, Some(p), Some(s), Some(k)) => records
                .iter()
                .rposition(|r| &r.policy == p && &r.suite == s && &r.sample_id == k)
                .ok_or_else(|| ApiError::not_found(format!("no record ({p}, {s}, {k}) in run `{run_id}`")))?,
            _ => return Err(ApiError::bad_request("give `id`, or `policy`, `suite` and `sample`")),
        };
        let r = &records[id];
        let primaries = model::primary_by_suite(d.summary(&st.analysis));
        Ok(RecordDetail {
            id,
            quality_metric: primaries.get(&(r.run_id.clone(), r.suite.clone())).cloned(),
            record: r.clone(),
        })
    })
    .await
    .map(Json)
}

// ----------------------------------------------------------------------------------------- /api/tradeoffs

#[derive(Debug, Deserialize)]
pub struct TradeoffQuery {
    pub run: Option<String>,
    /// ttft_p50, ttft_p95, e2e_p50, e2e_p95 (default), tpot_p50, tpot_p95.
    pub latency: Option<String>,
    /// Quality metric; default: each suite's primary metric.
    pub metric: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TradeoffResponse {
    pub latency: String,
    pub metric: Option<String>,
    pub points: Vec<model::TradeoffPoint>,
}

pub async fn tradeoffs(State(st): State<AppState>, ApiQuery(q): ApiQuery<TradeoffQuery>) -> ApiResult<TradeoffResponse> {
    blocking(move || {
        let ids = resolve_runs(&st.cache, q.run.as_deref())?;
        let latency = q.latency.unwrap_or_else(|| "e2e_p95".into());
        let axis = LatencyAxis::parse(&latency).map_err(ApiError::bad_request)?;
        let metric = q.metric.filter(|m| !m.is_empty());
        let data = load(&st.cache, &ids)?;
        if let Some(m) = &metric {
            let present: std::collections::BTreeSet<String> =
                data.iter().flat_map(|d| model::quality_metrics(d.summary(&st.analysis))).collect();
            if !present.contains(m) {
                let list = present.into_iter().collect::<Vec<_>>().join(", ");
                return Err(ApiError::bad_request(format!(
                    "query parameter `metric`: `{m}` is not a quality metric of run(s) {} (use one of: {list}; or none \
                     for each suite's primary metric)",
                    ids.join(", ")
                )));
            }
        }
        let mut points = Vec::new();
        for d in data {
            points.extend(model::tradeoffs(d.summary(&st.analysis), axis, metric.as_deref()));
        }
        Ok(TradeoffResponse { latency, metric, points })
    })
    .await
    .map(Json)
}

// ------------------------------------------------------------------------------------- /api/distributions

#[derive(Debug, Deserialize)]
pub struct DistributionQuery {
    pub run: Option<String>,
    pub suite: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DistributionResponse {
    pub policies: Vec<model::PolicyDistribution>,
}

pub async fn distributions(State(st): State<AppState>, ApiQuery(q): ApiQuery<DistributionQuery>) -> ApiResult<DistributionResponse> {
    blocking(move || {
        let ids = resolve_runs(&st.cache, q.run.as_deref())?;
        let data = load(&st.cache, &ids)?;
        let runs: Vec<&ttc_results::LoadedRun> = data.iter().map(|d| &d.run).collect();
        Ok(DistributionResponse { policies: model::distributions(&runs, q.suite.as_deref().filter(|s| !s.is_empty())) })
    })
    .await
    .map(Json)
}

// -------------------------------------------------------------------------------------------- /api/trends

#[derive(Debug, Serialize)]
pub struct TrendsResponse {
    /// Labels of the values each point may carry (`quality` = the run's primary quality metric).
    pub metrics: Vec<&'static str>,
    /// Oldest run first, one point per run x policy.
    pub points: Vec<model::TrendPoint>,
}

pub async fn trends(State(st): State<AppState>) -> ApiResult<TrendsResponse> {
    blocking(move || {
        let metrics = model::TREND_METRICS.iter().map(|m| m.0).chain([model::TREND_QUALITY]).collect();
        let Ok(store) = st.cache.store() else { return Ok(TrendsResponse { metrics, points: vec![] }) };
        let mut points = Vec::new();
        for info in store.list_runs().map_err(ApiError::internal)? {
            points.extend(st.cache.get(&info.run_id).map_err(ApiError::internal)?.trends().iter().cloned());
        }
        Ok(TrendsResponse { metrics, points })
    })
    .await
    .map(Json)
}
