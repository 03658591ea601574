//! Property-based fuzzing of GGUF header parsing: `GgufFile::open` (candle's header reader plus our checks),
//! `llama_config` and `GgufTokenizer::from_gguf`, on small GGUF files the test writes itself (not the real model).
//!
//! - A generated valid llama header (GGUF v2/v3, any alignment, optional keys, a tokenizer vocabulary, 1-2 F32
//!   tensors) opens, its config reads back as written, and its tokenizer builds and encodes.
//! - Every strict prefix of such a file (a cut download) is rejected, never a panic.
//! - The same files with a length, count, type, dimension or offset field overwritten with an extreme value,
//!   metadata values of the wrong type or range, or random byte edits: an error or a file, never a panic.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, mutate_bytes, scratch_dir};
use proptest::prelude::*;
use proptest::sample::Index;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use ttc_engine::{EngineError, GgufFile, GgufTokenizer, LlamaConfig};

/// A GGUF metadata value as written (type ids from the GGUF spec).
#[derive(Debug, Clone)]
enum Val {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(u8),
    Str(String),
    /// Element type id and elements (a wrong element type id is a way to break a file).
    Arr(u32, Vec<Val>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Val {
    fn type_id(&self) -> u32 {
        match self {
            Val::U8(_) => 0,
            Val::I8(_) => 1,
            Val::U16(_) => 2,
            Val::I16(_) => 3,
            Val::U32(_) => 4,
            Val::I32(_) => 5,
            Val::F32(_) => 6,
            Val::Bool(_) => 7,
            Val::Str(_) => 8,
            Val::Arr(..) => 9,
            Val::U64(_) => 10,
            Val::I64(_) => 11,
            Val::F64(_) => 12,
        }
    }
}

#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    /// ggml order (innermost first), as stored.
    dims: Vec<u64>,
    dtype: u32,
    offset: u64,
}

#[derive(Debug, Clone)]
struct File {
    version: u32,
    kvs: Vec<(String, Val)>,
    tensors: Vec<Tensor>,
    alignment: u64,
    data_len: usize,
}

/// Serialised bytes plus where each structural field (length, count, type id, dimension, offset) lies.
struct Written {
    bytes: Vec<u8>,
    fields: Vec<(usize, usize)>,
}

impl Written {
    fn int(&mut self, v: u64, width: usize, structural: bool) {
        if structural {
            self.fields.push((self.bytes.len(), width));
        }
        self.bytes.extend_from_slice(&v.to_le_bytes()[..width]);
    }
}

impl File {
    fn len_width(&self) -> usize {
        if self.version == 1 {
            4
        } else {
            8
        }
    }

    fn string(&self, w: &mut Written, s: &str) {
        w.int(s.len() as u64, self.len_width(), true);
        w.bytes.extend_from_slice(s.as_bytes());
    }

    fn value(&self, w: &mut Written, v: &Val) {
        match v {
            Val::U8(x) => w.int(*x as u64, 1, false),
            Val::I8(x) => w.int(*x as u8 as u64, 1, false),
            Val::U16(x) => w.int(*x as u64, 2, false),
            Val::I16(x) => w.int(*x as u16 as u64, 2, false),
            Val::U32(x) => w.int(*x as u64, 4, false),
            Val::I32(x) => w.int(*x as u32 as u64, 4, false),
            Val::F32(x) => w.int(x.to_bits() as u64, 4, false),
            Val::Bool(x) => w.int(*x as u64, 1, false),
            Val::Str(s) => self.string(w, s),
            Val::Arr(t, items) => {
                w.int(*t as u64, 4, true);
                w.int(items.len() as u64, self.len_width(), true);
                for it in items {
                    self.value(w, it);
                }
            }
            Val::U64(x) => w.int(*x, 8, false),
            Val::I64(x) => w.int(*x as u64, 8, false),
            Val::F64(x) => w.int(x.to_bits(), 8, false),
        }
    }

