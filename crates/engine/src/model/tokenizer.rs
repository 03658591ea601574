//! Tokenizer built from GGUF metadata, matching llama.cpp's pre-tokenization.
//!
//! candle's `TokenizerFromGguf` falls back to a GPT-2 ByteLevel pre-tokenizer with `add_prefix_space = true` for
//! unknown `tokenizer.ggml.pre` values, which is wrong for SmolLM2 (`pre = "smollm"`): "Hello world" becomes
//! [38699, 905] instead of [19556, 905] (engine.md §0.6). We build the pipeline ourselves, mapping `pre` values the
//! way llama.cpp does (`llama-vocab.cpp`, LLAMA_VOCAB_PRE_TYPE_*) and refusing values we do not know.

use crate::error::{EngineError, Result};
use crate::model::gguf::GgufFile;
use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

/// GPT-2's pre-tokenizer regex as llama.cpp writes it.
const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_NORMAL: u32 = 1;
const TOKEN_TYPE_BYTE: u32 = 6;

pub struct GgufTokenizer {
    inner: tokenizers::Tokenizer,
    /// Raw bytes each token stands for (byte-level decoded), for exact streaming decode.
    token_bytes: Vec<Vec<u8>>,
    is_special: Vec<bool>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// Ids that end generation: eos plus end-of-turn tokens such as `<|im_end|>`/`<|endoftext|>`.
    pub stop_ids: Vec<u32>,
}

impl GgufTokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<GgufTokenizer> {
        let model = file.get_str("tokenizer.ggml.model").unwrap_or_default();
        if model != "gpt2" {
            return Err(EngineError::Tokenizer(format!(
                "tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`)"
            )));
        }
        let tokens = string_array(file.get("tokenizer.ggml.tokens")?, "tokenizer.ggml.tokens")?;
        let merges = string_array(file.get("tokenizer.ggml.merges")?, "tokenizer.ggml.merges")?;
        let merges = merges
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| EngineError::Tokenizer(format!("invalid merge `{m}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let token_types: Vec<u32> = match file.content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| EngineError::Tokenizer(e.to_string()))?
                .iter()
                .map(|t| value_u32(t).unwrap_or(TOKEN_TYPE_NORMAL))
                .collect(),
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
        };
        let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let pre = file.get_str("tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
        inner.with_pre_tokenizer(Some(pre_tokenizer_for(&pre)?));

        // Control and user-defined tokens are matched whole in the input text, as llama.cpp does with
        // parse_special = true.
        let is_special: Vec<bool> = (0..tokens.len())
            .map(|i| {
                let ty = token_types.get(i).copied().unwrap_or(TOKEN_TYPE_NORMAL);
                ty != TOKEN_TYPE_NORMAL && ty != TOKEN_TYPE_BYTE
            })
            .collect();
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&is_special)
            .filter(|(_, s)| **s)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(specials).map_err(|e| EngineError::Tokenizer(e.to_string()))?;

        let byte_map = unicode_to_byte();
        let token_bytes = tokens
            .iter()
            .zip(&is_special)
            .map(|(t, special)| {
                if *special {
                    t.as_bytes().to_vec()
                } else {
                    t.chars().map(|c| byte_map.get(&c).copied().unwrap_or(b'?')).collect()
                }
            })
            .collect();
        let bos_id = file.get_u32("tokenizer.ggml.bos_token_id").ok();
        let eos_id = file.get_u32("tokenizer.ggml.eos_token_id").ok();
        let mut stop_ids: Vec<u32> = eos_id.into_iter().collect();
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>"] {
            if let Some(pos) = tokens.iter().position(|t| t == name) {
                if !stop_ids.contains(&(pos as u32)) {
                    stop_ids.push(pos as u32);
                }
            }
        }
        Ok(GgufTokenizer { inner, token_bytes, is_special, bos_id, eos_id, stop_ids })
    }

    /// Token ids of `text`; special tokens written in the text become their single ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Raw bytes of one token (special tokens as their text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.is_special.get(id as usize).copied().unwrap_or(false)
    }

    /// Decode ids to text; invalid UTF-8 (a token sequence cut inside a character) is replaced.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            bytes.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// Emits text as tokens arrive, holding back bytes of an incomplete UTF-8 character.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn push(&mut self, tok: &GgufTokenizer, id: u32) -> String {
        self.pending.extend_from_slice(tok.token_bytes(id));
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_string();
                self.pending.clear();
                out
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // A hard error (not just an incomplete tail) can never complete: flush it lossily.
                if e.error_len().is_some() {
                    let out = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return out;
                }
                let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                out
            }
        }
    }

    /// Whatever is still held back at the end of generation.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

fn pre_tokenizer_for(pre: &str) -> Result<PreTokenizerWrapper> {
    let split = |re: &str| -> Result<PreTokenizerWrapper> {
        Ok(Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?
            .into())
    };
    // ByteLevel only maps bytes to the GPT-2 alphabet here: no prefix space, no regex of its own.
    let byte_level: PreTokenizerWrapper = ByteLevel::new(false, false, false).into();
    let steps = match pre {
        // llama.cpp LLAMA_VOCAB_PRE_TYPE_STARCODER / _SMOLLM: digits split individually, then GPT-2.
        "smollm" | "starcoder" | "refact" => vec![split(r"\p{N}")?, split(GPT2_REGEX)?, byte_level],
        "gpt2" | "default" | "gpt-2" => vec![split(GPT2_REGEX)?, byte_level],
        "llama3" | "llama-bpe" | "smaug-bpe" => vec![split(LLAMA3_REGEX)?, byte_level],
        "qwen2" => vec![split(QWEN2_REGEX)?, byte_level],
        other => {
            return Err(EngineError::Tokenizer(format!(
                "pre-tokenizer `{other}` is not supported (supported: smollm, starcoder, gpt2, llama3, qwen2); \
                 guessing would silently produce wrong token ids"
            )))
        }
    };
    Ok(Sequence::new(steps).into())
}

/// Inverse of GPT-2's `bytes_to_unicode` table.
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = std::collections::HashMap::new();
    let mut n = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            n += 1;
            255 + n
        };
        map.insert(char::from_u32(c).expect("valid scalar"), b as u8);
    }
    map
}

fn string_array(v: &Value, name: &str) -> Result<Vec<String>> {
    v.to_vec()
        .map_err(|_| EngineError::Tokenizer(format!("`{name}` is not an array")))?
        .iter()
        .map(|x| x.to_string().cloned().map_err(|_| EngineError::Tokenizer(format!("`{name}` has a non-string"))))
        .collect()
}

fn value_u32(v: &Value) -> Option<u32> {
    match v {
        Value::U8(x) => Some(*x as u32),
        Value::I8(x) => Some(*x as u32),
        Value::U16(x) => Some(*x as u32),
        Value::I16(x) => Some(*x as u32),
        Value::U32(x) => Some(*x),
        Value::I32(x) => Some(*x as u32),
        Value::U64(x) => Some(*x as u32),
        Value::I64(x) => Some(*x as u32),
        _ => None,
    }
}
