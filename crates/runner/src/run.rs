//! `ttc run`: configuration -> suites -> plan -> backend -> runner -> store, with progress and a summary.
//!
//! The CLI calls [`run`] (or [`run_with`] to plug in what lives in other crates: the suite loader, the
//! scorer, a tokenizer, the embedded backend). A run ends [`RunOutcome::Finished`] or
//! [`RunOutcome::Interrupted`] (resume with `--resume RUN_ID`); a mistake in the options, the run file, the
//! data or the backend settings is a [`ConfigError`], anything else a runtime failure. The CLI turns those
//! into exit codes.

use crate::backend::endpoint::redact_str;
use crate::backend::openai::{OpenAiBackend, OpenAiSettings};
use crate::backend::Backend;
use crate::collect::Collector;
use crate::config::sweep::CapacityOptions;
use crate::config::{secs, BackendKind, CapacityConfig, ConfigError, LogFormat, RunConfig, RunOptions, SuiteConfig};
use crate::eval_adapter::EvalAdapter;
use crate::fidelity::{teacher_forced_pass, FidelityJoin};
use crate::config::quality::baseline_policy;
use crate::plan::{build_plan, draw_samples, sample_pool, Plan, SuiteLoader, WorkItem};
use crate::shard::{resolve_shard, shard_settings};
use crate::progress::{Progress, ProgressMode};
use crate::record::{host_info, RunContext};
use crate::loadgen::{apply_suite_max_tokens, make_jobs, Runner, RunnerSettings};
use crate::scoring::Scorer;
use crate::sink::RecordSink;
use crate::tokens::TokenCounter;
use anyhow::Context;
use ttc_types::record::fmt_rate;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use ttc_results::{ResultsStore, RunMeta, RunWriter, Shard, ShardInfo, WriterOptions};
use ttc_types::Record;

/// Builds the embedded backend from the resolved configuration (implemented by the engine side).
pub type EmbeddedFactory = dyn Fn(&RunConfig) -> anyhow::Result<Arc<dyn Backend>> + Send + Sync;

/// What `ttc run` needs from crates this one does not depend on.
#[derive(Default, Clone)]
pub struct Hooks {
    pub suites: Option<Arc<dyn SuiteLoader>>,
    pub scorer: Option<Arc<dyn Scorer>>,
    pub token_counter: Option<Arc<dyn TokenCounter>>,
    pub embedded: Option<Arc<EmbeddedFactory>>,
}

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Everything planned was sent and stored (or, with `dry_run`, printed).
    Finished,
    /// Stopped by Ctrl-C: the requests in flight finished and were stored; `--resume` continues.
    Interrupted,
}

/// `ttc run` with the eval crate's suites and scorer, and OpenAI-compatible backends (the embedded one
/// needs [`Hooks::embedded`]). Blocks on its own tokio runtime.
pub fn run(args: RunOptions) -> anyhow::Result<RunOutcome> {
    run_with(args, Hooks::default())
}

/// A problem the user can fix, reported as a [`ConfigError`].
fn usage(e: impl std::fmt::Display) -> anyhow::Result<RunOutcome> {
    Err(ConfigError(e.to_string()).into())
}

pub fn run_with(args: RunOptions, hooks: Hooks) -> anyhow::Result<RunOutcome> {
    run_mode(args, hooks, None)
}

/// `ttc capacity`: the capacity search alone (no plan measured), with the `--slo` and probe flags applied to the
/// run file's `capacity:` section.
pub fn run_capacity(args: RunOptions, capacity: CapacityOptions, hooks: Hooks) -> anyhow::Result<RunOutcome> {
    run_mode(args, hooks, Some(capacity))
}

