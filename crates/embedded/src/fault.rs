//! Deliberate worker failures for the tests of the panic boundary and of `/health`. Only the
//! `fault-injection` feature (enabled by test builds of `ttc-server`) compiles them; without it the hooks
//! are empty.

#[cfg(feature = "fault-injection")]
use std::sync::{Arc, Mutex, PoisonError};

/// What the worker does wrong next.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next job panics inside the panic boundary: that request fails, the worker goes on.
    PanicInJob,
    /// The worker thread panics outside any job, before the next one, and stops.
    StopWorker,
}

#[derive(Clone, Default)]
pub(crate) struct Faults {
    #[cfg(feature = "fault-injection")]
    next: Arc<Mutex<Option<Fault>>>,
}

impl Faults {
    #[cfg(feature = "fault-injection")]
    pub(crate) fn set(&self, fault: Fault) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(fault);
    }

    #[cfg(feature = "fault-injection")]
    fn take(&self, fault: Fault) -> bool {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = *next == Some(fault);
        if hit {
            *next = None;
        }
        hit
    }

    /// In the worker loop, outside the panic boundary.
    pub(crate) fn before_job(&self) {
        #[cfg(feature = "fault-injection")]
        if self.take(Fault::StopWorker) {
            panic!("injected fault: the engine worker stops");
        }
    }

    /// Inside a job, within the panic boundary.
    pub(crate) fn in_job(&self) {
        #[cfg(feature = "fault-injection")]
        if self.take(Fault::PanicInJob) {
            panic!("injected fault: a panic inside a job");
        }
    }
}