    fn write(&self) -> Written {
        let mut w = Written { bytes: b"GGUF".to_vec(), fields: Vec::new() };
        w.int(self.version as u64, 4, true);
        w.int(self.tensors.len() as u64, self.len_width(), true);
        w.int(self.kvs.len() as u64, self.len_width(), true);
        for (k, v) in &self.kvs {
            self.string(&mut w, k);
            w.int(v.type_id() as u64, 4, true);
            self.value(&mut w, v);
        }
        for t in &self.tensors {
            self.string(&mut w, &t.name);
            w.int(t.dims.len() as u64, 4, true);
            for d in &t.dims {
                w.int(*d, self.len_width(), true);
            }
            w.int(t.dtype as u64, 4, true);
            w.int(t.offset, 8, true);
        }
        while !(w.bytes.len() as u64).is_multiple_of(self.alignment) {
            w.bytes.push(0);
        }
        w.bytes.extend((0..self.data_len).map(|i| i as u8));
        w
    }
}

/// What a valid generated file must read back as.
#[derive(Debug, Clone)]
struct Model {
    file: File,
    config: LlamaConfig,
}

/// GPT-2 byte-level tokens: printable ASCII stands for itself, `Ġ` for a space.
fn vocab() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(prop::sample::select(vec!["a", "b", "c", "ab", "bc", "abc", "Ġ", "Ġa", "1", "!", "<|im_end|>", "<|endoftext|>"]), 2..10)
        .prop_map(|s| {
            // `a`, `b` and `ab` first: the merge `a b` needs all three.
            let mut v: Vec<String> = ["a", "b", "ab"].iter().map(|t| t.to_string()).collect();
            v.extend(s.into_iter().filter(|t| !["a", "b", "ab"].contains(t)).map(str::to_string));
            v
        })
}

fn model() -> impl Strategy<Value = Model> {
    (
        (prop::sample::select(vec![2u32, 3]), prop::sample::select(vec![1u64, 8, 32, 64, 4096])),
        (1u32..4, prop::sample::select(vec![1u32, 2, 4]), 1u32..4, 1u32..64, 1u32..4096),
        (prop::option::of(1u32..64), prop::option::of(1u32..100_000), prop::option::of(1.0f32..1e6), 1e-9f32..1e-2),
        (vocab(), prop::sample::select(vec!["smollm", "gpt2", "llama3", "qwen2"]), any::<bool>(), any::<bool>()),
        (any::<Index>(), 1usize..3),
    )
        .prop_map(|((version, alignment), (kv_heads, group, n_layer, n_embd, n_ff), (rope_dim, ctx, freq, eps), (tokens, pre, types, explicit_kv), (order, n_tensors))| {
            let n_head = kv_heads * group;
            let mut kvs: Vec<(String, Val)> = vec![
                ("general.architecture".into(), Val::Str("llama".into())),
                ("llama.attention.head_count".into(), Val::U32(n_head)),
                ("llama.embedding_length".into(), Val::U32(n_embd)),
                ("llama.feed_forward_length".into(), Val::U32(n_ff)),
                ("llama.block_count".into(), Val::U32(n_layer)),
                ("llama.attention.layer_norm_rms_epsilon".into(), Val::F32(eps)),
                ("tokenizer.ggml.model".into(), Val::Str("gpt2".into())),
                ("tokenizer.ggml.pre".into(), Val::Str(pre.into())),
                ("tokenizer.ggml.tokens".into(), Val::Arr(8, tokens.iter().map(|t| Val::Str(t.clone())).collect())),
                ("tokenizer.ggml.merges".into(), Val::Arr(8, vec![Val::Str("a b".into())])),
                ("tokenizer.ggml.eos_token_id".into(), Val::U32(1)),
            ];
            if explicit_kv {
                kvs.push(("llama.attention.head_count_kv".into(), Val::U32(kv_heads)));
            }
            if let Some(d) = rope_dim {
                kvs.push(("llama.rope.dimension_count".into(), Val::U32(d)));
            }
            if let Some(c) = ctx {
                kvs.push(("llama.context_length".into(), Val::U32(c)));
            }
            if let Some(f) = freq {
                kvs.push(("llama.rope.freq_base".into(), Val::F32(f)));
            }
            if types {
                let ty = |t: &String| Val::I32(if t.starts_with("<|") { 3 } else { 1 });
                kvs.push(("tokenizer.ggml.token_type".into(), Val::Arr(5, tokens.iter().map(ty).collect())));
            }
            if alignment != 32 {
                kvs.push(("general.alignment".into(), Val::U32(alignment as u32)));
            }
            // Key order is free in GGUF: rotate the list.
            let k = order.index(kvs.len());
            kvs.rotate_left(k);
            let vocab_size = tokens.len();
            let mut tensors = Vec::new();
            let mut offset = 0u64;
            for i in 0..n_tensors {
                let dims = vec![4u64, (i + 1) as u64];
                tensors.push(Tensor { name: format!("t{i}.weight"), dims: dims.clone(), dtype: 0, offset });
                offset += dims.iter().product::<u64>() * 4;
                offset = offset.div_ceil(alignment) * alignment;
            }
            let data_len = tensors.last().map_or(0, |t| t.offset as usize + t.dims.iter().product::<u64>() as usize * 4);
            let n_head_kv = if explicit_kv { kv_heads } else { n_head };
            let config = LlamaConfig {
                n_layer: n_layer as usize,
                n_embd: n_embd as usize,
                n_ff: n_ff as usize,
                n_head: n_head as usize,
                n_head_kv: n_head_kv as usize,
                head_dim: rope_dim.map_or(n_embd / n_head, |d| d) as usize,
                context_length: ctx.map_or(4096, |c| c as usize),
                rope_freq_base: freq.unwrap_or(10_000.0),
                rms_eps: eps as f64,
                vocab_size,
            };
            Model { file: File { version, kvs, tensors, alignment, data_len }, config }
        })
}

