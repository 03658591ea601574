//! Sampler configuration: what the user writes (YAML/JSON params or CLI flags), validated once.
//!
//! Order of operations (fixed, the same as Hugging Face's warper list and vLLM): temperature, then top-k,
//! then softmax, then the one pruning filter selected by `pruning`. Temperature 0 is greedy argmax and
//! skips every filter.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The pruning filter applied to the tempered (and top-k cut) distribution. See docs/sampling.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pruning {
    /// No filter: sample from the whole (top-k cut) distribution.
    #[default]
    None,
    /// Nucleus (Holtzman et al. 2020): smallest top set whose mass reaches `top_p`.
    TopP,
    /// Min-p (Nguyen et al. 2024): keep p(x) >= `min_p` * max p.
    MinP,
    /// Eta-sampling (Hewitt et al. 2022, HF `EtaLogitsWarper`): keep p(x) >= min(eta, sqrt(eta) * exp(-H)).
    Eta,
    /// Entropy-adaptive nucleus (ours): nucleus of mass `top_p * min(1, H / entropy_threshold)`.
    Entropy,
}

impl Pruning {
    pub fn label(self) -> &'static str {
        match self {
            Pruning::None => "none",
            Pruning::TopP => "top_p",
            Pruning::MinP => "min_p",
            Pruning::Eta => "eta",
            Pruning::Entropy => "entropy",
        }
    }
}

/// A validated sampler configuration. Build it with [`SamplerConfig::validated`] (programmatic use) or
/// deserialize it (serde checks unknown keys, then runs the same validation).
///
/// Neutral values switch a parameter off: `top_k: 0`, `top_p: 1.0`, `min_p: 0.0`, `eta: 0.0`,
/// `entropy_threshold: 0.0`. A parameter that is not neutral but unused by the chosen `pruning` mode is
/// an error, so a policy never silently measures something other than what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSamplerConfig")]
pub struct SamplerConfig {
    /// Softmax temperature; 0 means greedy argmax.
    pub temperature: f32,
    /// Keep only the `top_k` highest logits (ties with the k-th value are kept, as in HF); 0 = off.
    pub top_k: usize,
    /// Nucleus mass for `pruning: top_p`, and the base mass of `pruning: entropy`.
    pub top_p: f32,
    /// Relative probability floor for `pruning: min_p`.
    pub min_p: f32,
    /// Epsilon of eta-sampling (HF `eta_cutoff`), for `pruning: eta`; typical 3e-4 .. 2e-3.
    pub eta: f32,
    /// Entropy (nats) at and above which `pruning: entropy` uses the full `top_p` nucleus.
    pub entropy_threshold: f32,
    /// Which filter prunes the distribution.
    pub pruning: Pruning,
    /// Every filter keeps at least this many tokens (the most probable ones); >= 1.
    pub min_tokens_to_keep: usize,
    /// Seed of the sampler's RNG (ChaCha8): the same seed and logits give the same tokens.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            eta: 0.0,
            entropy_threshold: 0.0,
            pruning: Pruning::None,
            min_tokens_to_keep: 1,
            seed: 0,
        }
    }
}

/// An invalid configuration value, naming the field.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("sampler config field `{field}`: {message}")]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { field, message: message.into() }
}

impl SamplerConfig {
    /// Greedy argmax decoding.
    pub fn greedy() -> Self {
        SamplerConfig { temperature: 0.0, ..Default::default() }
    }

