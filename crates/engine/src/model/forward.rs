//! Our own Llama forward (candle-transformers' `quantized_llama` keeps its KV cache private and returns only
//! last-position logits; the policies need both).
//!
//! Activations are 2-D, (rows, hidden), so the weight matmuls of several sequences can be stacked into one
//! (selective batching, Orca); attention runs per sequence against that sequence's own cache.
//! Every row is computed independently of the others in its forward (Q8_0 tiles in `q8_tiles`, row-by-row attention
//! in `attention`), so prefill, speculative verification and batches reproduce one-token steps bit for bit.
//! Layout facts for llama GGUF (engine.md §7.2): interleaved RoPE (`rope_i`, llama.cpp permutes the HF q/k
//! weights), GQA with kv head j serving query heads j*r..j*r+r-1, tied LM head when `output.weight` is absent.

use crate::model::attention;
use crate::model::rowwise;
use crate::model::cancel::Cancel;
use crate::error::{candle_message, EngineError, Result};
use crate::model::gguf::{GgufFile, LlamaConfig};
use crate::model::kv::{KvCache, LayerKv};
use crate::model::weights::{Linear, WeightFormat};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

pub struct Block {
    /// RMSNorm gains.
    attn_norm: Vec<f32>,
    /// q, k and v projections fused along the output dim (q pre-scaled by 1/sqrt(head_dim)).
    qkv: Linear,
    o: Linear,
    ffn_norm: Vec<f32>,
    /// gate and up projections fused.
    gate_up: Linear,
    down: Linear,
}

pub struct LlamaModel {
    pub cfg: LlamaConfig,
    pub format: WeightFormat,
    embed: Tensor,
    pub blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    /// RoPE tables (context, head_dim / 2), row-major.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Token rows run through the model so far (all sequences, all forwards): lets tests and gauges see how much
    /// work a request really cost, e.g. that a cancelled prefill stopped early.
    forwarded: std::sync::atomic::AtomicU64,
}

/// Which positions of a forward need logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// Only the last position (plain decoding).
    Last,
    /// Every position (speculative verification).
    All,
    /// None (prefill of a prefix whose logits are not needed).
    None,
}

/// One sequence's share of a batched forward.
pub struct SeqInput<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    pub logits: LogitsMode,
}

