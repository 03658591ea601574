//! The model core: everything one forward needs (GGUF reading, weights and their kernels, attention, the KV
//! cache, tokenizer, chat template) and nothing about how tokens are chosen. Decoding strategies
//! (`crate::strategy`) sit above it; nothing here imports them.

pub mod attention;
pub mod cancel;
pub mod chat;
pub mod exit_heads;
mod forward;
pub mod gguf;
pub mod kv;
pub mod prefix_cache;
pub mod q4_tiles;
pub mod q8_tiles;
mod rowwise;
pub mod tokenizer;
pub mod weights;

pub use forward::*;
