//! The error of input a user can fix.

/// A problem with what a command (or the dashboard) was given: its options, the results directory, a KPI file.
/// The message (and its chain of causes) says what and where.
#[derive(Debug)]
pub struct InputError(pub anyhow::Error);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl std::error::Error for InputError {
    /// The wrapped error's causes, so that `{:#}` of an error holding this one prints the whole chain.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