fn run_mode(args: RunOptions, hooks: Hooks, capacity_only: Option<CapacityOptions>) -> anyhow::Result<RunOutcome> {
    init_logging(&args);
    let mut cfg = match RunConfig::from_options(&args) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    if let Some(flags) = &capacity_only {
        match flags.apply(cfg.capacity.take()) {
            Ok(c) => cfg.capacity = Some(c),
            Err(e) => return usage(e),
        }
    }
    let only_capacity = capacity_only.is_some();
    let shard = match resolve_shard(&args, &cfg, only_capacity) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    // An object store (`--results s3://...`) is checked before anything is loaded: a wrong URL, missing
    // credentials or an unreachable endpoint is the user's to fix, and better found now than after the model.
    if ttc_results::storage::is_url(&cfg.results) {
        if let Err(e) = ResultsStore::open(&cfg.results) {
            return usage(format!("--results: {e:#}"));
        }
    }
    if let Some(id) = &args.run_id {
        if let Err(e) = ttc_results::store::validate_run_id(id) {
            return usage(format!("--run-id: {e:#}"));
        }
        let exists = ResultsStore::open(&cfg.results).map(|s| s.has_run(id)).unwrap_or(false);
        if shard.is_none() && exists {
            return usage(format!("--run-id {id}: the run exists in `{}`; continue it with --resume {id}", cfg.results.display()));
        }
    }
    if let (Some(s), Ok(store)) = (shard, ResultsStore::open(&cfg.results)) {
        let id = args.run_id.as_deref().or(args.resume.as_deref()).unwrap_or_default();
        if let Some(conflict) = store.shard_conflict(id, s, &cfg.hash(), args.resume.is_some()) {
            return usage(conflict);
        }
    }
    let mut hooks = hooks;
    let loader: Arc<dyn SuiteLoader> = match hooks.suites.clone() {
        Some(l) => l,
        None => {
            // The eval crate loads the suites and, unless a scorer was given, scores with the same items.
            let mut scoring = cfg.scoring.clone();
            if args.dry_run {
                scoring.embedder = None; // nothing is scored: do not load a model
            }
            let adapter = match EvalAdapter::new(&scoring) {
                Ok(a) => Arc::new(a),
                Err(e) => return usage(format!("{e:#}")),
            };
            if hooks.scorer.is_none() {
                hooks.scorer = Some(adapter.clone());
            }
            adapter
        }
    };
    if cfg.until_ci.is_some() && args.resume.is_some() {
        return usage("--until-ci-width/until_ci cannot be combined with --resume (the rounds need the whole run)");
    }
    let mut suites = Vec::new();
    let mut pools = Vec::new();
    for s in &cfg.suites {
        let seed = s.seed.unwrap_or(cfg.seed);
        // Sampling rounds draw from the whole suite (capped at max_samples); the first round is its first `samples`.
        let load_spec = match &cfg.until_ci {
            Some(_) => SuiteConfig { samples: None, ..s.clone() },
            None => s.clone(),
        };
        let items = match loader.load(&load_spec, seed, cfg.data_dir.as_deref()) {
            Ok(v) => v,
            Err(e) => return usage(format!("suite `{}`: {e:#}", s.name)),
        };
        if items.is_empty() {
            return usage(format!("suite `{}` has no items (check `tasks` and the data path)", s.name));
        }
        match &cfg.until_ci {
            Some(u) => {
                let mut pool = sample_pool(items, seed);
                pool.truncate(u.max_samples.map_or(usize::MAX, |m| m.0 as usize));
                suites.push(pool[..s.samples.unwrap_or(pool.len()).min(pool.len())].to_vec());
                pools.push(pool);
            }
            None => suites.push(draw_samples(items, s.samples, seed)),
        }
    }
    // Only a real run creates the results directory; `--dry-run` and `--resume` read what exists.
    let stored = match &args.resume {
        // A shard resumed before it ever wrote (a retried pod) starts from nothing.
        Some(id) if shard.is_some() && !ResultsStore::open(&cfg.results).is_ok_and(|s| s.has_run(id)) => BTreeSet::new(),
        Some(id) => match ResultsStore::open(&cfg.results).and_then(|s| s.existing_keys(id)) {
            Ok(k) => k,
            Err(e) => return usage(format!("--resume {id}: {e:#}")),
        },
        None => BTreeSet::new(),
    };
    // A resumed run's plan holds only what is left; its capacity search (if it still has one to run) needs every
    // sample.
    let capacity_items = (args.resume.is_some() && cfg.capacity.is_some()).then(|| suites.clone());
    let plan = match shard {
        // The whole plan first, so that every shard deals the same samples, then this shard's part.
        Some(s) => build_plan(&cfg.policies, suites, cfg.seed, &BTreeSet::new()).map(|p| {
            let (part, sizes) = p.shard(s.index, s.count, &stored);
            (part, Some(ShardInfo { shard: s, planned_per_shard: sizes }))
        }),
        None => build_plan(&cfg.policies, suites, cfg.seed, &stored).map(|p| (p, None)),
    };
    let (plan, shard_info) = match plan {
        Ok(p) => p,
        Err(e) => return usage(format!("{e:#}")),
    };
    let capacity_plan = match capacity_items.map(|items| build_plan(&cfg.policies, items, cfg.seed, &BTreeSet::new())) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return usage(format!("{e:#}")),
        None => None,
    };
    let start_at = match args.start_at.as_deref().map(humantime::parse_rfc3339_weak).transpose() {
        Ok(t) => t,
        Err(e) => return usage(format!("--start-at: {e} (expected an RFC 3339 UTC time, e.g. 2026-12-02T17:00:00Z)")),
    };
    if args.dry_run {
        print_header(&cfg, &plan);
        if let Some(info) = &shard_info {
            let whole: u64 = info.planned_per_shard.iter().sum();
            println!("shard {} of a plan of {whole} requests (per shard: {:?})\n", info.shard, info.planned_per_shard);
        }
        plan.print(&mut std::io::stdout().lock())?;
        if let Some(c) = &cfg.capacity {
            println!(
                "capacity search after the plan: SLO {}, probes of {} (+{} warm-up) requests of {}, first rate {}, at most {} per policy{}",
                c.slo,
                c.probe_requests,
                c.warmup_requests,
                if c.suites.is_empty() { "every suite".to_string() } else { c.suites.join(", ") },
                c.start_rate,
                c.max_probes,
                c.prefix_cache_mb.map(|mb| format!(", with a {mb} MiB prefix cache")).unwrap_or_default()
            );
        }
        return Ok(RunOutcome::Finished);
    }
    if args.resume.is_some() && cfg.load.sweep.is_some() {
        return usage("--resume: a run with a load sweep cannot be resumed; start it again");
    }
    let backend = match build_backend(&cfg, &hooks) {
        Ok(b) => b,
        Err(e) => return usage(format!("{e:#}")),
    };
    let store = match ResultsStore::create(&cfg.results) {
        Ok(s) => s,
        Err(e) => return usage(format!("--results: {e:#}")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(execute(
        args,
        cfg,
        hooks,
        backend,
        store,
        plan,
        Scope { pools, only_capacity, shard: shard_info, start_at, capacity_plan },
    ))
}

fn init_logging(args: &RunOptions) {
    use tracing_subscriber::EnvFilter;
    let default = if args.quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Ignore "already set": the CLI may have installed a subscriber.
    let _ = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.without_time().with_target(false).try_init(),
    };
}

