//! Calibrated exit heads: per-layer affine translators from an intermediate hidden state to what the LM head
//! reads, fitted on this model by `ttc calibrate` (`calibrate.rs`).
//!
//! The logit lens (final norm + LM head on layer l's state) reads intermediate layers of a model that was not
//! trained for early exit badly: on SmolLM2-135M it agrees with the full model's top-1 on about a third of the
//! tokens at layer 28. The tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with
//! the Tuned Lens") fits one affine map per layer instead. Ours is fitted in closed form (ridge least squares),
//! in the space the LM head reads:
//!
//!   z = W_l · rmsnorm(h_l) + b_l   ≈   g ⊙ rmsnorm(h_L)     logits = LMhead(z)
//!
//! with rmsnorm without gain on the input (the residual stream's scale grows with depth; normalising makes the
//! fit scale-free) and the target exactly the LM head's input at the last layer (g = the final norm's gain).
//! The ridge penalty pulls W toward diag(g), i.e. toward the logit lens, not toward zero (`calibrate.rs`). At
//! l = L the exact solution is W = diag(g), b = 0, so the calibrated exit at the last layer is the full model. One head costs a (d x d) matmul per row, 0.3 M multiply-adds on SmolLM2 against 28 M for its LM head.
//!
//! File: `<model>.exit-heads.safetensors` beside the GGUF, tensors `layer.<k>.weight` (d_in, d_out, so rows
//! multiply from the left) and `layer.<k>.bias` (1, d_out), f32; metadata stamps the format, the GGUF's
//! SHA-256 and the layers, so a file fitted for another model is refused.

use crate::error::{EngineError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The `format` metadata value of a heads file this code reads and writes.
pub const FORMAT: &str = "ttcbench-exit-heads/1";

/// Which head reads an intermediate layer's hidden state (`heads` param of the early-exit and self-speculative
/// policies).
pub use ttc_policy::ExitHeadKind;

/// One layer's translator.
#[derive(Debug, Clone)]
struct Head {
    /// (d_in, d_out)
    weight: Tensor,
    /// (1, d_out)
    bias: Tensor,
}

/// The fitted heads of one model, by layer count k (the state after blocks 0..k).
#[derive(Debug, Clone)]
pub struct ExitHeads {
    /// Where they were loaded from or will be saved (for messages).
    pub path: PathBuf,
    pub gguf_sha256: String,
    pub n_embd: usize,
    /// Everything else the file's metadata says (ridge, positions, corpus), shown by `ttc calibrate --report`.
    pub info: BTreeMap<String, String>,
    heads: BTreeMap<usize, Head>,
    eps: f32,
}

/// Rows RMS-normalised without gain: the heads' input, in fitting (`calibrate.rs`) and in use.
pub fn rms_normalise(h: &Tensor, eps: f32) -> Result<Tensor> {
    let ones = Tensor::ones(h.dim(1)?, DType::F32, &Device::Cpu)?;
    Ok(candle_nn::ops::rms_norm(&h.contiguous()?, &ones, eps)?)
}

/// `<model>.exit-heads.safetensors` beside the model file.
pub fn heads_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".exit-heads.safetensors");
    model.with_file_name(name)
}

