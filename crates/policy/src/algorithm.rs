//! Every decoding algorithm with its typed parameters. Adding a policy family means one arm here (with its
//! params struct and checks), one strategy module in the engine, and its YAML entry in configs/policies.yaml.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use ttc_sampling::{Pruning, SamplerConfig};

/// Every algorithm with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "algorithm", content = "params", rename_all = "snake_case")]
pub enum Algorithm {
    /// Plain decoding with the run's sampling settings (greedy by default).
    Baseline,
    /// Speculative decoding with a prompt-lookup (n-gram) drafter (Saxena 2023).
    SpeculativeNgram(NgramParams),
    /// Self-speculative decoding: draft with the first layers, verify with the full model (LayerSkip / Draft&Verify).
    SpeculativeSelf(SelfSpecParams),
    /// Early exit after a fixed layer for every token.
    EarlyExitFixed(FixedExitParams),
    /// Confidence-based early exit (CALM).
    EarlyExitConfidence(ConfidenceExitParams),
    /// Dynamic token pruning at sampling time (top-p, entropy-adaptive, min-p, eta).
    TokenPruning(PruningParams),
    /// Adaptive KV-cache shrinking (heavy hitters / attention sinks).
    KvShrink(KvShrinkParams),
    /// Batch repacking in the engine's scheduler (elastic / static).
    Batching(BatchingParams),
    /// Picks another policy per request by rules over its features (`crate::router`).
    Router(crate::router::RouterParams),
    /// Switches between a quality and a fast policy by the current load, with hysteresis (`crate::adaptive`).
    Adaptive(crate::adaptive::AdaptiveParams),
}

/// The algorithm names a policies file may use, in documentation order.
pub const ALGORITHM_NAMES: [&str; 10] = [
    "baseline",
    "speculative_ngram",
    "speculative_self",
    "early_exit_fixed",
    "early_exit_confidence",
    "token_pruning",
    "kv_shrink",
    "batching",
    "router",
    "adaptive",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NgramParams {
    /// Draft tokens proposed per verification step (1..=7, the most one verification carries).
    #[serde(default = "d4")]
    pub lookahead_tokens: usize,
    /// Longest n-gram matched against earlier text (1..=8).
    #[serde(default = "d3")]
    pub max_ngram: usize,
    /// Shortest n-gram worth drafting from (1..=max_ngram). A one-token match is frequent in any text and mostly
    /// wrong on open-ended prompts, where each rejected draft token still costs a verification row.
    #[serde(default = "d1")]
    pub min_ngram: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfSpecParams {
    /// Most draft tokens per verification step (1..=7).
    #[serde(default = "d4")]
    pub lookahead_tokens: usize,
    /// Layers the draft runs (1..n_layer-1).
    #[serde(default = "d24")]
    pub draft_layers: usize,
    /// Stop drafting when the draft's top-1 probability falls below this (0 = never stop early).
    #[serde(default)]
    pub verification_threshold: f64,
    /// How the draft reads layer `draft_layers`: the final norm + LM head (`logit_lens`) or the fitted
    /// translator of `ttc calibrate` (`calibrated`).
    #[serde(default)]
    pub heads: ExitHeadKind,
}

/// How an intermediate layer's hidden state becomes logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitHeadKind {
    /// The final RMSNorm and LM head applied as they are (trained for the last layer only).
    #[default]
    LogitLens,
    /// A per-layer affine translator fitted by `ttc calibrate` (tuned lens), then the LM head.
    Calibrated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedExitParams {
    /// Layers run for every token (1..=n_layer); the rest are skipped.
    pub exit_layer: usize,
    /// `logit_lens` or `calibrated` (see [`ExitHeadKind`]).
    #[serde(default)]
    pub heads: ExitHeadKind,
}

/// How CALM measures the confidence of an intermediate prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceMeasure {
    /// The softmax's largest probability.
    SoftmaxMax,
    /// The largest probability minus the second largest.
    SoftmaxDiff,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceExitParams {
    /// Exit once the confidence reaches this (0..=1; above 1 never exits).
    pub exit_threshold: f64,
    /// Multiplier on the softmax-max confidence before the comparison (>= 0).
    #[serde(default = "one")]
    pub confidence_boost: f64,
    /// First layer count at which an exit is tested.
    #[serde(default = "d24")]
    pub min_layer: usize,
    /// Test an exit every this many layers from `min_layer`.
    #[serde(default = "d2")]
    pub exit_interval: usize,
    /// `softmax_max` or `softmax_diff` (top-1 minus top-2).
    #[serde(default = "softmax_max")]
    pub measure: ConfidenceMeasure,
    /// CALM's decay of the threshold over the output (τ of λ_t = 0.9λ + 0.1λ·e^(−τ·t/N)); 0 = constant.
    #[serde(default)]
    pub position_temp: f64,
    /// `logit_lens` or `calibrated`: which head gives the logits the confidence is computed on (and the exit
    /// token is chosen from).
    #[serde(default)]
    pub heads: ExitHeadKind,
}

/// The pruning filter of a `token_pruning` policy (see docs/sampling.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruningMode {
    TopP,
    Entropy,
    MinP,
    Eta,
}

impl From<PruningMode> for Pruning {
    fn from(m: PruningMode) -> Pruning {
        match m {
            PruningMode::TopP => Pruning::TopP,
            PruningMode::Entropy => Pruning::Entropy,
            PruningMode::MinP => Pruning::MinP,
            PruningMode::Eta => Pruning::Eta,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruningParams {
    /// `top_p`, `entropy`, `min_p` or `eta`.
    pub mode: PruningMode,
    #[serde(default = "one")]
    pub temperature: f64,
    #[serde(default = "one")]
    pub top_p: f64,
    #[serde(default)]
    pub entropy_threshold: f64,
    #[serde(default)]
    pub min_p: f64,
    #[serde(default)]
    pub eta: f64,
    #[serde(default)]
    pub top_k: usize,
    #[serde(default = "d1")]
    pub min_tokens_to_keep: usize,
}

/// Which entries a `kv_shrink` policy evicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvMethod {
    /// Heavy hitters (H2O, Zhang et al. 2023): keep the entries with the most accumulated attention.
    HeavyHitters,
    /// Attention sinks (StreamingLLM, Xiao et al. 2023): keep the first and the most recent entries.
    Sinks,
    /// SnapKV (Li et al. 2024): compress the prompt once after the prefill, keeping per KV head the positions the
    /// last `window` prompt tokens attend to most (pooled); generated tokens are all kept.
    Snapkv,
}

impl KvMethod {
    pub const NAMES: &'static [&'static str] = &["heavy_hitters", "sinks", "snapkv"];

    pub fn name(self) -> &'static str {
        match self {
            KvMethod::HeavyHitters => "heavy_hitters",
            KvMethod::Sinks => "sinks",
            KvMethod::Snapkv => "snapkv",
        }
    }
}

impl std::str::FromStr for KvMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<KvMethod, String> {
        match s {
            "heavy_hitters" | "h2o" => Ok(KvMethod::HeavyHitters),
            "sinks" => Ok(KvMethod::Sinks),
            "snapkv" => Ok(KvMethod::Snapkv),
            other => Err(format!("unknown KV method `{other}` (known: {})", KvMethod::NAMES.join(", "))),
        }
    }
}

