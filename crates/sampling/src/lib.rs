//! Token sampling for the embedded engine: greedy, temperature, top-k and the dynamic token pruning
//! filters (top-p, min-p, eta, entropy-adaptive nucleus), computed without sorting the vocabulary;
//! per-request pruning stats; and the speculative-decoding verification rules.
//!
//! Works on plain `&[f32]` logits (no tensor library). See docs/sampling.md for the formulas.
//!
//! ```
//! use ttc_sampling::{Sampler, SamplerConfig, Pruning};
//! let cfg = SamplerConfig { temperature: 0.7, top_p: 0.9, pruning: Pruning::TopP, seed: 1, ..Default::default() };
//! let mut sampler = Sampler::new(cfg).unwrap();
//! let token = sampler.sample(&[0.5, 3.0, 1.0, -2.0]).unwrap();
//! assert!(token < 4);
//! ```

pub mod candidates;
pub mod config;
pub mod rank;
pub mod reference;
pub mod sampler;
mod simd;
pub mod stats;
pub mod verify;

pub use candidates::{Candidates, CandidatesError};
pub use config::{ConfigError, Pruning, SamplerConfig};
pub use sampler::{greedy, SampleError, Sampler, SamplerRng};
pub use stats::{PruningSummary, SamplerStats};
pub use verify::{verify_greedy, verify_stochastic, DraftDist, Verification, VerifyError};