/// SHA-256 of a file in hex. The model fetcher leaves `<file>.sha256` (`<hex> <size>`) beside a verified model;
/// it is trusted while the size matches, so loading heads does not re-hash 100 MB every start.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let io = |e: std::io::Error| EngineError::ExitHeads { path: path.to_path_buf(), reason: format!("cannot hash the model: {e}") };
    let size = std::fs::metadata(path).map_err(io)?.len();
    let mut stamp = path.as_os_str().to_os_string();
    stamp.push(".sha256");
    if let Ok(text) = std::fs::read_to_string(PathBuf::from(stamp)) {
        let mut parts = text.split_whitespace();
        if let (Some(hex), Some(n)) = (parts.next(), parts.next()) {
            if n.parse::<u64>() == Ok(size) && hex.len() == 64 {
                return Ok(hex.to_ascii_lowercase());
            }
        }
    }
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl ExitHeads {
    /// Heads from fitted parameters: `layers[k] = (weight (d_in x d_out, row-major), bias (d_out))`.
    pub fn new(
        path: PathBuf,
        gguf_sha256: String,
        n_embd: usize,
        eps: f32,
        layers: BTreeMap<usize, (Vec<f32>, Vec<f32>)>,
        info: BTreeMap<String, String>,
    ) -> Result<ExitHeads> {
        let mut heads = BTreeMap::new();
        for (k, (w, b)) in layers {
            let weight = Tensor::from_vec(w, (n_embd, n_embd), &Device::Cpu)?;
            let bias = Tensor::from_vec(b, (1, n_embd), &Device::Cpu)?;
            heads.insert(k, Head { weight, bias });
        }
        Ok(ExitHeads { path, gguf_sha256, n_embd, info, heads, eps })
    }

    /// The layer counts that have a head.
    pub fn layers(&self) -> Vec<usize> {
        self.heads.keys().copied().collect()
    }

    pub fn has(&self, layer: usize) -> bool {
        self.heads.contains_key(&layer)
    }

    /// The LM head's input for hidden rows `h` (rows, d) taken after `layer` blocks.
    pub fn apply(&self, layer: usize, h: &Tensor) -> Result<Tensor> {
        let head = self.heads.get(&layer).ok_or_else(|| EngineError::ExitHeads {
            path: self.path.clone(),
            reason: format!("no head for layer {layer} (the file has layers {})", layer_list(&self.layers())),
        })?;
        Ok(rms_normalise(h, self.eps)?.matmul(&head.weight)?.broadcast_add(&head.bias)?)
    }

    /// Writes the heads as safetensors, through a temporary file renamed into place (a crash never leaves a
    /// half-written heads file under the real name).
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |reason: String| EngineError::ExitHeads { path: path.to_path_buf(), reason };
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (k, h) in &self.heads {
            tensors.push((format!("layer.{k}.weight"), h.weight.clone()));
            tensors.push((format!("layer.{k}.bias"), h.bias.clone()));
        }
        let mut meta: HashMap<String, String> = self.info.clone().into_iter().collect();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("gguf_sha256".into(), self.gguf_sha256.clone());
        meta.insert("n_embd".into(), self.n_embd.to_string());
        meta.insert("rms_eps".into(), self.eps.to_string());
        meta.insert("layers".into(), layer_list(&self.layers()));
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        safetensors::serialize_to_file(tensors, Some(meta), &tmp).map_err(|e| err(format!("cannot write: {e}")))?;
        std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot move {} into place: {e}", tmp.display())))
    }

    /// Reads a heads file and checks it belongs to the model whose SHA-256 is `gguf_sha256` and width `n_embd`.
    pub fn load(path: &Path, gguf_sha256: &str, n_embd: usize) -> Result<ExitHeads> {
        let err = |reason: String| EngineError::ExitHeads { path: path.to_path_buf(), reason };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| err(format!("not a complete safetensors file ({e}); it may be truncated")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
        let meta: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
        let get = |k: &str| meta.get(k).cloned().ok_or_else(|| err(format!("metadata `{k}` missing; not a ttcbench heads file")));
        let format = get("format")?;
        if format != FORMAT {
            return Err(err(format!("format `{format}`, expected `{FORMAT}`")));
        }
        let sha = get("gguf_sha256")?;
        if sha != gguf_sha256 {
            return Err(err(format!(
                "fitted for another model file (GGUF SHA-256 {}…, this model is {}…)",
                &sha[..sha.len().min(12)],
                &gguf_sha256[..gguf_sha256.len().min(12)]
            )));
        }
        let width: usize = get("n_embd")?.parse().map_err(|_| err("metadata `n_embd` is not a number".into()))?;
        if width != n_embd {
            return Err(err(format!("heads are {width} wide, the model's hidden size is {n_embd}")));
        }
        let eps: f32 = get("rms_eps")?.parse().map_err(|_| err("metadata `rms_eps` is not a number".into()))?;
        let layers = parse_layer_list(&get("layers")?).map_err(err)?;
        let mut fitted = BTreeMap::new();
        for k in layers {
            let load = |name: String, shape: (usize, usize)| -> Result<Vec<f32>> {
                use candle_core::safetensors::Load;
                let view = st.tensor(&name).map_err(|e| err(format!("tensor `{name}`: {e}")))?;
                let t = view.load(&Device::Cpu).map_err(|e| err(format!("tensor `{name}`: {e}")))?;
                if t.dims2().ok() != Some(shape) {
                    return Err(err(format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.dims())));
                }
                Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
            };
            let w = load(format!("layer.{k}.weight"), (n_embd, n_embd))?;
            let b = load(format!("layer.{k}.bias"), (1, n_embd))?;
            fitted.insert(k, (w, b));
        }
        let info = meta.into_iter().filter(|(k, _)| !matches!(k.as_str(), "format" | "gguf_sha256" | "n_embd" | "rms_eps" | "layers")).collect();
        ExitHeads::new(path.to_path_buf(), sha, n_embd, eps, fitted, info)
    }
}

/// "24,25,26" for a list of layers.
pub fn layer_list(layers: &[usize]) -> String {
    layers.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",")
}

/// Layers written as "24-29", "24,26,28" or a mix ("20,24-29").
pub fn parse_layer_list(text: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("`{part}` is not a layer number or range like 24-29"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("`{part}`: the range is empty"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err("no layers given".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists() {
        assert_eq!(parse_layer_list("24-29").unwrap(), vec![24, 25, 26, 27, 28, 29]);
        assert_eq!(parse_layer_list("28, 20,24-25").unwrap(), vec![20, 24, 25, 28]);
        assert!(parse_layer_list("29-24").unwrap_err().contains("empty"));
        assert!(parse_layer_list("x").unwrap_err().contains("not a layer"));
        assert_eq!(layer_list(&[24, 26]), "24,26");
    }

    #[test]
    fn heads_path_sits_beside_the_model() {
        assert_eq!(heads_path(Path::new("/m/a.gguf")), PathBuf::from("/m/a.gguf.exit-heads.safetensors"));
    }
}
