//! all-MiniLM-L6-v2: candle-transformers' BERT, then mean pooling and L2 normalisation.

use crate::encoder::{ids_tensor, load_tokenizer, max_seq_length, mean_pool_normalize, read_json, token_ids};
use crate::{EmbedError, SentenceEmbedder};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use tokenizers::Tokenizer;

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    device: Device,
}

impl MiniLm {
    /// Load from a sentence-transformers directory (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
        let config: Config = serde_json::from_value(read_json(dir.join("config.json"))?)
            .map_err(|e| EmbedError::Config(format!("{}: {e}", dir.join("config.json").display())))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only; ttc-assets installs it atomically and never rewrites it.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config)?;
        let tokenizer = load_tokenizer(dir, max_seq_length(dir, 256)?)?;
        Ok(MiniLm { model, tokenizer, dim: config.hidden_size, device })
    }

    fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let ids = token_ids(&self.tokenizer, text)?;
        let input = ids_tensor(&ids, &self.device)?;
        let token_types = input.zeros_like()?;
        let mask = Tensor::ones_like(&input)?;
        let hidden = self.model.forward(&input, &token_types, Some(&mask))?;
        mean_pool_normalize(&hidden)
    }
}

impl SentenceEmbedder for MiniLm {
    fn name(&self) -> &str {
        "minilm"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    /// Texts are encoded one at a time: no padding, so each result is exactly the single-text forward.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }
}
