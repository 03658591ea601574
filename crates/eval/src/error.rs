//! Errors a user can cause with data or flags. Messages name the file, line and field, or the flag.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: file not found ({hint})")]
    MissingFile { path: PathBuf, hint: String },

    /// (`error` is not a `source`: the message already says it, and a chain would print it twice.)
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    /// A dataset line or item that does not have the expected shape.
    #[error("{path}:{line}: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },

    #[error("unknown suite `{0}`; known suites: {known} (with --suite-file)", known = ttc_types::Suite::NAMES.join(", "))]
    UnknownSuite(String),

    #[error("suite {suite} has no task {task:?}; its tasks are: {known}")]
    UnknownTask { suite: String, task: String, known: String },

    #[error("unknown metric `{0}`; run `ttc suites --metrics` to list them")]
    UnknownMetric(String),

    /// A flag with a value the command cannot use (the message names the flag).
    #[error("{0}")]
    BadFlag(String),

    #[error("gold workflow: {0}")]
    GoldWorkflow(String),

    #[error("embedding failed: {0}")]
    Embed(#[from] ttc_embedders::EmbedError),
}

impl EvalError {
    pub(crate) fn malformed(path: &std::path::Path, line: usize, message: impl Into<String>) -> EvalError {
        EvalError::Malformed { path: path.to_path_buf(), line, message: message.into() }
    }
}