impl LlamaModel {
    pub fn load(file: &mut GgufFile, format: WeightFormat) -> Result<LlamaModel> {
        let cfg = file.llama_config()?;
        let dev = Device::Cpu;
        let path = file.path.clone();
        let mut tensor = |name: &str| -> Result<QTensor> {
            if !file.content.tensor_infos.contains_key(name) {
                return Err(EngineError::Metadata(format!("tensor `{name}` missing from {}", path.display())));
            }
            file.content
                .tensor(&mut file.reader, name, &dev)
                .map_err(|e| EngineError::Corrupt { path: path.clone(), reason: format!("tensor `{name}`: {}", candle_message(&e)) })
        };
        let tok_embd = tensor("token_embd.weight")?;
        let embed = tok_embd.dequantize(&dev)?;
        let norm = tensor("output_norm.weight")?.dequantize(&dev)?;
        let lm_head_q = match tensor("output.weight") {
            Ok(t) => t,
            Err(_) => tensor("token_embd.weight")?,
        };
        let lm_head = Linear::from_parts(vec![lm_head_q], format)?;
        let q_scale = 1.0 / (cfg.head_dim as f64).sqrt();
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            // Folding the attention scale into W_q saves one op per layer; RoPE is linear, so it commutes.
            let qkv_parts = vec![tensor(&p("attn_q"))?, tensor(&p("attn_k"))?, tensor(&p("attn_v"))?];
            blocks.push(Block {
                attn_norm: tensor(&p("attn_norm"))?.dequantize(&dev)?.flatten_all()?.to_vec1()?,
                qkv: Linear::from_parts_scaled(qkv_parts, &[q_scale, 1.0, 1.0], format)?,
                o: Linear::from_parts(vec![tensor(&p("attn_output"))?], format)?,
                ffn_norm: tensor(&p("ffn_norm"))?.dequantize(&dev)?.flatten_all()?.to_vec1()?,
                gate_up: Linear::from_parts(vec![tensor(&p("ffn_gate"))?, tensor(&p("ffn_up"))?], format)?,
                down: Linear::from_parts(vec![tensor(&p("ffn_down"))?], format)?,
            });
        }
        let (cos, sin) = rope_tables(&cfg)?;
        let (cos, sin) = (cos.flatten_all()?.to_vec1()?, sin.flatten_all()?.to_vec1()?);
        Ok(LlamaModel { cfg, format, embed, blocks, norm, lm_head, cos, sin, forwarded: Default::default() })
    }

    /// The kernels the weight matrices run, with how many matrices use each: "q4_1 tiles (avx512-vnni) x120, ...".
    pub fn kernels(&self) -> String {
        let mut count = std::collections::BTreeMap::<&str, usize>::new();
        let layers = self.blocks.iter().flat_map(|b| [&b.qkv, &b.o, &b.gate_up, &b.down]);
        for l in layers.chain([&self.lm_head]) {
            *count.entry(l.kernel()).or_default() += 1;
        }
        count.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ")
    }

    pub fn new_cache(&self) -> Result<KvCache> {
        KvCache::new(self.cfg.n_layer, self.cfg.n_head_kv, self.cfg.head_dim)
    }

    /// Hidden states (rows, hidden) of `tokens`.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        Ok(self.embed.index_select(&ids, 0)?)
    }

    /// Full forward of one sequence; returns logits (rows, vocab) per `mode` (zero rows for `None`).
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, mode: LogitsMode) -> Result<Tensor> {
        let mut out = self.forward_batch(&mut [SeqInput { tokens, cache, logits: mode }])?;
        Ok(out.pop().expect("one sequence"))
    }

    /// Prefill: feed `tokens` into `cache` in chunks of `chunk` tokens, polling `cancel` before each chunk
    /// (`EngineError::Cancelled`), and return the logits of the last position. Each row's arithmetic does not
    /// depend on the other rows of its forward, so the logits are the same for every chunk size.
    pub fn prefill_chunked(&self, tokens: &[u32], cache: &mut KvCache, chunk: usize, cancel: &Cancel) -> Result<Vec<f32>> {
        let chunk = chunk.max(1);
        let mut last = None;
        for (i, part) in tokens.chunks(chunk).enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let is_last = (i + 1) * chunk >= tokens.len();
            let mode = if is_last { LogitsMode::Last } else { LogitsMode::None };
            let out = self.forward(part, cache, mode)?;
            if is_last {
                last = Some(logits_rows(&out)?.swap_remove(0));
            }
        }
        last.ok_or_else(|| EngineError::InvalidRequest("empty prompt".into()))
    }

    /// Token rows run through full forwards (`forward`, `forward_batch`) since the model was loaded; strategies
    /// that run layers one by one (early exit, self-speculation drafts) are not counted.
    pub fn tokens_forwarded(&self) -> u64 {
        self.forwarded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forward several sequences in one pass: weight matmuls see all their tokens stacked. Returns logits per
    /// sequence, shaped by each one's `LogitsMode`.
    pub fn forward_batch(&self, seqs: &mut [SeqInput<'_>]) -> Result<Vec<Tensor>> {
        let all: Vec<u32> = seqs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        if all.is_empty() {
            return Err(EngineError::InvalidRequest("forward with no tokens".into()));
        }
        self.forwarded.fetch_add(all.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let lens: Vec<usize> = seqs.iter().map(|s| s.tokens.len()).collect();
        let positions: Vec<usize> = seqs.iter().map(|s| s.cache.next_pos).collect();
        for (s, &p) in seqs.iter().zip(&positions) {
            if p + s.tokens.len() > self.cfg.context_length {
                return Err(EngineError::ContextOverflow {
                    prompt_tokens: p + s.tokens.len(),
                    max_tokens: 0,
                    context: self.cfg.context_length,
                });
            }
        }
        let mut h = self.embed(&all)?;
        for l in 0..self.cfg.n_layer {
            let mut caches: Vec<&mut LayerKv> = seqs.iter_mut().map(|s| &mut s.cache.layers[l]).collect();
            h = self.block_forward(l, &h, &lens, &positions, &mut caches)?;
        }
        for (s, n) in seqs.iter_mut().zip(&lens) {
            s.cache.next_pos += n;
        }
        // The rows that need logits, from every sequence, go through the LM head in one matmul (its weights are
        // a fifth of the model; rows are independent, so each sequence gets the same bits as on its own).
        let mut wanted = Vec::with_capacity(seqs.len()); // (first row in the stacked LM-head input, rows)
        let mut parts = Vec::new();
        let (mut offset, mut stacked) = (0, 0);
        for (s, &n) in seqs.iter().zip(&lens) {
            let rows = match s.logits {
                LogitsMode::Last => Some(h.narrow(0, offset + n - 1, 1)?),
                LogitsMode::All => Some(h.narrow(0, offset, n)?),
                LogitsMode::None => None,
            };
            let count = rows.as_ref().map_or(0, |r| r.dim(0).unwrap_or(0));
            wanted.push((stacked, count));
            parts.extend(rows);
            stacked += count;
            offset += n;
        }
        let logits = match parts.len() {
            0 => None,
            1 => Some(self.logits(&parts[0])?),
            _ => Some(self.logits(&Tensor::cat(&parts, 0)?)?),
        };
        wanted
            .into_iter()
            .map(|(first, count)| match (&logits, count) {
                (Some(l), c) if c > 0 => Ok(l.narrow(0, first, c)?),
                _ => Ok(Tensor::zeros((0, self.cfg.vocab_size), DType::F32, &Device::Cpu)?),
            })
            .collect()
    }

    /// Final norm + LM head over hidden rows.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        self.head(&self.lm_input(h)?)
    }

    /// What the LM head reads: the final RMSNorm (with its gain) of hidden rows.
    pub fn lm_input(&self, h: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(&h.contiguous()?, &self.norm, self.cfg.rms_eps as f32)?)
    }

    /// The final RMSNorm's gain g (the logit lens is LMhead(g ⊙ rmsnorm(h))).
    pub fn final_norm_gain(&self) -> Result<Vec<f32>> {
        Ok(self.norm.flatten_all()?.to_vec1()?)
    }

    /// The LM head alone, over rows already normalised (`lm_input`, or a calibrated exit head's output).
    pub fn head(&self, x: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(x)
    }

    /// Full forward of one sequence that also returns its hidden rows after each layer count in `capture`
    /// (k = the rows after blocks 0..k; k = n_layer is the last block's output, before the final norm).
    /// Used by exit-head calibration, which needs every layer's states of the same tokens.
    pub fn forward_hidden(&self, tokens: &[u32], cache: &mut KvCache, capture: &[usize]) -> Result<Vec<Tensor>> {
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("forward with no tokens".into()));
        }
        let pos = cache.next_pos;
        if pos + tokens.len() > self.cfg.context_length {
            return Err(EngineError::ContextOverflow { prompt_tokens: pos + tokens.len(), max_tokens: 0, context: self.cfg.context_length });
        }
        self.forwarded.fetch_add(tokens.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut out = vec![None; capture.len()];
        let mut h = self.embed(tokens)?;
        for l in 0..self.cfg.n_layer {
            h = self.block_forward(l, &h, &[tokens.len()], &[pos], &mut [&mut cache.layers[l]])?;
            for (slot, &k) in out.iter_mut().zip(capture) {
                if k == l + 1 {
                    *slot = Some(h.clone());
                }
            }
        }
        cache.next_pos += tokens.len();
        out.into_iter()
            .zip(capture)
            .map(|(t, &k)| t.ok_or_else(|| EngineError::InvalidRequest(format!("layer {k} is not in 1..={}", self.cfg.n_layer))))
            .collect()
    }

    /// One transformer block over stacked rows. `lens[i]` rows belong to sequence i, whose first new token has
    /// position `positions[i]`; its K/V are appended to `caches[i]`.
    pub fn block_forward(
        &self,
        l: usize,
        h: &Tensor,
        lens: &[usize],
        positions: &[usize],
        caches: &mut [&mut LayerKv],
    ) -> Result<Tensor> {
        let b = &self.blocks[l];
        let cfg = &self.cfg;
        let rows = h.dim(0)?;
        let x = self.norm_rows(h, &b.attn_norm)?;
        let qkv: Vec<f32> = b.qkv.forward(&x)?.flatten_all()?.to_vec1()?;
        let attn = self.attention(&qkv, lens, positions, caches)?;
        let attn = Tensor::from_vec(attn, (rows, cfg.n_head * cfg.head_dim), &Device::Cpu)?;
        let h = (h + b.o.forward(&attn)?)?;
        let x = self.norm_rows(&h, &b.ffn_norm)?;
        let gu: Vec<f32> = b.gate_up.forward(&x)?.flatten_all()?.to_vec1()?;
        let act = Tensor::from_vec(rowwise::silu_mul(&gu, cfg.n_ff), (rows, cfg.n_ff), &Device::Cpu)?;
        Ok((h + b.down.forward(&act)?)?)
    }

    /// RMSNorm (with `gain`) of hidden rows (rows, hidden), split over the thread pool.
    fn norm_rows(&self, h: &Tensor, gain: &[f32]) -> Result<Tensor> {
        let x: Vec<f32> = h.flatten_all()?.to_vec1()?;
        Ok(Tensor::from_vec(rowwise::rms_norm(&x, gain, self.cfg.rms_eps as f32), h.dims(), &Device::Cpu)?)
    }

    /// Only the K/V projections of block `l` for hidden rows `h` (CALM state propagation: a token that exited
    /// early still leaves K/V in the skipped layers, computed from its exit hidden state).
    pub fn propagate_kv(&self, l: usize, h: &Tensor, position: usize, cache: &mut LayerKv) -> Result<()> {
        let b = &self.blocks[l];
        let x = self.norm_rows(h, &b.attn_norm)?;
        let qkv: Vec<f32> = b.qkv.forward(&x)?.flatten_all()?.to_vec1()?;
        let (_, k, v) = self.split_qkv(&qkv, position);
        cache.append_rows(&k, &v);
        Ok(())
    }

    /// Split fused QKV rows (t, q_dim + 2 kv_dim) of one sequence whose first row has position `pos` into q and k
    /// (rotated) and v, each (t, heads, head_dim).
    fn split_qkv(&self, qkv: &[f32], pos: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let cfg = &self.cfg;
        let (q_dim, kv_dim) = (cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim);
        let width = q_dim + 2 * kv_dim;
        let t = qkv.len() / width;
        let (mut q, mut k, mut v) = (Vec::with_capacity(t * q_dim), Vec::with_capacity(t * kv_dim), Vec::with_capacity(t * kv_dim));
        for (r, row) in qkv.chunks_exact(width).enumerate() {
            q.extend_from_slice(&row[..q_dim]);
            self.rope_row(&mut q[r * q_dim..], pos + r);
            k.extend_from_slice(&row[q_dim..q_dim + kv_dim]);
            self.rope_row(&mut k[r * kv_dim..], pos + r);
            v.extend_from_slice(&row[q_dim + kv_dim..]);
        }
        (q, k, v)
    }

    /// Interleaved RoPE in place on one row of heads (`x` = heads x head_dim) at position `pos`, with candle's
    /// `rope_i` arithmetic.
    fn rope_row(&self, x: &mut [f32], pos: usize) {
        let half = self.cfg.head_dim / 2;
        let cos = &self.cos[pos * half..][..half];
        let sin = &self.sin[pos * half..][..half];
        for head in x.chunks_exact_mut(self.cfg.head_dim) {
            for i in 0..half {
                let (x0, x1) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = x0 * cos[i] - x1 * sin[i];
                head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }

    /// Attention of every sequence's new rows: rotate q and k, append k/v to each sequence's cache, then one
    /// parallel pass over all (sequence, row, head) items. Returns (rows, n_head * head_dim).
    fn attention(&self, qkv: &[f32], lens: &[usize], positions: &[usize], caches: &mut [&mut LayerKv]) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let width = (cfg.n_head + 2 * cfg.n_head_kv) * cfg.head_dim;
        let mut queries = Vec::with_capacity(lens.len());
        let mut pasts = Vec::with_capacity(lens.len());
        let mut offset = 0;
        for (i, &n) in lens.iter().enumerate() {
            let (q, k, v) = self.split_qkv(&qkv[offset * width..(offset + n) * width], positions[i]);
            pasts.push(caches[i].len());
            caches[i].append_rows(&k, &v);
            queries.push(q);
            offset += n;
        }
        let dims = attention::Dims { n_head: cfg.n_head, n_kv: cfg.n_head_kv, head_dim: cfg.head_dim };
        let seqs: Vec<attention::Seq> = caches
            .iter()
            .zip(&queries)
            .zip(&pasts)
            .map(|((c, q), &past)| {
                let (k, v, capacity) = c.buffers();
                attention::Seq { q, k, v, capacity, past, want_probs: c.tracks_scores() }
            })
            .collect();
        let (out, probs) = attention::attend_batch(&seqs, dims);
        for (cache, p) in caches.iter_mut().zip(probs) {
            cache.add_head_probs(&p, cfg.n_head); // H2O statistic; a no-op unless the cache tracks scores
        }
        Ok(out)
    }
}

/// cos/sin tables (context, head_dim/2) with θ_i = base^(-2i/d), for the model's full context.
fn rope_tables(cfg: &LlamaConfig) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let inv_freq: Vec<f32> =
        (0..half).map(|i| 1.0 / cfg.rope_freq_base.powf(2.0 * i as f32 / cfg.head_dim as f32)).collect();
    let inv = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
    let pos = Tensor::arange(0u32, cfg.context_length as u32, &Device::Cpu)?
        .to_dtype(DType::F32)?
        .reshape((cfg.context_length, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

/// Index of the maximum of a logits row (ties -> lowest index).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Rows of a (rows, vocab) logits tensor as vectors.
pub fn logits_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}
