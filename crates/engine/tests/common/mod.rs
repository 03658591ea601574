//! Shared by the real-model tests: where the model is, and one loaded engine per test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use ttc_engine::{Engine, LogitsMode, WeightFormat};

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

/// Log-softmax (f64) of the last position after prefilling `prompt`: step-0 log-probabilities.
pub fn step0_logprobs(engine: &Engine, prompt: &[u32]) -> Vec<f64> {
    let mut cache = engine.model.new_cache().unwrap();
    let row = engine.model.forward(prompt, &mut cache, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap().remove(0);
    let max = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}
