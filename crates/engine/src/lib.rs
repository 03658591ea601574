//! ttcbench's embedded inference engine: our own Llama forward on candle 0.11 over GGUF weights, a tokenizer and
//! chat template from the GGUF metadata, an engine-owned KV cache, and the decoding loops the TTC policies need.
//! No async runtime and no HTTP here: callers stream events through a callback.

pub mod attention;
pub mod bench;
pub mod calibrate;
pub mod cancel;
pub mod chat;
pub mod chooser;
pub mod early_exit;
pub mod engine;
pub mod fidelity;
pub mod error;
pub mod exit_heads;
pub mod gguf;
pub mod kv;
pub mod kv_bench;
pub mod kv_shrink;
pub mod logprobs;
pub mod model;
pub mod policy;
pub mod prefix_cache;
pub mod q8_tiles;
pub mod route;
pub mod scheduler;
pub mod speculative;
pub mod tokenizer;
pub mod weights;

pub use cancel::Cancel;
pub use chat::ChatMessage;
pub use engine::{Emitter, Engine, GenOutput, GenRequest};
pub use error::{EngineError, Result};
pub use exit_heads::{ExitHeadKind, ExitHeads};
pub use gguf::{GgufFile, LlamaConfig};
pub use kv::KvCache;
pub use model::{argmax, LlamaModel, LogitsMode};
pub use tokenizer::GgufTokenizer;
pub use weights::WeightFormat;
pub use policy::{load_policies, parse_policies, Algorithm, Policy};
pub use kv_shrink::{generate_kv_shrink, KvShrinker, ShrinkPlan};
pub use scheduler::{BatchMode, Completion, RequestHandle, Scheduler, SchedulerConfig, StreamItem};
