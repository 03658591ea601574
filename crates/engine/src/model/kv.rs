//! The KV cache the engine owns: per layer, preallocated K and V buffers laid out (n_kv, capacity, head_dim),
//! holding post-RoPE keys. Appending writes in place; truncation (speculative rollback) only moves the length;
//! eviction (KV shrinking) fills each evicted slot with one of the kept entries from the end of the buffer, so it
//! costs O(evicted) copies, never a rewrite of everything kept. Attention is a sum over the entries, so their order
//! in the buffer does not matter. Positions are tracked apart from the length, because an evicting policy keeps a
//! token's original position while the cache gets shorter.
//!
//! A cache can also accumulate attention scores per KV head (H2O's heavy-hitter statistic, see kv_shrink.rs). That
//! is off by default, so the plain decoding path does no extra work.

use crate::error::{EngineError, Result};
use candle_core::Tensor;

#[derive(Clone)]
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

    /// Stop accumulating attention scores and drop them (SnapKV needs them only for its one-off selection).
    pub fn stop_tracking_scores(&mut self) {
        self.scores = None;
    }

    /// Entries the buffers can hold without growing.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Evict the entries at `evict[h]` (ascending cache indices) of each KV head h; every head evicts the same
    /// number. Each hole below the new length is filled with a kept entry from above it, in ascending order, so
    /// only O(evicted) entries move and the kept ones stay where they are. Returns each head's moves as
    /// (from, to) cache indices, so a caller tracking per-entry data (positions) can mirror them.
    pub fn evict_per_head(&mut self, evict: &[Vec<u32>]) -> Result<Vec<Vec<(u32, u32)>>> {
        let e = evict.first().map(|x| x.len()).unwrap_or(0);
        if evict.len() != self.n_kv {
            return Err(EngineError::InvalidRequest(format!("KV evict lists for {} heads, the cache has {}", evict.len(), self.n_kv)));
        }
        let len = self.len;
        for (h, idx) in evict.iter().enumerate() {
            if idx.len() != e || idx.windows(2).any(|w| w[0] >= w[1]) || idx.last().is_some_and(|&j| j as usize >= len) {
                return Err(EngineError::InvalidRequest(format!(
                    "KV evict list for head {h} is not ascending, in range and of length {e}"
                )));
            }
        }
        let new_len = len - e;
        let d = self.head_dim;
        let mut all_moves = Vec::with_capacity(self.n_kv);
        for (h, idx) in evict.iter().enumerate() {
            let moves = fill_holes(idx, new_len, len);
            let base = h * self.capacity * d;
            for &(from, to) in &moves {
                let (src, dst) = (base + from as usize * d, base + to as usize * d);
                self.k.copy_within(src..src + d, dst);
                self.v.copy_within(src..src + d, dst);
            }
            if let Some(scores) = &mut self.scores {
                let s = &mut scores[h];
                for &(from, to) in &moves {
                    s[to as usize] = s[from as usize];
                }
                s.truncate(new_len);
            }
            all_moves.push(moves);
        }
        self.len = new_len;
        Ok(all_moves)
    }

    /// Give back buffer memory after evictions: when the capacity is more than twice what `len + headroom`
    /// needs, reallocate to that (rounded up to a power of two). One O(len) copy, rare: the cache only grows
    /// by doubling.
    pub fn release_spare(&mut self, headroom: usize) {
        let want = (self.len + headroom).next_power_of_two().max(1);
        if self.capacity <= 2 * want {
            return;
        }
        let d = self.head_dim;
        for buf in [&mut self.k, &mut self.v] {
            let mut kept = vec![0.0; self.n_kv * want * d];
            for h in 0..self.n_kv {
                kept[h * want * d..][..self.len * d].copy_from_slice(&buf[h * self.capacity * d..][..self.len * d]);
            }
            *buf = kept;
        }
        self.capacity = want;
    }

    /// Bytes of K and V currently held (f32).
    pub fn bytes(&self) -> usize {
        2 * self.n_kv * self.head_dim * self.len * 4
    }
}