/// A scratch file per case (tests run in parallel threads).
fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch_dir();
    let path = dir.path().join(format!("m{}.gguf", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    (dir, path)
}

/// Opens and reads everything the engine reads from a header (the tokenizer when asked: building one compiles
/// its pre-tokenizer regexes, ~1.5 ms, so a fifth of the cases do); Ok when all of it succeeded.
fn read_header(bytes: &[u8], tokenizer: bool) -> Result<(LlamaConfig, Option<GgufTokenizer>), String> {
    let (_dir, path) = write_temp(bytes);
    // A file that does not open is named in the error, with what is wrong with it.
    let file = GgufFile::open(&path).map_err(|e| {
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()) && matches!(e, EngineError::NotGguf { .. } | EngineError::Corrupt { .. }), "{msg}");
        msg
    })?;
    let config = file.llama_config().map_err(|e| e.to_string())?;
    let tok = if tokenizer { Some(GgufTokenizer::from_gguf(&file).map_err(|e| e.to_string())?) } else { None };
    Ok((config, tok))
}

fn sometimes() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.2)
}

/// A wrong-typed or out-of-range value for a key.
fn bad_value() -> impl Strategy<Value = Val> {
    prop_oneof![
        prop::sample::select(vec![0u32, 1, u32::MAX, 1 << 31]).prop_map(Val::U32),
        any::<i32>().prop_map(Val::I32),
        prop::sample::select(vec![0u64, u64::MAX, 1 << 40]).prop_map(Val::U64),
        any::<i64>().prop_map(Val::I64),
        any::<u8>().prop_map(Val::U8),
        any::<i8>().prop_map(Val::I8),
        any::<u16>().prop_map(Val::U16),
        any::<i16>().prop_map(Val::I16),
        prop::sample::select(vec![0.0f32, -1.0, f32::NAN, f32::INFINITY, 1e-45]).prop_map(Val::F32),
        any::<f64>().prop_map(Val::F64),
        any::<u8>().prop_map(Val::Bool),
        "\\PC{0,6}".prop_map(Val::Str),
        prop::collection::vec(prop_oneof!["[ab ]{0,4}".prop_map(Val::Str), Just(Val::U32(7))], 0..3).prop_map(|v| Val::Arr(8, v)),
        Just(Val::Arr(9, vec![Val::Arr(8, vec![Val::Str("a b".into())])])),
        Just(Val::Arr(4, vec![Val::U32(1), Val::U32(2)])),
    ]
}