/// How the KV budget moves from the full cache to its target over decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecaySchedule {
    Cosine,
    Linear,
    /// The target from the first step.
    None,
}

/// When the KV budget reaches its target: right after the prefill, within a number of generated tokens, or at
/// the request's `max_tokens` (the seed's behaviour, which with short answers barely shrinks). Written as
/// `prefill`, `max_tokens` or a number >= 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    Prefill,
    MaxTokens,
    Tokens(usize),
}

impl Serialize for Horizon {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Horizon::Prefill => s.serialize_str("prefill"),
            Horizon::MaxTokens => s.serialize_str("max_tokens"),
            Horizon::Tokens(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Horizon {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Horizon, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Horizon;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`prefill`, `max_tokens` or a number of generated tokens >= 1")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Horizon, E> {
                Ok(Horizon::Tokens(n as usize))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Horizon, E> {
                if n < 0 {
                    return Err(E::custom(format!("must be `prefill`, `max_tokens` or a number of generated tokens >= 1, got {n}")));
                }
                Ok(Horizon::Tokens(n as usize))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Horizon, E> {
                match s {
                    "prefill" => Ok(Horizon::Prefill),
                    "max_tokens" => Ok(Horizon::MaxTokens),
                    other => Err(E::custom(format!(
                        "must be `prefill`, `max_tokens` or a number of generated tokens >= 1, got `{other}`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for Horizon {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Horizon::Prefill => f.write_str("prefill"),
            Horizon::MaxTokens => f.write_str("max_tokens"),
            Horizon::Tokens(n) => write!(f, "{n}"),
        }
    }
}

/// Adaptive KV-cache shrinking; used by the engine's KV policy module (docs/kv-and-batching.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvShrinkParams {
    /// `heavy_hitters` (H2O), `sinks` (StreamingLLM) or `snapkv` (SnapKV).
    pub method: KvMethod,
    /// Fraction of cached entries evicted at full strength (0 = none, < 1). For `snapkv`, the fraction of the
    /// prompt's entries dropped after the prefill.
    pub shrink_ratio: f64,
    /// How the budget moves from the full cache to the target over decoding: `cosine`, `linear` or `none`.
    #[serde(default = "cosine")]
    pub decay_schedule: DecaySchedule,
    /// When the budget reaches its target: `prefill`, a number of generated tokens (>= 1), or `max_tokens`.
    #[serde(default = "h16")]
    pub horizon: Horizon,
    /// Most recent entries always kept (`heavy_hitters`, `sinks`).
    #[serde(default = "d32")]
    pub recent_window: usize,
    /// First entries always kept (attention sinks).
    #[serde(default = "d4")]
    pub sink_tokens: usize,
    /// Entries evicted at least at once (>= 1): an over-budget cache is cut to budget - evict_block + 1, so the
    /// selection and the moves run once every few tokens instead of every token. 1 = cut exactly to the budget.
    #[serde(default = "d16")]
    pub evict_block: usize,
    /// `snapkv`: the observation window, the last prompt tokens whose attention votes (and which are always kept).
    #[serde(default = "d32")]
    pub window: usize,
    /// `snapkv`: width of the average pooling over the votes (odd, >= 1; 1 = no pooling).
    #[serde(default = "d5")]
    pub pool_kernel: usize,
}

impl Default for KvShrinkParams {
    /// H2O at ratio 0 (no shrinking) with every other param at its documented default.
    fn default() -> KvShrinkParams {
        KvShrinkParams {
            method: KvMethod::HeavyHitters,
            shrink_ratio: 0.0,
            decay_schedule: DecaySchedule::Cosine,
            horizon: h16(),
            recent_window: 32,
            sink_tokens: 4,
            evict_block: 16,
            window: 32,
            pool_kernel: 5,
        }
    }
}

impl KvShrinkParams {
    /// Range checks that need no prompt (the window against the prompt is checked per request).
    pub fn validate(&self) -> Result<(), String> {
        let r = self.shrink_ratio;
        range("shrink_ratio", r, (0.0..1.0).contains(&r), "in [0, 1)")?;
        range(
            "horizon",
            self.horizon,
            self.horizon != Horizon::Tokens(0),
            "`prefill`, `max_tokens` or a number of generated tokens >= 1",
        )?;
        range("evict_block", self.evict_block, self.evict_block >= 1, ">= 1")?;
        range("window", self.window, self.window >= 1, ">= 1 (and at most the prompt length)")?;
        let k = self.pool_kernel;
        range("pool_kernel", k, k >= 1 && k % 2 == 1, "an odd number >= 1")
    }
}

/// How the engine's scheduler forms batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchingMode {
    /// Continuous batching: a finished sequence's slot is refilled at the next step.
    Elastic,
    /// A batch runs until its longest member finishes.
    Static,
}

/// Engine-level batching; used by the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingParams {
    /// `elastic` (continuous batching) or `static` (a batch runs until its longest member finishes).
    pub mode: BatchingMode,
    /// Most sequences decoded together (1..=64).
    #[serde(default = "d8")]
    pub max_batch_size: usize,
}

fn d1() -> usize {
    1
}
fn d2() -> usize {
    2
}
fn d3() -> usize {
    3
}
fn d4() -> usize {
    4
}
fn d5() -> usize {
    5
}
fn d8() -> usize {
    8
}
fn d16() -> usize {
    16
}
fn h16() -> Horizon {
    Horizon::Tokens(16)
}
fn d24() -> usize {
    24
}
fn d32() -> usize {
    32
}
fn one() -> f64 {
    1.0
}
fn softmax_max() -> ConfidenceMeasure {
    ConfidenceMeasure::SoftmaxMax
}
fn cosine() -> DecaySchedule {
    DecaySchedule::Cosine
}

impl Algorithm {
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Baseline => "baseline",
            Algorithm::SpeculativeNgram(_) => "speculative_ngram",
            Algorithm::SpeculativeSelf(_) => "speculative_self",
            Algorithm::EarlyExitFixed(_) => "early_exit_fixed",
            Algorithm::EarlyExitConfidence(_) => "early_exit_confidence",
            Algorithm::TokenPruning(_) => "token_pruning",
            Algorithm::KvShrink(_) => "kv_shrink",
            Algorithm::Batching(_) => "batching",
            Algorithm::Router(_) => "router",
            Algorithm::Adaptive(_) => "adaptive",
        }
    }

    /// The family this algorithm belongs to, for grouping in reports.
    pub fn family(&self) -> &'static str {
        match self {
            Algorithm::Baseline => "baseline",
            Algorithm::SpeculativeNgram(_) | Algorithm::SpeculativeSelf(_) => "speculative_decoding",
            Algorithm::EarlyExitFixed(_) | Algorithm::EarlyExitConfidence(_) => "early_exit",
            Algorithm::TokenPruning(_) => "dynamic_token_pruning",
            Algorithm::KvShrink(_) => "adaptive_kv_cache",
            Algorithm::Batching(_) => "elastic_batch_repacking",
            Algorithm::Router(_) | Algorithm::Adaptive(_) => "hybrid",
        }
    }

