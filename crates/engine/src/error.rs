//! Engine errors. Each variant names the problem and, where the user can fix it, how.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file not found: {path}\n  fix: run `ttc model pull` to fetch the default model, or pass --model PATH (env TTC_MODEL) to a llama-architecture GGUF file")]
    ModelNotFound { path: PathBuf },
    #[error("{path} is not a GGUF file ({reason})\n  fix: pass --model PATH to a GGUF model file, or run `ttc model pull` for the default model")]
    NotGguf { path: PathBuf, reason: String },
    #[error("{path} is truncated or corrupt: {reason}\n  fix: delete it and run `ttc model pull` again (or re-download the file)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("unsupported model architecture `{arch}` in {path}: only `llama` GGUF models are supported")]
    UnsupportedArch { path: PathBuf, arch: String },
    #[error("exit heads {path}: {reason}\n  fix: run `ttc calibrate` to fit exit heads for this model (they are written beside it)")]
    ExitHeads { path: PathBuf, reason: String },
    #[error("GGUF metadata: {0}")]
    Metadata(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("prompt is {prompt_tokens} tokens; with max_tokens {max_tokens} that exceeds the model's context of {context} tokens\n  fix: shorten the prompt or lower --max-tokens")]
    ContextOverflow { prompt_tokens: usize, max_tokens: usize, context: usize },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller gave up on the request (`GenRequest::cancel`) before it produced a token.
    #[error("the request was cancelled")]
    Cancelled,
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl EngineError {
    /// True for errors the caller made (bad arguments, too long a prompt), false for runtime failures.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, EngineError::ContextOverflow { .. } | EngineError::InvalidRequest(_) | EngineError::ExitHeads { .. })
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// candle's message without the backtrace its `bail!` attaches when `RUST_BACKTRACE` is set: a bad model file
/// is the user's input, reported in one line, not a crash report.
pub(crate) fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        other => other.to_string().lines().collect::<Vec<_>>().join(": "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_messages_drop_the_backtrace() {
        let inner = candle_core::Error::Msg("gguf: string length 9 exceeds remaining file bytes 3".into());
        let e = candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(e.to_string().lines().count() > 2, "candle prints the backtrace");
        assert_eq!(candle_message(&e), "gguf: string length 9 exceeds remaining file bytes 3");
    }
}
