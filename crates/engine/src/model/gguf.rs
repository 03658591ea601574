//! Opening and validating a GGUF file, and reading llama hyper-parameters from its metadata.

use crate::error::{candle_message, EngineError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Hyper-parameters of a llama-architecture model, from GGUF metadata `llama.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rope_freq_base: f32,
    pub rms_eps: f64,
    pub vocab_size: usize,
}

impl LlamaConfig {
    /// Bytes of K and V cached per token over all layers, in f32.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.n_layer * 2 * self.n_head_kv * self.head_dim * 4
    }
}

/// An opened GGUF file: parsed header plus a reader positioned anywhere.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    pub reader: BufReader<File>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile> {
        if !path.exists() {
            return Err(EngineError::ModelNotFound { path: path.to_path_buf() });
        }
        let file = File::open(path).map_err(|e| EngineError::NotGguf { path: path.into(), reason: e.to_string() })?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        use std::io::{Read, Seek, SeekFrom};
        if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(EngineError::NotGguf { path: path.into(), reason: "missing GGUF magic bytes".into() });
        }
        reader.seek(SeekFrom::Start(0)).map_err(|e| EngineError::Corrupt { path: path.into(), reason: e.to_string() })?;
        // candle's reader panics on some malformed headers (`general.alignment: 0` divides by zero): that is a
        // corrupt file, not a crash.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader)));
        let content = match read {
            Ok(content) => content.map_err(|e| format!("header: {}", candle_message(&e))),
            Err(panic) => {
                let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
                Err(format!("header: malformed ({})", what.unwrap_or_default()))
            }
        }
        .map_err(|reason| EngineError::Corrupt { path: path.into(), reason })?;
        // A truncated download parses (the header is intact) but its tensors run past the end of the file.
        // Checked arithmetic: the dimensions and offset are whatever the file says.
        for (name, info) in &content.tensor_infos {
            let elems = info.shape.dims().iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            let bytes = elems.and_then(|e| (e / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size()));
            let end = bytes.and_then(|b| content.tensor_data_offset.checked_add(info.offset)?.checked_add(b as u64));
            let Some(end) = end else {
                return Err(EngineError::Corrupt {
                    path: path.into(),
                    reason: format!("tensor `{name}`: its size or offset (shape {:?}, offset {}) is out of range", info.shape.dims(), info.offset),
                });
            };
            if end > file_len {
                return Err(EngineError::Corrupt {
                    path: path.into(),
                    reason: format!("tensor `{name}` ends at byte {end} but the file has {file_len} bytes"),
                });
            }
        }
        Ok(GgufFile { path: path.to_path_buf(), content, reader })
    }

    pub fn architecture(&self) -> Result<String> {
        Ok(self.get("general.architecture")?.to_string().map_err(meta_err)?.clone())
    }

    pub fn get(&self, key: &str) -> Result<&Value> {
        self.content.metadata.get(key).ok_or_else(|| EngineError::Metadata(format!("missing key `{key}`")))
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get(key)?.to_u32().map_err(|e| EngineError::Metadata(format!("`{key}`: {e}")))
    }

    pub fn llama_config(&self) -> Result<LlamaConfig> {
        let arch = self.architecture()?;
        if arch != "llama" {
            return Err(EngineError::UnsupportedArch { path: self.path.clone(), arch });
        }
        let n_head = self.get_u32("llama.attention.head_count")? as usize;
        let n_embd = self.get_u32("llama.embedding_length")? as usize;
        let n_head_kv = self.get_u32("llama.attention.head_count_kv").map(|v| v as usize).unwrap_or(n_head);
        // n_head = 0 is rejected below.
        let head_dim = self.get_u32("llama.rope.dimension_count").map(|v| v as usize).unwrap_or(n_embd.checked_div(n_head).unwrap_or(0));
        let vocab_size = match self.content.metadata.get("tokenizer.ggml.tokens") {
            Some(v) => v.to_vec().map_err(meta_err)?.len(),
            None => return Err(EngineError::Metadata("missing key `tokenizer.ggml.tokens`".into())),
        };
        let cfg = LlamaConfig {
            n_layer: self.get_u32("llama.block_count")? as usize,
            n_embd,
            n_ff: self.get_u32("llama.feed_forward_length")? as usize,
            n_head,
            n_head_kv,
            head_dim,
            context_length: self.get_u32("llama.context_length").map(|v| v as usize).unwrap_or(4096),
            rope_freq_base: self
                .content
                .metadata
                .get("llama.rope.freq_base")
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(10_000.0),
            rms_eps: self
                .get("llama.attention.layer_norm_rms_epsilon")?
                .to_f32()
                .map_err(meta_err)? as f64,
            vocab_size,
        };
        if cfg.n_head == 0 || cfg.n_head_kv == 0 || !cfg.n_head.is_multiple_of(cfg.n_head_kv) {
            return Err(EngineError::Metadata(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                cfg.n_head, cfg.n_head_kv
            )));
        }
        Ok(cfg)
    }

    /// A string-valued metadata key, if present.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.content.metadata.get(key).and_then(|v| v.to_string().ok()).cloned()
    }
}

fn meta_err(e: candle_core::Error) -> EngineError {
    EngineError::Metadata(candle_message(&e))
}
