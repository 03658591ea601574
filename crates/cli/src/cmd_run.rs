//! `ttc run`: the benchmark, with the embedded engine linked in.

use crate::exit::Outcome;
use crate::run_args::RunArgs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ttc_runner::{Backend, Hooks, RunConfig, RunOptions, RunOutcome};
use ttc_engine::{Engine, WeightFormat};

/// The project's default run file, used when `--config` is not given and it exists here.
pub const DEFAULT_RUN_FILE: &str = "configs/run.yaml";

/// `ttc run` flags: the runner's, plus serving the dashboard during the run.
#[derive(clap::Args)]
pub struct CliRunArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Serve the live dashboard while the run goes (it watches the results directory).
    #[arg(long)]
    pub dashboard: bool,
    /// Port of the dashboard served by --dashboard (on 127.0.0.1).
    #[arg(long, default_value_t = 8765)]
    pub dashboard_port: u16,
}

/// The run's options, with the project's run file when none is named and it is here.
pub fn run_options(args: RunArgs) -> RunOptions {
    let mut opts = args.options();
    if opts.config.is_none() && Path::new(DEFAULT_RUN_FILE).exists() {
        opts.config = Some(PathBuf::from(DEFAULT_RUN_FILE));
    }
    opts
}

/// The run's end as the CLI reports it.
pub fn outcome(end: RunOutcome) -> Outcome {
    match end {
        RunOutcome::Finished => Outcome::Done,
        RunOutcome::Interrupted => Outcome::Interrupted,
    }
}

pub fn run(cli: CliRunArgs) -> anyhow::Result<Outcome> {
    let opts = run_options(cli.run);
    if cli.dashboard && !opts.dry_run {
        start_dashboard(&opts, cli.dashboard_port)?;
    }
    let hooks = Hooks { embedded: Some(Arc::new(embedded_backend)), ..Hooks::default() };
    let end = ttc_runner::run_with(opts.clone(), hooks)?;
    if end == RunOutcome::Finished && !opts.dry_run {
        // The records are stored already: a failure here must not turn a finished run into an error.
        if let Err(e) = after_run(&opts) {
            eprintln!("warning: the run finished and its results are stored, but the end-of-run summary failed: {e:#}");
        }
    }
    Ok(outcome(end))
}

/// The dashboard on its own thread (it has its own runtime); its live view picks up parts as they are written.
fn start_dashboard(opts: &RunOptions, port: u16) -> anyhow::Result<()> {
    let cfg = RunConfig::from_options(opts)?;
    if !ttc_results::storage::is_url(&cfg.results) {
        std::fs::create_dir_all(&cfg.results)?;
    }
    let dashboard = ttc_dashboard::DashboardOptions { results: cfg.results.clone(), port, ..Default::default() };
    std::thread::spawn(move || {
        if let Err(e) = ttc_dashboard::run(dashboard) {
            eprintln!("warning: dashboard stopped: {e:#}");
        }
    });
    Ok(())
}

/// What a user wants at the end of a run: the summary table, a Markdown report, the KPI check (reporting, not
/// failing) and where everything is.
pub(crate) fn after_run(args: &RunOptions) -> anyhow::Result<()> {
    let cfg = RunConfig::from_options(args)?;
    let store = ttc_results::ResultsStore::open(&cfg.results)?;
    let run_id = match args.run_id.clone().or(args.resume.clone()) {
        Some(id) => id,
        None => store.last_run_id()?,
    };
    if args.shard.is_some() || args.shards.is_some() {
        // One shard's records are not the run's answer: analyse once every shard is done.
        println!("this shard is done; when every shard of run {run_id} is, analyse the run as one:");
        println!("           ttc summary --results {} --run {run_id} (names any shard still missing)", cfg.results.display());
        return Ok(());
    }
    let summary = ttc_results::SummaryOptions {
        results: cfg.results.clone(),
        selection: ttc_results::RunSelection::Run(run_id.clone()),
        ..Default::default()
    };
    let table = ttc_results::cmd::summary::execute(&summary)?;
    println!("\n{table}");
    let report = ttc_results::write_markdown_report(&cfg.results, &run_id)?;
    // The run config already resolved a KPI file path relative to the run file.
    let kpis = match &cfg.kpis {
        Some(serde_yaml::Value::String(p)) => Some(PathBuf::from(p)),
        _ => None,
    };
    let run = store.load_run(&run_id)?;
    let (check, text) = ttc_results::check_report_only(&run, kpis.as_deref())?;
    println!("KPI check (reporting only; `ttc check` fails CI on these):\n{text}");
    let _ = check;
    println!("results:   {}/run_id={run_id}/ (Parquet, one row per request)", cfg.results.display());
    println!("report:    {}", report.display());
    println!("next:      ttc summary --run {run_id} | ttc compare --a baseline --b <policy> --run {run_id}");
    println!("           ttc check --run {run_id} (exit 1 on a failing KPI) | ttc dashboard --results {}", cfg.results.display());
    Ok(())
}

/// Load the engine once for the run. The default model is fetched with pip if it is not cached yet.
pub(crate) fn embedded_backend(cfg: &RunConfig) -> anyhow::Result<Arc<dyn Backend>> {
    let explicit = cfg.backend.model.as_ref().map(PathBuf::from);
    let path = crate::model_path::resolve(explicit, true)?;
    let weights: WeightFormat = match &cfg.backend.weights {
        Some(w) => w.parse().map_err(crate::exit::usage)?,
        None => WeightFormat::Auto,
    };
    eprintln!("loading {} ({weights} weights)...", path.display());
    let mut engine = Engine::load(&path, weights)?;
    if let Some(mb) = cfg.backend.prefix_cache_mb {
        engine.enable_prefix_cache((mb as usize) << 20).map_err(|e| crate::exit::usage(format!("backend.prefix_cache_mb: {e}")))?;
    }
    // The search's cache starts after the plan; a bound below one block is refused now, before anything runs.
    if let Some(mb) = cfg.capacity.as_ref().and_then(|c| c.prefix_cache_mb) {
        engine.new_prefix_cache((mb as usize) << 20).map_err(|e| crate::exit::usage(format!("capacity.prefix_cache_mb: {e}")))?;
    }
    crate::cmd_calibrate::ensure_heads(&mut engine, &cfg.policies)?;
    let engine = Arc::new(engine);
    // Layer indices can only be checked against a loaded model: reject them before the first request.
    for p in &cfg.policies {
        engine.check_policy(p)?;
    }
    Ok(Arc::new(ttc_embedded::EmbeddedBackend::new(engine)))
}
