//! Prefix cache: the KV entries of prompt prefixes seen before, reused by later requests that start with the same
//! tokens (a shared system prompt, few-shot examples, a multi-turn conversation).
//!
//! Prompts are cut into blocks of `block_tokens` tokens. A block is keyed by a hash chained over every token from
//! the start of the prompt to the block's end (vLLM's automatic prefix caching keys blocks the same way), so a key
//! names a whole prefix, not just the block's own tokens; the block also keeps its tokens, and a lookup compares
//! them, so a hash collision can never serve wrong entries. A request loads the longest cached chain of blocks
//! into its fresh cache and prefills only the rest (at least one token, whose logits start decoding). Eviction is
//! least-recently-used under a byte budget; among blocks used at the same time the deepest goes first, so a
//! prefix never loses its parent while a child survives.
//!
//! Every forward is row-exact (docs/engine.md): a cached entry holds the same bits the request's own prefill
//! would compute, so outputs with and without the cache are identical (a test compares them token for token).

use crate::error::{EngineError, Result};
use crate::model::kv::KvCache;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// Default tokens per block: small enough to share most of a prefix, big enough that the bookkeeping is noise.
pub const DEFAULT_BLOCK_TOKENS: usize = 32;

/// The cached entries of one block: per layer, keys and values as rows `(block_tokens, n_kv, head_dim)`.
pub struct Block {
    tokens: Vec<u32>,
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    bytes: usize,
}

struct Slot {
    block: Arc<Block>,
    last_used: u64,
    /// 1 for a prompt's first block.
    depth: usize,
}

/// Counters since the cache was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixStats {
    pub lookups: u64,
    /// Prompt tokens served from the cache.
    pub hit_tokens: u64,
    pub blocks: usize,
    pub bytes: usize,
    pub evicted_blocks: u64,
}

pub struct PrefixCache {
    block_tokens: usize,
    budget_bytes: usize,
    slots: HashMap<u64, Slot>,
    clock: u64,
    stats: PrefixStats,
}

impl PrefixCache {
    /// A cache of at most `budget_bytes` of KV entries; `bytes_per_token` is the model's KV size per token
    /// (all layers, keys and values). A budget below one block is refused: it could never hold anything.
    pub fn new(budget_bytes: usize, block_tokens: usize, bytes_per_token: usize) -> Result<PrefixCache> {
        if block_tokens == 0 {
            return Err(EngineError::InvalidRequest("prefix cache block size must be at least 1 token".into()));
        }
        let block_bytes = block_tokens * bytes_per_token;
        if budget_bytes < block_bytes {
            return Err(EngineError::InvalidRequest(format!(
                "prefix cache budget of {budget_bytes} bytes is below one block ({block_tokens} tokens = {block_bytes} bytes for this model); give at least {} MiB",
                block_bytes.div_ceil(1 << 20)
            )));
        }
        Ok(PrefixCache { block_tokens, budget_bytes, slots: HashMap::new(), clock: 0, stats: PrefixStats::default() })
    }

    pub fn block_tokens(&self) -> usize {
        self.block_tokens
    }

    pub fn stats(&self) -> PrefixStats {
        PrefixStats { blocks: self.slots.len(), ..self.stats }
    }

    /// Chained keys of the first `n` full blocks of `prompt`.
    fn keys(&self, prompt: &[u32], n: usize) -> Vec<u64> {
        let mut parent = 0u64;
        prompt
            .chunks_exact(self.block_tokens)
            .take(n)
            .map(|block| {
                let mut h = DefaultHasher::new();
                parent.hash(&mut h);
                block.hash(&mut h);
                parent = h.finish();
                parent
            })
            .collect()
    }

    /// The longest cached chain of blocks that `prompt` starts with, leaving at least one token to prefill.
    pub fn lookup(&mut self, prompt: &[u32]) -> Vec<Arc<Block>> {
        self.clock += 1;
        self.stats.lookups += 1;
        let usable = prompt.len().saturating_sub(1) / self.block_tokens;
        let mut found = Vec::new();
        for (i, key) in self.keys(prompt, usable).into_iter().enumerate() {
            let tokens = &prompt[i * self.block_tokens..(i + 1) * self.block_tokens];
            match self.slots.get_mut(&key) {
                Some(slot) if slot.block.tokens == tokens => {
                    slot.last_used = self.clock;
                    found.push(slot.block.clone());
                }
                _ => break,
            }
        }
        self.stats.hit_tokens += (found.len() * self.block_tokens) as u64;
        found
    }

