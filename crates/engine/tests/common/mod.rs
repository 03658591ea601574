//! Shared by the real-model tests: where the model is, and one loaded engine per test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use ttc_engine::{Engine, WeightFormat};

/// TTC_MODEL, else the cache `ttc model pull` fills. The tests need the real model: fetch it first
/// (`cargo run -p ttc-cli -- model pull`); a missing model fails loudly rather than skipping.
pub fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("TTC_MODEL") {
        return PathBuf::from(p);
    }
    let home = std::env::var("TTC_HOME").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/ttcbench")
    });
    let p = home.join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "model not found at {}: run `ttc model pull` (or set TTC_MODEL) before the tests", p.display());
    p
}

pub fn engine(format: WeightFormat) -> &'static Engine {
    static Q8: OnceLock<Engine> = OnceLock::new();
    static F32: OnceLock<Engine> = OnceLock::new();
    static AUTO: OnceLock<Engine> = OnceLock::new();
    static NATIVE: OnceLock<Engine> = OnceLock::new();
    let cell = match format {
        WeightFormat::Q8_0 => &Q8,
        WeightFormat::F32 => &F32,
        WeightFormat::Auto => &AUTO,
        WeightFormat::Native => &NATIVE,
    };
    cell.get_or_init(|| Engine::load(&model_path(), format).expect("load model"))
}