fn broken() -> impl Strategy<Value = Vec<u8>> {
    let overwrite = (model(), any::<Index>(), prop::sample::select(vec![0u64, 1, 2, 3, 4, 13, 31, 255, 1 << 30, (1 << 30) + 1, u32::MAX as u64, 1 << 32, 1 << 62, u64::MAX]))
        .prop_map(|(m, at, v)| {
            let mut w = m.file.write();
            let (pos, width) = w.fields[at.index(w.fields.len())];
            w.bytes[pos..pos + width].copy_from_slice(&v.to_le_bytes()[..width]);
            w.bytes
        });
    let retyped = (model(), any::<Index>(), bad_value()).prop_map(|(mut m, at, v)| {
        let k = at.index(m.file.kvs.len());
        m.file.kvs[k].1 = v;
        m.file.write().bytes
    });
    let tensor = (model(), prop::collection::vec(prop::sample::select(vec![0u64, 1, 3, u32::MAX as u64, 1 << 32, u64::MAX]), 0..5), prop::sample::select(vec![0u32, 1, 2, 8, 12, 14, 30, 99]), prop::sample::select(vec![0u64, 7, 1 << 40, u64::MAX - 3]))
        .prop_map(|(mut m, dims, dtype, offset)| {
            m.file.tensors[0] = Tensor { name: "t0.weight".into(), dims, dtype, offset };
            m.file.write().bytes
        });
    let v1 = model().prop_map(|mut m| {
        // GGUF v1 has 32-bit lengths: candle reads them, the rest of the header is unchanged.
        m.file.version = 1;
        m.file.write().bytes
    });
    let edited = (model(), edits(&["GGUF", "\0\0\0\0", "\u{ff}\u{ff}", "llama", "general.alignment"])).prop_map(|(m, e)| mutate_bytes(&m.file.write().bytes, &e));
    prop_oneof![overwrite, retyped, tensor, v1, edited, prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| [&b"GGUF\x03\0\0\0"[..], &b].concat())]
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn valid_headers_read_back_as_written(m in model(), tokenizer in sometimes()) {
        let (config, tok) = read_header(&m.file.write().bytes, tokenizer).map_err(TestCaseError::fail)?;
        prop_assert_eq!(config, m.config);
        if let Some(tok) = tok {
            let ids = tok.encode("ab c!").map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
        }
    }

    #[test]
    fn every_truncation_is_rejected(m in model(), cut in any::<Index>()) {
        let bytes = m.file.write().bytes;
        let cut = cut.index(bytes.len());
        prop_assert!(read_header(&bytes[..cut], true).is_err(), "a file cut at {} of {} bytes was accepted", cut, bytes.len());
    }

    #[test]
    fn broken_headers_never_panic(bytes in broken(), tokenizer in sometimes()) {
        let _ = read_header(&bytes, tokenizer);
    }
}

// Found by the fuzzer: panics while reading a header.

/// A fixed valid model to break by hand.
fn base() -> Model {
    use proptest::strategy::ValueTree;
    model().new_tree(&mut proptest::test_runner::TestRunner::deterministic()).unwrap().current()
}

fn set(m: &mut Model, key: &str, v: Option<Val>) {
    m.file.kvs.retain(|(k, _)| k != key);
    if let Some(v) = v {
        m.file.kvs.push((key.to_string(), v));
    }
}

#[test]
fn regression_alignment_zero_is_corrupt_not_a_division_by_zero() {
    // candle's reader divides by `general.alignment`.
    let mut m = base();
    set(&mut m, "general.alignment", Some(Val::U32(0)));
    let e = read_header(&m.file.write().bytes, false).err().expect("an error");
    assert!(e.contains("truncated or corrupt") && e.contains("header: malformed"), "{e}");
}

#[test]
fn regression_tensor_size_or_offset_overflow_is_corrupt() {
    for (dims, offset) in [(vec![u64::MAX, 2], 0), (vec![1 << 40, 1 << 40], 0), (vec![4, 1], u64::MAX - 3)] {
        let mut m = base();
        m.file.tensors[0] = Tensor { name: "t0.weight".into(), dims, dtype: 0, offset };
        let e = read_header(&m.file.write().bytes, false).err().expect("an error");
        assert!(e.contains("tensor `t0.weight`: its size or offset") && e.contains("out of range"), "{e}");
    }
}

#[test]
fn regression_zero_heads_is_a_metadata_error_not_a_division_by_zero() {
    let mut m = base();
    set(&mut m, "llama.attention.head_count", Some(Val::U32(0)));
    set(&mut m, "llama.rope.dimension_count", None);
    let e = read_header(&m.file.write().bytes, false).err().expect("an error");
    assert!(e.contains("head_count 0"), "{e}");
}
