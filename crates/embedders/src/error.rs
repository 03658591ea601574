use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Asset(#[from] ttc_assets::AssetError),
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("bad model configuration: {0}")]
    Config(String),
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("model forward failed: {0}")]
    Candle(#[from] candle_core::Error),
}
