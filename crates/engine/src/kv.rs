//! The KV cache the engine owns: per layer, preallocated K and V buffers of shape (1, n_kv, capacity, head_dim),
//! holding post-RoPE keys. Appending writes in place (`slice_set`); truncation (speculative rollback) only moves the
//! length; eviction (KV shrinking) rewrites the kept rows. Positions are tracked apart from the length, because an
//! evicting policy keeps a token's original position while the cache gets shorter.
//!
//! A cache can also accumulate attention scores per KV head (H2O's heavy-hitter statistic, see kv_shrink.rs). That
//! is off by default, so the plain decoding path does no extra work.

use crate::error::{EngineError, Result};
use candle_core::{DType, Device, Storage, Tensor};

pub struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
    /// Accumulated attention probability per KV head and cached entry (`scores[h][j]`), summed over every query
    /// so far and over the query heads of the GQA group; `None` unless the cache tracks scores.
    scores: Option<Vec<Vec<f32>>>,
}

impl LayerKv {
    fn new(n_kv: usize, head_dim: usize, cap: usize) -> Result<LayerKv> {
        let k = Tensor::zeros((1, n_kv, cap, head_dim), DType::F32, &Device::Cpu)?;
        Ok(LayerKv { v: k.zeros_like()?, k, len: 0, scores: None })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.k.dim(2).unwrap_or(0)
    }

    /// Append (1, n_kv, t, d) keys and values; returns views of the whole cache.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if self.len + t > self.capacity() {
            let new_cap = (self.len + t).next_power_of_two().max(2 * self.capacity());
            let (_, n_kv, _, d) = self.k.dims4()?;
            let nk = Tensor::zeros((1, n_kv, new_cap, d), DType::F32, &Device::Cpu)?;
            let nv = nk.zeros_like()?;
            if self.len > 0 {
                nk.slice_set(&self.k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&self.v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            self.k = nk;
            self.v = nv;
        }
        self.k.slice_set(k, 2, self.len)?;
        self.v.slice_set(v, 2, self.len)?;
        self.len += t;
        if let Some(scores) = &mut self.scores {
            for s in scores {
                s.resize(self.len, 0.0);
            }
        }
        self.views()
    }

    /// Run `f` over the raw K and V buffers, laid out (n_kv, capacity, head_dim), and the capacity.
    pub fn with_buffers<R>(&self, f: impl FnOnce(&[f32], &[f32], usize) -> R) -> Result<R> {
        let (ks, kl) = self.k.storage_and_layout();
        let (vs, vl) = self.v.storage_and_layout();
        let (Storage::Cpu(kc), Storage::Cpu(vc)) = (&*ks, &*vs) else {
            return Err(EngineError::Metadata("the KV cache lives on the CPU".into()));
        };
        let k = &kc.as_slice::<f32>()?[kl.start_offset()..];
        let v = &vc.as_slice::<f32>()?[vl.start_offset()..];
        Ok(f(k, v, self.capacity()))
    }

    /// Add the attention probabilities of query heads to their KV heads' scores: `probs[i]` belongs to query head
    /// `i % n_head` (rows of n_head heads in order) and covers entries 0..probs[i].len().
    pub fn add_head_probs(&mut self, probs: &[Vec<f32>], n_head: usize) {
        let Some(scores) = &mut self.scores else { return };
        let n_rep = n_head / scores.len().max(1);
        for (i, p) in probs.iter().enumerate() {
            let s = &mut scores[(i % n_head) / n_rep];
            for (acc, a) in s.iter_mut().zip(p) {
                *acc += a;
            }
        }
    }

    /// Views (1, n_kv, len, d) of the cached keys and values.
    pub fn views(&self) -> Result<(Tensor, Tensor)> {
        Ok((self.k.narrow(2, 0, self.len)?, self.v.narrow(2, 0, self.len)?))
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        if let Some(scores) = &mut self.scores {
            for s in scores {
                s.truncate(self.len);
            }
        }
    }

    /// Start accumulating attention scores (entries already cached start at 0).
    pub fn track_scores(&mut self) {
        if self.scores.is_none() {
            let n_kv = self.k.dim(1).unwrap_or(0);
            self.scores = Some(vec![vec![0.0; self.len]; n_kv]);
        }
    }