fn print_header(cfg: &RunConfig, plan: &Plan) {
    let b = &cfg.backend;
    println!(
        "backend: {} {} model={}",
        b.kind.label(),
        b.base_url.as_deref().map(redact_str).unwrap_or_default(),
        b.model.as_deref().unwrap_or("(default)")
    );
    let l = &cfg.load;
    println!(
        "load: {:?} concurrency={} rate={}/s warmup={} timeout={}s retries={}",
        l.arrival, l.concurrency.0, l.rate.0, l.warmup, l.timeout_s.0, l.max_retries
    );
    println!("seed: {}  config hash: {}  planned: {}\n", cfg.seed, cfg.hash(), plan.entries.len());
}

/// The HTTP backend, or the embedded one through its hook. The API key is read here, once.
pub fn build_backend(cfg: &RunConfig, hooks: &Hooks) -> anyhow::Result<Arc<dyn Backend>> {
    let backend = build_inner_backend(cfg, hooks)?;
    // Adaptive policies pick their mode by the load where requests queue, in front of any backend.
    if cfg.policies.iter().any(|p| matches!(p.algorithm, ttc_policy::Algorithm::Adaptive(_))) {
        return Ok(Arc::new(crate::backend::adaptive::AdaptiveBackend::new(backend)));
    }
    Ok(backend)
}

