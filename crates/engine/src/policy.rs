//! The policy model: a policy is a named `algorithm` + `params`, declared in YAML (configs/policies.yaml).
//!
//! Parsing is two-stage so errors can name the file, the line and the key: the file is read as a list of
//! entries with raw `params`, then each entry's params are deserialized into the algorithm's own struct
//! (`deny_unknown_fields`) and range-checked. Every parameter is documented in docs/policies.md.

use serde::{Deserialize, Serialize};
use std::path::Path;
use ttc_sampling::{Pruning, SamplerConfig};

/// A configuration error, located: `file:line: policy `name`: key: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// One policy as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    algorithm: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    params: serde_yaml::Value,
    /// Settings for HTTP backends (read by the runner, not the engine).
    #[serde(default)]
    #[allow(dead_code)]
    remote: Option<serde_yaml::Value>,
    /// Requests in flight at once (read by the runner, not the engine).
    #[serde(default)]
    #[allow(dead_code)]
    concurrency: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policies: Vec<RawPolicy>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    pub algorithm: Algorithm,
}

impl Policy {
    pub fn baseline() -> Policy {
        Policy { name: "baseline".into(), description: Some("plain greedy decoding".into()), algorithm: Algorithm::Baseline }
    }

    /// The algorithm's label (`speculative_ngram`, ...).
    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// The params as JSON text, for records.
    pub fn params_json(&self) -> String {
        self.algorithm.params_json()
    }

    /// The family this policy belongs to, for grouping in reports.
    pub fn family(&self) -> &'static str {
        self.algorithm.family()
    }
}

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
}

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedExitParams {
    /// Layers run for every token (1..=n_layer); the rest are skipped.
    pub exit_layer: usize,
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
    pub measure: String,
    /// CALM's decay of the threshold over the output (τ of λ_t = 0.9λ + 0.1λ·e^(−τ·t/N)); 0 = constant.
    #[serde(default)]
    pub position_temp: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruningParams {
    /// `top_p`, `entropy`, `min_p` or `eta`.
    pub mode: String,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "onef")]
    pub top_p: f64,
    #[serde(default)]
    pub entropy_threshold: f64,
    #[serde(default)]
    pub min_p: f64,
    #[serde(default)]
    pub eta: f64,
    #[serde(default)]
    pub top_k: usize,
    #[serde(default = "one_usize")]
    pub min_tokens_to_keep: usize,
}

/// Adaptive KV-cache shrinking; validated and used by the KV policy module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvShrinkParams {
    /// `heavy_hitters` (H2O) or `sinks` (StreamingLLM).
    pub method: String,
    /// Fraction of cached entries evicted at full strength (0 = none, < 1).
    pub shrink_ratio: f64,
    /// How the budget moves from the full cache to the target over decoding: `cosine`, `linear` or `none`.
    #[serde(default = "cosine")]
    pub decay_schedule: String,
    /// Decode steps over which the schedule reaches the target (0 = the request's max_tokens).
    #[serde(default)]
    pub decay_steps: usize,
    /// Most recent entries always kept.
    #[serde(default = "d32")]
    pub recent_window: usize,
    /// First entries always kept (attention sinks).
    #[serde(default = "d4")]
    pub sink_tokens: usize,
}

/// Engine-level batching; used by the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingParams {
    /// `elastic` (continuous batching) or `static` (a batch runs until its longest member finishes).
    pub mode: String,
    /// Most sequences decoded together (1..=64).
    #[serde(default = "d8")]
    pub max_batch_size: usize,
}

impl BatchingParams {
    /// The scheduler these params describe (`mode` was validated at load).
    pub fn scheduler_config(&self) -> crate::scheduler::SchedulerConfig {
        match self.mode.as_str() {
            "static" => crate::scheduler::SchedulerConfig::static_batches(self.max_batch_size),
            _ => crate::scheduler::SchedulerConfig::elastic(self.max_batch_size),
        }
    }
}

