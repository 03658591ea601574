//! The deterministic stand-in embedder used by the WorfBench test vectors (datasets.md §2.6):
//! tokens are the `[a-z0-9]+` runs of the lowercased text; each token adds 1.0 to bucket
//! `u64::from_le_bytes(sha256(token)[0..8]) % 4096`; the count vector is L2-normalised (a zero vector keeps
//! norm 1, i.e. stays zero).

use crate::{EmbedError, SentenceEmbedder};
use sha2::{Digest, Sha256};

pub const HASH_BUCKETS: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
pub struct HashEmbedder;

impl HashEmbedder {
    /// The normalised count vector in f64 (before rounding to f32).
    pub fn embed_one_f64(text: &str) -> Vec<f64> {
        let mut v = vec![0.0f64; HASH_BUCKETS];
        let lower = text.to_lowercase();
        for token in lower.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit())).filter(|t| !t.is_empty()) {
            let digest = Sha256::digest(token.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            v[(u64::from_le_bytes(first) % HASH_BUCKETS as u64) as usize] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let norm = if norm == 0.0 { 1.0 } else { norm };
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

impl SentenceEmbedder for HashEmbedder {
    fn name(&self) -> &str {
        "hash"
    }
    fn dim(&self) -> usize {
        HASH_BUCKETS
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| Self::embed_one_f64(t).into_iter().map(|x| x as f32).collect()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosine;

    #[test]
    fn tokens_are_lowercase_alnum_runs() {
        let e = HashEmbedder;
        let v = e.embed(&["Go to the TOILET!", "go to-the toilet", "", "...!"]).unwrap();
        assert!((cosine(&v[0], &v[1]) - 1.0).abs() < 1e-6);
        assert!(v[2].iter().all(|x| *x == 0.0) && v[3].iter().all(|x| *x == 0.0));
        // Four distinct tokens (no collisions expected): each normalised count is 1/2.
        let nonzero: Vec<f32> = v[0].iter().copied().filter(|x| *x != 0.0).collect();
        assert_eq!(nonzero.len(), 4);
        assert!(nonzero.iter().all(|x| (*x - 0.5).abs() < 1e-7));
        // Repeated tokens count twice: "a a b" -> (2, 1) / sqrt(5).
        let r = HashEmbedder::embed_one_f64("a a b");
        let mut nz: Vec<f64> = r.into_iter().filter(|x| *x != 0.0).collect();
        nz.sort_by(f64::total_cmp);
        assert!((nz[0] - 1.0 / 5f64.sqrt()).abs() < 1e-15 && (nz[1] - 2.0 / 5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn bucket_of_a_token_matches_python() {
        // python: int.from_bytes(hashlib.sha256(b"linux").digest()[:8], "little") % 4096
        let v = HashEmbedder::embed_one_f64("linux");
        let idx = v.iter().position(|x| *x != 0.0).unwrap();
        assert_eq!(idx, LINUX_BUCKET);
    }
    const LINUX_BUCKET: usize = 2506;
}