    /// Store the full blocks of `prompt` that `cache` holds (its first entries must be exactly the prompt's, as
    /// right after a prefill) and are not cached yet, evicting the least recently used blocks past the budget.
    pub fn insert(&mut self, prompt: &[u32], cache: &KvCache) {
        let held = cache.layers.first().map_or(0, |l| l.len()).min(cache.next_pos).min(prompt.len());
        let n = held / self.block_tokens;
        self.clock += 1;
        for (i, key) in self.keys(prompt, n).into_iter().enumerate() {
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.last_used = self.clock;
                continue;
            }
            let (start, end) = (i * self.block_tokens, (i + 1) * self.block_tokens);
            let layers: Vec<(Vec<f32>, Vec<f32>)> = cache.layers.iter().map(|l| l.rows(start, end)).collect();
            let bytes = layers.iter().map(|(k, v)| (k.len() + v.len()) * 4).sum();
            self.make_room(bytes);
            if self.stats.bytes + bytes > self.budget_bytes {
                return;
            }
            let block = Arc::new(Block { tokens: prompt[start..end].to_vec(), layers, bytes });
            self.stats.bytes += bytes;
            self.slots.insert(key, Slot { block, last_used: self.clock, depth: i + 1 });
        }
    }

    /// Evict until `bytes` more fit: least recently used first, the deepest block among equals.
    fn make_room(&mut self, bytes: usize) {
        while self.stats.bytes + bytes > self.budget_bytes {
            let Some(victim) =
                self.slots.iter().min_by_key(|(_, s)| (s.last_used, std::cmp::Reverse(s.depth))).map(|(k, _)| *k)
            else {
                return;
            };
            if let Some(slot) = self.slots.remove(&victim) {
                self.stats.bytes -= slot.block.bytes;
                self.stats.evicted_blocks += 1;
            }
        }
    }
}

/// Replay `blocks` (a chain from `lookup`) into an empty `cache`; returns the prompt tokens they cover.
pub fn load(blocks: &[Arc<Block>], cache: &mut KvCache) -> usize {
    let mut n = 0;
    for b in blocks {
        for (layer, (k, v)) in cache.layers.iter_mut().zip(&b.layers) {
            layer.append_rows(k, v);
        }
        n += b.tokens.len();
    }
    cache.next_pos += n;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache whose entry for token t at layer l is the constant t * 100 + l, so replayed rows can be checked.
    fn filled(prompt: &[u32], n_layer: usize) -> KvCache {
        let (n_kv, d) = (2, 4);
        let mut c = KvCache::with_capacity(n_layer, n_kv, d, 8).unwrap();
        for (l, layer) in c.layers.iter_mut().enumerate() {
            let rows: Vec<f32> = prompt.iter().flat_map(|&t| vec![(t * 100 + l as u32) as f32; n_kv * d]).collect();
            layer.append_rows(&rows, &rows);
        }
        c.next_pos = prompt.len();
        c
    }

    const PER_TOKEN: usize = 2 * 2 * 4 * 4 * 2; // layers x (k + v) x n_kv x d x f32

    #[test]
    fn a_prompt_reuses_the_longest_cached_prefix_and_replays_its_entries() {
        let mut pc = PrefixCache::new(1 << 20, 4, PER_TOKEN).unwrap();
        let a: Vec<u32> = (1..=10).collect();
        pc.insert(&a, &filled(&a, 2));
        assert_eq!(pc.stats().blocks, 2, "two full blocks of 4 in 10 tokens");
        // Shares the first 6 tokens: only the first block matches.
        let b: Vec<u32> = vec![1, 2, 3, 4, 5, 6, 99, 98, 97];
        let hit = pc.lookup(&b);
        assert_eq!(hit.len(), 1);
        let mut c = KvCache::with_capacity(2, 2, 4, 2).unwrap();
        assert_eq!(load(&hit, &mut c), 4);
        assert_eq!(c.next_pos, 4);
        assert_eq!(c.layers[1].rows(0, 4), filled(&a[..4], 2).layers[1].rows(0, 4));
        // The same prompt again: both blocks, but at least one token is left to prefill.
        assert_eq!(pc.lookup(&a[..8]).len(), 1, "8 tokens: the second block would leave nothing to prefill");
        assert_eq!(pc.lookup(&a[..9]).len(), 2);
        assert_eq!(pc.stats().hit_tokens, 4 + 4 + 8);
    }

    #[test]
    fn a_block_is_keyed_by_its_whole_prefix() {
        let mut pc = PrefixCache::new(1 << 20, 4, PER_TOKEN).unwrap();
        let a: Vec<u32> = (1..=9).collect();
        pc.insert(&a, &filled(&a, 1));
        // Same second block, different first block: no hit at all.
        let b: Vec<u32> = vec![0, 2, 3, 4, 5, 6, 7, 8, 9];
        assert!(pc.lookup(&b).is_empty());
    }

    #[test]
    fn eviction_is_lru_under_the_budget_and_keeps_parents() {
        // Room for 3 blocks.
        let mut pc = PrefixCache::new(3 * 4 * PER_TOKEN, 4, PER_TOKEN).unwrap();
        let a: Vec<u32> = (1..=9).collect(); // 2 blocks
        let b: Vec<u32> = (50..=58).collect(); // 2 blocks
        pc.insert(&a, &filled(&a, 2));
        pc.insert(&b, &filled(&b, 2));
        let s = pc.stats();
        assert_eq!((s.blocks, s.evicted_blocks), (3, 1));
        assert!(s.bytes <= 3 * 4 * PER_TOKEN);
        // a's deeper block went first: a still hits its first block.
        assert_eq!(pc.lookup(&a).len(), 1);
        assert_eq!(pc.lookup(&b).len(), 2);
    }

    #[test]
    fn a_budget_below_one_block_is_refused() {
        let e = PrefixCache::new(100, 32, 46_080).err().expect("refused").to_string();
        assert!(e.contains("below one block") && e.contains("2 MiB"), "{e}");
    }
}
