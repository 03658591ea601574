//! The KV cache the engine owns: per layer, preallocated K and V buffers laid out (n_kv, capacity, head_dim),
//! holding post-RoPE keys. Appending writes in place; truncation (speculative rollback) only moves the length;
//! eviction (KV shrinking) compacts the kept rows. Positions are tracked apart from the length, because an
//! evicting policy keeps a token's original position while the cache gets shorter.
//!
//! A cache can also accumulate attention scores per KV head (H2O's heavy-hitter statistic, see kv_shrink.rs). That
//! is off by default, so the plain decoding path does no extra work.

use crate::error::{EngineError, Result};
use candle_core::Tensor;

pub struct LayerKv {
    /// Keys and values, each laid out (n_kv, capacity, head_dim): one contiguous run of entries per KV head, which
    /// is what the attention kernel reads.
    k: Vec<f32>,
    v: Vec<f32>,
    n_kv: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
    /// Accumulated attention probability per KV head and cached entry (`scores[h][j]`), summed over every query
    /// so far and over the query heads of the GQA group; `None` unless the cache tracks scores.
    scores: Option<Vec<Vec<f32>>>,
}

impl LayerKv {
    fn new(n_kv: usize, head_dim: usize, cap: usize) -> Result<LayerKv> {
        let size = n_kv * cap * head_dim;
        Ok(LayerKv { k: vec![0.0; size], v: vec![0.0; size], n_kv, head_dim, capacity: cap, len: 0, scores: None })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn n_kv(&self) -> usize {
        self.n_kv
    }

    /// Make room for `extra` more entries, doubling the capacity (amortized O(1) appends).
    fn reserve(&mut self, extra: usize) {
        if self.len + extra <= self.capacity {
            return;
        }
        let new_cap = (self.len + extra).next_power_of_two().max(2 * self.capacity);
        let d = self.head_dim;
        for buf in [&mut self.k, &mut self.v] {
            let mut grown = vec![0.0; self.n_kv * new_cap * d];
            for h in 0..self.n_kv {
                grown[h * new_cap * d..][..self.len * d].copy_from_slice(&buf[h * self.capacity * d..][..self.len * d]);
            }
            *buf = grown;
        }
        self.capacity = new_cap;
    }

    /// Append t entries given as rows: `k` and `v` are (t, n_kv, head_dim), the layout of a projection's output.
    pub fn append_rows(&mut self, k: &[f32], v: &[f32]) {
        let (n_kv, d) = (self.n_kv, self.head_dim);
        let t = k.len() / (n_kv * d);
        assert_eq!(k.len(), t * n_kv * d, "keys are not (t, n_kv, head_dim)");
        assert_eq!(v.len(), k.len(), "values are not shaped like the keys");
        self.reserve(t);
        for r in 0..t {
            for h in 0..n_kv {
                let src = (r * n_kv + h) * d;
                let dst = (h * self.capacity + self.len + r) * d;
                self.k[dst..dst + d].copy_from_slice(&k[src..src + d]);
                self.v[dst..dst + d].copy_from_slice(&v[src..src + d]);
            }
        }
        self.len += t;
        if let Some(scores) = &mut self.scores {
            for s in scores {
                s.resize(self.len, 0.0);
            }
        }
    }

    /// Copy entries `start..end` out as rows, (t, n_kv, head_dim) keys and values: the layout `append_rows`
    /// takes, so a prefix cache can store entries and replay them into another cache.
    pub fn rows(&self, start: usize, end: usize) -> (Vec<f32>, Vec<f32>) {
        let (n_kv, d) = (self.n_kv, self.head_dim);
        let end = end.min(self.len);
        let t = end.saturating_sub(start);
        let (mut k, mut v) = (vec![0.0; t * n_kv * d], vec![0.0; t * n_kv * d]);
        for r in 0..t {
            for h in 0..n_kv {
                let src = (h * self.capacity + start + r) * d;
                let dst = (r * n_kv + h) * d;
                k[dst..dst + d].copy_from_slice(&self.k[src..src + d]);
                v[dst..dst + d].copy_from_slice(&self.v[src..src + d]);
            }
        }
        (k, v)
    }

    /// Append (1, n_kv, t, d) keys and values given as tensors.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        // (1, n_kv, t, d) -> (t, n_kv, d) rows.
        let rows = |x: &Tensor| -> Result<Vec<f32>> { Ok(x.squeeze(0)?.transpose(0, 1)?.flatten_all()?.to_vec1()?) };
        self.append_rows(&rows(k)?, &rows(v)?);
        Ok(())
    }

    /// The raw K and V buffers, laid out (n_kv, capacity, head_dim), and the capacity.
    pub fn buffers(&self) -> (&[f32], &[f32], usize) {
        (&self.k, &self.v, self.capacity)
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
            self.scores = Some(vec![vec![0.0; self.len]; self.n_kv]);
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
        let n = keep.first().map(|k| k.len()).unwrap_or(0);
        let d = self.head_dim;
        for (h, idx) in keep.iter().enumerate().take(self.n_kv) {
            if idx.len() != n || idx.windows(2).any(|w| w[0] >= w[1]) || idx.last().is_some_and(|&j| j as usize >= self.len) {
                return Err(EngineError::InvalidRequest(format!("KV retain list for head {h} is not ascending, in range and of length {n}")));
            }
            let base = h * self.capacity * d;
            // Ascending indices: entry i moves to slot i' <= i, so copying in order never overwrites a source.
            for (dst, &src) in idx.iter().enumerate() {
                let (src, dst) = (base + src as usize * d, base + dst * d);
                self.k.copy_within(src..src + d, dst);
                self.v.copy_within(src..src + d, dst);
            }
        }
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
        2 * self.n_kv * self.head_dim * self.len * 4
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
