//! Exit codes: 0 success, 1 runtime failure, 2 usage error (bad arguments, bad input files), as clap does.

use ttc_engine::EngineError;

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

pub fn code_for(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        return 2;
    }
    if let Some(ee) = e.downcast_ref::<EngineError>() {
        return match ee {
            EngineError::ModelNotFound { .. }
            | EngineError::NotGguf { .. }
            | EngineError::Corrupt { .. }
            | EngineError::UnsupportedArch { .. }
            | EngineError::ContextOverflow { .. }
            | EngineError::InvalidRequest(_)
            | EngineError::ExitHeads { .. } => 2,
            _ => 1,
        };
    }
    1
}
