//! all-mpnet-base-v2: an MPNet encoder (Song et al. 2020, arXiv 2004.09297) written on candle-nn, following
//! Hugging Face transformers' `modeling_mpnet.py`: BERT-like layers plus a T5-style relative position bias
//! shared by all layers, RoBERTa-style positions starting after the padding index, no token types.

use crate::encoder::{ids_tensor, load_tokenizer, max_seq_length, mean_pool_normalize, read_json, token_ids};
use crate::{EmbedError, SentenceEmbedder};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use std::path::Path;
use tokenizers::Tokenizer;

#[derive(Debug, Clone, Deserialize)]
pub struct MpnetConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_pad")]
    pub pad_token_id: u32,
}
fn default_buckets() -> usize {
    32
}
fn default_pad() -> u32 {
    1
}

/// T5/MPNet bucketing of `memory - context` offsets (transformers `MPNetEncoder.relative_position_bucket`,
/// max_distance 128). The logarithmic part is computed in f32 like the torch code.
pub fn relative_position_bucket(relative_position: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = (num_buckets / 2) as i64;
    let n = -relative_position;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    if n < max_exact {
        ret += n;
    } else {
        let ratio = (n as f32 / max_exact as f32).ln() / ((max_distance as f64 / max_exact as f64).ln() as f32);
        let large = max_exact + (ratio * (half - max_exact) as f32) as i64;
        ret += large.min(half - 1);
    }
    ret as usize
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &MpnetConfig) -> candle_core::Result<Layer> {
        let h = c.hidden_size;
        let a = vb.pp("attention");
        Ok(Layer {
            q: linear(h, h, a.pp("attn.q"))?,
            k: linear(h, h, a.pp("attn.k"))?,
            v: linear(h, h, a.pp("attn.v"))?,
            o: linear(h, h, a.pp("attn.o"))?,
            attn_norm: layer_norm(h, c.layer_norm_eps, a.pp("LayerNorm"))?,
            intermediate: linear(h, c.intermediate_size, vb.pp("intermediate.dense"))?,
            output: linear(c.intermediate_size, h, vb.pp("output.dense"))?,
            out_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }

    /// `x`: [1, L, H]; `bias`: [1, heads, L, L].
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let hd = h / heads;
        let split = |t: Tensor| t.reshape((b, l, heads, hd))?.transpose(1, 2)?.contiguous();
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, l, h))?;
        let attn = self.attn_norm.forward(&(self.o.forward(&ctx)? + x)?)?;
        let inter = self.intermediate.forward(&attn)?.gelu_erf()?;
        self.out_norm.forward(&(self.output.forward(&inter)? + attn)?)
    }
}

pub struct Mpnet {
    word: Embedding,
    position: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    relative_bias: Embedding,
    config: MpnetConfig,
    tokenizer: Tokenizer,
    device: Device,
}

impl Mpnet {
    /// Load from a sentence-transformers directory (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path) -> Result<Mpnet, EmbedError> {
        let config: MpnetConfig = serde_json::from_value(read_json(dir.join("config.json"))?)
            .map_err(|e| EmbedError::Config(format!("{}: {e}", dir.join("config.json").display())))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: read-only mmap of a file ttc-assets installed atomically and never rewrites.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let vb = if vb.contains_tensor("mpnet.embeddings.word_embeddings.weight") { vb.pp("mpnet") } else { vb };
        let e = vb.pp("embeddings");
        let h = config.hidden_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), &config))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Positions start at pad+1 and the tokenizer adds 2 special tokens: cap the input length so the
        // position table is never indexed out of range.
        let max_len = max_seq_length(dir, 384)?.min(config.max_position_embeddings - config.pad_token_id as usize - 1);
        Ok(Mpnet {
            word: embedding(config.vocab_size, h, e.pp("word_embeddings"))?,
            position: embedding(config.max_position_embeddings, h, e.pp("position_embeddings"))?,
            emb_norm: layer_norm(h, config.layer_norm_eps, e.pp("LayerNorm"))?,
            relative_bias: embedding(config.relative_attention_num_buckets, config.num_attention_heads, vb.pp("encoder.relative_attention_bias"))?,
            layers,
            tokenizer: load_tokenizer(dir, max_len)?,
            config,
            device,
        })
    }

    /// [1, heads, L, L] bias from the bucketed offsets.
    fn position_bias(&self, l: usize) -> candle_core::Result<Tensor> {
        let buckets: Vec<u32> = (0..l)
            .flat_map(|ctx| {
                (0..l).map(move |mem| {
                    relative_position_bucket(mem as i64 - ctx as i64, self.config.relative_attention_num_buckets, 128) as u32
                })
            })
            .collect();
        let idx = Tensor::from_vec(buckets, (l, l), &self.device)?;
        self.relative_bias.forward(&idx)?.permute((2, 0, 1))?.unsqueeze(0)?.contiguous()
    }

    fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let ids = token_ids(&self.tokenizer, text)?;
        let l = ids.len();
        let input = ids_tensor(&ids, &self.device)?;
        let pad = self.config.pad_token_id;
        let positions: Vec<u32> = (0..l as u32).map(|i| i + pad + 1).collect();
        let positions = Tensor::new(positions.as_slice(), &self.device)?.unsqueeze(0)?;
        let x = (self.word.forward(&input)? + self.position.forward(&positions)?)?;
        let mut x = self.emb_norm.forward(&x)?;
        let bias = self.position_bias(l)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.config.num_attention_heads)?;
        }
        mean_pool_normalize(&x)
    }
}

impl SentenceEmbedder for Mpnet {
    fn name(&self) -> &str {
        "mpnet"
    }
    fn dim(&self) -> usize {
        self.config.hidden_size
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::relative_position_bucket;

    #[test]
    fn buckets_match_the_torch_formula() {
        // Values from a numpy float32 transcription of transformers' MPNetEncoder.relative_position_bucket (num_buckets=32, max_distance=128),
        // offsets = memory - context.
        let cases = [(0, 0), (1, 17), (-1, 1), (7, 23), (-7, 7), (8, 24), (-8, 8), (12, 25), (-20, 10), (-64, 14), (-127, 15), (-300, 15), (300, 31)];
        for (rel, want) in cases {
            assert_eq!(relative_position_bucket(rel, 32, 128), want, "offset {rel}");
        }
    }
}