fn d2() -> usize { 2 }
fn d1() -> usize { 1 }
fn d3() -> usize { 3 }
fn d4() -> usize { 4 }
fn d8() -> usize { 8 }
fn d24() -> usize { 24 }
fn d32() -> usize { 32 }
fn one() -> f64 { 1.0 }
fn onef() -> f64 { 1.0 }
fn one_usize() -> usize { 1 }
fn default_temperature() -> f64 { 1.0 }
fn softmax_max() -> String { "softmax_max".into() }
fn cosine() -> String { "cosine".into() }

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
        }
    }

    pub fn family(&self) -> &'static str {
        match self {
            Algorithm::Baseline => "baseline",
            Algorithm::SpeculativeNgram(_) | Algorithm::SpeculativeSelf(_) => "speculative_decoding",
            Algorithm::EarlyExitFixed(_) | Algorithm::EarlyExitConfidence(_) => "early_exit",
            Algorithm::TokenPruning(_) => "dynamic_token_pruning",
            Algorithm::KvShrink(_) => "adaptive_kv_cache",
            Algorithm::Batching(_) => "elastic_batch_repacking",
        }
    }

    pub fn params_json(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        v.get("params").map(|p| p.to_string()).unwrap_or_else(|| "{}".into())
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
                pruning: pruning_mode(&p.mode).unwrap_or(Pruning::None),
                min_tokens_to_keep: p.min_tokens_to_keep,
                seed,
            }),
            _ => None,
        }
    }

    /// Range and consistency checks; the message names the key.
    fn validate(&self) -> std::result::Result<(), String> {
        let range = |key: &str, ok: bool, want: &str| if ok { Ok(()) } else { Err(format!("params.{key}: must be {want}")) };
        match self {
            Algorithm::Baseline => Ok(()),
            Algorithm::SpeculativeNgram(p) => {
                range("lookahead_tokens", (1..=7).contains(&p.lookahead_tokens), "in 1..=7 (see docs/policies.md)")?;
                range("max_ngram", (1..=8).contains(&p.max_ngram), "in 1..=8")?;
                range("min_ngram", (1..=p.max_ngram).contains(&p.min_ngram), "in 1..=max_ngram")
            }
            Algorithm::SpeculativeSelf(p) => {
                range("lookahead_tokens", (1..=7).contains(&p.lookahead_tokens), "in 1..=7 (see docs/policies.md)")?;
                range("draft_layers", p.draft_layers >= 1, ">= 1 (and below the model's layer count)")?;
                range("verification_threshold", (0.0..=1.0).contains(&p.verification_threshold), "in [0, 1]")
            }
            Algorithm::EarlyExitFixed(p) => range("exit_layer", p.exit_layer >= 1, ">= 1 (and at most the model's layer count)"),
            Algorithm::EarlyExitConfidence(p) => {
                range("exit_threshold", p.exit_threshold >= 0.0 && p.exit_threshold.is_finite(), ">= 0 (above 1 never exits)")?;
                range("confidence_boost", p.confidence_boost >= 0.0 && p.confidence_boost.is_finite(), ">= 0")?;
                range("min_layer", p.min_layer >= 1, ">= 1")?;
                range("exit_interval", p.exit_interval >= 1, ">= 1")?;
                range("measure", matches!(p.measure.as_str(), "softmax_max" | "softmax_diff"), "`softmax_max` or `softmax_diff`")?;
                range("position_temp", p.position_temp >= 0.0, ">= 0")
            }
            Algorithm::TokenPruning(p) => {
                let mode = pruning_mode(&p.mode).ok_or_else(|| "params.mode: must be one of top_p, entropy, min_p, eta".to_string())?;
                self.sampler_config(0)
                    .expect("pruning has a sampler")
                    .validate()
                    .map_err(|e| format!("params.{}: {}", e.field, e.message))?;
                let _ = mode;
                Ok(())
            }
            Algorithm::KvShrink(p) => {
                range("method", matches!(p.method.as_str(), "heavy_hitters" | "sinks"), "`heavy_hitters` or `sinks`")?;
                range("shrink_ratio", (0.0..1.0).contains(&p.shrink_ratio), "in [0, 1)")?;
                range("decay_schedule", matches!(p.decay_schedule.as_str(), "cosine" | "linear" | "none"), "`cosine`, `linear` or `none`")
            }
            Algorithm::Batching(p) => {
                range("mode", matches!(p.mode.as_str(), "elastic" | "static"), "`elastic` or `static`")?;
                range("max_batch_size", (1..=64).contains(&p.max_batch_size), "in 1..=64")
            }
        }
    }
}

fn pruning_mode(s: &str) -> Option<Pruning> {
    Some(match s {
        "top_p" => Pruning::TopP,
        "entropy" => Pruning::Entropy,
        "min_p" => Pruning::MinP,
        "eta" => Pruning::Eta,
        _ => return None,
    })
}

fn params<T: serde::de::DeserializeOwned>(v: serde_yaml::Value) -> std::result::Result<T, String> {
    let v = if v.is_null() { serde_yaml::Value::Mapping(Default::default()) } else { v };
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            format!("params: {inner}")
        } else {
            format!("params.{path}: {inner}")
        }
    })
}

fn parse_algorithm(name: &str, p: serde_yaml::Value) -> std::result::Result<Algorithm, String> {
    Ok(match name {
        "baseline" => {
            if !(p.is_null() || p.as_mapping().is_some_and(|m| m.is_empty())) {
                return Err("params: baseline takes no params".into());
            }
            Algorithm::Baseline
        }
        "speculative_ngram" => Algorithm::SpeculativeNgram(params(p)?),
        "speculative_self" => Algorithm::SpeculativeSelf(params(p)?),
        "early_exit_fixed" => Algorithm::EarlyExitFixed(params(p)?),
        "early_exit_confidence" => Algorithm::EarlyExitConfidence(params(p)?),
        "token_pruning" => Algorithm::TokenPruning(params(p)?),
        "kv_shrink" => Algorithm::KvShrink(params(p)?),
        "batching" => Algorithm::Batching(params(p)?),
        other => {
            return Err(format!(
                "algorithm: unknown algorithm `{other}` (known: baseline, speculative_ngram, speculative_self, \
                 early_exit_fixed, early_exit_confidence, token_pruning, kv_shrink, batching)"
            ))
        }
    })
}