    /// Every parameter, defaults included, as compact JSON.
    pub fn params_json(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        v.get("params").map(|p| p.to_string()).unwrap_or_else(|| "{}".into())
    }

    /// Whether the algorithm decodes several requests together (and so needs several in flight).
    pub fn is_batching(&self) -> bool {
        matches!(self, Algorithm::Batching(_))
    }

    /// The sampler this policy decodes with; `None` means the run's default sampling (greedy unless set).
    pub fn sampler_config(&self, seed: u64) -> Option<SamplerConfig> {
        match self {
            Algorithm::TokenPruning(p) => Some(SamplerConfig {
                temperature: p.temperature as f32,
                top_k: p.top_k,
                top_p: p.top_p as f32,
                min_p: p.min_p as f32,
                eta: p.eta as f32,
                entropy_threshold: p.entropy_threshold as f32,
                pruning: p.mode.into(),
                min_tokens_to_keep: p.min_tokens_to_keep,
                seed,
            }),
            _ => None,
        }
    }

    /// Range and consistency checks that need no model; the message names the key and the valid range.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Algorithm::Baseline => Ok(()),
            Algorithm::SpeculativeNgram(p) => {
                range("lookahead_tokens", p.lookahead_tokens, (1..=7).contains(&p.lookahead_tokens), "in 1..=7")?;
                range("max_ngram", p.max_ngram, (1..=8).contains(&p.max_ngram), "in 1..=8")?;
                range("min_ngram", p.min_ngram, (1..=p.max_ngram).contains(&p.min_ngram), "in 1..=max_ngram")
            }
            Algorithm::SpeculativeSelf(p) => {
                range("lookahead_tokens", p.lookahead_tokens, (1..=7).contains(&p.lookahead_tokens), "in 1..=7")?;
                range("draft_layers", p.draft_layers, p.draft_layers >= 1, ">= 1 (and below the model's layer count)")?;
                let t = p.verification_threshold;
                range("verification_threshold", t, (0.0..=1.0).contains(&t), "in [0, 1]")
            }
            Algorithm::EarlyExitFixed(p) => {
                range("exit_layer", p.exit_layer, p.exit_layer >= 1, ">= 1 (and at most the model's layer count)")
            }
            Algorithm::EarlyExitConfidence(p) => {
                let t = p.exit_threshold;
                range("exit_threshold", t, t >= 0.0 && t.is_finite(), "a finite number >= 0 (above 1 never exits)")?;
                let b = p.confidence_boost;
                range("confidence_boost", b, b >= 0.0 && b.is_finite(), "a finite number >= 0")?;
                range("min_layer", p.min_layer, p.min_layer >= 1, ">= 1 (and below the model's layer count)")?;
                range("exit_interval", p.exit_interval, p.exit_interval >= 1, ">= 1")?;
                let pt = p.position_temp;
                range("position_temp", pt, pt >= 0.0 && pt.is_finite(), "a finite number >= 0")
            }
            Algorithm::TokenPruning(_) => self
                .sampler_config(0)
                .expect("pruning has a sampler")
                .validate()
                .map_err(|e| format!("params.{}: {}", e.field, e.message)),
            Algorithm::KvShrink(p) => p.validate(),
            Algorithm::Batching(p) => {
                range("max_batch_size", p.max_batch_size, (1..=64).contains(&p.max_batch_size), "in 1..=64")
            }
            // Its rules were checked while parsing; the policies they name are checked where they are defined.
            Algorithm::Router(_) => Ok(()),
            Algorithm::Adaptive(p) => p.validate(),
        }
    }

    /// The layer counts whose calibrated exit heads this policy reads (empty unless `heads: calibrated`).
    pub fn calibrated_layers(&self, n_layer: usize) -> Vec<usize> {
        match self {
            Algorithm::EarlyExitFixed(p) if p.heads == ExitHeadKind::Calibrated && p.exit_layer < n_layer => {
                vec![p.exit_layer]
            }
            Algorithm::EarlyExitConfidence(p) if p.heads == ExitHeadKind::Calibrated => {
                (p.min_layer..n_layer).step_by(p.exit_interval.max(1)).filter(|&c| c >= 1).collect()
            }
            Algorithm::SpeculativeSelf(p) if p.heads == ExitHeadKind::Calibrated => vec![p.draft_layers],
            _ => Vec::new(),
        }
    }

    /// Checks that need the model's depth (`n_layer` transformer blocks): a layer index past the model is an
    /// error, never silently clamped.
    pub fn validate_for_model(&self, n_layer: usize) -> Result<(), String> {
        match self {
            Algorithm::EarlyExitFixed(p) => {
                range("exit_layer", p.exit_layer, p.exit_layer <= n_layer, &format!("in 1..={n_layer} for this model"))
            }
            Algorithm::EarlyExitConfidence(p) => range(
                "min_layer",
                p.min_layer,
                p.min_layer < n_layer,
                &format!("in 1..={} for this model ({n_layer} layers)", n_layer.saturating_sub(1)),
            ),
            Algorithm::SpeculativeSelf(p) => range(
                "draft_layers",
                p.draft_layers,
                p.draft_layers < n_layer,
                &format!("in 1..={} for this model ({n_layer} layers)", n_layer.saturating_sub(1)),
            ),
            Algorithm::Adaptive(a) => a.targets.values().try_for_each(|p| {
                p.algorithm.validate_for_model(n_layer).map_err(|m| format!("policy `{}` (switched to): {m}", p.name))
            }),
            Algorithm::Router(r) => r.targets.values().try_for_each(|p| {
                p.algorithm.validate_for_model(n_layer).map_err(|m| format!("policy `{}` (routed to): {m}", p.name))
            }),
            _ => Ok(()),
        }
    }

    /// The policies this one hands requests to (a router's targets), with the key each is named at.
    pub fn named_policies(&self) -> Vec<(String, &str)> {
        match self {
            Algorithm::Router(r) => r.named_policies(),
            Algorithm::Adaptive(a) => a.named_policies(),
            _ => Vec::new(),
        }
    }

    /// Hands over the policies [`Algorithm::named_policies`] refers to, resolved by name.
    pub(crate) fn set_targets(&mut self, targets: std::collections::BTreeMap<String, crate::policy::Policy>) {
        match self {
            Algorithm::Router(r) => r.targets = targets,
            Algorithm::Adaptive(a) => a.targets = targets,
            _ => {}
        }
    }
}

