//! The policy model shared by every command: `ttc run`, `ttc policies`, `ttc serve`, `ttc generate` and
//! `ttc bench` read policies through [`load_policies`] / [`PolicySource`], so a policies file is accepted or
//! rejected identically everywhere. See docs/policies.md for every algorithm and parameter.

pub mod adaptive;
pub mod algorithm;
pub mod policy;
pub mod router;
pub mod yaml;

pub use algorithm::{
    Algorithm, BatchingMode, BatchingParams, ConfidenceExitParams, ConfidenceMeasure, DecaySchedule, ExitHeadKind,
    FixedExitParams,
    Horizon, KvMethod, KvShrinkParams, NgramParams, PruningMode, PruningParams, SelfSpecParams, ALGORITHM_NAMES,
};
pub use adaptive::{AdaptiveParams, LoadSignal, Mode};
pub use router::{Feature, Features, RouteTags, RouterParams};
pub use policy::{Policy, PolicyFile, PolicyList, PolicySource, RemoteParams};
pub use yaml::{load_yaml, parse_yaml, YamlError};

use std::path::Path;

/// Parses a policies file's text (any documented form). `file` names it in errors.
pub fn parse_policies(text: &str, file: &Path) -> Result<Vec<Policy>, YamlError> {
    parse_yaml::<PolicyFile>(text, file).map(|f| f.0 .0)
}

/// Reads and parses a policies file (any documented form).
pub fn load_policies(path: &Path) -> Result<Vec<Policy>, YamlError> {
    load_yaml::<PolicyFile>(path).map(|f| f.0 .0)
}

#[cfg(test)]
mod tests;
