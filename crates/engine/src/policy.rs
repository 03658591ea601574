//! The policy model (typed algorithms and params, one parser for every form of a policies file) lives in the
//! `ttc-policy` crate, below the engine; the engine's decoding strategies read it from here.

pub use ttc_policy::*;
