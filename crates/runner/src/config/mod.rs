//! Run configuration: the YAML run file ([`file::RunFile`]), command-line overrides ([`args::RunOptions`]), and
//! the resolved [`RunConfig`] the plan and runner use (ripgrep's layering: raw flags -> resolved config).
//!
//! Errors a user can cause name the file, the line and column, and the key path, e.g.
//! `configs/run.yaml:12:16: load.concurrency: invalid value 0: expected an integer >= 1`.

pub mod args;
pub mod file;
pub mod policy;
pub mod quality;
pub mod sweep;

pub use args::{FidelityMode, LogFormat, RunOptions};
pub use file::{
    Arrival, BackendConfig, BackendKind, GenerationConfig, LoadConfig, RunFile, ScoringConfig, SuiteConfig,
};
pub use quality::{FidelityConfig, UntilCiConfig};
pub use policy::{Policy, PolicyFile, PolicyList, PolicySource, RemoteParams};
pub use sweep::{CapacityConfig, Level, StartRate, SweepConfig};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration mistake the user can fix; `run` reports it and exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn cfg_err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Parses YAML into `T`; the error names `file:line:column`, the key path, and what was wrong.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    ttc_policy::parse_yaml(text, file).map_err(|e| ConfigError(e.0))
}

/// Reads and parses a YAML file.
pub fn load_yaml<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    ttc_policy::load_yaml(file).map_err(|e| ConfigError(e.0))
}

/// The backend after presets and overrides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedBackend {
    pub kind: BackendKind,
    pub base_url: Option<String>,
    /// Variable name only; the key is read when the backend is built and never stored.
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub weights: Option<String>,
    /// Embedded: MiB of the engine's prefix cache (None = off). Left out of the config hash when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_cache_mb: Option<u64>,
    pub connect_timeout_s: f64,
}

/// Everything a run needs, resolved and validated. Serialized (sorted) for the config hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    /// The run file, if one was given.
    pub source: Option<PathBuf>,
    pub seed: u64,
    pub results: PathBuf,
    pub policies: Vec<Policy>,
    pub suites: Vec<SuiteConfig>,
    pub data_dir: Option<PathBuf>,
    pub backend: ResolvedBackend,
    pub load: LoadConfig,
    pub generation: GenerationConfig,
    pub scoring: ScoringConfig,
    pub kpis: Option<serde_yaml::Value>,
    pub fidelity: FidelityConfig,
    pub until_ci: Option<UntilCiConfig>,
    /// The run's price (cost columns); absent from the hash when unset, so older runs keep theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<ttc_results::cost::Price>,
    /// Capacity search after the plan (`capacity:` in the run file; `ttc capacity` always has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityConfig>,
}

impl RunConfig {
    /// Loads the run file (or the defaults), applies the command-line overrides and resolves everything.
    pub fn from_options(args: &RunOptions) -> Result<RunConfig, ConfigError> {
        let mut file = match &args.config {
            Some(path) => load_yaml::<RunFile>(path)?,
            None => RunFile::default(),
        };
        // Against the file's suites: `--suites` may leave a search suite out (the search is then skipped), but a
        // name the file does not have is a mistake.
        check_capacity_suites(&file)?;
        args.apply_to(&mut file)?;
        let base_dir = args.config.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
        RunConfig::resolve(file, args.config.clone(), &base_dir, &args.policies)
    }

