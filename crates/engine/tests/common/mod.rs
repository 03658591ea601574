//! Shared by the real-model tests: where the model is, and one loaded engine per test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use ttc_engine::{Engine, WeightFormat};

/// TTC_MODEL, else the cache `ttc model pull` fills (located, and verified, by ttc-assets). A missing model fails
/// loudly rather than skipping.
pub fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("TTC_MODEL") {
        return PathBuf::from(p);
    }
    ttc_assets::locate(ttc_assets::smollm2_gguf())
        .unwrap_or_else(|e| panic!("{e}: run `ttc model pull` (or set TTC_MODEL) before the tests"))
}

pub fn engine(format: WeightFormat) -> &'static Engine {
    static Q8: OnceLock<Engine> = OnceLock::new();
    static F32: OnceLock<Engine> = OnceLock::new();
    static AUTO: OnceLock<Engine> = OnceLock::new();
    static NATIVE: OnceLock<Engine> = OnceLock::new();
    static Q4: OnceLock<Engine> = OnceLock::new();
    let cell = match format {
        WeightFormat::Q8_0 => &Q8,
        WeightFormat::F32 => &F32,
        WeightFormat::Auto => &AUTO,
        WeightFormat::Native => &NATIVE,
        WeightFormat::Q4_1 => &Q4,
    };
    cell.get_or_init(|| Engine::load(&model_path(), format).expect("load model"))
}
