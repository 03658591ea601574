//! The backends the runner builds itself: the OpenAI-compatible HTTP backend (`openai`, with its SSE parser and
//! endpoint handling). The trait and its vocabulary live in `ttc-contract` (re-exported here, so existing paths
//! keep working), beside the other backends every caller shares (`adaptive`, `scripted`); the embedded engine is
//! `ttc-embedded`.

pub mod endpoint;
pub mod openai;
pub mod sse;

pub use ttc_contract::backend::*;
pub use ttc_contract::event::*;
pub use ttc_contract::{adaptive, scripted};