    /// Checks `self` and returns it, or the first invalid field.
    pub fn validated(self) -> Result<Self, ConfigError> {
        self.validate()?;
        Ok(self)
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Range checks, then that the chosen pruning mode has its parameter and no other mode's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(err("temperature", format!("must be a finite number >= 0, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(err("top_p", format!("must be in (0, 1], got {}", self.top_p)));
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return Err(err("min_p", format!("must be in [0, 1), got {}", self.min_p)));
        }
        if !(self.eta >= 0.0 && self.eta < 1.0) {
            return Err(err("eta", format!("must be in [0, 1), got {}", self.eta)));
        }
        if !(self.entropy_threshold.is_finite() && self.entropy_threshold >= 0.0) {
            return Err(err(
                "entropy_threshold",
                format!("must be a finite number of nats >= 0, got {}", self.entropy_threshold),
            ));
        }
        if self.min_tokens_to_keep == 0 {
            return Err(err("min_tokens_to_keep", "must be >= 1"));
        }
        if u32::try_from(self.top_k).is_err() {
            return Err(err("top_k", format!("too large: {}", self.top_k)));
        }
        match self.pruning {
            Pruning::Eta if self.eta == 0.0 => {
                return Err(err("eta", "pruning `eta` needs eta > 0 (e.g. 0.0009)"));
            }
            Pruning::Entropy if self.entropy_threshold == 0.0 => {
                return Err(err("entropy_threshold", "pruning `entropy` needs entropy_threshold > 0 (e.g. 1.5)"));
            }
            _ => {}
        }
        for (field, active, used_by) in self.active_params() {
            if active && !used_by.contains(&self.pruning) {
                let modes: Vec<&str> = used_by.iter().map(|m| m.label()).collect();
                return Err(err(
                    field,
                    format!(
                        "is set but has no effect with pruning `{}`; it is used by pruning {}",
                        self.pruning.label(),
                        modes.join(" / ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// (field, is it non-neutral, the modes that use it).
    fn active_params(&self) -> [(&'static str, bool, &'static [Pruning]); 4] {
        [
            ("top_p", self.top_p < 1.0, &[Pruning::TopP, Pruning::Entropy]),
            ("min_p", self.min_p > 0.0, &[Pruning::MinP]),
            ("eta", self.eta > 0.0, &[Pruning::Eta]),
            ("entropy_threshold", self.entropy_threshold > 0.0, &[Pruning::Entropy]),
        ]
    }

    /// The pruning mode implied by the non-neutral parameters, for configs that omit `pruning`
    /// (e.g. `--top-p 0.9`): entropy_threshold -> entropy; otherwise the one of top_p / min_p / eta set.
    pub fn infer_pruning(&self) -> Result<Pruning, ConfigError> {
        if self.entropy_threshold > 0.0 {
            return Ok(Pruning::Entropy);
        }
        let set: Vec<(&'static str, Pruning)> = [
            (self.top_p < 1.0, "top_p", Pruning::TopP),
            (self.min_p > 0.0, "min_p", Pruning::MinP),
            (self.eta > 0.0, "eta", Pruning::Eta),
        ]
        .into_iter()
        .filter(|(on, _, _)| *on)
        .map(|(_, f, m)| (f, m))
        .collect();
        match set.as_slice() {
            [] => Ok(Pruning::None),
            [(_, mode)] => Ok(*mode),
            [(first, _), (second, _), ..] => Err(err(
                "pruning",
                format!("both `{first}` and `{second}` are set: choose one filter with `pruning`"),
            )),
        }
    }
}

/// The wire form: every field optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSamplerConfig {
    temperature: Option<f32>,
    // Signed so a negative value gets an error naming the field, not serde's generic one.
    top_k: Option<i64>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    eta: Option<f32>,
    entropy_threshold: Option<f32>,
    pruning: Option<Pruning>,
    min_tokens_to_keep: Option<i64>,
    seed: Option<u64>,
}

impl TryFrom<RawSamplerConfig> for SamplerConfig {
    type Error = ConfigError;

    fn try_from(raw: RawSamplerConfig) -> Result<Self, ConfigError> {
        let d = SamplerConfig::default();
        let count = |field: &'static str, v: Option<i64>, default: usize| match v {
            None => Ok(default),
            Some(v) => usize::try_from(v).map_err(|_| err(field, format!("must be an integer >= 0, got {v}"))),
        };
        let mut cfg = SamplerConfig {
            temperature: raw.temperature.unwrap_or(d.temperature),
            top_k: count("top_k", raw.top_k, d.top_k)?,
            top_p: raw.top_p.unwrap_or(d.top_p),
            min_p: raw.min_p.unwrap_or(d.min_p),
            eta: raw.eta.unwrap_or(d.eta),
            entropy_threshold: raw.entropy_threshold.unwrap_or(d.entropy_threshold),
            pruning: Pruning::None,
            min_tokens_to_keep: count("min_tokens_to_keep", raw.min_tokens_to_keep, d.min_tokens_to_keep)?,
            seed: raw.seed.unwrap_or(d.seed),
        };
        cfg.pruning = match raw.pruning {
            Some(p) => p,
            None => cfg.infer_pruning()?,
        };
        cfg.validated()
    }
}
