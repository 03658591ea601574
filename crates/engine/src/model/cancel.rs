//! Cancellation of a request from outside its decoding loop.
//!
//! Decoding loops already stop at the next token when their event callback returns false. A prompt's prefill
//! emits nothing, so it polls a [`Cancel`] between chunks instead: a client that disconnects during a long
//! prefill frees the engine within one chunk (`Engine::prefill_chunk` tokens), not after the whole prompt.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Says whether the caller has given up on a request. `Cancel::default()` never cancels.
#[derive(Clone, Default)]
pub struct Cancel(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl Cancel {
    /// Cancelled once `check` returns true (e.g. "the event channel's receiver was dropped").
    pub fn when(check: impl Fn() -> bool + Send + Sync + 'static) -> Cancel {
        Cancel(Some(Arc::new(check)))
    }

    /// Cancelled once `flag` is set.
    pub fn flag(flag: Arc<AtomicBool>) -> Cancel {
        Cancel::when(move || flag.load(Ordering::Acquire))
    }

    /// Cancelled when either is.
    pub fn or(self, other: Cancel) -> Cancel {
        match (self.0, other.0) {
            (None, b) => Cancel(b),
            (a, None) => Cancel(a),
            (Some(a), Some(b)) => Cancel::when(move || a() || b()),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f())
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Cancel(check)" } else { "Cancel(never)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_combines_checks() {
        assert!(!Cancel::default().is_cancelled());
        let flag = Arc::new(AtomicBool::new(false));
        let c = Cancel::default().or(Cancel::flag(flag.clone())).or(Cancel::when(|| false));
        assert!(!c.is_cancelled());
        flag.store(true, Ordering::Release);
        assert!(c.is_cancelled());
    }
}