fn build_inner_backend(cfg: &RunConfig, hooks: &Hooks) -> anyhow::Result<Arc<dyn Backend>> {
    let b = &cfg.backend;
    if b.kind == BackendKind::Embedded {
        let Some(make) = &hooks.embedded else {
            anyhow::bail!("the embedded backend is not linked into this build; use --backend openai --base-url URL");
        };
        return make(cfg);
    }
    let base_url = b.base_url.clone().context("backend.base_url is not set")?;
    let api_key = match b.api_key_env.as_deref() {
        Some(var) => match std::env::var(var) {
            Ok(k) if !k.trim().is_empty() => Some(k.trim().to_string()),
            _ => {
                // A public API without a key can only fail; a local server usually needs none.
                if b.kind.preset().is_some_and(|(url, _)| url == base_url) {
                    anyhow::bail!("{} needs an API key: set the environment variable {var}", b.kind.label());
                }
                tracing::info!("{var} is not set; sending requests without an API key");
                None
            }
        },
        None => None,
    };
    let model = b.model.clone().unwrap_or_else(|| "(per policy)".into());
    let backend = OpenAiBackend::new(OpenAiSettings {
        kind: b.kind.label().into(),
        base_url,
        api_key,
        model,
        connect_timeout: secs(b.connect_timeout_s),
        pool_size: cfg.load.concurrency.0.min(1024) as usize,
    })?;
    Ok(Arc::new(backend))
}

/// Adapts the results store's run writer to the runner's sink.
struct StoreSink(Option<RunWriter>);