/// One sequence's cache over all layers, plus the next token position.
#[derive(Clone)]
pub struct KvCache {
    pub layers: Vec<LayerKv>,
    /// Position (RoPE index) the next token will get. Equals the number of tokens seen so far.
    pub next_pos: usize,
}

/// The moves that close the holes left by evicting `evict` (ascending, all < `len`) out of `len` entries: the
/// holes below `new_len` are filled, in ascending order, by the kept entries at or above it, ascending.
pub fn fill_holes(evict: &[u32], new_len: usize, len: usize) -> Vec<(u32, u32)> {
    let split = evict.partition_point(|&j| (j as usize) < new_len);
    let (holes, evicted_above) = (&evict[..split], &evict[split..]);
    let mut moves = Vec::with_capacity(holes.len());
    let mut above = evicted_above.iter().peekable();
    let mut hole = holes.iter();
    for from in new_len as u32..len as u32 {
        if above.peek() == Some(&&from) {
            above.next();
            continue;
        }
        match hole.next() {
            Some(&to) => moves.push((from, to)),
            None => break,
        }
    }
    moves
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_filled_from_the_end_and_kept_entries_below_stay() {
        // 10 entries, evict 1, 4 and 8: new length 7; holes 1 and 4 take the kept entries 7 and 9.
        assert_eq!(fill_holes(&[1, 4, 8], 7, 10), vec![(7, 1), (9, 4)]);
        // Evicting only the tail moves nothing.
        assert_eq!(fill_holes(&[8, 9], 8, 10), vec![]);
        assert_eq!(fill_holes(&[], 10, 10), vec![]);
    }

    #[test]
    fn evict_per_head_moves_keys_values_and_scores_together() {
        // 1 KV head of dim 2, 6 entries whose K row is (j, -j) and V row (10j, 0).
        let mut l = LayerKv::new(2, 2, 4).unwrap();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for j in 0..6 {
            for h in 0..2 {
                k.extend([j as f32 + 100.0 * h as f32, -(j as f32)]);
                v.extend([10.0 * j as f32, h as f32]);
            }
        }
        l.track_scores();
        l.append_rows(&k, &v);
        l.add_head_probs(&[vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5], vec![1.0, 1.1, 1.2, 1.3, 1.4, 1.5]], 2);
        let moves = l.evict_per_head(&[vec![0, 2], vec![4, 5]]).unwrap();
        assert_eq!(moves, vec![vec![(4, 0), (5, 2)], vec![]]);
        assert_eq!(l.len(), 4);
        let (kb, vb, cap) = l.buffers();
        let key = |h: usize, j: usize| kb[(h * cap + j) * 2];
        // Head 0 holds entries 4, 1, 5, 3; head 1 entries 0..4 untouched.
        assert_eq!((0..4).map(|j| key(0, j)).collect::<Vec<_>>(), vec![4.0, 1.0, 5.0, 3.0]);
        assert_eq!((0..4).map(|j| key(1, j)).collect::<Vec<_>>(), vec![100.0, 101.0, 102.0, 103.0]);
        assert_eq!(vb[2 * 2], 50.0);
        assert_eq!(l.scores().unwrap()[0], vec![0.4, 0.1, 0.5, 0.3]);
        assert_eq!(l.scores().unwrap()[1], vec![1.0, 1.1, 1.2, 1.3]);
        // Uneven or unsorted lists are refused.
        assert!(l.evict_per_head(&[vec![0], vec![]]).is_err());
        assert!(l.evict_per_head(&[vec![2, 1], vec![0, 1]]).is_err());
        // Spare capacity goes back once the cache is far smaller than its buffers.
        l.reserve(60);
        assert!(l.capacity() >= 64);
        l.release_spare(4);
        assert_eq!(l.capacity(), 8);
        let (kb, _, cap) = l.buffers();
        assert_eq!((0..4).map(|j| kb[(cap + j) * 2]).collect::<Vec<_>>(), vec![100.0, 101.0, 102.0, 103.0]);
    }
}