/// Parse a policies file's text. `file` names it in errors.
pub fn parse_policies(text: &str, file: &str) -> std::result::Result<Vec<Policy>, PolicyError> {
    let located = |line: usize, message: String| PolicyError { file: file.to_string(), line, message };
    let raw: RawFile = serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        located(line, e.to_string())
    })?;
    let mut out: Vec<Policy> = Vec::new();
    for rp in raw.policies {
        let line = line_of_policy(text, &rp.name);
        let ctx = |m: String| located(line, format!("policy `{}`: {m}", rp.name));
        if out.iter().any(|p| p.name == rp.name) {
            return Err(ctx("name: defined twice".into()));
        }
        if rp.name.is_empty() || rp.name.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(ctx("name: must be non-empty without spaces or commas".into()));
        }
        let algorithm = parse_algorithm(&rp.algorithm, rp.params).map_err(ctx)?;
        algorithm.validate().map_err(ctx)?;
        out.push(Policy { name: rp.name, description: rp.description, algorithm });
    }
    Ok(out)
}

/// Build and validate one policy from its parts (the runner's policy list carries params as JSON).
pub fn policy_from_parts(
    name: &str,
    algorithm: &str,
    description: Option<String>,
    params: serde_json::Value,
) -> std::result::Result<Policy, String> {
    let yaml = serde_yaml::to_value(&params).map_err(|e| format!("params: {e}"))?;
    let algorithm = parse_algorithm(algorithm, yaml).map_err(|m| format!("policy `{name}`: {m}"))?;
    algorithm.validate().map_err(|m| format!("policy `{name}`: {m}"))?;
    Ok(Policy { name: name.to_string(), description, algorithm })
}

/// Read and parse a policies file.
pub fn load_policies(path: &Path) -> std::result::Result<Vec<Policy>, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read policies file: {e}"),
    })?;
    parse_policies(&text, &path.display().to_string())
}

/// The line (1-based) where the entry `name: <name>` is written, for error messages.
fn line_of_policy(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim();
            t.strip_prefix("name:").map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name).unwrap_or(false)
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_family() {
        let text = "policies:\n  - name: baseline\n    algorithm: baseline\n  - name: spec\n    algorithm: speculative_ngram\n    params: {lookahead_tokens: 6}\n";
        let p = parse_policies(text, "p.yaml").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].algorithm, Algorithm::SpeculativeNgram(NgramParams { lookahead_tokens: 6, max_ngram: 3, min_ngram: 1 }));
        assert_eq!(p[1].params_json(), r#"{"lookahead_tokens":6,"max_ngram":3,"min_ngram":1}"#);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "policies:\n  - name: baseline\n    algorithm: baseline\n  - name: spec\n    algorithm: speculative_ngram\n    params:\n      lookahead: 6\n";
        let e = parse_policies(text, "p.yaml").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.to_string().starts_with("p.yaml:4: policy `spec`: params"), "{e}");
        assert!(e.message.contains("unknown field `lookahead`"), "{e}");
    }

    #[test]
    fn wrong_type_and_out_of_range_are_rejected() {
        let bad_type = "policies:\n  - name: ee\n    algorithm: early_exit_fixed\n    params: {exit_layer: many}\n";
        let e = parse_policies(bad_type, "p.yaml").unwrap_err();
        assert!(e.message.contains("params.exit_layer"), "{e}");
        let bad_range = "policies:\n  - name: kv\n    algorithm: kv_shrink\n    params: {method: sinks, shrink_ratio: 1.5}\n";
        let e = parse_policies(bad_range, "p.yaml").unwrap_err();
        assert!(e.message.contains("params.shrink_ratio: must be in [0, 1)"), "{e}");
        let bad_alg = "policies:\n  - name: x\n    algorithm: magic\n";
        assert!(parse_policies(bad_alg, "p.yaml").unwrap_err().message.contains("unknown algorithm `magic`"));
    }

    #[test]
    fn malformed_yaml_names_the_line() {
        let e = parse_policies("policies:\n  - name: a\n   algorithm: [\n", "p.yaml").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }
}

#[cfg(test)]
mod shipped_file {
    #[test]
    fn configs_policies_yaml_is_valid_and_has_the_spec_names() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/policies.yaml");
        let p = super::load_policies(std::path::Path::new(path)).unwrap();
        for name in ["baseline", "early_exit_28", "early_exit_optimized", "speculative_decoding", "speculative_decoding_enhanced", "dynamic_pruning_quality", "adaptive_kv_cache"] {
            assert!(p.iter().any(|x| x.name == name), "missing {name}");
        }
        assert!(p.len() >= 11);
    }
}