fn range(key: &str, value: impl std::fmt::Display, ok: bool, want: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("params.{key}: must be {want}, got {value}"))
    }
}

/// Deserializes params as written into `T`; errors name the key (`params.lookahead: unknown field ...`).
pub(crate) fn typed<T: serde::de::DeserializeOwned>(params: &BTreeMap<String, serde_json::Value>) -> Result<T, String> {
    let value = serde_json::Value::Object(params.clone().into_iter().collect());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            format!("params: {inner}")
        } else {
            format!("params.{path}: {inner}")
        }
    })
}

/// Builds an algorithm from its name and params as written (`params` empty = none), deserializing the params
/// into the algorithm's own struct (unknown keys and wrong types are errors naming the key) and range-checking
/// them.
pub fn algorithm_from_parts(name: &str, params: &BTreeMap<String, serde_json::Value>) -> Result<Algorithm, String> {
    let algorithm = match name {
        "baseline" if params.is_empty() => Algorithm::Baseline,
        "baseline" => return Err("params: baseline takes no params".into()),
        "speculative_ngram" => Algorithm::SpeculativeNgram(typed(params)?),
        "speculative_self" => Algorithm::SpeculativeSelf(typed(params)?),
        "early_exit_fixed" => Algorithm::EarlyExitFixed(typed(params)?),
        "early_exit_confidence" => Algorithm::EarlyExitConfidence(typed(params)?),
        "token_pruning" => Algorithm::TokenPruning(typed(params)?),
        "kv_shrink" => Algorithm::KvShrink(typed(params)?),
        "batching" => Algorithm::Batching(typed(params)?),
        "router" => Algorithm::Router(crate::router::RouterParams::from_written(params)?),
        "adaptive" => Algorithm::Adaptive(typed(params)?),
        other => {
            return Err(format!("algorithm: unknown algorithm `{other}` (known: {})", ALGORITHM_NAMES.join(", ")));
        }
    };
    algorithm.validate()?;
    Ok(algorithm)
}
