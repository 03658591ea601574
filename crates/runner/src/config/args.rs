//! `ttc run` options (the flags of `ttc run`, parsed in `ttc-cli`). Each one that is set overrides the matching
//! key of the run file (docs/config.md).

use super::file::{Arrival, BackendKind, NonNegativeF64, NonZero, PositiveF64, RunFile, SuiteConfig};
use super::{ConfigError, UntilCiConfig};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable log lines and progress bars.
    #[default]
    Text,
    /// One JSON object per log line (no progress bars).
    Json,
}

/// Run a benchmark: every selected policy on every sample of every suite, through one backend. `None`, empty
/// and `false` leave the run file's value (or the built-in default) alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    /// Run configuration file (YAML). Without it the built-in defaults apply (docs/config.md).
    pub config: Option<PathBuf>,
    /// Backend: the in-process engine, or an OpenAI-compatible endpoint (`groq` = Groq preset).
    pub backend: Option<BackendKind>,
    /// Base URL of an OpenAI-compatible backend, e.g. http://127.0.0.1:8080/v1.
    pub base_url: Option<String>,
    /// Model: a model name for HTTP backends, a GGUF path for the embedded one.
    pub model: Option<String>,
    /// Environment variable that holds the API key (the key itself is never logged or stored).
    pub api_key_env: Option<String>,
    /// Run only these policies (comma-separated names).
    pub policies: Vec<String>,
    /// Run only these suites (comma-separated); a suite not in the file is added with default settings.
    pub suites: Vec<String>,
    /// Samples drawn per suite (overrides every suite's `samples`).
    pub samples: Option<usize>,
    /// Folder with the real datasets (else bundled samples are used).
    pub data_dir: Option<PathBuf>,
    /// Maximum requests in flight.
    pub concurrency: Option<u64>,
    /// Requests per second: token-bucket limit, and arrival rate for open loops (`inf` = no limit).
    pub rate: Option<f64>,
    /// Token-bucket capacity (default: the concurrency).
    pub burst: Option<f64>,
    /// Arrival process.
    pub arrival: Option<Arrival>,
    /// Warm-up requests sent before measuring (not stored).
    pub warmup: Option<usize>,
    /// Per-attempt timeout in seconds.
    pub timeout: Option<f64>,
    /// Retries after the first attempt, for retryable failures.
    pub max_retries: Option<u32>,
    /// Maximum output tokens per request.
    pub max_tokens: Option<u64>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f64>,
    /// Results directory.
    pub results: Option<PathBuf>,
    /// Seed for sample draws, execution order, Poisson arrivals and retry jitter.
    pub seed: Option<u64>,
    /// Print the plan (policy x suite x sample, in execution order) and exit.
    pub dry_run: bool,
    /// Skip the run file's capacity search (`capacity:`); measure the plan only.
    pub no_capacity: bool,
    /// Continue an interrupted run: requests already stored under RUN_ID are skipped. With --shard/--shards it
    /// continues this shard, or starts it if it never started (so a retried pod picks up where it stopped).
    pub resume: Option<String>,
    /// The run id (default: a new one from the time). Every shard of a sharded run is given the same one.
    pub run_id: Option<String>,
    /// Run only shard I of N of the plan (0-based): samples are split across shards, every policy of a sample
    /// stays on one shard; an open-loop rate is split rate/N per shard (docs/scale-out.md).
    pub shard: Option<ttc_results::Shard>,
    /// Run one of N shards, the index taken from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
    /// SLURM_ARRAY_TASK_ID (Slurm job array, `--array=0-(N-1)`).
    pub shards: Option<u32>,
    /// Start measuring at this UTC time (RFC 3339, e.g. 2026-12-02T17:00:00Z), after loading and warm-up: shards
    /// started together measure together, so their records add up to an aggregate throughput.
    pub start_at: Option<String>,
    /// No progress bars; only errors and the final summary.
    pub quiet: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Fidelity measurements (docs/metrics.md "Fidelity"): `all` = teacher-forced (embedded engine) and
    /// output-level against the baseline policy; `output` = output-level only; `off`.
    pub fidelity: Option<FidelityMode>,
    /// Add samples in rounds until every policy x suite's 95% CI half-width of the metric is at most W.
    pub until_ci_width: Option<f64>,
    /// The metric `--until-ci-width` watches (a quality or `fidelity_*` metric); default: the primary one.
    pub ci_metric: Option<String>,
    /// Most samples per suite that `--until-ci-width` may draw (default: the whole suite).
    pub max_samples: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FidelityMode {
    /// Teacher-forced (embedded engine) and output-level fidelity.
    All,
    /// Only ROUGE-L / exact match against the baseline policy's prediction.
    Output,
    /// No fidelity columns.
    Off,
}