impl RecordSink for StoreSink {
    fn push(&mut self, record: Record) -> anyhow::Result<()> {
        let w = self.0.as_mut().context("run writer already finished")?;
        w.push(record)
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        match self.0.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        match self.0.take() {
            Some(w) => w.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}

pub use ttc_contract::new_run_id;

/// What `execute` may run beyond the plan: each suite's whole sample pool (for `--until-ci-width` rounds), and
/// whether the run is only a capacity search.
struct Scope {
    pools: Vec<Vec<WorkItem>>,
    only_capacity: bool,
    /// This process's shard of the plan (`--shard`), with the plan's size per shard.
    shard: Option<ShardInfo>,
    /// `--start-at`: when the measured requests start.
    start_at: Option<std::time::SystemTime>,
    /// A resumed run's whole plan, for its capacity search (`plan` then holds only what is left).
    capacity_plan: Option<Plan>,
}

async fn execute(
    args: RunOptions,
    cfg: RunConfig,
    hooks: Hooks,
    backend: Arc<dyn Backend>,
    store: ResultsStore,
    plan: Plan,
    scope: Scope,
) -> anyhow::Result<RunOutcome> {
    let Scope { pools, only_capacity, shard: shard_info, start_at, capacity_plan } = scope;
    let shard: Option<Shard> = shard_info.as_ref().map(|s| s.shard);
    let info = backend.info();
    let config_hash = cfg.hash();
    let planned = plan.entries.len();
    let writer = match (&args.resume, shard_info) {
        (Some(id), None) => store.resume_run(id, writer_options())?,
        (_, shard_info) => {
            let started = start_at.unwrap_or_else(std::time::SystemTime::now);
            let shard_planned = shard_info.as_ref().map(|s| s.planned_per_shard[s.shard.index as usize]);
            let meta = RunMeta {
                run_id: args.run_id.clone().or(args.resume.clone()).unwrap_or_else(new_run_id),
                started_at: humantime::format_rfc3339_seconds(started).to_string(),
                config_hash: config_hash.clone(),
                planned: Some(shard_planned.unwrap_or(planned as u64)),
                project_version: env!("CARGO_PKG_VERSION").into(),
                extra: serde_json::json!({
                    "backend": info.kind, "base_url": info.base_url, "model": info.model, "weights": info.weights,
                    "policies": cfg.policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
                    "suites": cfg.suites.iter().map(|s| &s.name).collect::<Vec<_>>(),
                    "load": cfg.load, "generation": cfg.generation, "kpis": cfg.kpis, "cost": cfg.cost,
                    "fidelity": cfg.fidelity, "until_ci": cfg.until_ci,
                }),
            };
            match shard_info {
                Some(s) => store.start_shard(meta, s, args.resume.is_some(), writer_options())?,
                None => store.start_run(meta, writer_options())?,
            }
        }
    };
    let meta = writer.manifest().meta.clone();
    if meta.config_hash != config_hash {
        tracing::warn!(stored = %meta.config_hash, now = %config_hash, "the configuration differs from the run being resumed");
    }
    let run_id = meta.run_id.clone();
    let ctx = RunContext {
        run_id: run_id.clone(),
        run_started_at: meta.started_at.clone(),
        config_hash,
        project_version: env!("CARGO_PKG_VERSION").into(),
        host: host_info(),
        backend: info.clone(),
    };
    eprintln!(
        "run {run_id}{}: {planned} requests ({} policies, {} suites) on {} {}{}",
        shard.map(|s| format!(" shard {s}")).unwrap_or_default(),
        cfg.policies.len(),
        cfg.suites.len(),
        info.kind,
        info.base_url.as_deref().unwrap_or(&info.model),
        if plan.skipped > 0 { format!(", {} already stored", plan.skipped) } else { String::new() }
    );
    let mode = match (args.quiet, args.log_format) {
        (true, _) => ProgressMode::Hidden,
        (false, LogFormat::Json) => ProgressMode::Log,
        (false, LogFormat::Text) => ProgressMode::Bar,
    };
    // The backend's own model name (for HTTP: `backend.model`; for the engine: its model, not a file path).
    let mut jobs = make_jobs(&plan.entries, &cfg.generation, &info.model);
    apply_suite_max_tokens(&mut jobs, &cfg.suites);
    let fidelity_backend = backend.clone();
    let capacity_backend = backend.clone();
    let runner = Arc::new(Runner::new(
        backend.clone(),
        shard_settings(RunnerSettings::from_config(&cfg), shard),
        ctx.clone(),
        hooks.token_counter.clone(),
    ));
    // Load phases offer their own rate: no token bucket in front of them.
    let load_settings = RunnerSettings { rate: f64::INFINITY, ..RunnerSettings::from_config(&cfg) };
    let load_runner = Arc::new(Runner::new(backend, load_settings, ctx, hooks.token_counter.clone()));

    let (stop, load_stop) = (runner.stop_flag(), load_runner.stop_flag());
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: finishing the requests in flight (Ctrl-C again to abort)");
            stop.store(true, Ordering::Relaxed);
            load_stop.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                // Abort now, as the default SIGINT action would (130 is the shell's code for it).
                std::process::exit(130);
            }
        }
    });

    // Teacher-forced fidelity first, so the replays never share the cores with a measured request.
    let forced = if cfg.fidelity.teacher_forced && !only_capacity {
        teacher_forced_pass(&*fidelity_backend, &jobs, &runner.stop_flag()).await
    } else {
        None
    };
    let output_baseline = cfg.fidelity.output.then(|| baseline_policy(&cfg.policies).map(str::to_string)).flatten();
    let join = (forced.is_some() || output_baseline.is_some())
        .then(|| FidelityJoin::new(forced.unwrap_or_default(), output_baseline));
    let forced_handle = join.as_ref().map(FidelityJoin::forced_handle);
    let sweep = cfg.load.sweep.as_ref().filter(|_| !only_capacity);
    let phases = sweep.map(|s| crate::load::sweep_phases(&jobs, s, cfg.seed));
    let measured = match (&phases, only_capacity) {
        (_, true) => 0,
        (Some(p), _) => crate::load::sweep_size(p),
        (None, _) => planned,
    };
    let expected = measured + cfg.capacity.as_ref().map_or(0, |c| capacity_estimate(c, cfg.policies.len()));
    if !only_capacity {
        runner.warmup(&jobs).await;
    }
    if let Some(at) = start_at {
        crate::shard::wait_until(at).await;
    }
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let seen = cfg.until_ci.as_ref().map(|_| Arc::new(std::sync::Mutex::new(Vec::new())));
    let collector = Collector {
        scorer: hooks.scorer.clone(),
        fidelity: join,
        sink: Box::new(StoreSink(Some(writer))),
        progress: Progress::new(mode, expected as u64),
        seen: seen.clone(),
    }
    .spawn(rx)?;
    // Sampling rounds (--until-ci-width) extend the plain plan; a load sweep or a capacity-only run has none.
    let rounds_apply = phases.is_none() && !only_capacity;
    let mut sent = if rounds_apply { jobs.len() } else { 0 };
    let mut timing = match (phases, only_capacity) {
        (_, true) => crate::loadgen::RunTiming { started: std::time::Instant::now(), wall: std::time::Duration::ZERO },
        (Some(phases), _) => {
            let arrival = sweep.map_or(crate::config::Arrival::Poisson, |s| s.arrival);
            crate::load::run_sweep(&load_runner, phases, arrival, tx.clone()).await
        }
        (None, _) => runner.run(jobs.clone().into(), tx.clone()).await,
    };
    if let (Some(until), Some(seen), true) = (&cfg.until_ci, &seen, rounds_apply) {
        let mut taken: BTreeMap<String, usize> = BTreeMap::new();
        for (s, pool) in cfg.suites.iter().zip(&pools) {
            taken.insert(s.name.clone(), s.samples.unwrap_or(pool.len()).min(pool.len()));
        }
        let pool_sizes: BTreeMap<String, usize> = cfg.suites.iter().zip(&pools).map(|(s, p)| (s.name.clone(), p.len())).collect();
        for round in 2.. {
            if runner.stop_flag().load(Ordering::Relaxed) || !wait_for_records(seen, sent, &tx).await {
                break;
            }
            let records = seen.lock().map(|v| v.clone()).unwrap_or_default();
            let widths = crate::rounds::widths(&records, until.metric.as_deref());
            let next = crate::rounds::next_sizes(&widths, until.width.0, &taken, &pool_sizes);
            eprint!("after round {}:\n{}", round - 1, crate::rounds::describe(&widths, until.width.0));
            if next.is_empty() {
                break;
            }
            let mut new_items = Vec::new();
            for (s, pool) in cfg.suites.iter().zip(&pools) {
                let from = taken[&s.name];
                let to = next.get(&s.name).copied().unwrap_or(from);
                new_items.push(pool[from..to].to_vec());
                taken.insert(s.name.clone(), to);
            }
            eprintln!("round {round}: samples per suite now {next:?} (target CI half-width {})", until.width.0);
            let plan = build_plan(&cfg.policies, new_items, cfg.seed.wrapping_add(round), &BTreeSet::new())?;
            let mut jobs = make_jobs(&plan.entries, &cfg.generation, &info.model);
            apply_suite_max_tokens(&mut jobs, &cfg.suites);
            if let (Some(handle), true) = (&forced_handle, cfg.fidelity.teacher_forced) {
                if let Some(more) = teacher_forced_pass(&*fidelity_backend, &jobs, &runner.stop_flag()).await {
                    handle.lock().map(|mut m| m.extend(more)).ok();
                }
            }
            sent += jobs.len();
            let t = runner.run(jobs.into(), tx.clone()).await;
            timing.wall += t.wall;
        }
    }
    if let (Some(capacity), false) = (&cfg.capacity, runner.stop_flag().load(Ordering::Relaxed)) {
        let t = tokio::time::Instant::now();
        let start = tokio::time::Instant::from_std(timing.started);
        let mut all_jobs = match &capacity_plan {
            Some(p) => make_jobs(&p.entries, &cfg.generation, &info.model),
            None => jobs.clone(),
        };
        apply_suite_max_tokens(&mut all_jobs, &cfg.suites);
        let search_jobs: Vec<_> = all_jobs
            .into_iter()
            .filter(|j| capacity.suites.is_empty() || capacity.suites.contains(&j.entry.item.suite))
            .collect();
        let results = if search_jobs.is_empty() {
            eprintln!("capacity search skipped: none of its suites ({}) is in this run", capacity.suites.join(", "));
            Vec::new()
        } else {
            if let Some(mb) = capacity.prefix_cache_mb {
                match capacity_backend.start_prefix_cache((mb as usize) << 20) {
                    Ok(true) => eprintln!("capacity search: prefix cache on ({mb} MiB); the plan before it ran cold"),
                    Ok(false) => {}
                    Err(e) => eprintln!("capacity search: prefix cache not started ({e}); the search runs without it"),
                }
            }
            let done = args.resume.as_deref().map(|id| stored_searches(&store, id)).unwrap_or_default();
            run_capacity_search(&load_runner, capacity, &search_jobs, cfg.seed, start, done, tx.clone()).await
        };
        timing.wall += t.elapsed();
        for r in &results {
            let upper = r.upper_rps.map_or("not reached".into(), |u| format!("{} r/s", fmt_rate(u)));
            eprintln!(
                "capacity of {} at {}: {} r/s (first failing rate: {upper}; {} probes)",
                r.policy,
                capacity.slo,
                fmt_rate(r.capacity_rps),
                r.probes.len()
            );
        }
    }
    drop(tx);
    let collected = tokio::task::spawn_blocking(move || collector.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the collector thread panicked"))??;
    let s = &collected.tally;
    println!("{}", s.render(timing.wall.as_secs_f64()).trim_end());
    println!("run id: {run_id}  results: {}", store.run_dir(&run_id).display());
    if runner.stop_flag().load(Ordering::Relaxed) {
        eprintln!("run interrupted after {} of {planned} requests; continue with --resume {run_id}", s.total);
        return Ok(RunOutcome::Interrupted);
    }
    Ok(RunOutcome::Finished)
}

