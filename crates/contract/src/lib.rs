//! The contract at the bottom of the workspace: what a backend, the runner (`ttc-runner`) and `ttc serve` agree
//! on, with none of their weight (no engine, store, HTTP client or scorer here).
//!
//! - [`Backend`]: a [`GenRequest`] in, a stream of timed [`GenEvent`]s out, ending in one `Finished` that carries
//!   the usage and the policy's stats; [`BackendError`] for a failed attempt.
//! - [`record`]: the stored [`Record`] of one request, built from its events the same way for every backend and
//!   for served traffic; [`RecordSink`]: where records go (the store's `RunWriter` implements it).
//! - Backends every caller shares: [`adaptive`] (load switching in front of any backend) and [`scripted`] (a
//!   backend that plays a script, for tests).

pub mod adaptive;
pub mod backend;
pub mod event;
pub mod record;
pub mod scripted;
pub mod sink;
pub mod tokens;

pub use backend::{Backend, BackendError, BackendInfo, ChatMessage, GenRequest};
pub use event::{event_channel, EventItem, EventSender, EventStream, GenEvent};
pub use record::{build_record, host_info, new_run_id, Outcome, RunContext, WorkItem};
pub use sink::{MemorySink, RecordSink};
pub use tokens::{TokenCounter, WordCounter};
pub use ttc_types::Record;