fn flag<T, V: TryInto<T, Error = String>>(name: &str, v: V) -> Result<T, ConfigError> {
    v.try_into().map_err(|e| ConfigError(format!("--{name}: {e}")))
}

impl RunOptions {
    /// Writes the flags that were given into the run file.
    pub fn apply_to(&self, f: &mut RunFile) -> Result<(), ConfigError> {
        if let Some(k) = self.backend {
            if k != f.backend.kind && self.base_url.is_none() {
                // A different backend kind must not inherit the file's URL for another kind.
                f.backend.base_url = None;
                f.backend.api_key_env = None;
            }
            f.backend.kind = k;
        }
        if let Some(u) = &self.base_url {
            f.backend.base_url = Some(u.clone());
        }
        if let Some(m) = &self.model {
            f.backend.model = Some(m.clone());
        }
        if let Some(v) = &self.api_key_env {
            f.backend.api_key_env = Some(v.clone());
        }
        if !self.suites.is_empty() {
            let mut suites = Vec::new();
            for name in &self.suites {
                let s = f.suites.iter().find(|s| &s.name == name).cloned();
                suites.push(s.unwrap_or(SuiteConfig { samples: None, ..SuiteConfig::named(name, 0) }));
            }
            f.suites = suites;
        }
        if let Some(n) = self.samples {
            let n = flag::<NonZero, _>("samples", n as u64)?;
            for s in &mut f.suites {
                s.samples = Some(n.0 as usize);
            }
        }
        if let Some(d) = &self.data_dir {
            f.data_dir = Some(d.clone());
        }
        if let Some(c) = self.concurrency {
            f.load.concurrency = flag::<NonZero, _>("concurrency", c)?;
        }
        if let Some(r) = self.rate {
            f.load.rate = flag::<PositiveF64, _>("rate", r)?;
        }
        if let Some(b) = self.burst {
            f.load.burst = Some(flag::<PositiveF64, _>("burst", b)?);
        }
        if let Some(a) = self.arrival {
            f.load.arrival = a;
        }
        if let Some(w) = self.warmup {
            f.load.warmup = w;
        }
        if let Some(t) = self.timeout {
            f.load.timeout_s = flag::<PositiveF64, _>("timeout", t)?;
        }
        if let Some(r) = self.max_retries {
            f.load.max_retries = r;
        }
        if let Some(m) = self.max_tokens {
            f.generation.max_tokens = flag::<NonZero, _>("max-tokens", m)?;
            // The flag is the last word: it replaces the suites' own limits too.
            f.suites.iter_mut().for_each(|s| s.max_tokens = None);
        }
        if let Some(t) = self.temperature {
            f.generation.temperature = flag::<NonNegativeF64, _>("temperature", t)?;
        }
        if let Some(r) = &self.results {
            f.results = r.clone();
        }
        if let Some(s) = self.seed {
            f.seed = s;
        }
        if let Some(m) = self.fidelity {
            f.fidelity.teacher_forced = m == FidelityMode::All;
            f.fidelity.output = m != FidelityMode::Off;
        }
        if let Some(w) = self.until_ci_width {
            let width = flag::<PositiveF64, _>("until-ci-width", w)?;
            let base = f.until_ci.take();
            f.until_ci = Some(UntilCiConfig {
                width,
                metric: base.as_ref().and_then(|b| b.metric.clone()),
                max_samples: base.and_then(|b| b.max_samples),
            });
        }
        if self.ci_metric.is_some() || self.max_samples.is_some() {
            let Some(u) = f.until_ci.as_mut() else {
                let which = if self.ci_metric.is_some() { "--ci-metric" } else { "--max-samples" };
                return Err(ConfigError(format!("{which}: only meaningful with --until-ci-width W (or `until_ci:` in the run file)")));
            };
            if let Some(m) = &self.ci_metric {
                u.metric = Some(m.clone());
            }
            if let Some(n) = self.max_samples {
                u.max_samples = Some(flag::<NonZero, _>("max-samples", n)?);
            }
        }
        if self.no_capacity {
            f.capacity = None;
        }
        Ok(())
    }
}
