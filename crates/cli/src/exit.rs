//! The one exit-code rule of `ttc`, decided here and nowhere else:
//!
//! - 0: the command did what it was asked;
//! - 1: a runtime failure (the machine, the network, a crashed worker) or a failing gate (`ttc check`);
//! - 2: a usage error or bad input (flags, run and KPI files, datasets, model files, results directories);
//! - 130: a run stopped by Ctrl-C (the shell's convention for an interrupt; `--resume` continues it).
//!
//! clap exits 2 itself on flags it cannot parse. Commands return an [`Outcome`] or an error; the library
//! crates return typed errors (never codes), and [`is_usage`] says which of them are the user's to fix.

use std::process::ExitCode;
use ttc_assets::AssetError;
use ttc_embedders::EmbedError;
use ttc_engine::EngineError;
use ttc_eval::EvalError;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A gate was evaluated and failed (`ttc check`): exit 1, without an error message.
    GateFailed,
    /// The run was interrupted; what finished is stored.
    Interrupted,
}

/// An error the user caused with their arguments.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for returning a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit code of a command's result; an error is printed first, on one `error:` line and its context.
pub fn finish(result: anyhow::Result<Outcome>) -> ExitCode {
    let code = match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::GateFailed) => 1,
        Ok(Outcome::Interrupted) => 130,
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_usage(&e) {
                2
            } else {
                1
            }
        }
    };
    ExitCode::from(code)
}

/// Whether any error in the chain is one the user can fix by changing what they gave the command. An embedder
/// missing from the cache is one (with `--offline`, the only way to get that error), like a missing model file.
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<ttc_runner::config::ConfigError>()
            || cause.is::<ttc_results::cmd::InputError>()
            || cause.is::<ttc_server::UsageError>()
            || cause.downcast_ref::<EngineError>().is_some_and(engine_error_is_usage)
            || cause.downcast_ref::<EvalError>().is_some_and(|e| !matches!(e, EvalError::Embed(_)))
            || cause.downcast_ref::<EmbedError>().is_some_and(|e| matches!(e, EmbedError::Asset(AssetError::NotCached { .. })))
    })
}

/// A model file the user pointed at (missing, not GGUF, corrupt, another architecture) or a request they
/// made is theirs to fix; a failing tensor computation is not.
fn engine_error_is_usage(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::ModelNotFound { .. }
            | EngineError::NotGguf { .. }
            | EngineError::Corrupt { .. }
            | EngineError::UnsupportedArch { .. }
            | EngineError::ContextOverflow { .. }
            | EngineError::InvalidRequest(_)
            | EngineError::ExitHeads { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_map_to_their_kind_through_context() {
        use anyhow::Context;
        let wrapped = Err::<(), _>(usage("--x: bad")).context("while starting").unwrap_err();
        assert!(is_usage(&wrapped));
        assert!(is_usage(&anyhow::Error::new(ttc_runner::config::ConfigError("run.yaml: bad".into()))));
        assert!(is_usage(&anyhow::Error::new(EngineError::ModelNotFound { path: "m.gguf".into() })));
        assert!(!is_usage(&anyhow::Error::new(EngineError::Cancelled)));
        assert!(is_usage(&anyhow::Error::new(EvalError::UnknownMetric("x".into()))));
        let uncached = EmbedError::Asset(AssetError::NotCached { asset: "minilm".into(), path: "m.safetensors".into() });
        assert!(is_usage(&anyhow::Error::new(EvalError::Embed(uncached))), "found as the source of EvalError::Embed");
        assert!(!is_usage(&anyhow::Error::new(EvalError::Embed(EmbedError::Tokenizer("x".into())))));
        assert!(!is_usage(&anyhow::anyhow!("disk full")));
    }
}
