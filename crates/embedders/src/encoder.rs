//! What MiniLM and MPNet share: the tokenizer set up like sentence-transformers (truncate to
//! `max_seq_length`, no padding), reading the model directory, and mean pooling + L2 normalisation.

use crate::EmbedError;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

pub(crate) fn read_json(path: PathBuf) -> Result<serde_json::Value, EmbedError> {
    let text = std::fs::read_to_string(&path).map_err(|e| EmbedError::Read { path: path.clone(), message: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| EmbedError::Read { path, message: e.to_string() })
}

/// `max_seq_length` from `sentence_bert_config.json` (what sentence-transformers truncates to).
pub(crate) fn max_seq_length(dir: &Path, default: usize) -> Result<usize, EmbedError> {
    let path = dir.join("sentence_bert_config.json");
    if !path.exists() {
        return Ok(default);
    }
    Ok(read_json(path)?.get("max_seq_length").and_then(|v| v.as_u64()).map(|v| v as usize).unwrap_or(default))
}

/// The tokenizer of `dir`, truncating to `max_len` tokens (special tokens included) and never padding:
/// the shipped tokenizer.json pads to 128, which sentence-transformers overrides too.
pub(crate) fn load_tokenizer(dir: &Path, max_len: usize) -> Result<Tokenizer, EmbedError> {
    let path = dir.join("tokenizer.json");
    let mut tok = Tokenizer::from_file(&path).map_err(|e| EmbedError::Read { path: path.clone(), message: e.to_string() })?;
    tok.with_padding(None);
    tok.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
        .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
    Ok(tok)
}

pub(crate) fn token_ids(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, EmbedError> {
    let enc = tok.encode(text, true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
    Ok(enc.get_ids().to_vec())
}

/// Mean over the token axis of `[1, L, H]` hidden states, then `x / max(|x|, 1e-12)` (torch
/// `F.normalize`), as sentence-transformers' Pooling(mean) + Normalize modules do for one unpadded text.
pub(crate) fn mean_pool_normalize(hidden: &Tensor) -> Result<Vec<f32>, EmbedError> {
    let pooled = hidden.mean(1)?.squeeze(0)?.to_dtype(DType::F32)?;
    let v: Vec<f32> = pooled.to_vec1()?;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    Ok(v.into_iter().map(|x| x / norm).collect())
}

pub(crate) fn ids_tensor(ids: &[u32], device: &Device) -> Result<Tensor, EmbedError> {
    Ok(Tensor::new(ids, device)?.unsqueeze(0)?)
}
