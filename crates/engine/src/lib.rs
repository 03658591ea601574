//! ttcbench's embedded inference engine: our own Llama forward on candle 0.11 over GGUF weights, a tokenizer and
//! chat template from the GGUF metadata, an engine-owned KV cache, and the decoding loops the TTC policies need.
//! No async runtime and no HTTP here: callers stream events through a callback.

// Layers, bottom up: `model` (the model core), `engine` (a loaded model, prefill and the plain loop),
// `strategy` (one module per policy family), then the scheduler and the measurements (`fidelity`, `calibrate`,
// `bench`, `kv_bench`) on top. docs/architecture.md has the map.
pub mod bench;
pub mod calibrate;
pub mod engine;
pub mod error;
pub mod fidelity;
pub mod kv_bench;
pub mod model;
pub mod policy;
pub mod scheduler;
pub mod strategy;

// The model core's and the strategies' modules keep their old paths (`ttc_engine::kv`, `ttc_engine::chooser`):
// callers outside the engine need not know the layering.
pub use model::{attention, cancel, chat, exit_heads, gguf, kv, prefix_cache, q8_tiles, tokenizer, weights};
pub use strategy::{chooser, early_exit, kv_shrink, logprobs, route, speculative};

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