    /// Resolves a run file whose relative paths are relative to `base_dir`. `select` (from `--policies`)
    /// replaces the file's `select_policies` when non-empty.
    pub fn resolve(
        file: RunFile,
        source: Option<PathBuf>,
        base_dir: &Path,
        select: &[String],
    ) -> Result<RunConfig, ConfigError> {
        let all = match &file.policies {
            PolicySource::Inline(list) => list.0.clone(),
            PolicySource::File(p) => {
                let path = rel(base_dir, p);
                load_yaml::<PolicyFile>(&path)
                    .map_err(|e| cfg_err(format!("{e} (policies file named by `policies:`)")))?
                    .0
                     .0
            }
        };
        let mut seen = BTreeSet::new();
        for p in &all {
            if p.name.trim().is_empty() {
                return Err(cfg_err("policies: a policy has an empty name"));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(cfg_err(format!("policies: the name `{}` is used twice", p.name)));
            }
        }
        let wanted: &[String] = if select.is_empty() { &file.select_policies } else { select };
        let policies = if wanted.is_empty() {
            all.clone()
        } else {
            let mut out = Vec::new();
            for name in wanted {
                match all.iter().find(|p| &p.name == name) {
                    Some(p) if !out.iter().any(|q: &Policy| &q.name == name) => out.push(p.clone()),
                    Some(_) => {}
                    None => {
                        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
                        return Err(cfg_err(format!(
                            "select_policies/--policies: no policy named `{name}` (defined: {})",
                            names.join(", ")
                        )));
                    }
                }
            }
            out
        };
        if policies.is_empty() {
            return Err(cfg_err("policies: no policy to run"));
        }

        if file.suites.is_empty() {
            return Err(cfg_err("suites: no suite to run"));
        }
        let mut names = BTreeSet::new();
        for s in &file.suites {
            if !names.insert(s.name.as_str()) {
                return Err(cfg_err(format!("suites: the suite `{}` is listed twice", s.name)));
            }
        }
        let suites = file
            .suites
            .iter()
            .map(|s| SuiteConfig { path: s.path.as_ref().map(|p| rel(base_dir, p)), ..s.clone() })
            .collect();

        let b = &file.backend;
        let preset = b.kind.preset();
        let base_url = b.base_url.clone().or_else(|| preset.map(|(u, _)| u.to_string()));
        let api_key_env = match b.kind {
            BackendKind::Embedded => None,
            _ => b.api_key_env.clone().or_else(|| preset.map(|(_, k)| k.to_string())),
        };
        if b.kind != BackendKind::Embedded {
            let url = base_url.as_deref().unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let shown = crate::backend::endpoint::redact_str(url);
                return Err(cfg_err(format!("backend.base_url: `{shown}` must start with http:// or https://")));
            }
            if b.model.is_none() {
                if let Some(p) = policies.iter().find(|p| p.remote.as_ref().and_then(|r| r.model.as_ref()).is_none()) {
                    return Err(cfg_err(format!(
                        "backend.model: an HTTP backend needs a model name (set backend.model or --model, or \
                         remote.model in policy `{}`)",
                        p.name
                    )));
                }
            }
        }
        let backend = ResolvedBackend {
            kind: b.kind,
            base_url: if b.kind == BackendKind::Embedded { None } else { base_url },
            api_key_env,
            model: b.model.clone(),
            weights: b.weights.clone(),
            prefix_cache_mb: b.prefix_cache_mb.filter(|&mb| mb > 0),
            connect_timeout_s: b.connect_timeout_s.0,
        };
        quality::check_ci_metric(file.until_ci.as_ref(), &file.fidelity, b.kind == BackendKind::Embedded, &policies)
            .map_err(cfg_err)?;
        let kpis = match file.kpis {
            Some(serde_yaml::Value::String(p)) => {
                Some(serde_yaml::Value::String(rel(base_dir, Path::new(&p)).display().to_string()))
            }
            other => other,
        };
        Ok(RunConfig {
            source,
            seed: file.seed,
            results: file.results,
            policies,
            suites,
            data_dir: file.data_dir.map(|d| rel(base_dir, &d)),
            backend,
            load: file.load,
            generation: file.generation,
            scoring: file.scoring,
            kpis,
            fidelity: file.fidelity,
            until_ci: file.until_ci,
            cost: file.cost,
            capacity: file.capacity,
        })
    }

    /// SHA-256 of the resolved configuration (hex, first 16 chars): equal configs, equal hashes.
    pub fn hash(&self) -> String {
        let json = serde_json::to_value(self).map(|v| v.to_string()).unwrap_or_default();
        hex::encode(Sha256::digest(json.as_bytes()))[..16].to_string()
    }

    pub fn timeout(&self) -> Duration {
        secs(self.load.timeout_s.0)
    }
}

/// Every `capacity.suites` name must be a suite of the run file.
pub fn check_capacity_suites(file: &RunFile) -> Result<(), ConfigError> {
    let Some(c) = &file.capacity else { return Ok(()) };
    match c.suites.iter().find(|s| !file.suites.iter().any(|f| &&f.name == s)) {
        Some(unknown) => {
            let listed: Vec<&str> = file.suites.iter().map(|s| s.name.as_str()).collect();
            Err(cfg_err(format!("capacity.suites: `{unknown}` is not a suite of this run ({})", listed.join(", "))))
        }
        None => Ok(()),
    }
}

/// Seconds to a Duration, saturating (`.inf` means "never").
pub fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || base.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests;