/// Waits until the collector has stored `n` records (a round's records are all scored before its widths are
/// computed). False when the collector stopped first (a store failure).
async fn wait_for_records(seen: &std::sync::Mutex<Vec<Record>>, n: usize, tx: &tokio::sync::mpsc::Sender<Record>) -> bool {
    loop {
        if seen.lock().map(|v| v.len() >= n).unwrap_or(false) {
            return true;
        }
        if tx.is_closed() {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Requests a capacity search will probably send (for the progress bar; the search decides as it goes).
fn capacity_estimate(c: &CapacityConfig, policies: usize) -> usize {
    let probes = (c.max_probes as usize).min(6);
    policies * probes * c.probe_requests as usize
}

/// What a resumed run's store already holds of its capacity search.
#[derive(Default)]
struct StoredSearches {
    /// Policies with at least one probe stored: their search ran (a search cut short keeps the probes it ran).
    policies: BTreeSet<String>,
    /// Probe phases stored; new probes are numbered after them, so phase labels stay unique in the run.
    phases: usize,
}

fn stored_searches(store: &ResultsStore, run_id: &str) -> StoredSearches {
    let records = match store.load_run(run_id) {
        Ok(run) => run.records,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the stored capacity probes; searching every policy");
            return StoredSearches::default();
        }
    };
    let probes: Vec<&Record> = records.iter().filter(|r| r.load.is_capacity()).collect();
    let phases: BTreeSet<&str> = probes.iter().filter_map(|r| r.load.phase.as_deref()).collect();
    StoredSearches { policies: probes.iter().map(|r| r.policy.clone()).collect(), phases: phases.len() }
}

/// Searches every policy's capacity, policies in a seeded order, each probe alone on the machine; the policies
/// in `done` (a resumed run's) are not searched again.
async fn run_capacity_search(
    runner: &Arc<Runner>,
    config: &CapacityConfig,
    jobs: &[crate::loadgen::Job],
    seed: u64,
    start: tokio::time::Instant,
    done: StoredSearches,
    out: tokio::sync::mpsc::Sender<Record>,
) -> Vec<crate::capacity::SearchResult> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut policies = crate::load::jobs_by_policy(jobs);
    // seed + 5: a stream of its own (see `load::sweep_phases`).
    policies.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(5)));
    let mut search = crate::capacity::Search { runner, config, start, next_phase: done.phases, out };
    let mut results = Vec::new();
    for (policy, pj) in policies {
        if runner.stop_flag().load(Ordering::Relaxed) {
            break;
        }
        if done.policies.contains(&policy.name) {
            eprintln!("capacity of {}: searched before the run was resumed (its probes are stored)", policy.name);
            continue;
        }
        tracing::info!(policy = %policy.name, slo = %config.slo, "capacity search");
        results.push(search.policy(&policy, &pj).await);
    }
    results
}

/// Part-file flushing: `TTC_FLUSH_RECORDS=N` writes a part every N records (default 64, or every 5 s); a smaller N
/// loses less to a crash at the cost of more files (docs/runner.md).
fn writer_options() -> WriterOptions {
    let mut options = WriterOptions::default();
    if let Some(n) = std::env::var("TTC_FLUSH_RECORDS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0) {
        options.flush_records = n;
    }
    options
}
