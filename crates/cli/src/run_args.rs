//! The flags of `ttc run` and `ttc capacity` (`ttc_runner::config::RunOptions`, `CapacityOptions`), and the
//! choices they offer, mirrored from the library's plain enums for clap.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use ttc_runner::config::{self, sweep::CapacityOptions, RunOptions};
use ttc_results::Shard;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable log lines and progress bars.
    Text,
    /// One JSON object per log line (no progress bars).
    Json,
}

impl From<LogFormat> for config::LogFormat {
    fn from(v: LogFormat) -> Self {
        match v {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

/// Run a benchmark: every selected policy on every sample of every suite, through one backend.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run configuration file (YAML). Without it the built-in defaults apply (docs/config.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Backend: the in-process engine, or an OpenAI-compatible endpoint (`groq` = Groq preset).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Base URL of an OpenAI-compatible backend, e.g. http://127.0.0.1:8080/v1.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Model: a model name for HTTP backends, a GGUF path for the embedded one.
    #[arg(long)]
    pub model: Option<String>,
    /// Environment variable that holds the API key (the key itself is never logged or stored).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Run only these policies (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub policies: Vec<String>,
    /// Run only these suites (comma-separated); a suite not in the file is added with default settings.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub suites: Vec<String>,
    /// Samples drawn per suite (overrides every suite's `samples`).
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Folder with the real datasets (else bundled samples are used).
    #[arg(long, env = "TTC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Maximum requests in flight.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u64>,
    /// Requests per second: token-bucket limit, and arrival rate for open loops (`inf` = no limit).
    #[arg(long, value_name = "RPS")]
    pub rate: Option<f64>,
    /// Token-bucket capacity (default: the concurrency).
    #[arg(long)]
    pub burst: Option<f64>,
    /// Arrival process.
    #[arg(long, value_enum)]
    pub arrival: Option<Arrival>,
    /// Warm-up requests sent before measuring (not stored).
    #[arg(long, value_name = "N")]
    pub warmup: Option<usize>,
    /// Per-attempt timeout in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Retries after the first attempt, for retryable failures.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Maximum output tokens per request.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u64>,
    /// Sampling temperature (0 = greedy).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Results directory, or an object store: `s3://bucket/prefix` (credentials and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP; see
    /// docs/scale-out.md).
    #[arg(long, value_name = "DIR|URL")]
    pub results: Option<PathBuf>,
    /// Seed for sample draws, execution order, Poisson arrivals and retry jitter.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the plan (policy x suite x sample, in execution order) and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the run file's capacity search (`capacity:`); measure the plan only.
    #[arg(long)]
    pub no_capacity: bool,
    /// Continue an interrupted run: requests already stored under RUN_ID are skipped. With --shard/--shards it
    /// continues this shard, or starts it if it never started (so a retried pod picks up where it stopped).
    #[arg(long, value_name = "RUN_ID", conflicts_with = "run_id")]
    pub resume: Option<String>,
    /// The run id (default: a new one from the time). Every shard of a sharded run is given the same one.
    #[arg(long, value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Run only shard I of N of the plan (0-based): samples are split across shards, every policy of a sample
    /// stays on one shard; an open-loop rate is split rate/N per shard (docs/scale-out.md).
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<Shard>,
    /// Run one of N shards, the index taken from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
    /// SLURM_ARRAY_TASK_ID (Slurm job array, `--array=0-(N-1)`).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Start measuring at this UTC time (RFC 3339, e.g. 2026-12-02T17:00:00Z), after loading and warm-up: shards
    /// started together measure together, so their records add up to an aggregate throughput.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// No progress bars; only errors and the final summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Fidelity measurements (docs/metrics.md "Fidelity"): `all` = teacher-forced (embedded engine) and
    /// output-level against the baseline policy; `output` = output-level only; `off`.
    #[arg(long, value_enum, value_name = "WHICH")]
    pub fidelity: Option<FidelityMode>,
    /// Add samples in rounds until every policy x suite's 95% CI half-width of the metric is at most W.
    #[arg(long, value_name = "W")]
    pub until_ci_width: Option<f64>,
    /// The metric `--until-ci-width` watches (a quality or `fidelity_*` metric); default: the primary one.
    #[arg(long, value_name = "METRIC")]
    pub ci_metric: Option<String>,
    /// Most samples per suite that `--until-ci-width` may draw (default: the whole suite).
    #[arg(long, value_name = "N")]
    pub max_samples: Option<u64>,
}

impl RunArgs {
    pub fn options(self) -> RunOptions {
        RunOptions {
            config: self.config,
            backend: self.backend.map(Into::into),
            base_url: self.base_url,
            model: self.model,
            api_key_env: self.api_key_env,
            policies: self.policies,
            suites: self.suites,
            samples: self.samples,
            data_dir: self.data_dir,
            concurrency: self.concurrency,
            rate: self.rate,
            burst: self.burst,
            arrival: self.arrival.map(Into::into),
            warmup: self.warmup,
            timeout: self.timeout,
            max_retries: self.max_retries,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            results: self.results,
            seed: self.seed,
            dry_run: self.dry_run,
            no_capacity: self.no_capacity,
            resume: self.resume,
            run_id: self.run_id,
            shard: self.shard,
            shards: self.shards,
            start_at: self.start_at,
            quiet: self.quiet,
            log_format: self.log_format.into(),
            fidelity: self.fidelity.map(Into::into),
            until_ci_width: self.until_ci_width,
            ci_metric: self.ci_metric,
            max_samples: self.max_samples,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FidelityMode {
    /// Teacher-forced (embedded engine) and output-level fidelity.
    All,
    /// Only ROUGE-L / exact match against the baseline policy's prediction.
    Output,
    /// No fidelity columns.
    Off,
}

impl From<FidelityMode> for config::FidelityMode {
    fn from(v: FidelityMode) -> Self {
        match v {
            FidelityMode::All => Self::All,
            FidelityMode::Output => Self::Output,
            FidelityMode::Off => Self::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The in-process engine (candle, GGUF).
    Embedded,
    /// Any OpenAI-compatible endpoint; preset base URL https://api.openai.com/v1, key `OPENAI_API_KEY`.
    Openai,
    /// Groq's OpenAI-compatible API; preset base URL https://api.groq.com/openai/v1, key `GROQ_API_KEY`.
    Groq,
}

impl From<BackendKind> for config::BackendKind {
    fn from(v: BackendKind) -> Self {
        match v {
            BackendKind::Embedded => Self::Embedded,
            BackendKind::Openai => Self::Openai,
            BackendKind::Groq => Self::Groq,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arrival {
    /// Closed loop: `concurrency` workers, each sends its next request when the previous one finished.
    Closed,
    /// Open loop, one request every 1/rate seconds.
    Constant,
    /// Open loop, exponential inter-arrival times with mean 1/rate (seeded).
    Poisson,
}

impl From<Arrival> for config::Arrival {
    fn from(v: Arrival) -> Self {
        match v {
            Arrival::Closed => Self::Closed,
            Arrival::Constant => Self::Constant,
            Arrival::Poisson => Self::Poisson,
        }
    }
}

/// `ttc capacity` flags: the SLO and the probe budget (each overrides the run file's `capacity:` key).
#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    /// SLO every probe's steady state must meet: comma-separated `<stat>_<field><=<seconds>` (stat: mean,
    /// median, pNN; field: e2e_s, ttft_s, tpot_s) and `error_rate<<share>`.
    #[arg(long, value_name = "SPEC")]
    pub slo: Option<String>,
    /// Measured requests per probe (at least 20).
    #[arg(long, value_name = "N")]
    pub probe_requests: Option<u64>,
    /// Requests sent first in each probe and not measured (at least 1).
    #[arg(long, value_name = "N")]
    pub warmup_requests: Option<u64>,
    /// First offered rate, requests/s, or `auto`: 0.7 x the policy's one-at-a-time rate, measured by the pass that
    /// warms the caches before its first probe.
    #[arg(long, value_name = "RPS|auto")]
    pub start_rate: Option<config::StartRate>,
    /// Probes per policy at most.
    #[arg(long, value_name = "N")]
    pub max_probes: Option<u64>,
    /// Stop bisecting when (upper - lower) / lower is at most this.
    #[arg(long, value_name = "X")]
    pub tolerance: Option<f64>,
}

impl CapacityArgs {
    pub fn options(self) -> CapacityOptions {
        CapacityOptions {
            slo: self.slo,
            probe_requests: self.probe_requests,
            warmup_requests: self.warmup_requests,
            start_rate: self.start_rate,
            max_probes: self.max_probes,
            tolerance: self.tolerance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    #[test]
    fn no_flags_leave_every_setting_to_the_run_file() {
        let a: RunArgs = parse_args(&[]).unwrap();
        // TTC_DATA_DIR may be set where the tests run.
        assert_eq!(RunOptions { data_dir: None, ..a.options() }, RunOptions::default());
        let c: CapacityArgs = parse_args(&[]).unwrap();
        assert_eq!(c.options(), CapacityOptions::default());
    }

    #[test]
    fn flags_parse_from_a_command_line() {
        let a: RunArgs = parse_args(&[
            "--config", "c.yaml", "--backend", "groq", "--policies", "a,b", "--suites", "crmarena", "--samples", "5",
            "--concurrency", "8", "--rate", "inf", "--arrival", "poisson", "--results", "out", "--seed", "3", "--dry-run",
            "--resume", "r1", "--quiet", "--log-format", "json", "--max-tokens", "64", "--fidelity", "output",
        ])
        .unwrap();
        let a = a.options();
        assert_eq!(a.policies, vec!["a", "b"]);
        assert_eq!((a.backend, a.arrival), (Some(config::BackendKind::Groq), Some(config::Arrival::Poisson)));
        assert!(a.rate.unwrap().is_infinite());
        assert_eq!((a.samples, a.concurrency, a.seed, a.max_tokens), (Some(5), Some(8), Some(3), Some(64)));
        assert!(a.dry_run && a.quiet);
        assert_eq!((a.resume.as_deref(), a.log_format), (Some("r1"), config::LogFormat::Json));
        assert_eq!(a.fidelity, Some(config::FidelityMode::Output));
        assert!(parse_args::<RunArgs>(&["--arrival", "bursty"]).is_err());
        assert!(parse_args::<RunArgs>(&["--resume", "r1", "--run-id", "r2"]).is_err());
        assert!(parse_args::<RunArgs>(&["--shard", "0/2", "--shards", "2"]).is_err());
    }
}