    pub fn tracks_scores(&self) -> bool {
        self.scores.is_some()
    }

    /// Accumulated scores per KV head (`[h][j]` for cache entry j), if tracked.
    pub fn scores(&self) -> Option<&[Vec<f32>]> {
        self.scores.as_deref()
    }

    /// Add attention probabilities `att` of shape (1, n_kv, rows, n), n <= len, to the scores of entries 0..n:
    /// summed over the rows (every query row of every query head in the KV head's group).
    pub fn add_scores(&mut self, att: &Tensor) -> Result<()> {
        let Some(scores) = &mut self.scores else { return Ok(()) };
        let col_sums = att.sum(2)?.squeeze(0)?.to_vec2::<f32>()?;
        for (s, add) in scores.iter_mut().zip(col_sums) {
            for (acc, a) in s.iter_mut().zip(add) {
                *acc += a;
            }
        }
        Ok(())
    }

    /// Keep only the entries at `keep` (ascending cache indices), per KV head: `keep[h]` lists head h's rows.
    /// All heads must keep the same number of rows.
    pub fn retain_per_head(&mut self, keep: &[Vec<u32>]) -> Result<()> {
        let (_, n_kv, _, d) = self.k.dims4()?;
        let n = keep.first().map(|k| k.len()).unwrap_or(0);
        let mut ks = Vec::with_capacity(n_kv);
        let mut vs = Vec::with_capacity(n_kv);
        for (h, idx) in keep.iter().enumerate().take(n_kv) {
            debug_assert_eq!(idx.len(), n);
            let idx = Tensor::new(idx.as_slice(), &Device::Cpu)?;
            ks.push(self.k.narrow(1, h, 1)?.narrow(2, 0, self.len)?.index_select(&idx, 2)?);
            vs.push(self.v.narrow(1, h, 1)?.narrow(2, 0, self.len)?.index_select(&idx, 2)?);
        }
        let k = Tensor::cat(&ks, 1)?.contiguous()?;
        let v = Tensor::cat(&vs, 1)?.contiguous()?;
        debug_assert_eq!(k.dims4()?, (1, n_kv, n, d));
        self.k.slice_set(&k, 2, 0)?;
        self.v.slice_set(&v, 2, 0)?;
        self.len = n;
        if let Some(scores) = &mut self.scores {
            for (s, idx) in scores.iter_mut().zip(keep) {
                *s = idx.iter().map(|&j| s.get(j as usize).copied().unwrap_or(0.0)).collect();
            }
        }
        Ok(())
    }

    /// Bytes of K and V currently held (f32).
    pub fn bytes(&self) -> usize {
        let (_, n_kv, _, d) = self.k.dims4().unwrap_or((1, 0, 0, 0));
        2 * n_kv * d * self.len * 4
    }
}

/// One sequence's cache over all layers, plus the next token position.
pub struct KvCache {
    pub layers: Vec<LayerKv>,
    /// Position (RoPE index) the next token will get. Equals the number of tokens seen so far.
    pub next_pos: usize,
}

impl KvCache {
    pub fn new(n_layer: usize, n_kv: usize, head_dim: usize) -> Result<KvCache> {
        Self::with_capacity(n_layer, n_kv, head_dim, 256)
    }

    pub fn with_capacity(n_layer: usize, n_kv: usize, head_dim: usize, cap: usize) -> Result<KvCache> {
        let layers = (0..n_layer).map(|_| LayerKv::new(n_kv, head_dim, cap.max(1))).collect::<Result<_>>()?;
        Ok(KvCache { layers, next_pos: 0 })
    }

    /// Roll back to the first `n_tokens` tokens (speculative decoding after a rejection). Only valid for caches
    /// that have not evicted anything, where length equals position.
    pub fn truncate(&mut self, n_tokens: usize) {
        for l in &mut self.layers {
            l.truncate(n_tokens);
        }
        self.next_pos = self.next_pos.min(n_tokens);
    }

    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| l.bytes()).sum()
    }

    /// Accumulate attention scores per KV head in every layer from now on (H2O); off by default.
    pub fn track_attention_scores(&mut self) {
        for l in &mut self.layers {
            l.track_scores();
        }
    }

    pub fn reset(&mut self) {
        self.truncate(0);
    }
}
